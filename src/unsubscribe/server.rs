//! `herald unsubscribe-server`: the endpoint a marketer deploys behind their HTTPS (see the
//! README). `GET /u/{token}` shows a confirmation page, `POST /u/{token}` with
//! `List-Unsubscribe=One-Click` records (RFC 8058 §3.2: no cookies, no redirect, a 2xx once
//! recorded), `GET /pull?since=CURSOR` serves records to Herald with the bearer secret. Tokens
//! are verified with the database's unsubscribe key (`KEY_FILE` in the data folder), so a
//! forged, edited or truncated link gets a 4xx and records nothing.
//!
//! Bounded against slow or greedy clients without ever ceasing to accept (issue #21): a
//! connection must deliver a whole request head (after its TLS handshake, or after its previous
//! answer) within `HEAD_TIMEOUT` and in at most `MAX_HEAD` bytes, or it is closed; bodies over
//! `MAX_BODY` are refused with 413 and bodies not in within `BODY_TIMEOUT` with 408; a
//! connection is closed after `CONNECTION_TIMEOUT` whatever it is doing. At most
//! `MAX_CONNECTIONS` are open, or fewer when the open-file limit (raised toward its hard limit
//! at start) leaves no room for that many beside `RESERVED_DESCRIPTORS`: a new one beyond that
//! (or one the system has no file descriptor for) closes the oldest idle connection, one that
//! is not in the middle of a request, so slow clients cost each other their places and never a
//! provider's one-click POST. Nothing here counts per address: behind a reverse proxy every
//! client has the proxy's. Plain HTTP behind the user's reverse
//! proxy (which then owns the certificate and its renewal), or HTTPS with a certificate of its
//! own (`--cert`/`--key`, PEM; rustls through the SMTP module's TLS setup, so one crypto
//! provider serves the whole program). Logs carry campaign and recipient ids, never a token or
//! address.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::{KEY_FILE, LOG_FILE, PULL_PAGE, PullPage, PulledRecord, key_from_hex, page};
use crate::store::{StoreError, UnsubscribeLog, now_ms};
use crate::tls::{
    Acceptor as TlsAcceptor, AcceptorError as TlsAcceptorError, acceptor as tls_acceptor,
};
use crate::token::{self, Purpose};

/// Largest request body: a one-click body is 26 bytes; a page's form post a few more.
pub const MAX_BODY: usize = 4 * 1024;
/// Largest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// How long a connection may take to deliver a whole request head, counted from its opening
/// (TLS handshake included) or from its previous answer. Mailbox providers send RFC 8058's POST
/// in one go with short timeouts of their own; a client that has not said what it wants by then
/// is slow or idle, and holds a place a real request may need.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a request's body may take once its head is in (a one-click body is one packet).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Open connections before the oldest idle one is closed for each new one.
pub const MAX_CONNECTIONS: usize = 1024;
/// Open files kept for everything but client connections: standard input, output and error,
/// the listener, the database with its WAL and shared-memory files, the runtime's own
/// descriptors, and connections accepted before the ones shed for them are closed.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// The environment variable that may hold the key instead of the key file.
pub const KEY_ENV: &str = "HERALD_UNSUBSCRIBE_KEY";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "no unsubscribe key: put the output of `herald unsubscribes secret` in {} (or in {KEY_ENV})",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error("the unsubscribe key in {} is not 64 hex digits", path.display())]
    BadKey { path: PathBuf },
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("the data folder {} cannot be used: {source}", path.display())]
    Data {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the certificate file cannot be used: {reason} ({})", path.display())]
    Certificate { path: PathBuf, reason: String },
    #[error("the private key file cannot be used: {reason} ({})", path.display())]
    Key { path: PathBuf, reason: String },
    #[error(
        "the certificate and the private key do not make a pair: {reason} ({} and {})",
        cert.display(),
        key.display()
    )]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error(
        "the pull's bearer secret: the environment variable {name} {problem}; set it to a random secret of at least {min} characters, the same value as [unsubscribe] token_env's variable on Herald's side",
        min = token::MIN_PULL_BEARER
    )]
    Bearer { name: String, problem: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the server's runtime failed: {0}")]
    Runtime(std::io::Error),
}

struct Shared {
    key: [u8; 32],
    bearer: String,
    log: Mutex<UnsubscribeLog>,
}

/// A bound endpoint, not yet serving.
pub struct Server {
    listener: std::net::TcpListener,
    shared: Shared,
    /// Set: HTTPS with the endpoint's own certificate; None: plain HTTP (behind a proxy).
    tls: Option<TlsAcceptor>,
    /// Open connections before the oldest idle one is shed.
    max_connections: usize,
    /// The time for a whole request head.
    head_timeout: Duration,
}

/// Reads the key: `KEY_ENV` when set, else `KEY_FILE` in `data`.
fn read_key(data: &Path) -> Result<[u8; 32], ServerError> {
    let path = data.join(KEY_FILE);
    let text = match std::env::var(KEY_ENV) {
        Ok(text) if !text.trim().is_empty() => text,
        _ => {
            std::fs::read_to_string(&path).map_err(|_| ServerError::NoKey { path: path.clone() })?
        }
    };
    key_from_hex(&text).ok_or(ServerError::BadKey { path })
}

impl Server {
    /// Opens the data folder's key and log and binds `listen` (`127.0.0.1:8025`; port 0 picks
    /// a free one).
    pub fn bind(listen: &str, data: &Path) -> Result<Server, ServerError> {
        std::fs::create_dir_all(data).map_err(|source| ServerError::Data {
            path: data.to_path_buf(),
            source,
        })?;
        let key = read_key(data)?;
        let log = UnsubscribeLog::open(&data.join(LOG_FILE))?;
        let bind_error = |source| ServerError::Bind {
            addr: listen.to_string(),
            source,
        };
        let listener = std::net::TcpListener::bind(listen).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        Ok(Server {
            listener,
            shared: Shared {
                key,
                bearer: token::pull_bearer(&key),
                log: Mutex::new(log),
            },
            tls: None,
            max_connections: MAX_CONNECTIONS,
            head_timeout: HEAD_TIMEOUT,
        })
    }

    /// Gives a connection `limit` (at least 1 s; `HEAD_TIMEOUT` unless told) to deliver a whole
    /// request head.
    pub fn with_head_timeout(mut self, limit: Duration) -> Server {
        self.head_timeout = limit.max(Duration::from_secs(1));
        self
    }

    /// Sheds the oldest idle connection once `max` are open (at least 1; `MAX_CONNECTIONS`
    /// unless told).
    pub fn with_max_connections(mut self, max: usize) -> Server {
        self.max_connections = max.max(1);
        self
    }

    /// Takes the pull's bearer secret from the environment variable `name` instead of deriving
    /// it from the key, so that a user can set one secret of their own on both sides (Herald's
    /// `[unsubscribe] token_env`). Refused when the variable is unset, empty or shorter than
    /// `token::MIN_PULL_BEARER`: a short secret could be guessed through the pull endpoint.
    pub fn with_bearer_from_env(mut self, name: &str) -> Result<Server, ServerError> {
        let problem = |problem| ServerError::Bearer {
            name: name.to_string(),
            problem,
        };
        let value = std::env::var(name).map_err(|_| problem("is not set"))?;
        let value = value.trim();
        if value.is_empty() {
            return Err(problem("is empty"));
        }
        if value.chars().count() < token::MIN_PULL_BEARER {
            return Err(problem("is too short"));
        }
        self.shared.bearer = value.to_string();
        Ok(self)
    }

    /// Serves HTTPS with the certificate chain in `cert` (PEM, the server's certificate first,
    /// e.g. certbot's fullchain.pem) and its private key in `key` (PEM).
    pub fn with_certificate(mut self, cert: &Path, key: &Path) -> Result<Server, ServerError> {
        let cert_pem = std::fs::read(cert).map_err(|error| ServerError::Certificate {
            path: cert.to_path_buf(),
            reason: error.to_string(),
        })?;
        let key_pem = std::fs::read(key).map_err(|error| ServerError::Key {
            path: key.to_path_buf(),
            reason: error.to_string(),
        })?;
        let acceptor = tls_acceptor(&cert_pem, &key_pem).map_err(|error| match error {
            TlsAcceptorError::Certificate(reason) => ServerError::Certificate {
                path: cert.to_path_buf(),
                reason,
            },
            TlsAcceptorError::Key(reason) => ServerError::Key {
                path: key.to_path_buf(),
                reason,
            },
            TlsAcceptorError::Pair(reason) => ServerError::Pair {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                reason,
            },
        })?;
        self.tls = Some(acceptor);
        Ok(self)
    }

    /// "https" with a certificate of its own, else "http".
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener.local_addr().map_err(ServerError::Runtime)
    }

    /// Serves until SIGINT or SIGTERM. Every 2xx was committed before it was sent, so stopping
    /// at any moment loses no acknowledged request.
    pub fn run_until_signal(self) -> Result<(), ServerError> {
        let runtime = runtime()?;
        runtime.block_on(async move {
            let stop = async {
                #[cfg(unix)]
                {
                    use tokio::signal::unix::{SignalKind, signal};
                    match signal(SignalKind::terminate()) {
                        Ok(mut term) => {
                            tokio::select! {
                                _ = tokio::signal::ctrl_c() => {}
                                _ = term.recv() => {}
                            }
                        }
                        Err(_) => {
                            let _ = tokio::signal::ctrl_c().await;
                        }
                    }
                }
                #[cfg(not(unix))]
                {
                    let _ = tokio::signal::ctrl_c().await;
                }
            };
            self.serve(stop).await
        })
    }

    /// Serves on a thread of its own until the returned handle is dropped (tests, embedding).
    pub fn spawn(self) -> Result<RunningServer, ServerError> {
        let addr = self.local_addr()?;
        let runtime = runtime()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(self.serve(async {
                let _ = stop_rx.await;
            }))
        });
        Ok(RunningServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    async fn serve(self, stop: impl std::future::Future<Output = ()>) -> Result<(), ServerError> {
        let max_connections = fit_open_file_limit(self.max_connections);
        let listener =
            tokio::net::TcpListener::from_std(self.listener).map_err(ServerError::Runtime)?;
        let app = router(Arc::new(self.shared));
        let open = Arc::new(Open::default());
        tokio::pin!(stop);
        loop {
            let accepted = tokio::select! {
                _ = &mut stop => return Ok(()),
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // Out of file descriptors: make room by closing the oldest idle connection
                    // and go on accepting (the kernel keeps the waiting ones meanwhile).
                    tracing::warn!(%error, "accept failed");
                    if out_of_descriptors(&error)
                        && let Ok(mut connections) = open.connections.lock()
                    {
                        shed_one(&mut connections);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let (slot, guard) = shed_and_open(&open, max_connections);
            let tls = self.tls.clone();
            let app = app.clone();
            let head_timeout = self.head_timeout;
            tokio::spawn(async move {
                let _open = guard;
                let phase = Arc::clone(&slot.phase);
                let work = async move {
                    match tls {
                        None => serve_http(TokioIo::new(stream), app, phase, head_timeout).await,
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(stream) => {
                                serve_http(TokioIo::new(stream), app, phase, head_timeout).await
                            }
                            // A client that does not trust the certificate, or speaks
                            // plain HTTP to the HTTPS port: nothing to answer.
                            Err(error) => tracing::debug!(%error, "TLS handshake failed"),
                        },
                    }
                };
                tokio::select! {
                    // A client that dribbles its body or keeps the connection forever is cut off.
                    _ = tokio::time::timeout(CONNECTION_TIMEOUT, work) => {}
                    () = head_deadline(slot.phase.subscribe(), head_timeout) => {
                        tracing::debug!("no whole request head in time: closed");
                    }
                    () = slot.shed.notified() => tracing::debug!("closed to make room"),
                }
            });
            open.wait_for_room(max_connections).await;
        }
    }
}

/// Raises this process's soft open-file limit toward its hard one (systemd's default is 1,024
/// soft over 524,288 hard) as far as `wanted` connections need, and returns the bound of open
/// connections the limit then allows: `wanted`, or fewer when the limit is lower, so that
/// the endpoint sheds its oldest idle connection before the system refuses it a descriptor
/// (the database and the listener need theirs too). The figure goes to the log.
fn fit_open_file_limit(wanted: usize) -> usize {
    let needed = (wanted as u64).saturating_add(RESERVED_DESCRIPTORS);
    let limit = match rlimit::increase_nofile_limit(needed) {
        Ok(limit) => limit,
        Err(error) => {
            // Not allowed to raise it: work within the limit as it is.
            tracing::warn!(%error, "the open-file limit could not be raised");
            current_open_file_limit().unwrap_or(needed)
        }
    };
    let bound = connection_bound(wanted, limit);
    if bound < wanted {
        tracing::warn!(
            "open-file limit {limit}: at most {bound} connections of the {wanted} asked \
             (raise LimitNOFILE= or ulimit -n to keep more)"
        );
    } else {
        tracing::info!("open-file limit {limit}: at most {bound} connections");
    }
    bound
}

/// The soft open-file limit as it stands.
#[cfg(unix)]
fn current_open_file_limit() -> Option<u64> {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _hard)| soft)
}

/// Windows has no such limit on sockets (`rlimit` then reports the figure asked for).
#[cfg(not(unix))]
fn current_open_file_limit() -> Option<u64> {
    None
}

/// The open connections `limit` descriptors allow, at most `wanted`: the limit less the
/// reserved descriptors, and never less than a quarter of the limit nor less than one.
fn connection_bound(wanted: usize, limit: u64) -> usize {
    let room = limit
        .saturating_sub(RESERVED_DESCRIPTORS)
        .max(limit / 4)
        .max(1);
    usize::try_from(room)
        .unwrap_or(usize::MAX)
        .min(wanted)
        .max(1)
}

/// EMFILE (24: this process's limit) or ENFILE (23: the system's), the same numbers on Linux,
/// the BSDs and macOS.
fn out_of_descriptors(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(23 | 24))
}

/// Where a connection is: waiting for a request head since an instant (after its opening or its
/// previous answer), or answering a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting(Instant),
    Busy,
}

/// One open connection as the accept loop sees it.
struct Slot {
    phase: Arc<watch::Sender<Phase>>,
    /// Told when the connection is shed to make room.
    shed: Notify,
}

/// The open connections by the order they were opened (ids only grow), so the first idle one is
/// the oldest idle one, and how many were told to close and still hold their descriptor.
#[derive(Default)]
struct Connections {
    next: u64,
    open: BTreeMap<u64, Arc<Slot>>,
    closing: usize,
}

impl Connections {
    /// Descriptors the connections hold: the open ones and those shed but not yet closed.
    fn held(&self) -> usize {
        self.open.len() + self.closing
    }
}

/// The connections and a signal each time one has closed.
#[derive(Default)]
struct Open {
    connections: Mutex<Connections>,
    closed: Notify,
}

impl Open {
    /// Waits until the connections hold at most `max` descriptors, so that the next accept
    /// never finds the process out of them while shed connections are still closing (their
    /// tasks close them at once; the wait is a few polls, bounded in case one is slow).
    async fn wait_for_room(&self, max: usize) {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let held = self.connections.lock().map_or(0, |c| c.held());
            if held <= max || Instant::now() >= deadline {
                return;
            }
            // `notify_one` keeps a wake-up that came before this wait began.
            let _ = tokio::time::timeout(Duration::from_millis(50), self.closed.notified()).await;
        }
    }
}

/// Removes its connection from the open ones (or the closing ones, when it was shed) when the
/// connection's task ends, however it ends.
struct Registered {
    open: Arc<Open>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut connections) = self.open.connections.lock()
            && connections.open.remove(&self.id).is_none()
        {
            connections.closing = connections.closing.saturating_sub(1);
        }
        self.open.closed.notify_one();
    }
}

/// Closes the oldest idle connection, or the oldest busy one when none is idle; false when
/// none is open.
fn shed_one(connections: &mut Connections) -> bool {
    let idle = connections
        .open
        .iter()
        .find(|(_, slot)| matches!(*slot.phase.borrow(), Phase::Waiting(_)))
        .map(|(id, _)| *id);
    let Some(id) = idle.or_else(|| connections.open.keys().next().copied()) else {
        return false;
    };
    if let Some(slot) = connections.open.remove(&id) {
        connections.closing += 1;
        // `notify_one` keeps the wake-up for a task not waiting yet.
        slot.shed.notify_one();
    }
    true
}

/// Makes room for one more connection (shedding the oldest idle ones while `max` are open) and
/// registers it, waiting for its head from now.
fn shed_and_open(open: &Arc<Open>, max: usize) -> (Arc<Slot>, Registered) {
    let (phase, _) = watch::channel(Phase::Waiting(Instant::now()));
    let slot = Arc::new(Slot {
        phase: Arc::new(phase),
        shed: Notify::new(),
    });
    let mut id = u64::MAX;
    if let Ok(mut connections) = open.connections.lock() {
        while connections.open.len() >= max && shed_one(&mut connections) {}
        id = connections.next;
        connections.next += 1;
        connections.open.insert(id, Arc::clone(&slot));
    }
    (
        slot,
        Registered {
            open: Arc::clone(open),
            id,
        },
    )
}

/// Ends when the connection has waited `limit` for a whole request head; never while a request
/// is being answered.
async fn head_deadline(mut phase: watch::Receiver<Phase>, limit: Duration) {
    loop {
        let current = *phase.borrow_and_update();
        let changed = match current {
            Phase::Busy => phase.changed().await,
            Phase::Waiting(since) => tokio::select! {
                () = tokio::time::sleep_until(since + limit) => return,
                changed = phase.changed() => changed,
            },
        };
        if changed.is_err() {
            // The connection is gone; its task ends through the other branches.
            std::future::pending::<()>().await;
        }
    }
}

/// One HTTP/1.1 connection over `io` (plain TCP or TLS), bounded in head size and time; each
/// request marks the connection busy until its answer is ready.
async fn serve_http<I>(
    io: TokioIo<I>,
    app: Router,
    phase: Arc<watch::Sender<Phase>>,
    head_timeout: Duration,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let inner = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |request| {
        phase.send_replace(Phase::Busy);
        let answer = hyper::service::Service::call(&inner, request);
        let phase = Arc::clone(&phase);
        async move {
            let response = answer.await;
            phase.send_replace(Phase::Waiting(Instant::now()));
            response
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(MAX_HEAD)
        .serve_connection(io, service);
    if let Err(error) = connection.await {
        tracing::debug!(%error, "connection ended with an error");
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ServerError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)
}

/// An endpoint serving on its own thread; dropping it stops it.
pub struct RunningServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/u/{token}", get(show).post(record))
        .route("/pull", get(pull))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

/// Headers on every answer: nothing cached, nothing leaked by Referer, no script may run, the
/// form may post only back here.
fn guarded(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

fn html(status: StatusCode, body: String) -> Response {
    guarded(status, "text/html; charset=utf-8", body)
}

async fn show(State(shared): State<Arc<Shared>>, UrlPath(text): UrlPath<String>) -> Response {
    match token::decode(&shared.key, Purpose::Unsubscribe, &text) {
        Ok(_) => html(StatusCode::OK, page::confirm()),
        Err(_) => html(StatusCode::NOT_FOUND, page::invalid()),
    }
}

/// How a POST asked: `Some("one-click")` for RFC 8058's body, `Some("form")` for our page's
/// button, `None` when the body is not an unsubscribe request at all.
fn one_click(headers: &HeaderMap, body: &[u8]) -> Option<&'static str> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let text = std::str::from_utf8(body).ok()?;
    if content_type.starts_with("multipart/form-data") {
        // RFC 8058 §3.2 allows multipart too: the part named List-Unsubscribe says One-Click.
        let asks = text.contains("name=\"List-Unsubscribe\"") && text.contains("One-Click");
        return asks.then_some("one-click");
    }
    let mut asks = false;
    let mut from_page = false;
    for pair in text.trim_end_matches(['\r', '\n']).split('&') {
        match pair {
            "List-Unsubscribe=One-Click" => asks = true,
            "source=page" => from_page = true,
            _ => {}
        }
    }
    asks.then_some(if from_page { "form" } else { "one-click" })
}

async fn record(
    State(shared): State<Arc<Shared>>,
    UrlPath(text): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let Ok(named) = token::decode(&shared.key, Purpose::Unsubscribe, &text) else {
        return html(StatusCode::NOT_FOUND, page::invalid());
    };
    // hyper bounds the head's time but not the body's: a client dribbling its body is cut here,
    // long before the connection limit.
    let body = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await
    {
        Ok(Ok(body)) => body,
        Ok(Err(error)) => {
            let too_large = error
                .into_inner()
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            return if too_large {
                html(StatusCode::PAYLOAD_TOO_LARGE, page::bad_request())
            } else {
                html(StatusCode::BAD_REQUEST, page::bad_request())
            };
        }
        Err(_) => return html(StatusCode::REQUEST_TIMEOUT, page::bad_request()),
    };
    let Some(how) = one_click(&headers, &body) else {
        return html(StatusCode::BAD_REQUEST, page::bad_request());
    };
    let written = tokio::task::spawn_blocking(move || {
        let mut log = shared
            .log
            .lock()
            .map_err(|_| "the log's lock was poisoned")?;
        log.record(named.campaign, named.recipient, how, now_ms())
            .map_err(|_| "the log could not be written")
    })
    .await;
    match written {
        Ok(Ok(new)) => {
            tracing::info!(
                campaign = named.campaign,
                recipient = named.recipient,
                how,
                new,
                "unsubscribe recorded"
            );
            html(StatusCode::OK, page::done())
        }
        Ok(Err(reason)) => {
            tracing::error!(reason, "an unsubscribe could not be recorded");
            html(StatusCode::SERVICE_UNAVAILABLE, page::unavailable())
        }
        Err(_) => html(StatusCode::SERVICE_UNAVAILABLE, page::unavailable()),
    }
}

async fn pull(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    if !token::same_secret(given.trim().as_bytes(), shared.bearer.as_bytes()) {
        let mut response = guarded(
            StatusCode::UNAUTHORIZED,
            "text/plain; charset=utf-8",
            "the pull needs the bearer secret\n".into(),
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"herald\""),
        );
        return response;
    }
    let number = |name: &str| query.get(name).map(|value| value.parse::<i64>());
    let since = match number("since") {
        None => 0,
        Some(Ok(since)) if since >= 0 => since,
        Some(_) => {
            return guarded(
                StatusCode::BAD_REQUEST,
                "text/plain; charset=utf-8",
                "since must be a cursor (a number from 0)\n".into(),
            );
        }
    };
    let limit = match number("limit") {
        Some(Ok(limit)) if (1..=i64::from(PULL_PAGE)).contains(&limit) => limit as u32,
        _ => PULL_PAGE,
    };
    let read = tokio::task::spawn_blocking(move || {
        let log = shared.log.lock().map_err(|_| ())?;
        log.since(since, limit).map_err(|_| ())
    })
    .await;
    let Ok(Ok(rows)) = read else {
        return guarded(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "the log could not be read\n".into(),
        );
    };
    let cursor = rows.last().map_or(since, |row| row.cursor);
    let page = PullPage {
        records: rows
            .into_iter()
            .map(|row| PulledRecord {
                cursor: row.cursor,
                campaign: row.campaign,
                recipient: row.recipient,
                at_ms: row.at_ms,
                how: row.how,
            })
            .collect(),
        cursor,
    };
    match serde_json::to_string(&page) {
        Ok(body) => guarded(StatusCode::OK, "application/json", body),
        Err(_) => guarded(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            "could not write the records\n".into(),
        ),
    }
}

async fn not_found() -> Response {
    guarded(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "not found\n".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        headers
    }

    #[test]
    fn the_connection_bound_leaves_room_under_the_open_file_limit() {
        for (wanted, limit, bound) in [
            (1024, 524_288, 1024),
            (1024, 1024, 960),
            (1024, 256, 192),
            (100, 256, 100),
            (1024, 64, 16),
            (1024, 0, 1),
            (0, 1024, 1),
            (usize::MAX, u64::MAX, usize::MAX - 64),
        ] {
            assert_eq!(connection_bound(wanted, limit), bound, "{wanted} {limit}");
        }
    }

    #[test]
    fn only_a_one_click_body_asks() {
        let urlencoded = form("application/x-www-form-urlencoded");
        assert_eq!(
            one_click(&urlencoded, b"List-Unsubscribe=One-Click"),
            Some("one-click")
        );
        assert_eq!(
            one_click(&urlencoded, b"List-Unsubscribe=One-Click&source=page"),
            Some("form")
        );
        assert_eq!(one_click(&urlencoded, b""), None);
        assert_eq!(one_click(&urlencoded, b"List-Unsubscribe=No"), None);
        let multipart = form("multipart/form-data; boundary=x");
        let body = b"--x\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--x--\r\n";
        assert_eq!(one_click(&multipart, body), Some("one-click"));
    }
}
