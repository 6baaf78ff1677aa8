//! The SMTP client: one [`Session`] owns the socket (`wire.rs`), the server's EHLO
//! capabilities and the per-command deadlines, and drives transactions the cheapest way the
//! server allows (RFC 2920 PIPELINING, RFC 3030 CHUNKING), falling back to command by command.
//! In steady state a reused session costs one round trip a message: the next message's MAIL,
//! RCPT and DATA go out behind the previous message's final "." (or, with CHUNKING, MAIL, RCPT,
//! `BDAT n LAST` and the content in one flight). Every reply is read in order and attributed to
//! its command and message, and each message ends in one [`Outcome`]. Knows nothing of the
//! store or the campaign; TLS comes from the `tls` leaf module, lettre is used only for envelope addresses.

use std::time::Duration;

mod session;
mod wire;

use lettre::Address;

/// An address ready for the SMTP envelope.
pub use lettre::Address as EnvelopeAddress;
pub use session::{Message, Outcome, Session};
pub use wire::Capabilities;

pub use super::outcome::Attempt;
use crate::campaign::Security;

/// How a session signs in (Stalwart's shape): the session knows nothing of where a token came
/// from, only which SASL mechanism carries it.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// AUTH PLAIN (RFC 4616) or LOGIN.
    Plain { user: String, password: String },
    /// An OAuth2 access token: AUTH XOAUTH2, or OAUTHBEARER (RFC 7628) when only that is offered.
    Bearer { user: String, token: String },
}

impl std::fmt::Debug for Credentials {
    // Hand-written so no password or token can reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Plain { user, .. } => write!(f, "Plain({user})"),
            Credentials::Bearer { user, .. } => write!(f, "Bearer({user})"),
        }
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Target {
    /// The route's name for reports: the relay's name or the MX host.
    pub route: String,
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Our name in EHLO.
    pub helo: String,
    pub credentials: Option<Credentials>,
    /// Extra CA certificates (PEM) to trust, for private relays.
    pub ca_pem: Option<Vec<u8>>,
    /// Connect to this address instead of resolving `host` (direct mode resolves MX hosts
    /// itself; `host` stays the name TLS is negotiated for).
    pub address: Option<std::net::IpAddr>,
    /// Opportunistic STARTTLS (direct mode, RFC 3207 + RFC 7435): use TLS when offered,
    /// without authenticating the certificate. `Some(true)` also allows retrying in plain text
    /// when the handshake fails.
    pub opportunistic_tls: Option<bool>,
}

impl std::fmt::Debug for Target {
    // Hand-written so the password can never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("route", &self.route)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub command: Duration,
    /// For the reply to the final "." (RFC 5321 §4.5.3.2.6: 10 minutes).
    pub data: Duration,
}

/// Why a session could not be opened. Nothing was sent to anybody.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("could not connect: {0}")]
    Network(String),
    #[error("no answer within {0} s")]
    Timeout(u64),
    #[error("the server refused the session: {0}")]
    Refused(String),
    #[error("TLS failed: {0}")]
    Tls(String),
    #[error("authentication failed: {0}")]
    Auth(String),
}

impl ConnectError {
    /// Failures that waiting will not fix: the user must change the settings.
    pub fn needs_user(&self) -> bool {
        matches!(self, ConnectError::Tls(_) | ConnectError::Auth(_))
    }

    /// How the TCP connection failed, when it never reached SMTP: the same answer from many
    /// unrelated hosts is the mark of a network that filters the port.
    pub fn network_kind(&self) -> Option<&'static str> {
        match self {
            ConnectError::Timeout(_) => Some("timed out"),
            ConnectError::Network(text) if text.contains("refused") => Some("refused"),
            ConnectError::Network(text) if text.contains("unreachable") => Some("unreachable"),
            ConnectError::Network(_) => Some("failed"),
            _ => None,
        }
    }
}

/// The result of offering one message on a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub attempt: Attempt,
    /// Whether the session can carry another message.
    pub usable: bool,
    /// The session was dead before the message started (a reused connection the server had
    /// closed): the attempt does not count and the message should go on a fresh session.
    pub stale: bool,
}

/// The message with every bare LF or CR made CRLF (RFC 5321 §2.3.8: they are not allowed
/// alone in SMTP data). lettre dot-stuffs only after CRLF, and keeps a 7-bit body made from
/// bytes (an ASCII attachment) as it is: a bare "\n.\n" in it ended the DATA early at a real
/// Postfix, which then read the rest of the message as SMTP commands (issue #7).
pub(crate) fn crlf_only(message: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let clean = message.iter().enumerate().all(|(at, byte)| match byte {
        b'\r' => message.get(at + 1) == Some(&b'\n'),
        b'\n' => at > 0 && message.get(at - 1) == Some(&b'\r'),
        _ => true,
    });
    if clean {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len() + message.len() / 32);
    let mut bytes = message.iter().peekable();
    while let Some(&byte) = bytes.next() {
        match byte {
            b'\r' => {
                if bytes.peek() == Some(&&b'\n') {
                    bytes.next();
                }
                out.extend_from_slice(b"\r\n");
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            _ => out.push(byte),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Parses an envelope address for lettre.
pub fn envelope_address(text: &str) -> Result<Address, String> {
    text.parse::<Address>().map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::crlf_only;

    #[test]
    fn bare_line_ends_become_crlf_on_the_wire() {
        let check = |input: &[u8], expected: &[u8]| {
            assert_eq!(
                &*crlf_only(input),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        };
        check(b"a\r\nb\r\n", b"a\r\nb\r\n");
        check(b"a\n.\nb", b"a\r\n.\r\nb");
        check(b"a\r.\rb", b"a\r\n.\r\nb");
        check(b"\n", b"\r\n");
        check(b"\r", b"\r\n");
        check(b"a\r\r\nb", b"a\r\n\r\nb");
        check(b"a\n\r\nb", b"a\r\n\r\nb");
        check(b"", b"");
        assert!(matches!(
            crlf_only(b"ok\r\n"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
