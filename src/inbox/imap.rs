//! The bounce mailbox over IMAP4rev1 (RFC 3501): connect (implicit TLS, STARTTLS, or plain
//! text only when the campaign says `security = "none"`; certificates verified against the
//! web's roots plus the campaign's `ca_file`), log in, select the folder, list UIDs after the
//! last one handled, fetch messages in batches with `BODY.PEEK[]` (so nothing is marked read by
//! reading it), and flag handled ones \Seen or move them to the processed folder. The only user
//! of `async-imap`; its TLS is the program's one `tls` module, trusted as a relay is. It never
//! deletes and never expunges: not a single command here removes mail. Every step has a timeout.

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
async fn greeting(client: &mut Client<Stream>) -> Result<(), InboxError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, client.read_response()).await {
        Ok(Ok(Some(_))) => Ok(()),
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

/// SASL XOAUTH2 for async-imap: the initial response on the first (empty) challenge; a second
/// challenge is the server's error (base64 JSON), answered with an empty response so the
/// server can finish with NO (RFC 7628 §3.2.3).
struct XOAuth2 {
    response: Option<String>,
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = String;

    fn process(&mut self, _challenge: &[u8]) -> String {
        self.response.take().unwrap_or_default()
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
        let client = match spec.security {
            Security::Tls => {
                let mut client = Client::new(handshake(spec, tcp).await?);
                greeting(&mut client).await?;
                client
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
                Client::new(handshake(spec, tcp).await?)
            }
            Security::None => {
                let mut client = Client::new(Stream::Plain(tcp));
                greeting(&mut client).await?;
                client
            }
        };
        let signing_in = async {
            match login {
                Login::Password(password) => client.login(&spec.username, password).await,
                Login::Bearer(token) => {
                    let sasl = XOAuth2 {
                        response: Some(crate::oauth2::sasl::xoauth2_raw(&spec.username, token)),
                    };
                    client.authenticate("XOAUTH2", sasl).await
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

    /// The raw messages of `uids`, without setting \Seen (RFC 3501 §6.4.5: BODY.PEEK).
    pub async fn fetch(&mut self, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, InboxError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        let session = &mut self.session;
        let fetched = timed("UID FETCH", COMMAND_TIMEOUT, async move {
            let stream = session.uid_fetch(&set, "(UID BODY.PEEK[])").await?;
            stream.try_collect::<Vec<_>>().await
        })
        .await?;
        Ok(fetched
            .into_iter()
            .filter_map(|fetch| Some((fetch.uid?, fetch.body()?.to_vec())))
            .collect())
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
