//! The token client's requests, through the program's one HTTP client (`crate::http`: https
//! authenticated as relays are, public roots plus the grant's `ca_file`, bounded in time and
//! size): form bodies out (RFC 6749 §4.1.3: `application/x-www-form-urlencoded`), JSON back.
//! Also the percent-encoding both directions need. Never logs a body: they carry codes and
//! tokens.

use std::time::Duration;

use crate::http::{Limits, Request};

/// Token and discovery answers are small; a megabyte is far beyond any real one. A provider
/// that takes longer than 30 s to answer one request is treated as unreachable.
const LIMITS: Limits = Limits {
    total: Duration::from_secs(30),
    max_body: 1 << 20,
};

/// An answer: the status and the body.
pub(super) struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// GET `url`.
pub(super) async fn get(url: &str, ca_pem: Option<&[u8]>) -> Result<Reply, String> {
    send(Request::get(url), ca_pem).await
}

/// POST `form` to `url`.
pub(super) async fn post_form(
    url: &str,
    form: &[(&str, &str)],
    ca_pem: Option<&[u8]>,
) -> Result<Reply, String> {
    send(Request::post_form(url, encode_form(form)), ca_pem).await
}

async fn send(request: Request, ca_pem: Option<&[u8]>) -> Result<Reply, String> {
    let request = request.header("accept", "application/json");
    crate::http::send(request, ca_pem, LIMITS)
        .await
        .map(|response| Reply {
            status: response.status,
            body: response.body,
        })
        .map_err(|error| error.to_string())
}

/// `a=1&b=x%20y`: RFC 3986 unreserved characters as they are, everything else percent-encoded
/// (a strict subset of what `application/x-www-form-urlencoded` allows).
pub(super) fn encode_form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", percent_encode(key), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(super) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes one query component (`+` is a space, `%XX` a byte); `None` when the result is not
/// UTF-8 or an escape is broken.
pub(super) fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(index + 1..index + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                index += 2;
            }
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8(out).ok()
}

/// The pairs of a query string, decoded; broken pairs are left out.
pub(super) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_queries_round_trip() {
        let form = encode_form(&[
            ("scope", "openid email"),
            ("redirect_uri", "http://127.0.0.1:5/"),
        ]);
        assert_eq!(
            form,
            "scope=openid%20email&redirect_uri=http%3A%2F%2F127.0.0.1%3A5%2F"
        );
        assert_eq!(
            parse_query("code=a%2Bb&state=x+y&bad=%zz&iss=http%3A%2F%2Fh"),
            [
                ("code".to_string(), "a+b".to_string()),
                ("state".to_string(), "x y".to_string()),
                ("iss".to_string(), "http://h".to_string()),
            ]
        );
        assert_eq!(percent_decode("%4"), None);
    }
}
