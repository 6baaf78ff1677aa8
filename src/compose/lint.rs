//! Deliverability hints about a rendered HTML body: pure functions that look for what spam
//! filters hold against bulk mail (images instead of text, links to bare IP addresses). They
//! only warn; they never change a message.

use std::net::Ipv4Addr;

use super::html_to_text;

/// Whether the HTML is mostly images: at least one `<img>` and fewer than 100 letters of text
/// per image (or under 400 in all). Such messages are a classic spam signature and unreadable
/// with images off.
pub fn mostly_images(html: &str) -> bool {
    let lower = html.to_ascii_lowercase();
    let images = lower.matches("<img").count();
    if images == 0 {
        return false;
    }
    let without_alt = strip_images(html);
    let letters = html_to_text(&without_alt)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .count();
    letters < 400 && letters < 100 * images
}

fn strip_images(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.to_ascii_lowercase().find("<img") {
        out.push_str(&rest[..at]);
        rest = rest[at..].find('>').map_or("", |end| &rest[at + end + 1..]);
    }
    out.push_str(rest);
    out
}

/// Links (any `scheme://host`) whose host is a bare IPv4 or bracketed IPv6 address.
pub fn bare_ip_links(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find("://") {
        let after = &rest[at + 3..];
        let end = after
            .find(|c: char| {
                matches!(c, '/' | '"' | '\'' | '?' | '#' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        let host = authority.rsplit('@').next().unwrap_or(authority);
        let is_ip = if host.starts_with('[') {
            true
        } else {
            let host = host.split(':').next().unwrap_or(host);
            host.parse::<Ipv4Addr>().is_ok()
        };
        if is_ip && !found.iter().any(|known: &String| known == authority) {
            found.push(authority.to_string());
        }
        rest = &after[end..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_heavy_html_is_noticed() {
        assert!(mostly_images("<img src=cid:a.png alt=\"Big sale\">"));
        assert!(mostly_images("<p>Hi</p><img src=x><img src=y>"));
        assert!(!mostly_images("<p>No images here.</p>"));
        let long_text = "word ".repeat(120);
        assert!(!mostly_images(&format!("<p>{long_text}</p><img src=x>")));
    }

    #[test]
    fn bare_ip_links_are_found() {
        let html = "<a href=\"http://192.0.2.7/x\">a</a> <a href='https://acme.example/'>b</a> \
                    <a href=\"https://[2001:db8::1]:8443/\">c</a> <img src=\"http://user@198.51.100.2:80/p.gif\">";
        assert_eq!(
            bare_ip_links(html),
            vec!["192.0.2.7", "[2001:db8::1]:8443", "user@198.51.100.2:80"]
        );
        assert!(bare_ip_links("<a href=\"https://1.2.3.4.example/\">x</a>").is_empty());
    }
}
