//! Reading a message fetched only in part (issue #21): its header section whole and the first
//! bytes of its body, as the mailbox reader fetches a message over its size bound. A bounce or
//! complaint that returns a newsletter with its pictures is big, yet its machine-readable part
//! comes first: RFC 3464 §2 and RFC 5965 §2 put the human text, then the report, then the
//! returned message. The body is cut at the top-level boundary delimiters (RFC 2046 §5.1.1);
//! only a part followed by another delimiter was read whole. When one of the whole parts is a
//! delivery-status or feedback-report part, the message is closed after its whole parts — the
//! cut part kept as its header section alone when that was read whole (the returned message's
//! headers, as RFC 6522's text/rfc822-headers carries them), its body never — and read as any
//! message is, so the proof rules of matching are the same as for a whole read. Anything
//! else is not read: `None`. Pure, bounded by its input, never a panic.

use super::{Reading, Report, mime};

/// Machine-readable report parts (RFC 3464, RFC 6533, RFC 5965).
const REPORT_PARTS: &[&str] = &[
    "message/delivery-status",
    "message/global-delivery-status",
    "message/feedback-report",
];
/// A returned message, of which only the header section may be kept.
const RETURNED_PARTS: &[&str] = &[
    "message/rfc822",
    "message/global",
    "text/rfc822-headers",
    "message/rfc822-headers",
    "message/global-headers",
];
const BLANK_LINE: &[u8] = b"\r\n\r\n";

/// Reads `raw`, the header section and the start of the body of a bigger message, when what
/// was read holds a whole report part; what it is then (a delivery report or a complaint).
pub fn read_partial(raw: &[u8]) -> Option<Reading> {
    let head_end = find(raw, BLANK_LINE)? + BLANK_LINE.len();
    let (head, body) = raw.split_at(head_end);
    let (kind, boundary) = mime::content_type_of(head)?;
    let boundary = boundary.filter(|b| !b.is_empty() && b.len() <= 70)?;
    if !kind.starts_with("multipart/") {
        return None;
    }
    let delimiters = delimiters(body, boundary.as_bytes());
    // Whole parts: from the line after one delimiter to the CRLF before the next.
    let has_report = delimiters.windows(2).any(|pair| {
        let [this, next] = pair else { return false };
        !this.closing
            && body
                .get(this.after..next.start)
                .and_then(part_kind)
                .is_some_and(|kind| REPORT_PARTS.contains(&kind.as_str()))
    });
    if !has_report {
        return None;
    }
    let last = delimiters.last()?;
    let mut closed = Vec::with_capacity(head_end + last.start + 256);
    closed.extend_from_slice(head);
    closed.extend_from_slice(body.get(..last.start)?);
    // The part that was cut: its returned message's header section, when read whole.
    if !last.closing
        && let Some(headers) = body.get(last.after..).and_then(returned_headers)
    {
        closed.extend_from_slice(b"\r\n--");
        closed.extend_from_slice(boundary.as_bytes());
        closed.extend_from_slice(b"\r\nContent-Type: text/rfc822-headers\r\n\r\n");
        closed.extend_from_slice(headers);
    }
    closed.extend_from_slice(b"\r\n--");
    closed.extend_from_slice(boundary.as_bytes());
    closed.extend_from_slice(b"--\r\n");
    let reading = super::read(&closed);
    matches!(reading.report, Report::Delivery(_) | Report::Complaint(_)).then_some(reading)
}

/// The content type of a whole part (its header section must be whole too).
fn part_kind(part: &[u8]) -> Option<String> {
    // A part with no header field starts with its blank line (RFC 2046 §5.1: text/plain).
    if part.starts_with(b"\r\n") {
        return Some("text/plain".into());
    }
    let end = find(part, BLANK_LINE)? + BLANK_LINE.len();
    mime::content_type_of(part.get(..end)?).map(|(kind, _)| kind)
}

/// The header section of the returned message in a cut part (its MIME headers, then the
/// message), ending with its blank line; `None` unless both were read whole and the part is
/// a returned message sent as is (no transfer encoding hides its headers).
fn returned_headers(part: &[u8]) -> Option<&[u8]> {
    let mime_end = find(part, BLANK_LINE)? + BLANK_LINE.len();
    let mime_head = part.get(..mime_end)?;
    let (kind, _) = mime::content_type_of(mime_head)?;
    if !RETURNED_PARTS.contains(&kind.as_str()) {
        return None;
    }
    let encoded = String::from_utf8_lossy(mime_head)
        .to_ascii_lowercase()
        .contains("content-transfer-encoding: base64");
    if encoded {
        return None;
    }
    let inner = part.get(mime_end..)?;
    let inner_end = find(inner, BLANK_LINE)? + BLANK_LINE.len();
    inner.get(..inner_end)
}

/// A delimiter line of the top-level boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Delimiter {
    /// Where it starts: the CRLF before it (RFC 2046 §5.1.1: that CRLF belongs to it), or 0 at
    /// the very start of the body.
    start: usize,
    /// Where the line after it begins.
    after: usize,
    /// The closing delimiter (`--boundary--`).
    closing: bool,
}

/// The delimiter lines of `boundary` in `body`, up to the closing one; a line cut by the end of
/// what was read is none yet.
fn delimiters(body: &[u8], boundary: &[u8]) -> Vec<Delimiter> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = body.get(at..).and_then(|rest| find(rest, b"--")) {
        let dashes = at + offset;
        at = dashes + 2;
        let line_start = dashes == 0 || body.get(..dashes).is_some_and(|b| b.ends_with(b"\r\n"));
        if !line_start
            || !body
                .get(at..)
                .is_some_and(|rest| rest.starts_with(boundary))
        {
            continue;
        }
        let closing = body
            .get(at + boundary.len()..)
            .is_some_and(|rest| rest.starts_with(b"--"));
        let Some(after) = line_end(body, dashes) else {
            break;
        };
        found.push(Delimiter {
            start: dashes.saturating_sub(2),
            after,
            closing,
        });
        at = after;
        if closing {
            break;
        }
    }
    found
}

/// Where the line holding `at` ends (just past its CRLF).
fn line_end(body: &[u8], at: usize) -> Option<usize> {
    let rest = body.get(at..)?;
    Some(at + find(rest, b"\r\n")? + 2)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the mailbox reader has of `raw`: its header section and `body_bytes` of its body.
    fn cut(raw: &str, body_bytes: usize) -> Vec<u8> {
        let head_end = raw.find("\r\n\r\n").expect("a header section") + 4;
        let end = (head_end + body_bytes).min(raw.len());
        raw.as_bytes()[..end].to_vec()
    }

    fn pictures() -> String {
        "QUJD".repeat(19).to_string() + "\r\n"
    }

    /// A DSN returning a newsletter whole, with `lines` lines of pictures.
    fn dsn(lines: usize) -> String {
        format!(
            "Delivered-To: bounces+tag@acme.example\r\nFrom: MAILER-DAEMON@mx.example\r\n\
             Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"RB\"\r\n\r\n\
             This is a MIME report.\r\n\
             --RB\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\
             --RB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n\
             Final-Recipient: rfc822; ada@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n\
             --RB\r\nContent-Type: message/rfc822\r\n\r\n\
             Return-Path: <bounces+returned@acme.example>\r\nMessage-ID: <1.2.mac.herald@acme.example>\r\n\
             From: Acme <news@acme.example>\r\nTo: ada@example.org\r\nSubject: News\r\n\
             Content-Type: multipart/mixed; boundary=\"N\"\r\n\r\n\
             --N\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\
             --N--\r\n\r\n--RB--\r\n",
            pictures().repeat(lines)
        )
    }

    fn failed_address(reading: &Reading) -> Option<String> {
        match &reading.report {
            Report::Delivery(list) => list.first().and_then(|r| r.address.clone()),
            _ => None,
        }
    }

    #[test]
    fn a_report_part_read_whole_is_read_and_the_returned_headers_with_it() {
        let raw = dsn(40_000);
        assert!(raw.len() > 3_000_000);
        let reading = read_partial(&cut(&raw, 64 * 1024)).expect("a report");
        assert_eq!(failed_address(&reading).as_deref(), Some("ada@example.org"));
        assert_eq!(
            reading.clues.return_paths,
            vec!["bounces+returned@acme.example".to_string()]
        );
        assert_eq!(
            reading.clues.message_ids,
            vec!["1.2.mac.herald@acme.example".to_string()]
        );
        assert_eq!(reading.clues.envelope_to[0], "bounces+tag@acme.example");
    }

    #[test]
    fn returned_headers_cut_in_the_middle_prove_nothing() {
        let raw = dsn(10);
        let at = raw.find("From: Acme").expect("returned From") - raw.find("\r\n\r\n").unwrap();
        let reading = read_partial(&cut(&raw, at)).expect("a report");
        assert_eq!(failed_address(&reading).as_deref(), Some("ada@example.org"));
        assert!(reading.clues.return_paths.is_empty(), "{reading:?}");
        assert!(reading.clues.message_ids.is_empty(), "{reading:?}");
    }

    #[test]
    fn a_report_part_cut_before_its_end_is_not_read() {
        let raw = dsn(10);
        let head = raw.find("\r\n\r\n").unwrap() + 4;
        // Cut inside the status fields, and just before the delimiter that ends them.
        let inside = raw.find("Status: 5.1.1").unwrap() - head;
        let before_next = raw
            .find("\r\n--RB\r\nContent-Type: message/rfc822")
            .unwrap()
            - head;
        for at in [inside, before_next, before_next + 4] {
            assert_eq!(read_partial(&cut(&raw, at)), None, "cut at {at}");
        }
        // Once the delimiter line after it is whole, the part is.
        let after = raw.find("Content-Type: message/rfc822").unwrap() - head;
        assert!(read_partial(&cut(&raw, after)).is_some());
    }

    #[test]
    fn a_complaint_returning_a_big_message_is_read() {
        let raw = format!(
            "From: fbl@isp.example\r\nTo: bounces@acme.example\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n\
             --F\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n\
             --F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n\
             User-Agent: ISP/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: <bob@example.org>\r\n\r\n\
             --F\r\nContent-Type: message/rfc822\r\n\r\nFrom: news@acme.example\r\n\
             To: bob@example.org\r\nSubject: News\r\n\r\n{}--F--\r\n",
            pictures().repeat(40_000)
        );
        let reading = read_partial(&cut(&raw, 64 * 1024)).expect("a complaint");
        let Report::Complaint(complaint) = reading.report else {
            panic!("{:?}", reading.report);
        };
        assert_eq!(complaint.address.as_deref(), Some("bob@example.org"));
    }

    #[test]
    fn big_messages_without_a_whole_report_part_are_not_read() {
        let mixed = format!(
            "From: someone@example.net\r\nSubject: pictures\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n\
             --B\r\nContent-Type: text/plain\r\n\r\nUser unknown: see attached.\r\n\
             --B\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n{}--B--\r\n",
            pictures().repeat(40_000)
        );
        let text_bounce = format!(
            "From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\n\
             <ada@example.org>: host mx said: 550 5.1.1 User unknown\r\n{}",
            pictures().repeat(40_000)
        );
        let no_boundary = "From: a@b\r\nContent-Type: multipart/report\r\n\r\n--x\r\n";
        for raw in [
            mixed.as_str(),
            text_bounce.as_str(),
            no_boundary,
            "\r\n\r\n",
        ] {
            assert_eq!(read_partial(&cut(raw, 64 * 1024)), None, "{:.80}", raw);
        }
        assert_eq!(read_partial(b""), None);
        assert_eq!(read_partial(b"no header section"), None);
    }
}
