//! Getting a campaign ready to send, without sending: importing its recipient list and its
//! suppression list into the store, checking it (every recipient rendered, every field name
//! checked, deliverability warnings), and previewing one recipient's message exactly as it will
//! be sent. Synchronous: the CLI calls these directly and the window calls them through the
//! engine's runtime.

use std::collections::HashMap;
use std::fmt::Write as _;

use std::path::{Path, PathBuf};

use crate::campaign::Campaign;
use crate::compose::{
    AttachmentInfo, ComposeError, Composer, RecipientData, TemplateErrorKind, bare_ip_links,
    mostly_images,
};
use crate::recipients::{self, Deduper, EmailAddress, ImportError, RecipientList, Verdict};
use crate::store::{CampaignId, Counts, ImportRow, RecipientRef, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
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

/// A message over this size draws a warning: many providers refuse it (Gmail: 25 MB with
/// encoding) and it is slow to send a million times.
const LARGE_MESSAGE_BYTES: usize = 10 * 1024 * 1024;

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

/// The key that identifies a campaign in the database: its file's absolute path.
pub fn campaign_key(campaign: &Campaign) -> String {
    campaign.path.to_string_lossy().into_owned()
}

/// The VERP return path and mailto unsubscribe of a campaign with `[bounces] return_path`,
/// keyed by the database's secrets (issue #13); None without one.
pub fn feedback_for(
    store: &mut Store,
    campaign: &Campaign,
    campaign_id: CampaignId,
) -> Result<Option<crate::compose::Feedback>, StoreError> {
    let Some(return_path) = campaign
        .bounces
        .as_ref()
        .and_then(|bounces| bounces.return_path.clone())
    else {
        return Ok(None);
    };
    Ok(Some(crate::compose::Feedback {
        campaign: campaign_id,
        return_path,
        return_secret: store.secret(RETURN_PATH_SECRET)?,
        unsubscribe_secret: store.secret(UNSUBSCRIBE_SECRET)?,
    }))
}

/// The names of the database secrets keying return-path tags and unsubscribe tokens.
pub const RETURN_PATH_SECRET: &str = "return-path";
pub const UNSUBSCRIBE_SECRET: &str = "unsubscribe";

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
    let (batches, receiver) =
        std::sync::mpsc::sync_channel::<Result<Vec<Prepared>, ImportError>>(4);
    let producer = std::thread::Builder::new()
        .name("herald-import".into())
        .spawn(move || prepare_rows(csv, &batches));
    let producer = match producer {
        Ok(handle) => handle,
        Err(error) => {
            return Err(PrepareError::Import(ImportError::Io {
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
) -> Result<(u64, u64), PrepareError> {
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
pub fn read_suppression(path: &Path) -> Result<Vec<String>, PrepareError> {
    let bytes = std::fs::read(path).map_err(|source| PrepareError::Suppression {
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
                        format!("duplicate of line {first_line}"),
                    ),
                }
            }
            Err(ImportError::Row { line, message, .. }) => Prepared {
                kind: RowKind::Malformed,
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
    /// The email column and how it was found, once the list could be opened.
    pub email_column: Option<String>,
    /// What the list was read as (see [`ImportReport::format`]).
    pub format: Option<String>,
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
    if let Some(path) = &campaign.recipients.suppression
        && let Err(error) = read_suppression(path)
    {
        report.problems.push(error.to_string());
    }
    // The endpoint refuses to start on a shorter secret, and the pull refuses to send one: say
    // so before the send does (loading already reported an unset variable).
    if let Some(name) = campaign
        .unsubscribe
        .as_ref()
        .and_then(|spec| spec.token_env.as_deref())
        && let Ok(value) = std::env::var(name)
        && value.trim().chars().count() < crate::token::MIN_PULL_BEARER
    {
        report.problems.push(format!(
            "unsubscribe.token_env: the environment variable {name} holds fewer than {} characters; the endpoint's --token-env refuses such a secret",
            crate::token::MIN_PULL_BEARER
        ));
    }
    let csv = match open_list(campaign) {
        Ok(csv) => csv,
        Err(error) => {
            report.problems.push(error.to_string());
            return report;
        }
    };
    let columns = csv.columns().to_vec();
    report.email_column = Some(csv.email_column().describe());
    report.format = Some(csv.format().describe());
    // A misspelt field is an error even when no recipient's branch reaches it.
    let names_ok = match &composer {
        Some(composer) => {
            let errors = composer.check_fields(&columns);
            for error in &errors {
                let mut text = error.to_string();
                if let TemplateErrorKind::UnknownField(_) = error.kind {
                    let _ = write!(text, "; the fields are: email, {}", columns.join(", "));
                }
                report.problems.push(text);
            }
            errors.is_empty()
        }
        None => false,
    };
    let composer = composer.filter(|_| names_ok);
    let sample = check_rows(csv, composer.as_ref(), &columns, &mut report);
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
    deliverability(campaign, composer.as_ref(), sample.as_ref(), &mut report);
    report
}

/// The deliverability warnings of issue #5: things that do not stop a send but make big
/// mailbox providers junk or refuse it.
fn deliverability(
    campaign: &Campaign,
    composer: Option<&Composer>,
    sample: Option<&Sample>,
    report: &mut CheckReport,
) {
    let warn = |report: &mut CheckReport, text: String| report.warnings.push(text);
    let signed_link = campaign
        .unsubscribe
        .as_ref()
        .is_some_and(|spec| spec.url.is_some());
    if signed_link {
        if campaign
            .unsubscribe
            .as_ref()
            .is_some_and(|spec| spec.endpoint.is_none())
        {
            warn(report, "unsubscribe.url makes signed links but unsubscribe.endpoint is not set: nobody will pull the unsubscribes they record before sending".into());
        }
    } else if campaign.message.unsubscribe.is_none()
        && campaign.message.unsubscribe_mailto.is_none()
    {
        warn(report, "no unsubscribe link (message.unsubscribe): Gmail, Yahoo and Outlook require one-click unsubscribe from bulk senders".into());
    } else if campaign.message.unsubscribe.is_none() {
        warn(report, "only a mailto unsubscribe: one-click unsubscribe (RFC 8058) needs an https link in message.unsubscribe".into());
    }
    // Issue #13: relays answer 250 and bounce later, by mail; without a bounce mailbox those
    // recipients stay `sent` and later campaigns mail dead addresses.
    if campaign.bounces.is_none() && campaign.delivery.mode != crate::campaign::Mode::Direct {
        warn(report, "no bounce mailbox ([bounces]): relays accept nearly everything and report failures later by mail; without [bounces] Herald never reads them and later campaigns keep mailing dead addresses".into());
    }
    // Issue #21: without a VERP return path a report proves it concerns your mail only when it
    // returns the message's Message-ID; the rest anyone could have written.
    if campaign
        .bounces
        .as_ref()
        .is_some_and(|bounces| bounces.return_path.is_none())
    {
        warn(report, "no [bounces] return_path: reports then carry no VERP tag, so most can only be matched unverified (by the failed address, which anyone can write): they are held for you to apply with herald bounces --apply-unverified instead of applied; set return_path so bounces prove they are about your mail".into());
    }
    match &campaign.dkim {
        None => warn(
            report,
            "no DKIM signature ([dkim]): big mailbox providers reject or junk unsigned bulk mail"
                .into(),
        ),
        Some(dkim) => {
            let from_domain = campaign
                .message
                .from
                .rsplit_once('@')
                .map(|(_, domain)| domain.trim_end_matches('>').trim().to_ascii_lowercase())
                .unwrap_or_default();
            let dkim_domain = dkim
                .domain
                .trim()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let aligned =
                from_domain == dkim_domain || from_domain.ends_with(&format!(".{dkim_domain}"));
            if !aligned {
                warn(
                    report,
                    format!(
                        "the From domain ({from_domain}) differs from the DKIM domain ({dkim_domain}): DMARC alignment fails"
                    ),
                );
            }
        }
    }
    let Some(composer) = composer else {
        return;
    };
    let Some(sample) = sample else {
        return;
    };
    // Link addresses the derived text keeps ("shop (https://…)") are not text to read.
    let readable = sample
        .text
        .split_whitespace()
        .filter(|word| !word.contains("://"))
        .flat_map(str::chars)
        .filter(|c| c.is_alphanumeric())
        .count();
    if composer.has_html() && !composer.has_text_template() && readable == 0 {
        warn(
            report,
            "no text part: the HTML has no text to derive one from; add message.text".into(),
        );
    } else if !composer.has_html() && sample.text.trim().is_empty() {
        warn(report, "the text part is empty".into());
    }
    if report.largest_bytes > LARGE_MESSAGE_BYTES {
        warn(
            report,
            format!(
                "the largest message is {} MB; messages over 10 MB are refused or delayed by many providers",
                report.largest_bytes.div_ceil(1024 * 1024)
            ),
        );
    }
    if let Some(html) = &sample.html {
        if mostly_images(html) {
            warn(report, "the HTML is mostly images with little text: spam filters distrust that, and it is blank with images off".into());
        }
        let links = bare_ip_links(html);
        if !links.is_empty() {
            warn(
                report,
                format!(
                    "links to bare IP addresses look like phishing to filters: {}",
                    links.join(", ")
                ),
            );
        }
    }
}

/// The first rendered recipient's bodies, for the content warnings.
struct Sample {
    html: Option<String>,
    text: String,
}

fn check_rows(
    csv: RecipientList,
    composer: Option<&Composer>,
    columns: &[String],
    report: &mut CheckReport,
) -> Option<Sample> {
    let mut sample = None;
    let mut script_skips: Vec<String> = Vec::new();
    let mut signed_one = false;
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
            Verdict::Valid { address, .. } => address,
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
        // Signing is checked once; the rest only need to build (RSA for a million recipients
        // would make `check` as slow as a send).
        let composed = if sample.is_none() {
            composer
                .compose_parts(&data, !signed_one)
                .map(|(parts, composed)| {
                    signed_one = true;
                    sample = Some(Sample {
                        html: parts.html,
                        text: parts.text,
                    });
                    composed
                })
        } else {
            composer.compose_unsigned(&data)
        };
        match composed {
            Ok(composed) => {
                report.rendered += 1;
                report.largest_bytes = report.largest_bytes.max(composed.bytes.len());
            }
            Err(ComposeError::Skipped { reason }) => {
                report.skipped += 1;
                script_skips.push(format!("line {}: {}: {reason}", row.line, row.email.trim()));
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
    summarize(
        &mut report.warnings,
        "skipped by the personalization script",
        script_skips,
    );
    sample
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

/// One recipient's message exactly as it will be sent (same Message-ID, same signature; only
/// the Date differs), for the window's preview and `herald preview`.
#[derive(Debug, Clone, Default)]
pub struct Preview {
    /// The recipient's position in import order (0-based) and address.
    pub index: u64,
    pub email: String,
    /// Some: the personalization script skips this recipient, with its reason; no message.
    pub skipped: Option<String>,
    /// The header fields as in the message, unfolded (encoded words left as they are).
    pub headers: Vec<(String, String)>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<AttachmentInfo>,
    pub size_bytes: usize,
    pub envelope_from: String,
    pub envelope_to: String,
    /// The complete message.
    pub raw: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("the message cannot be built:\n  {}", .0.join("\n  "))]
    Campaign(Vec<String>),
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the campaign has no recipient {0}")]
    NoSuchRecipient(String),
    #[error(
        "the database's signing keys (return path, unsubscribe links) cannot be read, so the preview cannot show the message as it will be sent: {0}"
    )]
    Keys(StoreError),
    #[error("recipient {email}: {error}")]
    Compose {
        email: String,
        error: Box<ComposeError>,
    },
}

/// Gives `composer` the database's unsubscribe key, so its links verify at the endpoint.
pub fn sign_links(
    composer: &mut Composer,
    store: &mut Store,
    campaign: CampaignId,
) -> Result<(), StoreError> {
    let secret = store.secret(crate::token::UNSUBSCRIBE_KEY)?;
    composer.sign_links(secret, campaign);
    Ok(())
}

/// Gives `composer` the database's return-path key for its Message-IDs (issue #21).
pub fn key_message_ids(
    composer: &mut Composer,
    store: &mut Store,
    campaign: CampaignId,
) -> Result<(), StoreError> {
    let secret = store.secret(RETURN_PATH_SECRET)?;
    composer.key_message_ids(secret, campaign);
    Ok(())
}

/// Renders recipient `which` as it will be sent. Imports the list first when the campaign has
/// none yet (as `send` would), since the Message-ID comes from the recipient's row.
pub fn preview(
    campaign: &Campaign,
    store: &mut Store,
    which: &RecipientRef,
) -> Result<Preview, PreviewError> {
    let mut composer = Composer::new(campaign).map_err(|problems| {
        PreviewError::Campaign(problems.iter().map(ToString::to_string).collect())
    })?;
    preview_with(&mut composer, campaign, store, which)
}

/// [`preview`] with a composer the caller keeps (built once per edit, not per recipient shown).
/// The composer is given the database's keys here, as a run gives them, so the preview's
/// unsubscribe link, VERP envelope sender and mailto are the ones `send` will write, never the
/// unsigned placeholders an unkeyed composer makes (issue #15).
pub fn preview_with(
    composer: &mut Composer,
    campaign: &Campaign,
    store: &mut Store,
    which: &RecipientRef,
) -> Result<Preview, PreviewError> {
    let id = campaign_id(store, campaign)?;
    sign_links(composer, store, id).map_err(PreviewError::Keys)?;
    key_message_ids(composer, store, id).map_err(PreviewError::Keys)?;
    // The preview shows the envelope and List-Unsubscribe as they will be sent; a key that
    // cannot be read stops it rather than showing an envelope `send` would not use (issue #13).
    if let Some(feedback) = feedback_for(store, campaign, id).map_err(PreviewError::Keys)? {
        composer.set_feedback(feedback);
    }
    if store.counts(id)?.total() == 0 {
        import(store, campaign)?;
    }
    let describe = || match which {
        RecipientRef::Index(index) => format!("number {}", index + 1),
        RecipientRef::Email(email) => email.clone(),
    };
    let Some(row) = store.find_recipient(id, which)? else {
        return Err(PreviewError::NoSuchRecipient(describe()));
    };
    let index = match which {
        RecipientRef::Index(index) => *index,
        RecipientRef::Email(_) => store.position(id, row.id)?,
    };
    let compose_error = |error| PreviewError::Compose {
        email: row.email.clone(),
        error: Box::new(error),
    };
    let address = EmailAddress::parse(&row.email).map_err(|error| {
        compose_error(ComposeError::Address {
            what: "the recipient",
            value: row.email.clone(),
            reason: error.to_string(),
        })
    })?;
    let envelope = address.to_ascii();
    let data = RecipientData {
        id: row.id,
        email: &envelope,
        fields_json: &row.fields_json,
    };
    let mut preview = Preview {
        index,
        email: row.email.clone(),
        attachments: composer.attachments(),
        ..Preview::default()
    };
    match composer.compose_parts(&data, true) {
        Ok((parts, composed)) => {
            preview.headers = header_fields(&composed.bytes);
            preview.subject = parts.subject;
            preview.text = parts.text;
            preview.html = parts.html;
            preview.size_bytes = composed.bytes.len();
            preview.envelope_from = composed.envelope_from;
            preview.envelope_to = composed.envelope_to;
            preview.raw = composed.bytes;
        }
        Err(ComposeError::Skipped { reason }) => preview.skipped = Some(reason),
        Err(error) => return Err(compose_error(error)),
    }
    Ok(preview)
}

/// The header fields of a message, unfolded.
fn header_fields(message: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    fields
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
