//! The bounce mailbox over IMAP4rev1 (RFC 3501): connect (implicit TLS, STARTTLS, or plain
//! text only when the campaign says `security = "none"`; certificates verified against the
//! web's roots plus the campaign's `ca_file`), log in, select the folder, list UIDs after the
//! last one handled, learn their sizes (`RFC822.SIZE`), fetch messages in batches bounded in
//! count and bytes with `BODY.PEEK[]` (so nothing is marked read by reading it) — only the head
//! and the start of the body of a message over `MAX_MESSAGE_BYTES` — each message under a
//! deadline of its own, and flag handled ones \Seen or move them to the processed folder. The
//! only user of `async-imap`; its TLS is the program's one `tls` module, trusted as a relay is.
//! It never deletes and never expunges: not a single command here removes mail. Every step has
//! a timeout.

use std::fmt;
use std::pin::Pin;

use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::{Client, Session};
use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::campaign::{BouncesSpec, Security};
use crate::tls::{self, TlsStream};

use super::InboxError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 9051 §5.4 asks servers to wait at least 30 minutes on an idle client; a command's reply
/// that takes longer than this is a dead connection.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Messages over this size are read only in part (issue #21): no bounce, complaint or
/// unsubscribe request needs more, and a stranger's 50 MB message must cost neither the check's
/// time nor its memory.
pub const MAX_MESSAGE_BYTES: u32 = 2 * 1024 * 1024;
/// What is read of a message over the bound: this much of its header section and as much of
/// its body (RFC 3501 §6.4.5: a partial fetch `<0.N>`).
pub const PART_BYTES: u32 = 64 * 1024;
/// Messages fetched with one command, and the bytes they may add up to (sizes as the server
/// states them; a message read in part counts for its parts).
pub const BATCH_MESSAGES: usize = 200;
pub const BATCH_BYTES: u64 = 8 * 1024 * 1024;
/// Each message of a fetch must arrive within this plus its size at `SLOWEST_BYTES_PER_SEC`.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(20);
const SLOWEST_BYTES_PER_SEC: u64 = 64 * 1024;
/// Each size of a size listing must arrive within this of the one before.
const SIZE_TIMEOUT: Duration = Duration::from_secs(30);

/// A plain or TLS connection.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Plain(_) => "Stream::Plain",
            Stream::Tls(_) => "Stream::Tls",
        })
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

async fn timed<T, E: fmt::Display>(
    what: &str,
    limit: Duration,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, InboxError> {
    match tokio::time::timeout(limit, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(InboxError::Imap {
            what: what.to_string(),
            reason: error.to_string(),
        }),
        Err(_) => Err(InboxError::Imap {
            what: what.to_string(),
            reason: format!("no answer within {} s", limit.as_secs()),
        }),
    }
}

/// The mailbox's TLS trusts what a relay's does: Mozilla's roots plus `ca_file` (the `tls` module).
fn tls_connector(spec: &BouncesSpec) -> Result<tls::Connector, InboxError> {
    let ca_pem = match &spec.ca_file {
        Some(file) => Some(std::fs::read(file).map_err(|error| InboxError::CaFile {
            path: file.clone(),
            reason: error.to_string(),
        })?),
        None => None,
    };
    tls::verified(ca_pem.as_deref()).map_err(|reason| match &spec.ca_file {
        Some(file) => InboxError::CaFile {
            path: file.clone(),
            reason,
        },
        None => InboxError::Tls {
            host: spec.host.clone(),
            reason,
        },
    })
}

async fn handshake(spec: &BouncesSpec, tcp: TcpStream) -> Result<Stream, InboxError> {
    let connector = tls_connector(spec)?;
    let name = tls::server_name(&spec.host).map_err(|reason| InboxError::Tls {
        host: spec.host.clone(),
        reason,
    })?;
    match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp)).await {
        Ok(Ok(tls)) => Ok(Stream::Tls(Box::new(tls))),
        Ok(Err(error)) => Err(InboxError::Tls {
            host: spec.host.clone(),
            reason: error.to_string(),
        }),
        Err(_) => Err(InboxError::Tls {
            host: spec.host.clone(),
            reason: "the TLS handshake timed out".into(),
        }),
    }
}

/// Reads the server's greeting (RFC 3501 §7.1: the first thing on the connection).
async fn greeting(client: &mut Client<Stream>) -> Result<Option<Vec<String>>, InboxError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, client.read_response()).await {
        Ok(Ok(Some(response))) => Ok(greeted_mechanisms(response.parsed())),
        Ok(Ok(None)) => Err(InboxError::Imap {
            what: "greeting".into(),
            reason: "the server closed the connection".into(),
        }),
        Ok(Err(error)) => Err(InboxError::Imap {
            what: "greeting".into(),
            reason: error.to_string(),
        }),
        Err(_) => Err(InboxError::Imap {
            what: "greeting".into(),
            reason: "no greeting".into(),
        }),
    }
}

/// The SASL mechanisms a greeting lists (`* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 …]`, RFC
/// 3501 §7.1), upper-cased; None when it lists no capabilities.
fn greeted_mechanisms(response: &async_imap::imap_proto::Response<'_>) -> Option<Vec<String>> {
    use async_imap::imap_proto::{Capability, Response, ResponseCode};
    let Response::Data { outcome, .. } = response else {
        return None;
    };
    let Some(ResponseCode::Capabilities(capabilities)) = &outcome.code else {
        return None;
    };
    Some(
        capabilities
            .iter()
            .filter_map(|capability| match capability {
                Capability::Auth(mechanism) => Some(mechanism.to_ascii_uppercase()),
                _ => None,
            })
            .collect(),
    )
}

/// A logged-in session on the bounce mailbox.
pub struct Mailbox {
    session: Session<Stream>,
    can_move: bool,
}

/// How the mailbox signs in: LOGIN with a password, or AUTHENTICATE XOAUTH2 with an OAuth2
/// access token (issue #22). Tokens and passwords never reach a log line.
pub enum Login {
    Password(String),
    Bearer(String),
}

/// SASL XOAUTH2 or OAUTHBEARER for async-imap: the initial response on the first (empty)
/// challenge; a second challenge is the server's error (base64 JSON), answered so the server
/// can finish with NO: an empty response for XOAUTH2, %x01 for OAUTHBEARER (RFC 7628 §3.2.3).
struct Bearer {
    response: Option<String>,
    answer_to_error: &'static str,
}

impl async_imap::Authenticator for Bearer {
    type Response = String;

    fn process(&mut self, _challenge: &[u8]) -> String {
        self.response
            .take()
            .unwrap_or_else(|| self.answer_to_error.to_string())
    }
}

/// AUTHENTICATE with a bearer token: XOAUTH2 (what Microsoft and Google document), or
/// OAUTHBEARER (RFC 7628) when the server's greeting lists only that. A server that lists no
/// capabilities in its greeting (and every STARTTLS one, whose capabilities may change with
/// TLS) gets XOAUTH2.
fn bearer_for(
    spec: &BouncesSpec,
    token: &str,
    mechanisms: Option<&[String]>,
) -> (&'static str, Bearer) {
    let offers = |name: &str| mechanisms.is_some_and(|list| list.iter().any(|m| m == name));
    if offers("OAUTHBEARER") && !offers("XOAUTH2") {
        let response =
            crate::oauth2::sasl::oauthbearer_raw(&spec.username, &spec.host, spec.port, token);
        (
            "OAUTHBEARER",
            Bearer {
                response: Some(response),
                answer_to_error: crate::oauth2::sasl::OAUTHBEARER_ERROR_ANSWER_RAW,
            },
        )
    } else {
        let response = crate::oauth2::sasl::xoauth2_raw(&spec.username, token);
        (
            "XOAUTH2",
            Bearer {
                response: Some(response),
                answer_to_error: "",
            },
        )
    }
}

/// What SELECT says about the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    pub uid_validity: u32,
}

impl Mailbox {
    /// Connects and logs in. A wrong password or an unreachable server is an error and nothing
    /// else happens.
    pub async fn connect(spec: &BouncesSpec, login: &Login) -> Result<Mailbox, InboxError> {
        let address = (spec.host.as_str(), spec.port);
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(error)) => {
                return Err(InboxError::Connect {
                    host: spec.host.clone(),
                    port: spec.port,
                    reason: error.to_string(),
                });
            }
            Err(_) => {
                return Err(InboxError::Connect {
                    host: spec.host.clone(),
                    port: spec.port,
                    reason: "timed out".into(),
                });
            }
        };
        let _ = tcp.set_nodelay(true);
        let (client, mechanisms) = match spec.security {
            Security::Tls => {
                let mut client = Client::new(handshake(spec, tcp).await?);
                let mechanisms = greeting(&mut client).await?;
                (client, mechanisms)
            }
            Security::StartTls => {
                let mut client = Client::new(Stream::Plain(tcp));
                greeting(&mut client).await?;
                // RFC 3501 §6.2.1: after OK to STARTTLS the TLS negotiation begins at once.
                timed(
                    "STARTTLS",
                    COMMAND_TIMEOUT,
                    client.run_command_and_check_ok("STARTTLS", None),
                )
                .await?;
                let Stream::Plain(tcp) = client.into_inner() else {
                    return Err(InboxError::Imap {
                        what: "STARTTLS".into(),
                        reason: "the connection was not plain text".into(),
                    });
                };
                (Client::new(handshake(spec, tcp).await?), None)
            }
            Security::None => {
                let mut client = Client::new(Stream::Plain(tcp));
                let mechanisms = greeting(&mut client).await?;
                (client, mechanisms)
            }
        };
        let signing_in = async {
            match login {
                Login::Password(password) => client.login(&spec.username, password).await,
                Login::Bearer(token) => {
                    let (mechanism, sasl) = bearer_for(spec, token, mechanisms.as_deref());
                    client.authenticate(mechanism, sasl).await
                }
            }
        };
        let session = match tokio::time::timeout(COMMAND_TIMEOUT, signing_in).await {
            Ok(Ok(session)) => session,
            Ok(Err((error, _))) => {
                return Err(InboxError::Login {
                    username: spec.username.clone(),
                    reason: error.to_string(),
                });
            }
            Err(_) => {
                return Err(InboxError::Login {
                    username: spec.username.clone(),
                    reason: "no answer to LOGIN".into(),
                });
            }
        };
        let mut mailbox = Mailbox {
            session,
            can_move: false,
        };
        let capabilities = timed(
            "CAPABILITY",
            COMMAND_TIMEOUT,
            mailbox.session.capabilities(),
        )
        .await?;
        // RFC 6851: MOVE; without it a copy is made and the original kept, marked read.
        mailbox.can_move = capabilities.has_str("MOVE");
        Ok(mailbox)
    }

    /// Selects `folder` read-write.
    pub async fn select(&mut self, folder: &str) -> Result<Selected, InboxError> {
        let selected = timed("SELECT", COMMAND_TIMEOUT, self.session.select(folder))
            .await
            .map_err(|error| InboxError::Folder {
                folder: folder.to_string(),
                reason: error.to_string(),
            })?;
        Ok(Selected {
            uid_validity: selected.uid_validity.unwrap_or(0),
        })
    }

    /// The UIDs above `last_uid`, ascending.
    pub async fn uids_after(&mut self, last_uid: u32) -> Result<Vec<u32>, InboxError> {
        let from = last_uid.saturating_add(1);
        let found = timed(
            "UID SEARCH",
            COMMAND_TIMEOUT,
            self.session.uid_search(format!("UID {from}:*")),
        )
        .await?;
        // RFC 3501 §6.4.4: "n:*" always includes the highest UID, even one below n.
        let mut uids: Vec<u32> = found.into_iter().filter(|uid| *uid > last_uid).collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// The size of each of `uids` (RFC 3501 §2.3.4 `RFC822.SIZE`), as they arrive, each within
    /// `SIZE_TIMEOUT` of the one before; and the failure that ended the answer early, after
    /// which the session must not be used again. A UID the server gives no size for (expunged
    /// meanwhile, or unreadable: Dovecot then ends the session) is absent.
    pub async fn sizes(&mut self, uids: &[u32]) -> (Vec<(u32, u32)>, Option<InboxError>) {
        let mut sizes = Vec::new();
        if uids.is_empty() {
            return (sizes, None);
        }
        let set = uid_set(uids);
        let what = "UID FETCH (RFC822.SIZE)";
        let started = timed(
            what,
            COMMAND_TIMEOUT,
            self.session.uid_fetch(&set, "(UID RFC822.SIZE)"),
        )
        .await;
        let mut stream = match started {
            Ok(stream) => stream,
            Err(error) => return (sizes, Some(error)),
        };
        loop {
            match tokio::time::timeout(SIZE_TIMEOUT, stream.try_next()).await {
                Ok(Ok(Some(fetch))) => {
                    if let (Some(uid), Some(size)) = (fetch.uid, fetch.size)
                        && uids.contains(&uid)
                        && !sizes.iter().any(|(u, _)| *u == uid)
                    {
                        sizes.push((uid, size));
                    }
                }
                Ok(Ok(None)) => break,
                Ok(Err(error)) => return (sizes, Some(failed(what, error.to_string()))),
                Err(_) => {
                    let reason = format!("no size within {} s", SIZE_TIMEOUT.as_secs());
                    return (sizes, Some(failed(what, reason)));
                }
            }
        }
        sizes.sort_unstable();
        (sizes, None)
    }

    /// The messages of `batch` (UIDs with their sizes), without setting \Seen (RFC 3501
    /// §6.4.5: BODY.PEEK): whole, or with `part` their first `PART_BYTES` of header section and
    /// of body, one after the other. Each message must arrive within its own deadline. Returns
    /// what arrived, and the failure that ended the fetch early: after a failure the session is
    /// in an unknown state and must not be used again. A message the server leaves out of a
    /// complete answer (RFC 3501 lets it answer NO for the ones it cannot read) is simply
    /// absent.
    pub async fn fetch(
        &mut self,
        batch: &[(u32, u32)],
        part: bool,
    ) -> (Vec<(u32, Vec<u8>)>, Option<InboxError>) {
        let mut fetched = Vec::new();
        let Some(largest) = batch.iter().map(|(_, size)| *size).max() else {
            return (fetched, None);
        };
        let uids: Vec<u32> = batch.iter().map(|(uid, _)| *uid).collect();
        let set = uid_set(&uids);
        let items = if part {
            format!("(UID BODY.PEEK[HEADER]<0.{PART_BYTES}> BODY.PEEK[TEXT]<0.{PART_BYTES}>)")
        } else {
            "(UID BODY.PEEK[])".to_string()
        };
        let cost = if part { 2 * PART_BYTES } else { largest };
        let limit = message_timeout(cost);
        let started = timed(
            "UID FETCH",
            COMMAND_TIMEOUT,
            self.session.uid_fetch(&set, &items),
        )
        .await;
        let mut stream = match started {
            Ok(stream) => stream,
            Err(error) => return (fetched, Some(error)),
        };
        loop {
            match tokio::time::timeout(limit, stream.try_next()).await {
                Ok(Ok(Some(fetch))) => {
                    let Some(uid) = fetch.uid.filter(|uid| uids.contains(uid)) else {
                        // An unsolicited FETCH (flags changed by another client): not ours.
                        continue;
                    };
                    let raw = if part {
                        let mut raw = fetch.header().unwrap_or_default().to_vec();
                        // A header section cut at the bound is not followed by the body: the
                        // two would read as one message they are not.
                        if raw.len() < PART_BYTES as usize {
                            raw.extend_from_slice(fetch.text().unwrap_or_default());
                        }
                        raw
                    } else {
                        match fetch.body() {
                            Some(body) => body.to_vec(),
                            None => continue,
                        }
                    };
                    fetched.push((uid, raw));
                }
                Ok(Ok(None)) => return (fetched, None),
                Ok(Err(error)) => return (fetched, Some(failed("UID FETCH", error.to_string()))),
                Err(_) => {
                    let reason = format!("a message did not arrive within {} s", limit.as_secs());
                    return (fetched, Some(failed("UID FETCH", reason)));
                }
            }
        }
    }

    /// Marks `uids` read and, when `processed` is set, moves them there (or, on a server
    /// without MOVE, copies them there and leaves the read originals: nothing is deleted).
    pub async fn mark_handled(
        &mut self,
        uids: &[u32],
        processed: Option<&str>,
    ) -> Result<(), InboxError> {
        if uids.is_empty() {
            return Ok(());
        }
        let set = uid_set(uids);
        let session = &mut self.session;
        let store_set = set.clone();
        timed("UID STORE", COMMAND_TIMEOUT, async move {
            let stream = session
                .uid_store(&store_set, "+FLAGS.SILENT (\\Seen)")
                .await?;
            stream.try_collect::<Vec<_>>().await
        })
        .await?;
        if let Some(folder) = processed {
            if self.can_move {
                timed(
                    "UID MOVE",
                    COMMAND_TIMEOUT,
                    self.session.uid_mv(&set, folder),
                )
                .await
            } else {
                timed(
                    "UID COPY",
                    COMMAND_TIMEOUT,
                    self.session.uid_copy(&set, folder),
                )
                .await
            }
            .map_err(|error| InboxError::Folder {
                folder: folder.to_string(),
                reason: error.to_string(),
            })?;
        }
        Ok(())
    }

    /// Says goodbye (RFC 3501 §6.1.3); errors here change nothing.
    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.session.logout()).await;
    }
}

fn failed(what: &str, reason: String) -> InboxError {
    InboxError::Imap {
        what: what.to_string(),
        reason,
    }
}

/// How long one message of `bytes` may take to arrive: a fixed allowance for the server and the
/// round trip, plus its size at a slow link's rate.
fn message_timeout(bytes: u32) -> Duration {
    MESSAGE_TIMEOUT + Duration::from_secs(u64::from(bytes) / SLOWEST_BYTES_PER_SEC)
}

/// One fetch command's worth of messages: consecutive UIDs (so the cursor can pass them in
/// order), all read whole or all read in part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// UIDs with their sizes, ascending.
    pub messages: Vec<(u32, u32)>,
    /// Read only in part: every message here is over `MAX_MESSAGE_BYTES`.
    pub part: bool,
}

/// Cuts `sizes` (ascending by UID) into batches of at most `BATCH_MESSAGES` messages and
/// `BATCH_BYTES` bytes, a new one wherever whole reading and partial reading alternate. A
/// message alone may exceed nothing: the largest read whole is `MAX_MESSAGE_BYTES`.
pub fn batches(sizes: &[(u32, u32)]) -> Vec<Batch> {
    let mut batches: Vec<Batch> = Vec::new();
    let mut bytes = 0u64;
    for &(uid, size) in sizes {
        let part = size > MAX_MESSAGE_BYTES;
        let cost = if part {
            2 * u64::from(PART_BYTES)
        } else {
            u64::from(size)
        };
        let fits = batches.last().is_some_and(|batch| {
            batch.part == part
                && batch.messages.len() < BATCH_MESSAGES
                && bytes + cost <= BATCH_BYTES
        });
        match batches.last_mut() {
            Some(batch) if fits => {
                batch.messages.push((uid, size));
                bytes += cost;
            }
            _ => {
                batches.push(Batch {
                    messages: vec![(uid, size)],
                    part,
                });
                bytes = cost;
            }
        }
    }
    batches
}

/// An IMAP sequence set of UIDs, runs written as ranges: `3:7,9,12:13`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut index = 0;
    while let Some(&start) = sorted.get(index) {
        let mut end = start;
        while sorted.get(index + 1) == Some(&(end + 1)) {
            end += 1;
            index += 1;
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        index += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::{BATCH_BYTES, BATCH_MESSAGES, MAX_MESSAGE_BYTES, batches};

    /// (batch lengths, partial?) of the batches of `sizes`, UIDs 1, 2, 3….
    fn shape(sizes: &[u32]) -> Vec<(usize, bool)> {
        let numbered: Vec<(u32, u32)> = (1..).zip(sizes.iter().copied()).collect();
        let cut = batches(&numbered);
        let flat: Vec<(u32, u32)> = cut.iter().flat_map(|b| b.messages.clone()).collect();
        assert_eq!(flat, numbered, "every message once, in UID order");
        cut.iter().map(|b| (b.messages.len(), b.part)).collect()
    }

    #[test]
    fn batches_are_bounded_in_count_and_bytes_and_never_mix_partial_reads() {
        const MB: u32 = 1024 * 1024;
        let big = MAX_MESSAGE_BYTES + 1;
        assert_eq!(shape(&[]), []);
        assert_eq!(shape(&[5_000; 3]), [(3, false)]);
        assert_eq!(
            shape(&vec![1_000; BATCH_MESSAGES + 1]),
            [(BATCH_MESSAGES, false), (1, false)]
        );
        // 2 MB each: four fit in 8 MB.
        assert_eq!(shape(&[2 * MB; 9]), [(4, false), (4, false), (1, false)]);
        assert_eq!(BATCH_BYTES, 8 * u64::from(MB));
        // Big ones cost their parts (128 KB), not their 50 MB.
        assert_eq!(
            shape(&[1_000, 50 * MB, 50 * MB, 1_000, big]),
            [(1, false), (2, true), (1, false), (1, true)]
        );
        assert_eq!(shape(&[50 * MB; 70]), [(64, true), (6, true)]);
    }

    #[test]
    fn uid_sets_write_runs_as_ranges() {
        for (uids, expected) in [
            (&[][..], ""),
            (&[5][..], "5"),
            (&[3, 4, 5, 6, 7, 9, 12, 13][..], "3:7,9,12:13"),
            (&[9, 3, 4, 3][..], "3:4,9"),
        ] {
            assert_eq!(super::uid_set(uids), expected, "{uids:?}");
        }
    }
}
