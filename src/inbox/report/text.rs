//! Bounces that are not RFC 3464 reports, read from their text: Gmail and Google Workspace,
//! Microsoft 365 and Exchange (NDRs with "Diagnostic information for administrators"), Yahoo,
//! qmail, Exim, Postfix and sendmail bodies, Amazon SES and other relays. A message is read as
//! a bounce only when its sender or subject is a bounce's (`bounce_signal`); then the failed
//! addresses are the ones standing where these servers put them — alone on a line, opening a
//! line in angle brackets, or right after "wasn't delivered to" — each with the SMTP and
//! enhanced codes of its paragraph. The returned message's text (after a "copy of the message"
//! line) gives Message-IDs, never failed addresses.

use mail_parser::Message;

use super::classify::find_enhanced_at;
use super::dsn::MAX_DIAGNOSTIC;
use super::mime::{self, Headers};
use super::{Action, Clues, MAX_RECIPIENTS, RecipientStatus, Report, bounded, fields, push_unique};

/// Local parts of the addresses bounces come from (RFC 5321 §4.5.1 postmaster, and the
/// traditional daemon names), and the prefix Exchange gives its NDR sender.
const BOUNCE_SENDERS: &[&str] = &[
    "mailer-daemon",
    "mailer_daemon",
    "mailerdaemon",
    "maildaemon",
    "mail-daemon",
    "postmaster",
    "mdaemon",
];

/// Display names of bounce senders ("Mail Delivery Subsystem", Gmail's; "Mail Delivery
/// System", Postfix's and Exim's; "Microsoft Outlook" sends Exchange Online's NDRs).
const BOUNCE_NAMES: &[&str] = &[
    "mail delivery",
    "mailer-daemon",
    "mailer daemon",
    "postmaster",
    "mail administrator",
    "mail system",
];

/// Subjects that open a bounce or a delay notice, lower case.
const BOUNCE_SUBJECTS: &[&str] = &[
    "undelivered mail returned to sender",
    "undeliverable",
    "undelivered mail",
    "undelivered message",
    "delivery status notification",
    "mail delivery failed",
    "mail delivery failure",
    "message delivery failure",
    "delivery failure",
    "delivery failed",
    "failure notice",
    "failed delivery",
    "returned mail",
    "delivery notification",
    "nondeliverable",
    "non-deliverable",
    "non delivery",
    "non-delivery",
    "delayed mail",
    "delivery delayed",
    "mail system error",
    "message not delivered",
    "could not send message",
    "warning: could not send message",
    "delivery has failed",
    "delivery problem",
    "mail could not be delivered",
    // Exchange and Outlook in other languages.
    "unzustellbar",
    "non remis",
    "non distribuable",
    "onbestelbaar",
    "no se puede entregar",
    "non recapitabile",
    "não é possível entregar",
    "olevererbart",
];

/// Lines that open the returned message in a plain bounce.
const RETURNED_MARKERS: &[&str] = &[
    "original message",
    "copy of the message",
    "copy of your message",
    "message headers",
    "headers of the original",
    "returned message",
    "undelivered message",
    "message follows",
    "unsent message",
    "rfc822",
];

/// Phrases followed by the failed address, lower case.
const ADDRESS_PHRASES: &[&str] = &[
    "wasn't delivered to ",
    "was not delivered to ",
    "couldn't be delivered to ",
    "could not be delivered to ",
    "delivering your message to ",
    "your message to ",
    "delivery to ",
    "failed to deliver to ",
    "unable to deliver to ",
    "not be delivered to ",
    "undeliverable to ",
];

/// Words that say a notice is about a failure (or a delay), lower case.
const FAILURE_WORDS: &[&str] = &[
    "could not be delivered",
    "couldn't be delivered",
    "wasn't delivered",
    "was not delivered",
    "not yet been delivered",
    "undeliverable",
    "undelivered",
    "delivery has failed",
    "delivery failed",
    "delivery to the following",
    "failed permanently",
    "permanent error",
    "permanent fatal error",
    "unable to deliver",
    "wasn't able to deliver",
    "not able to deliver",
    "address(es) failed",
    "message not delivered",
    "address not found",
    "user unknown",
    "no such user",
    "does not exist",
    "rejected",
    "delayed",
    "will retry",
    "error occurred while trying to deliver",
];

/// Words of a delay notice (a warning, no bounce yet).
const DELAY_WORDS: &[&str] = &[
    "(delay)",
    "delayed",
    "will retry",
    "will continue trying",
    "will be retried",
    "still being retried",
    "not yet been delivered",
    "warning message only",
    "could not send message for past",
    "temporary problem delivering",
];

/// Whether the sender or the subject is a bounce's.
pub fn bounce_signal(headers: &Headers) -> bool {
    let local = headers
        .from_address
        .rsplit_once('@')
        .map(|(local, _)| local)
        .unwrap_or_default();
    if BOUNCE_SENDERS.contains(&local) || local.starts_with("microsoftexchange") {
        return true;
    }
    let name = headers.from_name.to_ascii_lowercase();
    if BOUNCE_NAMES.iter().any(|n| name.contains(n)) {
        return true;
    }
    is_bounce_subject(&headers.subject().to_ascii_lowercase())
}

fn is_bounce_subject(subject: &str) -> bool {
    BOUNCE_SUBJECTS.iter().any(|s| subject.starts_with(s))
}

/// A person forwarded a bounce ("Fwd: Undelivered Mail Returned to Sender").
pub fn forwarded_bounce(headers: &Headers) -> bool {
    let subject = headers.subject().to_ascii_lowercase();
    for prefix in ["fwd:", "fw:", "wg:", "tr:", "[fwd:"] {
        if let Some(rest) = subject.strip_prefix(prefix) {
            return is_bounce_subject(rest.trim_start());
        }
    }
    false
}

/// Reads a bounce's text.
pub fn read(message: &Message<'_>, headers: &Headers, clues: &mut Clues) -> Report {
    let returned = mime::returned(message);
    for id in &returned.message_ids {
        push_unique(&mut clues.message_ids, id.clone());
    }
    for address in &returned.return_path {
        push_unique(&mut clues.return_paths, address.clone());
    }
    let body = mime::readable_text(message);
    let mut exclude: Vec<String> = clues
        .envelope_to
        .iter()
        .chain(returned.from.iter())
        .map(|a| a.to_ascii_lowercase())
        .collect();
    exclude.push(headers.from_address.clone());
    let subject = headers.subject().to_ascii_lowercase();
    let parsed = parse(&body, &subject, &exclude);
    for id in parsed.message_ids {
        push_unique(&mut clues.message_ids, id);
    }
    for address in parsed.quoted_return_path {
        push_unique(&mut clues.return_paths, address);
    }
    if parsed.too_many {
        return Report::Unrecognized {
            why: format!("a bounce naming more than {MAX_RECIPIENTS} recipients"),
        };
    }
    let mut recipients = parsed.recipients;
    if recipients.is_empty() {
        // No address where bounces put one: the returned message's single To is the one
        // that failed, with whatever codes the text gave.
        let to: Vec<String> = returned
            .to
            .iter()
            .chain(parsed.quoted_to.iter())
            .filter_map(|a| fields::address_value(a))
            .filter(|a| !exclude.contains(&a.to_ascii_lowercase()))
            .collect();
        let evidence = parsed.best_line.is_some() || parsed.failure_words;
        if let ([only], true) = (to.as_slice(), evidence) {
            let mut recipient = new_recipient(only.clone(), parsed.delayed);
            if let Some(line) = &parsed.best_line {
                add_evidence(&mut recipient, line);
            }
            finish(&mut recipient, parsed.delayed);
            recipients.push(recipient);
        }
    }
    if recipients.is_empty() {
        return Report::Unrecognized {
            why: "a bounce without a failed address".into(),
        };
    }
    Report::Delivery(recipients)
}

/// What the text of a bounce says.
#[derive(Debug, Default)]
pub struct Parsed {
    pub recipients: Vec<RecipientStatus>,
    pub message_ids: Vec<String>,
    /// Addresses of the quoted returned message's To.
    pub quoted_to: Vec<String>,
    /// The quoted returned message's Return-Path (Herald's VERP envelope sender).
    pub quoted_return_path: Vec<String>,
    /// The first line of the notice carrying an enhanced code, with the rest of its paragraph.
    pub best_line: Option<String>,
    pub delayed: bool,
    pub too_many: bool,
    /// Whether the notice says, in words, that something failed or was delayed.
    pub failure_words: bool,
}

/// Reads the failed addresses and their codes from a bounce's `text`; `exclude` (lower case)
/// are addresses that are not the failed one (the sender, the return path).
pub fn parse(text: &str, subject: &str, exclude: &[String]) -> Parsed {
    let lines: Vec<&str> = text.lines().take(20_000).collect();
    let cut = lines
        .iter()
        .position(|line| opens_returned_message(line))
        .unwrap_or(lines.len());
    let (notice, returned) = lines.split_at(cut);
    let mut parsed = Parsed {
        message_ids: quoted_ids(returned),
        quoted_to: quoted_field(returned, "to:"),
        quoted_return_path: quoted_field(returned, "return-path:"),
        ..Parsed::default()
    };
    let notice_lower = notice.join("\n").to_ascii_lowercase();
    parsed.delayed = DELAY_WORDS
        .iter()
        .any(|w| subject.contains(w) || notice_lower.contains(w))
        && !notice_lower.contains("permanent");
    // The line and the rest of its paragraph: carriers write the code on one line and the
    // reason ("user unknown", "宛先不明") on the next.
    parsed.best_line = notice
        .iter()
        .position(|line| find_enhanced_at(line).is_some())
        .map(|at| {
            let paragraph: Vec<&str> = notice[at..]
                .iter()
                .take(6)
                .take_while(|line| !line.trim().is_empty())
                .map(|line| line.trim())
                .collect();
            bounded(&paragraph.join(" "), MAX_DIAGNOSTIC)
        });

    let mut index = 0;
    while index < notice.len() {
        let Some((address, first)) = candidate(notice[index]) else {
            index += 1;
            continue;
        };
        // The paragraph: this line's rest and the lines below it up to a blank line or the
        // next address.
        let mut block = vec![first];
        let mut next = index + 1;
        while next < notice.len() && block.len() < 12 {
            let line = notice[next];
            if line.trim().is_empty() || candidate(line).is_some() {
                break;
            }
            block.push(line.trim().to_string());
            next += 1;
        }
        index = next;
        let lower = address.to_ascii_lowercase();
        let local = lower.split('@').next().unwrap_or_default();
        if exclude.contains(&lower) || BOUNCE_SENDERS.contains(&local) {
            continue;
        }
        let evidence = block.join(" ");
        match parsed.recipients.iter_mut().find(|r| {
            r.address
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(&address))
        }) {
            Some(known) => add_evidence(known, &evidence),
            None => {
                if parsed.recipients.len() >= MAX_RECIPIENTS {
                    parsed.too_many = true;
                    return parsed;
                }
                let mut recipient = new_recipient(address, parsed.delayed);
                add_evidence(&mut recipient, &evidence);
                parsed.recipients.push(recipient);
            }
        }
    }
    // One recipient and the codes in a paragraph of their own (Gmail: "The response from the
    // remote server was:").
    if let [only] = parsed.recipients.as_mut_slice()
        && only.status.is_none()
        && let Some(line) = &parsed.best_line
    {
        add_evidence(only, line);
    }
    // An address with neither a code nor a word of failure anywhere in the notice is a
    // signature or a contact line, not a bounce: a person writing from postmaster@ is not
    // reporting a dead mailbox.
    parsed.failure_words = FAILURE_WORDS.iter().any(|w| notice_lower.contains(w));
    if !parsed.failure_words {
        parsed
            .recipients
            .retain(|r| r.status.is_some() || r.smtp_code.is_some());
    }
    let delayed = parsed.delayed;
    for recipient in &mut parsed.recipients {
        finish(recipient, delayed);
    }
    parsed
}

fn new_recipient(address: String, delayed: bool) -> RecipientStatus {
    RecipientStatus {
        address: Some(address),
        action: if delayed {
            Action::Delayed
        } else {
            Action::Failed
        },
        status: None,
        smtp_code: None,
        diagnostic: String::new(),
    }
}

/// Adds a paragraph of text about a recipient: its codes if none were known yet.
fn add_evidence(recipient: &mut RecipientStatus, evidence: &str) {
    let evidence = evidence.trim();
    if evidence.is_empty() || recipient.diagnostic.contains(evidence) {
        return;
    }
    if recipient.status.is_none() {
        recipient.status = find_enhanced_at(evidence).map(|(_, code)| code.to_string());
    }
    if recipient.smtp_code.is_none() {
        recipient.smtp_code = smtp_code(evidence);
    }
    let joined = if recipient.diagnostic.is_empty() {
        evidence.to_string()
    } else {
        format!("{} {evidence}", recipient.diagnostic)
    };
    recipient.diagnostic = bounded(&joined, MAX_DIAGNOSTIC);
}

/// A permanent code overrides a notice's delay words (a mixed report); a temporary one keeps
/// the recipient delayed only when the notice said so.
fn finish(recipient: &mut RecipientStatus, delayed: bool) {
    let class = recipient
        .status
        .as_deref()
        .and_then(|s| s.bytes().next())
        .or_else(|| {
            recipient
                .smtp_code
                .map(|c| if c >= 500 { b'5' } else { b'4' })
        });
    recipient.action = match class {
        Some(b'5') => Action::Failed,
        _ if delayed => Action::Delayed,
        _ => Action::Failed,
    };
}

fn opens_returned_message(line: &str) -> bool {
    let trimmed = line.trim();
    let lower = trimmed.to_ascii_lowercase();
    let ruled = ["---", "===", "___", "***", "[--"]
        .iter()
        .any(|rule| lower.starts_with(rule));
    if ruled && RETURNED_MARKERS.iter().any(|m| lower.contains(m)) {
        return true;
    }
    // Exchange: "Original message headers:"; qmail: "--- Below this line is a copy of the
    // message." (ruled); a bare quoted header block.
    lower.starts_with("original message headers")
        || lower.starts_with("original message follows")
        || lower.starts_with("headers of the original message")
        || line.starts_with("Return-Path:")
        || line.starts_with("Received: from")
}

/// Message-IDs quoted in the returned message's text (`Message-ID: <…>`, perhaps folded to
/// the next line or quoted with `>`).
fn quoted_ids(lines: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for (index, line) in lines.iter().enumerate().take(2_000) {
        let cleaned = line.trim_start_matches(|c: char| c == '>' || c.is_whitespace());
        let Some((name, value)) = cleaned.split_once(':') else {
            continue;
        };
        if !name.eq_ignore_ascii_case("message-id") {
            continue;
        }
        let value = if value.trim().is_empty() {
            lines.get(index + 1).copied().unwrap_or_default()
        } else {
            value
        };
        fields::message_ids(value, &mut ids);
    }
    ids
}

fn quoted_field(lines: &[&str], name: &str) -> Vec<String> {
    lines
        .iter()
        .take(200)
        .filter_map(|line| {
            let cleaned = line.trim_start_matches(|c: char| c == '>' || c.is_whitespace());
            let head = cleaned.get(..name.len())?;
            head.eq_ignore_ascii_case(name)
                .then(|| mime::addresses_in(cleaned.get(name.len()..).unwrap_or_default()))
        })
        .flatten()
        .take(16)
        .collect()
}

/// Whether `line` names a failed address, and the text that follows it on the line.
fn candidate(line: &str) -> Option<(String, String)> {
    let trimmed = line.trim();
    // Quoted transcript and header lines are not where the failed address stands.
    if trimmed.starts_with(">>>") || trimmed.starts_with("<<<") {
        return None;
    }
    if let Some(inner) = trimmed.strip_prefix('<') {
        // Postfix, qmail, Yahoo, sendmail: "<a@b.example>: host … said: 550 …".
        let close = inner.find('>')?;
        let address = inner.get(..close)?.trim();
        if is_address(address) {
            let rest = inner.get(close + 1..).unwrap_or_default();
            let rest = rest.trim_start_matches([':', '.', ',']).trim();
            return Some((address.to_string(), rest.to_string()));
        }
        return None;
    }
    // Exchange: "Display Name<mailto:a@b.example>".
    if let Some(at) = trimmed.find("<mailto:") {
        let inner = trimmed.get(at + 8..).unwrap_or_default();
        if let Some(address) = inner.strip_suffix('>')
            && is_address(address)
        {
            return Some((address.to_string(), String::new()));
        }
    }
    // Exim, Gmail, Exchange, SES, sendmail: the address alone on its line, perhaps followed by
    // ":", "...", or "(a@b.example)".
    let end = trimmed
        .find(|c: char| c.is_whitespace() || c == ':' || c == ',')
        .unwrap_or(trimmed.len());
    let head = trimmed.get(..end).unwrap_or_default();
    let (head, sendmail_rest) = match head.find("...") {
        Some(dots) => (head.get(..dots).unwrap_or_default(), true),
        None => (head, false),
    };
    if is_address(head) {
        let rest = trimmed.get(end..).unwrap_or_default().trim();
        let standalone = rest.is_empty()
            || rest.starts_with(':')
            || rest.starts_with('(')
            || sendmail_rest
            || rest.starts_with("...");
        if standalone {
            let rest = rest.trim_start_matches([':', '.']).trim();
            return Some((head.to_string(), rest.to_string()));
        }
    }
    // Gmail, Exchange Online, relays: "… wasn't delivered to a@b.example because …".
    let lower = trimmed.to_ascii_lowercase();
    for phrase in ADDRESS_PHRASES {
        let Some(at) = lower.find(phrase) else {
            continue;
        };
        let after = trimmed.get(at + phrase.len()..).unwrap_or_default();
        let after = after.trim_start().trim_start_matches('<');
        let end = after
            .find(|c: char| c.is_whitespace() || c == '>' || c == ',' || c == ';')
            .unwrap_or(after.len());
        let address = after
            .get(..end)
            .unwrap_or_default()
            .trim_end_matches(['.', ':', ')', '"', '\'']);
        if is_address(address) {
            return Some((address.to_string(), trimmed.to_string()));
        }
    }
    None
}

/// An address as bounces write them: `local@domain.tld`, dot-atom characters (RFC 5322
/// §3.2.3) and UTF-8 (RFC 6531), a dotted domain.
pub fn is_address(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c) || !c.is_ascii());
    let domain_ok = domain.len() <= 253
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.' || !c.is_ascii());
    local_ok && domain_ok
}

/// The SMTP reply code in a diagnostic: the one just before the enhanced code
/// (`550 5.1.1`, `550-5.1.1`, `#550 5.1.1`), else the first standalone 4xx/5xx number.
pub fn smtp_code(text: &str) -> Option<u16> {
    let bytes = text.as_bytes();
    if let Some((at, _)) = find_enhanced_at(text)
        && at >= 4
    {
        let before = &bytes[at - 4..at];
        if matches!(before[3], b' ' | b'-')
            && before[..3].iter().all(u8::is_ascii_digit)
            && matches!(before[0], b'4' | b'5')
            && (at == 4 || !bytes[at - 5].is_ascii_alphanumeric())
        {
            return std::str::from_utf8(&before[..3]).ok()?.parse().ok();
        }
    }
    for start in 0..bytes.len().saturating_sub(2) {
        let window = &bytes[start..start + 3];
        if !matches!(window[0], b'4' | b'5') || !window.iter().all(u8::is_ascii_digit) {
            continue;
        }
        let before_ok = start == 0
            || !matches!(bytes[start - 1], b'0'..=b'9' | b'.' | b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'_' | b'/' | b'=' | b'@');
        let after = bytes.get(start + 3).copied();
        let after_ok = matches!(
            after,
            None | Some(b' ' | b'-' | b':' | b')' | b'\'' | b'"' | b'\t' | b',')
        );
        if before_ok && after_ok {
            return std::str::from_utf8(window).ok()?.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_codes_are_found_beside_their_enhanced_codes() {
        let cases = [
            ("550 5.1.1 user unknown", Some(550)),
            ("host x said: 550-5.1.1 The email account", Some(550)),
            ("#550 5.1.10 RESOLVER.ADR.RecipientNotFound", Some(550)),
            (
                "Remote Server returned '554 5.7.515 Access denied'",
                Some(554),
            ),
            ("554: delivery error: dd This user doesn't", Some(554)),
            ("Remote host said: 452 mailbox full", Some(452)),
            ("host 192.168.550.1 said nothing", None),
            ("after 5500 seconds", None),
            ("user550@example.com", None),
            ("no code here", None),
        ];
        for (text, expected) in cases {
            assert_eq!(smtp_code(text), expected, "{text:?}");
        }
    }

    #[test]
    fn addresses_are_told_from_other_words() {
        for good in [
            "a@b.example",
            "first.last+tag@sub.example.co.uk",
            "ü@exämple.de",
        ] {
            assert!(is_address(good), "{good}");
        }
        for bad in [
            "a@b",
            "@b.example",
            "a@.example",
            "a@b..example",
            "a b@c.example",
            "a@b.example.",
        ] {
            assert!(!is_address(bad), "{bad}");
        }
    }

    #[test]
    fn candidates_stand_where_bounces_put_them() {
        let cases = [
            (
                "<a@b.example>: host mx said: 550 5.1.1",
                Some("a@b.example"),
            ),
            ("  a@b.example", Some("a@b.example")),
            ("a@b.example (a@b.example)", Some("a@b.example")),
            ("a@b.example... User unknown", Some("a@b.example")),
            (
                "Your message wasn't delivered to a@b.example because",
                Some("a@b.example"),
            ),
            (
                "Your message to <a@b.example> couldn't be delivered.",
                Some("a@b.example"),
            ),
            ("Please write to help@acme.example for help", None),
            ("From: Acme <news@acme.example>", None),
            (">>> RCPT To:<a@b.example>", None),
            ("<<< 550 5.1.1 <a@b.example>... User unknown", None),
            ("<not an address>", None),
        ];
        for (line, expected) in cases {
            assert_eq!(
                candidate(line).map(|(a, _)| a).as_deref(),
                expected,
                "{line:?}"
            );
        }
    }
}
