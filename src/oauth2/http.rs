//! The token client's HTTP: one request per connection (HTTP/1.1 over hyper, https through the
//! same verified rustls configuration as relays, public roots plus the grant's `ca_file`), form
//! bodies out (RFC 6749 §4.1.3: `application/x-www-form-urlencoded`), JSON back, bounded in
//! size and time. Also the percent-encoding both directions need. Never logs a body: they carry
//! codes and tokens.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// Token and discovery answers are small; a megabyte is far beyond any real one.
const MAX_REPLY: usize = 1 << 20;
/// A provider that takes longer than this to answer one request is treated as unreachable.
const LIMIT: Duration = Duration::from_secs(30);

/// An answer: the status and the body.
pub(super) struct Reply {
    pub status: u16,
    pub body: Bytes,
}

/// GET `url`.
pub(super) async fn get(url: &str, ca_pem: Option<&[u8]>) -> Result<Reply, String> {
    request(url, None, ca_pem).await
}

/// POST `form` to `url`.
pub(super) async fn post_form(
    url: &str,
    form: &[(&str, &str)],
    ca_pem: Option<&[u8]>,
) -> Result<Reply, String> {
    request(url, Some(encode_form(form)), ca_pem).await
}

async fn request(url: &str, form: Option<String>, ca_pem: Option<&[u8]>) -> Result<Reply, String> {
    match tokio::time::timeout(LIMIT, request_unbounded(url, form, ca_pem)).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("no answer within {} s", LIMIT.as_secs())),
    }
}

async fn request_unbounded(
    url: &str,
    form: Option<String>,
    ca_pem: Option<&[u8]>,
) -> Result<Reply, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|error: hyper::http::uri::InvalidUri| error.to_string())?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("not an http(s) URL".into()),
    };
    let host = uri
        .host()
        .ok_or("the URL names no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri
        .authority()
        .map_or_else(|| host.clone(), |authority| authority.as_str().to_string());
    let path = uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string());
    let builder = hyper::Request::builder()
        .uri(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::ACCEPT, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("herald/", env!("CARGO_PKG_VERSION")),
        );
    let request = match form {
        Some(form) => builder
            .method(hyper::Method::POST)
            .header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(Bytes::from(form))),
        None => builder
            .method(hyper::Method::GET)
            .body(Full::new(Bytes::new())),
    }
    .map_err(|error| error.to_string())?;
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|error| error.to_string())?;
    if https {
        let tls = crate::engine::smtp::verified_tls(ca_pem)?;
        let name = crate::engine::smtp::tls_server_name(&host)?;
        let stream = tls.connect(name, stream).await.map_err(|error| {
            crate::engine::smtp::tls_certificate_problem(&error)
                .unwrap_or_else(|| format!("TLS: {error}"))
        })?;
        exchange(TokioIo::new(stream), request).await
    } else {
        exchange(TokioIo::new(stream), request).await
    }
}

async fn exchange<T>(io: TokioIo<T>, request: hyper::Request<Full<Bytes>>) -> Result<Reply, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|error| error.to_string())?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| error.to_string());
    let answer = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            Limited::new(response.into_body(), MAX_REPLY)
                .collect()
                .await
                .map(|body| Reply {
                    status,
                    body: body.to_bytes(),
                })
                .map_err(|error| error.to_string())
        }
        Err(error) => Err(error),
    };
    driver.abort();
    answer
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
