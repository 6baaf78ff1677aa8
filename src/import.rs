//! Feeding a campaign's lists into the store: the recipient list (CSV or sheet) read, checked,
//! de-duplicated and written in one transaction, and the campaign's suppression file. One place
//! decides "import on first run" ([`import_if_empty`]), for `herald send`, the window and the
//! engine's run alike. Below both the engine and the application layer; synchronous.

use std::collections::HashMap;
use std::fmt::Write as _;

use std::path::{Path, PathBuf};

use crate::campaign::Campaign;
use crate::identity::campaign_id;
use crate::recipients::{self, Deduper, EmailAddress, ImportError, RecipientList, Verdict};
use crate::store::{CampaignId, Counts, ImportRow, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ImportFailed {
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not read the suppression list: {source} ({})", path.display())]
    Suppression {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Data rows read from the file (blank lines not counted).
    pub rows: u64,
    /// Rows added to the campaign by this import (re-imported rows are not added again).
    pub added: u64,
    pub invalid: u64,
    pub duplicates: u64,
    pub malformed: u64,
    /// Of the rows added, how many were added as `skipped`.
    pub added_skipped: u64,
    /// Valid addresses with non-ASCII characters before the @: only a server that offers
    /// SMTPUTF8 (RFC 6531) takes them, and many relays do not.
    pub non_ascii: u64,
    /// Entries in the suppression list, and recipients it skipped at this import.
    pub suppression_entries: u64,
    pub suppressed: u64,
    pub columns: Vec<String>,
    /// The email column and how it was found: `"Email Address" (recognized by its name)`.
    pub email_column: String,
    /// What the file was read as: `CSV (UTF-8, comma-separated)`, `Excel workbook, sheet "x"`.
    pub format: String,
    /// The campaign's counts after the import, when they follow from the figures above (the
    /// campaign had no recipients before): counting a million rows again costs a tenth of a
    /// second.
    pub counts: Option<Counts>,
}

impl ImportReport {
    /// What the import found that the marketer should know before sending, as sentences.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.non_ascii > 0 {
            let count = match self.non_ascii {
                1 => "1 address has".to_string(),
                n => format!("{n} addresses have"),
            };
            warnings.push(format!(
                "{count} non-ASCII characters before the @: many relays refuse such addresses \
                 (only a server that offers SMTPUTF8 takes them), and a send fails them with \
                 that reason"
            ));
        }
        warnings
    }
}

/// Imports the campaign's recipient list: valid new rows become `pending`, invalid, duplicate and
/// malformed rows become `skipped` with the reason. Rows already in the campaign are left as
/// they are, so importing again adds nobody twice and an edited file adds only its new rows.
/// All in one transaction: a failed import changes nothing.
pub fn import(
    store: &mut Store,
    campaign: &Campaign,
) -> Result<(CampaignId, ImportReport), ImportFailed> {
    let csv = open_list(campaign)?;
    let id = campaign_id(store, campaign)?;
    let was_empty = store.counts(id)?.total() == 0;
    let columns = csv.columns().to_vec();
    let mut report = ImportReport {
        columns: columns.clone(),
        email_column: csv.email_column().describe(),
        format: csv.format().describe(),
        ..ImportReport::default()
    };
    let started = std::time::Instant::now();
    let mut importer = store.importer(id, &columns)?;
    // Reading, checking and encoding rows takes as long as inserting them: one thread does
    // each, with a few batches in between.
    // Named in a duplicate's reason: a campaign may hold rows of several lists (issue #20).
    let file = campaign
        .recipients
        .csv
        .file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    let (batches, receiver) =
        std::sync::mpsc::sync_channel::<Result<Vec<Prepared>, ImportError>>(4);
    let producer = std::thread::Builder::new()
        .name("herald-import".into())
        .spawn(move || prepare_rows(csv, &file, &batches));
    let producer = match producer {
        Ok(handle) => handle,
        Err(error) => {
            return Err(ImportFailed::Import(ImportError::Io {
                path: campaign.recipients.csv.clone(),
                source: error,
            }));
        }
    };
    let mut failure = None;
    for batch in receiver {
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                failure = Some(error);
                break;
            }
        };
        for row in batch {
            report.rows += 1;
            report.non_ascii += u64::from(row.non_ascii);
            match row.kind {
                RowKind::Valid => {}
                RowKind::Invalid => report.invalid += 1,
                RowKind::Duplicate => report.duplicates += 1,
                RowKind::Malformed => report.malformed += 1,
            }
            if importer.push(row.row)? {
                report.added += 1;
            }
        }
    }
    let _ = producer.join();
    if let Some(error) = failure {
        // Dropping the importer rolls the whole import back.
        return Err(error.into());
    }
    let written_ms = started.elapsed().as_millis() as u64;
    let (_, added_skipped) = importer.finish()?;
    let committed_ms = started.elapsed().as_millis() as u64;
    report.added_skipped = added_skipped;
    let (entries, suppressed) = refresh_suppression(store, campaign, id)?;
    report.suppression_entries = entries;
    report.suppressed = suppressed;
    if was_empty {
        // Every row is new; the suppression list only turns new pending rows into skipped ones.
        let skipped = report.added_skipped + suppressed;
        report.counts = Some(Counts {
            pending: report.added.saturating_sub(skipped),
            skipped,
            ..Counts::default()
        });
    }
    tracing::debug!(
        rows = report.rows,
        written_ms,
        committed_ms,
        suppressed_ms = started.elapsed().as_millis() as u64,
        "import timings"
    );
    Ok((id, report))
}

/// Imports the list when the campaign has no recipients yet: what `send`, a run, a preview and
/// the window's Start do on first use. The one place that decides it.
pub fn import_if_empty(
    store: &mut Store,
    campaign: &Campaign,
) -> Result<Option<ImportReport>, ImportFailed> {
    let id = campaign_id(store, campaign)?;
    if store.counts(id)?.total() > 0 {
        return Ok(None);
    }
    Ok(Some(import(store, campaign)?.1))
}

/// Opens the campaign's recipient list (CSV or sheet) and finds its email column.
pub fn open_list(campaign: &Campaign) -> Result<RecipientList, ImportError> {
    recipients::open(
        &campaign.recipients.csv,
        campaign.recipients.email_column.as_deref(),
    )
}

/// Loads the campaign's suppression file into the store (replacing what was there; no file
/// means an empty list) and skips the pending and deferred recipients it names. Returns the
/// number of entries and of recipients skipped. The claim that sends checks the stored list
/// again, so calling this while a run is paused takes effect before the next message.
pub fn refresh_suppression(
    store: &mut Store,
    campaign: &Campaign,
    id: CampaignId,
) -> Result<(u64, u64), ImportFailed> {
    let entries = match &campaign.recipients.suppression {
        Some(path) => read_suppression(path)?,
        None => Vec::new(),
    };
    let count = store.replace_suppression(id, &entries)?;
    let skipped = store.skip_suppressed(id)?;
    Ok((count, skipped))
}

/// Reads a suppression file: one address or domain a line (`ada@example.org`, `@example.org`
/// or `example.org`), or a CSV whose first column holds them; a header line, blank lines and
/// `#` comments are ignored.
pub fn read_suppression(path: &Path) -> Result<Vec<String>, ImportFailed> {
    let bytes = std::fs::read(path).map_err(|source| ImportFailed::Suppression {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_suppression(&String::from_utf8_lossy(&bytes)))
}

/// The normalized entries of a suppression list: address keys and `@ascii-domain`s.
pub fn parse_suppression(text: &str) -> Vec<String> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line
            .split([',', ';', '\t'])
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .trim();
        let entry = if let Some(domain) = first.strip_prefix('@') {
            domain_entry(domain)
        } else if first.contains('@') {
            EmailAddress::parse(first).ok().map(|address| address.key())
        } else if first.contains('.') {
            domain_entry(first)
        } else {
            None
        };
        if let Some(entry) = entry {
            entries.push(entry);
        }
    }
    entries
}

fn domain_entry(domain: &str) -> Option<String> {
    let address = EmailAddress::parse(&format!("x@{}", domain.trim())).ok()?;
    Some(format!("@{}", address.domain().to_ascii_lowercase()))
}

#[derive(Debug, Clone, Copy)]
enum RowKind {
    Valid,
    Invalid,
    Duplicate,
    Malformed,
}

/// A row ready to insert: checked, de-duplicated within the file, key hashed, fields encoded.
struct Prepared {
    kind: RowKind,
    row: ImportRow,
    /// A valid address that only a server with SMTPUTF8 takes.
    non_ascii: bool,
}

const BATCH_ROWS: usize = 512;

/// The most rows the de-duplication map is sized for ahead of time: a map of about 70 MB, so
/// that an estimate twice too high (a UTF-16 file) cannot take more. A larger file's map grows
/// as it goes.
const MAX_RESERVED_ROWS: u64 = 3_000_000;

/// The reading side of an import: parses, classifies and encodes rows, sending them in batches.
/// A fatal error of the file ends the stream with that error.
///
/// Every row gets a key of its own, as [`crate::store::Importer::push`] requires: the deduper
/// lets each mailbox's key through once, and the rows kept as skipped get keys that no address
/// can have (see [`occurrence_key`]).
fn prepare_rows(
    mut csv: RecipientList,
    file: &str,
    batches: &std::sync::mpsc::SyncSender<Result<Vec<Prepared>, ImportError>>,
) {
    let mut deduper = Deduper::new();
    let mut repeats: HashMap<String, u32> = HashMap::new();
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let mut read: u64 = 0;
    while let Some(record) = csv.next_record() {
        let prepared = match record {
            Ok(record) => {
                let (line, email) = (record.line(), record.email());
                // A row kept but never sent: its key is the n-th occurrence of its kind and cell
                // (the names are in every key stored so far, so they stay as they are).
                let mut kept = |kind: RowKind, name: &str, reason: String| Prepared {
                    kind,
                    non_ascii: false,
                    row: ImportRow::new(
                        line,
                        email.to_string(),
                        occurrence_key(&mut repeats, name, &email.to_lowercase()),
                        record.fields(),
                        Some(reason),
                    ),
                };
                match deduper.classify(line, &email) {
                    Verdict::Valid { address, key } => Prepared {
                        kind: RowKind::Valid,
                        non_ascii: address.requires_smtputf8(),
                        row: ImportRow::new(
                            line,
                            address.into_string(),
                            key,
                            record.fields(),
                            None,
                        ),
                    },
                    Verdict::Invalid { reason } => kept(
                        RowKind::Invalid,
                        "invalid",
                        format!("invalid address: {reason}"),
                    ),
                    Verdict::Duplicate { first_line } => kept(
                        RowKind::Duplicate,
                        "duplicate",
                        format!("duplicate of line {first_line} of {file}"),
                    ),
                }
            }
            Err(ImportError::Row { line, message, .. }) => Prepared {
                kind: RowKind::Malformed,
                non_ascii: false,
                row: ImportRow::new(
                    line,
                    String::new(),
                    format!("malformed:{line}"),
                    std::iter::empty::<&str>(),
                    Some(format!("line {line} is not a valid row: {message}")),
                ),
            },
            Err(other) => {
                let _ = batches.send(Err(other));
                return;
            }
        };
        batch.push(prepared);
        read += 1;
        if read == BATCH_ROWS as u64
            && let Some(estimate) = csv.estimated_records(read)
        {
            // Room for the whole file at once (within reason), so the map never pauses to grow.
            let expected = estimate
                .saturating_add(estimate / 16)
                .min(MAX_RESERVED_ROWS);
            deduper.reserve(usize::try_from(expected.saturating_sub(read)).unwrap_or(0));
        }
        if batch.len() == BATCH_ROWS {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
            if batches.send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = batches.send(Ok(batch));
    }
}

/// Keys for rows that are kept but never sent: the n-th occurrence of the same value in a file
/// gets the same key each time the file is imported. They end in `#n`, which no address's key
/// can: an address's key ends with its domain, and no domain holds a `#`.
fn occurrence_key(repeats: &mut HashMap<String, u32>, kind: &str, value: &str) -> String {
    let count = repeats.entry(format!("{kind}:{value}")).or_insert(0);
    *count += 1;
    format!("{kind}:{value}#{count}")
}

/// Writes a row's fields as a JSON object with the column names, reusing one buffer.
pub(crate) struct FieldsEncoder {
    names: Vec<String>,
}

impl FieldsEncoder {
    pub(crate) fn new(columns: &[String]) -> FieldsEncoder {
        FieldsEncoder {
            names: columns
                .iter()
                .map(|name| serde_json::to_string(name).unwrap_or_else(|_| "\"\"".into()))
                .collect(),
        }
    }

    pub(crate) fn encode(&self, values: &[String], out: &mut String) {
        out.clear();
        out.push('{');
        for (index, (name, value)) in self.names.iter().zip(values).enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(name);
            out.push(':');
            push_json_string(out, value);
        }
        out.push('}');
    }
}

fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_valid_json() {
        let encoder = FieldsEncoder::new(&["a".into(), "b\"c".into()]);
        let mut out = String::new();
        encoder.encode(&["x\"y\\\n\r\t\u{1}".into(), "é".into()], &mut out);
        let parsed: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["a"], "x\"y\\\n\r\t\u{1}");
        assert_eq!(parsed["b\"c"], "é");
    }
}
