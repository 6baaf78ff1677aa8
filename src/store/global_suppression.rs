//! The suppression list every campaign honors (issues #13, #15): addresses that bounced hard,
//! complained, unsubscribed, soft-bounced too often, or were added by hand. One row per address
//! key, with the reason, when, the campaign it came from and the evidence (a status code and
//! diagnostic text, or where an unsubscribe was recorded). Import and claim consult it beside
//! the per-campaign list of `suppression.rs`. Also the database's secrets, which key the MACs of
//! return-path tags and unsubscribe tokens. SQL only; callers hand in normalized address keys.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::{CampaignId, Claimed, SUPPRESSED, Store, StoreError, now_ms};

/// Why an address is on the global suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SuppressionReason {
    /// A hard bounce: no such user, no such domain, mailbox disabled.
    Bounced,
    /// A feedback-loop complaint (the recipient pressed "spam").
    Complained,
    /// The recipient asked to leave (List-Unsubscribe mailto or one-click URL).
    Unsubscribed,
    /// `soft_limit` soft bounces with no delivery in between.
    SoftBounces,
    /// Added by the user.
    Manual,
}

impl SuppressionReason {
    pub const ALL: [SuppressionReason; 5] = [
        SuppressionReason::Bounced,
        SuppressionReason::Complained,
        SuppressionReason::Unsubscribed,
        SuppressionReason::SoftBounces,
        SuppressionReason::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Bounced => "bounced",
            SuppressionReason::Complained => "complained",
            SuppressionReason::Unsubscribed => "unsubscribed",
            SuppressionReason::SoftBounces => "soft_bounces",
            SuppressionReason::Manual => "manual",
        }
    }

    pub fn parse(text: &str) -> Option<SuppressionReason> {
        SuppressionReason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == text)
    }
}

/// One entry of the global suppression list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    /// The address key: lower-case local part, lower-case ASCII domain.
    pub address: String,
    pub reason: SuppressionReason,
    pub at_ms: i64,
    /// The campaign whose mail brought it back, if any.
    pub campaign: Option<CampaignId>,
    /// What proves it: "5.1.1 user unknown", "unsubscribe via https://u.acme.example", ….
    pub evidence: String,
}

fn suppression_of(row: &Row<'_>) -> rusqlite::Result<Suppression> {
    let reason: String = row.get(1)?;
    Ok(Suppression {
        address: row.get(0)?,
        // A reason this build does not know (written by a newer Herald) still suppresses.
        reason: SuppressionReason::parse(&reason).unwrap_or(SuppressionReason::Manual),
        at_ms: row.get(2)?,
        campaign: row.get(3)?,
        evidence: row.get(4)?,
    })
}

impl Store {
    /// Puts `entry` on the global list. An address already there keeps its first entry (the
    /// earliest evidence). Returns whether it was added.
    pub fn suppress(&mut self, entry: &Suppression) -> Result<bool, StoreError> {
        let added = self.conn.execute(
            "INSERT OR IGNORE INTO global_suppression (address, reason, at, campaign_id, evidence)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                entry.address,
                entry.reason.as_str(),
                entry.at_ms,
                entry.campaign,
                entry.evidence
            ],
        )?;
        Ok(added > 0)
    }

    /// Takes `address` off the global list. Returns whether it was there. Recipients already
    /// skipped for it stay skipped: a resend decides about them.
    pub fn unsuppress(&mut self, address: &str) -> Result<bool, StoreError> {
        let removed = self.conn.execute(
            "DELETE FROM global_suppression WHERE address = ?1",
            [address],
        )?;
        Ok(removed > 0)
    }

    /// The global list's entry for `address`, if any.
    pub fn global_suppression(&self, address: &str) -> Result<Option<Suppression>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT address, reason, at, campaign_id, evidence FROM global_suppression
                 WHERE address = ?1",
                [address],
                suppression_of,
            )
            .optional()?)
    }

    /// The whole global list, newest first.
    pub fn suppressions(&self) -> Result<Vec<Suppression>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT address, reason, at, campaign_id, evidence FROM global_suppression
             ORDER BY at DESC, address",
        )?;
        let rows = statement.query_map([], suppression_of)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The database's secret called `name`: 32 random bytes made on first use (SQLite's
    /// `randomblob` draws from the operating system's randomness through its VFS).
    pub fn secret(&mut self, name: &str) -> Result<[u8; 32], StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO secret (name, value) VALUES (?1, randomblob(32))",
            [name],
        )?;
        let value: Vec<u8> =
            self.conn
                .query_row("SELECT value FROM secret WHERE name = ?1", [name], |row| {
                    row.get(0)
                })?;
        let mut secret = [0u8; 32];
        // A value of another length was not written by this code; refuse to use it as a key.
        if value.len() != secret.len() {
            return Err(StoreError::NotADatabase {
                path: self.path.clone(),
            });
        }
        secret.copy_from_slice(&value);
        Ok(secret)
    }
}

/// Whether the global list holds anything (most databases before the first bounce: the claim
/// then pays one query for it).
fn any_entries(tx: &Transaction<'_>) -> Result<bool, StoreError> {
    Ok(tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM global_suppression)")?
        .query_row([], |row| row.get(0))?)
}

/// Marks the campaign's pending and deferred recipients on the global list as skipped, each
/// with its reason. Returns how many.
pub(super) fn skip_suppressed(
    conn: &mut Connection,
    campaign: CampaignId,
) -> Result<u64, StoreError> {
    let tx = conn.transaction()?;
    if !any_entries(&tx)? {
        return Ok(0);
    }
    let now = now_ms();
    let matching = "FROM recipient r JOIN global_suppression g
            ON g.address = coalesce(r.email_key, r.email)
         WHERE r.campaign_id = ?1 AND r.state IN ('pending', 'deferred')";
    tx.execute(
        &format!(
            "INSERT INTO event (recipient_id, at, state, attempt, reply_text)
             SELECT r.id, ?2, 'skipped', r.attempts, '{SUPPRESSED}: ' || g.reason {matching}"
        ),
        params![campaign, now],
    )?;
    let changed = tx.execute(
        &format!(
            "UPDATE recipient SET state = 'skipped', updated_at = ?2,
                skip_reason = (SELECT '{SUPPRESSED}: ' || g.reason FROM global_suppression g
                               WHERE g.address = coalesce(recipient.email_key, recipient.email))
             WHERE id IN (SELECT r.id {matching})"
        ),
        params![campaign, now],
    )?;
    tx.commit()?;
    Ok(changed as u64)
}

/// Inside a claim: takes the globally suppressed rows out of `claimed` and marks them skipped
/// with their reason, so an address suppressed by another campaign's bounce or an unsubscribe
/// pulled a minute ago is never sent.
pub(super) fn drop_suppressed(
    tx: &Transaction<'_>,
    claimed: &mut Vec<Claimed>,
    now: i64,
) -> Result<(), StoreError> {
    if claimed.is_empty() || !any_entries(tx)? {
        return Ok(());
    }
    let mut reason_of = tx.prepare_cached(
        "SELECT g.reason FROM recipient r JOIN global_suppression g
            ON g.address = coalesce(r.email_key, r.email)
         WHERE r.id = ?1",
    )?;
    let mut skip = tx.prepare_cached(
        "UPDATE recipient SET state = 'skipped', skip_reason = ?3, updated_at = ?2 WHERE id = ?1",
    )?;
    let mut log = tx.prepare_cached(
        "INSERT INTO event (recipient_id, at, state, attempt, reply_text)
         VALUES (?1, ?2, 'skipped', ?3, ?4)",
    )?;
    let mut kept = Vec::with_capacity(claimed.len());
    for row in claimed.drain(..) {
        let reason: Option<String> = reason_of.query_row([row.id], |r| r.get(0)).optional()?;
        match reason {
            Some(reason) => {
                let text = format!("{SUPPRESSED}: {reason}");
                skip.execute(params![row.id, now, text])?;
                log.execute(params![row.id, now, row.attempts, text])?;
            }
            None => kept.push(row),
        }
    }
    *claimed = kept;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(address: &str, reason: SuppressionReason, at_ms: i64) -> Suppression {
        Suppression {
            address: address.into(),
            reason,
            at_ms,
            campaign: None,
            evidence: "5.1.1 user unknown".into(),
        }
    }

    #[test]
    fn an_address_keeps_its_first_entry_and_can_be_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("herald.db")).unwrap();
        assert!(
            store
                .suppress(&entry("ada@example.org", SuppressionReason::Bounced, 10))
                .unwrap()
        );
        assert!(
            !store
                .suppress(&entry("ada@example.org", SuppressionReason::Manual, 20))
                .unwrap()
        );
        assert!(
            store
                .suppress(&entry(
                    "bob@example.org",
                    SuppressionReason::Unsubscribed,
                    30
                ))
                .unwrap()
        );
        let all = store.suppressions().unwrap();
        let listed: Vec<(&str, SuppressionReason)> = all
            .iter()
            .map(|entry| (entry.address.as_str(), entry.reason))
            .collect();
        assert_eq!(
            listed,
            [
                ("bob@example.org", SuppressionReason::Unsubscribed),
                ("ada@example.org", SuppressionReason::Bounced)
            ]
        );
        assert!(store.unsuppress("ada@example.org").unwrap());
        assert!(!store.unsuppress("ada@example.org").unwrap());
        assert_eq!(store.global_suppression("ada@example.org").unwrap(), None);
    }

    #[test]
    fn a_secret_is_made_once_and_differs_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.db");
        let first = Store::open(&path).unwrap().secret("verp").unwrap();
        let again = Store::open(&path).unwrap().secret("verp").unwrap();
        let other = Store::open(&path).unwrap().secret("unsubscribe").unwrap();
        assert_eq!(first, again);
        assert_ne!(first, other);
        assert_ne!(first, [0u8; 32]);
    }
    #[test]
    fn claim_and_refresh_skip_globally_suppressed_addresses_with_their_reason() {
        use crate::store::{ImportRow, State};
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("herald.db")).unwrap();
        let c = store.campaign("/b.toml", "b").unwrap();
        let mut importer = store.importer(c, &[]).unwrap();
        for (line, email) in ["ada@example.org", "Bob@Example.org", "cy@example.org"]
            .into_iter()
            .enumerate()
        {
            let key = email.to_ascii_lowercase();
            let row = ImportRow::new(line as u64 + 2, email.into(), key, [""; 0], None);
            assert!(importer.push(row).unwrap());
        }
        importer.finish().unwrap();
        // Suppressed after import: the claim must still leave it out.
        store
            .suppress(&entry(
                "bob@example.org",
                SuppressionReason::Unsubscribed,
                1,
            ))
            .unwrap();
        let claimed = store.claim(c, i64::MAX, 10).unwrap();
        let emails: Vec<&str> = claimed.iter().map(|row| row.email.as_str()).collect();
        assert_eq!(emails, ["ada@example.org", "cy@example.org"]);
        let bob = store
            .page(c, Some(State::Skipped), None, 0, 10)
            .unwrap()
            .remove(0);
        assert_eq!(bob.email, "Bob@Example.org");
        assert_eq!(bob.skip_reason.as_deref(), Some("suppressed: unsubscribed"));

        // A refresh before a run skips pending rows too.
        let d = store.campaign("/d.toml", "d").unwrap();
        let mut importer = store.importer(d, &[]).unwrap();
        let row = ImportRow::new(
            2,
            "bob@example.org".into(),
            "bob@example.org".into(),
            [""; 0],
            None,
        );
        assert!(importer.push(row).unwrap());
        importer.finish().unwrap();
        assert_eq!(store.skip_suppressed(d).unwrap(), 1);
        assert_eq!(store.counts(d).unwrap().skipped, 1);
    }
}
