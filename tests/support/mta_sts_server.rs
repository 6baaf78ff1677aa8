//! An HTTPS server for MTA-STS policies in tests (issue #23): real TLS (the `herald::tls`
//! acceptor over a certificate from a test CA made with `openssl`), real HTTP/1.1, answering
//! `GET /.well-known/mta-sts.txt` with the policy the test set for the request's `Host`, after a
//! delay the test may set (a policy host that never answers in time), with another media type,
//! or with a redirect instead (RFC 8461 §3.3 forbids following it). Counts the fetches per
//! host. Also makes that CA and a certificate for the names a test needs. Test-only.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A test CA and one server certificate it signed for several DNS names.
pub struct Pki {
    pub ca_file: PathBuf,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// Makes a CA in `dir` (`ca.pem`) and a certificate it signs for `names`.
pub fn make_pki(dir: &Path, names: &[&str]) -> Pki {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let first = names.first().copied().unwrap_or("localhost");
    // Each CA is named after its first name, so two CAs of one test are told apart.
    let ca_subject = format!("/CN=Herald MTA-STS Test CA for {first}");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        &ca_subject,
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        &format!("/CN={first}"),
    ]);
    let san = names
        .iter()
        .map(|name| format!("DNS:{name}"))
        .collect::<Vec<_>>()
        .join(",");
    std::fs::write(
        dir.join("ext.cnf"),
        format!("subjectAltName={san}\nextendedKeyUsage=serverAuth\n"),
    )
    .expect("ext.cnf");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    Pki {
        ca_file: dir.join("ca.pem"),
        cert_pem: std::fs::read(dir.join("server.pem")).expect("server.pem"),
        key_pem: std::fs::read(dir.join("server.key")).expect("server.key"),
    }
}

#[derive(Default)]
struct Hosts {
    policies: HashMap<String, String>,
    delays: HashMap<String, Duration>,
    media_types: HashMap<String, String>,
    redirects: HashMap<String, String>,
    fetches: HashMap<String, usize>,
}

/// A running policy server; stops when dropped.
pub struct PolicyServer {
    addr: SocketAddr,
    hosts: Arc<Mutex<Hosts>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PolicyServer {
    /// Listens on `ip` (any free port) with the certificate of `pki`.
    pub fn start(ip: Ipv4Addr, pki: &Pki) -> PolicyServer {
        let acceptor = herald::tls::acceptor(&pki.cert_pem, &pki.key_pem).expect("acceptor");
        let std_listener = std::net::TcpListener::bind((ip, 0)).expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let hosts = Arc::new(Mutex::new(Hosts::default()));
        let (shutdown, stop) = oneshot::channel::<()>();
        let served = Arc::clone(&hosts);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                tokio::select! {
                    () = accept(listener, acceptor, served) => {}
                    _ = stop => {}
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(2));
        });
        PolicyServer {
            addr,
            hosts,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hosts> {
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Serves `policy` to requests for `host` (e.g. `mta-sts.example.test`).
    pub fn set(&self, host: &str, policy: &str) {
        self.lock()
            .policies
            .insert(host.to_string(), policy.to_string());
    }

    /// Waits `delay` before answering requests for `host`.
    pub fn delay(&self, host: &str, delay: Duration) {
        self.lock().delays.insert(host.to_string(), delay);
    }

    /// Serves `host`'s policy with this `Content-Type` instead of `text/plain`.
    pub fn media_type(&self, host: &str, media_type: &str) {
        self.lock()
            .media_types
            .insert(host.to_string(), media_type.to_string());
    }

    /// Answers requests for `host` with a 301 to `location` instead of the policy.
    pub fn redirect(&self, host: &str, location: &str) {
        self.lock()
            .redirects
            .insert(host.to_string(), location.to_string());
    }

    /// How many requests for `host` arrived.
    pub fn fetches(&self, host: &str) -> usize {
        self.lock().fetches.get(host).copied().unwrap_or(0)
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept(listener: TcpListener, acceptor: herald::tls::Acceptor, hosts: Arc<Mutex<Hosts>>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let hosts = Arc::clone(&hosts);
        tokio::spawn(async move {
            if let Ok(tls) = acceptor.accept(tcp).await {
                let _ = answer(tls, &hosts).await;
            }
        });
    }
}

/// Reads one request head and answers it.
async fn answer<S>(mut stream: S, hosts: &Mutex<Hosts>) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let path = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let host = text
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("host").then(|| {
                value
                    .trim()
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
        })
        .unwrap_or_default();
    let (policy, delay, media_type, redirect) = {
        let mut hosts = hosts.lock().unwrap_or_else(PoisonError::into_inner);
        *hosts.fetches.entry(host.clone()).or_default() += 1;
        (
            hosts.policies.get(&host).cloned(),
            hosts.delays.get(&host).copied(),
            hosts.media_types.get(&host).cloned(),
            hosts.redirects.get(&host).cloned(),
        )
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let media_type = media_type.unwrap_or_else(|| "text/plain".to_string());
    let reply = match (redirect, policy) {
        (Some(location), _) => format!(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        (None, Some(body)) if path == "/.well-known/mta-sts.txt" => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
    };
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}
