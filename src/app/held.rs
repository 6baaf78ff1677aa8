//! The reports held because they do not prove they concern Herald's mail (issue #21 §1): listed
//! with their evidence and an id (`42:hard`: the recipient and the kind, of which a recipient
//! holds at most one), applied or dismissed only when the user names them. `herald bounces
//! --apply ID,…` and `--dismiss ID,…` take the ids `herald bounces` listed; the
//! window's review list (Suppression view) applies or dismisses one at a time, or all those it
//! shows. Never "every held report": one held after the user last looked was never seen, and
//! anyone can write one. Both front ends call these functions, so "apply" means the same thing
//! in each.

use std::fmt;
use std::str::FromStr;

use super::error::AppError;
use crate::campaign::Campaign;
use crate::store::{Applied, FeedbackKind, HeldRow, RecipientId, Store};

/// One held report as the user names it: `RECIPIENT:KIND`, e.g. `42:hard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeldId {
    pub recipient: RecipientId,
    pub kind: FeedbackKind,
}

impl HeldId {
    pub fn of(row: &HeldRow) -> HeldId {
        HeldId {
            recipient: row.recipient,
            kind: row.kind,
        }
    }
}

impl fmt::Display for HeldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.recipient, self.kind.as_str())
    }
}

impl FromStr for HeldId {
    type Err = String;

    fn from_str(text: &str) -> Result<HeldId, String> {
        let text = text.trim();
        let bad = || {
            format!(
                "\"{text}\" is not a report id: use the ids `herald bounces` lists, like 42:hard"
            )
        };
        let (recipient, kind) = text.split_once(':').ok_or_else(bad)?;
        Ok(HeldId {
            recipient: recipient.parse().map_err(|_| bad())?,
            kind: FeedbackKind::parse(kind).ok_or_else(bad)?,
        })
    }
}

/// Which held reports an action takes: always ones the user was shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// These, by id (the CLI's list, or every row the window shows).
    These(Vec<HeldId>),
    /// One report: its recipient and kind.
    One(RecipientId, FeedbackKind),
}

impl Which {
    fn ids(&self) -> Vec<HeldId> {
        match self {
            Which::These(ids) => ids.clone(),
            Which::One(recipient, kind) => vec![HeldId {
                recipient: *recipient,
                kind: *kind,
            }],
        }
    }
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

/// Applies the held reports `which` names as if verified; what each did. Refused whole, with
/// nothing applied, when one of them is not held (applied or dismissed since it was listed, or
/// mistyped).
pub fn apply(
    store: &mut Store,
    which: Which,
    soft_limit: u32,
) -> Result<Vec<(HeldRow, Applied)>, AppError> {
    let ids = which.ids();
    all_held(store, &ids)?;
    apply_these(store, &ids, soft_limit)
}

fn apply_these(
    store: &mut Store,
    ids: &[HeldId],
    soft_limit: u32,
) -> Result<Vec<(HeldRow, Applied)>, AppError> {
    let selection: Vec<_> = ids.iter().map(|id| (id.recipient, id.kind)).collect();
    Ok(store.apply_held(&selection, soft_limit)?)
}

/// Forgets one held report unapplied; whether it was there.
pub fn dismiss(
    store: &mut Store,
    recipient: RecipientId,
    kind: FeedbackKind,
) -> Result<bool, AppError> {
    Ok(store.dismiss_held(recipient, kind)?)
}

/// Forgets the held reports `ids` names unapplied; how many. Refused whole, as [`apply`] is,
/// when one of them is not held.
pub fn dismiss_these(store: &mut Store, ids: &[HeldId]) -> Result<usize, AppError> {
    all_held(store, ids)?;
    let mut gone = 0;
    for id in ids {
        gone += usize::from(store.dismiss_held(id.recipient, id.kind)?);
    }
    Ok(gone)
}

/// Dismisses the held reports `dismiss` names and applies those `apply` names, as the user
/// said in one command: refused whole, with nothing changed, when one of them is not held or
/// one is named both ways.
pub fn settle(
    store: &mut Store,
    apply: &[HeldId],
    dismiss: &[HeldId],
    soft_limit: u32,
) -> Result<(Vec<(HeldRow, Applied)>, usize), AppError> {
    if let Some(both) = apply.iter().find(|id| dismiss.contains(id)) {
        return Err(AppError::other(format!(
            "the report {both} is named both to apply and to dismiss: nothing was changed"
        )));
    }
    let all: Vec<HeldId> = apply.iter().chain(dismiss).copied().collect();
    all_held(store, &all)?;
    let gone = dismiss_these(store, dismiss)?;
    let done = if apply.is_empty() {
        Vec::new()
    } else {
        apply_these(store, apply, soft_limit)?
    };
    Ok((done, gone))
}

/// Fails with a sentence naming the ids in `ids` that are not held.
fn all_held(store: &Store, ids: &[HeldId]) -> Result<(), AppError> {
    let held: Vec<HeldId> = store.held_feedback()?.iter().map(HeldId::of).collect();
    let missing: Vec<String> = ids
        .iter()
        .filter(|id| !held.contains(id))
        .map(ToString::to_string)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(AppError::other(format!(
        "no unverified report {} is held (applied or dismissed since it was listed, or \
         mistyped): nothing was changed; list the held reports again",
        missing.join(", ")
    )))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back_as_written_and_nothing_else_is_one() {
        let id = HeldId {
            recipient: 42,
            kind: FeedbackKind::Complaint,
        };
        assert_eq!(id.to_string(), "42:complaint");
        assert_eq!(" 42:complaint ".parse::<HeldId>(), Ok(id));
        for text in [
            "",
            "42",
            "42:",
            ":hard",
            "x:hard",
            "42:bounce",
            "42:hard:1",
            "alice",
        ] {
            assert!(text.parse::<HeldId>().is_err(), "{text:?}");
        }
    }
}
