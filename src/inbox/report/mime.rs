//! The one door to `mail-parser` (its only user): parsing a message, its top-level headers as
//! plain strings, its parts by content type, its readable text, and the headers of the message
//! it returns. Bounded: parts above `MAX_PART_BYTES` are not read, text is cut at `MAX_TEXT`.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::{HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::fields;

/// A part bigger than this is skipped: a status report or a bounce's text is a few KB.
const MAX_PART_BYTES: usize = 4 << 20;
/// Readable text gathered from one message, at most.
const MAX_TEXT: usize = 1 << 20;

/// Parses a whole message; `None` when it has no header at all. The parser promises not to
/// panic; a report reader must not either, so a panic inside it is caught and the message
/// counted as unparseable rather than taking the mailbox run down.
pub fn parse(raw: &[u8]) -> Option<Message<'_>> {
    catch_unwind(AssertUnwindSafe(|| MessageParser::default().parse(raw)))
        .ok()
        .flatten()
        .filter(|message| !message.parts.is_empty())
}

/// Parses only the header section.
pub fn parse_headers(raw: &[u8]) -> Option<Message<'_>> {
    catch_unwind(AssertUnwindSafe(|| {
        MessageParser::default().parse_headers(raw)
    }))
    .ok()
    .flatten()
    .filter(|message| !message.parts.is_empty())
}

/// The `type/subtype` (lower case) and boundary parameter of the header section `raw`
/// (a message's or a MIME part's); `text/plain` when it says none (RFC 2045 §5.2).
pub fn content_type_of(raw: &[u8]) -> Option<(String, Option<String>)> {
    let message = parse_headers(raw)?;
    let root = message.parts.first()?;
    let boundary = root
        .content_type()
        .and_then(|content_type| content_type.attribute("boundary"))
        .map(str::to_string);
    Some((part_type(root), boundary))
}

/// The top-level header fields of a message, as strings.
#[derive(Debug, Default)]
pub struct Headers {
    /// (lower-case name, values): an address field gives one value per address.
    fields: Vec<(String, Vec<String>)>,
    /// The report-type parameter of a multipart/report.
    report_type: Option<String>,
    /// The From field's first address and display name.
    pub from_address: String,
    pub from_name: String,
}

impl Headers {
    pub fn of(message: &Message<'_>) -> Headers {
        let Some(root) = message.parts.first() else {
            return Headers::default();
        };
        let mut headers = Headers::default();
        for header in root.headers.iter().take(500) {
            let name = header.name().to_ascii_lowercase();
            let values = value_texts(header.value());
            if name == "from"
                && let HeaderValue::Address(address) = header.value()
                && let Some(first) = address.first()
            {
                headers.from_address = first
                    .address
                    .as_deref()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                headers.from_name = first.name.as_deref().unwrap_or_default().to_string();
            }
            headers.fields.push((name, values));
        }
        if let Some(content_type) = root.content_type() {
            let full = format!(
                "{}/{}",
                content_type.ctype(),
                content_type.subtype().unwrap_or_default()
            )
            .to_ascii_lowercase();
            if full == "multipart/report" {
                headers.report_type = Some(
                    content_type
                        .attribute("report-type")
                        .unwrap_or_default()
                        .trim()
                        .to_ascii_lowercase(),
                );
            }
        }
        headers
    }

    /// Every value of the field `name` (lower case).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(field, _)| field == name)
            .flat_map(|(_, values)| values.iter().map(String::as_str))
    }

    pub fn first<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.all(name).next()
    }

    pub fn subject(&self) -> String {
        self.first("subject").unwrap_or_default().trim().to_string()
    }

    /// The report-type of a `multipart/report` (empty when it has none); `None` for any
    /// other content type.
    pub fn report_type(&self) -> Option<String> {
        self.report_type.clone()
    }

    /// Delivered-To, X-Original-To, To: every address, in that order, once each.
    pub fn envelope_to(&self) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for name in ["delivered-to", "x-original-to", "to"] {
            for value in self.all(name) {
                for piece in value.split(',') {
                    let Some(address) = fields::address_value(piece) else {
                        continue;
                    };
                    if found.len() < 64 && !found.iter().any(|k| k.eq_ignore_ascii_case(&address)) {
                        found.push(address);
                    }
                }
            }
        }
        found
    }

    /// The Message-IDs in the field `name`, without angle brackets.
    pub fn ids(&self, name: &str) -> Vec<String> {
        let mut ids = Vec::new();
        for value in self.all(name) {
            fields::message_ids(value, &mut ids);
        }
        ids
    }

    /// RFC 3834 §5 and the fields and subjects vacation programs are known by.
    pub fn is_auto_reply(&self) -> bool {
        let flagged = |name: &str| {
            self.first(name).is_some_and(|value| {
                let value = value.trim().to_ascii_lowercase();
                let value = value.split(';').next().unwrap_or_default().trim();
                !value.is_empty() && value != "no" && value != "false"
            })
        };
        if flagged("auto-submitted")
            || flagged("x-autoreply")
            || flagged("x-autorespond")
            || flagged("x-autoresponse")
        {
            return true;
        }
        if self
            .first("precedence")
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("auto_reply"))
        {
            return true;
        }
        let subject = self.subject().to_lowercase();
        AUTO_REPLY_SUBJECTS
            .iter()
            .any(|prefix| subject.starts_with(prefix))
    }
}

/// Subjects that open an automatic reply in the common clients and servers (Outlook, Gmail,
/// Exchange, Zimbra, vacation(1)), in several languages.
const AUTO_REPLY_SUBJECTS: &[&str] = &[
    "auto:",
    "automatic reply",
    "autoreply",
    "auto-reply",
    "auto reply",
    "auto-response",
    "autoresponse",
    "out of office",
    "out of the office",
    "vacation",
    "on vacation",
    "away from the office",
    "abwesenheitsnotiz",
    "automatische antwort",
    "réponse automatique",
    "respuesta automática",
    "risposta automatica",
    "automatisch antwoord",
    "resposta automática",
    "autosvar",
];

fn value_texts(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(text) => vec![text.to_string()],
        HeaderValue::TextList(list) => list.iter().map(|item| item.to_string()).collect(),
        HeaderValue::Address(address) => address
            .iter()
            .filter_map(|addr| addr.address.as_deref().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// `type/subtype` of a part, lower case.
fn part_type(part: &MessagePart<'_>) -> String {
    match part.content_type() {
        Some(content_type) => format!(
            "{}/{}",
            content_type.ctype(),
            content_type.subtype().unwrap_or_default()
        )
        .to_ascii_lowercase(),
        None => "text/plain".to_string(),
    }
}

/// The first part of `message` (not of a message inside it) of one of `types`.
pub fn find_part<'a, 'x>(message: &'a Message<'x>, types: &[&str]) -> Option<&'a MessagePart<'x>> {
    message
        .parts
        .iter()
        .find(|part| types.contains(&part_type(part).as_str()))
}

/// A part's content as text, if it is not too big (wrong charsets are read lossily).
pub fn part_text<'a>(part: &'a MessagePart<'_>) -> Option<Cow<'a, str>> {
    match &part.body {
        PartType::Text(text) | PartType::Html(text) if text.len() <= MAX_PART_BYTES => {
            Some(Cow::Borrowed(text.as_ref()))
        }
        PartType::Binary(bytes) | PartType::InlineBinary(bytes)
            if bytes.len() <= MAX_PART_BYTES =>
        {
            Some(String::from_utf8_lossy(bytes))
        }
        _ => None,
    }
}

/// The first message attached to `message` (a forwarded or returned message).
pub fn attached_message<'a, 'x>(message: &'a Message<'x>) -> Option<&'a Message<'x>> {
    message.parts.iter().find_map(|part| match &part.body {
        PartType::Message(inner) => Some(inner),
        _ => None,
    })
}

/// The readable text of `message`'s own parts: its plain-text parts, else its HTML parts with
/// the markup taken out. Attached messages are not included.
pub fn readable_text(message: &Message<'_>) -> String {
    let mut plain = String::new();
    let mut html = String::new();
    for part in &message.parts {
        let kind = part_type(part);
        let Some(text) = part_text(part) else {
            continue;
        };
        match (&part.body, kind.as_str()) {
            (PartType::Text(_), "text/plain") => push_text(&mut plain, &text),
            (PartType::Html(_), _) => push_text(&mut html, &text),
            _ => {}
        }
    }
    if plain.trim().is_empty() {
        return strip_html(&html);
    }
    plain
}

fn push_text(into: &mut String, text: &str) {
    if into.len() >= MAX_TEXT {
        return;
    }
    let room = MAX_TEXT - into.len();
    let mut end = text.len().min(room);
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    into.push_str(text.get(..end).unwrap_or_default());
    into.push('\n');
}

/// HTML to lines of text, roughly: enough to find addresses and codes in an HTML-only bounce
/// (newer Exchange Online notices).
fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    // Lower-cased once: ASCII case folding keeps every byte offset, so end tags are searched in
    // this copy at the offset of `after`. Lower-casing the rest at each tag made a hostile run
    // of `<style></style>` quadratic.
    let lower = html.to_ascii_lowercase();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let close = after.find('>').unwrap_or(after.len().saturating_sub(1));
        let tag = after.get(1..close).unwrap_or_default().to_ascii_lowercase();
        let name = tag.trim_start_matches('/');
        if [
            "br", "p", "div", "tr", "li", "h1", "h2", "h3", "table", "td",
        ]
        .iter()
        .any(|block| name == *block || name.starts_with(&format!("{block} ")))
        {
            out.push('\n');
        }
        if name.starts_with("style") || name.starts_with("script") {
            // Drop the whole element's content.
            let end_tag = if name.starts_with("style") {
                "</style"
            } else {
                "</script"
            };
            let offset = html.len() - after.len();
            let found = lower.get(offset..).and_then(|tail| tail.find(end_tag));
            match found {
                Some(at) => rest = after.get(at..).unwrap_or_default(),
                None => rest = "",
            }
            if let Some(end) = rest.find('>') {
                rest = &rest[end + 1..];
            }
            continue;
        }
        rest = after.get(close + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// What the returned message's headers say: its Message-IDs, its To and its From.
#[derive(Debug, Default)]
pub struct Returned {
    pub message_ids: Vec<String>,
    /// Its Return-Path: the envelope sender the receiving MTA recorded, Herald's VERP address.
    pub return_path: Vec<String>,
    pub to: Vec<String>,
    pub from: Vec<String>,
}

/// The headers of the message a report returns: a `message/rfc822` part (RFC 3464 §2,
/// RFC 5965 §2 item d) or a `text/rfc822-headers` part (RFC 6522 §4).
pub fn returned(message: &Message<'_>) -> Returned {
    let mut returned = Returned::default();
    for part in &message.parts {
        let kind = part_type(part);
        match (&part.body, kind.as_str()) {
            (PartType::Message(inner), _) => {
                let headers = Headers::of(inner);
                returned.message_ids.extend(headers.ids("message-id"));
                for value in headers.all("return-path") {
                    returned.return_path.extend(addresses_in(value));
                }
                returned.to.extend(headers.all("to").map(str::to_string));
                returned
                    .from
                    .extend(headers.all("from").map(str::to_string));
            }
            (
                _,
                "text/rfc822-headers"
                | "message/rfc822-headers"
                | "message/global-headers"
                | "message/rfc822"
                | "message/global",
            ) => {
                let Some(text) = part_text(part) else {
                    continue;
                };
                let Some(group) = fields::groups(&text).into_iter().next() else {
                    continue;
                };
                for id in group.all("message-id") {
                    fields::message_ids(id, &mut returned.message_ids);
                }
                for to in group.all("to") {
                    returned.to.extend(addresses_in(to));
                }
                for value in group.all("return-path") {
                    returned.return_path.extend(addresses_in(value));
                }
                for from in group.all("from") {
                    returned.from.extend(addresses_in(from));
                }
            }
            _ => {}
        }
    }
    returned
}

/// Addresses in a header value written by hand (`"A" <a@b>, c@d`).
pub fn addresses_in(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter_map(|piece| {
            let piece = match (piece.rfind('<'), piece.rfind('>')) {
                (Some(open), Some(close)) if open < close => &piece[open + 1..close],
                _ => piece,
            };
            fields::address_value(piece.trim())
        })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_loses_its_tags_styles_and_scripts() {
        let html = "<html><STYLE>p{color:red}</Style><p>Delivery&nbsp;failed</p>\
                    <script>x<y</SCRIPT><div>550 5.1.1 &lt;ada@example.org&gt;</div>";
        let text = strip_html(html);
        assert!(!text.contains("color"), "{text:?}");
        assert!(!text.contains("x<y"), "{text:?}");
        assert!(text.contains("Delivery failed"), "{text:?}");
        assert!(text.contains("550 5.1.1 <ada@example.org>"), "{text:?}");
    }

    /// A hostile bounce of a megabyte of empty style elements: each element used to lower-case
    /// the whole rest of the text (tens of gigabytes of copying); now one pass. Without the fix
    /// this test does not finish.
    #[test]
    fn a_megabyte_of_style_elements_is_read_in_one_pass() {
        let html = "<style></STYLE>".repeat(MAX_TEXT / 15);
        assert_eq!(strip_html(&html).trim(), "");
    }
}
