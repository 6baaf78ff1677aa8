//! The global suppression list's use cases, one decision each for the CLI (`herald suppression
//! list | add | remove | export | import`) and the window's Suppression view: what key an
//! address is kept under, what a manual entry says, the CSV file both write (address, reason,
//! at_ms, campaign, evidence) and read back. The store keeps the list; `csvfile` the format.

use std::path::Path;

use crate::csvfile;
use crate::recipients::EmailAddress;
use crate::store::{Store, StoreError, Suppression, SuppressionReason, now_ms};

#[derive(Debug, thiserror::Error)]
pub enum SuppressionError {
    #[error("\"{address}\" is not an email address: {reason}")]
    NotAnAddress { address: String, reason: String },
    #[error("could not write {}: {source}", path.display())]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("could not read {}: {reason}", path.display())]
    Read {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The key an address is listed under (what every claim compares).
pub fn key_of(address: &str) -> Result<String, SuppressionError> {
    EmailAddress::parse(address.trim())
        .map(|parsed| parsed.key())
        .map_err(|error| SuppressionError::NotAnAddress {
            address: address.trim().to_string(),
            reason: error.to_string(),
        })
}

/// What an edit did, for the sentence the front end shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub key: String,
    /// False when the list already was as asked (already listed, or not listed).
    pub changed: bool,
}

/// Puts `address` on the list by hand; `note` is kept as the evidence (`default_note` when
/// blank).
pub fn add(
    store: &mut Store,
    address: &str,
    note: &str,
    default_note: &str,
) -> Result<Edited, SuppressionError> {
    let key = key_of(address)?;
    let entry = Suppression {
        address: key.clone(),
        reason: SuppressionReason::Manual,
        at_ms: now_ms(),
        campaign: None,
        evidence: if note.trim().is_empty() {
            default_note.to_string()
        } else {
            note.trim().to_string()
        },
    };
    let changed = store.suppress(&entry)?;
    Ok(Edited { key, changed })
}

/// Takes `address` off the list (recipients already skipped stay skipped).
pub fn remove(store: &mut Store, address: &str) -> Result<Edited, SuppressionError> {
    let key = key_of(address)?;
    let changed = store.unsuppress(&key)?;
    Ok(Edited { key, changed })
}

/// The list as CSV text: a header line and one line per entry.
pub fn to_csv(list: &[Suppression]) -> String {
    let mut text = csvfile::line(&["address", "reason", "at_ms", "campaign", "evidence"]);
    for entry in list {
        text.push_str(&csvfile::line(&[
            entry.address.clone(),
            entry.reason.as_str().to_string(),
            entry.at_ms.to_string(),
            entry.campaign.map(|c| c.to_string()).unwrap_or_default(),
            entry.evidence.clone(),
        ]));
    }
    text
}

/// Writes the whole list to `to`; returns how many entries.
pub fn export(store: &Store, to: &Path) -> Result<u64, SuppressionError> {
    let list = store.suppressions()?;
    std::fs::write(to, to_csv(&list)).map_err(|source| SuppressionError::Write {
        path: to.to_path_buf(),
        source,
    })?;
    Ok(list.len() as u64)
}

/// What an import of a file did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    pub added: u64,
    /// Lines without a valid address, each with its line number and why.
    pub invalid: Vec<(u64, String)>,
}

/// Adds the addresses of a CSV file: an `address` or `email` column (else the first one, and
/// then the first line is an address too); a `reason` column is kept when it names a known
/// reason, an `evidence` column as the evidence.
pub fn import(store: &mut Store, file: &Path) -> Result<Imported, SuppressionError> {
    let unreadable = |reason: String| SuppressionError::Read {
        path: file.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(file).map_err(|error| unreadable(error.to_string()))?;
    let records = csvfile::records(&text).map_err(unreadable)?;
    let mut records = records.into_iter();
    let Some((header_line, header)) = records.next() else {
        return Ok(Imported::default());
    };
    let column = |names: &[&str]| {
        header
            .iter()
            .position(|name| names.contains(&name.trim().to_ascii_lowercase().as_str()))
    };
    // A file without a header names addresses in its first line too.
    let (address_column, reason_column, evidence_column, first) =
        match column(&["address", "email", "email address", "e-mail"]) {
            Some(index) => (index, column(&["reason"]), column(&["evidence"]), None),
            None => (0, None, None, Some((header_line, header.clone()))),
        };
    let mut imported = Imported::default();
    let now = now_ms();
    for (line, fields) in first.into_iter().chain(records) {
        let address = match fields.get(address_column).map(|field| key_of(field)) {
            Some(Ok(address)) => address,
            Some(Err(error)) => {
                imported.invalid.push((line, error.to_string()));
                continue;
            }
            None => {
                imported.invalid.push((line, "no address column".into()));
                continue;
            }
        };
        let reason = reason_column
            .and_then(|index| fields.get(index))
            .and_then(|reason| SuppressionReason::parse(reason.trim()))
            .unwrap_or(SuppressionReason::Manual);
        let evidence = evidence_column
            .and_then(|index| fields.get(index).cloned())
            .unwrap_or_else(|| format!("imported from {}", file.display()));
        let entry = Suppression {
            address,
            reason,
            at_ms: now,
            campaign: None,
            evidence,
        };
        imported.added += u64::from(store.suppress(&entry)?);
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_quoted_lines() {
        let list = [Suppression {
            address: "ada@example.org".into(),
            reason: SuppressionReason::Bounced,
            at_ms: 7,
            campaign: Some(3),
            evidence: "5.1.1 \"no\", really".into(),
        }];
        assert_eq!(
            to_csv(&list),
            "address,reason,at_ms,campaign,evidence\r\n\
             ada@example.org,bounced,7,3,\"5.1.1 \"\"no\"\", really\"\r\n"
        );
    }
}
