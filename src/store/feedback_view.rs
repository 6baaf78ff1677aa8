//! The reads the window makes about what came back (issues #13, #14): the feedback events of
//! the recipients on screen (one short line per row: "hard bounce 5.1.1 · on the suppression
//! list: unsubscribed"), and a searched, bounded page of the global suppression list for the
//! Suppression view. Read-only SQL; writing feedback and suppressions stays in `feedback.rs`
//! and `global_suppression.rs`.

use std::collections::HashMap;

use rusqlite::params_from_iter;

use super::{RecipientId, Store, StoreError, Suppression, SuppressionReason};

/// The most recipients asked about at once (a table block is 200).
const MAX_IDS: usize = 1_000;

/// A page of the global suppression list and how many entries match the search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuppressionPage {
    pub total: u64,
    pub entries: Vec<Suppression>,
}

/// How a feedback kind reads in a recipient's row.
fn kind_label(kind: &str) -> &str {
    match kind {
        "hard" => "hard bounce",
        "soft" => "soft bounce",
        "blocked" => "blocked",
        "delayed" => "delayed",
        "complaint" => "complaint",
        "unsubscribe" => "unsubscribed by mail",
        other => other,
    }
}

impl Store {
    /// For each of `ids` that has any: its feedback events (kind and status code) and, when its
    /// address is on the global suppression list, why. At most the first 1,000 ids are read.
    pub fn feedback_notes(
        &self,
        ids: &[RecipientId],
    ) -> Result<HashMap<RecipientId, String>, StoreError> {
        let ids = ids.get(..ids.len().min(MAX_IDS)).unwrap_or_default();
        let mut notes: HashMap<RecipientId, Vec<String>> = HashMap::new();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let marks = vec!["?"; ids.len()].join(",");
        let mut events = self.conn.prepare(&format!(
            "SELECT recipient_id, kind, status FROM feedback WHERE recipient_id IN ({marks})
             ORDER BY recipient_id, at"
        ))?;
        let rows = events.query_map(params_from_iter(ids), |row| {
            Ok((
                row.get::<_, RecipientId>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
            ))
        })?;
        for row in rows {
            let (id, kind, status) = row?;
            let label = kind_label(&kind);
            let note = match status {
                Some(status) if !status.is_empty() => format!("{label} {status}"),
                _ => label.to_string(),
            };
            notes.entry(id).or_default().push(note);
        }
        let mut listed = self.conn.prepare(&format!(
            "SELECT r.id, g.reason FROM recipient r
             JOIN global_suppression g ON g.address = coalesce(r.email_key, r.email)
             WHERE r.id IN ({marks})"
        ))?;
        let rows = listed.query_map(params_from_iter(ids), |row| {
            Ok((row.get::<_, RecipientId>(0)?, row.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (id, reason) = row?;
            let reason = SuppressionReason::parse(&reason)
                .map_or(reason.clone(), |reason| reason_label(reason).to_string());
            notes
                .entry(id)
                .or_default()
                .push(format!("on the suppression list: {reason}"));
        }
        Ok(notes
            .into_iter()
            .map(|(id, parts)| (id, parts.join(" · ")))
            .collect())
    }

    /// Up to `limit` entries of the global list whose address contains `search` (all when it is
    /// empty), newest first, from `offset` on, with how many match.
    pub fn suppression_page(
        &self,
        search: &str,
        offset: u64,
        limit: u32,
    ) -> Result<SuppressionPage, StoreError> {
        // LIKE's own wildcards in what the user typed match themselves.
        let needle = search
            .trim()
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("%{needle}%");
        let total: i64 = self.conn.query_row(
            "SELECT count(*) FROM global_suppression WHERE address LIKE ?1 ESCAPE '\\'",
            [&pattern],
            |row| row.get(0),
        )?;
        let mut statement = self.conn.prepare_cached(
            "SELECT address, reason, at, campaign_id, evidence FROM global_suppression
             WHERE address LIKE ?1 ESCAPE '\\' ORDER BY at DESC, address LIMIT ?2 OFFSET ?3",
        )?;
        let rows = statement.query_map(
            rusqlite::params![pattern, i64::from(limit), offset as i64],
            |row| {
                let reason: String = row.get(1)?;
                Ok(Suppression {
                    address: row.get(0)?,
                    reason: SuppressionReason::parse(&reason).unwrap_or(SuppressionReason::Manual),
                    at_ms: row.get(2)?,
                    campaign: row.get(3)?,
                    evidence: row.get(4)?,
                })
            },
        )?;
        Ok(SuppressionPage {
            total: total.max(0) as u64,
            entries: rows.collect::<Result<_, _>>()?,
        })
    }
}

/// A suppression reason as people read it.
pub fn reason_label(reason: SuppressionReason) -> &'static str {
    match reason {
        SuppressionReason::Bounced => "bounced",
        SuppressionReason::Complained => "complained",
        SuppressionReason::Unsubscribed => "unsubscribed",
        SuppressionReason::SoftBounces => "soft bounces",
        SuppressionReason::Manual => "added by hand",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn entry(address: &str, reason: SuppressionReason, at_ms: i64) -> Suppression {
        Suppression {
            address: address.into(),
            reason,
            at_ms,
            campaign: None,
            evidence: "test".into(),
        }
    }

    #[test]
    fn the_suppression_page_searches_pages_and_takes_wildcards_literally() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("h.db")).unwrap();
        for (n, address) in ["ada@example.org", "grace@example.org", "a_b@example.net"]
            .iter()
            .enumerate()
        {
            store
                .suppress(&entry(address, SuppressionReason::Bounced, n as i64))
                .unwrap();
        }
        let all = store.suppression_page("", 0, 10).unwrap();
        assert_eq!(all.total, 3);
        assert_eq!(all.entries[0].address, "a_b@example.net", "newest first");
        let found = store.suppression_page(" ADA ", 0, 10).unwrap();
        assert_eq!(found.total, 1);
        assert_eq!(found.entries[0].address, "ada@example.org");
        // `_` is a letter here, not LIKE's "any character".
        assert_eq!(store.suppression_page("a_", 0, 10).unwrap().total, 1);
        assert_eq!(store.suppression_page("%", 0, 10).unwrap().total, 0);
        let second = store.suppression_page("example", 1, 1).unwrap();
        assert_eq!((second.total, second.entries.len()), (3, 1));
        assert_eq!(second.entries[0].address, "grace@example.org");
    }

    #[test]
    fn notes_of_no_recipients_are_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.db")).unwrap();
        assert!(store.feedback_notes(&[]).unwrap().is_empty());
        assert!(store.feedback_notes(&[1, 2, 3]).unwrap().is_empty());
    }
}
