//! A scriptable SMTP server for Herald's integration tests, listening on 127.0.0.1 over real
//! TCP. It owns its own background thread and tokio runtime (so it works from plain `#[test]`
//! functions as well as from `#[tokio::test]` ones), speaks enough ESMTP for a real client
//! (EHLO, PIPELINING, AUTH PLAIN/LOGIN, DATA with dot-unstuffing, optionally CHUNKING's BDAT
//! and STARTTLS with a certificate the test gives),
//! answers each recipient
//! according to rules the test sets, and records what it accepted so the test can assert on
//! it. Test-only: it trusts its peer, keeps everything in memory and is not a mail server.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf,
    ReadHalf, WriteHalf,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Longest line (command or message line) the server buffers before giving up on a session.
const MAX_LINE: usize = 1 << 20;
/// How long a closing session waits for the client to close its side before dropping the socket.
const LINGER: Duration = Duration::from_millis(500);

/// One message the server received at the end of a DATA transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Session (connection) number, 1-based in order of acceptance.
    pub session: u64,
    /// Reverse path as given in MAIL FROM, without the angle brackets (empty for `<>`).
    pub mail_from: String,
    /// Accepted recipients of the transaction, lower-cased, without angle brackets.
    pub rcpt_to: Vec<String>,
    /// Message bytes as received, dot-unstuffed, without the final ".\r\n".
    pub data: Vec<u8>,
    /// The user the session authenticated as, if any.
    pub auth_user: Option<String>,
    /// Whether the message came over TLS (after STARTTLS).
    pub tls: bool,
}

impl Received {
    /// The message as text (lossy UTF-8), for assertions.
    pub fn data_str(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// How the server answers one recipient (decided at RCPT time by the builder's rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `250` at RCPT and after DATA.
    Accept,
    /// `451 4.3.0` at RCPT.
    TempFail,
    /// `550 5.1.1` (no such user) at RCPT.
    PermFail,
    /// `550 5.7.1` (policy) at RCPT.
    PolicyReject,
    /// The given reply at RCPT; a 2xx code counts as an accepted recipient.
    Custom { code: u16, text: String },
    /// `421 4.7.0` at RCPT, then the connection is closed.
    CloseWith421,
    /// Accept at RCPT; after the final "." close the socket without any reply. The message is
    /// recorded in [`SmtpServer::dropped_after_data`], not in [`SmtpServer::received`].
    DropAfterData,
    /// Accept at RCPT; `451 4.3.0` after the final ".".
    DataTempFail,
    /// Accept at RCPT; `554 5.6.0` after the final ".".
    DataPermFail,
    /// Accept, but wait this long before the `250` after the final ".".
    SlowData(Duration),
    /// Never reply at RCPT; hold the connection until the client closes or the server stops.
    Hang,
}

type Rule = Arc<dyn Fn(&str, u32) -> Reply + Send + Sync>;

/// Everything a session needs to know about how to behave; fixed once the server starts.
struct Config {
    rule: Rule,
    auth: Option<(String, String)>,
    /// SASL bearer mechanisms advertised (`XOAUTH2`, `OAUTHBEARER`) and the one good token.
    bearer: Option<(String, String)>,
    /// The reply every AUTH gets, whatever the credentials (a provider's refusal).
    auth_refusal: Option<String>,
    greeting_delay: Duration,
    greeting_code: u16,
    greeting_text: String,
    reply_delay: Duration,
    max_messages_per_session: Option<u32>,
    pipelining: bool,
    chunking: bool,
    data_without_recipients: bool,
    close_at_rset: bool,
    smtputf8: bool,
    silent: Arc<dyn Fn(u64) -> bool + Send + Sync>,
    /// Offer STARTTLS with this certificate.
    starttls: Option<herald::tls::Acceptor>,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    dropped: Vec<Received>,
    rcpt_counts: HashMap<String, usize>,
    attempts: HashMap<String, u32>,
    sessions: u64,
    active: u64,
    max_active: u64,
    /// Times the server wrote replies and then waited for the client: one per round trip.
    flushes: u64,
    /// Drops after a final "." with the client's next commands already received.
    dropped_with_commands_behind: u64,
    /// Lone "." ends (DATA answered 354 with no valid recipient).
    lone_dots: u64,
    /// The verbs received, in order, per session.
    verbs: HashMap<u64, Vec<String>>,
    bearer_exchanges: Vec<BearerExchange>,
}

/// One AUTH XOAUTH2 or OAUTHBEARER as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BearerExchange {
    pub mechanism: String,
    /// The initial client response, base64-decoded.
    pub initial: String,
    /// What the client sent back to the `334` error challenge, as written (None: accepted).
    pub answer_to_error: Option<String>,
}

struct Shared {
    config: Config,
    state: Mutex<State>,
    /// Signalled whenever a message is recorded in `received`.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Builder for [`SmtpServer`]; get one from [`SmtpServer::builder`].
pub struct SmtpServerBuilder {
    ip: std::net::Ipv4Addr,
    port: u16,
    config: Config,
}

impl Default for SmtpServerBuilder {
    fn default() -> Self {
        SmtpServerBuilder {
            ip: std::net::Ipv4Addr::LOCALHOST,
            port: 0,
            config: Config {
                rule: Arc::new(|_: &str, _: u32| Reply::Accept),
                auth: None,
                bearer: None,
                auth_refusal: None,
                greeting_delay: Duration::ZERO,
                greeting_code: 220,
                greeting_text: "herald-test ESMTP".to_owned(),
                reply_delay: Duration::ZERO,
                max_messages_per_session: None,
                pipelining: true,
                chunking: false,
                data_without_recipients: false,
                close_at_rset: false,
                smtputf8: true,
                silent: Arc::new(|_| false),
                starttls: None,
            },
        }
    }
}

impl SmtpServerBuilder {
    /// Bind this port on 127.0.0.1 (e.g. to "restart" a stopped server); default 0 (any free).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Bind this loopback address instead of 127.0.0.1 (any 127.0.0.x works on Linux), so
    /// that several servers can share one port as different "MX hosts".
    pub fn ip(mut self, ip: std::net::Ipv4Addr) -> Self {
        self.ip = ip;
        self
    }

    /// Decide each recipient's reply from its address (lower-cased, without `<>`).
    /// Default: [`Reply::Accept`] for all. Replaces any earlier `rule`/`attempt_rule`.
    pub fn rule(mut self, f: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Self {
        self.config.rule = Arc::new(move |rcpt: &str, _attempt: u32| f(rcpt));
        self
    }

    /// Like [`rule`](Self::rule), also given the 1-based attempt number of this recipient
    /// (RCPT commands for the address across all sessions), e.g. to `TempFail` once then
    /// `Accept`. Replaces any earlier `rule`/`attempt_rule`.
    pub fn attempt_rule(mut self, f: impl Fn(&str, u32) -> Reply + Send + Sync + 'static) -> Self {
        self.config.rule = Arc::new(f);
        self
    }

    /// Advertise `AUTH PLAIN LOGIN` and require it before MAIL (`530 5.7.0` otherwise);
    /// wrong credentials get `535 5.7.8`.
    pub fn auth(mut self, user: &str, password: &str) -> Self {
        self.config.auth = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// Like [`auth`](Self::auth), but every AUTH, right or wrong, gets `reply` (e.g. Microsoft
    /// 365's `535 5.7.139 …`) after the credentials are read.
    pub fn auth_refusal(mut self, user: &str, password: &str, reply: &str) -> Self {
        self.config.auth = Some((user.to_owned(), password.to_owned()));
        self.config.auth_refusal = Some(reply.to_owned());
        self
    }

    /// Advertise `AUTH MECHANISMS` (`"XOAUTH2"`, `"OAUTHBEARER"` or both) and require it before
    /// MAIL. A bearer other than `token` gets the `334` error challenge Google documents
    /// (base64 JSON), the client's answer is recorded, then `535 5.7.8`.
    pub fn bearer(mut self, mechanisms: &str, token: &str) -> Self {
        self.config.bearer = Some((mechanisms.to_owned(), token.to_owned()));
        self
    }

    /// Wait this long before every reply to a command (a slow server).
    pub fn reply_delay(mut self, d: Duration) -> Self {
        self.config.reply_delay = d;
        self
    }

    /// After `n` accepted messages in one session, answer the next MAIL with `421 4.7.0`
    /// and close the connection.
    pub fn max_messages_per_session(mut self, n: u32) -> Self {
        self.config.max_messages_per_session = Some(n);
        self
    }

    /// Leave PIPELINING out of the EHLO reply (and answer every command on its own).
    pub fn no_pipelining(mut self) -> Self {
        self.config.pipelining = false;
        self
    }

    /// Advertise CHUNKING (RFC 3030) and take BDAT.
    pub fn chunking(mut self) -> Self {
        self.config.chunking = true;
        self
    }

    /// Leave SMTPUTF8 out of the EHLO reply and refuse the MAIL parameter (RFC 6531).
    pub fn no_smtputf8(mut self) -> Self {
        self.config.smtputf8 = false;
        self
    }

    /// Answer every RSET with `421 4.3.2` and close the connection (a server shutting down
    /// between transactions).
    pub fn close_at_rset(mut self) -> Self {
        self.config.close_at_rset = true;
        self
    }

    /// Answer DATA with 354 even when every RCPT was refused (RFC 2920 §3.1 allows it); the
    /// data then ends in `554 5.5.1` and nothing is recorded.
    pub fn data_without_recipients(mut self) -> Self {
        self.config.data_without_recipients = true;
        self
    }

    /// Offer STARTTLS (RFC 3207) with the certificate chain `cert_pem` and its key.
    pub fn starttls(mut self, cert_pem: &[u8], key_pem: &[u8]) -> Self {
        match herald::tls::acceptor(cert_pem, key_pem) {
            Ok(acceptor) => self.config.starttls = Some(acceptor),
            Err(e) => panic!("smtp test server: certificate: {e:?}"),
        }
        self
    }

    /// Accept these sessions (1-based numbers) and never greet them: they hold the
    /// connection until the client leaves.
    pub fn silent_sessions(mut self, f: impl Fn(u64) -> bool + Send + Sync + 'static) -> Self {
        self.config.silent = Arc::new(f);
        self
    }

    /// Bind 127.0.0.1 and start serving on a background thread. Panics if it cannot bind
    /// (a port given with [`port`](Self::port) is retried for up to 5 s while in use).
    pub fn start(self) -> SmtpServer {
        let std_listener = bind_with_retry(self.ip, self.port);
        let addr = match std_listener.local_addr() {
            Ok(addr) => addr,
            Err(e) => panic!("smtp test server: local_addr: {e}"),
        };
        if let Err(e) = std_listener.set_nonblocking(true) {
            panic!("smtp test server: set_nonblocking: {e}");
        }
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("smtp-test-server")
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("smtp test server: cannot build runtime: {e}"),
        };
        let listener = {
            let _guard = runtime.enter();
            match TcpListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => panic!("smtp test server: cannot register listener: {e}"),
            }
        };
        let shared = Arc::new(Shared {
            config: self.config,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let accept_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name(format!("smtp-test-server-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        () = accept_loop(listener, accept_shared) => {}
                        _ = shutdown_rx => {}
                    }
                    // The listener is dropped here, before the sessions are torn down.
                });
                // Dropping the runtime cancels every session task and closes its socket.
                runtime.shutdown_timeout(Duration::from_secs(5));
            });
        let thread = match spawned {
            Ok(handle) => handle,
            Err(e) => panic!("smtp test server: cannot spawn thread: {e}"),
        };
        SmtpServer {
            addr,
            shared,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }
}

fn bind_with_retry(ip: std::net::Ipv4Addr, port: u16) -> StdTcpListener {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match StdTcpListener::bind((ip, port)) {
            Ok(listener) => return listener,
            Err(e) if port != 0 && e.kind() == io::ErrorKind::AddrInUse => {
                if Instant::now() >= deadline {
                    panic!("smtp test server: port {port} still in use: {e}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("smtp test server: cannot bind {ip}:{port}: {e}"),
        }
    }
}

/// A running test SMTP server. Stops (closing the listener and every session) on
/// [`stop`](Self::stop) or when dropped.
pub struct SmtpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SmtpServer {
    /// A builder with the defaults: any free port, accept everything, no auth.
    pub fn builder() -> SmtpServerBuilder {
        SmtpServerBuilder::default()
    }

    /// Start a server that accepts everything, on 127.0.0.1 and a free port.
    pub fn start() -> SmtpServer {
        SmtpServerBuilder::default().start()
    }

    /// The address it listens on (127.0.0.1:port).
    #[allow(dead_code)] // for the benches (benches/direct.rs)
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Snapshot of the accepted messages, in order of acceptance (one per accepted DATA).
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().received.clone()
    }

    /// Every AUTH XOAUTH2 / OAUTHBEARER so far, in order.
    pub fn bearer_exchanges(&self) -> Vec<BearerExchange> {
        self.shared.lock().bearer_exchanges.clone()
    }

    /// Number of accepted messages so far.
    pub fn received_count(&self) -> usize {
        self.shared.lock().received.len()
    }

    /// For each recipient address (lower-cased), how many accepted messages listed it.
    pub fn rcpt_counts(&self) -> HashMap<String, usize> {
        self.shared.lock().rcpt_counts.clone()
    }

    /// For each recipient address (lower-cased), how many RCPT commands named it.
    pub fn rcpt_attempts(&self) -> HashMap<String, u32> {
        self.shared.lock().attempts.clone()
    }

    /// Messages whose DATA was read but answered by closing the socket ([`Reply::DropAfterData`]).
    pub fn dropped_after_data(&self) -> Vec<Received> {
        self.shared.lock().dropped.clone()
    }

    /// Connections accepted so far.
    pub fn sessions(&self) -> u64 {
        self.shared.lock().sessions
    }

    /// Peak number of simultaneously open connections.
    pub fn max_concurrent_sessions(&self) -> u64 {
        self.shared.lock().max_active
    }

    /// Times the server sent replies and then waited for the client (round trips).
    pub fn flushes(&self) -> u64 {
        self.shared.lock().flushes
    }

    /// Sessions dropped after a final "." while the client's next commands were already there.
    pub fn dropped_with_commands_behind(&self) -> u64 {
        self.shared.lock().dropped_with_commands_behind
    }

    /// Transactions ended by a lone "." after DATA was accepted with no valid recipient.
    pub fn lone_dots(&self) -> u64 {
        self.shared.lock().lone_dots
    }

    /// The command verbs session `n` sent, in order.
    pub fn verbs(&self, session: u64) -> Vec<String> {
        self.shared
            .lock()
            .verbs
            .get(&session)
            .cloned()
            .unwrap_or_default()
    }

    /// Wait until at least `n` messages were accepted; false if `timeout` passed first.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.received.len() < n {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = match self.shared.changed.wait_timeout(state, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }

    /// Closes the listener and every session (including hanging ones), joins the thread, then
    /// returns every message received: nothing can arrive between the last read and the
    /// shutdown (the soak run's relay restart needs that).
    #[allow(dead_code)] // for the benches (benches/soak.rs)
    pub fn stop_and_collect(mut self) -> Vec<Received> {
        self.shutdown_now();
        self.received()
    }

    fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            // An error only means the thread is already gone.
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread must not become a panic in Drop.
            let _ = thread.join();
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(_) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let id = {
            let mut state = shared.lock();
            state.sessions += 1;
            state.active += 1;
            state.max_active = state.max_active.max(state.active);
            state.sessions
        };
        let guard = ActiveGuard(Arc::clone(&shared));
        let (read, write) = tokio::io::split(Conn::Plain(stream));
        let mut session = Session {
            id,
            shared: Arc::clone(&shared),
            reader: BufReader::with_capacity(64 * 1024, read),
            writer: write,
            out: Vec::with_capacity(1024),
            auth_user: None,
            mail_from: None,
            utf8: false,
            rcpts: Vec::new(),
            messages: 0,
            chunks: Vec::new(),
            tls: false,
        };
        tokio::spawn(async move {
            let _ = session.run().await;
            drop(guard);
            session.close().await;
        });
    }
}

/// Counts a session as open until dropped (also when the task is cancelled at stop).
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.lock().active -= 1;
    }
}

/// Whether the session goes on after a command.
enum Flow {
    Continue,
    Close,
}

struct Session {
    id: u64,
    shared: Arc<Shared>,
    reader: BufReader<ReadHalf<Conn>>,
    writer: WriteHalf<Conn>,
    /// Replies not yet written; flushed whenever the next read would wait for the client.
    out: Vec<u8>,
    auth_user: Option<String>,
    mail_from: Option<String>,
    /// Whether the current MAIL carried the SMTPUTF8 parameter.
    utf8: bool,
    /// Accepted recipients of the current transaction, with their rule's reply.
    rcpts: Vec<(String, Reply)>,
    /// Messages accepted in this session.
    messages: u32,
    /// BDAT chunks of the current transaction.
    chunks: Vec<u8>,
    /// Whether STARTTLS happened.
    tls: bool,
}

impl Session {
    async fn run(&mut self) -> io::Result<()> {
        let shared = Arc::clone(&self.shared);
        let config = &shared.config;
        if (config.silent)(self.id) {
            self.discard_until_eof().await;
            return Ok(());
        }
        if !config.greeting_delay.is_zero() {
            tokio::time::sleep(config.greeting_delay).await;
        }
        self.queue(&format!(
            "{} {}",
            config.greeting_code, config.greeting_text
        ));
        if config.greeting_code != 220 {
            if config.greeting_code == 421 {
                return Ok(());
            }
            return self.refuse_all().await;
        }
        let mut line = Vec::with_capacity(1024);
        loop {
            line.clear();
            if self.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let text = String::from_utf8_lossy(trim_eol(&line)).into_owned();
            if let Flow::Close = self.command(&text).await? {
                return Ok(());
            }
        }
    }

    /// After a refusing greeting: only QUIT is answered positively.
    async fn refuse_all(&mut self) -> io::Result<()> {
        let mut line = Vec::new();
        loop {
            line.clear();
            if self.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let (verb, _) = split_command(&String::from_utf8_lossy(trim_eol(&line)));
            if verb == "QUIT" {
                self.reply("221 2.0.0 Bye").await?;
                return Ok(());
            }
            self.reply("503 5.5.1 Bad sequence of commands").await?;
        }
    }

    async fn command(&mut self, text: &str) -> io::Result<Flow> {
        let (verb, arg) = split_command(text);
        self.shared
            .lock()
            .verbs
            .entry(self.id)
            .or_default()
            .push(verb.clone());
        match verb.as_str() {
            "EHLO" => {
                self.reset();
                let mut reply = format!(
                    "250-herald-test greets {}\r\n",
                    if arg.is_empty() { "client" } else { arg }
                );
                if self.shared.config.pipelining {
                    reply.push_str("250-PIPELINING\r\n");
                }
                if self.shared.config.chunking {
                    reply.push_str("250-CHUNKING\r\n");
                }
                reply.push_str("250-8BITMIME\r\n250-SIZE 52428800\r\n");
                if self.shared.config.smtputf8 {
                    reply.push_str("250-SMTPUTF8\r\n");
                }
                if self.shared.config.starttls.is_some() && !self.tls {
                    reply.push_str("250-STARTTLS\r\n");
                }
                let mut mechanisms = Vec::new();
                if self.shared.config.auth.is_some() {
                    mechanisms.push("PLAIN LOGIN");
                }
                if let Some((bearer, _)) = &self.shared.config.bearer {
                    mechanisms.push(bearer);
                }
                if !mechanisms.is_empty() {
                    reply.push_str("250-ENHANCEDSTATUSCODES\r\n250 AUTH ");
                    reply.push_str(&mechanisms.join(" "));
                } else {
                    reply.push_str("250 ENHANCEDSTATUSCODES");
                }
                self.reply(&reply).await?;
            }
            "HELO" => {
                self.reset();
                self.reply("250 herald-test").await?;
            }
            "MAIL" => return self.mail(arg).await,
            "RCPT" => return self.rcpt(arg).await,
            "DATA" => return self.data().await,
            "BDAT" if self.shared.config.chunking => return self.bdat(arg).await,
            "RSET" if self.shared.config.close_at_rset => {
                self.reply("421 4.3.2 Shutting down").await?;
                return Ok(Flow::Close);
            }
            "RSET" => {
                self.reset();
                self.reply("250 2.0.0 OK").await?;
            }
            "STARTTLS" if self.shared.config.starttls.is_some() && !self.tls => {
                return self.starttls().await;
            }
            "NOOP" => self.reply("250 2.0.0 OK").await?,
            "VRFY" => self.reply("252 2.5.2 Cannot VRFY user").await?,
            "AUTH" => self.auth(arg).await?,
            "QUIT" => {
                self.reply("221 2.0.0 Bye").await?;
                return Ok(Flow::Close);
            }
            _ => self.reply("500 5.5.2 Command not recognized").await?,
        }
        Ok(Flow::Continue)
    }

    async fn mail(&mut self, arg: &str) -> io::Result<Flow> {
        if self.mail_from.is_some() {
            self.reply("503 5.5.1 Nested MAIL command").await?;
            return Ok(Flow::Continue);
        }
        let config = &self.shared.config;
        if (config.auth.is_some() || config.bearer.is_some()) && self.auth_user.is_none() {
            self.reply("530 5.7.0 Authentication required").await?;
            return Ok(Flow::Continue);
        }
        if let Some(max) = self.shared.config.max_messages_per_session
            && self.messages >= max
        {
            self.reply("421 4.7.0 Too many messages in this session, closing")
                .await?;
            return Ok(Flow::Close);
        }
        let utf8 = arg.to_ascii_uppercase().ends_with(" SMTPUTF8");
        if utf8 && !self.shared.config.smtputf8 {
            self.reply("555 5.5.4 Unsupported option: SMTPUTF8").await?;
            return Ok(Flow::Continue);
        }
        match strip_prefix_ci(arg, "FROM:").and_then(parse_path) {
            Some(from) => {
                self.mail_from = Some(from.to_owned());
                self.utf8 = utf8;
                self.reply("250 2.1.0 OK").await?;
            }
            None => self.reply("501 5.5.4 Syntax: MAIL FROM:<address>").await?,
        }
        Ok(Flow::Continue)
    }

    async fn rcpt(&mut self, arg: &str) -> io::Result<Flow> {
        if self.mail_from.is_none() {
            self.reply("503 5.5.1 Need MAIL before RCPT").await?;
            return Ok(Flow::Continue);
        }
        let Some(path) = strip_prefix_ci(arg, "TO:").and_then(parse_path) else {
            self.reply("501 5.5.4 Syntax: RCPT TO:<address>").await?;
            return Ok(Flow::Continue);
        };
        if !path.is_ascii() && !self.utf8 {
            // What Postfix answers (RFC 6531 §3.4).
            self.reply("553 5.6.7 Must declare SMTPUTF8 to send unicode address")
                .await?;
            return Ok(Flow::Continue);
        }
        let rcpt = path.to_lowercase();
        let attempt = {
            let mut state = self.shared.lock();
            let n = state.attempts.entry(rcpt.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let decision = (self.shared.config.rule)(&rcpt, attempt);
        match &decision {
            Reply::Accept
            | Reply::DropAfterData
            | Reply::DataTempFail
            | Reply::DataPermFail
            | Reply::SlowData(_) => {
                self.reply("250 2.1.5 OK").await?;
                self.rcpts.push((rcpt, decision));
            }
            Reply::TempFail => {
                self.reply("451 4.3.0 Temporary failure, try again later")
                    .await?;
            }
            Reply::PermFail => self.reply("550 5.1.1 No such user").await?,
            Reply::PolicyReject => self.reply("550 5.7.1 Rejected by policy").await?,
            Reply::Custom { code, text } => {
                self.reply(&format!("{code} {text}")).await?;
                if (200..300).contains(code) {
                    self.rcpts.push((rcpt, Reply::Accept));
                }
            }
            Reply::CloseWith421 => {
                self.reply("421 4.7.0 closing").await?;
                return Ok(Flow::Close);
            }
            Reply::Hang => {
                self.flush().await?;
                self.discard_until_eof().await;
                return Ok(Flow::Close);
            }
        }
        Ok(Flow::Continue)
    }

    async fn data(&mut self) -> io::Result<Flow> {
        if self.mail_from.is_none() {
            self.reply("503 5.5.1 Need MAIL command").await?;
            return Ok(Flow::Continue);
        }
        if self.rcpts.is_empty() && !self.shared.config.data_without_recipients {
            self.reply("503 5.5.1 No valid recipients").await?;
            return Ok(Flow::Continue);
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>").await?;
        let Some(data) = self.read_body().await? else {
            // The client went away mid-message: nothing is recorded.
            return Ok(Flow::Close);
        };
        if self.rcpts.is_empty() {
            self.reset();
            self.shared.lock().lone_dots += u64::from(data.is_empty());
            self.reply("554 5.5.1 No valid recipients").await?;
            return Ok(Flow::Continue);
        }
        self.finish_message(data).await
    }

    /// BDAT <size> [LAST] (RFC 3030): the chunk is read whatever happens to it.
    async fn bdat(&mut self, arg: &str) -> io::Result<Flow> {
        let mut parts = arg.split_whitespace();
        let size = parts.next().and_then(|n| n.parse::<usize>().ok());
        let last = parts
            .next()
            .is_some_and(|word| word.eq_ignore_ascii_case("LAST"));
        let Some(size) = size else {
            self.reply("501 5.5.4 Syntax: BDAT size [LAST]").await?;
            return Ok(Flow::Close);
        };
        let mut chunk = vec![0u8; size];
        if self.reader.read_exact(&mut chunk).await.is_err() {
            return Ok(Flow::Close);
        }
        if self.mail_from.is_none() {
            self.reply("503 5.5.1 Need MAIL command").await?;
            return Ok(Flow::Continue);
        }
        if self.rcpts.is_empty() {
            self.reply("554 5.5.1 No valid recipients").await?;
            return Ok(Flow::Continue);
        }
        self.chunks.extend_from_slice(&chunk);
        if !last {
            self.reply(&format!("250 2.0.0 {size} octets received"))
                .await?;
            return Ok(Flow::Continue);
        }
        let data = std::mem::take(&mut self.chunks);
        self.finish_message(data).await
    }

    /// Ends a transaction whose content arrived: records it and replies per the rules.
    async fn finish_message(&mut self, data: Vec<u8>) -> io::Result<Flow> {
        let mail_from = self.mail_from.take().unwrap_or_default();
        let rcpts = std::mem::take(&mut self.rcpts);
        let outcome = data_outcome(&rcpts);
        let message = Received {
            session: self.id,
            mail_from,
            rcpt_to: rcpts.into_iter().map(|(rcpt, _)| rcpt).collect(),
            data,
            auth_user: self.auth_user.clone(),
            tls: self.tls,
        };
        match outcome {
            Reply::DropAfterData => {
                let behind = !self.reader.buffer().is_empty();
                let mut state = self.shared.lock();
                state.dropped.push(message);
                state.dropped_with_commands_behind += u64::from(behind);
                return Ok(Flow::Close);
            }
            Reply::DataPermFail => {
                self.reply("554 5.6.0 Message content rejected").await?;
            }
            Reply::DataTempFail => {
                self.reply("451 4.3.0 Temporary failure, try again later")
                    .await?;
            }
            other => {
                if let Reply::SlowData(wait) = other {
                    self.flush().await?;
                    tokio::time::sleep(wait).await;
                }
                let queued = self.record(message);
                self.messages += 1;
                self.reply(&format!("250 2.0.0 OK: queued as {queued}"))
                    .await?;
            }
        }
        Ok(Flow::Continue)
    }

    /// Records an accepted message; returns its 1-based number.
    fn record(&self, message: Received) -> usize {
        let mut state = self.shared.lock();
        for rcpt in &message.rcpt_to {
            match state.rcpt_counts.get_mut(rcpt) {
                Some(n) => *n += 1,
                None => {
                    state.rcpt_counts.insert(rcpt.clone(), 1);
                }
            }
        }
        state.received.push(message);
        let n = state.received.len();
        drop(state);
        self.shared.changed.notify_all();
        n
    }

    async fn auth(&mut self, arg: &str) -> io::Result<()> {
        let mechanism = arg
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        if let Some((offered, token)) = self.shared.config.bearer.clone()
            && offered.split_whitespace().any(|m| m == mechanism)
            && self.auth_user.is_none()
        {
            return self.bearer(&mechanism, arg, &token).await;
        }
        let Some((user, password)) = self.shared.config.auth.clone() else {
            return self.reply("502 5.5.1 AUTH not available").await;
        };
        if self.auth_user.is_some() {
            return self.reply("503 5.5.1 Already authenticated").await;
        }
        if self.mail_from.is_some() {
            return self
                .reply("503 5.5.1 AUTH not allowed during a transaction")
                .await;
        }
        let mut parts = arg.split_whitespace();
        let mechanism = parts.next().unwrap_or_default().to_ascii_uppercase();
        let initial = parts.next();
        let credentials = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some("=") => String::new(),
                    Some(given) => given.to_owned(),
                    None => match self.challenge("334 ").await? {
                        Some(line) => line,
                        None => return Ok(()),
                    },
                };
                decode_base64(&response).and_then(|raw| {
                    let mut fields = raw.split(|&b| b == 0);
                    let _authzid = fields.next()?;
                    let authcid = String::from_utf8(fields.next()?.to_vec()).ok()?;
                    let passwd = String::from_utf8(fields.next()?.to_vec()).ok()?;
                    Some((authcid, passwd))
                })
            }
            "LOGIN" => {
                let name = match initial {
                    Some(given) => given.to_owned(),
                    None => match self.challenge("334 VXNlcm5hbWU6").await? {
                        Some(line) => line,
                        None => return Ok(()),
                    },
                };
                let Some(pass) = self.challenge("334 UGFzc3dvcmQ6").await? else {
                    return Ok(());
                };
                decode_base64(&name)
                    .zip(decode_base64(&pass))
                    .and_then(|(n, p)| {
                        Some((String::from_utf8(n).ok()?, String::from_utf8(p).ok()?))
                    })
            }
            _ => {
                return self
                    .reply("504 5.5.4 Unrecognized authentication type")
                    .await;
            }
        };
        if let Some(refusal) = self.shared.config.auth_refusal.clone() {
            return self.reply(&refusal).await;
        }
        match credentials {
            None => self.reply("501 5.5.2 Cannot decode response").await,
            Some((given_user, given_password))
                if given_user == user && given_password == password =>
            {
                self.auth_user = Some(given_user);
                self.reply("235 2.7.0 Authentication successful").await
            }
            Some(_) => {
                self.reply("535 5.7.8 Authentication credentials invalid")
                    .await
            }
        }
    }

    /// AUTH XOAUTH2 / OAUTHBEARER with an initial response. A wrong bearer gets the error
    /// challenge, whose answer is recorded as written, then 535 (RFC 7628 §3.2.3).
    async fn bearer(&mut self, mechanism: &str, arg: &str, token: &str) -> io::Result<()> {
        let initial = arg.split_whitespace().nth(1).unwrap_or_default();
        let Some(decoded) = decode_base64(initial).and_then(|raw| String::from_utf8(raw).ok())
        else {
            return self.reply("501 5.5.2 Cannot decode response").await;
        };
        let fields: Vec<&str> = decoded.split('\x01').collect();
        let given = fields
            .iter()
            .find_map(|field| field.strip_prefix("auth=Bearer "));
        let user = fields.iter().find_map(|field| {
            field
                .strip_prefix("user=")
                .or_else(|| field.strip_prefix("n,a=")?.strip_suffix(','))
        });
        let mut exchange = BearerExchange {
            mechanism: mechanism.to_owned(),
            initial: decoded.clone(),
            answer_to_error: None,
        };
        if given == Some(token)
            && let Some(user) = user
        {
            self.auth_user = Some(user.to_owned());
            self.shared.lock().bearer_exchanges.push(exchange);
            return self.reply("235 2.7.0 Accepted").await;
        }
        // Google's documented error challenge for XOAUTH2.
        let error = r#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, error);
        self.reply(&format!("334 {encoded}")).await?;
        let mut line = Vec::new();
        if self.read_line(&mut line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        exchange.answer_to_error = Some(String::from_utf8_lossy(trim_eol(&line)).into_owned());
        self.shared.lock().bearer_exchanges.push(exchange);
        self.reply("535 5.7.8 Username and Password not accepted")
            .await
    }

    /// Sends an AUTH challenge and reads the client's answer. `None` when the client
    /// cancelled with "*" (already answered with 501) or closed the connection.
    async fn challenge(&mut self, prompt: &str) -> io::Result<Option<String>> {
        self.reply(prompt).await?;
        let mut line = Vec::new();
        if self.read_line(&mut line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let answer = String::from_utf8_lossy(trim_eol(&line)).trim().to_owned();
        if answer == "*" {
            self.reply("501 5.7.0 Authentication cancelled").await?;
            return Ok(None);
        }
        Ok(Some(answer))
    }

    /// Reads the message up to the lone "." line, undoing dot-stuffing. `None` on EOF.
    async fn read_body(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut data = Vec::with_capacity(4096);
        loop {
            let start = data.len();
            if self.read_line(&mut data).await? == 0 {
                return Ok(None);
            }
            let line = &data[start..];
            if trim_eol(line) == b"." {
                data.truncate(start);
                return Ok(Some(data));
            }
            if line.first() == Some(&b'.') {
                data.remove(start);
            }
        }
    }

    /// Appends one line (with its line ending) to `buf`; returns its length, 0 on EOF (a
    /// trailing partial line is discarded). Pending replies are flushed first whenever no
    /// complete line is already buffered, so pipelined commands get batched replies and a
    /// waiting client always has its answers.
    async fn read_line(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        if !self.out.is_empty() && !self.reader.buffer().contains(&b'\n') {
            self.flush().await?;
        }
        let start = buf.len();
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                buf.truncate(start);
                return Ok(0);
            }
            let (used, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            buf.extend_from_slice(&available[..used]);
            self.reader.consume(used);
            if done {
                return Ok(buf.len() - start);
            }
            if buf.len() - start > MAX_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
        }
    }

    /// Queues a reply (one or more lines, without the final CRLF), after the reply delay.
    async fn reply(&mut self, text: &str) -> io::Result<()> {
        let delay = self.shared.config.reply_delay;
        if !delay.is_zero() {
            self.flush().await?;
            tokio::time::sleep(delay).await;
        }
        self.queue(text);
        Ok(())
    }

    fn queue(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.shared.lock().flushes += 1;
            self.writer.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// RFC 3207: 220, then the TLS handshake on the same connection; the session starts over.
    async fn starttls(&mut self) -> io::Result<Flow> {
        let Some(acceptor) = self.shared.config.starttls.clone() else {
            return Ok(Flow::Close);
        };
        self.reply("220 2.0.0 Ready to start TLS").await?;
        self.flush().await?;
        let (closed_read, closed_write) = tokio::io::split(Conn::Closed);
        let reader = std::mem::replace(&mut self.reader, BufReader::new(closed_read));
        let writer = std::mem::replace(&mut self.writer, closed_write);
        let Conn::Plain(tcp) = reader.into_inner().unsplit(writer) else {
            return Ok(Flow::Close);
        };
        // A client that gives up on the certificate ends the session here.
        let Ok(tls) = acceptor.accept(tcp).await else {
            return Ok(Flow::Close);
        };
        let (read, write) = tokio::io::split(Conn::Tls(Box::new(tls)));
        self.reader = BufReader::with_capacity(64 * 1024, read);
        self.writer = write;
        self.tls = true;
        self.reset();
        Ok(Flow::Continue)
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.utf8 = false;
        self.rcpts.clear();
        self.chunks.clear();
    }

    /// Reads and throws away whatever the client sends until it closes (or errors).
    async fn discard_until_eof(&mut self) {
        let mut sink = [0u8; 4096];
        while let Ok(n) = self.reader.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    }

    /// Ends the session: sends what is queued, half-closes, and briefly drains the client's
    /// side so unread input does not turn the close into a reset that could eat the last reply.
    async fn close(&mut self) {
        let _ = self.flush().await;
        let _ = self.writer.shutdown().await;
        let _ = tokio::time::timeout(LINGER, self.discard_until_eof()).await;
    }
}

/// The reply after the final "." when the recipients' rules disagree: dropping wins, then
/// permanent failure, then temporary failure, then the longest delay, else plain acceptance.
fn data_outcome(rcpts: &[(String, Reply)]) -> Reply {
    let has = |wanted: &Reply| rcpts.iter().any(|(_, r)| r == wanted);
    if has(&Reply::DropAfterData) {
        return Reply::DropAfterData;
    }
    if has(&Reply::DataPermFail) {
        return Reply::DataPermFail;
    }
    if has(&Reply::DataTempFail) {
        return Reply::DataTempFail;
    }
    let slowest = rcpts
        .iter()
        .filter_map(|(_, r)| match r {
            Reply::SlowData(d) => Some(*d),
            _ => None,
        })
        .max();
    match slowest {
        Some(d) => Reply::SlowData(d),
        None => Reply::Accept,
    }
}

/// Splits a command line into its upper-cased verb and the trimmed rest.
fn split_command(text: &str) -> (String, &str) {
    let text = text.trim_start();
    match text.find([' ', '\t']) {
        Some(i) => (text[..i].to_ascii_uppercase(), text[i + 1..].trim()),
        None => (text.trim_end().to_ascii_uppercase(), ""),
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text[prefix.len()..].trim_start())
}

/// The address of `<address> [PARAMS...]` (brackets optional), ignoring any parameters.
fn parse_path(rest: &str) -> Option<&str> {
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        Some(&inner[..end])
    } else {
        rest.split_whitespace().next()
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Standard base64 (RFC 4648) with optional padding; `None` on any invalid input.
fn decode_base64(input: &str) -> Option<Vec<u8>> {
    let digits = input.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in digits.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A single leftover digit cannot encode a whole byte.
    (bits < 6).then_some(out)
}

/// A session's connection: plain TCP, or TLS after STARTTLS (`Closed` only stands in while the
/// two are swapped).
enum Conn {
    Plain(TcpStream),
    Tls(Box<herald::tls::ServerTlsStream<TcpStream>>),
    Closed,
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
            Conn::Closed => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
            Conn::Closed => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
            Conn::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            Conn::Closed => Poll::Ready(Ok(())),
        }
    }
}
