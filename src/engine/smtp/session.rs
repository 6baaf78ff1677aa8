//! One SMTP session's state machine: opening (greeting, EHLO, STARTTLS or implicit TLS, AUTH)
//! and carrying messages. With PIPELINING (RFC 2920) a message's MAIL, RCPT and DATA go out as
//! one group, its content after the 354, and the next message's group is written in the same
//! flight as the final "."; with CHUNKING (RFC 3030) MAIL, RCPT and `BDAT n LAST` travel with the
//! content. Without either, command by command. Replies are read in the order the commands
//! went out and each is charged to its own command and message.
//!
//! The durability rule (ARCHITECTURE.md, "One recipient's life"): a message whose end of
//! content (the final "." or the `BDAT LAST` chunk) went out and whose reply never came is
//! `Uncertain`; a message of which the server acknowledged nothing before a reused session died
//! — for example one pipelined behind it — is `NotAttempted` and costs no attempt.

use std::time::{Duration, Instant};

use base64::Engine as _;
use lettre::Address;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::wire::{Capabilities, Lost, Raw, Stream, Wire};
use super::{ConnectError, Credentials, Offer, Target, Timeouts, crlf_only};
use crate::campaign::Security;
use crate::engine::outcome::{Attempt, attempt_for_reply, local_reply};
use crate::store::Reply;
use crate::tls;

/// Most bytes of commands written ahead of their replies (Postfix's client uses the same
/// bound): well inside one TCP window, so a server that reads slowly cannot deadlock us.
const MAX_UNACKNOWLEDGED: usize = 4096;

/// A session idle this long may have been closed by the server without our knowing: with
/// CHUNKING, its next envelope is acknowledged before the content goes out (see `chunked`).
const IDLE_PROOF: Duration = Duration::from_secs(1);

/// One message to carry: envelope and content (CRLF line ends are made sure of here).
#[derive(Debug, Clone)]
pub struct Message {
    pub from: Address,
    pub to: Address,
    pub data: Vec<u8>,
}

/// What became of one message offered on a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered (accepted, temporary, permanent), or the content went out and the
    /// answer never came (uncertain).
    Attempted(Attempt),
    /// Nothing of the message was acknowledged and the session is gone: no attempt is spent;
    /// the message belongs on another session.
    NotAttempted(Reply),
}

/// How far one message got, for the replies still to come.
enum Sent {
    /// The outcome is known; any replies still due are read and dropped.
    Settled(Attempt),
    /// The content (or a lone ".") is out; the reply to its end decides.
    AwaitingEnd { lone_dot: Option<Attempt> },
}

pub struct Session {
    wire: Wire,
    capabilities: Capabilities,
    timeouts: Timeouts,
    /// Messages whose content went out on this session.
    pub messages: u32,
    /// MAIL was accepted and the transaction not ended: RSET must precede the next MAIL.
    open_transaction: bool,
    /// The server said it is closing (421), or the socket is gone.
    closed: bool,
    /// Use PIPELINING / CHUNKING when offered (tests and benchmarks turn them off).
    allow_pipelining: bool,
    allow_chunking: bool,
    /// When the last reply to the end of a message came.
    last_reply: Instant,
}

/// The EHLO name: the configured one, else this machine's host name, else an address literal
/// (RFC 5321 §4.1.4: a client without an obvious name SHOULD give one).
fn helo_name(helo: &str) -> String {
    if !helo.trim().is_empty() {
        return helo.trim().to_string();
    }
    hostname::get()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        })
        .unwrap_or_else(|| "[127.0.0.1]".to_string())
}

fn lost_connecting(lost: Lost) -> ConnectError {
    match lost {
        Lost::Timeout(limit) => ConnectError::Timeout(limit.as_secs()),
        Lost::Closed => ConnectError::Network("the server closed the connection".into()),
        Lost::Broken(why) => ConnectError::Network(why),
    }
}

/// What the store keeps for a session lost while a command waited for its reply.
fn lost_text(at: &str, lost: &Lost) -> String {
    match lost {
        Lost::Timeout(limit) => format!("no reply to {at} within {} s", limit.as_secs()),
        other => format!("connection lost at {at}: {other}"),
    }
}

/// The enhanced status code of a reply (RFC 3463: `class.subject.detail`, one to three digits
/// each), which RFC 2034 §4 puts right after the reply code: `535 5.7.139 …` gives `5.7.139`.
fn enhanced_status(reply: &str) -> Option<&str> {
    let token = reply.split_whitespace().nth(1)?;
    let mut parts = token.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    let digits = |part: &str, most: usize| {
        (1..=most).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
    };
    (parts.next().is_none()
        && matches!(class, "2" | "4" | "5")
        && digits(subject, 3)
        && digits(detail, 3))
    .then_some(token)
}

/// A refused AUTH in words a marketer understands, for Microsoft 365's known refusals; the
/// server's own text stays in brackets for whoever helps them. The enhanced status code is
/// compared whole: `5.7.3` is not `5.7.30` nor `5.7.31`.
fn explain_refusal(reply: &str) -> String {
    let sentence = match enhanced_status(reply) {
        Some("5.7.139") => {
            "SMTP AUTH is turned off for this mailbox or the whole Microsoft 365 tenant. An administrator must switch it on (Microsoft 365 admin center: the user's Mail settings, \"Authenticated SMTP\"; or PowerShell: Set-CASMailbox -SmtpClientAuthenticationDisabled $false)"
        }
        Some("5.7.30") => {
            "Microsoft 365 no longer accepts a password here (Basic authentication is off for client submission); sign in with OAuth2: oauth2 = \"NAME\" on the relay and `herald signin`"
        }
        Some("5.7.3") if reply.starts_with("535") => {
            "Microsoft 365 refused the sign-in: the password or token is wrong, or this account may not send as itself through SMTP"
        }
        _ => return reply.to_string(),
    };
    format!("{sentence} [{reply}]")
}

fn refused(raw: &Raw) -> String {
    let reply = raw.reply();
    format!("{} {}", raw.code, reply.text)
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

    /// What the server offered in its (last) EHLO reply.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// Turns the use of PIPELINING and CHUNKING on or off (both on by default where offered).
    pub fn set_extensions(&mut self, pipelining: bool, chunking: bool) {
        self.allow_pipelining = pipelining;
        self.allow_chunking = chunking;
    }

    /// Whether the session can carry another message.
    pub fn usable(&self) -> bool {
        !self.closed && self.wire.is_open()
    }

    fn pipelining(&self) -> bool {
        self.allow_pipelining && self.capabilities.pipelining
    }

    fn chunking(&self) -> bool {
        self.allow_chunking && self.capabilities.chunking
    }

    async fn connect_once(
        target: &Target,
        timeouts: Timeouts,
        try_tls: bool,
    ) -> Result<Session, ConnectError> {
        let opened = match target.address {
            Some(ip) => {
                timeout(
                    timeouts.connect,
                    TcpStream::connect(std::net::SocketAddr::new(ip, target.port)),
                )
                .await
            }
            None => {
                timeout(
                    timeouts.connect,
                    TcpStream::connect((target.host.as_str(), target.port)),
                )
                .await
            }
        };
        let tcp = match opened {
            Err(_) => return Err(ConnectError::Timeout(timeouts.connect.as_secs())),
            Ok(Err(error)) => return Err(ConnectError::Network(error.to_string())),
            Ok(Ok(tcp)) => tcp,
        };
        // Small writes (a pipelined group, the final ".") must leave at once; with Nagle they
        // wait for the peer's delayed ACK (~40 ms a message).
        let _ = tcp.set_nodelay(true);
        let stream = if target.security == Security::Tls {
            let connector = tls::verified(target.ca_pem.as_deref()).map_err(ConnectError::Tls)?;
            let name = tls::server_name(&target.host).map_err(ConnectError::Tls)?;
            match timeout(timeouts.command, connector.connect(name, tcp)).await {
                Err(_) => return Err(ConnectError::Timeout(timeouts.command.as_secs())),
                Ok(Err(error)) => return Err(handshake_error(error)),
                Ok(Ok(tls)) => Stream::Tls(Box::new(tls)),
            }
        } else {
            Stream::Plain(tcp)
        };
        let mut session = Session {
            wire: Wire::new(stream),
            capabilities: Capabilities::default(),
            timeouts,
            messages: 0,
            open_transaction: false,
            closed: false,
            allow_pipelining: true,
            allow_chunking: true,
            last_reply: Instant::now(),
        };
        // RFC 5321 §4.5.3.2.1 lets the greeting take 5 minutes; the command timeout applies.
        let greeting = session
            .wire
            .read(timeouts.command)
            .await
            .map_err(lost_connecting)?;
        if greeting.code != 220 {
            return Err(ConnectError::Refused(refused(&greeting)));
        }
        let helo = helo_name(&target.helo);
        session.hello(&helo).await?;
        if target.opportunistic_tls.is_some() && try_tls && session.capabilities.starttls {
            let connector = tls::unverified().map_err(ConnectError::Tls)?;
            session.starttls(connector, &target.host, &helo).await?;
        }
        if target.security == Security::StartTls {
            if !session.capabilities.starttls {
                session.quit().await;
                return Err(ConnectError::Tls(
                    "the server does not offer STARTTLS".into(),
                ));
            }
            let connector = tls::verified(target.ca_pem.as_deref()).map_err(ConnectError::Tls)?;
            session.starttls(connector, &target.host, &helo).await?;
        }
        if let Some(credentials) = &target.credentials
            && let Err(error) = session.authenticate(credentials, target).await
        {
            session.quit().await;
            return Err(error);
        }
        Ok(session)
    }

    async fn command(&mut self, line: &str, limit: Duration) -> Result<Raw, Lost> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.wire
            .write(&bytes, limit)
            .await
            .map_err(|(_, lost)| lost)?;
        self.wire.read(limit).await
    }

    /// EHLO, or HELO for a server that does not know it (RFC 5321 §4.1.4).
    async fn hello(&mut self, helo: &str) -> Result<(), ConnectError> {
        let limit = self.timeouts.command;
        let ehlo = self
            .command(&format!("EHLO {helo}"), limit)
            .await
            .map_err(lost_connecting)?;
        if ehlo.code == 250 {
            self.capabilities = Capabilities::from_ehlo(&ehlo);
            return Ok(());
        }
        let helo_reply = self
            .command(&format!("HELO {helo}"), limit)
            .await
            .map_err(lost_connecting)?;
        if helo_reply.code != 250 {
            return Err(ConnectError::Refused(refused(&helo_reply)));
        }
        self.capabilities = Capabilities::default();
        Ok(())
    }

    async fn starttls(
        &mut self,
        connector: tls::Connector,
        host: &str,
        helo: &str,
    ) -> Result<(), ConnectError> {
        let limit = self.timeouts.command;
        let ready = self
            .command("STARTTLS", limit)
            .await
            .map_err(lost_connecting)?;
        if ready.code != 220 {
            return Err(ConnectError::Tls(format!(
                "the server refused STARTTLS: {}",
                refused(&ready)
            )));
        }
        let name = tls::server_name(host).map_err(ConnectError::Tls)?;
        let Some(tcp) = self.wire.take_plain() else {
            return Err(ConnectError::Tls("the session is already encrypted".into()));
        };
        match timeout(limit, connector.connect(name, tcp)).await {
            Err(_) => return Err(ConnectError::Timeout(limit.as_secs())),
            // A reset mid-handshake is the network's doing, not a setting the user must fix.
            Ok(Err(error)) => return Err(handshake_error(error)),
            Ok(Ok(stream)) => self.wire.put(Stream::Tls(Box::new(stream))),
        }
        // RFC 3207 §4.2: forget what was learnt before TLS and ask again.
        self.hello(helo).await
    }

    /// Signs in with a password or a bearer token.
    async fn authenticate(
        &mut self,
        credentials: &Credentials,
        target: &Target,
    ) -> Result<(), ConnectError> {
        match credentials {
            Credentials::Plain { user, password } => self.authenticate_plain(user, password).await,
            Credentials::Bearer { user, token } => {
                self.authenticate_bearer(user, token, &target.host, target.port)
                    .await
            }
        }
    }

    /// AUTH XOAUTH2 with the initial response (RFC 4954 §4), or OAUTHBEARER (RFC 7628) when the
    /// server offers only that. A failure may come as a `334` carrying an error (base64 JSON):
    /// the client answers it as each mechanism asks, after which the server sends its `535`.
    async fn authenticate_bearer(
        &mut self,
        user: &str,
        token: &str,
        host: &str,
        port: u16,
    ) -> Result<(), ConnectError> {
        let limit = self.timeouts.command;
        // What the client answers the error challenge with: XOAUTH2 (Google's and Microsoft's
        // documentation) an empty line; OAUTHBEARER the single %x01 of RFC 7628 §3.2.3,
        // base64-encoded as every SASL response in SMTP is (RFC 4954 §4).
        let (line, answer_to_error) = if self.capabilities.auth_xoauth2
            || !self.capabilities.auth_oauthbearer
        {
            if !self.capabilities.auth_xoauth2 {
                return Err(ConnectError::Auth(
                    "the server offers neither AUTH XOAUTH2 nor AUTH OAUTHBEARER, so it cannot sign in with OAuth2".into(),
                ));
            }
            let response = crate::oauth2::sasl::xoauth2(user, token);
            (format!("AUTH XOAUTH2 {response}"), "")
        } else {
            let response = crate::oauth2::sasl::oauthbearer(user, host, port, token);
            (
                format!("AUTH OAUTHBEARER {response}"),
                crate::oauth2::sasl::OAUTHBEARER_ERROR_ANSWER,
            )
        };
        let mut reply = self.command(&line, limit).await.map_err(lost_connecting)?;
        if reply.code == 334 {
            reply = self
                .command(answer_to_error, limit)
                .await
                .map_err(lost_connecting)?;
        }
        if reply.code != 235 {
            return Err(ConnectError::Auth(explain_refusal(&refused(&reply))));
        }
        Ok(())
    }

    /// AUTH PLAIN (RFC 4616) or LOGIN, whichever the server offers, PLAIN first.
    async fn authenticate_plain(&mut self, user: &str, password: &str) -> Result<(), ConnectError> {
        let limit = self.timeouts.command;
        let b64 = base64::engine::general_purpose::STANDARD;
        let failed = |raw: &Raw| ConnectError::Auth(explain_refusal(&refused(raw)));
        let done = if self.capabilities.auth_plain {
            let token = b64.encode(format!("\0{user}\0{password}"));
            self.command(&format!("AUTH PLAIN {token}"), limit)
                .await
                .map_err(lost_connecting)?
        } else if self.capabilities.auth_login {
            let first = self
                .command("AUTH LOGIN", limit)
                .await
                .map_err(lost_connecting)?;
            if first.code != 334 {
                return Err(failed(&first));
            }
            let second = self
                .command(&b64.encode(user), limit)
                .await
                .map_err(lost_connecting)?;
            if second.code != 334 {
                return Err(failed(&second));
            }
            self.command(&b64.encode(password), limit)
                .await
                .map_err(lost_connecting)?
        } else {
            return Err(ConnectError::Auth(
                "the server offers neither AUTH PLAIN nor AUTH LOGIN".into(),
            ));
        };
        if done.code != 235 {
            return Err(ConnectError::Auth(explain_refusal(&refused(&done))));
        }
        Ok(())
    }

    /// Offers one message (the command-by-command shape of the old API, for test sends).
    pub async fn send(&mut self, from: &Address, to: &Address, message: &[u8]) -> Offer {
        let mut outcome = None;
        let message = Message {
            from: from.clone(),
            to: to.clone(),
            data: message.to_vec(),
        };
        self.send_many((), message, || None, |(), ended| outcome = Some(ended))
            .await;
        let usable = self.usable();
        match outcome {
            Some(Outcome::Attempted(attempt)) => Offer {
                attempt,
                usable,
                stale: false,
            },
            Some(Outcome::NotAttempted(reply)) => Offer {
                attempt: Attempt::Temporary(reply),
                usable,
                stale: true,
            },
            None => Offer {
                attempt: Attempt::Temporary(local_reply("the message was not offered")),
                usable,
                stale: true,
            },
        }
    }

    /// Carries `first` and then whatever `next` hands over while the session is busy, each
    /// message's outcome going to `done` in order. `next` is asked (and must not wait) when the
    /// session can write another message right behind the current one; it returning `None`
    /// ends the call once every reply is in. After it, `usable()` says whether the session can
    /// go on; every message handed over has had its `done`.
    pub async fn send_many<T>(
        &mut self,
        first: T,
        message: Message,
        mut next: impl FnMut() -> Option<(T, Message)>,
        mut done: impl FnMut(T, Outcome),
    ) {
        let mut current = Some((first, message, false));
        while let Some((token, message, written)) = current.take() {
            if !self.usable() {
                done(
                    token,
                    Outcome::NotAttempted(local_reply("the session had ended")),
                );
                continue;
            }
            let (outcome, behind) = if !written && self.refuses_utf8(&message) {
                (Outcome::Attempted(Attempt::Permanent(no_smtputf8())), None)
            } else if self.chunking() {
                (self.chunked(&message).await, None)
            } else {
                self.classic(&message, written, &mut next).await
            };
            done(token, outcome);
            current = match behind {
                Some(behind) => Some(behind),
                None if self.usable() => next().map(|(token, message)| (token, message, false)),
                None => None,
            };
        }
    }

    /// Whether the message's envelope needs SMTPUTF8 (a non-ASCII local part; domains are
    /// already A-labels) and the server did not offer it: RFC 6531 §3.4 forbids sending it.
    fn refuses_utf8(&self, message: &Message) -> bool {
        needs_smtputf8(message) && !self.capabilities.smtputf8
    }

    /// `MAIL FROM:<…>`, with the SMTPUTF8 parameter when the envelope needs it (RFC 6531 §3.4).
    fn mail_command(message: &Message) -> String {
        if needs_smtputf8(message) {
            format!("MAIL FROM:<{}> SMTPUTF8", message.from)
        } else {
            format!("MAIL FROM:<{}>", message.from)
        }
    }

    fn envelope(&mut self, message: &Message, tail: &str) -> Vec<u8> {
        let mut group = Vec::with_capacity(128);
        if std::mem::take(&mut self.open_transaction) {
            group.extend_from_slice(b"RSET\r\n");
        }
        group.extend_from_slice(Self::mail_command(message).as_bytes());
        group.extend_from_slice(b"\r\n");
        group.extend_from_slice(format!("RCPT TO:<{}>\r\n", message.to).as_bytes());
        group.extend_from_slice(tail.as_bytes());
        group
    }

    /// Whether a loss before any acknowledgement costs the message nothing: only on a session
    /// that already carried a message (a fresh one failing is the message's own attempt, or a
    /// server that drops every message would be retried forever).
    fn not_attempted(&self, reused: bool, lost: &Lost, at: &str) -> Outcome {
        let text = lost_text(at, lost);
        if reused {
            Outcome::NotAttempted(local_reply(text))
        } else {
            Outcome::Attempted(Attempt::Temporary(local_reply(text)))
        }
    }

    /// A 421 to RSET or MAIL: the server ends the session before taking the message (RFC 5321
    /// §3.8). On a reused session that costs the message nothing, as any loss before an
    /// acknowledgement does; on a fresh one it is the message's attempt (see `not_attempted`).
    fn closed_before_taking(&mut self, reply: &Raw, reused: bool) -> Outcome {
        self.closed = true;
        if reused {
            Outcome::NotAttempted(reply.reply())
        } else {
            Outcome::Attempted(attempt_for_reply(reply.reply()))
        }
    }

    /// Reads the replies to a written envelope (RSET?, MAIL, RCPT, DATA) and decides.
    async fn read_envelope(&mut self, rset: bool, reused: bool) -> Result<Sent, Outcome> {
        let limit = self.timeouts.command;
        if rset {
            match self.wire.read(limit).await {
                Err(lost) => return Err(self.not_attempted(reused, &lost, "RSET")),
                Ok(raw) if raw.code == 421 => return Err(self.closed_before_taking(&raw, true)),
                Ok(_) => {}
            }
        }
        let mail = match self.wire.read(limit).await {
            Err(lost) => return Err(self.not_attempted(reused, &lost, "MAIL")),
            Ok(raw) => raw,
        };
        if mail.code == 421 {
            return Err(self.closed_before_taking(&mail, reused));
        }
        let rcpt = self.wire.read(limit).await;
        let data = match &rcpt {
            Ok(_) => self.wire.read(limit).await,
            Err(lost) => Err(lost.clone()),
        };
        let lost_at = |at: &str, lost: &Lost| Attempt::Temporary(local_reply(lost_text(at, lost)));
        let (rcpt, data) = match (rcpt, data) {
            (Err(lost), _) => return Err(Outcome::Attempted(lost_at("RCPT", &lost))),
            (Ok(rcpt), Err(lost)) => {
                let attempt = if rcpt.positive() && mail.positive() {
                    lost_at("DATA", &lost)
                } else if !mail.positive() {
                    attempt_for_reply(mail.reply())
                } else {
                    attempt_for_reply(rcpt.reply())
                };
                return Err(Outcome::Attempted(attempt));
            }
            (Ok(rcpt), Ok(data)) => (rcpt, data),
        };
        self.closed |= rcpt.code == 421 || data.code == 421;
        let refusal = if !mail.positive() {
            Some(attempt_for_reply(mail.reply()))
        } else if !rcpt.positive() {
            Some(attempt_for_reply(rcpt.reply()))
        } else {
            None
        };
        if data.code == 354 {
            // A 354 after a refused RCPT (RFC 2920 §3.1): the transaction must be ended with a
            // lone "." and nothing is delivered.
            return Ok(Sent::AwaitingEnd { lone_dot: refusal });
        }
        if mail.positive() {
            // MAIL opened a transaction that no data ended (RFC 5321 §4.1.1.5).
            self.open_transaction = true;
        }
        Ok(Sent::Settled(match refusal {
            Some(refusal) => refusal,
            None if data.positive() => Attempt::Temporary(local_reply(format!(
                "unexpected reply to DATA: {}",
                refused(&data)
            ))),
            None => attempt_for_reply(data.reply()),
        }))
    }

    /// Command by command, without PIPELINING: MAIL, RCPT, DATA each waited for.
    async fn stepwise(&mut self, message: &Message, reused: bool) -> Result<Sent, Outcome> {
        let limit = self.timeouts.command;
        if let Some(refusal) = self.stepwise_parts(message, reused).await? {
            return Ok(Sent::Settled(refusal));
        }
        // MAIL's transaction is open until the data ends it.
        self.open_transaction = true;
        let lost_at = |at: &str, lost: &Lost| {
            Outcome::Attempted(Attempt::Temporary(local_reply(lost_text(at, lost))))
        };
        let data = match self.command("DATA", limit).await {
            Err(lost) => return Err(lost_at("DATA", &lost)),
            Ok(raw) => raw,
        };
        if data.code != 354 {
            self.closed |= data.code == 421;
            return Ok(Sent::Settled(if data.positive() {
                Attempt::Temporary(local_reply(format!(
                    "unexpected reply to DATA: {}",
                    refused(&data)
                )))
            } else {
                attempt_for_reply(data.reply())
            }));
        }
        self.open_transaction = false;
        Ok(Sent::AwaitingEnd { lone_dot: None })
    }

    /// DATA transactions, pipelined when the server allows. Returns the message's outcome and,
    /// when its group went out behind this message's ".", the next message.
    async fn classic<T>(
        &mut self,
        message: &Message,
        written: bool,
        next: &mut impl FnMut() -> Option<(T, Message)>,
    ) -> (Outcome, Option<(T, Message, bool)>) {
        let reused = self.messages > 0 || written;
        let pipelined = self.pipelining();
        let sent = if written {
            // Written behind the previous "."; that transaction ended, so no RSET.
            self.read_envelope(false, reused).await
        } else if pipelined {
            let rset = self.open_transaction;
            let group = self.envelope(message, "DATA\r\n");
            if group.len() > MAX_UNACKNOWLEDGED {
                self.open_transaction = rset;
                self.stepwise(message, reused).await
            } else if let Err((_, lost)) = self.wire.write(&group, self.timeouts.command).await {
                Err(self.not_attempted(reused, &lost, "MAIL"))
            } else {
                self.read_envelope(rset, reused).await
            }
        } else {
            self.stepwise(message, reused).await
        };
        let lone_dot = match sent {
            Err(outcome) => return (outcome, None),
            Ok(Sent::Settled(attempt)) => return (Outcome::Attempted(attempt), None),
            Ok(Sent::AwaitingEnd { lone_dot }) => lone_dot,
        };
        let mut flight = if lone_dot.is_some() {
            Vec::with_capacity(256)
        } else {
            dot_stuffed(&message.data)
        };
        flight.extend_from_slice(b".\r\n");
        let end_of_content = flight.len();
        // RFC 2920 §3.1: the content may be followed in the same write by the next group.
        let behind = if pipelined && !self.closed {
            next().map(|(token, following)| {
                if self.refuses_utf8(&following) {
                    // Not written: `send_many` settles it on its own.
                    return (token, following, false);
                }
                let group = self.envelope(&following, "DATA\r\n");
                flight.extend_from_slice(&group);
                (token, following, true)
            })
        } else {
            None
        };
        if let Err((sent, lost)) = self.wire.write(&flight, self.timeouts.data).await {
            // Whatever went out behind this message is settled by `send_many`: the session is
            // gone and the server acknowledged none of it.
            let outcome = match lone_dot {
                Some(refusal) => Outcome::Attempted(refusal),
                None if sent >= end_of_content => {
                    Outcome::Attempted(Attempt::Uncertain(local_reply(format!(
                        "connection lost after the message was sent ({lost}); the server may have it"
                    ))))
                }
                None => Outcome::Attempted(Attempt::Temporary(local_reply(format!(
                    "connection lost while sending the message: {lost}"
                )))),
            };
            return (outcome, behind);
        }
        if lone_dot.is_none() {
            self.messages += 1;
        }
        let end = self.wire.read(self.timeouts.data).await;
        self.last_reply = Instant::now();
        let outcome = match (end, lone_dot) {
            (_, Some(refusal)) => Outcome::Attempted(refusal),
            (Err(lost), None) => Outcome::Attempted(Attempt::Uncertain(local_reply(match lost {
                Lost::Timeout(limit) => format!(
                    "no reply to the end of the message within {} s; the server may have it",
                    limit.as_secs()
                ),
                other => format!(
                    "connection lost after the message was sent, before the server's reply ({other}); the server may have it"
                ),
            }))),
            (Ok(raw), None) => {
                self.closed |= raw.code == 421;
                Outcome::Attempted(attempt_for_reply(raw.reply()))
            }
        };
        (outcome, behind)
    }

    /// One CHUNKING transaction: MAIL, RCPT and `BDAT n LAST` with the whole content (RFC 3030
    /// §2: no dot-stuffing; one LAST chunk, as some servers stall on intermediate chunks).
    async fn chunked(&mut self, message: &Message) -> Outcome {
        let reused = self.messages > 0;
        let limit = self.timeouts.command;
        let data = crlf_only(&message.data);
        let header = format!("BDAT {} LAST\r\n", data.len());
        let rset = self.open_transaction;
        let group = self.envelope(message, "");
        // A reused session the server may have closed while idle must prove itself before the
        // content goes out, or a silent close would make the message look uncertain. Within a
        // busy session the previous reply just came, and everything goes in one flight.
        let idle = self.last_reply.elapsed() > IDLE_PROOF;
        let probe = !self.pipelining() || (reused && idle) || group.len() > MAX_UNACKNOWLEDGED;
        let mut flight = group;
        let mut read_rset = rset;
        if probe {
            self.open_transaction = rset;
            match self.stepwise_parts(message, reused).await {
                Err(outcome) => return outcome,
                Ok(Some(refusal)) => return Outcome::Attempted(refusal),
                Ok(None) => {}
            }
            read_rset = false;
            flight.clear();
        }
        flight.extend_from_slice(header.as_bytes());
        flight.extend_from_slice(&data);
        if let Err((sent, lost)) = self.wire.write(&flight, self.timeouts.data).await {
            return if sent >= flight.len() {
                Outcome::Attempted(Attempt::Uncertain(local_reply(format!(
                    "connection lost after the message was sent ({lost}); the server may have it"
                ))))
            } else if probe || sent > 0 {
                Outcome::Attempted(Attempt::Temporary(local_reply(format!(
                    "connection lost while sending the message: {lost}"
                ))))
            } else {
                self.not_attempted(reused, &lost, "MAIL")
            };
        }
        self.messages += 1;
        let uncertain = |lost: &Lost| {
            Outcome::Attempted(Attempt::Uncertain(local_reply(format!(
                "no reply after the message was sent ({lost}); the server may have it"
            ))))
        };
        // With the envelope in the flight, its replies come first: RSET's, MAIL's, RCPT's.
        let mut refusal = None;
        let mut transaction = probe;
        if !probe {
            if read_rset {
                match self.wire.read(limit).await {
                    Err(lost) => return uncertain(&lost),
                    // The server ends the session at the RSET that opened this message's
                    // flight: it took nothing of it (an RSET is only due on a reused session).
                    Ok(raw) if raw.code == 421 => return self.closed_before_taking(&raw, true),
                    Ok(_) => {}
                }
            }
            for command in ["MAIL", "RCPT"] {
                match self.wire.read(limit).await {
                    Err(lost) => {
                        return refusal
                            .map(Outcome::Attempted)
                            .unwrap_or_else(|| uncertain(&lost));
                    }
                    // The chunk behind this MAIL was never read.
                    Ok(raw) if command == "MAIL" && raw.code == 421 => {
                        return self.closed_before_taking(&raw, reused);
                    }
                    Ok(raw) => {
                        self.closed |= raw.code == 421;
                        transaction |= command == "MAIL" && raw.positive();
                        if refusal.is_none() && !raw.positive() {
                            refusal = Some(attempt_for_reply(raw.reply()));
                        }
                    }
                }
            }
        }
        let end = self.wire.read(self.timeouts.data).await;
        self.last_reply = Instant::now();
        match (end, refusal) {
            (_, Some(refusal)) => {
                // A refused RCPT leaves MAIL's transaction open; a refused MAIL opened none.
                self.open_transaction = transaction;
                Outcome::Attempted(refusal)
            }
            (Err(lost), None) => uncertain(&lost),
            (Ok(raw), None) => {
                self.closed |= raw.code == 421;
                // RFC 3030 §2: after a refused chunk the transaction is to be reset.
                self.open_transaction = !raw.positive();
                Outcome::Attempted(attempt_for_reply(raw.reply()))
            }
        }
    }

    /// RSET (when due), MAIL and RCPT, each reply awaited. `Ok(None)`: both accepted;
    /// `Ok(Some(_))`: RCPT refused, MAIL's transaction left open; `Err`: settled otherwise.
    async fn stepwise_parts(
        &mut self,
        message: &Message,
        reused: bool,
    ) -> Result<Option<Attempt>, Outcome> {
        let limit = self.timeouts.command;
        if std::mem::take(&mut self.open_transaction) {
            match self.command("RSET", limit).await {
                Err(lost) => return Err(self.not_attempted(reused, &lost, "RSET")),
                Ok(raw) if raw.code == 421 => return Err(self.closed_before_taking(&raw, true)),
                Ok(_) => {}
            }
        }
        let mail = match self.command(&Self::mail_command(message), limit).await {
            Err(lost) => return Err(self.not_attempted(reused, &lost, "MAIL")),
            Ok(raw) => raw,
        };
        if mail.code == 421 {
            return Err(self.closed_before_taking(&mail, reused));
        }
        if !mail.positive() {
            return Err(Outcome::Attempted(attempt_for_reply(mail.reply())));
        }
        self.open_transaction = true;
        let rcpt = match self
            .command(&format!("RCPT TO:<{}>", message.to), limit)
            .await
        {
            Err(lost) => {
                return Err(Outcome::Attempted(Attempt::Temporary(local_reply(
                    lost_text("RCPT", &lost),
                ))));
            }
            Ok(raw) => raw,
        };
        if !rcpt.positive() {
            self.closed |= rcpt.code == 421;
            return Ok(Some(attempt_for_reply(rcpt.reply())));
        }
        self.open_transaction = false;
        Ok(None)
    }

    /// Ends the session politely (QUIT), without waiting long for a server that hangs.
    pub async fn quit(mut self) {
        if self.wire.is_open() {
            let _ = self.command("QUIT", Duration::from_secs(5)).await;
        }
        self.wire.drop_socket();
    }
}

/// Whether the envelope needs SMTPUTF8 (RFC 6531): a non-ASCII local part on either side.
fn needs_smtputf8(message: &Message) -> bool {
    !message.from.user().is_ascii() || !message.to.user().is_ascii()
}

/// RFC 6531 registers X.6.7 for "non-ASCII addresses not permitted": Herald's own refusal
/// carries it, so the results file it where a server's own such refusal goes (issue #20).
fn no_smtputf8() -> Reply {
    Reply {
        enhanced: Some("5.6.7".into()),
        ..local_reply(
            "the server does not take addresses with non-ASCII characters before the @ (it does not offer SMTPUTF8, RFC 6531)",
        )
    }
}

/// The content as SMTP DATA carries it (RFC 5321 §4.5.2): CRLF line ends, a "." doubled at
/// the start of a line, and a final CRLF so that the "." that follows stands alone.
fn dot_stuffed(data: &[u8]) -> Vec<u8> {
    let data = crlf_only(data);
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 8);
    let mut line_start = true;
    for &byte in data.iter() {
        if line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        line_start = byte == b'\n';
    }
    if !data.is_empty() && !data.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A rustls handshake refused (bad certificate, wrong name, no shared protocol) surfaces as an
/// I/O error of kind `InvalidData`, which TCP itself never produces: waiting will not fix it.
fn handshake_error(error: std::io::Error) -> ConnectError {
    // A refused certificate in words ("no known CA issued it"), as the HTTP client says it: an
    // MTA-STS deferral quotes it to the user.
    if let Some(problem) = tls::certificate_problem(&error) {
        return ConnectError::Tls(format!(
            "the server's certificate is not accepted: {problem}"
        ));
    }
    if error.kind() == std::io::ErrorKind::InvalidData {
        ConnectError::Tls(error.to_string())
    } else {
        ConnectError::Network(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::{dot_stuffed, explain_refusal};

    #[test]
    fn microsofts_refusals_are_told_by_their_whole_enhanced_status_code() {
        let check = |reply: &str, expected: Option<&str>| {
            let said = explain_refusal(reply);
            match expected {
                Some(sentence) => {
                    assert!(said.starts_with(sentence), "{reply}: {said}");
                    assert!(said.ends_with(&format!("[{reply}]")), "{said}");
                }
                None => assert_eq!(said, reply),
            }
        };
        check(
            "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
            Some("SMTP AUTH is turned off"),
        );
        check(
            "550 5.7.30 Basic authentication is not supported for Client Submission",
            Some("Microsoft 365 no longer accepts a password"),
        );
        check(
            "535 5.7.3 Authentication unsuccessful",
            Some("Microsoft 365 refused the sign-in"),
        );
        // Other codes that merely begin alike are someone else's refusal, told as sent.
        check("535 5.7.31 Some other refusal", None);
        check("535 5.7.300 Some other refusal", None);
        check("550 5.7.3 Not an AUTH refusal", None);
        check("535 5.7.8 Authentication credentials invalid", None);
        check("535 Authentication failed 5.7.139", None);
        check("535", None);
    }

    #[test]
    fn content_is_dot_stuffed_and_ends_a_line() {
        assert_eq!(dot_stuffed(b"a\r\n.b\r\n"), b"a\r\n..b\r\n");
        assert_eq!(dot_stuffed(b".\r\n"), b"..\r\n");
        assert_eq!(dot_stuffed(b"a\n.\nb"), b"a\r\n..\r\nb\r\n");
        assert_eq!(dot_stuffed(b""), b"");
    }
}
