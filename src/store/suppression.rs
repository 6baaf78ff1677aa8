//! The suppression list: addresses and whole domains a campaign must never mail (unsubscribes,
//! complaints, bounces kept elsewhere), stored per campaign so the pre-send check needs no file.
//! Entries are address keys (`local@ascii-domain`, lower-case, as a recipient's key) or
//! `@ascii-domain`. Matching rows become `skipped` ("suppressed") at import and again inside the
//! claim that would send them. SQL only; callers hand in normalized entries.

use rusqlite::{OptionalExtension, Transaction, params};

use super::{CampaignId, Claimed, Store, StoreError, now_ms};

/// The skip reason of a suppressed recipient.
pub const SUPPRESSED: &str = "suppressed";

impl Store {
    /// Replaces the campaign's suppression list with `entries` (normalized, see the module
    /// doc). Returns how many distinct entries it now holds.
    pub fn replace_suppression(
        &mut self,
        campaign: CampaignId,
        entries: &[String],
    ) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM suppression WHERE campaign_id = ?1", [campaign])?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO suppression (campaign_id, entry) VALUES (?1, ?2)",
            )?;
            for entry in entries {
                insert.execute(params![campaign, entry])?;
            }
        }
        let count: i64 = tx.query_row(
            "SELECT count(*) FROM suppression WHERE campaign_id = ?1",
            [campaign],
            |row| row.get(0),
        )?;
        tx.commit()?;
        Ok(count as u64)
    }

    /// Whether `email_key` (or its domain) is on the campaign's suppression list.
    pub fn is_suppressed(&self, campaign: CampaignId, email_key: &str) -> Result<bool, StoreError> {
        let domain = domain_entry(email_key);
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM suppression WHERE campaign_id = ?1 AND entry IN (?2, ?3)",
                params![campaign, email_key, domain],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Marks every pending or deferred recipient on the campaign's suppression list or the
    /// global one as skipped. Returns how many.
    pub fn skip_suppressed(&mut self, campaign: CampaignId) -> Result<u64, StoreError> {
        let globally = super::global_suppression::skip_suppressed(&mut self.conn, campaign)?;
        Ok(globally + self.skip_campaign_suppressed(campaign)?)
    }

    /// `skip_suppressed` for the campaign's own list.
    fn skip_campaign_suppressed(&mut self, campaign: CampaignId) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        // The matching below reads every pending row twice (a second and more at a million
        // rows, issue #2), for nothing when the list is empty, as it is for most campaigns.
        if !any_entries(&tx, campaign)? {
            return Ok(0);
        }
        let now = now_ms();
        let matching = "campaign_id = ?1 AND state IN ('pending', 'deferred') AND (
                coalesce(email_key, email) IN (SELECT entry FROM suppression WHERE campaign_id = ?1)
                OR '@' || substr(coalesce(email_key, email), instr(coalesce(email_key, email), '@') + 1)
                   IN (SELECT entry FROM suppression WHERE campaign_id = ?1))";
        tx.execute(
            &format!(
                "INSERT INTO event (recipient_id, at, state, attempt, reply_text)
                 SELECT id, ?2, 'skipped', attempts, '{SUPPRESSED}' FROM recipient WHERE {matching}"
            ),
            params![campaign, now],
        )?;
        let changed = tx.execute(
            &format!(
                "UPDATE recipient SET state = 'skipped', skip_reason = '{SUPPRESSED}', updated_at = ?2
                 WHERE {matching}"
            ),
            params![campaign, now],
        )?;
        tx.commit()?;
        Ok(changed as u64)
    }
}

/// Whether the campaign's suppression list holds anything.
fn any_entries(tx: &Transaction<'_>, campaign: CampaignId) -> Result<bool, StoreError> {
    Ok(tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM suppression WHERE campaign_id = ?1)")?
        .query_row([campaign], |row| row.get(0))?)
}

fn domain_entry(email_key: &str) -> String {
    let domain = email_key.rsplit_once('@').map_or("", |(_, domain)| domain);
    format!("@{domain}")
}

/// Inside a claim: takes the suppressed rows out of `claimed` and marks them skipped instead,
/// so a recipient suppressed after import is still never sent. Costs one query when the list is
/// empty, two index lookups a row otherwise.
pub(super) fn drop_suppressed(
    tx: &Transaction<'_>,
    campaign: CampaignId,
    claimed: &mut Vec<Claimed>,
    now: i64,
) -> Result<(), StoreError> {
    if claimed.is_empty() || !any_entries(tx, campaign)? {
        return Ok(());
    }
    let mut key_of =
        tx.prepare_cached("SELECT coalesce(email_key, email) FROM recipient WHERE id = ?1")?;
    let mut listed = tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM suppression WHERE campaign_id = ?1 AND entry IN (?2, ?3))",
    )?;
    let mut skip = tx.prepare_cached(&format!(
        "UPDATE recipient SET state = 'skipped', skip_reason = '{SUPPRESSED}', updated_at = ?2
         WHERE id = ?1"
    ))?;
    let mut log = tx.prepare_cached(&format!(
        "INSERT INTO event (recipient_id, at, state, attempt, reply_text)
         VALUES (?1, ?2, 'skipped', ?3, '{SUPPRESSED}')"
    ))?;
    let mut kept = Vec::with_capacity(claimed.len());
    for row in claimed.drain(..) {
        let key: String = key_of.query_row([row.id], |r| r.get(0))?;
        let suppressed: bool =
            listed.query_row(params![campaign, key, domain_entry(&key)], |r| r.get(0))?;
        if suppressed {
            skip.execute(params![row.id, now])?;
            log.execute(params![row.id, now, row.attempts])?;
        } else {
            kept.push(row);
        }
    }
    *claimed = kept;
    Ok(())
}
