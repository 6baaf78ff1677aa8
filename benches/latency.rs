//! Latency benchmark (issue #12): a relay 20 ms away each way. A delaying TCP proxy of our own
//! (every chunk read is written to the other side a fixed time later, order kept, throughput
//! unlimited) sits between the sender and Postfix's `smtp-sink`; `smtp-source -d` (no
//! pipelining: four round trips a message) and Herald send the same count of messages of the
//! same size over 50 connections through it, in one run. Prints both rates, their ratio
//! (target >= 1.8) and Herald's round trips per message: connections x time / (messages x RTT).
//!
//! Run: `cargo bench --bench latency` (needs Debian's `postfix` for smtp-sink/smtp-source).
//! HERALD_BENCH_MESSAGES (default 3000), HERALD_BENCH_DELAY_MS (one way, default 20).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const CONNECTIONS: usize = 50;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn find_tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/usr/lib/postfix/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("{name} not found: apt-get install postfix"))
}

struct Sink(Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sink(port: u16) -> Sink {
    let mut command = Command::new(find_tool("smtp-sink"));
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    if root {
        command.args(["-u", "nobody"]);
    }
    // Its stdout must not be a pipe nobody reads (notes.md: the sink stalls).
    let child = command
        .arg(format!("127.0.0.1:{port}"))
        .arg("1024")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start smtp-sink");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Sink(child)
}

/// One direction of a proxied connection: what is read now is written `delay` later.
async fn delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (chunks, mut due) = mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let at = tokio::time::Instant::now() + delay;
                if chunks.send((at, buffer[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(chunks);
    let _ = writer.await;
}

/// Starts the proxy on its own thread; returns its port.
fn start_proxy(target: u16, delay: Duration) -> u16 {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        delayed(client_read, server_write, delay),
                        delayed(server_read, client_write, delay)
                    );
                });
            }
        });
    });
    port
}

/// A newsletter of about 6 KB, personalized.
fn write_campaign(dir: &Path, recipients: usize, port: u16) -> PathBuf {
    let mut html = String::from("<html><body><h1>Hello {{ first_name }}</h1>\n");
    let mut n = 0;
    while html.len() < 3_800 {
        html.push_str(&format!(
            "<p>Item {n} for {{{{ first_name }}}}: <a href=\"https://shop.example/p/{n}\">see it</a>.</p>\n"
        ));
        n += 1;
    }
    html.push_str("</body></html>\n");
    std::fs::write(dir.join("body.html"), html).unwrap();
    let mut csv = String::from("email,first_name\n");
    for i in 0..recipients {
        csv.push_str(&format!("reader{i}@d{}.example,Reader{i}\n", i % 100));
    }
    std::fs::write(dir.join("list.csv"), csv).unwrap();
    let campaign = dir.join("campaign.toml");
    std::fs::write(
        &campaign,
        format!(
            "[message]\nfrom = \"Bench <bench@herald.example>\"\nsubject = \"{{{{ first_name }}}}, this week\"\n\
             html = \"body.html\"\n\n[recipients]\ncsv = \"list.csv\"\n\n[delivery]\nconnections = {CONNECTIONS}\n\n\
             [[relay]]\nname = \"far\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\nmax_connections = {CONNECTIONS}\n"
        ),
    )
    .unwrap();
    campaign
}

fn message_size(campaign: &Path) -> usize {
    let campaign = herald::campaign::Campaign::load(campaign).unwrap();
    let composer = herald::compose::Composer::new(&campaign)
        .map_err(|e| format!("{e:?}"))
        .unwrap();
    composer
        .compose(&herald::compose::RecipientData {
            id: 1,
            email: "reader1@d1.example",
            fields_json: r#"{"first_name":"Reader1"}"#,
        })
        .unwrap()
        .bytes
        .len()
}

fn timed(command: &mut Command) -> Duration {
    let started = Instant::now();
    let output = command.output().expect("run command");
    assert!(
        output.status.success(),
        "command failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    started.elapsed()
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let messages = env_number("HERALD_BENCH_MESSAGES", 3_000);
    let delay = Duration::from_millis(env_number("HERALD_BENCH_DELAY_MS", 20) as u64);
    let rtt = delay * 2;
    let dir = tempfile::tempdir().unwrap();
    let sink_port = free_port();
    let _sink = start_sink(sink_port);
    let proxy = start_proxy(sink_port, delay);
    let campaign = write_campaign(dir.path(), messages, proxy);
    let size = message_size(&campaign);
    let campaign_arg = campaign.to_string_lossy().into_owned();
    let db = dir.path().join("bench.db").to_string_lossy().into_owned();

    let reference = timed(
        Command::new(find_tool("smtp-source"))
            .args([
                "-d",
                "-s",
                &CONNECTIONS.to_string(),
                "-m",
                &messages.to_string(),
            ])
            .args(["-l", &size.to_string()])
            .args(["-f", "bench@herald.example", "-t", "reader@d1.example"])
            .arg(format!("127.0.0.1:{proxy}")),
    );
    let herald = env!("CARGO_BIN_EXE_herald");
    timed(
        Command::new(herald)
            .args(["import", &campaign_arg, "--db", &db])
            .env("HERALD_LOG", "error"),
    );
    let elapsed = timed(
        Command::new(herald)
            .args(["send", &campaign_arg, "--db", &db, "--ignore-dns"])
            .env("HERALD_LOG", "error"),
    );
    let round_trips = |took: Duration| {
        CONNECTIONS as f64 * took.as_secs_f64() / (messages as f64 * rtt.as_secs_f64())
    };
    let reference_rate = messages as f64 / reference.as_secs_f64();
    let rate = messages as f64 / elapsed.as_secs_f64();
    let ratio = rate / reference_rate;
    println!(
        "latency: {messages} messages of {size} bytes, {CONNECTIONS} connections, {} ms RTT (proxy), same smtp-sink",
        rtt.as_millis()
    );
    println!(
        "smtp-source -d: {:.2} s, {reference_rate:.0} msg/s, {:.2} round trips a message",
        reference.as_secs_f64(),
        round_trips(reference)
    );
    println!(
        "herald send:    {:.2} s, {rate:.0} msg/s, {:.2} round trips a message (the send command; import not counted)",
        elapsed.as_secs_f64(),
        round_trips(elapsed)
    );
    println!(
        "ratio herald/smtp-source: {ratio:.2} (target >= 1.8: {})",
        if ratio >= 1.8 { "met" } else { "NOT met" }
    );
}
