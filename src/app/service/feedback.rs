//! The service's feedback side (issues #13, #15): "Check mailbox" (the same `inbox::check` that
//! `herald bounces` runs), what Start does before a run (read the bounce mailbox and pull the
//! unsubscribe endpoint, as `herald send` does, and say what failed instead of sending), the
//! feedback counts and per-row notes the window shows, and the global suppression list for the
//! Suppression view (search, add, remove, export). Runs on the service thread; the store does
//! the SQL, `inbox` and `unsubscribe::pull` the network.

use crate::app::AppError;
use std::collections::HashMap;
use std::path::Path;

use super::campaigns;
use super::library::Library;
use super::load;
use crate::app::presend::BeforeStart;
use crate::app::suppression;
use crate::campaign::Campaign;
use crate::inbox::{self, Summary};
use crate::store::{FeedbackCounts, RecipientId, Store, SuppressionPage};

/// Reads the campaign's bounce mailbox and applies what came back.
pub(super) fn check_mailbox(path: &Path, db: &Path) -> Result<Summary, AppError> {
    let campaign = load(path)?;
    if campaign.bounces.is_none() {
        return Err(
            "the campaign has no [bounces] section: add one naming the bounce mailbox".into(),
        );
    }
    inbox::check(&campaign, db).map_err(AppError::from)
}

/// The checks `herald send` makes before a run (`app::presend`).
pub(super) fn before_start(
    campaign: &Campaign,
    db: &Path,
    library: &mut Library,
) -> Result<BeforeStart, AppError> {
    // Issue #23: the DNS first, as `herald send` checks it first.
    let dns = crate::app::deliverability::findings(campaign);
    // Issue #20: what `herald check` warns of, asked about before a first send.
    let cautions = crate::app::check::cautions(campaign);
    let first_send = crate::app::presend::is_first_send(&library.counts(&campaign.path)?);
    let mut found = crate::app::presend::before_send(campaign, db, library.store()?);
    found.dns = dns;
    found.cautions = cautions;
    found.first_send = first_send;
    Ok(found)
}

/// What came back for the campaign in `path` (zeros before its first import).
pub(super) fn counts(store: &Store, path: &Path) -> Result<FeedbackCounts, AppError> {
    match campaigns::find(store, path)? {
        Some(id) => store.feedback_counts(id).map_err(AppError::from),
        None => Ok(FeedbackCounts::default()),
    }
}

pub(super) fn notes(
    store: &Store,
    ids: &[RecipientId],
) -> Result<HashMap<RecipientId, String>, AppError> {
    store.feedback_notes(ids).map_err(AppError::from)
}

pub(super) fn page(store: &Store, search: &str, limit: u32) -> Result<SuppressionPage, AppError> {
    store
        .suppression_page(search, 0, limit)
        .map_err(AppError::from)
}

/// Puts `address` on the global list by hand; says what happened.
pub(super) fn add(store: &mut Store, address: &str, note: &str) -> Result<String, AppError> {
    let edited =
        suppression::add(store, address, note, "added in the window").map_err(AppError::from)?;
    Ok(if edited.changed {
        format!("{} will not be mailed by any campaign", edited.key)
    } else {
        format!("{} was already on the list", edited.key)
    })
}

pub(super) fn remove(store: &mut Store, address: &str) -> Result<String, AppError> {
    let edited = suppression::remove(store, address).map_err(AppError::from)?;
    Ok(if edited.changed {
        format!(
            "{} was taken off the list (recipients already skipped stay skipped)",
            edited.key
        )
    } else {
        format!("{} was not on the list", edited.key)
    })
}

/// Adds the addresses of a file as `herald suppression import` does; says what it did.
pub(super) fn import(store: &mut Store, from: &Path) -> Result<String, AppError> {
    let imported = suppression::import(store, from).map_err(AppError::from)?;
    let mut sentence = format!(
        "{} address(es) added to the suppression list",
        imported.added
    );
    if let Some((line, why)) = imported.invalid.first() {
        sentence.push_str(&format!(
            "; {} line(s) without a valid address skipped (line {line}: {why})",
            imported.invalid.len()
        ));
    }
    Ok(sentence)
}

/// Writes the whole list as `herald suppression export` does.
pub(super) fn export(store: &Store, to: &Path) -> Result<u64, AppError> {
    suppression::export(store, to).map_err(AppError::from)
}
