//! Direct-mode benchmark (issue #4): 20,000 recipients over 100 domains, through the real engine,
//! the in-process test DNS server (real UDP) and four scriptable SMTP servers on 127.0.12.2-5.
//! Prints the time, the rate, the SMTP sessions used and the MX queries made (one per domain).
//! Run: `cargo bench --bench direct`.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
#[allow(dead_code)] // each bench uses a part of the tests' helpers
mod support;

use std::net::Ipv4Addr;
use std::time::Instant;

use herald::campaign::Campaign;
use herald::engine::{Engine, RunOptions};
use support::campaign::campaign_with;
use support::dns_server::{DnsServer, Zone};
use support::smtp_server::SmtpServer;

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let recipients = 20_000;
    let first = SmtpServer::builder()
        .ip(Ipv4Addr::new(127, 0, 12, 2))
        .start();
    let port = first.port();
    let others: Vec<SmtpServer> = (3..6)
        .map(|host| {
            SmtpServer::builder()
                .ip(Ipv4Addr::new(127, 0, 12, host))
                .port(port)
                .start()
        })
        .collect();
    let mut zone = Zone::new();
    for n in 0..100u8 {
        let domain = format!("bench{n}.test");
        let host = format!("mx.{domain}");
        zone = zone
            .mx(&domain, 10, &host)
            .a(&host, Ipv4Addr::new(127, 0, 12, 2 + n % 4));
    }
    let dns = DnsServer::start(zone);
    let emails: Vec<String> = (0..recipients)
        .map(|n| format!("user{n}@bench{}.test", n % 100))
        .collect();
    let section = format!(
        "[direct]\nhelo = \"mail.herald.example\"\nport = {port}\nnameservers = [\"{}\"]\n",
        dns.addr()
    );
    let dir = campaign_with(
        &emails,
        &[],
        "mode = \"direct\"\nconnections = 64",
        &section,
    );
    let engine = Engine::new().unwrap();
    let campaign = Campaign::load(&dir.campaign).unwrap();
    let started = Instant::now();
    let mut run = engine.start(campaign, &dir.db, RunOptions::default());
    let last = run.wait();
    let elapsed = started.elapsed();
    assert_eq!(last.counts.sent, recipients as u64, "{:?}", last.counts);
    let sessions: u64 = first.sessions() + others.iter().map(SmtpServer::sessions).sum::<u64>();
    let mx_queries: usize = (0..100)
        .map(|n| dns.queries(&format!("bench{n}.test"), "MX"))
        .sum();
    println!(
        "direct: {recipients} recipients over 100 domains in {:.2} s ({:.0} msg/s, import included), {sessions} SMTP sessions ({:.1} messages a session), {mx_queries} MX queries",
        elapsed.as_secs_f64(),
        recipients as f64 / elapsed.as_secs_f64(),
        recipients as f64 / sessions.max(1) as f64
    );
}
