//! Direct and mixed delivery against real DNS (our in-process authoritative server over UDP on
//! loopback) and real SMTP (the scriptable server on 127.0.0.x addresses sharing one port, which
//! `[direct] port` points at): MX preference and fallback, A fallback, null MX, NXDOMAIN, DNS
//! timeouts, twenty MX hosts, CNAME and address-literal MX, IDN, one lookup per domain, the
//! per-domain cap, adaptive backoff, port 25 blocked, and mixed-mode routing. Issue #4.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::campaign::{CampaignDir, RelayConf, campaign_with, closed_port};
use crate::support::dns_server::{DnsServer, Zone};
use crate::support::run::{counts, finish, row, start, wait_for};
use crate::support::smtp_server::{Reply, SmtpServer, SmtpServerBuilder};
use herald::engine::{Engine, RunState};
use herald::store::{State, Store};

/// 127.0.`net`.`host`: each test takes its own `net` so that servers of parallel tests sharing
/// a port number never collide.
fn ip(net: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, net, host)
}

/// Starts the first server of a test on a free port; the others join it with [`also_at`].
fn first_at(builder: SmtpServerBuilder, at: Ipv4Addr) -> SmtpServer {
    builder.ip(at).start()
}

fn also_at(builder: SmtpServerBuilder, at: Ipv4Addr, port: u16) -> SmtpServer {
    builder.ip(at).port(port).start()
}

fn direct_section(dns: &DnsServer, port: u16, extra: &str) -> String {
    format!(
        "[direct]\nhelo = \"mail.herald.example\"\nport = {port}\nnameservers = [\"{}\"]\ndns_timeout_secs = 1\nbackoff_pause_secs = 1\n{extra}\n",
        dns.addr()
    )
}

fn direct_campaign(emails: &[&str], delivery: &str, section: &str) -> CampaignDir {
    let emails: Vec<String> = emails.iter().map(|e| e.to_string()).collect();
    campaign_with(
        &emails,
        &[],
        &format!("mode = \"direct\"\n{delivery}"),
        section,
    )
}

fn history_text(dir: &CampaignDir, email: &str) -> String {
    let id = row(dir, email).id;
    let store = Store::open(&dir.db).unwrap();
    store
        .history(id)
        .unwrap()
        .into_iter()
        .map(|entry| {
            format!(
                "{} {:?} {}",
                entry.state.as_str(),
                entry.route,
                entry.reply.text
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn herald() -> Command {
    Command::new(env!("CARGO_BIN_EXE_herald"))
}

fn status_json(dir: &CampaignDir) -> serde_json::Value {
    let status = herald()
        .args(["status", "--json"])
        .arg(&dir.campaign)
        .arg("--db")
        .arg(&dir.db)
        .output()
        .unwrap();
    serde_json::from_slice(&status.stdout).unwrap()
}

#[test]
fn mx_preference_is_followed_and_an_unreachable_first_mx_falls_to_the_next() {
    let best = first_at(SmtpServer::builder(), ip(1, 4));
    let port = best.port();
    let worse = also_at(SmtpServer::builder(), ip(1, 5), port);
    let second = also_at(SmtpServer::builder(), ip(1, 3), port);
    let zone = Zone::new()
        .mx("pref.test", 20, "worse.pref.test")
        .mx("pref.test", 10, "best.pref.test")
        .a("best.pref.test", ip(1, 4))
        .a("worse.pref.test", ip(1, 5))
        // The preferred host of fall.test has nothing listening.
        .mx("fall.test", 10, "dead.fall.test")
        .mx("fall.test", 20, "live.fall.test")
        .a("dead.fall.test", ip(1, 2))
        .a("live.fall.test", ip(1, 3));
    let dns = DnsServer::start(zone);
    let emails = [
        "a@pref.test",
        "b@pref.test",
        "c@pref.test",
        "d@fall.test",
        "e@fall.test",
    ];
    let dir = direct_campaign(&emails, "connections = 4", &direct_section(&dns, port, ""));
    let engine = Engine::new().unwrap();
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.state, RunState::Finished);
    assert_eq!(last.counts.sent, 5, "{:?}", last.recent_errors);
    assert_eq!(best.received_count(), 3);
    assert_eq!(worse.received_count(), 0);
    assert_eq!(second.received_count(), 2);
    assert_eq!(
        row(&dir, "a@pref.test").route.as_deref(),
        Some("best.pref.test")
    );
    assert_eq!(
        row(&dir, "d@fall.test").route.as_deref(),
        Some("live.fall.test")
    );
    // Progress has one route per destination domain.
    let mut names: Vec<&str> = last.routes.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["fall.test", "pref.test"]);
    assert_eq!(last.routes.iter().map(|r| r.sent).sum::<u64>(), 5);
}

#[test]
fn a_domain_without_mx_gets_mail_at_its_own_address() {
    let server = first_at(SmtpServer::builder(), ip(2, 2));
    let dns = DnsServer::start(Zone::new().a("plain.test", ip(2, 2)));
    let dir = direct_campaign(
        &["x@plain.test", "y@plain.test"],
        "",
        &direct_section(&dns, server.port(), ""),
    );
    let engine = Engine::new().unwrap();
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.counts.sent, 2, "{:?}", last.recent_errors);
    assert_eq!(server.received_count(), 2);
    assert_eq!(
        row(&dir, "x@plain.test").route.as_deref(),
        Some("plain.test")
    );
    let received = server.received();
    assert!(
        received[0].data_str().contains("To: x@plain.test")
            || received[1].data_str().contains("To: x@plain.test")
    );
}

#[test]
fn null_mx_nxdomain_and_mailless_domains_fail_with_their_reason() {
    let server = first_at(SmtpServer::builder(), ip(3, 2));
    let zone = Zone::new()
        .null_mx("nomail.test")
        .txt("txtonly.test", &"v=spf1 -all ".repeat(20))
        .mx("ok.test", 10, "mx.ok.test")
        .a("mx.ok.test", ip(3, 2));
    let dns = DnsServer::start(zone);
    let dir = direct_campaign(
        &[
            "a@nomail.test",
            "b@missing.test",
            "c@txtonly.test",
            "d@ok.test",
        ],
        "max_attempts = 3",
        &direct_section(&dns, server.port(), ""),
    );
    let engine = Engine::new().unwrap();
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.state, RunState::Finished);
    assert_eq!(
        (last.counts.sent, last.counts.failed),
        (1, 3),
        "{:?}",
        last.counts
    );
    let null = row(&dir, "a@nomail.test");
    assert_eq!((null.state, null.attempts), (State::Failed, 1));
    assert!(null.reply.unwrap().text.contains("null MX, RFC 7505"));
    let nx = row(&dir, "b@missing.test").reply.unwrap().text;
    assert!(nx.contains("does not exist (NXDOMAIN)"), "{nx}");
    let txt = row(&dir, "c@txtonly.test").reply.unwrap().text;
    assert!(txt.contains("no MX and no address record"), "{txt}");
    assert_eq!(server.received_count(), 1);
}

#[test]
fn a_dns_server_that_never_answers_defers_instead_of_hanging() {
    let dns = DnsServer::silent();
    let dir = direct_campaign(
        &["a@slow.test", "b@slow.test"],
        "retry_delays = [\"1h\"]",
        &direct_section(&dns, closed_port(), ""),
    );
    let engine = Engine::new().unwrap();
    let started = Instant::now();
    let mut run = start(&engine, &dir);
    wait_for(&run, "deferrals", |p| p.counts.deferred == 2);
    assert!(started.elapsed() < Duration::from_secs(10));
    run.stop();
    finish(&mut run);
    let deferred = row(&dir, "a@slow.test");
    assert_eq!((deferred.state, deferred.attempts), (State::Deferred, 1));
    let text = deferred.reply.unwrap().text;
    assert!(text.contains("did not answer"), "{text}");
}

#[test]
fn twenty_mx_hosts_cname_and_address_literal_mx_all_end_delivered() {
    let server = first_at(SmtpServer::builder(), ip(4, 200));
    let port = server.port();
    let mut zone = Zone::new();
    // Nineteen better hosts that cannot be used: ten do not resolve, nine refuse connections.
    for n in 0..19u8 {
        let host = format!("mx{n}.many.test");
        zone = zone.mx("many.test", 10 + u16::from(n), &host);
        if n >= 10 {
            zone = zone.a(&host, ip(4, 10 + n));
        }
    }
    zone = zone
        .mx("many.test", 100, "last.many.test")
        .a("last.many.test", ip(4, 200))
        // RFC 2181 §10.3 forbids it, but it happens: MX -> CNAME -> A.
        .mx("alias.test", 10, "mail.alias.test")
        .cname("mail.alias.test", "real.alias.test")
        .a("real.alias.test", ip(4, 200))
        // An MX that names an address instead of a host.
        .mx("literal.test", 10, "127.0.4.200");
    let dns = DnsServer::start(zone);
    let dir = direct_campaign(
        &["a@many.test", "b@alias.test", "c@literal.test"],
        "max_attempts = 1",
        &direct_section(&dns, port, ""),
    );
    let engine = Engine::new().unwrap();
    let started = Instant::now();
    let last = finish(&mut start(&engine, &dir));
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(last.counts.sent, 3, "{:?}", last.recent_errors);
    assert_eq!(
        row(&dir, "a@many.test").route.as_deref(),
        Some("last.many.test")
    );
    assert_eq!(
        row(&dir, "b@alias.test").route.as_deref(),
        Some("mail.alias.test")
    );
    assert_eq!(
        row(&dir, "c@literal.test").route.as_deref(),
        Some("127.0.4.200")
    );
}

#[test]
fn an_idn_domain_is_looked_up_and_addressed_in_punycode() {
    let server = first_at(SmtpServer::builder(), ip(5, 2));
    let zone = Zone::new()
        .mx("xn--bcher-kva.test", 10, "mx.xn--bcher-kva.test")
        .a("mx.xn--bcher-kva.test", ip(5, 2));
    let dns = DnsServer::start(zone);
    let dir = direct_campaign(
        &["anna@bücher.test"],
        "",
        &direct_section(&dns, server.port(), ""),
    );
    let engine = Engine::new().unwrap();
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.counts.sent, 1, "{:?}", last.recent_errors);
    assert_eq!(
        server.received()[0].rcpt_to,
        vec!["anna@xn--bcher-kva.test".to_string()]
    );
    assert_eq!(dns.queries("xn--bcher-kva.test", "MX"), 1);
}

#[test]
fn one_lookup_per_domain_and_many_messages_per_connection() {
    let server = first_at(SmtpServer::builder(), ip(6, 2));
    let mut zone = Zone::new().a("mx.one.test", ip(6, 2));
    for domain in ["d0.test", "d1.test", "d2.test"] {
        zone = zone.mx(domain, 10, "mx.one.test");
    }
    let dns = DnsServer::start(zone);
    let emails: Vec<String> = (0..300).map(|n| format!("u{n}@d{}.test", n % 3)).collect();
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let dir = direct_campaign(
        &refs,
        "connections = 16",
        &direct_section(&dns, server.port(), ""),
    );
    let engine = Engine::new().unwrap();
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.counts.sent, 300);
    for domain in ["d0.test", "d1.test", "d2.test"] {
        assert_eq!(dns.queries(domain, "MX"), 1, "{domain}");
    }
    assert_eq!(dns.queries("mx.one.test", "A"), 1);
    assert!(server.rcpt_counts().values().all(|n| *n == 1));
    // 100 recipients a domain, default 100 per connection: a handful of sessions, not 300.
    assert!(server.sessions() <= 30, "{} sessions", server.sessions());
}

#[test]
fn the_per_domain_cap_and_messages_per_connection_are_kept() {
    let server = first_at(
        SmtpServer::builder().rule(|_| Reply::SlowData(Duration::from_millis(10))),
        ip(7, 2),
    );
    let dns = DnsServer::start(
        Zone::new()
            .mx("capped.test", 10, "mx.capped.test")
            .a("mx.capped.test", ip(7, 2)),
    );
    let emails: Vec<String> = (0..60).map(|n| format!("u{n}@capped.test")).collect();
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let section = direct_section(
        &dns,
        server.port(),
        "[[direct.domain]]\nname = \"capped.test\"\nconnections = 2\nmessages_per_connection = 10\n",
    );
    let dir = direct_campaign(&refs, "connections = 32", &section);
    let engine = Engine::new().unwrap();
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.counts.sent, 60);
    assert!(
        server.max_concurrent_sessions() <= 2,
        "{}",
        server.max_concurrent_sessions()
    );
    assert!(server.sessions() >= 6, "{} sessions", server.sessions());
}

#[test]
fn a_421_slows_the_domain_down_and_it_recovers() {
    let server = first_at(
        SmtpServer::builder().attempt_rule(|rcpt, attempt| {
            if rcpt == "u3@busy.test" && attempt == 1 {
                Reply::CloseWith421
            } else {
                Reply::SlowData(Duration::from_millis(5))
            }
        }),
        ip(8, 2),
    );
    let dns = DnsServer::start(
        Zone::new()
            .mx("busy.test", 10, "mx.busy.test")
            .a("mx.busy.test", ip(8, 2)),
    );
    let emails: Vec<String> = (0..20).map(|n| format!("u{n}@busy.test")).collect();
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let dir = direct_campaign(
        &refs,
        "connections = 4",
        &direct_section(&dns, server.port(), ""),
    );
    let engine = Engine::new().unwrap();
    let mut run = start(&engine, &dir);
    let slowed = wait_for(&run, "the domain slowed down", |p| {
        p.routes
            .iter()
            .any(|r| r.down.as_deref().is_some_and(|d| d.contains("slowed down")))
    });
    assert!(slowed.counts.sent < 20);
    let last = finish(&mut run);
    assert_eq!(last.counts.sent, 20, "{:?}", last.counts);
    assert_eq!(row(&dir, "u3@busy.test").attempts, 2);
    // Those waiting behind the 421 were held without spending an attempt.
    let held: Vec<String> = emails
        .iter()
        .filter(|e| history_text(&dir, e).contains("asked us to slow down"))
        .cloned()
        .collect();
    assert!(!held.is_empty());
    for email in &held {
        assert_eq!(row(&dir, email).attempts, 1, "{email}");
    }
}

#[test]
fn a_blocked_port_25_is_named_and_fails_nobody() {
    let port = closed_port();
    let mut zone = Zone::new();
    for n in 0..4u8 {
        let domain = format!("far{n}.test");
        zone = zone
            .mx(&domain, 10, &format!("mx.{domain}"))
            .a(&format!("mx.{domain}"), ip(9, 2 + n));
    }
    let dns = DnsServer::start(zone);
    let emails: Vec<String> = (0..12).map(|n| format!("u{n}@far{}.test", n % 4)).collect();
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let dir = direct_campaign(&refs, "max_attempts = 1", &direct_section(&dns, port, ""));
    let output = herald()
        .arg("send")
        .arg(&dir.campaign)
        .arg("--db")
        .arg(&dir.db)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("block outgoing connections to port 25"),
        "{stderr}"
    );
    assert!(stderr.contains("mixed"), "{stderr}");
    let json = status_json(&dir);
    assert_eq!(json["failed"], 0, "{json}");
    assert_eq!(json["sending"], 0, "{json}");
    assert_eq!(json["total"], 12);
}

#[test]
fn mixed_mode_hands_what_a_relay_can_fix_to_the_relay_and_nothing_else() {
    let direct = first_at(
        SmtpServer::builder().rule(|rcpt| match rcpt {
            "policy@mx.test" => Reply::PolicyReject,
            "nobody@mx.test" => Reply::PermFail,
            "later@mx.test" => Reply::TempFail,
            _ => Reply::Accept,
        }),
        ip(10, 2),
    );
    let relay = SmtpServer::start();
    let zone = Zone::new()
        .mx("mx.test", 10, "in.mx.test")
        .a("in.mx.test", ip(10, 2))
        .mx("gone.test", 10, "in.gone.test")
        .a("in.gone.test", ip(10, 9))
        .null_mx("void.test");
    let dns = DnsServer::start(zone);
    let emails: Vec<String> = [
        "ok@mx.test",
        "policy@mx.test",
        "nobody@mx.test",
        "later@mx.test",
        "far@gone.test",
        "none@void.test",
    ]
    .iter()
    .map(|e| e.to_string())
    .collect();
    let dir = campaign_with(
        &emails,
        &[RelayConf::new("backup", relay.port())],
        "mode = \"mixed\"\nmax_attempts = 2\nconnections = 4",
        &direct_section(&dns, direct.port(), ""),
    );
    let output = herald()
        .arg("send")
        .arg(&dir.campaign)
        .arg("--db")
        .arg(&dir.db)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json = status_json(&dir);
    assert_eq!(
        (
            json["total"].as_u64(),
            json["sent"].as_u64(),
            json["failed"].as_u64(),
            json["pending"].as_u64(),
            json["deferred"].as_u64()
        ),
        (Some(6), Some(4), Some(2), Some(0), Some(0)),
        "{json}"
    );
    let mut via_relay: Vec<String> = relay.rcpt_counts().into_keys().collect();
    via_relay.sort();
    assert_eq!(
        via_relay,
        ["far@gone.test", "later@mx.test", "policy@mx.test"]
    );
    assert_eq!(
        direct.rcpt_counts().keys().collect::<Vec<_>>(),
        ["ok@mx.test"]
    );
    assert_eq!(row(&dir, "ok@mx.test").route.as_deref(), Some("in.mx.test"));
    assert_eq!(row(&dir, "policy@mx.test").route.as_deref(), Some("backup"));
    let later = row(&dir, "later@mx.test");
    assert_eq!(
        (later.route.as_deref(), later.attempts),
        (Some("backup"), 3)
    );
    let nobody = row(&dir, "nobody@mx.test");
    assert_eq!(
        (nobody.state, nobody.reply.unwrap().enhanced.as_deref()),
        (State::Failed, Some("5.1.1"))
    );
    let void = row(&dir, "none@void.test");
    assert_eq!(void.state, State::Failed);
    assert!(history_text(&dir, "policy@mx.test").contains("5.7.1"));
}

#[test]
fn direct_send_from_the_command_line_ends_with_exact_counts() {
    let server = first_at(
        SmtpServer::builder().rule(|rcpt| {
            if rcpt == "nobody@cli.test" {
                Reply::PermFail
            } else {
                Reply::Accept
            }
        }),
        ip(11, 2),
    );
    let zone = Zone::new()
        .mx("cli.test", 10, "mx.cli.test")
        .a("mx.cli.test", ip(11, 2))
        .a("bare.test", ip(11, 2))
        .null_mx("void.test");
    let dns = DnsServer::start(zone);
    let mut emails: Vec<String> = (0..40).map(|n| format!("u{n}@cli.test")).collect();
    emails.extend((0..10).map(|n| format!("b{n}@bare.test")));
    emails.extend([
        "nobody@cli.test".to_string(),
        "x@void.test".into(),
        "y@nowhere.test".into(),
    ]);
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let dir = direct_campaign(
        &refs,
        "connections = 8",
        &direct_section(&dns, server.port(), ""),
    );
    let output = herald()
        .arg("send")
        .arg(&dir.campaign)
        .arg("--db")
        .arg(&dir.db)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("finished: 53 total: 50 sent, 3 failed"),
        "{stdout}"
    );
    let json = status_json(&dir);
    let expected = serde_json::json!({"total":53,"pending":0,"sending":0,"deferred":0,"sent":50,"failed":3,"uncertain":0,"skipped":0,"bounced":0,"complained":0,"unsubscribed":0});
    assert_eq!(json, expected);
    assert_eq!(server.received_count(), 50);
    assert_eq!(counts(&dir).sent, 50);
}

#[test]
fn mixed_mode_keeps_sending_direct_while_every_relay_is_down() {
    let direct = first_at(
        SmtpServer::builder().rule(|rcpt| {
            if rcpt.starts_with("policy") {
                Reply::PolicyReject
            } else {
                Reply::Accept
            }
        }),
        ip(11, 2),
    );
    let dns = DnsServer::start(
        Zone::new()
            .mx("mx.test", 10, "in.mx.test")
            .a("in.mx.test", ip(11, 2)),
    );
    // The recipients for the relay come first: they must not hold up those behind them.
    let mut emails: Vec<String> = (0..30).map(|n| format!("policy{n}@mx.test")).collect();
    emails.extend((0..400).map(|n| format!("u{n}@mx.test")));
    let dir = campaign_with(
        &emails,
        &[RelayConf::new("backup", closed_port())],
        "mode = \"mixed\"\nconnections = 4",
        &direct_section(&dns, direct.port(), ""),
    );
    let engine = Engine::new().unwrap();
    let mut run = start(&engine, &dir);
    let progress = wait_for(&run, "everyone direct mode can reach sent", |p| {
        p.counts.sent == 400
    });
    assert!(
        !progress.state.is_over(),
        "the relay's recipients are still to send: {progress:?}"
    );
    run.stop();
    let last = finish(&mut run);
    assert_eq!(last.counts.sent, 400, "{:?}", last.counts);
    assert_eq!(last.counts.failed, 0, "{:?}", last.counts);
    // Tried directly once, refused by policy, and kept for the relay.
    let waiting = row(&dir, "policy0@mx.test");
    assert_ne!(waiting.state, State::Sent);
    assert!(history_text(&dir, "policy0@mx.test").contains("5.7.1"));
    assert_eq!(direct.rcpt_counts().len(), 400);
}

/// Issue #12: in mixed mode a domain answering 451 to everything got the adaptive backoff and
/// its recipients were held for pauses that doubled (120 s, 240 s, …) while backup relays
/// stood idle. Now they go to the relays; direct mode keeps the pause
/// (`a_421_slows_the_domain_down_and_it_recovers`).
#[test]
fn mixed_mode_sends_a_throttling_domains_recipients_through_the_relays() {
    let direct = first_at(
        SmtpServer::builder().rule(|rcpt| {
            if rcpt.ends_with("@slow.test") {
                Reply::TempFail
            } else {
                Reply::Accept
            }
        }),
        ip(12, 2),
    );
    let relay = SmtpServer::start();
    let dns = DnsServer::start(
        Zone::new()
            .mx("slow.test", 10, "in.slow.test")
            .a("in.slow.test", ip(12, 2))
            .mx("fine.test", 10, "in.fine.test")
            .a("in.fine.test", ip(12, 2)),
    );
    let mut emails: Vec<String> = (0..40).map(|n| format!("s{n}@slow.test")).collect();
    emails.extend((0..60).map(|n| format!("f{n}@fine.test")));
    // The default pause (120 s, doubling) is what held the recipients before.
    let section = format!(
        "[direct]\nhelo = \"mail.herald.example\"\nport = {}\nnameservers = [\"{}\"]\ndns_timeout_secs = 1\n",
        direct.port(),
        dns.addr()
    );
    let dir = campaign_with(
        &emails,
        &[RelayConf::new("backup", relay.port())],
        "mode = \"mixed\"\nconnections = 4\nmax_attempts = 5\nretry_delays = [\"1s\"]",
        &section,
    );
    let began = Instant::now();
    let engine = Engine::new().unwrap();
    let mut run = start(&engine, &dir);
    let last = finish(&mut run);
    assert_eq!(last.state, RunState::Finished);
    assert_eq!(
        (last.counts.sent, last.counts.failed, last.counts.deferred),
        (100, 0, 0),
        "{:?}",
        last.counts
    );
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "took {:?}",
        began.elapsed()
    );
    let by_relay = relay.rcpt_counts();
    for n in 0..40 {
        let email = format!("s{n}@slow.test");
        assert_eq!(by_relay.get(&email), Some(&1), "{email}");
        assert_eq!(
            row(&dir, &email).route.as_deref(),
            Some("backup"),
            "{email}"
        );
    }
    assert!(
        by_relay.keys().all(|email| email.ends_with("@slow.test")),
        "the fine domain went direct"
    );
}
