//! What came back, as data before it is action: one message from the bounce mailbox read into a
//! closed type (a delivery report, a complaint, an auto-reply, an unsubscribe request, or none of
//! these), with the clues that name the recipient it is about. Pure functions over bytes: no I/O,
//! no store, never a panic, bounded work on hostile input. Matching and applying come after, in
//! their own modules.
//!
//! The order of questions matters: an unsubscribe address wins whatever the body says; a
//! `multipart/report` is read by its report-type before anything else, since a DSN is also
//! auto-generated (RFC 3834 §5); a plain-text bounce needs a bounce's sender or subject before
//! its body is read; only then is an auto-reply an auto-reply. Everything else is
//! `NotAReport`, so ordinary mail in the mailbox is never touched (listmonk #1334).

mod arf;
mod classify;
mod dsn;
mod fields;
mod mime;
mod partial;
mod text;

pub use classify::{Wording, classify, classify_reply, refused_as_dead};
pub use partial::read_partial;

/// One message read from the mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub report: Report,
    /// What names the mailing it answers, for matching (issue #13, item 4).
    pub clues: Clues,
}

/// What a message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A delivery report: RFC 3464 or a bounce recognized from its text. One entry per
    /// recipient it reports on.
    Delivery(Vec<RecipientStatus>),
    /// An RFC 5965 (ARF) feedback report: the recipient marked the mail as spam.
    Complaint(Complaint),
    /// An RFC 3834 automatic reply (vacation, out of office): never a bounce.
    AutoReply,
    /// A mail sent to the mailto of List-Unsubscribe; `tag` is the token after `u-` in the
    /// address it was sent to (see `crate::token`).
    Unsubscribe { tag: String },
    /// Looks like a bounce or report but could not be read (broken MIME, no recipient, too big):
    /// counted as unrecognized and left unread in the mailbox.
    Unrecognized { why: String },
    /// None of the kinds above: left exactly as it was, not even marked read.
    NotAReport,
}

/// The fate of one recipient in a delivery report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    /// The failed address (Original-Recipient — the address as the sender gave it, RFC 3464
    /// §2.3.1 — else Final-Recipient, else from the text), without the `rfc822;` type.
    pub address: Option<String>,
    pub action: Action,
    /// RFC 3463 enhanced status code, like "5.1.1".
    pub status: Option<String>,
    /// The SMTP reply code, when the report gives one (from Diagnostic-Code or the text).
    pub smtp_code: Option<u16>,
    /// Diagnostic-Code or the relevant text, trimmed and bounded.
    pub diagnostic: String,
}

/// RFC 3464 §2.3.3 Action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    /// An event, not a bounce.
    Delayed,
    Delivered,
    Relayed,
    Expanded,
}

/// An ARF feedback report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complaint {
    /// The complaining address, if the report names it (Original-Rcpt-To, or the To of the
    /// returned message; many providers redact it).
    pub address: Option<String>,
    /// Feedback-Type: "abuse", "fraud", "not-spam"….
    pub feedback_type: String,
}

/// What names the mailing a report answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clues {
    /// Addresses the report was delivered to (Delivered-To, X-Original-To, To), in that order:
    /// a VERP return path `bounces+TAG@…` names the recipient.
    pub envelope_to: Vec<String>,
    /// Message-IDs of the returned message (from its headers or the report's
    /// In-Reply-To/References), without angle brackets.
    pub message_ids: Vec<String>,
    /// The returned message's Return-Path (issue #21): the VERP envelope sender the receiving
    /// server recorded, which names the recipient even when the report came to a plain address.
    pub return_paths: Vec<String>,
}

/// How a failed or delayed recipient's report counts (issue #13, item 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// No such user or domain, moved, disabled: the address is dead.
    Hard,
    /// Mailbox full, too big, expired in a queue, temporary trouble: counted toward
    /// `soft_limit`.
    Soft,
    /// Policy, spam, block lists, authentication: the sender's problem, never suppresses.
    Blocked,
}

/// Whole messages above this are not parsed, only their headers looked at: a bounce is small,
/// and a huge one is hostile or a mistake.
const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// The headers of an oversized message are read from at most this prefix.
const MAX_HEADER_BYTES: usize = 256 << 10;
/// A report naming more recipients than this is not read (issue #13: "a thousand recipients").
pub(crate) const MAX_RECIPIENTS: usize = 1_000;

/// Reads one raw message (RFC 5322 bytes as fetched from the mailbox).
pub fn read(raw: &[u8]) -> Reading {
    if raw.len() > MAX_MESSAGE_BYTES {
        return read_oversized(raw);
    }
    let Some(message) = mime::parse(raw) else {
        return Reading {
            report: Report::NotAReport,
            clues: Clues::default(),
        };
    };
    let headers = mime::Headers::of(&message);
    let mut clues = Clues {
        envelope_to: headers.envelope_to(),
        message_ids: Vec::new(),
        return_paths: Vec::new(),
    };
    if let Some(report) = unsubscribe(&clues.envelope_to) {
        return Reading { report, clues };
    }
    let report = what_is(&message, &headers, &mut clues, 0);
    // The report's own threading headers come after the returned message's ids: those are
    // Herald's own Message-IDs when a mail client answered with In-Reply-To.
    for id in headers
        .ids("in-reply-to")
        .into_iter()
        .chain(headers.ids("references"))
    {
        push_unique(&mut clues.message_ids, id);
    }
    Reading { report, clues }
}

/// A message too big to parse: its headers still say whether it is an unsubscribe request or
/// looks like a report (then it is unrecognized, left unread), or is none of these.
fn read_oversized(raw: &[u8]) -> Reading {
    let prefix = raw.get(..MAX_HEADER_BYTES).unwrap_or(raw);
    let Some(message) = mime::parse_headers(prefix) else {
        return Reading {
            report: Report::NotAReport,
            clues: Clues::default(),
        };
    };
    let headers = mime::Headers::of(&message);
    let clues = Clues {
        envelope_to: headers.envelope_to(),
        message_ids: Vec::new(),
        return_paths: Vec::new(),
    };
    if let Some(report) = unsubscribe(&clues.envelope_to) {
        return Reading { report, clues };
    }
    let report = if headers.report_type().is_some() || text::bounce_signal(&headers) {
        Report::Unrecognized {
            why: format!("a report of {} bytes is too big to read", raw.len()),
        }
    } else {
        Report::NotAReport
    };
    Reading { report, clues }
}

/// A message sent to a `…+u-TAG@…` address is an unsubscribe request (issue #13, item 3).
fn unsubscribe(envelope_to: &[String]) -> Option<Report> {
    for address in envelope_to {
        let Some((local, _domain)) = address.rsplit_once('@') else {
            continue;
        };
        let lower = local.to_ascii_lowercase();
        let Some(at) = lower.find("+u-") else {
            continue;
        };
        let tag = &local[at + 3..];
        // The token alphabet (`crate::token`): letters, digits and dots; relays may fold case.
        let well_formed = !tag.is_empty()
            && tag.len() <= 64
            && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
        return Some(if well_formed {
            Report::Unsubscribe {
                tag: tag.to_ascii_lowercase(),
            }
        } else {
            Report::Unrecognized {
                why: "sent to an unsubscribe address with a malformed tag".into(),
            }
        });
    }
    None
}

/// The kind of `message`; `depth` > 0 inside a forwarded message.
fn what_is(
    message: &mail_parser::Message<'_>,
    headers: &mime::Headers,
    clues: &mut Clues,
    depth: u8,
) -> Report {
    match headers.report_type().as_deref() {
        // RFC 3464 §2 and RFC 6533 (internationalized DSNs).
        Some("delivery-status" | "global-delivery-status") => {
            return dsn::read(message, headers, clues);
        }
        // RFC 5965 §2.
        Some("feedback-report") => return arf::read(message, clues),
        // RFC 8098: a read receipt is sent by software, and is no bounce.
        Some("disposition-notification") => return Report::AutoReply,
        Some(other) => {
            if mime::find_part(message, &["message/delivery-status"]).is_some() {
                return dsn::read(message, headers, clues);
            }
            if mime::find_part(message, &["message/feedback-report"]).is_some() {
                return arf::read(message, clues);
            }
            return Report::Unrecognized {
                why: format!("a multipart/report of type {other:?}"),
            };
        }
        None => {}
    }
    // RFC 5965 §2 asks for multipart/report, but some feedback loops send the same parts as
    // multipart/mixed: the feedback-report part says what it is.
    if mime::find_part(message, &["message/feedback-report"]).is_some() {
        return arf::read(message, clues);
    }
    if text::bounce_signal(headers) {
        // Some relays wrap a DSN in multipart/mixed; the status part still says it all.
        if mime::find_part(
            message,
            &["message/delivery-status", "message/global-delivery-status"],
        )
        .is_some()
        {
            return dsn::read(message, headers, clues);
        }
        return text::read(message, headers, clues);
    }
    if depth == 0 && text::forwarded_bounce(headers) {
        // A bounce forwarded as an attachment: read the attached one.
        if let Some(inner) = mime::attached_message(message) {
            let inner_headers = mime::Headers::of(inner);
            let report = what_is(inner, &inner_headers, clues, depth + 1);
            if matches!(report, Report::Delivery(_)) {
                return report;
            }
        }
        // Forwarded inline: the bounce's text is in the body.
        return text::read(message, headers, clues);
    }
    if headers.is_auto_reply() {
        return Report::AutoReply;
    }
    Report::NotAReport
}

fn push_unique(into: &mut Vec<String>, value: String) {
    if !value.is_empty() && into.len() < 64 && !into.contains(&value) {
        into.push(value);
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, trimmed.
fn bounded(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_of(raw: &str) -> Report {
        read(raw.as_bytes()).report
    }

    fn dsn_with(recipients: usize) -> String {
        let mut raw = String::from(
            "From: MAILER-DAEMON@mx.example\r\nTo: bounces@acme.example\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n\
             --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n",
        );
        for n in 0..recipients {
            raw.push_str(&format!(
                "Final-Recipient: rfc822; r{n}@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
            ));
        }
        raw.push_str("--b--\r\n");
        raw
    }

    #[test]
    fn a_thousand_recipients_are_read_and_more_are_not() {
        let Report::Delivery(found) = report_of(&dsn_with(MAX_RECIPIENTS)) else {
            panic!("not a delivery report");
        };
        assert_eq!(found.len(), MAX_RECIPIENTS);
        assert_eq!(found[999].address.as_deref(), Some("r999@example.net"));
        assert!(matches!(
            report_of(&dsn_with(MAX_RECIPIENTS + 1)),
            Report::Unrecognized { .. }
        ));
    }

    #[test]
    fn an_unsubscribe_address_wins_and_a_bad_tag_is_unrecognized() {
        let cases = [
            (
                "To: bounces+u-C.LFLS.00ff@acme.example\r\n\r\nhi",
                Report::Unsubscribe {
                    tag: "c.lfls.00ff".into(),
                },
            ),
            (
                "Delivered-To: x+U-ab.c@acme.example\r\nTo: news@acme.example\r\n\r\n",
                Report::Unsubscribe { tag: "ab.c".into() },
            ),
            // The local part before "+" is anything; a bounce's body does not matter.
            (
                "To: <list+u-1.2.3@acme.example>\r\nFrom: MAILER-DAEMON@x.example\r\nSubject: Undeliverable\r\n\r\n<a@b.example>: 550 5.1.1",
                Report::Unsubscribe {
                    tag: "1.2.3".into(),
                },
            ),
            (
                "To: bounces+u-@acme.example\r\n\r\n",
                Report::Unrecognized {
                    why: "sent to an unsubscribe address with a malformed tag".into(),
                },
            ),
            (
                "To: bounces+u-a/b@acme.example\r\n\r\n",
                Report::Unrecognized {
                    why: "sent to an unsubscribe address with a malformed tag".into(),
                },
            ),
            (
                "To: bounces+1.2.abc@acme.example\r\n\r\nunsubscribe",
                Report::NotAReport,
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(report_of(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn hostile_and_odd_messages_are_bounded_answers() {
        let huge_body = "x".repeat(MAX_MESSAGE_BYTES + 1);
        let huge_bounce = format!(
            "From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\n{huge_body}"
        );
        assert!(matches!(
            report_of(&huge_bounce),
            Report::Unrecognized { .. }
        ));
        let huge_mail = format!("From: friend@example.com\r\nSubject: photos\r\n\r\n{huge_body}");
        assert_eq!(report_of(&huge_mail), Report::NotAReport);
        let huge_unsubscribe = format!("To: b+u-x.y.z@acme.example\r\n\r\n{huge_body}");
        assert_eq!(
            report_of(&huge_unsubscribe),
            Report::Unsubscribe {
                tag: "x.y.z".into()
            }
        );

        let cases = [
            ("", Report::NotAReport),
            ("\r\n\r\n", Report::NotAReport),
            ("not a message at all", Report::NotAReport),
            // Broken MIME in a report: no boundary, no parts.
            (
                "Content-Type: multipart/report; report-type=delivery-status\r\n\r\nx",
                Report::Unrecognized {
                    why: "a bounce without a failed address".into(),
                },
            ),
            // A person writing from postmaster@ with a signature line is no bounce.
            (
                "From: postmaster@example.org\r\nSubject: about your mailing\r\n\r\n\
                 Hello, please call me.\r\n\r\njane@example.org\r\n",
                Report::Unrecognized {
                    why: "a bounce without a failed address".into(),
                },
            ),
            (
                "Content-Type: multipart/report; report-type=tlsrpt; boundary=b\r\n\r\n--b--",
                Report::Unrecognized {
                    why: "a multipart/report of type \"tlsrpt\"".into(),
                },
            ),
            (
                "Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\nContent-Type: message/feedback-report\r\n\r\nUser-Agent: x\r\n--b--",
                Report::Unrecognized {
                    why: "a feedback report without Feedback-Type".into(),
                },
            ),
            // A wrong charset is read lossily, not refused.
            (
                "From: MAILER-DAEMON@mx.example\r\nContent-Type: text/plain; charset=klingon\r\n\r\n<café@example.net>: 550 5.1.1 user unknown",
                Report::Delivery(vec![RecipientStatus {
                    address: Some("café@example.net".into()),
                    action: Action::Failed,
                    status: Some("5.1.1".into()),
                    smtp_code: Some(550),
                    diagnostic: "550 5.1.1 user unknown".into(),
                }]),
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(report_of(raw), expected, "{raw:?}");
        }
        // Latin-1 bytes where UTF-8 was announced.
        let latin1 =
            b"From: MAILER-DAEMON@mx.example\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
                       <caf\xe9@example.net>: 550 5.1.1 user unknown\r\n";
        let Report::Delivery(found) = read(latin1).report else {
            panic!("not read as a bounce");
        };
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].status.as_deref(), Some("5.1.1"));
    }

    #[test]
    fn a_redacted_complaint_names_nobody_but_keeps_its_message_id() {
        let raw = "From: fbl@isp.example\r\nTo: fbl@acme.example\r\n\
                   Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n\
                   --b\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n\
                   --b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: Abuse\r\nOriginal-Rcpt-To: xxxxxxxx@example.com\r\n\r\n\
                   --b\r\nContent-Type: text/rfc822-headers\r\n\r\nTo: xxxxxxxx@example.com\r\nMessage-ID: <5.a.herald@acme.example>\r\n\r\n--b--\r\n";
        let reading = read(raw.as_bytes());
        assert_eq!(
            reading.report,
            Report::Complaint(Complaint {
                address: None,
                feedback_type: "abuse".into()
            })
        );
        assert_eq!(reading.clues.message_ids, ["5.a.herald@acme.example"]);
    }

    #[test]
    fn original_recipient_names_the_address_that_was_mailed() {
        let raw = "From: MAILER-DAEMON@mx.example\r\n\
                   Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n\
                   --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n\
                   Final-Recipient: rfc822; real.box@internal.example\r\nOriginal-Recipient: rfc822; alias@example.com\r\n\
                   Action: failure\r\nStatus: 5.2.2 (mailbox full)\r\nDiagnostic-Code: smtp; 552-5.2.2 over quota\r\n\r\n--b--\r\n";
        assert_eq!(
            report_of(raw),
            Report::Delivery(vec![RecipientStatus {
                address: Some("alias@example.com".into()),
                action: Action::Failed,
                status: Some("5.2.2".into()),
                smtp_code: Some(552),
                diagnostic: "552-5.2.2 over quota".into(),
            }])
        );
    }
}
