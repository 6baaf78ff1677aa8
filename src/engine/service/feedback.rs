//! The service's feedback side (issues #13, #15): "Check mailbox" (the same `inbox::check` that
//! `herald bounces` runs), what Start does before a run (read the bounce mailbox and pull the
//! unsubscribe endpoint, as `herald send` does, check SPF, DKIM, DMARC and reverse DNS (issue
//! #23), and say what failed instead of sending), the
//! feedback counts and per-row notes the window shows, and the global suppression list for the
//! Suppression view (search, add, remove, export). Runs on the service thread; the store does
//! the SQL, `inbox` and `unsubscribe::pull` the network.

use std::collections::HashMap;
use std::path::Path;

use super::campaigns;
use super::library::Library;
use super::load;
use crate::campaign::Campaign;
use crate::dnsauth::{self, Finding};
use crate::inbox::{self, Summary};
use crate::recipients::EmailAddress;
use crate::store::{
    FeedbackCounts, RecipientId, Store, Suppression, SuppressionPage, SuppressionReason, now_ms,
};
use crate::unsubscribe::pull::{self, PullReport};

/// What Start found before sending. A check that failed stops the start: the window asks
/// whether to send anyway, since mailing people who left is what gets a sender junked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BeforeStart {
    /// The bounce mailbox, when the campaign has `[bounces]`.
    pub mailbox: Option<Result<Summary, String>>,
    /// The unsubscribe endpoint's pull, when the campaign has `[unsubscribe] endpoint`.
    pub pulled: Option<Result<PullReport, String>>,
    /// The endpoint the pull asked (for the question the window asks when it failed).
    pub endpoint: Option<String>,
    /// The deliverability check's findings (issue #23); a red one stops the start, as it stops
    /// `herald send`.
    pub dns: Vec<Finding>,
    /// Whether the run was started (false when a check failed).
    pub started: bool,
}

impl BeforeStart {
    /// Whether a check that was due failed.
    pub fn failed(&self) -> bool {
        matches!(self.mailbox, Some(Err(_)))
            || matches!(self.pulled, Some(Err(_)))
            || dnsauth::blocking(&self.dns).next().is_some()
    }
}

/// Reads the campaign's bounce mailbox and applies what came back.
pub(super) fn check_mailbox(path: &Path, db: &Path) -> Result<Summary, String> {
    let campaign = load(path)?;
    if campaign.bounces.is_none() {
        return Err(
            "the campaign has no [bounces] section: add one naming the bounce mailbox".into(),
        );
    }
    inbox::check(&campaign, db).map_err(|error| error.to_string())
}

/// The checks `herald send` makes before a run, in the same order: the DNS, the mailbox, then
/// the pull.
pub(super) fn before_start(
    campaign: &Campaign,
    db: &Path,
    library: &mut Library,
) -> Result<BeforeStart, String> {
    let mut found = BeforeStart {
        dns: dnsauth::check(campaign),
        ..BeforeStart::default()
    };
    if campaign.bounces.is_some() {
        found.mailbox = Some(inbox::check(campaign, db).map_err(|error| error.to_string()));
    }
    let endpoint = campaign
        .unsubscribe
        .as_ref()
        .and_then(|spec| spec.endpoint.clone());
    if let Some(endpoint) = endpoint {
        let store = library.store()?;
        let pulled = pull::pull(campaign.unsubscribe.as_ref(), store)
            .map_err(|error| error.to_string())
            .and_then(|report| {
                report.ok_or_else(|| "the campaign names no unsubscribe endpoint".to_string())
            });
        found.pulled = Some(pulled);
        found.endpoint = Some(endpoint);
    }
    Ok(found)
}

/// What came back for the campaign in `path` (zeros before its first import).
pub(super) fn counts(store: &Store, path: &Path) -> Result<FeedbackCounts, String> {
    match campaigns::find(store, path)? {
        Some(id) => store.feedback_counts(id).map_err(|error| error.to_string()),
        None => Ok(FeedbackCounts::default()),
    }
}

pub(super) fn notes(
    store: &Store,
    ids: &[RecipientId],
) -> Result<HashMap<RecipientId, String>, String> {
    store.feedback_notes(ids).map_err(|error| error.to_string())
}

pub(super) fn page(store: &Store, search: &str, limit: u32) -> Result<SuppressionPage, String> {
    store
        .suppression_page(search, 0, limit)
        .map_err(|error| error.to_string())
}

fn key_of(address: &str) -> Result<String, String> {
    EmailAddress::parse(address.trim())
        .map(|parsed| parsed.key())
        .map_err(|error| format!("\"{}\" is not an email address: {error}", address.trim()))
}

/// Puts `address` on the global list by hand; says what happened.
pub(super) fn add(store: &mut Store, address: &str, note: &str) -> Result<String, String> {
    let key = key_of(address)?;
    let entry = Suppression {
        address: key.clone(),
        reason: SuppressionReason::Manual,
        at_ms: now_ms(),
        campaign: None,
        evidence: if note.trim().is_empty() {
            "added in the window".into()
        } else {
            note.trim().to_string()
        },
    };
    match store.suppress(&entry) {
        Ok(true) => Ok(format!("{key} will not be mailed by any campaign")),
        Ok(false) => Ok(format!("{key} was already on the list")),
        Err(error) => Err(error.to_string()),
    }
}

pub(super) fn remove(store: &mut Store, address: &str) -> Result<String, String> {
    let key = key_of(address)?;
    match store.unsuppress(&key) {
        Ok(true) => Ok(format!(
            "{key} was taken off the list (recipients already skipped stay skipped)"
        )),
        Ok(false) => Ok(format!("{key} was not on the list")),
        Err(error) => Err(error.to_string()),
    }
}

/// Writes the whole list as `herald suppression export` does.
pub(super) fn export(store: &Store, to: &Path) -> Result<u64, String> {
    let list = store.suppressions().map_err(|error| error.to_string())?;
    std::fs::write(to, crate::engine::suppression_file::to_csv(&list))
        .map_err(|error| format!("could not write {}: {error}", to.display()))?;
    Ok(list.len() as u64)
}
