//! The state database as the front ends see it: one handle whose methods are the use cases that
//! read or change it (status, import, resend, preview, the checks before a send, the global
//! suppression list, the unsubscribe key and pull). The CLI and the window's service hold a
//! `Database`, never a `Store`, so "which rows does a resend touch" or "when is the list
//! imported" is decided here once.

use std::path::{Path, PathBuf};

use super::error::AppError;
use super::presend::{self, BeforeStart};
use super::preview::{self, Preview};
use super::suppression::{self, Edited, Imported};
use crate::campaign::Campaign;
use crate::delivery::Counts;
use crate::identity;
use crate::import::{self, ImportReport};
use crate::store::{
    Applied, FeedbackCounts, HeldRow, RecipientRef, ResendFilter, Store, Suppression,
};
use crate::unsubscribe::pull::{self, PullReport};

pub struct Database {
    store: Store,
    path: PathBuf,
}

impl Database {
    /// Opens (creating on first use) the database at `path`.
    pub fn open(path: &Path) -> Result<Database, AppError> {
        Ok(Database {
            store: Store::open(path)?,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The campaign's counts per state and what came back; zeros before its first import
    /// (the campaign's row is not created by asking).
    pub fn status(&self, campaign: &Campaign) -> Result<(Counts, FeedbackCounts), AppError> {
        match self
            .store
            .find_campaign(&identity::campaign_key(campaign))?
        {
            Some(id) => Ok((self.store.counts(id)?, self.store.feedback_counts(id)?)),
            None => Ok(Default::default()),
        }
    }

    /// Imports (or re-imports) the recipient list; the report and the counts after it.
    pub fn import(&mut self, campaign: &Campaign) -> Result<(ImportReport, Counts), AppError> {
        let (id, report) = import::import(&mut self.store, campaign)?;
        let counts = match report.counts {
            Some(counts) => counts,
            None => self.store.counts(id)?,
        };
        Ok((report, counts))
    }

    /// Puts the rows `filter` selects back to `pending`; how many. Durable before it returns,
    /// so a send that follows never finds them failed again after a crash.
    pub fn resend(&mut self, campaign: &Campaign, filter: &ResendFilter) -> Result<u64, AppError> {
        let id = identity::campaign_id(&mut self.store, campaign)?;
        Ok(self.store.resend(id, filter)?)
    }

    /// Uncertain rows marked sent by the user (they know the server had them).
    pub fn mark_uncertain_sent(&mut self, campaign: &Campaign) -> Result<u64, AppError> {
        let id = identity::campaign_id(&mut self.store, campaign)?;
        Ok(self.store.mark_uncertain_sent(id)?)
    }

    pub fn preview(
        &mut self,
        campaign: &Campaign,
        which: &RecipientRef,
    ) -> Result<Preview, AppError> {
        Ok(preview::preview(campaign, &mut self.store, which)?)
    }

    /// The checks before a send (`presend`).
    pub fn before_send(&mut self, campaign: &Campaign) -> BeforeStart {
        presend::before_send(campaign, &self.path, &mut self.store)
    }

    /// The reports held because they do not prove they concern Herald's mail (issue #21).
    pub fn held_reports(&self) -> Result<Vec<HeldRow>, AppError> {
        super::held::list(&self.store)
    }

    /// Forgets the held reports the user named to dismiss and applies those named to apply,
    /// because the user said so: what each applied one did, and how many were dismissed.
    pub fn settle_held(
        &mut self,
        apply: &[super::held::HeldId],
        dismiss: &[super::held::HeldId],
        soft_limit: u32,
    ) -> Result<(Vec<(HeldRow, Applied)>, usize), AppError> {
        super::held::settle(&mut self.store, apply, dismiss, soft_limit)
    }

    /// How many failed rows a resend leaves out unless told to include them: their address
    /// was refused as dead and is suppressed as bounced (issue #21).
    pub fn hard_failed(&mut self, campaign: &Campaign) -> Result<u64, AppError> {
        let id = identity::campaign_id(&mut self.store, campaign)?;
        Ok(self.store.hard_failed(id)?)
    }

    /// Every suppressed address, newest first.
    pub fn suppressions(&self) -> Result<Vec<Suppression>, AppError> {
        Ok(self.store.suppressions()?)
    }

    pub fn suppress(
        &mut self,
        address: &str,
        note: &str,
        default_note: &str,
    ) -> Result<Edited, AppError> {
        Ok(suppression::add(
            &mut self.store,
            address,
            note,
            default_note,
        )?)
    }

    pub fn unsuppress(&mut self, address: &str) -> Result<Edited, AppError> {
        Ok(suppression::remove(&mut self.store, address)?)
    }

    pub fn export_suppressions(&self, to: &Path) -> Result<u64, AppError> {
        Ok(suppression::export(&self.store, to)?)
    }

    pub fn import_suppressions(&mut self, file: &Path) -> Result<Imported, AppError> {
        Ok(suppression::import(&mut self.store, file)?)
    }

    /// The key the unsubscribe endpoint verifies links with (made on first use).
    pub fn unsubscribe_key(&mut self) -> Result<[u8; 32], AppError> {
        Ok(self.store.secret(crate::token::UNSUBSCRIBE_KEY)?)
    }

    /// Pulls the endpoint's new unsubscribes into the suppression list; None without one.
    pub fn pull_unsubscribes(
        &mut self,
        campaign: &Campaign,
    ) -> Result<Option<PullReport>, AppError> {
        Ok(pull::pull(campaign.unsubscribe.as_ref(), &mut self.store)?)
    }
}
