//! The socket of one SMTP session and nothing else: plain or TLS stream, a read buffer, and
//! the two operations everything else is built from — write bytes, read one whole reply —
//! each under a deadline. Any error or timeout drops the socket, so a session whose state is
//! unknown can never be used again. Reply lines are bounded (RFC 5321 §4.5.3.1.5 allows 512
//! bytes; we take 4,096 like smtp-proto) before smtp-proto parses them.

use std::time::Duration;

use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{EXT_CHUNKING, EXT_PIPELINING, EXT_SMTP_UTF8, EXT_START_TLS, EhloResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::engine::outcome::reply;
use crate::store::Reply;
use crate::tls::TlsStream;

/// Longest reply line we accept.
const MAX_LINE: usize = 4096;
/// Most lines in one reply (a long EHLO list has ~20).
const MAX_LINES: usize = 100;

pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Why the session's socket is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Lost {
    /// No reply (or no progress writing) within the deadline.
    Timeout(Duration),
    /// The server closed the connection.
    Closed,
    /// A read or write failed, or the server sent something that is not an SMTP reply.
    Broken(String),
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::Timeout(limit) => write!(f, "no reply within {} s", limit.as_secs()),
            Lost::Closed => write!(f, "the server closed the connection"),
            Lost::Broken(why) => write!(f, "{why}"),
        }
    }
}

/// One reply as the server sent it, and its meaning.
#[derive(Debug, Clone)]
pub(super) struct Raw {
    pub code: u16,
    pub bytes: Vec<u8>,
}

impl Raw {
    pub fn positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// The reply as the store keeps it: code, enhanced status code and text on one line.
    pub fn reply(&self) -> Reply {
        let mut receiver = ResponseReceiver::default();
        match receiver.parse(&mut self.bytes.iter()) {
            Ok(parsed) => {
                let text = parsed.message.replace('\n', " ");
                let text = if parsed.esc != [0, 0, 0] {
                    let [class, subject, detail] = parsed.esc;
                    format!("{class}.{subject}.{detail} {text}")
                } else {
                    text
                };
                reply(parsed.code, &text)
            }
            Err(_) => reply(self.code, &String::from_utf8_lossy(&self.bytes)),
        }
    }
}

/// What the server's EHLO reply offers, as far as this client uses it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// RFC 2920.
    pub pipelining: bool,
    /// RFC 3030 (BDAT).
    pub chunking: bool,
    /// RFC 3207.
    pub starttls: bool,
    /// RFC 6531: addresses with non-ASCII local parts.
    pub smtputf8: bool,
    pub auth_plain: bool,
    pub auth_login: bool,
    /// SASL XOAUTH2 (Google's and Microsoft's bearer mechanism).
    pub auth_xoauth2: bool,
    /// SASL OAUTHBEARER (RFC 7628).
    pub auth_oauthbearer: bool,
}

impl Capabilities {
    pub(super) fn from_ehlo(raw: &Raw) -> Capabilities {
        match EhloResponse::parse(&mut raw.bytes.iter()) {
            Ok(ehlo) => Capabilities {
                pipelining: ehlo.has_capability(EXT_PIPELINING),
                chunking: ehlo.has_capability(EXT_CHUNKING),
                starttls: ehlo.has_capability(EXT_START_TLS),
                smtputf8: ehlo.has_capability(EXT_SMTP_UTF8),
                auth_plain: ehlo.auth() & smtp_proto::AUTH_PLAIN != 0,
                auth_login: ehlo.auth() & smtp_proto::AUTH_LOGIN != 0,
                auth_xoauth2: ehlo.auth() & smtp_proto::AUTH_XOAUTH2 != 0,
                auth_oauthbearer: ehlo.auth() & smtp_proto::AUTH_OAUTHBEARER != 0,
            },
            Err(error) => {
                tracing::debug!(?error, "EHLO reply not understood; using no extension");
                Capabilities::default()
            }
        }
    }
}

pub(super) struct Wire {
    stream: Option<Stream>,
    buffer: Vec<u8>,
    /// Start of the unread part of `buffer`.
    start: usize,
}

impl Wire {
    pub fn new(stream: Stream) -> Wire {
        Wire {
            stream: Some(stream),
            buffer: Vec::with_capacity(4096),
            start: 0,
        }
    }

    pub fn is_open(&self) -> bool {
        self.stream.is_some()
    }

    /// Takes the plain socket out for a TLS handshake. Only between replies, with nothing
    /// buffered (RFC 3207 §4.2: anything the server sent before the handshake is discarded).
    pub fn take_plain(&mut self) -> Option<TcpStream> {
        self.buffer.clear();
        self.start = 0;
        match self.stream.take() {
            Some(Stream::Plain(tcp)) => Some(tcp),
            other => {
                self.stream = other;
                None
            }
        }
    }

    pub fn put(&mut self, stream: Stream) {
        self.stream = Some(stream);
    }

    pub fn drop_socket(&mut self) {
        self.stream = None;
    }

    /// Writes all of `bytes`; on failure, how many may have left: those handed to the kernel
    /// (the rest surely did not). Callers decide `uncertain` from it, so a timeout, which loses
    /// the count, says all of them: a message whose end may be at the server must never be sent
    /// again as if it had not left (review: a timeout after the "." made a duplicate).
    pub async fn write(&mut self, bytes: &[u8], limit: Duration) -> Result<(), (usize, Lost)> {
        let result = match self.stream.as_mut() {
            None => Err((0, Lost::Closed)),
            Some(stream) => match timeout(limit, write_counted(stream, bytes)).await {
                Err(_) => Err((bytes.len(), Lost::Timeout(limit))),
                Ok(result) => result,
            },
        };
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    /// Reads one complete reply (all its lines).
    pub async fn read(&mut self, limit: Duration) -> Result<Raw, Lost> {
        let result = match timeout(limit, self.read_inner()).await {
            Err(_) => Err(Lost::Timeout(limit)),
            Ok(result) => result,
        };
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn read_inner(&mut self) -> Result<Raw, Lost> {
        loop {
            if let Some((end, code)) = complete_reply(&self.buffer[self.start..])? {
                let bytes = self.buffer[self.start..self.start + end].to_vec();
                self.start += end;
                if self.start == self.buffer.len() {
                    self.buffer.clear();
                    self.start = 0;
                }
                return Ok(Raw { code, bytes });
            }
            if self.start > 0 {
                self.buffer.drain(..self.start);
                self.start = 0;
            }
            let Some(stream) = self.stream.as_mut() else {
                return Err(Lost::Closed);
            };
            let mut chunk = [0u8; 4096];
            let read = match stream {
                Stream::Plain(tcp) => tcp.read(&mut chunk).await,
                Stream::Tls(tls) => tls.read(&mut chunk).await,
            };
            match read {
                Ok(0) => return Err(Lost::Closed),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(error) => return Err(Lost::Broken(error.to_string())),
            }
        }
    }
}

async fn write_counted(stream: &mut Stream, bytes: &[u8]) -> Result<(), (usize, Lost)> {
    let mut sent = 0;
    while sent < bytes.len() {
        let wrote = match stream {
            Stream::Plain(tcp) => tcp.write(&bytes[sent..]).await,
            Stream::Tls(tls) => tls.write(&bytes[sent..]).await,
        };
        match wrote {
            Ok(0) => return Err((sent, Lost::Closed)),
            Ok(n) => sent += n,
            Err(error) => return Err((sent, Lost::Broken(error.to_string()))),
        }
    }
    // rustls buffers records until flushed; for TCP this is a no-op.
    let flushed = match stream {
        Stream::Plain(tcp) => tcp.flush().await,
        Stream::Tls(tls) => tls.flush().await,
    };
    flushed.map_err(|error| (sent, Lost::Broken(error.to_string())))
}

/// Where the first complete reply in `bytes` ends, and its code; `None` while incomplete.
fn complete_reply(bytes: &[u8]) -> Result<Option<(usize, u16)>, Lost> {
    let mut at = 0;
    let mut code = None;
    for _ in 0..MAX_LINES {
        let rest = &bytes[at..];
        let Some(newline) = memchr::memchr(b'\n', rest) else {
            if rest.len() > MAX_LINE {
                return Err(Lost::Broken(
                    "the server sent a reply line over 4,096 bytes".into(),
                ));
            }
            return Ok(None);
        };
        if newline > MAX_LINE {
            return Err(Lost::Broken(
                "the server sent a reply line over 4,096 bytes".into(),
            ));
        }
        let line = &rest[..newline];
        let digits = line.get(..3).filter(|d| d.iter().all(u8::is_ascii_digit));
        let Some(digits) = digits else {
            let shown = String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
            return Err(Lost::Broken(format!("not an SMTP reply: {shown:?}")));
        };
        let line_code = digits
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
        if *code.get_or_insert(line_code) != line_code {
            return Err(Lost::Broken("a multi-line reply changed its code".into()));
        }
        at += newline + 1;
        if line.get(3) != Some(&b'-') {
            return Ok(Some((at, line_code)));
        }
    }
    Err(Lost::Broken(
        "the server sent a reply of over 100 lines".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::{Lost, Raw, complete_reply};

    #[test]
    fn replies_are_framed_by_their_last_line() {
        assert_eq!(complete_reply(b"250 ok\r\n"), Ok(Some((8, 250))));
        assert_eq!(
            complete_reply(b"250-a\r\n250 b\r\n354 go\r\n"),
            Ok(Some((14, 250)))
        );
        assert_eq!(complete_reply(b"250-a\r\n250"), Ok(None));
        assert_eq!(complete_reply(b"250\r\n"), Ok(Some((5, 250))));
        assert!(matches!(complete_reply(b"hello\r\n"), Err(Lost::Broken(_))));
        assert!(matches!(
            complete_reply(b"250-a\r\n251 b\r\n"),
            Err(Lost::Broken(_))
        ));
        let long = vec![b'2'; 5000];
        assert!(matches!(complete_reply(&long), Err(Lost::Broken(_))));
    }

    #[test]
    fn a_reply_keeps_its_enhanced_code() {
        let raw = Raw {
            code: 550,
            bytes: b"550-5.1.1 no such\r\n550 5.1.1 user\r\n".to_vec(),
        };
        let reply = raw.reply();
        assert_eq!(reply.code, Some(550));
        assert_eq!(reply.enhanced.as_deref(), Some("5.1.1"));
        assert!(
            reply.text.contains("no such") && reply.text.contains("user"),
            "{}",
            reply.text
        );
    }
}
