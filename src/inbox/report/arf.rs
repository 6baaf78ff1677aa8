//! RFC 5965 feedback reports (ARF), as feedback loops send them when a recipient marks a
//! mail as spam: the `message/feedback-report` part's Feedback-Type and Original-Rcpt-To, and
//! the returned message's To and Message-ID (§2: the third part, whole or its headers).
//! Many providers redact the address; the Message-ID and the VERP tag still name it.

use mail_parser::Message;

use super::fields;
use super::mime;
use super::{Clues, Complaint, Report, bounded, push_unique};

pub fn read(message: &Message<'_>, clues: &mut Clues) -> Report {
    let returned = mime::returned(message);
    for id in &returned.message_ids {
        push_unique(&mut clues.message_ids, id.clone());
    }
    for address in &returned.return_path {
        push_unique(&mut clues.return_paths, address.clone());
    }
    let Some(part) = mime::find_part(message, &["message/feedback-report"]) else {
        return Report::Unrecognized {
            why: "a feedback report without its message/feedback-report part".into(),
        };
    };
    let Some(text) = mime::part_text(part) else {
        return Report::Unrecognized {
            why: "the feedback-report part is too big".into(),
        };
    };
    let Some(group) = fields::groups(&text).into_iter().next() else {
        return Report::Unrecognized {
            why: "an empty feedback-report part".into(),
        };
    };
    // RFC 5965 §3.1: Feedback-Type is required.
    let Some(feedback_type) = group.get("feedback-type") else {
        return Report::Unrecognized {
            why: "a feedback report without Feedback-Type".into(),
        };
    };
    let address = group
        .all("original-rcpt-to")
        .find_map(fields::address_value)
        .or_else(|| returned.to.iter().find_map(|to| fields::address_value(to)))
        // Redacted addresses (`xxxxxxxx@example.com`, RFC 6590) name nobody.
        .filter(|address| !is_redacted(address));
    Report::Complaint(Complaint {
        address,
        feedback_type: bounded(&feedback_type.to_ascii_lowercase(), 64),
    })
}

/// RFC 6590 redaction replaces the local part with a repeated character or a hash-like run.
fn is_redacted(address: &str) -> bool {
    let local = address.split('@').next().unwrap_or_default();
    let mut chars = local.chars();
    let Some(first) = chars.next() else {
        return true;
    };
    local.len() >= 4 && chars.all(|c| c == first) && !first.is_ascii_digit()
        || local.eq_ignore_ascii_case("redacted")
}
