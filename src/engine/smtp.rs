//! One SMTP session, driven command by command over lettre's connection API: our own TCP socket
//! with TCP_NODELAY (lettre's pooled transport stalls on Nagle), a timeout around every step
//! (lettre has none but on connect), and a session that survives negative replies (RSET instead
//! of reconnecting) so one bad recipient does not cost a connection. Owns lettre's transport
//! side; knows nothing of the store or the campaign's recipients.

use std::time::Duration;

use lettre::Address;

/// An address ready for the SMTP envelope.
pub use lettre::Address as EnvelopeAddress;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::outcome::{Attempt, local_reply, reply};
use crate::campaign::Security;
use crate::store::Reply;

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
    pub credentials: Option<(String, String)>,
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

pub struct Session {
    conn: AsyncSmtpConnection,
    timeouts: Timeouts,
    pub messages: u32,
}

fn client_id(helo: &str) -> ClientId {
    if helo.trim().is_empty() {
        ClientId::default()
    } else {
        ClientId::Domain(helo.to_string())
    }
}

fn error_text(error: &lettre::transport::smtp::Error) -> String {
    use std::error::Error as _;
    match error.source() {
        Some(source) => source.to_string(),
        None => error.to_string(),
    }
}

fn reply_of(error: &lettre::transport::smtp::Error) -> Option<Reply> {
    let code: u16 = error.status()?.to_string().parse().ok()?;
    Some(reply(code, &error_text(error)))
}

impl Session {
    /// Opens a session: TCP (no Nagle), greeting and EHLO, TLS as configured, AUTH if configured.
    pub async fn connect(target: &Target, timeouts: Timeouts) -> Result<Session, ConnectError> {
        match Session::connect_once(target, timeouts, true).await {
            // RFC 7435 §3: falling back to cleartext is the user's call, never ours.
            Err(ConnectError::Tls(reason)) if target.opportunistic_tls == Some(true) => {
                tracing::warn!(%reason, host = %target.host, "STARTTLS failed; retrying in plain text as allowed");
                Session::connect_once(target, timeouts, false).await
            }
            other => other,
        }
    }

    async fn connect_once(
        target: &Target,
        timeouts: Timeouts,
        try_tls: bool,
    ) -> Result<Session, ConnectError> {
        let connect_secs = timeouts.connect.as_secs();
        let address = (target.host.as_str(), target.port);
        let opened = match target.address {
            Some(ip) => {
                timeout(
                    timeouts.connect,
                    TcpStream::connect(std::net::SocketAddr::new(ip, target.port)),
                )
                .await
            }
            None => timeout(timeouts.connect, TcpStream::connect(address)).await,
        };
        let tcp = match opened {
            Err(_) => return Err(ConnectError::Timeout(connect_secs)),
            Ok(Err(error)) => return Err(ConnectError::Network(error.to_string())),
            Ok(Ok(tcp)) => tcp,
        };
        // The final "." goes out in a small write of its own; with Nagle it waits for the
        // peer's delayed ACK (~40 ms a message).
        let _ = tcp.set_nodelay(true);
        let hello = client_id(&target.helo);
        let tls = || -> Result<TlsParameters, ConnectError> {
            let mut builder = TlsParameters::builder(target.host.clone());
            if let Some(pem) = &target.ca_pem {
                let certificate = Certificate::from_pem(pem).map_err(|error| {
                    ConnectError::Tls(format!(
                        "the CA file is not a PEM certificate: {}",
                        error_text(&error)
                    ))
                })?;
                builder = builder.add_root_certificate(certificate);
            }
            builder
                .build_rustls()
                .map_err(|error| ConnectError::Tls(error_text(&error)))
        };
        let greet = async {
            match target.security {
                Security::Tls => {
                    // Implicit TLS must wrap the socket before the greeting; lettre only does
                    // that on a socket it opens itself.
                    drop(tcp);
                    AsyncSmtpConnection::connect_tokio1(
                        address,
                        Some(timeouts.connect),
                        &hello,
                        Some(tls()?),
                        None,
                    )
                    .await
                    .map_err(|error| {
                        // lettre reports a failed implicit-TLS handshake (an untrusted
                        // certificate) as a connection error; waiting will not fix it.
                        if reply_of(&error).is_none() && handshake_failed(&error) {
                            ConnectError::Tls(error_text(&error))
                        } else {
                            classify_connect(&error)
                        }
                    })
                }
                _ => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello)
                    .await
                    .map_err(|error| classify_connect(&error)),
            }
        };
        let mut conn = match timeout(timeouts.command, greet).await {
            Err(_) => return Err(ConnectError::Timeout(timeouts.command.as_secs())),
            Ok(result) => result?,
        };
        if target.opportunistic_tls.is_some() && try_tls && conn.can_starttls() {
            // Unauthenticated encryption still beats plain text against passive listeners
            // (RFC 7435 §1); MX hosts rarely present a certificate for the name we looked up.
            let params = TlsParameters::builder(target.host.clone())
                .dangerous_accept_invalid_certs(true)
                .dangerous_accept_invalid_hostnames(true)
                .build_rustls()
                .map_err(|error| ConnectError::Tls(error_text(&error)))?;
            match timeout(timeouts.command, conn.starttls(params, &hello)).await {
                Err(_) => return Err(ConnectError::Timeout(timeouts.command.as_secs())),
                Ok(Err(error)) => return Err(ConnectError::Tls(error_text(&error))),
                Ok(Ok(())) => {}
            }
        }
        if target.security == Security::StartTls {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(ConnectError::Tls(
                    "the server does not offer STARTTLS".into(),
                ));
            }
            let upgraded = timeout(timeouts.command, conn.starttls(tls()?, &hello)).await;
            match upgraded {
                Err(_) => return Err(ConnectError::Timeout(timeouts.command.as_secs())),
                Ok(Err(error)) => return Err(ConnectError::Tls(error_text(&error))),
                Ok(Ok(())) => {}
            }
        }
        if let Some((user, password)) = &target.credentials {
            let credentials = Credentials::new(user.clone(), password.clone());
            let mechanisms = [Mechanism::Plain, Mechanism::Login];
            match timeout(timeouts.command, conn.auth(&mechanisms, &credentials)).await {
                Err(_) => return Err(ConnectError::Timeout(timeouts.command.as_secs())),
                Ok(Err(error)) => {
                    conn.abort().await;
                    let text = match reply_of(&error) {
                        Some(reply) => format!("{} {}", reply.code.unwrap_or_default(), reply.text),
                        None => error_text(&error),
                    };
                    return Err(ConnectError::Auth(text));
                }
                Ok(Ok(_)) => {}
            }
        }
        Ok(Session {
            conn,
            timeouts,
            messages: 0,
        })
    }

    /// Offers one message: MAIL, RCPT, DATA, the content, and the reply to the final ".".
    pub async fn send(&mut self, from: &Address, to: &Address, message: &[u8]) -> Offer {
        let reused = self.messages > 0;
        let command_timeout = self.timeouts.command;
        let steps = [
            ("MAIL", Mail::new(Some(from.clone()), vec![]).to_string()),
            ("RCPT", Rcpt::new(to.clone(), vec![]).to_string()),
            ("DATA", Data.to_string()),
        ];
        for (index, (name, command)) in steps.into_iter().enumerate() {
            match timeout(command_timeout, self.conn.command(command)).await {
                Err(_) => {
                    return Offer {
                        attempt: Attempt::Temporary(local_reply(format!(
                            "no reply to {name} within {} s",
                            command_timeout.as_secs()
                        ))),
                        usable: false,
                        stale: false,
                    };
                }
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    if let Some(reply) = reply_of(&error) {
                        let closing = reply.code == Some(421);
                        let usable = !closing && self.reset().await;
                        return Offer {
                            attempt: super::outcome::attempt_for_reply(reply),
                            usable,
                            stale: false,
                        };
                    }
                    return Offer {
                        attempt: Attempt::Temporary(local_reply(format!(
                            "connection lost at {name}: {}",
                            error_text(&error)
                        ))),
                        usable: false,
                        stale: reused && index == 0,
                    };
                }
            }
        }
        // From here the server may take the message even if we never hear back.
        let message = crlf_only(message);
        // lettre always ends the data with CRLF "." CRLF; the message's own final CRLF is that
        // first CRLF (RFC 5321 §4.1.1.4), or the server stores an extra empty line.
        let message = message.strip_suffix(b"\r\n").unwrap_or(&message);
        match timeout(self.timeouts.data, self.conn.message(message)).await {
            Err(_) => Offer {
                attempt: Attempt::Uncertain(local_reply(format!(
                    "no reply to the end of the message within {} s; the server may have it",
                    self.timeouts.data.as_secs()
                ))),
                usable: false,
                stale: false,
            },
            Ok(Ok(response)) => {
                self.messages += 1;
                let code = response.code().to_string().parse().unwrap_or(250);
                let text = response.message().collect::<Vec<_>>().join(" ");
                Offer {
                    attempt: Attempt::Accepted(reply(code, &text)),
                    usable: true,
                    stale: false,
                }
            }
            Ok(Err(error)) => match reply_of(&error) {
                Some(reply) => {
                    self.messages += 1;
                    let usable = reply.code != Some(421);
                    Offer {
                        attempt: super::outcome::attempt_for_reply(reply),
                        usable,
                        stale: false,
                    }
                }
                None => Offer {
                    attempt: Attempt::Uncertain(local_reply(format!(
                        "connection lost after the message was sent, before the server's reply ({}); the server may have it",
                        error_text(&error)
                    ))),
                    usable: false,
                    stale: false,
                },
            },
        }
    }

    /// RSET after a negative reply keeps the session for the next message.
    async fn reset(&mut self) -> bool {
        matches!(
            timeout(self.timeouts.command, self.conn.command(Rset)).await,
            Ok(Ok(_))
        )
    }

    /// Ends the session politely (QUIT), without waiting long for a server that hangs.
    pub async fn quit(mut self) {
        let _ = timeout(Duration::from_secs(5), self.conn.quit()).await;
    }
}

fn classify_connect(error: &lettre::transport::smtp::Error) -> ConnectError {
    if let Some(reply) = reply_of(error) {
        return ConnectError::Refused(format!("{} {}", reply.code.unwrap_or_default(), reply.text));
    }
    if error.is_tls() {
        return ConnectError::Tls(error_text(error));
    }
    if error.is_timeout() {
        return ConnectError::Timeout(0);
    }
    ConnectError::Network(error_text(error))
}

/// Whether a connection error came from the TLS layer: rustls reports a refused handshake
/// (bad certificate, wrong name, no shared protocol) as an I/O error of kind `InvalidData`,
/// which TCP itself never produces.
fn handshake_failed(error: &lettre::transport::smtp::Error) -> bool {
    if error.is_tls() {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::InvalidData
        {
            return true;
        }
        source = cause.source();
    }
    false
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
