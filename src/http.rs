//! The program's one HTTP client, a capability with one owner (a leaf: it imports only `tls`):
//! HTTP/1.1 over hyper, `https` authenticated by the `tls` module exactly as a relay is
//! (Mozilla's roots plus a user's own CA). Every request is bounded: one deadline for the whole
//! exchange (connection, TLS, head and body), a cap on the body, no redirects followed, no
//! cookies. The unsubscribe pull, the rendered preview's remote images, OAuth2 token endpoints
//! and MTA-STS policies (`mtasts`) all go through here, so nobody hand-writes HTTP again.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::tls;

/// What to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// An absolute `http://` or `https://` URL.
    pub url: String,
    /// Extra header fields; `Host` and `User-Agent` are added.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Connect to this address instead of resolving the URL's host through the system, which
    /// keeps naming the server for `Host`, SNI and the certificate check (MTA-STS resolves its
    /// policy hosts through direct mode's own DNS, issue #23).
    pub connect_to: Option<std::net::IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Request {
    pub fn get(url: impl Into<String>) -> Request {
        Request {
            method: Method::Get,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            connect_to: None,
        }
    }

    /// A POST of an `application/x-www-form-urlencoded` body.
    pub fn post_form(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Request {
        Request {
            method: Method::Post,
            url: url.into(),
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: body.into(),
            connect_to: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Connects to `address` (on the URL's port) rather than to what the host name resolves to.
    pub fn connect_to(mut self, address: std::net::IpAddr) -> Request {
        self.connect_to = Some(address);
        self
    }
}

/// How long and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The whole exchange: connecting, TLS, the request, the answer's head and body.
    pub total: Duration,
    /// The largest body accepted.
    pub max_body: usize,
}

/// What came back (any status: the caller decides what a 404 means).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header field, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HttpError {
    #[error("{0} is not an http:// or https:// address Herald can use")]
    Url(String),
    #[error("cannot be reached: {0}")]
    Unreachable(String),
    /// The server answered TLS with a certificate the trust store refuses: not "unreachable",
    /// since going on would trust a server that may not be the one meant.
    #[error("its certificate is not trusted: {0}")]
    Untrusted(String),
    #[error("TLS cannot be set up: {0}")]
    Tls(String),
    #[error("no complete answer within {} s", .0.as_secs())]
    TimedOut(Duration),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the answer is not HTTP Herald can read: {0}")]
    Protocol(String),
}

/// Sends `request` and reads the whole answer, within `limits`. Over https the server is
/// authenticated against the public roots and `ca_pem`.
pub async fn send(
    request: Request,
    ca_pem: Option<&[u8]>,
    limits: Limits,
) -> Result<Response, HttpError> {
    match tokio::time::timeout(limits.total, exchange(request, ca_pem, limits.max_body)).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::TimedOut(limits.total)),
    }
}

/// [`send`] for callers on a plain thread (the render worker): a runtime of its own for the
/// one exchange.
pub fn send_blocking(
    request: Request,
    ca_pem: Option<&[u8]>,
    limits: Limits,
) -> Result<Response, HttpError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| HttpError::Unreachable(error.to_string()))?;
    runtime.block_on(send(request, ca_pem, limits))
}

/// Where a URL points.
struct Target {
    https: bool,
    host: String,
    port: u16,
    authority: String,
    path: String,
}

fn target_of(url: &str) -> Result<Target, HttpError> {
    let bad = || HttpError::Url(url.to_string());
    let uri: hyper::Uri = url.parse().map_err(|_| bad())?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad()),
    };
    let authority = uri.authority().ok_or_else(bad)?;
    // Credentials in a URL would be sent to whoever the rest of it names; refuse them.
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err(bad());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(Target {
        https,
        port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
        authority: authority.as_str().to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string()),
        host,
    })
}

fn hyper_request(
    request: &Request,
    target: &Target,
) -> Result<hyper::Request<Full<Bytes>>, HttpError> {
    let method = match request.method {
        Method::Get => hyper::Method::GET,
        Method::Post => hyper::Method::POST,
    };
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(target.path.as_str())
        .header(hyper::header::HOST, target.authority.as_str())
        .header(
            hyper::header::USER_AGENT,
            concat!("herald/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(request.body.clone())))
        .map_err(|error| HttpError::Url(format!("{}: {error}", request.url)))
}

async fn exchange(
    request: Request,
    ca_pem: Option<&[u8]>,
    max_body: usize,
) -> Result<Response, HttpError> {
    let target = target_of(&request.url)?;
    let outgoing = hyper_request(&request, &target)?;
    // Refused before connecting, so a bad CA file is named as such rather than as a failure.
    let connector = if target.https {
        Some(tls::verified(ca_pem).map_err(HttpError::Tls)?)
    } else {
        None
    };
    let connected = match request.connect_to {
        Some(address) => {
            tokio::net::TcpStream::connect(std::net::SocketAddr::new(address, target.port)).await
        }
        None => tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await,
    };
    let stream = connected.map_err(|error| HttpError::Unreachable(error.to_string()))?;
    match connector {
        Some(connector) => {
            let name = tls::server_name(&target.host).map_err(HttpError::Tls)?;
            let stream = connector.connect(name, stream).await.map_err(|error| {
                match tls::certificate_problem(&error) {
                    Some(reason) => HttpError::Untrusted(reason),
                    None => HttpError::Unreachable(format!("TLS: {error}")),
                }
            })?;
            over(TokioIo::new(stream), outgoing, max_body).await
        }
        None => over(TokioIo::new(stream), outgoing, max_body).await,
    }
}

/// One request on an HTTP/1.1 connection over `io`; the answer read whole, up to `max_body`.
async fn over<T>(
    io: TokioIo<T>,
    request: hyper::Request<Full<Bytes>>,
    max_body: usize,
) -> Result<Response, HttpError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|error| HttpError::Unreachable(error.to_string()))?;
    let driver = tokio::spawn(connection);
    let answer = sender
        .send_request(request)
        .await
        .map_err(|error| HttpError::Unreachable(error.to_string()));
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => {
            driver.abort();
            return Err(error);
        }
    };
    let status = answer.status().as_u16();
    let headers = answer
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = Limited::new(answer.into_body(), max_body).collect().await;
    driver.abort();
    let body = body
        .map_err(|error| {
            if error.is::<http_body_util::LengthLimitError>() {
                HttpError::TooLarge(max_body)
            } else {
                HttpError::Protocol(error.to_string())
            }
        })?
        .to_bytes()
        .to_vec();
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_target() {
        let target = target_of("https://example.org/a?b=c").unwrap_or_else(|e| panic!("{e}"));
        assert!(target.https);
        assert_eq!(
            (target.host.as_str(), target.port, target.path.as_str()),
            ("example.org", 443, "/a?b=c")
        );
        let target = target_of("http://[::1]:8080").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (target.host.as_str(), target.port, target.path.as_str()),
            ("::1", 8080, "/")
        );
        for bad in [
            "ftp://example.org/",
            "https://user:pw@example.org/",
            "example.org",
            "",
        ] {
            assert!(matches!(target_of(bad), Err(HttpError::Url(_))), "{bad}");
        }
    }
}
