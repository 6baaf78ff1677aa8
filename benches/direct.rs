//! Direct-mode benchmark (issue #4): 20,000 recipients over 100 domains, through the real engine,
//! the in-process test DNS server (real UDP) and four scriptable SMTP servers on 127.0.12.2-5.
//! Prints the time, the rate, the SMTP sessions used and the MX queries made (one per domain).
//! Then MTA-STS (issue #23): the same run to MX hosts offering STARTTLS, once to domains without
//! a policy (opportunistic TLS) and once to domains whose enforce policy is served locally over
//! HTTPS (verified TLS, each policy fetched once), then again on the same database (the cached
//! policies, no fetch); the ratios are against the run without MTA-STS.
//! Run: `cargo bench --bench direct`.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
#[allow(dead_code)] // each bench uses a part of the tests' helpers
mod support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use herald::campaign::Campaign;
use herald::engine::{Engine, RunOptions};
use support::campaign::campaign_with;
use support::dns_server::{DnsServer, Zone};
use support::mta_sts_server::{PolicyServer, make_pki};
use support::smtp_server::SmtpServer;

const DOMAINS: u8 = 100;

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    plain_direct();
    mta_sts();
}

/// Four MX servers on 127.0.`net`.2-5 sharing one port, with STARTTLS when given a certificate.
fn servers(net: u8, tls: Option<(&[u8], &[u8])>) -> Vec<SmtpServer> {
    let mut servers: Vec<SmtpServer> = Vec::new();
    for host in 2..6 {
        let mut builder = SmtpServer::builder().ip(Ipv4Addr::new(127, 0, net, host));
        if let Some(first) = servers.first() {
            builder = builder.port(first.port());
        }
        if let Some((cert, key)) = tls {
            builder = builder.starttls(cert, key);
        }
        servers.push(builder.start());
    }
    servers
}

/// Runs `emails` directly with `section`, on `db` (the campaign's own when None); returns the
/// time taken.
fn run(emails: &[String], section: &str, db: Option<&Path>) -> Duration {
    let dir = campaign_with(emails, &[], "mode = \"direct\"\nconnections = 64", section);
    let engine = Engine::new().unwrap();
    let campaign = Campaign::load(&dir.campaign).unwrap();
    let started = Instant::now();
    let mut run = engine.start(campaign, db.unwrap_or(&dir.db), RunOptions::default());
    let last = run.wait();
    let elapsed = started.elapsed();
    assert_eq!(last.counts.sent, emails.len() as u64, "{:?}", last.counts);
    elapsed
}

fn plain_direct() {
    let recipients = 20_000;
    let servers = servers(12, None);
    let port = servers[0].port();
    let mut zone = Zone::new();
    for n in 0..DOMAINS {
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
    let elapsed = run(&emails, &section, None);
    let sessions: u64 = servers.iter().map(SmtpServer::sessions).sum();
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

/// The same shape of run with and without MTA-STS, to STARTTLS servers in both.
fn mta_sts() {
    let recipients = 20_000;
    let certs = tempfile::tempdir().unwrap();
    let mut names: Vec<String> = (0..DOMAINS)
        .flat_map(|n| [format!("mta-sts.sts{n}.test"), format!("mx.sts{n}.test")])
        .collect();
    names.extend((0..DOMAINS).map(|n| format!("mx.plain{n}.test")));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let pki = make_pki(certs.path(), &names);
    let servers = servers(13, Some((&pki.cert_pem, &pki.key_pem)));
    let port = servers[0].port();
    let policies = PolicyServer::start(Ipv4Addr::new(127, 0, 13, 9), &pki);
    let mut zone = Zone::new();
    for n in 0..DOMAINS {
        let address = Ipv4Addr::new(127, 0, 13, 2 + n % 4);
        for kind in ["plain", "sts"] {
            let domain = format!("{kind}{n}.test");
            let host = format!("mx.{domain}");
            zone = zone.mx(&domain, 10, &host).a(&host, address);
        }
        let domain = format!("sts{n}.test");
        zone = zone
            .a(&format!("mta-sts.{domain}"), Ipv4Addr::new(127, 0, 13, 9))
            .txt(&format!("_mta-sts.{domain}"), "v=STSv1; id=1;");
        policies.set(
            &format!("mta-sts.{domain}"),
            &format!("version: STSv1\r\nmode: enforce\r\nmx: mx.{domain}\r\nmax_age: 86400\r\n"),
        );
    }
    let dns = DnsServer::start(zone);
    let section = format!(
        "[direct]\nhelo = \"mail.herald.example\"\nport = {port}\nnameservers = [\"{}\"]\nca_file = \"{}\"\nmta_sts_port = {}\n",
        dns.addr(),
        pki.ca_file.display(),
        policies.port()
    );
    let emails = |kind: &str| -> Vec<String> {
        (0..recipients)
            .map(|n| format!("user{n}@{kind}{}.test", n % u32::from(DOMAINS)))
            .collect()
    };
    let without = run(&emails("plain"), &section, None);
    let shared = tempfile::tempdir().unwrap();
    let db = shared.path().join("herald.db");
    let with = run(&emails("sts"), &section, Some(&db));
    let fetched: usize = (0..DOMAINS)
        .map(|n| policies.fetches(&format!("mta-sts.sts{n}.test")))
        .sum();
    let cached = run(&emails("sts"), &section, Some(&db));
    let fetched_again: usize = (0..DOMAINS)
        .map(|n| policies.fetches(&format!("mta-sts.sts{n}.test")))
        .sum::<usize>()
        - fetched;
    println!(
        "direct with STARTTLS, {recipients} recipients over {DOMAINS} domains: without MTA-STS {:.2} s; with enforce policies {:.2} s (x{:.2}, {fetched} policy fetches); again with the cached policies {:.2} s (x{:.2}, {fetched_again} fetches)",
        without.as_secs_f64(),
        with.as_secs_f64(),
        with.as_secs_f64() / without.as_secs_f64(),
        cached.as_secs_f64(),
        cached.as_secs_f64() / without.as_secs_f64(),
    );
}
