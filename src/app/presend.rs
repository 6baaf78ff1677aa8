//! The checks before a send, made the same way for `herald send`/`resend` and the window's
//! Start: read the bounce mailbox (yesterday's bounces, complaints and unsubscribes first, so
//! this run skips them), then pull the unsubscribe endpoint. A check that fails stops the send:
//! the CLI exits unless `--no-pull`, the window asks, since mailing people who left is what gets
//! a sender junked.

use std::path::Path;

use crate::app::check::Caution;
use crate::app::deliverability::{self, Finding, Level};
use crate::campaign::Campaign;
use crate::inbox::{self, Summary};
use crate::store::Store;
use crate::unsubscribe::pull::{self, PullReport};

/// What the checks before a send found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BeforeStart {
    /// The bounce mailbox, when the campaign has `[bounces]`.
    pub mailbox: Option<Result<Summary, String>>,
    /// The unsubscribe endpoint's pull, when the campaign has `[unsubscribe] endpoint`.
    pub pulled: Option<Result<PullReport, String>>,
    /// The endpoint the pull asked (for the question asked when it failed).
    pub endpoint: Option<String>,
    /// The deliverability check's findings (issue #23), for the window's Start (the CLI prints
    /// its own, `cli/deliverability.rs`); a red one stops the start as it stops `herald send`.
    pub dns: Vec<Finding>,
    /// `herald check`'s deliverability warnings (no unsubscribe link, no DKIM, no bounce
    /// mailbox…), for the window's Start (issue #20); the CLI's `check` prints them.
    pub cautions: Vec<Caution>,
    /// Whether nothing of the campaign was sent yet: a red caution stops only a first send
    /// (once the user chose to send anyway, resuming does not ask again).
    pub first_send: bool,
    /// Whether the run was started (false when a check failed).
    pub started: bool,
}

impl BeforeStart {
    /// Whether a check that was due failed.
    pub fn failed(&self) -> bool {
        matches!(self.mailbox, Some(Err(_)))
            || matches!(self.pulled, Some(Err(_)))
            || deliverability::blocking(&self.dns).next().is_some()
            || self.blocking_cautions().next().is_some()
    }

    /// The red cautions that stop this start: those of a first send.
    pub fn blocking_cautions(&self) -> impl Iterator<Item = &Caution> {
        self.cautions
            .iter()
            .filter(|caution| self.first_send && caution.level == Level::Red)
    }
}

/// Whether a campaign with these counts has not sent anything yet: every recipient still
/// pending or skipped (none imported counts too).
pub fn is_first_send(counts: &crate::delivery::Counts) -> bool {
    counts.pending + counts.skipped == counts.total()
}

/// Runs the checks the campaign calls for, in order: the mailbox, then the pull.
pub fn before_send(campaign: &Campaign, db: &Path, store: &mut Store) -> BeforeStart {
    let mut found = BeforeStart::default();
    if campaign.bounces.is_some() {
        found.mailbox = Some(inbox::check(campaign, db).map_err(|error| error.to_string()));
    }
    if let Some(endpoint) = campaign
        .unsubscribe
        .as_ref()
        .and_then(|spec| spec.endpoint.clone())
    {
        let pulled = pull::pull(campaign.unsubscribe.as_ref(), store)
            .map_err(|error| error.to_string())
            .and_then(|report| {
                report.ok_or_else(|| "the campaign names no unsubscribe endpoint".to_string())
            });
        found.pulled = Some(pulled);
        found.endpoint = Some(endpoint);
    }
    found
}
