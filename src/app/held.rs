//! The reports held because they do not prove they concern Herald's mail (issue #21 §1): listed
//! with their evidence, applied or dismissed only when the user says so. `herald bounces
//! --apply-unverified` applies them all; the window's review list (Suppression view) applies or
//! dismisses one at a time, or all. Both front ends call these functions, so "apply" means the
//! same thing in each.

use super::error::AppError;
use crate::campaign::Campaign;
use crate::store::{Applied, FeedbackKind, HeldRow, RecipientId, Store};

/// Which held reports an action takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    All,
    /// One report: its recipient and kind (a recipient holds at most one of each kind).
    One(RecipientId, FeedbackKind),
}

/// The `soft_limit` of `[bounces]` when no campaign says (the campaign file's default).
const DEFAULT_SOFT_LIMIT: u32 = 3;

/// Soft bounces that suppress an address: the campaign's, else the default.
pub fn soft_limit(campaign: Option<&Campaign>) -> u32 {
    campaign
        .and_then(|c| c.bounces.as_ref())
        .map_or(DEFAULT_SOFT_LIMIT, |b| b.soft_limit)
}

/// Every held report, oldest first.
pub fn list(store: &Store) -> Result<Vec<HeldRow>, AppError> {
    Ok(store.held_feedback()?)
}

/// Applies the held reports `which` names as if verified; what each did.
pub fn apply(
    store: &mut Store,
    which: Which,
    soft_limit: u32,
) -> Result<Vec<(HeldRow, Applied)>, AppError> {
    let selection = match which {
        Which::All => None,
        Which::One(recipient, kind) => Some((recipient, kind)),
    };
    Ok(store.apply_held(selection, soft_limit)?)
}

/// Forgets one held report unapplied; whether it was there.
pub fn dismiss(
    store: &mut Store,
    recipient: RecipientId,
    kind: FeedbackKind,
) -> Result<bool, AppError> {
    Ok(store.dismiss_held(recipient, kind)?)
}

/// One sentence on what applying did, for the window and the CLI alike.
pub fn applied_sentence(done: &[(HeldRow, Applied)]) -> String {
    let bounced = done.iter().filter(|(_, a)| a.bounced).count();
    let suppressed = done.iter().filter(|(_, a)| a.suppressed).count();
    format!(
        "{} unverified report(s) applied; {bounced} bounced, {suppressed} suppressed",
        done.len()
    )
}
