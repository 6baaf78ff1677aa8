//! Remote images for the rendered preview, fetched only when the user asks ("Load remote
//! images"): a bounded HTTP/1.0 GET (time limits on connect, read and write, a size cap, no
//! redirects followed, no cookies), over TLS for `https` with the program's one rustls setup
//! (`engine::smtp`'s verified configuration: Mozilla's roots, certificates checked). Runs on the
//! render worker's thread, never the window's.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::engine::smtp::{
    BlockingTlsConnection, BlockingTlsStream, tls_server_name, verified_tls_config,
};

/// An image larger than this is not a newsletter image; it stays a placeholder.
pub const MAX_IMAGE_BYTES: usize = 8 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(5);
/// The whole of one image's fetch: a server trickling a byte every few seconds would otherwise
/// hold the render worker for as long as it likes.
const TOTAL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("only http:// and https:// images are fetched for the preview, not {0}")]
    Scheme(String),
    #[error("the image address has no host: {0}")]
    Host(String),
    #[error("could not fetch the image: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server answered {0}")]
    Status(String),
    #[error("the image is larger than {MAX_IMAGE_BYTES} bytes")]
    TooLarge,
    #[error("TLS: {0}")]
    Tls(String),
}

/// GETs `url` and returns the body of a 200 answer.
pub fn get(url: &str) -> Result<Vec<u8>, FetchError> {
    get_trusting(url, None)
}

/// As `get`, also trusting the PEM certificate authority `ca_pem` for `https`.
pub fn get_trusting(url: &str, ca_pem: Option<&[u8]>) -> Result<Vec<u8>, FetchError> {
    let (tls, rest, default_port) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest, 80)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest, 443)
    } else {
        return Err(FetchError::Scheme(url.to_string()));
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(FetchError::Host(url.to_string()));
    }
    let (host, target) = match authority.rsplit_once(':') {
        Some((host, _port)) => (host, authority.to_string()),
        None => (authority, format!("{authority}:{default_port}")),
    };
    let deadline = Instant::now() + TOTAL;
    let stream = connect(&target, url)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    // HTTP/1.0 (RFC 1945): no chunked answers, and the body ends where the stream does.
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nAccept: image/*\r\nConnection: close\r\n\r\n"
    );
    let answer = if tls {
        let config = verified_tls_config(ca_pem).map_err(FetchError::Tls)?;
        let name = tls_server_name(host).map_err(FetchError::Tls)?;
        let connection = BlockingTlsConnection::new(config, name)
            .map_err(|error| FetchError::Tls(error.to_string()))?;
        exchange(
            BlockingTlsStream::new(connection, stream),
            &request,
            deadline,
        )?
    } else {
        exchange(stream, &request, deadline)?
    };
    let Some(head_end) = answer.windows(4).position(|window| window == b"\r\n\r\n") else {
        return Err(FetchError::Status("no complete answer".into()));
    };
    let head = String::from_utf8_lossy(&answer[..head_end]);
    let status = head.lines().next().unwrap_or_default().to_string();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(FetchError::Status(status));
    }
    if head
        .lines()
        .any(|line| line.to_ascii_lowercase().starts_with("transfer-encoding:"))
    {
        return Err(FetchError::Status("a chunked answer".into()));
    }
    let mut answer = answer;
    let body = answer.split_off(head_end + 4);
    if body.len() > MAX_IMAGE_BYTES {
        return Err(FetchError::TooLarge);
    }
    Ok(body)
}

/// Connects to the first of the host's addresses that answers (IPv6 and IPv4 alike).
fn connect(target: &str, url: &str) -> Result<TcpStream, FetchError> {
    let mut last = None;
    for address in target.to_socket_addrs()? {
        match TcpStream::connect_timeout(&address, TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(error) => last = Some(error),
        }
    }
    Err(last.map_or_else(|| FetchError::Host(url.to_string()), FetchError::Io))
}

/// Writes the request and reads the answer to its end (HTTP/1.0: the server closes), within
/// `deadline` as a whole.
fn exchange(
    mut stream: impl Read + Write,
    request: &str,
    deadline: Instant,
) -> Result<Vec<u8>, FetchError> {
    // One write: a server may answer (and close) as soon as it has the request's first line.
    stream.write_all(request.as_bytes())?;
    let limit = MAX_IMAGE_BYTES + 64 * 1024;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        if Instant::now() > deadline {
            return Err(FetchError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the image took longer than {} s", TOTAL.as_secs()),
            )));
        }
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                answer.extend_from_slice(&buffer[..read]);
                if answer.len() > limit {
                    return Err(FetchError::TooLarge);
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            // Many servers close without TLS's close_notify; the length check still holds.
            Err(error)
                if error.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() =>
            {
                break;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(answer)
}
