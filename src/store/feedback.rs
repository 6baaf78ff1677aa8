//! What came back from the bounce mailbox, applied (issue #13): one `feedback` row per recipient
//! and kind (hard, soft, blocked, delayed, complaint, unsubscribe), so applying the same report
//! twice changes nothing; the `bounced` transition (from `sent` or `uncertain` only); the global
//! suppression entries that follow; and the mailbox cursor (UIDVALIDITY, the last UID handled,
//! and the UIDs whose flags are still to be set), written in the same transaction as the batch
//! it covers. Also the lookups that matching needs. SQL only: classification and matching are
//! decided by `inbox`.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Transaction, params};

use super::{CampaignId, RecipientId, State, Store, StoreError, SuppressionReason, now_ms};

/// How one report counts for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedbackKind {
    /// The address is dead: the recipient becomes `bounced` and the address is suppressed.
    Hard,
    /// Counted toward `soft_limit`.
    Soft,
    /// The sender's problem (policy, authentication, block lists): recorded, never suppresses.
    Blocked,
    /// RFC 3464 `Action: delayed`: an event, not a bounce.
    Delayed,
    Complaint,
    Unsubscribe,
}

impl FeedbackKind {
    pub fn parse(text: &str) -> Option<FeedbackKind> {
        [
            FeedbackKind::Hard,
            FeedbackKind::Soft,
            FeedbackKind::Blocked,
            FeedbackKind::Delayed,
            FeedbackKind::Complaint,
            FeedbackKind::Unsubscribe,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Hard => "hard",
            FeedbackKind::Soft => "soft",
            FeedbackKind::Blocked => "blocked",
            FeedbackKind::Delayed => "delayed",
            FeedbackKind::Complaint => "complaint",
            FeedbackKind::Unsubscribe => "unsubscribe",
        }
    }

    fn label(self) -> &'static str {
        match self {
            FeedbackKind::Hard => "hard bounce",
            FeedbackKind::Soft => "soft bounce",
            FeedbackKind::Blocked => "blocked",
            FeedbackKind::Delayed => "delayed",
            FeedbackKind::Complaint => "complaint",
            FeedbackKind::Unsubscribe => "unsubscribe by mail",
        }
    }
}

/// One report applied to one matched recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    pub recipient: RecipientId,
    pub kind: FeedbackKind,
    /// RFC 3463 enhanced status code.
    pub status: Option<String>,
    pub smtp_code: Option<u16>,
    /// What the report said, bounded by the caller.
    pub diagnostic: String,
}

/// What applying one feedback did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// False when this recipient already had feedback of this kind (a report read twice).
    pub new: bool,
    /// The recipient went from `sent`/`uncertain` to `bounced`.
    pub bounced: bool,
    /// The address was added to the global suppression list.
    pub suppressed: bool,
}

/// A report that did not prove it concerns Herald's mail (issue #21), held for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub feedback: Feedback,
    /// Why it is not verified and what named the recipient, in words.
    pub evidence: String,
}

/// A held report as `herald bounces` and the window show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRow {
    pub recipient: RecipientId,
    pub email: String,
    pub campaign: CampaignId,
    pub campaign_name: String,
    pub kind: FeedbackKind,
    pub status: Option<String>,
    pub diagnostic: String,
    pub evidence: String,
    pub at_ms: i64,
}

/// A recipient that was mailed, as matching sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailed {
    pub id: RecipientId,
    pub campaign: CampaignId,
    /// The campaign file's key (its canonical path): Message-IDs carry a hash of it.
    pub campaign_key: String,
    /// The address key (lower-case).
    pub address: String,
    pub state: State,
}

/// Where reading a mailbox folder stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxCursor {
    /// RFC 3501 §2.3.1.1: UIDs mean something only within one UIDVALIDITY.
    pub uid_validity: u32,
    /// Every message with a UID up to this one has been read and applied.
    pub last_uid: u32,
    /// UIDs applied whose \Seen flag or move to the processed folder may not have happened yet
    /// (the process may have died between the commit and the IMAP commands).
    pub unfinished: Vec<u32>,
}

/// Campaign totals of what came back, for `status` and the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedbackCounts {
    /// Addresses this campaign's mail got suppressed for complaints.
    pub complained: u64,
    /// Addresses this campaign's mail got suppressed for unsubscribes (by mail or link).
    pub unsubscribed: u64,
    pub soft: u64,
    pub blocked: u64,
    /// Reports about this campaign's recipients that prove nothing (issue #21), waiting for
    /// the user to apply them.
    pub unverified: u64,
}

/// States in which a recipient's message left Herald (a report can be about it).
const MAILED_STATES: &str = "('sent', 'uncertain', 'bounced')";

fn mailed_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Mailed> {
    Ok(Mailed {
        id: row.get(0)?,
        campaign: row.get(1)?,
        address: row.get(2)?,
        state: State::parse(&row.get::<_, String>(3)?).unwrap_or(State::Pending),
        campaign_key: row.get(4)?,
    })
}

const MAILED_COLUMNS: &str = "r.id, r.campaign_id, coalesce(r.email_key, r.email), r.state,
    (SELECT file_key FROM campaign c WHERE c.id = r.campaign_id)";

impl Store {
    /// The recipient with this id, if its message was sent.
    pub fn mailed(&self, id: RecipientId) -> Result<Option<Mailed>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {MAILED_COLUMNS} FROM recipient r WHERE r.id = ?1
                   AND r.state IN {MAILED_STATES}"
            ))?
            .query_row([id], mailed_of)
            .optional()?)
    }

    /// For each address key, the latest recipient (any campaign) it was mailed as. One pass
    /// over the recipients for the whole batch: the table has no index on addresses (an index
    /// would cost every import), so callers ask for all their addresses at once.
    pub fn latest_mailed(&self, keys: &[String]) -> Result<HashMap<String, Mailed>, StoreError> {
        let mut found: HashMap<String, Mailed> = HashMap::new();
        for chunk in keys.chunks(500) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let mut statement = self.conn.prepare(&format!(
                "SELECT {MAILED_COLUMNS} FROM recipient r
                 WHERE coalesce(r.email_key, r.email) IN ({placeholders})
                   AND r.state IN {MAILED_STATES} ORDER BY r.id DESC"
            ))?;
            let rows = statement.query_map(rusqlite::params_from_iter(chunk), mailed_of)?;
            for row in rows {
                let mailed = row?;
                found.entry(mailed.address.clone()).or_insert(mailed);
            }
        }
        Ok(found)
    }

    /// The cursor of a mailbox folder (`mailbox` names account, server and folder).
    pub fn mailbox_cursor(&self, mailbox: &str) -> Result<Option<MailboxCursor>, StoreError> {
        let row: Option<(i64, i64, String)> = self
            .conn
            .query_row(
                "SELECT uid_validity, last_uid, unfinished FROM mailbox_cursor WHERE mailbox = ?1",
                [mailbox],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        Ok(row.map(|(validity, last, unfinished)| MailboxCursor {
            uid_validity: validity as u32,
            last_uid: last as u32,
            unfinished: unfinished
                .split(',')
                .filter_map(|uid| uid.parse().ok())
                .collect(),
        }))
    }

    /// Records the cursor alone (a new UIDVALIDITY, or flags finished).
    pub fn set_mailbox_cursor(
        &mut self,
        mailbox: &str,
        cursor: &MailboxCursor,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        write_cursor(&tx, mailbox, cursor)?;
        tx.commit()?;
        Ok(())
    }

    /// Applies one batch of feedback, holds its unverified reports, and moves the mailbox
    /// cursor, in one transaction: killed before the commit, nothing of the batch happened and
    /// the next run reads it again; after it, the batch is done and never counted twice.
    /// Returns what each item did and how many held reports are new.
    pub fn apply_feedback(
        &mut self,
        mailbox: &str,
        cursor: &MailboxCursor,
        items: &[Feedback],
        held: &[Held],
        soft_limit: u32,
    ) -> Result<(Vec<Applied>, u64), StoreError> {
        let tx = self.conn.transaction()?;
        let now = now_ms();
        let mut applied = Vec::with_capacity(items.len());
        for item in items {
            applied.push(apply_one(&tx, item, soft_limit, now)?);
        }
        let mut new_held = 0;
        for item in held {
            new_held += hold_one(&tx, item, now)?;
        }
        write_cursor(&tx, mailbox, cursor)?;
        tx.commit()?;
        Ok((applied, new_held))
    }

    /// The reports held for the user (issue #21), oldest first.
    pub fn held_feedback(&self) -> Result<Vec<HeldRow>, StoreError> {
        let mut statement = self.conn.prepare(
            "SELECT h.recipient_id, r.email, r.campaign_id, c.name, h.kind, h.status,
                    h.diagnostic, h.evidence, h.at
             FROM held_feedback h JOIN recipient r ON r.id = h.recipient_id
             JOIN campaign c ON c.id = r.campaign_id
             ORDER BY h.at, h.recipient_id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(HeldRow {
                recipient: row.get(0)?,
                email: row.get(1)?,
                campaign: row.get(2)?,
                campaign_name: row.get(3)?,
                kind: FeedbackKind::parse(&row.get::<_, String>(4)?).unwrap_or(FeedbackKind::Soft),
                status: row.get(5)?,
                diagnostic: row.get(6)?,
                evidence: row.get(7)?,
                at_ms: row.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Applies the held reports `which` names (by recipient and kind; never one it does not
    /// name) as if they had been verified, because the user said so, and forgets them, in one
    /// transaction. Returns what each did.
    pub fn apply_held(
        &mut self,
        which: &[(RecipientId, FeedbackKind)],
        soft_limit: u32,
    ) -> Result<Vec<(HeldRow, Applied)>, StoreError> {
        let rows: Vec<HeldRow> = self
            .held_feedback()?
            .into_iter()
            .filter(|row| which.contains(&(row.recipient, row.kind)))
            .collect();
        let tx = self.conn.transaction()?;
        let now = now_ms();
        let mut done = Vec::with_capacity(rows.len());
        for row in rows {
            let item = Feedback {
                recipient: row.recipient,
                kind: row.kind,
                status: row.status.clone(),
                smtp_code: tx
                    .prepare_cached(
                        "SELECT smtp_code FROM held_feedback WHERE recipient_id = ?1 AND kind = ?2",
                    )?
                    .query_row(params![row.recipient, row.kind.as_str()], |r| r.get(0))
                    .optional()?
                    .flatten(),
                diagnostic: format!("{} (unverified; applied by the user)", row.diagnostic),
            };
            let applied = apply_one(&tx, &item, soft_limit, now)?;
            tx.prepare_cached("DELETE FROM held_feedback WHERE recipient_id = ?1 AND kind = ?2")?
                .execute(params![row.recipient, row.kind.as_str()])?;
            done.push((row, applied));
        }
        tx.commit()?;
        Ok(done)
    }

    /// Forgets one held report without applying it (the user judged it false); whether there
    /// was one.
    pub fn dismiss_held(
        &mut self,
        recipient: RecipientId,
        kind: FeedbackKind,
    ) -> Result<bool, StoreError> {
        let gone = self.conn.execute(
            "DELETE FROM held_feedback WHERE recipient_id = ?1 AND kind = ?2",
            params![recipient, kind.as_str()],
        )?;
        Ok(gone > 0)
    }

    /// What came back for a campaign.
    pub fn feedback_counts(&self, campaign: CampaignId) -> Result<FeedbackCounts, StoreError> {
        let mut counts = FeedbackCounts::default();
        let mut by_reason = self.conn.prepare_cached(
            "SELECT reason, count(*) FROM global_suppression WHERE campaign_id = ?1 GROUP BY reason",
        )?;
        for row in by_reason.query_map([campaign], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })? {
            let (reason, n) = row?;
            match SuppressionReason::parse(&reason) {
                Some(SuppressionReason::Complained) => counts.complained = n as u64,
                Some(SuppressionReason::Unsubscribed) => counts.unsubscribed = n as u64,
                _ => {}
            }
        }
        let mut by_kind = self.conn.prepare_cached(
            "SELECT f.kind, count(*) FROM feedback f JOIN recipient r ON r.id = f.recipient_id
             WHERE r.campaign_id = ?1 GROUP BY f.kind",
        )?;
        for row in by_kind.query_map([campaign], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })? {
            let (kind, n) = row?;
            match kind.as_str() {
                "soft" => counts.soft = n as u64,
                "blocked" => counts.blocked = n as u64,
                _ => {}
            }
        }
        counts.unverified = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM held_feedback h JOIN recipient r ON r.id = h.recipient_id
                 WHERE r.campaign_id = ?1",
            )?
            .query_row([campaign], |row| row.get::<_, i64>(0))? as u64;
        Ok(counts)
    }
}

fn write_cursor(
    tx: &Transaction<'_>,
    mailbox: &str,
    cursor: &MailboxCursor,
) -> Result<(), StoreError> {
    let unfinished = cursor
        .unfinished
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    tx.prepare_cached(
        "INSERT INTO mailbox_cursor (mailbox, uid_validity, last_uid, unfinished)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (mailbox) DO UPDATE SET uid_validity = excluded.uid_validity,
             last_uid = excluded.last_uid, unfinished = excluded.unfinished",
    )?
    .execute(params![
        mailbox,
        cursor.uid_validity,
        cursor.last_uid,
        unfinished
    ])?;
    Ok(())
}

/// Holds one unverified report; 1 when it is new (not held before, and the recipient has no
/// feedback of that kind already).
fn hold_one(tx: &Transaction<'_>, item: &Held, now: i64) -> Result<u64, StoreError> {
    let feedback = &item.feedback;
    let added = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO held_feedback (recipient_id, kind, at, status, smtp_code,
                 diagnostic, evidence)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
             WHERE NOT EXISTS (SELECT 1 FROM feedback WHERE recipient_id = ?1 AND kind = ?2)",
        )?
        .execute(params![
            feedback.recipient,
            feedback.kind.as_str(),
            now,
            feedback.status,
            feedback.smtp_code,
            feedback.diagnostic,
            item.evidence
        ])?;
    Ok(added as u64)
}

// Long because one report's effects are one transaction's steps in order: the feedback row,
// the held report it settles, the bounce (only from `sent`/`uncertain`), the event, and the
// suppression its kind calls for; each step needs what the one before found.
fn apply_one(
    tx: &Transaction<'_>,
    item: &Feedback,
    soft_limit: u32,
    now: i64,
) -> Result<Applied, StoreError> {
    let Some((campaign, key, state, attempts)) = tx
        .prepare_cached(
            "SELECT campaign_id, coalesce(email_key, email), state, attempts FROM recipient
             WHERE id = ?1",
        )?
        .query_row([item.recipient], |row| {
            Ok((
                row.get::<_, CampaignId>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, u32>(3)?,
            ))
        })
        .optional()?
    else {
        return Ok(Applied::default());
    };
    let mut applied = Applied {
        new: tx
            .prepare_cached(
                "INSERT OR IGNORE INTO feedback (recipient_id, kind, at, status, diagnostic)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                item.recipient,
                item.kind.as_str(),
                now,
                item.status,
                item.diagnostic
            ])?
            > 0,
        ..Applied::default()
    };
    if !applied.new {
        return Ok(applied);
    }
    // A verified report settles what an unverified one only suggested.
    tx.prepare_cached("DELETE FROM held_feedback WHERE recipient_id = ?1 AND kind = ?2")?
        .execute(params![item.recipient, item.kind.as_str()])?;
    let text = match &item.status {
        Some(status) => format!("{}: {status} {}", item.kind.label(), item.diagnostic),
        None => format!("{}: {}", item.kind.label(), item.diagnostic),
    };
    let text = text.trim().to_string();
    let mut event_state = state;
    if item.kind == FeedbackKind::Hard {
        // The design's state machine: only a message that left can bounce.
        applied.bounced =
            tx.prepare_cached(
                "UPDATE recipient SET state = 'bounced', reply_code = ?2, reply_enhanced = ?3,
                     reply_text = ?4, updated_at = ?5
                 WHERE id = ?1 AND state IN ('sent', 'uncertain')",
            )?
            .execute(params![
                item.recipient,
                item.smtp_code,
                item.status,
                text,
                now
            ])? > 0;
        if applied.bounced {
            event_state = State::Bounced.as_str().to_string();
        }
    }
    tx.prepare_cached(
        "INSERT INTO event (recipient_id, at, state, attempt, route, reply_code, reply_enhanced,
             reply_text)
         VALUES (?1, ?2, ?3, ?4, 'bounce mailbox', ?5, ?6, ?7)",
    )?
    .execute(params![
        item.recipient,
        now,
        event_state,
        attempts,
        item.smtp_code,
        item.status,
        text
    ])?;
    let reason = match item.kind {
        FeedbackKind::Hard => Some(SuppressionReason::Bounced),
        FeedbackKind::Complaint => Some(SuppressionReason::Complained),
        FeedbackKind::Unsubscribe => Some(SuppressionReason::Unsubscribed),
        FeedbackKind::Soft if soft_run(tx, &key, item.recipient)? >= soft_limit => {
            Some(SuppressionReason::SoftBounces)
        }
        FeedbackKind::Soft | FeedbackKind::Blocked | FeedbackKind::Delayed => None,
    };
    if let Some(reason) = reason {
        applied.suppressed = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO global_suppression (address, reason, at, campaign_id,
                     evidence) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![key, reason.as_str(), now, campaign, text])?
            > 0;
    }
    Ok(applied)
}

/// How long the unbroken run of soft-bounced mailings that holds `recipient`'s is: a mailing
/// without a soft bounce is a delivery in between and breaks the run. Mailings after the
/// reported one count too, so bounces read out of order (a later campaign's first) still add
/// up; one whose bounce has not come yet only ends the run on its own side.
fn soft_run(tx: &Transaction<'_>, key: &str, recipient: RecipientId) -> Result<u32, StoreError> {
    let mut statement = tx.prepare_cached(&format!(
        "SELECT r.id, EXISTS (SELECT 1 FROM feedback f WHERE f.recipient_id = r.id AND f.kind = 'soft')
         FROM recipient r
         WHERE coalesce(r.email_key, r.email) = ?1 AND r.state IN {MAILED_STATES}
         ORDER BY r.id DESC"
    ))?;
    let mut rows = statement.query(params![key])?;
    let mut run = 0;
    let mut passed = false;
    while let Some(row) = rows.next()? {
        let (id, soft): (RecipientId, bool) = (row.get(0)?, row.get(1)?);
        if soft {
            run += 1;
        } else if passed {
            break;
        } else {
            // A delivery after the reported mailing: the run that holds it starts below.
            run = 0;
        }
        passed |= id <= recipient;
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ImportRow, Transition};

    fn mailed_campaign(store: &mut Store, file: &str, emails: &[&str]) -> Vec<RecipientId> {
        let c = store.campaign(file, file).unwrap();
        let mut importer = store.importer(c, &[]).unwrap();
        for (line, email) in emails.iter().enumerate() {
            let row = ImportRow::new(
                line as u64 + 2,
                email.to_string(),
                email.to_string(),
                [""; 0],
                None,
            );
            assert!(importer.push(row).unwrap());
        }
        importer.finish().unwrap();
        let claimed = store.claim(c, i64::MAX, 100).unwrap();
        let sent: Vec<Transition> = claimed
            .iter()
            .map(|row| Transition {
                id: row.id,
                to: State::Sent,
                attempts: 1,
                next_attempt_at_ms: 0,
                route: None,
                reply: None,
                dead_address: false,
            })
            .collect();
        store.apply(&sent).unwrap();
        claimed.iter().map(|row| row.id).collect()
    }

    fn feedback(recipient: RecipientId, kind: FeedbackKind) -> Feedback {
        Feedback {
            recipient,
            kind,
            status: Some("5.1.1".into()),
            smtp_code: Some(550),
            diagnostic: "user unknown".into(),
        }
    }

    #[test]
    fn a_hard_bounce_bounces_and_suppresses_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("h.db")).unwrap();
        let ids = mailed_campaign(
            &mut store,
            "/a.toml",
            &["ada@example.org", "bob@example.org"],
        );
        let cursor = MailboxCursor {
            uid_validity: 7,
            last_uid: 3,
            unfinished: vec![2, 3],
        };
        let first = store
            .apply_feedback(
                "box",
                &cursor,
                &[feedback(ids[0], FeedbackKind::Hard)],
                &[],
                3,
            )
            .unwrap()
            .0;
        assert_eq!(
            first,
            [Applied {
                new: true,
                bounced: true,
                suppressed: true
            }]
        );
        let again = store
            .apply_feedback(
                "box",
                &cursor,
                &[feedback(ids[0], FeedbackKind::Hard)],
                &[],
                3,
            )
            .unwrap()
            .0;
        assert_eq!(again, [Applied::default()]);
        let c = store.find_campaign("/a.toml").unwrap().unwrap();
        let counts = store.counts(c).unwrap();
        assert_eq!((counts.bounced, counts.sent), (1, 1));
        let entry = store
            .global_suppression("ada@example.org")
            .unwrap()
            .unwrap();
        assert_eq!(entry.reason, SuppressionReason::Bounced);
        assert_eq!(entry.evidence, "hard bounce: 5.1.1 user unknown");
        assert_eq!(store.mailbox_cursor("box").unwrap(), Some(cursor));
        let history = store.history(ids[0]).unwrap();
        assert_eq!(
            history.last().map(|entry| entry.state),
            Some(State::Bounced)
        );
        assert_eq!(store.mailed(ids[0]).unwrap().unwrap().state, State::Bounced);
        let latest = store.latest_mailed(&["bob@example.org".into()]).unwrap();
        assert_eq!(latest["bob@example.org"].id, ids[1]);
    }

    #[test]
    fn soft_bounces_suppress_after_the_limit_without_a_delivery_between() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let cursor = MailboxCursor::default();
        let soft = |store: &mut Store, id| {
            store
                .apply_feedback("box", &cursor, &[feedback(id, FeedbackKind::Soft)], &[], 2)
                .unwrap()
                .0[0]
        };
        let a = mailed_campaign(&mut store, "/1.toml", &["x@example.org"])[0];
        assert!(!soft(&mut store, a).suppressed);
        // Mailed again without a bounce: a delivery in between.
        let _ = mailed_campaign(&mut store, "/2.toml", &["x@example.org"]);
        let c = mailed_campaign(&mut store, "/3.toml", &["x@example.org"])[0];
        assert!(!soft(&mut store, c).suppressed);
        let d = mailed_campaign(&mut store, "/4.toml", &["x@example.org"])[0];
        assert!(soft(&mut store, d).suppressed);
        let entry = store.global_suppression("x@example.org").unwrap().unwrap();
        assert_eq!(entry.reason, SuppressionReason::SoftBounces);
        // Read out of order: the later mailing's bounce first, then the earlier one's.
        let early = mailed_campaign(&mut store, "/6.toml", &["z@example.org"])[0];
        let late = mailed_campaign(&mut store, "/7.toml", &["z@example.org"])[0];
        assert!(!soft(&mut store, late).suppressed);
        assert!(soft(&mut store, early).suppressed);
        // A bounce that comes after the next mailing went out still adds up: the next mailing
        // is not between the two bounced ones.
        let m1 = mailed_campaign(&mut store, "/8.toml", &["w@example.org"])[0];
        let m2 = mailed_campaign(&mut store, "/9.toml", &["w@example.org"])[0];
        let _m3 = mailed_campaign(&mut store, "/10.toml", &["w@example.org"]);
        assert!(!soft(&mut store, m1).suppressed);
        assert!(soft(&mut store, m2).suppressed);
        // Blocked never suppresses.
        let e = mailed_campaign(&mut store, "/5.toml", &["y@example.org"])[0];
        let blocked = store
            .apply_feedback(
                "box",
                &cursor,
                &[feedback(e, FeedbackKind::Blocked)],
                &[],
                1,
            )
            .unwrap()
            .0[0];
        assert!(blocked.new && !blocked.suppressed);
        assert_eq!(store.global_suppression("y@example.org").unwrap(), None);
        let five = store.find_campaign("/5.toml").unwrap().unwrap();
        assert_eq!(store.feedback_counts(five).unwrap().blocked, 1);
    }
}
