//! MTA-STS (RFC 8461) in direct and mixed mode, issue #23, over real sockets: the test DNS
//! server publishes MX, A and `_mta-sts` TXT records; an HTTPS server with a certificate from a
//! test CA (made with `openssl`, trusted through `[direct] ca_file`) serves the policies; the
//! scriptable SMTP server is the MX, with and without STARTTLS. Proves that an enforce policy
//! delivers only to listed MX hosts over verified TLS and otherwise defers with a sentence and
//! sends nothing (mixed mode: the relay takes it), that testing mode delivers and notes what
//! enforcement would refuse, that policies are cached by id and max_age across campaigns (a
//! changed id or an expired cache fetches again, once per domain however many recipients), and
//! that a policy host that does not answer in time leaves the cached policy in force, or none.
//! The fetch's bounds (RFC 8461 §3.3): a policy host with a certificate no trusted CA issued, a
//! body over 64 KB, one not served as text/plain, and a redirect are each not used, and the log
//! of `herald send` says why. Verified TLS is configured once per CA and never resumes a session.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::HandshakeKind;
use tokio_rustls::rustls::client::Resumption;

use crate::support::campaign::{CampaignDir, RelayConf, campaign_with};
use crate::support::cli_run::herald;
use crate::support::dns_server::{DnsServer, Zone};
use crate::support::mta_sts_server::{Pki, PolicyServer, make_pki};
use crate::support::run::{finish, row, start, wait_for};
use crate::support::smtp_server::{SmtpServer, SmtpServerBuilder};
use herald::campaign::Campaign;
use herald::engine::{Engine, RunOptions, RunState};
use herald::store::{State, Store, StoredStsPolicy, now_ms};

/// 127.0.`net`.`host`; each test takes its own `net`, away from the other direct tests'.
fn ip(net: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, net, host)
}

/// A CA, a certificate for `names`, and the policy server at 127.0.`net`.9 using it; None
/// (the test skips, or fails under CI) without openssl.
struct Site {
    pki: Pki,
    policy: PolicyServer,
    _certs: tempfile::TempDir,
}

fn site(net: u8, names: &[&str]) -> Option<Site> {
    if crate::support::tools::skip_if_missing(
        (!std::path::Path::new("/usr/bin/openssl").exists())
            .then(|| "openssl is not installed (the test makes its own CA with it)".to_string()),
    ) {
        return None;
    }
    let certs = tempfile::tempdir().expect("certs");
    let pki = make_pki(certs.path(), names);
    let policy = PolicyServer::start(ip(net, 9), &pki);
    Some(Site {
        pki,
        policy,
        _certs: certs,
    })
}

/// An MX with STARTTLS under the site's certificate.
fn tls_mx(site: &Site) -> SmtpServerBuilder {
    SmtpServer::builder().starttls(&site.pki.cert_pem, &site.pki.key_pem)
}

/// `domain`'s MX `mx` at `mx_ip`, its policy host at the site (127.0.`net`.9) and its
/// `_mta-sts` record with `id`.
fn publish(zone: Zone, net: u8, domain: &str, mx: &str, mx_ip: Ipv4Addr, id: &str) -> Zone {
    zone.mx(domain, 10, mx)
        .a(mx, mx_ip)
        .a(&format!("mta-sts.{domain}"), ip(net, 9))
        .txt(&format!("_mta-sts.{domain}"), &format!("v=STSv1; id={id};"))
}

fn policy(mode: &str, mx: &[&str], max_age: u64) -> String {
    let mut text = format!("version: STSv1\r\nmode: {mode}\r\n");
    for pattern in mx {
        text.push_str(&format!("mx: {pattern}\r\n"));
    }
    text.push_str(&format!("max_age: {max_age}\r\n"));
    text
}

fn section(dns: &DnsServer, smtp_port: u16, site: &Site) -> String {
    section_with(dns, smtp_port, &site.pki.ca_file, site.policy.port())
}

/// `[direct]` trusting `ca_file`, fetching policies from port `https_port`.
fn section_with(dns: &DnsServer, smtp_port: u16, ca_file: &Path, https_port: u16) -> String {
    format!(
        "[direct]\nhelo = \"mail.herald.example\"\nport = {smtp_port}\nnameservers = [\"{}\"]\n\
         dns_timeout_secs = 1\nbackoff_pause_secs = 1\nca_file = \"{}\"\nmta_sts_port = {https_port}\n\
         mta_sts_timeout_secs = 2\n",
        dns.addr(),
        ca_file.display(),
    )
}

fn direct_campaign(emails: &[&str], delivery: &str, section: &str) -> CampaignDir {
    let emails: Vec<String> = emails.iter().map(|e| e.to_string()).collect();
    campaign_with(
        &emails,
        &[],
        &format!("mode = \"direct\"\nretry_delays = [\"1h\"]\n{delivery}"),
        section,
    )
}

/// The reply recorded for `email`.
fn reply_text(dir: &CampaignDir, email: &str) -> String {
    row(dir, email).reply.map(|r| r.text).unwrap_or_default()
}

/// Runs a campaign until `deferred` rows are deferred and nothing is pending, then stops it.
fn run_until_settled(dir: &CampaignDir, sent: u64, deferred: u64) {
    let engine = Engine::new().expect("engine");
    let mut run = start(&engine, dir);
    wait_for(&run, "the run to settle", |p| {
        p.counts.sent == sent && p.counts.deferred == deferred
    });
    run.stop();
    finish(&mut run);
}

fn seed(db: &std::path::Path, domain: &str, id: &str, age_secs: i64, body: &str) {
    let store = Store::open(db).expect("store");
    store
        .save_mta_sts_policy(
            domain,
            &StoredStsPolicy {
                id: id.into(),
                fetched_at_ms: now_ms() - age_secs * 1_000,
                max_age_secs: 86_400,
                body: body.as_bytes().to_vec(),
            },
        )
        .expect("seed");
}

#[test]
fn enforce_delivers_to_a_listed_mx_over_verified_tls_and_fetches_once_for_many_recipients() {
    let Some(site) = site(71, &["mta-sts.enf.test", "mx.enf.test"]) else {
        return;
    };
    let mx = tls_mx(&site).ip(ip(71, 2)).start();
    let zone = publish(Zone::new(), 71, "enf.test", "mx.enf.test", ip(71, 2), "1");
    let dns = DnsServer::start(zone);
    site.policy.set(
        "mta-sts.enf.test",
        &policy("enforce", &["mx.enf.test"], 86_400),
    );
    let emails: Vec<String> = (0..40).map(|n| format!("user{n}@enf.test")).collect();
    let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
    let dir = direct_campaign(&emails, "connections = 8", &section(&dns, mx.port(), &site));
    let engine = Engine::new().expect("engine");
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.state, RunState::Finished);
    assert_eq!(last.counts.sent, 40, "{:?}", last.recent_errors);
    let received = mx.received();
    assert_eq!(received.len(), 40);
    assert!(received.iter().all(|message| message.tls), "sent in clear");
    // Forty recipients, one discovery: one TXT query and one fetch.
    assert_eq!(site.policy.fetches("mta-sts.enf.test"), 1);
    assert_eq!(dns.queries("_mta-sts.enf.test", "TXT"), 1);
    let cached = Store::open(&dir.db)
        .expect("store")
        .mta_sts_policy("enf.test")
        .expect("cache");
    assert_eq!(cached.map(|policy| policy.id), Some("1".to_string()));
}

#[test]
fn enforce_with_an_unlisted_mx_sends_nothing_and_defers_with_a_sentence() {
    let Some(site) = site(72, &["mta-sts.unl.test", "rogue.unl.test"]) else {
        return;
    };
    let mx = tls_mx(&site).ip(ip(72, 2)).start();
    let zone = publish(
        Zone::new(),
        72,
        "unl.test",
        "rogue.unl.test",
        ip(72, 2),
        "1",
    );
    let dns = DnsServer::start(zone);
    site.policy.set(
        "mta-sts.unl.test",
        &policy("enforce", &["*.mx.unl.test"], 86_400),
    );
    let dir = direct_campaign(
        &["a@unl.test", "b@unl.test"],
        "",
        &section(&dns, mx.port(), &site),
    );
    run_until_settled(&dir, 0, 2);
    assert_eq!(mx.sessions(), 0, "an unlisted MX was contacted");
    let text = reply_text(&dir, "a@unl.test");
    assert!(
        text.contains("MTA-STS policy that allows its mail only to *.mx.unl.test")
            && text.contains("rogue.unl.test")
            && text.contains("try again later"),
        "{text}"
    );
    assert_eq!(row(&dir, "a@unl.test").state, State::Deferred);
}

#[test]
fn enforce_never_sends_in_clear_nor_to_an_untrusted_certificate() {
    let names = [
        "mta-sts.clear.test",
        "mta-sts.forged.test",
        "mta-sts.named.test",
        "mx.clear.test",
    ];
    let Some(site) = site(73, &names) else {
        return;
    };
    // clear.test's MX offers no STARTTLS; forged.test's offers it with a certificate from a CA
    // nobody trusts; named.test's with the trusted CA's certificate, which is not for its name.
    let plain = SmtpServer::builder().ip(ip(73, 2)).start();
    let other_ca = tempfile::tempdir().expect("dir");
    let untrusted = make_pki(other_ca.path(), &["mx.forged.test"]);
    let forged = SmtpServer::builder()
        .starttls(&untrusted.cert_pem, &untrusted.key_pem)
        .ip(ip(73, 3))
        .port(plain.port())
        .start();
    let misnamed = tls_mx(&site).ip(ip(73, 4)).port(plain.port()).start();
    let zone = publish(
        Zone::new(),
        73,
        "clear.test",
        "mx.clear.test",
        ip(73, 2),
        "1",
    );
    let zone = publish(zone, 73, "forged.test", "mx.forged.test", ip(73, 3), "1");
    let zone = publish(zone, 73, "named.test", "mx.named.test", ip(73, 4), "1");
    let dns = DnsServer::start(zone);
    for domain in ["clear.test", "forged.test", "named.test"] {
        site.policy.set(
            &format!("mta-sts.{domain}"),
            &policy("enforce", &[&format!("mx.{domain}")], 86_400),
        );
    }
    let dir = direct_campaign(
        &["a@clear.test", "b@forged.test", "c@named.test"],
        "",
        &section(&dns, plain.port(), &site),
    );
    run_until_settled(&dir, 0, 3);
    let servers = [&plain, &forged, &misnamed];
    assert_eq!(servers.iter().map(|s| s.received_count()).sum::<usize>(), 0);
    // Nothing of a message reached any server: no MAIL, no RCPT, no DATA.
    for server in servers {
        for session in 1..=server.sessions() {
            let verbs = server.verbs(session);
            assert!(
                !verbs.iter().any(|verb| verb == "MAIL" || verb == "RCPT"),
                "{verbs:?}"
            );
        }
    }
    for email in ["a@clear.test", "b@forged.test", "c@named.test"] {
        let text = reply_text(&dir, email);
        assert!(
            text.contains("requires an encrypted connection with a certificate valid")
                && text.contains("nothing was sent unencrypted"),
            "{email}: {text}"
        );
    }
    assert!(
        reply_text(&dir, "a@clear.test").contains("does not offer STARTTLS"),
        "{}",
        reply_text(&dir, "a@clear.test")
    );
    assert!(
        reply_text(&dir, "b@forged.test").contains("no known CA issued it")
            && reply_text(&dir, "c@named.test").contains("not for this host name"),
        "{} / {}",
        reply_text(&dir, "b@forged.test"),
        reply_text(&dir, "c@named.test")
    );
}

#[test]
fn testing_mode_delivers_and_notes_what_enforcement_would_refuse() {
    let Some(site) = site(74, &["mta-sts.try.test", "mta-sts.list.test"]) else {
        return;
    };
    // try.test lists its MX, which offers no STARTTLS; list.test's MX is not listed at all.
    let mx = SmtpServer::builder().ip(ip(74, 2)).start();
    let zone = publish(Zone::new(), 74, "try.test", "mx.try.test", ip(74, 2), "1");
    let zone = publish(zone, 74, "list.test", "other.list.test", ip(74, 2), "1");
    let dns = DnsServer::start(zone);
    site.policy.set(
        "mta-sts.try.test",
        &policy("testing", &["mx.try.test"], 86_400),
    );
    site.policy.set(
        "mta-sts.list.test",
        &policy("testing", &["mx.list.test"], 86_400),
    );
    let dir = direct_campaign(
        &["a@try.test", "b@list.test"],
        "",
        &section(&dns, mx.port(), &site),
    );
    let engine = Engine::new().expect("engine");
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.counts.sent, 2, "{:?}", last.recent_errors);
    assert_eq!(mx.received_count(), 2);
    let tried = reply_text(&dir, "a@try.test");
    assert!(
        tried.contains("MTA-STS testing: once enforced, mx.try.test would be refused")
            && tried.contains("STARTTLS"),
        "{tried}"
    );
    let unlisted = reply_text(&dir, "b@list.test");
    assert!(
        unlisted.contains("MTA-STS testing") && unlisted.contains("not other.list.test"),
        "{unlisted}"
    );
}

#[test]
fn a_changed_id_fetches_again_and_an_unchanged_one_reuses_the_cache_across_campaigns() {
    let Some(site) = site(75, &["mta-sts.chg.test", "mx.chg.test"]) else {
        return;
    };
    let mx = tls_mx(&site).ip(ip(75, 2)).start();
    let host = "mta-sts.chg.test";
    site.policy
        .set(host, &policy("enforce", &["mx.chg.test"], 86_400));
    let zone = |id: &str| publish(Zone::new(), 75, "chg.test", "mx.chg.test", ip(75, 2), id);
    let dns = DnsServer::start(zone("1"));
    let first = direct_campaign(&["a@chg.test"], "", &section(&dns, mx.port(), &site));
    let engine = Engine::new().expect("engine");
    let run_on_first_db = |dir: &CampaignDir| {
        let campaign = Campaign::load(&dir.campaign).expect("campaign");
        let mut run = engine.start(campaign, &first.db, RunOptions::default());
        finish(&mut run)
    };
    assert_eq!(run_on_first_db(&first).counts.sent, 1);
    assert_eq!(site.policy.fetches(host), 1);
    // Another campaign on the same database, the same id: the cached policy, no fetch.
    let second = direct_campaign(&["b@chg.test"], "", &section(&dns, mx.port(), &site));
    assert_eq!(run_on_first_db(&second).counts.sent, 1);
    assert_eq!(site.policy.fetches(host), 1);
    // The domain publishes a new id and a policy its MX no longer meets: fetched, and obeyed.
    site.policy
        .set(host, &policy("enforce", &["mx2.chg.test"], 86_400));
    let dns = DnsServer::start(zone("2"));
    let third = direct_campaign(&["c@chg.test"], "", &section(&dns, mx.port(), &site));
    let campaign = Campaign::load(&third.campaign).expect("campaign");
    let mut run = engine.start(campaign, &first.db, RunOptions::default());
    wait_for(&run, "the deferral", |p| p.counts.deferred == 1);
    run.stop();
    finish(&mut run);
    assert_eq!(site.policy.fetches(host), 2);
    assert_eq!(mx.received_count(), 2);
    let cached = Store::open(&first.db)
        .expect("store")
        .mta_sts_policy("chg.test")
        .expect("cache");
    assert_eq!(cached.map(|policy| policy.id), Some("2".to_string()));
}

#[test]
fn an_expired_cache_is_fetched_again_and_an_unexpired_one_is_used() {
    let Some(site) = site(76, &["mta-sts.exp.test", "mx.exp.test", "mx.keep.test"]) else {
        return;
    };
    let mx = tls_mx(&site).ip(ip(76, 2)).start();
    let zone = publish(Zone::new(), 76, "exp.test", "mx.exp.test", ip(76, 2), "1");
    let zone = publish(zone, 76, "keep.test", "mx.keep.test", ip(76, 2), "1");
    let dns = DnsServer::start(zone);
    // Only exp.test's host serves a policy; keep.test's would answer 404.
    site.policy.set(
        "mta-sts.exp.test",
        &policy("enforce", &["mx.exp.test"], 86_400),
    );
    let dir = direct_campaign(
        &["a@exp.test", "b@keep.test"],
        "",
        &section(&dns, mx.port(), &site),
    );
    // exp.test's cached policy (same id) expired a day ago and names another MX: obeying it
    // instead of fetching would defer a@exp.test.
    let stale = policy("enforce", &["mx.old.test"], 86_400);
    seed(&dir.db, "exp.test", "1", 2 * 86_400, &stale);
    seed(
        &dir.db,
        "keep.test",
        "1",
        60,
        &policy("enforce", &["mx.keep.test"], 86_400),
    );
    let engine = Engine::new().expect("engine");
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.counts.sent, 2, "{:?}", last.recent_errors);
    assert!(mx.received().iter().all(|message| message.tls));
    assert_eq!(site.policy.fetches("mta-sts.exp.test"), 1);
    assert_eq!(site.policy.fetches("mta-sts.keep.test"), 0);
    let refreshed = Store::open(&dir.db)
        .expect("store")
        .mta_sts_policy("exp.test")
        .expect("cache")
        .expect("cached");
    assert!(refreshed.fetched_at_ms > now_ms() - 60_000);
}

#[test]
fn a_policy_host_that_times_out_leaves_the_cached_policy_in_force_or_none() {
    let Some(site) = site(77, &["mta-sts.cached.test", "mta-sts.fresh.test"]) else {
        return;
    };
    let mx = SmtpServer::builder().ip(ip(77, 2)).start();
    let zone = publish(
        Zone::new(),
        77,
        "cached.test",
        "mx.cached.test",
        ip(77, 2),
        "new",
    );
    let zone = publish(zone, 77, "fresh.test", "mx.fresh.test", ip(77, 2), "1");
    let dns = DnsServer::start(zone);
    for domain in ["cached.test", "fresh.test"] {
        let host = format!("mta-sts.{domain}");
        site.policy
            .set(&host, &policy("enforce", &["mx.elsewhere.test"], 86_400));
        site.policy.delay(&host, Duration::from_secs(30));
    }
    let dir = direct_campaign(
        &["a@cached.test", "b@fresh.test"],
        "",
        &section(&dns, mx.port(), &site),
    );
    // cached.test has an unexpired policy under an older id; fresh.test has none.
    seed(
        &dir.db,
        "cached.test",
        "old",
        60,
        &policy("enforce", &["mx.elsewhere.test"], 86_400),
    );
    let started = Instant::now();
    run_until_settled(&dir, 1, 1);
    // Bounded by mta_sts_timeout_secs (2 s), not the host's 30 s.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(site.policy.fetches("mta-sts.cached.test"), 1);
    // The cached policy held: nothing to its unlisted MX.
    let text = reply_text(&dir, "a@cached.test");
    assert!(
        text.contains("allows its mail only to mx.elsewhere.test"),
        "{text}"
    );
    // Without a cache the policy is treated as absent (RFC 8461 §5.1): delivered.
    assert_eq!(row(&dir, "b@fresh.test").state, State::Sent);
    assert_eq!(mx.rcpt_counts().get("b@fresh.test"), Some(&1));
    assert_eq!(mx.rcpt_counts().get("a@cached.test"), None);
}

#[test]
fn mixed_mode_sends_an_enforce_refused_domain_through_the_relay() {
    let Some(site) = site(78, &["mta-sts.mix.test", "mx.mix.test"]) else {
        return;
    };
    let mx = SmtpServer::builder().ip(ip(78, 2)).start();
    let relay = SmtpServer::start();
    let zone = publish(Zone::new(), 78, "mix.test", "mx.mix.test", ip(78, 2), "1");
    let dns = DnsServer::start(zone);
    site.policy.set(
        "mta-sts.mix.test",
        &policy("enforce", &["mx.mix.test"], 86_400),
    );
    let dir = campaign_with(
        &["a@mix.test".to_string()],
        &[RelayConf::new("backup", relay.port())],
        "mode = \"mixed\"\nretry_delays = [\"1h\"]",
        &section(&dns, mx.port(), &site),
    );
    let engine = Engine::new().expect("engine");
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.counts.sent, 1, "{:?}", last.recent_errors);
    assert_eq!(mx.received_count(), 0, "the MX without STARTTLS got mail");
    assert_eq!(relay.rcpt_counts().get("a@mix.test"), Some(&1));
    assert_eq!(row(&dir, "a@mix.test").route.as_deref(), Some("backup"));
}

#[test]
fn check_names_a_direct_ca_file_that_holds_no_certificate() {
    let dns = DnsServer::start(Zone::new());
    let dir = direct_campaign(&["a@any.test"], "", "");
    let text = std::fs::read_to_string(&dir.campaign).expect("campaign");
    std::fs::write(dir.path().join("not-a-ca.pem"), "hello\n").expect("file");
    std::fs::write(
        &dir.campaign,
        format!(
            "{text}[direct]\nhelo = \"mail.herald.example\"\nnameservers = [\"{}\"]\nca_file = \"not-a-ca.pem\"\n",
            dns.addr()
        ),
    )
    .expect("campaign");
    let campaign = Campaign::load(&dir.campaign).expect("loads");
    let report = herald::app::check(&campaign);
    assert!(
        report.problems.iter().any(|problem| problem
            .starts_with("direct.ca_file: the CA file is not a PEM certificate")
            && problem.contains("not-a-ca.pem")),
        "{:?}",
        report.problems
    );
}

/// `herald send --ignore-dns` of `dir` (its From domain publishes nothing in the test DNS):
/// stderr, where the log goes, and the exit code checked.
fn send_logged(dir: &CampaignDir) -> String {
    let ran = herald(
        &["send", "--ignore-dns"],
        &dir.campaign,
        &dir.db,
        &[],
        Duration::from_secs(120),
    );
    ran.assert_code(0);
    ran.stderr
}

/// The log line saying why `host`'s policy was not fetched.
fn refusal<'a>(log: &'a str, host: &str) -> &'a str {
    log.lines()
        .find(|line| line.contains("MTA-STS policy could not be fetched") && line.contains(host))
        .unwrap_or_else(|| panic!("no log line for {host}:\n{log}"))
}

#[test]
fn a_policy_host_whose_certificate_is_not_trusted_is_not_used_and_the_log_says_why() {
    let Some(site) = site(79, &["mx.trust.test"]) else {
        return;
    };
    // The policy host presents a certificate from a CA that [direct] ca_file does not hold.
    let other_ca = tempfile::tempdir().expect("dir");
    let untrusted = make_pki(other_ca.path(), &["mta-sts.trust.test"]);
    let rogue = PolicyServer::start(ip(79, 10), &untrusted);
    rogue.set(
        "mta-sts.trust.test",
        &policy("enforce", &["mx.trust.test"], 86_400),
    );
    // An MX without STARTTLS: had the policy been used, nothing could be delivered to it.
    let mx = SmtpServer::builder().ip(ip(79, 2)).start();
    let zone = Zone::new()
        .mx("trust.test", 10, "mx.trust.test")
        .a("mx.trust.test", ip(79, 2))
        .a("mta-sts.trust.test", ip(79, 10))
        .txt("_mta-sts.trust.test", "v=STSv1; id=1;");
    let dns = DnsServer::start(zone);
    let dir = direct_campaign(
        &["a@trust.test"],
        "",
        &section_with(&dns, mx.port(), &site.pki.ca_file, rogue.port()),
    );
    let log = send_logged(&dir);
    let line = refusal(&log, "mta-sts.trust.test");
    assert!(
        line.contains("its certificate is not trusted: no known CA issued it"),
        "{line}"
    );
    // Refused at the handshake: the request was never sent, the policy never cached, and the
    // domain treated as having none (RFC 8461 §5.1).
    assert_eq!(rogue.fetches("mta-sts.trust.test"), 0);
    let cached = Store::open(&dir.db)
        .expect("store")
        .mta_sts_policy("trust.test")
        .expect("cache");
    assert!(cached.is_none());
    assert_eq!(mx.rcpt_counts().get("a@trust.test"), Some(&1));
}

#[test]
fn a_policy_too_large_not_text_plain_or_redirected_is_not_used_and_the_log_says_why() {
    let Some(site) = site(
        80,
        &[
            "mta-sts.big.test",
            "mta-sts.html.test",
            "mta-sts.moved.test",
        ],
    ) else {
        return;
    };
    let mx = SmtpServer::builder().ip(ip(80, 2)).start();
    let mut zone = Zone::new();
    for domain in ["big.test", "html.test", "moved.test"] {
        zone = publish(zone, 80, domain, &format!("mx.{domain}"), ip(80, 2), "1");
        // Each policy would be obeyed if read: enforce, its MX listed, and that MX offers no
        // STARTTLS, so a used policy defers the recipient instead of delivering.
        site.policy.set(
            &format!("mta-sts.{domain}"),
            &policy("enforce", &[&format!("mx.{domain}")], 86_400),
        );
    }
    let dns = DnsServer::start(zone);
    // RFC 8461 §3.3: over 64 KB may be refused; unknown keys would otherwise be ignored.
    let mut big = policy("enforce", &["mx.big.test"], 86_400);
    while big.len() <= 70 * 1024 {
        big.push_str("x-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    site.policy.set("mta-sts.big.test", &big);
    // RFC 8461 §3.2: served as text/plain, or it may be a page someone could upload.
    site.policy.media_type("mta-sts.html.test", "text/html");
    // RFC 8461 §3.3: redirects are not followed, even to a host with a valid policy.
    let target = format!(
        "https://mta-sts.big.test:{}/.well-known/mta-sts.txt",
        site.policy.port()
    );
    site.policy.redirect("mta-sts.moved.test", &target);
    let dir = direct_campaign(
        &["a@big.test", "b@html.test", "c@moved.test"],
        "",
        &section(&dns, mx.port(), &site),
    );
    let log = send_logged(&dir);
    for (host, why) in [
        ("mta-sts.big.test", "the answer is larger than 65536 bytes"),
        ("mta-sts.html.test", "is not served as text/plain"),
        ("mta-sts.moved.test", "answered HTTP 301"),
    ] {
        let line = refusal(&log, host);
        assert!(line.contains(why), "{host}: {line}");
    }
    // Each host asked once; the redirect's target only by big.test's own fetch.
    for host in [
        "mta-sts.big.test",
        "mta-sts.html.test",
        "mta-sts.moved.test",
    ] {
        assert_eq!(site.policy.fetches(host), 1, "{host}");
    }
    let store = Store::open(&dir.db).expect("store");
    for (domain, email) in [
        ("big.test", "a@big.test"),
        ("html.test", "b@html.test"),
        ("moved.test", "c@moved.test"),
    ] {
        assert!(
            store.mta_sts_policy(domain).expect("cache").is_none(),
            "{domain}"
        );
        assert_eq!(mx.rcpt_counts().get(email), Some(&1), "{email}");
    }
}

#[test]
fn verified_tls_is_built_once_per_ca_and_never_resumes_a_session() {
    let Some(site) = site(81, &["mx.resume.test"]) else {
        return;
    };
    let ca = std::fs::read(&site.pki.ca_file).expect("ca");
    // One configuration per CA file, shared by every session that trusts it.
    let shared = herald::tls::verified_config(Some(&ca)).expect("config");
    let again = herald::tls::verified_config(Some(&ca)).expect("config");
    let roots_only = herald::tls::verified_config(None).expect("config");
    assert!(Arc::ptr_eq(&shared, &again));
    assert!(!Arc::ptr_eq(&shared, &roots_only));
    // The same configuration with resumption on, to show this server would resume.
    let mut resuming = (*shared).clone();
    resuming.resumption = Resumption::in_memory_sessions(8);
    let acceptor = herald::tls::acceptor(&site.pki.cert_pem, &site.pki.key_pem).expect("acceptor");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (ours, control) = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((ip(81, 2), 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tls.write_all(b"220 hello\r\n").await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        let handshakes = |connector: herald::tls::Connector| async move {
            let mut kinds = Vec::new();
            for _ in 0..3 {
                let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let name = herald::tls::server_name("mx.resume.test").expect("name");
                let mut tls = connector.connect(name, tcp).await.expect("handshake");
                // Reading takes in the tickets a TLS 1.3 server sends after the handshake.
                let mut greeting = Vec::new();
                let _ = tls.read_to_end(&mut greeting).await;
                kinds.push(tls.get_ref().1.handshake_kind());
            }
            kinds
        };
        let ours = handshakes(herald::tls::verified(Some(&ca)).expect("connector")).await;
        let control = handshakes(herald::tls::Connector::from(Arc::new(resuming))).await;
        (ours, control)
    });
    assert_eq!(
        control.last(),
        Some(&Some(HandshakeKind::Resumed)),
        "{control:?}"
    );
    assert!(
        ours.iter().all(|kind| *kind == Some(HandshakeKind::Full)),
        "a later session skipped the certificate check: {ours:?}"
    );
}
