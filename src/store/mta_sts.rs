//! The MTA-STS policy cache (issue #23, migration 10): one row per recipient domain holding the
//! policy file as fetched, the `_mta-sts` TXT id it was fetched under, when, and its `max_age`.
//! The store only keeps and hands back the bytes; reading them and deciding whether they are
//! still good is the `mtasts` module's business.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

/// A cached policy as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStsPolicy {
    /// The policy's id from the domain's `_mta-sts` TXT record.
    pub id: String,
    pub fetched_at_ms: i64,
    pub max_age_secs: u64,
    /// The policy file as served.
    pub body: Vec<u8>,
}

impl Store {
    /// The cached MTA-STS policy of `domain` (ASCII, lower case), if any.
    pub fn mta_sts_policy(&self, domain: &str) -> Result<Option<StoredStsPolicy>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, fetched_at, max_age, body FROM mta_sts_policy WHERE domain = ?1",
                [domain],
                |row| {
                    Ok(StoredStsPolicy {
                        id: row.get(0)?,
                        fetched_at_ms: row.get(1)?,
                        max_age_secs: row.get::<_, i64>(2)?.max(0) as u64,
                        body: row.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Keeps `policy` as `domain`'s, replacing what was cached.
    pub fn save_mta_sts_policy(
        &self,
        domain: &str,
        policy: &StoredStsPolicy,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO mta_sts_policy (domain, id, fetched_at, max_age, body)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (domain) DO UPDATE SET id = excluded.id,
                 fetched_at = excluded.fetched_at, max_age = excluded.max_age,
                 body = excluded.body",
            params![
                domain,
                policy.id,
                policy.fetched_at_ms,
                i64::try_from(policy.max_age_secs).unwrap_or(i64::MAX),
                policy.body
            ],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_is_kept_and_replaced_by_domain() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let store = Store::open(&dir.path().join("herald.db")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.mta_sts_policy("example.org").ok(), Some(None));
        let first = StoredStsPolicy {
            id: "a1".into(),
            fetched_at_ms: 1_000,
            max_age_secs: 86_400,
            body: b"version: STSv1\n".to_vec(),
        };
        store
            .save_mta_sts_policy("example.org", &first)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            store.mta_sts_policy("example.org").ok(),
            Some(Some(first.clone()))
        );
        let second = StoredStsPolicy {
            id: "b2".into(),
            ..first
        };
        store
            .save_mta_sts_policy("example.org", &second)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.mta_sts_policy("example.org").ok(), Some(Some(second)));
        assert_eq!(store.mta_sts_policy("example.net").ok(), Some(None));
    }
}
