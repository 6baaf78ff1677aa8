//! Comparing a delivered message with the one Herald composed: line endings made LF (a Maildir
//! stores LF), the trace headers a receiving MTA prepends (Return-Path, Delivered-To, Received)
//! taken off the top, MIME boundaries (random per composition) renamed in order of appearance,
//! and the Date header (the time of composition) set aside. Everything else must match byte for
//! byte. Also small header readers for assertions. Test-only.

/// Header names a receiving MTA adds in front of the message.
const TRACE: &[&str] = &["return-path", "delivered-to", "received", "x-original-to"];

/// The header section of `message` as (name, unfolded value) pairs, in order.
pub fn headers(message: &str) -> Vec<(String, String)> {
    let text = message.replace("\r\n", "\n");
    let head = text.split("\n\n").next().unwrap_or("");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.to_string(), value.trim().to_string()));
        }
    }
    out
}

/// The value of the first header called `name` (any case).
pub fn header(message: &str, name: &str) -> Option<String> {
    headers(message)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Splits off the trace headers at the top of a delivered message: (their names, the rest).
pub fn strip_trace(delivered: &str) -> (Vec<String>, String) {
    let text = delivered.replace("\r\n", "\n");
    let mut names = Vec::new();
    let mut rest = text.as_str();
    while let Some((name, _)) = rest.split_once(':') {
        if name.contains('\n') || !TRACE.contains(&name.to_ascii_lowercase().as_str()) {
            break;
        }
        names.push(name.to_string());
        // Skip the field and its continuation lines.
        let mut end = 0;
        let mut lines = rest.split_inclusive('\n');
        if let Some(first) = lines.next() {
            end += first.len();
        }
        for line in lines {
            if line.starts_with([' ', '\t']) {
                end += line.len();
            } else {
                break;
            }
        }
        rest = &rest[end..];
    }
    (names, rest.to_string())
}

/// The message with LF line endings, boundaries renamed `BOUNDARY-n` and the Date field
/// replaced by `Date: (date)`.
pub fn normalize(message: &str) -> String {
    let mut text = message.replace("\r\n", "\n");
    let mut boundaries = Vec::new();
    let mut search = text.as_str();
    while let Some(at) = search.find("boundary=") {
        let after = &search[at + "boundary=".len()..];
        let value = if let Some(quoted) = after.strip_prefix('"') {
            quoted.split('"').next().unwrap_or("")
        } else {
            after
                .split(|c: char| c == ';' || c.is_whitespace())
                .next()
                .unwrap_or("")
        };
        if !value.is_empty() && !boundaries.iter().any(|b: &String| b == value) {
            boundaries.push(value.to_string());
        }
        search = &after[value.len().min(after.len())..];
    }
    for (n, boundary) in boundaries.iter().enumerate() {
        text = text.replace(boundary.as_str(), &format!("BOUNDARY-{n}"));
    }
    let mut out = String::new();
    let mut in_date = false;
    let mut in_head = true;
    for line in text.split_inclusive('\n') {
        if in_head && (line == "\n") {
            in_head = false;
        }
        if in_head {
            if line.to_ascii_lowercase().starts_with("date:") {
                out.push_str("Date: (date)\n");
                in_date = true;
                continue;
            }
            if in_date && line.starts_with([' ', '\t']) {
                continue;
            }
            in_date = false;
        }
        out.push_str(line);
    }
    out
}

/// Asserts two normalized messages are equal, showing the first differing line.
pub fn assert_same_message(delivered: &str, composed: &str, who: &str) {
    let (_, delivered) = strip_trace(delivered);
    let delivered = normalize(&delivered);
    let composed = normalize(composed);
    if delivered == composed {
        return;
    }
    let first_difference = delivered
        .lines()
        .zip(composed.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .map(|(n, (a, b))| format!("line {}: delivered {a:?}\n          composed  {b:?}", n + 1))
        .unwrap_or_else(|| {
            format!(
                "one is a prefix of the other ({} vs {} lines)",
                delivered.lines().count(),
                composed.lines().count()
            )
        });
    panic!(
        "the message {who} received differs from what Herald composed:\n{first_difference}\n--- delivered:\n{delivered}\n--- composed:\n{composed}"
    );
}
