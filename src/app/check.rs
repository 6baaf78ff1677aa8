//! `herald check` and the window's Problems box: every recipient rendered, every field name
//! checked, deliverability warnings, and nothing imported or sent.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::campaign::Campaign;
use crate::compose::{
    ComposeError, Composer, RecipientData, TemplateErrorKind, bare_ip_links, mostly_images,
};
use crate::dnsauth::Level;
use crate::import::{FieldsEncoder, open_list, read_suppression};
use crate::recipients::{Deduper, RecipientList, Verdict};

/// A message over this size draws a warning: many providers refuse it (Gmail: 25 MB with
/// encoding) and it is slow to send a million times.
const LARGE_MESSAGE_BYTES: usize = 10 * 1024 * 1024;

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
    /// The deliverability warnings with how much each matters (their texts are in `warnings`
    /// too).
    pub cautions: Vec<Caution>,
}

/// One deliverability warning of `check` (no unsubscribe link, no DKIM, no bounce mailbox…)
/// and how much it matters: red when big mailbox providers refuse or junk such bulk mail
/// (the window's Start asks before a first send, issue #20), amber when it is worth fixing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caution {
    pub level: Level,
    pub text: String,
}

impl Caution {
    fn red(text: impl Into<String>) -> Caution {
        Caution {
            level: Level::Red,
            text: text.into(),
        }
    }

    fn amber(text: impl Into<String>) -> Caution {
        Caution {
            level: Level::Amber,
            text: text.into(),
        }
    }
}

/// How many rows of one kind of issue are listed by line before the rest is summed up.
const LISTED_PER_KIND: usize = 10;

/// Validates the campaign's content: reads the recipient list, renders every valid recipient's
/// message, and lists every problem (grouped, so one broken template does not print a million
/// lines). Imports nothing and sends nothing.
pub fn check(campaign: &Campaign) -> CheckReport {
    check_for(campaign, crate::oauth2::Front::Cli)
}

/// [`check`], with the steps a problem asks for worded for `front` (the window points at its
/// Sign in button where the CLI names `herald signin`).
pub fn check_for(campaign: &Campaign, front: crate::oauth2::Front) -> CheckReport {
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
    let (problems, warnings) = crate::oauth2::check(campaign, front);
    report.problems.extend(problems);
    report.warnings.extend(warnings);
    // A missing file was reported when the campaign loaded; one that cannot be read or holds
    // no certificate would stop a direct run at its start (issue #23).
    if let Some(path) = &campaign.direct.ca_file
        && path.is_file()
        && let Err(problem) = crate::mtasts::read_ca_file(path)
    {
        report.problems.push(problem);
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
                if let TemplateErrorKind::UnknownField(field) = &error.kind {
                    text.push_str(&unknown_field_hint(field, &columns));
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
    let cautions = deliverability(
        campaign,
        composer.as_ref(),
        sample.as_ref(),
        report.largest_bytes,
    );
    report
        .warnings
        .extend(cautions.iter().map(|caution| caution.text.clone()));
    report.cautions = cautions;
    report
}

/// The deliverability warnings `check` gives, without reading the whole list: the content
/// ones are judged on the first recipient's message. For the window's Start (issue #20), which
/// must not wait for a million messages to render before it asks.
pub fn cautions(campaign: &Campaign) -> Vec<Caution> {
    let composer = Composer::new(campaign).ok();
    let sample = composer
        .as_ref()
        .and_then(|composer| first_sample(campaign, composer));
    let largest_bytes = sample.as_ref().map_or(0, |sample| sample.bytes);
    deliverability(campaign, composer.as_ref(), sample.as_ref(), largest_bytes)
}

/// The first valid recipient's message, rendered unsigned.
fn first_sample(campaign: &Campaign, composer: &Composer) -> Option<Sample> {
    let csv = open_list(campaign).ok()?;
    let columns = csv.columns().to_vec();
    let encoder = FieldsEncoder::new(&columns);
    let mut deduper = Deduper::new();
    let mut fields_json = String::new();
    for row in csv.flatten() {
        let Verdict::Valid { address, .. } = deduper.classify(row.line, &row.email) else {
            continue;
        };
        encoder.encode(&row.fields, &mut fields_json);
        let envelope = address.to_ascii();
        let data = RecipientData {
            id: row.line as i64,
            email: &envelope,
            fields_json: &fields_json,
        };
        // One recipient the script skips or a template cannot render says nothing of the
        // others' content; the next one is tried.
        if let Ok((parts, composed)) = composer.compose_parts(&data, false) {
            return Some(Sample {
                html: parts.html,
                text: parts.text,
                bytes: composed.bytes.len(),
            });
        }
    }
    None
}

/// The deliverability warnings of issue #5: things that do not stop `herald send` but make big
/// mailbox providers junk or refuse it (the red ones make the window ask before a first send).
// Long because it is a list of independent warnings, each a few lines: one after another
// reads as the list `check` prints.
fn deliverability(
    campaign: &Campaign,
    composer: Option<&Composer>,
    sample: Option<&Sample>,
    largest_bytes: usize,
) -> Vec<Caution> {
    let mut found = Vec::new();
    let report = &mut found;
    let warn = |found: &mut Vec<Caution>, text: String| found.push(Caution::amber(text));
    let refuse = |found: &mut Vec<Caution>, text: String| found.push(Caution::red(text));
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
        refuse(report, "no unsubscribe link (message.unsubscribe): Gmail, Yahoo and Outlook require one-click unsubscribe from bulk senders".into());
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
        warn(report, "no [bounces] return_path: reports then carry no VERP tag, so most can only be matched unverified (by the failed address, which anyone can write): they are held for you to apply by id (herald bounces --apply ID, or the window's review list) instead of applied; set return_path so bounces prove they are about your mail".into());
    }
    match &campaign.dkim {
        None => refuse(
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
    let (Some(composer), Some(sample)) = (composer, sample) else {
        return found;
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
    if largest_bytes > LARGE_MESSAGE_BYTES {
        warn(
            report,
            format!(
                "the largest message is {} MB; messages over 10 MB are refused or delayed by many providers",
                largest_bytes.div_ceil(1024 * 1024)
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
    found
}

/// The first rendered recipient's bodies, for the content warnings.
struct Sample {
    html: Option<String>,
    text: String,
    bytes: usize,
}

// Long because one pass over the list does everything `check` needs of each row (address,
// fields, script, rendering, sizes), so a million rows are read once.
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
                        bytes: composed.bytes.len(),
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

/// What follows "there is no field named …": the fields there are, or, for the signed
/// unsubscribe link (a field Herald fills in, not a column), how to have one.
fn unknown_field_hint(field: &str, columns: &[String]) -> String {
    if field == crate::compose::UNSUBSCRIBE_URL_VARIABLE {
        return "; it is each recipient's signed unsubscribe link, which exists once the campaign \
                has an unsubscribe link: fill in Unsubscribe link under Publish, Mailbox and \
                unsubscribe settings ([unsubscribe] url)"
            .to_string();
    }
    format!("; the fields are: email, {}", columns.join(", "))
}

fn describe_render_error(error: &ComposeError, columns: &[String], line: u64) -> (String, String) {
    match error {
        ComposeError::Template(template) => {
            let group = format!(
                "{}:{}:{}:{:?}",
                template.template, template.line, template.column, template.kind
            );
            let mut text = format!("{template} at CSV line {line}");
            if let TemplateErrorKind::UnknownField(field) = &template.kind {
                text.push_str(&unknown_field_hint(field, columns));
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
