//! A campaign's identity in the database and the names of the database's secrets: one place
//! that says which row a campaign file is (its canonical path, so two files never share state)
//! and which keys sign its return-path tags and unsubscribe links. A leaf over `campaign` and
//! `store`: the engine, the mailbox reader and the application layer all ask it, and it asks
//! nobody above it.

use crate::campaign::Campaign;
use crate::store::{CampaignId, Store, StoreError};

/// The key that identifies a campaign in the database: its file's absolute path.
pub fn campaign_key(campaign: &Campaign) -> String {
    campaign.path.to_string_lossy().into_owned()
}

/// The VERP return path and mailto unsubscribe of a campaign with `[bounces] return_path`,
/// keyed by the database's secrets (issue #13); None without one.
pub fn feedback_for(
    store: &mut Store,
    campaign: &Campaign,
    campaign_id: CampaignId,
) -> Result<Option<crate::compose::Feedback>, StoreError> {
    let Some(return_path) = campaign
        .bounces
        .as_ref()
        .and_then(|bounces| bounces.return_path.clone())
    else {
        return Ok(None);
    };
    Ok(Some(crate::compose::Feedback {
        campaign: campaign_id,
        return_path,
        return_secret: store.secret(RETURN_PATH_SECRET)?,
        unsubscribe_secret: store.secret(UNSUBSCRIBE_SECRET)?,
    }))
}

/// The names of the database secrets keying return-path tags and unsubscribe tokens.
pub const RETURN_PATH_SECRET: &str = "return-path";
pub const UNSUBSCRIBE_SECRET: &str = "unsubscribe";

/// Finds or creates the campaign's row in the store.
pub fn campaign_id(store: &mut Store, campaign: &Campaign) -> Result<CampaignId, StoreError> {
    store.campaign(&campaign_key(campaign), &campaign.name)
}

/// Keys `composer` with the database's secrets for `campaign`: signed unsubscribe links
/// (issue #15), Message-IDs that a report returning one proves it concerns that message with
/// (issue #21), and, with `[bounces] return_path`, the VERP envelope and mailto (issue #13). A
/// run and a preview both call this, so the preview shows exactly what the run will write.
pub fn key_composer(
    composer: &mut crate::compose::Composer,
    store: &mut Store,
    campaign: &Campaign,
    id: CampaignId,
) -> Result<(), StoreError> {
    composer.sign_links(store.secret(crate::token::UNSUBSCRIBE_KEY)?, id);
    composer.key_message_ids(store.secret(RETURN_PATH_SECRET)?, id);
    if let Some(feedback) = feedback_for(store, campaign, id)? {
        composer.set_feedback(feedback);
    }
    Ok(())
}
