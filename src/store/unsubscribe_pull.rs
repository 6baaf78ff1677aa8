//! Herald's side of the unsubscribe endpoint (issue #15): where it stopped reading each
//! endpoint's log (a cursor per endpoint URL, migration 8), and the step that turns pulled
//! records (campaign and recipient ids) into global suppressions of the recipients' address
//! keys, together with the new cursor in one transaction, so a crash between the two neither
//! loses a record nor applies one twice.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, SuppressionReason};

/// One record as the endpoint serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledUnsubscribe {
    pub cursor: i64,
    pub campaign: i64,
    pub recipient: i64,
    pub at_ms: i64,
}

/// What applying a batch of pulled records did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppliedUnsubscribes {
    /// Addresses newly put on the global suppression list.
    pub suppressed: usize,
    /// Records whose address was already suppressed.
    pub already: usize,
    /// Records naming a recipient this database does not have (another database's campaign,
    /// or a campaign deleted since): nothing to suppress.
    pub unknown: usize,
}

impl Store {
    /// The cursor after the last record applied from `endpoint` (0 before the first pull).
    pub fn unsubscribe_cursor(&self, endpoint: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT cursor FROM unsubscribe_cursor WHERE endpoint = ?1",
                [endpoint],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// Suppresses the recipients `records` name (reason `unsubscribed`, evidence naming the
    /// endpoint) and moves `endpoint`'s cursor to `cursor`, in one transaction.
    pub fn apply_unsubscribes(
        &mut self,
        endpoint: &str,
        records: &[PulledUnsubscribe],
        cursor: i64,
    ) -> Result<AppliedUnsubscribes, StoreError> {
        let tx = self.conn.transaction()?;
        let mut applied = AppliedUnsubscribes::default();
        {
            let mut address_of = tx.prepare_cached(
                "SELECT coalesce(email_key, email) FROM recipient WHERE id = ?1 AND campaign_id = ?2",
            )?;
            let mut suppress = tx.prepare_cached(
                "INSERT OR IGNORE INTO global_suppression (address, reason, at, campaign_id, evidence)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for record in records {
                let address: Option<String> = address_of
                    .query_row(params![record.recipient, record.campaign], |row| row.get(0))
                    .optional()?;
                let Some(address) = address else {
                    applied.unknown += 1;
                    continue;
                };
                let evidence = format!("one-click unsubscribe recorded by {endpoint}");
                let added = suppress.execute(params![
                    address,
                    SuppressionReason::Unsubscribed.as_str(),
                    record.at_ms,
                    record.campaign,
                    evidence
                ])?;
                if added > 0 {
                    applied.suppressed += 1;
                } else {
                    applied.already += 1;
                }
            }
        }
        tx.execute(
            "INSERT INTO unsubscribe_cursor (endpoint, cursor) VALUES (?1, ?2)
             ON CONFLICT (endpoint) DO UPDATE SET cursor = max(cursor, excluded.cursor)",
            params![endpoint, cursor],
        )?;
        tx.commit()?;
        Ok(applied)
    }
}
