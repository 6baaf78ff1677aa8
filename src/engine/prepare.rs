//! Getting a campaign ready to send, without sending: importing its recipient list into the
//! store, and checking it (every recipient rendered, every problem listed). Synchronous: the CLI
//! calls these directly and the window calls them through the engine's runtime.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::campaign::Campaign;
use crate::compose::{ComposeError, Composer, RecipientData, TemplateErrorKind};
use crate::recipients::{self, CsvRecipients, Deduper, ImportError, Verdict};
use crate::store::{CampaignId, NewRecipient, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Store(#[from] StoreError),
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
    pub columns: Vec<String>,
}

/// The key that identifies a campaign in the database: its file's absolute path.
pub fn campaign_key(campaign: &Campaign) -> String {
    campaign.path.to_string_lossy().into_owned()
}

/// Finds or creates the campaign's row in the store.
pub fn campaign_id(store: &mut Store, campaign: &Campaign) -> Result<CampaignId, StoreError> {
    store.campaign(&campaign_key(campaign), &campaign.name)
}

/// Imports the campaign's recipient list: valid new rows become `pending`, invalid, duplicate and
/// malformed rows become `skipped` with the reason. Rows already in the campaign are left as
/// they are, so importing again adds nobody twice and an edited file adds only its new rows.
/// All in one transaction: a failed import changes nothing.
pub fn import(
    store: &mut Store,
    campaign: &Campaign,
) -> Result<(CampaignId, ImportReport), PrepareError> {
    let csv = recipients::open(&campaign.recipients.csv, &campaign.recipients.email_column)?;
    let id = campaign_id(store, campaign)?;
    let columns = csv.columns().to_vec();
    let encoder = FieldsEncoder::new(&columns);
    let mut report = ImportReport {
        columns: columns.clone(),
        ..ImportReport::default()
    };
    let mut deduper = Deduper::new();
    let mut repeats: HashMap<String, u32> = HashMap::new();
    let mut importer = store.importer(id)?;
    let mut fields_json = String::new();
    for row in csv {
        report.rows += 1;
        let row = match row {
            Ok(row) => row,
            Err(ImportError::Row { line, message, .. }) => {
                report.malformed += 1;
                let key = format!("malformed:{line}");
                let reason = format!("line {line} is not a valid CSV row: {message}");
                importer.add(&NewRecipient {
                    line,
                    email: "",
                    key: &key,
                    fields_json: "{}",
                    skip_reason: Some(&reason),
                })?;
                continue;
            }
            Err(other) => return Err(other.into()),
        };
        encoder.encode(&row.fields, &mut fields_json);
        let added = match deduper.classify(row.line, &row.email) {
            Verdict::Valid(address) => importer.add(&NewRecipient {
                line: row.line,
                email: address.as_str(),
                key: &address.key(),
                fields_json: &fields_json,
                skip_reason: None,
            })?,
            Verdict::Invalid { reason } => {
                report.invalid += 1;
                let key = occurrence_key(&mut repeats, "invalid", &row.email.to_lowercase());
                importer.add(&NewRecipient {
                    line: row.line,
                    email: row.email.trim(),
                    key: &key,
                    fields_json: &fields_json,
                    skip_reason: Some(&format!("invalid address: {reason}")),
                })?
            }
            Verdict::Duplicate { first_line } => {
                report.duplicates += 1;
                let key =
                    occurrence_key(&mut repeats, "duplicate", &row.email.trim().to_lowercase());
                importer.add(&NewRecipient {
                    line: row.line,
                    email: row.email.trim(),
                    key: &key,
                    fields_json: &fields_json,
                    skip_reason: Some(&format!("duplicate of line {first_line}")),
                })?
            }
        };
        if added {
            report.added += 1;
        }
    }
    let (_, added_skipped) = importer.finish(&columns)?;
    report.added_skipped = added_skipped;
    Ok((id, report))
}

/// Keys for rows that are kept but never sent: the n-th occurrence of the same value in a file
/// gets the same key each time the file is imported.
fn occurrence_key(repeats: &mut HashMap<String, u32>, kind: &str, value: &str) -> String {
    let count = repeats.entry(format!("{kind}:{value}")).or_insert(0);
    *count += 1;
    format!("{kind}:{value}#{count}")
}

/// Writes a row's fields as a JSON object with the column names, reusing one buffer.
struct FieldsEncoder {
    names: Vec<String>,
}

impl FieldsEncoder {
    fn new(columns: &[String]) -> FieldsEncoder {
        FieldsEncoder {
            names: columns
                .iter()
                .map(|name| serde_json::to_string(name).unwrap_or_else(|_| "\"\"".into()))
                .collect(),
        }
    }

    fn encode(&self, values: &[String], out: &mut String) {
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

/// The outcome of `check`: problems stop a send; warnings are worth reading.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    pub recipients: u64,
    pub rendered: u64,
    pub skipped: u64,
    /// The largest rendered message, in bytes.
    pub largest_bytes: usize,
}

/// How many rows of one kind of issue are listed by line before the rest is summed up.
const LISTED_PER_KIND: usize = 10;

/// Validates the campaign's content: reads the recipient list, renders every valid recipient's
/// message, and lists every problem (grouped, so one broken template does not print a million
/// lines). Imports nothing and sends nothing.
pub fn check(campaign: &Campaign) -> CheckReport {
    let mut report = CheckReport::default();
    let composer = match Composer::new(campaign) {
        Ok(composer) => Some(composer),
        Err(problems) => {
            report
                .problems
                .extend(problems.iter().map(ToString::to_string));
            None
        }
    };
    let csv = match recipients::open(&campaign.recipients.csv, &campaign.recipients.email_column) {
        Ok(csv) => csv,
        Err(error) => {
            report.problems.push(error.to_string());
            return report;
        }
    };
    let columns = csv.columns().to_vec();
    check_rows(csv, composer.as_ref(), &columns, &mut report);
    if report.recipients == 0 {
        report.problems.push(format!(
            "the recipient list has no recipients ({})",
            campaign.recipients.csv.display()
        ));
    } else if report.recipients == report.skipped {
        report
            .problems
            .push("no recipient in the list has a valid address".to_string());
    }
    if campaign.message.unsubscribe.is_none() {
        report.warnings.push(
            "no unsubscribe link (message.unsubscribe): Gmail, Yahoo and Outlook require one-click unsubscribe from bulk senders"
                .to_string(),
        );
    }
    if campaign.dkim.is_none() {
        report.warnings.push(
            "no DKIM signature ([dkim]): big mailbox providers reject or junk unsigned bulk mail"
                .to_string(),
        );
    }
    report
}

fn check_rows(
    csv: CsvRecipients,
    composer: Option<&Composer>,
    columns: &[String],
    report: &mut CheckReport,
) {
    let encoder = FieldsEncoder::new(columns);
    let mut deduper = Deduper::new();
    let mut fields_json = String::new();
    let mut invalid: Vec<String> = Vec::new();
    let mut duplicates: Vec<String> = Vec::new();
    let mut render_errors: HashMap<String, (u64, String)> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for row in csv {
        report.recipients += 1;
        let row = match row {
            Ok(row) => row,
            Err(error) => {
                report.skipped += 1;
                invalid.push(error.to_string());
                continue;
            }
        };
        let address = match deduper.classify(row.line, &row.email) {
            Verdict::Valid(address) => address,
            Verdict::Invalid { reason } => {
                report.skipped += 1;
                invalid.push(format!(
                    "line {}: \"{}\" {reason}",
                    row.line,
                    row.email.trim()
                ));
                continue;
            }
            Verdict::Duplicate { first_line } => {
                report.skipped += 1;
                duplicates.push(format!(
                    "line {}: {} repeats line {first_line}",
                    row.line,
                    row.email.trim()
                ));
                continue;
            }
        };
        let Some(composer) = composer else {
            continue;
        };
        encoder.encode(&row.fields, &mut fields_json);
        let envelope = address.to_ascii();
        let data = RecipientData {
            id: row.line as i64,
            email: &envelope,
            fields_json: &fields_json,
        };
        match composer.compose(&data) {
            Ok(composed) => {
                report.rendered += 1;
                report.largest_bytes = report.largest_bytes.max(composed.bytes.len());
            }
            Err(error) => {
                let (group, text) = describe_render_error(&error, columns, row.line);
                let entry = render_errors.entry(group.clone()).or_insert_with(|| {
                    order.push(group);
                    (0, text)
                });
                entry.0 += 1;
            }
        }
    }
    for group in order {
        if let Some((count, text)) = render_errors.remove(&group) {
            let others = if count > 1 {
                format!(" (and {} more recipient(s) with the same error)", count - 1)
            } else {
                String::new()
            };
            report.problems.push(format!("{text}{others}"));
        }
    }
    summarize(&mut report.warnings, "invalid address", invalid);
    summarize(&mut report.warnings, "duplicate", duplicates);
}

fn describe_render_error(error: &ComposeError, columns: &[String], line: u64) -> (String, String) {
    match error {
        ComposeError::Template(template) => {
            let group = format!(
                "{}:{}:{}:{:?}",
                template.template, template.line, template.column, template.kind
            );
            let mut text = format!("{template} at CSV line {line}");
            if let TemplateErrorKind::UnknownField(_) = template.kind {
                let _ = write!(text, "; the fields are: email, {}", columns.join(", "));
            }
            (group, text)
        }
        other => (other.to_string(), format!("{other} (CSV line {line})")),
    }
}

fn summarize(warnings: &mut Vec<String>, kind: &str, items: Vec<String>) {
    if items.is_empty() {
        return;
    }
    let total = items.len();
    let listed: Vec<String> = items.into_iter().take(LISTED_PER_KIND).collect();
    let mut text = format!(
        "{total} row(s) skipped as {kind}:\n    {}",
        listed.join("\n    ")
    );
    if total > LISTED_PER_KIND {
        let _ = write!(text, "\n    … and {} more", total - LISTED_PER_KIND);
    }
    warnings.push(text);
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
