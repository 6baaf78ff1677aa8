//! Unsubscribe endpoint under slow clients (issue #21): the one-click POST's answer time while
//! 1,000 connections from one address (as behind a reverse proxy) trickle request heads a byte
//! a second or sit idle, each opened again as soon as the endpoint closes it. Reference in the
//! same run: the same POSTs to the same endpoint with no crowd. Target: every POST answered
//! within 1 s under the crowd. The endpoint runs in this process (`Server::spawn`), with its
//! default bounds; the crowd is `tests/support/slow_clients.rs`.
//! Run: `cargo bench --bench unsubscribe` (HERALD_BENCH_CROWD, default 1000; HERALD_BENCH_POSTS,
//! default 40).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
#[allow(dead_code)] // each bench uses a part of the tests' helpers
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use herald::token::{self, Named, Purpose};
use herald::unsubscribe::server::Server;
use support::slow_clients::{Crowd, raise_fd_limit};

fn count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// One RFC 8058 POST on a new connection; its status and how long until the whole answer.
fn post(addr: SocketAddr, key: &[u8; 32], recipient: i64) -> (u16, Duration) {
    let started = Instant::now();
    let path = token::encode(
        key,
        Purpose::Unsubscribe,
        Named {
            campaign: 1,
            recipient,
        },
    );
    let body = "List-Unsubscribe=One-Click";
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        stream,
        "POST /u/{path} HTTP/1.1\r\nHost: u.acme.example\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let status = String::from_utf8_lossy(&answer)
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, started.elapsed())
}

/// Median and maximum of `posts` POSTs, one every 100 ms, each asserted 200.
fn measure(addr: SocketAddr, key: &[u8; 32], posts: usize, first: i64) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..posts)
        .map(|n| {
            let (status, took) = post(addr, key, first + n as i64);
            assert_eq!(status, 200, "a one-click POST was not answered 200");
            std::thread::sleep(Duration::from_millis(100));
            took
        })
        .collect();
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let crowd_size = count("HERALD_BENCH_CROWD", 1_000);
    let posts = count("HERALD_BENCH_POSTS", 40);
    raise_fd_limit(4 * crowd_size as u64 + 256);
    let data = tempfile::tempdir().unwrap();
    let key = [7u8; 32];
    std::fs::write(
        data.path().join(herald::unsubscribe::KEY_FILE),
        herald::unsubscribe::key_to_hex(&key),
    )
    .unwrap();
    let server = Server::bind("127.0.0.1:0", data.path())
        .unwrap()
        .spawn()
        .unwrap();
    let addr = server.addr;

    let (idle_median, idle_max) = measure(addr, &key, posts, 1);
    let crowd = Crowd::start(addr, crowd_size, 2, true);
    assert!(crowd.wait_ready(Duration::from_secs(120)));
    // Let head timeouts fire and the crowd come back, so the POSTs meet a steady churn.
    std::thread::sleep(Duration::from_secs(5));
    let (median, max) = measure(addr, &key, posts, 1_000_000);
    println!(
        "unsubscribe: one-click POST with {crowd_size} slow connections from one address: \
         median {:.1} ms, max {:.1} ms (target: max < 1,000 ms); without them (reference) \
         median {:.1} ms, max {:.1} ms; median ratio {:.1}; the crowd opened {} connections, \
         the endpoint closed {}",
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        idle_median.as_secs_f64() * 1e3,
        idle_max.as_secs_f64() * 1e3,
        median.as_secs_f64() / idle_median.as_secs_f64(),
        crowd.opened(),
        crowd.closed()
    );
}
