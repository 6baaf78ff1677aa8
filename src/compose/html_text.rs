//! Derives a readable plain-text part from an HTML body, for campaigns without a text template:
//! tags go, block elements become line breaks, links keep their address, entities are decoded.
//! A small tolerant scanner, not an HTML parser: it only has to make text people can read.

pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut skip_until: Option<&'static str> = None;
    let mut link: Option<(String, usize)> = None;
    while !rest.is_empty() {
        let Some(open) = rest.find('<') else {
            if skip_until.is_none() {
                push_text(&mut out, rest);
            }
            break;
        };
        let (text, tail) = rest.split_at(open);
        if skip_until.is_none() {
            push_text(&mut out, text);
        }
        if tail.starts_with("<!--") {
            rest = tail.find("-->").map_or("", |end| &tail[end + 3..]);
            continue;
        }
        let Some(close) = tail.find('>') else {
            break;
        };
        let tag = &tail[1..close];
        rest = &tail[close + 1..];
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let closing = tag.starts_with('/');
        if let Some(end) = skip_until {
            if closing && name == end {
                skip_until = None;
            }
            continue;
        }
        match name.as_str() {
            "style" | "script" | "head" | "title" if !closing => {
                skip_until = Some(match name.as_str() {
                    "style" => "style",
                    "script" => "script",
                    "head" => "head",
                    _ => "title",
                });
            }
            "br" => out.push('\n'),
            "p" | "div" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "tr" | "table" | "ul"
            | "ol" | "blockquote" | "section" | "article" | "header" | "footer" => {
                end_line(&mut out);
                if !closing && name.starts_with('h') || name == "p" {
                    blank_line(&mut out);
                }
            }
            "li" if !closing => {
                end_line(&mut out);
                out.push_str("- ");
            }
            "td" | "th" if closing => out.push(' '),
            "hr" => {
                end_line(&mut out);
                out.push_str("----\n");
            }
            "a" if !closing => {
                link = attribute(tag, "href").map(|href| (href, out.len()));
            }
            "a" => {
                if let Some((href, start)) = link.take() {
                    let label = out.get(start..).unwrap_or("").trim().to_string();
                    let plain_href = href.strip_prefix("mailto:").unwrap_or(&href);
                    if !href.starts_with('#') && label != href && label != plain_href {
                        out.push_str(&format!(" ({href})"));
                    }
                }
            }
            "img" => {
                // `attribute` has decoded the entities already; decoding twice would turn a
                // literal "&amp;" in the alt text into "&".
                if let Some(alt) = attribute(tag, "alt").filter(|alt| !alt.trim().is_empty()) {
                    push_decoded(&mut out, &alt);
                }
            }
            _ => {}
        }
    }
    tidy(&out)
}

fn push_text(out: &mut String, text: &str) {
    push_decoded(out, &decode_entities(text));
}

fn push_decoded(out: &mut String, decoded: &str) {
    for c in decoded.chars() {
        if c.is_whitespace() && c != '\u{a0}' {
            if !out.ends_with([' ', '\n']) && !out.is_empty() {
                out.push(' ');
            }
        } else if c == '\u{a0}' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
}

fn end_line(out: &mut String) {
    while out.ends_with(' ') {
        out.pop();
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

fn blank_line(out: &mut String) {
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut search = 0;
    while let Some(found) = lower.get(search..)?.find(name) {
        let at = search + found;
        search = at + name.len();
        let before_ok = at == 0
            || lower
                .as_bytes()
                .get(at - 1)
                .is_some_and(|b| b.is_ascii_whitespace());
        let after = lower.get(at + name.len()..)?.trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value_start = tag.len() - after.len() + 1;
        let value = tag.get(value_start..)?.trim_start();
        let extracted = match value.chars().next() {
            Some(quote @ ('"' | '\'')) => value[1..].split(quote).next().unwrap_or(""),
            _ => value
                .split(|c: char| c.is_whitespace() || c == '>')
                .next()
                .unwrap_or(""),
        };
        return Some(decode_entities(extracted));
    }
    None
}

fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail.find(';').filter(|end| *end <= 10);
        let decoded = end.and_then(|end| {
            let name = &tail[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                "copy" => Some('©'),
                "reg" => Some('®'),
                "euro" => Some('€'),
                "mdash" => Some('—'),
                "ndash" => Some('–'),
                "hellip" => Some('…'),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Trims each line and allows at most one blank line in a row.
pub fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::html_to_text;

    fn check(html: &str, expected: &str) {
        assert_eq!(html_to_text(html), expected, "{html}");
    }

    #[test]
    fn makes_readable_text() {
        check(
            "<p>Hello <b>Ada</b>,</p><p>Our picks.</p>",
            "Hello Ada,\n\nOur picks.\n",
        );
        check(
            "<a href=\"https://x.example/a\">Shop now</a>",
            "Shop now (https://x.example/a)\n",
        );
        check(
            "<a href='https://x.example'>https://x.example</a>",
            "https://x.example\n",
        );
        check("<ul><li>one</li><li>two</li></ul>", "- one\n- two\n");
        check(
            "<head><title>T</title><style>p{}</style></head>Body",
            "Body\n",
        );
        check(
            "a&amp;b &lt;3 &#233;&#xE9; &bogus; &",
            "a&b <3 éé &bogus; &\n",
        );
        check("line<br>break", "line\nbreak\n");
        check("<!-- hidden -->shown", "shown\n");
        check("<img src=x alt=\"Logo\">", "Logo\n");
        check("unclosed <b", "unclosed\n");
    }
}
