//! Herald against a real Postfix (Debian's package, one private instance per test on loopback,
//! delivering into Maildirs): `herald send` in relay mode and in direct mode (the test DNS
//! server pointing the MX at Postfix), every delivered message compared with what Herald's
//! composer builds for that recipient (headers, text and HTML parts, attachments), allowing only
//! the trace headers Postfix adds, the Date and the MIME boundaries. Postfix's own verdicts
//! (550 5.1.1 for an unknown mailbox) must land in the recipient's state, and one session must
//! survive a rejection. Skipped, saying why, where Postfix is not installed or we are not root.
//! Issue #7.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::cli_run::{composed_for, herald, row, status};
use crate::support::dns_server::{DnsServer, Zone};
use crate::support::mail::{assert_same_message, header, strip_trace};
use crate::support::postfix::{DOMAIN, Postfix, PostfixOptions, skip};

const LIMIT: Duration = Duration::from_secs(120);
const DELIVERY: Duration = Duration::from_secs(30);

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn campaign(&self) -> PathBuf {
        self.dir.path().join("campaign.toml")
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("herald.db")
    }
}

/// A campaign using every part of a message: non-ASCII subject and sender name, HTML and text
/// templates (with lines that need dot-stuffing), two attachments (one binary), List-Unsubscribe
/// and a custom header. `route` is the `[[relay]]` or `[direct]` section.
fn fixture(rows: &[(&str, &str, &str)], mode: &str, route: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
    let mut csv = String::from("email,first_name,city\n");
    for (email, name, city) in rows {
        csv.push_str(&format!("{email},{name},{city}\n"));
    }
    write("list.csv", csv.as_bytes());
    write(
        "body.html",
        b"<p>Hello {{ first_name }},</p>\n<p>News for {{ city }}.</p>\n.\n..two dots\n",
    );
    write(
        "body.txt",
        b"Hello {{ first_name }},\n.\n..starts with dots\nNews for {{ city }}.\n",
    );
    let binary: Vec<u8> = (0..=255u8).cycle().take(3_000).collect();
    write("prices.pdf", &binary);
    write("notes.txt", b"plain notes\n.\nend\n");
    let text = format!(
        r#"[message]
from = "Héraut News <news@acme.example>"
reply_to = "help@acme.example"
subject = "{{{{ first_name }}}}, nos sélections pour {{{{ city }}}}"
html = "body.html"
text = "body.txt"
attachments = ["prices.pdf", "notes.txt"]
unsubscribe = "https://acme.example/u?e={{{{ url(email) }}}}"
headers = {{ "X-Campaign" = "nov-{{{{ lower(city) }}}}" }}

[recipients]
csv = "list.csv"

[delivery]
mode = "{mode}"
connections = 2
retry_delays = ["1s"]
connect_timeout_secs = 5
command_timeout_secs = 30
data_timeout_secs = 30

{route}
"#
    );
    write("campaign.toml", text.as_bytes());
    Fixture { dir }
}

fn relay_section(port: u16) -> String {
    format!(
        "[[relay]]\nname = \"postfix\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n"
    )
}

fn people() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("ada@herald.test", "Ada", "Paris"),
        ("bob@herald.test", "Bob", "Lyon"),
        ("chloe@herald.test", "Chloé", "Nantes"),
        ("ghost@herald.test", "Ghost", "Nowhere"),
    ]
}

fn postfix_for(locals: &[&str]) -> Postfix {
    Postfix::start(&PostfixOptions {
        mailboxes: locals.iter().map(|l| l.to_string()).collect(),
        sasl: None,
        ..PostfixOptions::default()
    })
}

/// A Postfix that offers neither PIPELINING nor CHUNKING (issue #12: command by command).
fn plain_postfix_for(locals: &[&str]) -> Postfix {
    Postfix::start(&PostfixOptions {
        mailboxes: locals.iter().map(|l| l.to_string()).collect(),
        sasl: None,
        discard_ehlo: Some("pipelining, chunking".into()),
        ..PostfixOptions::default()
    })
}

/// Each of `locals` got exactly one message, equal to what Herald composes for them.
fn check_delivered(postfix: &Postfix, fixture: &Fixture, locals: &[&str]) -> Vec<String> {
    let mut delivered = Vec::new();
    for local in locals {
        let messages = postfix.wait_for_mail(local, 1, DELIVERY);
        assert_eq!(messages.len(), 1, "{local} got {} messages", messages.len());
        let message = messages.into_iter().next().unwrap();
        let email = format!("{local}@{DOMAIN}");
        let composed = composed_for(&fixture.campaign(), &fixture.db(), &email);
        assert_same_message(&message, &composed, &email);
        let (trace, _) = strip_trace(&message);
        assert!(
            trace.iter().any(|name| name == "Received"),
            "Postfix added no Received header: {trace:?}"
        );
        delivered.push(message);
    }
    delivered
}

#[test]
fn a_relay_campaign_through_postfix_arrives_exactly_as_composed() {
    if skip(false) {
        return;
    }
    let postfix = postfix_for(&["ada", "bob", "chloe"]);
    let fixture = fixture(&people(), "relay", &relay_section(postfix.smtp_port));
    let ran = herald(&["send"], &fixture.campaign(), &fixture.db(), &[], LIMIT);
    ran.assert_code(0);
    assert!(
        ran.stdout.contains("3 sent, 1 failed"),
        "{}\n--- maillog:\n{}",
        ran.all(),
        postfix.log()
    );
    let delivered = check_delivered(&postfix, &fixture, &["ada", "bob", "chloe"]);
    // What the message says, decoded by Postfix's reading of it: the subject is RFC 2047
    // encoded, the sender's name too, and the one-click unsubscribe pair is present.
    let chloe = &delivered[2];
    let subject = header(chloe, "Subject").unwrap();
    assert!(
        subject.starts_with("=?utf-8?") || subject.starts_with("=?UTF-8?"),
        "{subject}"
    );
    assert_eq!(
        header(chloe, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    assert_eq!(header(chloe, "X-Campaign").as_deref(), Some("nov-nantes"));
    let received = header(chloe, "Received").unwrap();
    assert!(received.contains("with ESMTP "), "{received}");
    // Postfix's refusal of an unknown mailbox is the recipient's final state, with its codes.
    let ghost = row(&fixture.campaign(), &fixture.db(), "ghost@herald.test");
    let reply = ghost.reply.expect("a reply is recorded");
    assert_eq!(ghost.state.as_str(), "failed");
    assert_eq!(
        (reply.code, reply.enhanced.as_deref()),
        (Some(550), Some("5.1.1")),
        "{}",
        reply.text
    );
    let json = status(&fixture.campaign(), &fixture.db());
    assert_eq!(
        (json["sent"].as_u64(), json["failed"].as_u64()),
        (Some(3), Some(1))
    );
}

#[test]
fn a_direct_campaign_finds_postfix_by_mx_and_upgrades_to_tls() {
    if skip(false) {
        return;
    }
    let postfix = postfix_for(&["ada", "bob", "chloe"]);
    let dns = DnsServer::start(
        Zone::new()
            .mx(DOMAIN, 10, "mx.herald.test")
            .a("mx.herald.test", Ipv4Addr::LOCALHOST),
    );
    let direct = format!(
        "[direct]\nhelo = \"mail.acme.example\"\nport = {}\nnameservers = [\"{}\"]\ndns_timeout_secs = 2\n",
        postfix.smtp_port,
        dns.addr()
    );
    let fixture = fixture(&people(), "direct", &direct);
    let ran = herald(&["send"], &fixture.campaign(), &fixture.db(), &[], LIMIT);
    ran.assert_code(0);
    assert!(
        ran.stdout.contains("3 sent, 1 failed"),
        "{}\n--- maillog:\n{}",
        ran.all(),
        postfix.log()
    );
    assert!(dns.queries(DOMAIN, "MX") >= 1, "no MX lookup was made");
    let delivered = check_delivered(&postfix, &fixture, &["ada", "bob", "chloe"]);
    // Opportunistic STARTTLS (RFC 3207) against a server that offers it: ESMTPS in Postfix's
    // trace, and our HELO name.
    for message in &delivered {
        let received = header(message, "Received").unwrap();
        assert!(received.contains("with ESMTPS"), "{received}");
        assert!(received.contains("mail.acme.example"), "{received}");
    }
    let ghost = row(&fixture.campaign(), &fixture.db(), "ghost@herald.test");
    assert_eq!(ghost.state.as_str(), "failed");
    assert_eq!(
        ghost.reply.and_then(|r| r.enhanced).as_deref(),
        Some("5.1.1")
    );
}

/// Counts `key=N` in Postfix's "disconnect from" log lines (e.g. `data`, `rset`, `mail`).
fn session_total(log: &str, key: &str) -> (usize, u64) {
    let mut sessions = 0;
    let mut total = 0;
    // Sessions that spoke SMTP (the harness's own port probes did not).
    for line in log
        .lines()
        .filter(|l| l.contains("disconnect from") && l.contains("ehlo="))
    {
        sessions += 1;
        for word in line.split_whitespace() {
            if let Some(value) = word.strip_prefix(&format!("{key}=")) {
                let ok = value.split('/').next().unwrap_or("0");
                total += ok.parse::<u64>().unwrap_or(0);
            }
        }
    }
    (sessions, total)
}

#[test]
fn one_postfix_session_carries_many_messages_and_survives_rejections() {
    if skip(false) {
        return;
    }
    let locals: Vec<String> = (0..24).map(|n| format!("m{n}")).collect();
    let local_refs: Vec<&str> = locals.iter().map(String::as_str).collect();
    let postfix = postfix_for(&local_refs);
    // Every fourth recipient has no mailbox: Postfix says 550 at RCPT and Herald must RSET
    // before the next MAIL and go on in the same session.
    let mut rows = Vec::new();
    let mut emails = Vec::new();
    for n in 0..32 {
        let local = if n % 4 == 3 {
            format!("unknown{n}")
        } else {
            format!("m{}", n - n / 4)
        };
        emails.push(format!("{local}@{DOMAIN}"));
    }
    for email in &emails {
        rows.push((email.as_str(), "Reader", "Paris"));
    }
    let fixture = fixture(&rows, "relay", &relay_section(postfix.smtp_port));
    let text = std::fs::read_to_string(fixture.campaign())
        .unwrap()
        .replace("connections = 2", "connections = 1");
    std::fs::write(fixture.campaign(), text).unwrap();
    let ran = herald(&["send"], &fixture.campaign(), &fixture.db(), &[], LIMIT);
    ran.assert_code(0);
    assert!(ran.stdout.contains("24 sent, 8 failed"), "{}", ran.all());
    for local in &local_refs {
        assert_eq!(postfix.wait_for_mail(local, 1, DELIVERY).len(), 1);
    }
    // Postfix logs a summary per session; wait for the last one.
    let deadline = std::time::Instant::now() + DELIVERY;
    // Postfix offers CHUNKING, so the content goes out as BDAT (issue #12); count either.
    let (sessions, data) = loop {
        let (sessions, data) = session_total(&postfix.log(), "data");
        let (_, bdat) = session_total(&postfix.log(), "bdat");
        let data = data + bdat;
        if data >= 24 || std::time::Instant::now() > deadline {
            break (sessions, data);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (_, rsets) = session_total(&postfix.log(), "rset");
    assert_eq!(data, 24, "{}", postfix.log());
    // Real Postfix offers CHUNKING (since 3.4): every message went as one BDAT LAST.
    let (_, bdat) = session_total(&postfix.log(), "bdat");
    assert_eq!(bdat, 24, "{}", postfix.log());
    // Each refusal but the last (QUIT follows it) leaves a transaction to reset.
    assert!(rsets >= 7, "{rsets} RSETs\n{}", postfix.log());
    assert!(
        sessions <= 2,
        "{sessions} sessions for 32 messages\n{}",
        postfix.log()
    );
}

#[test]
fn dkim_signatures_survive_postfix_and_pass_an_independent_verifier() {
    if skip(false) {
        return;
    }
    let postfix = postfix_for(&["ada", "bob"]);
    let keys = tempfile::tempdir().unwrap();
    let (pem, key_type, public) = crate::support::dkim::make_key(keys.path(), "pkcs8");
    let route = format!(
        "{}\n[dkim]\ndomain = \"acme.example\"\nselector = \"s1\"\nprivate_key = \"dkim.pem\"\n",
        relay_section(postfix.smtp_port)
    );
    let rows = vec![
        ("ada@herald.test", "Ada", "Paris"),
        ("bob@herald.test", "Bob", "Lyon"),
    ];
    let fixture = fixture(&rows, "relay", &route);
    std::fs::write(fixture.dir.path().join("dkim.pem"), pem).unwrap();
    // acme.example's DNS does not hold this test's key: the DNS check (issue #23) would stop
    // the send, and this test is about the signature Postfix delivers.
    herald(
        &["send", "--ignore-dns"],
        &fixture.campaign(),
        &fixture.db(),
        &[],
        LIMIT,
    )
    .assert_code(0);
    for local in ["ada", "bob"] {
        let messages = postfix.wait_for_mail(local, 1, DELIVERY);
        assert_eq!(messages.len(), 1, "{local}");
        let message = &messages[0];
        assert!(message.contains("DKIM-Signature:"), "{message}");
        let (ok, log) = crate::support::dkim::dkim_verifies(message.as_bytes(), key_type, &public);
        assert!(
            ok,
            "dkimpy rejected the signature on {local}'s message as delivered:\n{log}"
        );
    }
}

/// Issue #12: these tests printed "skipped" and passed when a tool was missing, CI included.
/// One decision (`crate::support::tools`) serves them all: skip on a developer's machine, fail in CI.
#[test]
fn a_missing_tool_skips_locally_and_fails_under_ci() {
    assert!(!crate::support::tools::decide(None, true));
    assert!(!crate::support::tools::decide(None, false));
    assert!(crate::support::tools::decide(
        Some("postfix is not installed".into()),
        false
    ));
    let under_ci = std::panic::catch_unwind(|| {
        crate::support::tools::decide(Some("postfix is not installed".into()), true)
    });
    assert!(
        under_ci.is_err(),
        "CI=true must fail a test whose tool is missing"
    );
}

#[test]
fn relay_and_direct_through_a_postfix_without_pipelining_or_chunking() {
    if skip(false) {
        return;
    }
    // Relay mode, command by command.
    let postfix = plain_postfix_for(&["ada", "bob", "chloe"]);
    let fixture = fixture(&people(), "relay", &relay_section(postfix.smtp_port));
    let ran = herald(&["send"], &fixture.campaign(), &fixture.db(), &[], LIMIT);
    ran.assert_code(0);
    assert!(ran.stdout.contains("3 sent, 1 failed"), "{}", ran.all());
    check_delivered(&postfix, &fixture, &["ada", "bob", "chloe"]);
    let log = postfix.log();
    assert_eq!(session_total(&log, "data").1, 3, "{log}");
    assert_eq!(session_total(&log, "bdat").1, 0, "{log}");
    drop(postfix);
    // Direct mode, the same server found by MX.
    let postfix = plain_postfix_for(&["ada", "bob", "chloe"]);
    let dns = DnsServer::start(
        Zone::new()
            .mx(DOMAIN, 10, "mx.herald.test")
            .a("mx.herald.test", Ipv4Addr::LOCALHOST),
    );
    let direct = format!(
        "[direct]\nhelo = \"mail.acme.example\"\nport = {}\nnameservers = [\"{}\"]\ndns_timeout_secs = 2\n",
        postfix.smtp_port,
        dns.addr()
    );
    let fixture = self::fixture(&people(), "direct", &direct);
    let ran = herald(&["send"], &fixture.campaign(), &fixture.db(), &[], LIMIT);
    ran.assert_code(0);
    assert!(ran.stdout.contains("3 sent, 1 failed"), "{}", ran.all());
    check_delivered(&postfix, &fixture, &["ada", "bob", "chloe"]);
    let log = postfix.log();
    assert_eq!(session_total(&log, "data").1, 3, "{log}");
}
