//! RFC 3464 delivery status notifications: the `message/delivery-status` part's per-recipient
//! groups (Original-/Final-Recipient, Action, Status, Diagnostic-Code) read into
//! `RecipientStatus`es, and the returned message's Message-IDs into the clues. A report whose
//! status part cannot be read falls back to its human-readable text (the first part, RFC 3464
//! §2), the way plain bounces are read.

use mail_parser::Message;

use super::classify::{find_enhanced_str, parse_enhanced};
use super::fields::{self, Group};
use super::mime::{self, Headers};
use super::{Action, Clues, MAX_RECIPIENTS, RecipientStatus, Report, bounded, push_unique, text};

/// Diagnostic text kept per recipient, at most.
pub const MAX_DIAGNOSTIC: usize = 1_000;

pub fn read(message: &Message<'_>, headers: &Headers, clues: &mut Clues) -> Report {
    let returned = mime::returned(message);
    for id in returned.message_ids {
        push_unique(&mut clues.message_ids, id);
    }
    for address in returned.return_path {
        push_unique(&mut clues.return_paths, address);
    }
    let Some(part) = mime::find_part(
        message,
        &["message/delivery-status", "message/global-delivery-status"],
    ) else {
        return text::read(message, headers, clues);
    };
    let Some(status_text) = mime::part_text(part) else {
        return Report::Unrecognized {
            why: "the delivery-status part is too big".into(),
        };
    };
    let groups = fields::groups(&status_text);
    let recipient_groups: Vec<&Group> = groups.iter().filter(|g| is_recipient(g)).collect();
    if recipient_groups.len() > MAX_RECIPIENTS {
        return Report::Unrecognized {
            why: format!("a delivery report on more than {MAX_RECIPIENTS} recipients"),
        };
    }
    if recipient_groups.is_empty() {
        // A broken status part: the text may still say who failed.
        return match text::read(message, headers, clues) {
            Report::Delivery(found) => Report::Delivery(found),
            _ => Report::Unrecognized {
                why: "a delivery report without recipient fields".into(),
            },
        };
    }
    let mut recipients: Vec<RecipientStatus> =
        recipient_groups.into_iter().map(recipient).collect();
    add_text_evidence(message, headers, &mut recipients);
    Report::Delivery(recipients)
}

/// Many MTAs (Exim's "Unrouteable address", OpenSMTPD) leave the status part's Diagnostic-Code
/// out and give only a generic `5.0.0`, while the human-readable part (RFC 3464 §2: the first
/// part, for people) says what happened: a recipient without a diagnostic takes the text its
/// address stands beside there, so its class is read from words and codes the MTA did write.
fn add_text_evidence(message: &Message<'_>, headers: &Headers, recipients: &mut [RecipientStatus]) {
    if recipients.iter().all(|r| !r.diagnostic.is_empty()) {
        return;
    }
    let subject = headers.subject().to_ascii_lowercase();
    let exclude = [headers.from_address.clone()];
    let parsed = text::parse(&mime::readable_text(message), &subject, &exclude);
    for recipient in recipients.iter_mut().filter(|r| r.diagnostic.is_empty()) {
        let Some(address) = recipient.address.as_deref() else {
            continue;
        };
        let Some(said) = parsed.recipients.iter().find(|found| {
            found
                .address
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(address))
        }) else {
            continue;
        };
        recipient.diagnostic = said.diagnostic.clone();
        if recipient.smtp_code.is_none() {
            recipient.smtp_code = said.smtp_code;
        }
    }
}

/// RFC 3464 §2.3: a per-recipient group has a Final-Recipient (required), an Action and a
/// Status; broken reports may lack any one of them.
fn is_recipient(group: &Group) -> bool {
    group.get("final-recipient").is_some()
        || group.get("original-recipient").is_some()
        || (group.get("action").is_some() && group.get("status").is_some())
}

fn recipient(group: &Group) -> RecipientStatus {
    let address = group
        .get("original-recipient")
        .and_then(fields::address_value)
        .or_else(|| group.get("final-recipient").and_then(fields::address_value))
        .or_else(|| {
            group
                .get("x-actual-recipient")
                .and_then(fields::address_value)
        });
    let diagnostic_field = group.get("diagnostic-code").unwrap_or_default();
    // RFC 3464 §2.3.6: "diagnostic-type; text", the type usually "smtp".
    let diagnostic = match diagnostic_field.split_once(';') {
        Some((kind, rest)) if !kind.contains(' ') => rest.trim(),
        _ => diagnostic_field.trim(),
    };
    let status = group
        .get("status")
        .and_then(|value| value.split_whitespace().next())
        .filter(|code| parse_enhanced(code).is_some())
        .map(str::to_string)
        .or_else(|| find_enhanced_str(diagnostic).map(str::to_string));
    let action = match group
        .get("action")
        .map(|value| value.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("failed" | "failure") => Action::Failed,
        Some("delayed") => Action::Delayed,
        Some("delivered") => Action::Delivered,
        Some("relayed") => Action::Relayed,
        Some("expanded") => Action::Expanded,
        // No or an unknown action: the status class says it (RFC 3463 §3.1).
        _ => match status.as_deref().and_then(parse_enhanced) {
            Some((2, _, _)) => Action::Delivered,
            Some((4, _, _)) => Action::Delayed,
            _ => Action::Failed,
        },
    };
    RecipientStatus {
        address,
        action,
        status,
        smtp_code: text::smtp_code(diagnostic),
        diagnostic: bounded(diagnostic, MAX_DIAGNOSTIC),
    }
}
