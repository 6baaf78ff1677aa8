//! The deliverability check (issue #23) against records crafted in the test DNS server, asked
//! over real UDP through `[direct] nameservers`: SPF (nested includes, an 11-lookup chain,
//! `-all` leaving out the relay, `+all`), DKIM (a record split in two strings, another key,
//! Ed25519), DMARC (only at the organizational domain, `adkim=s` with a subdomain `d=`), a PTR
//! that does not resolve back, and what `herald check` and `herald send` do with the findings:
//! red stops a send, `--ignore-dns` goes on, an unreachable DNS is amber and stops nothing.
//! Also each decision's level and words: RSA keys under 2,048 and 1,024 bits, a HELO name that
//! is not the PTR name, SPF softfail/neutral/none, the VERP return path's domain as the
//! envelope domain, DMARC aligned through SPF alone, and a hosted relay's documented include.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::cli_run::herald;
use crate::support::dkim::make_key;
use crate::support::dns_server::{DnsServer, Zone};
use crate::support::smtp_server::SmtpServer;
use herald::campaign::Campaign;
use herald::dnsauth::{self, Finding, Level, Mechanism};

const RELAY_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);

/// A campaign folder: From `from`, sending through `relay_host`, with more `sections` (e.g.
/// `[dkim]`), asking the test DNS at `dns`.
fn campaign(dir: &Path, from: &str, relay_host: &str, dns: SocketAddr, sections: &str) -> PathBuf {
    campaign_on_port(dir, from, relay_host, 2525, dns, sections)
}

fn campaign_on_port(
    dir: &Path,
    from: &str,
    relay_host: &str,
    port: u16,
    dns: SocketAddr,
    sections: &str,
) -> PathBuf {
    let relay = format!(
        "[[relay]]\nname = \"primary\"\nhost = \"{relay_host}\"\nport = {port}\nsecurity = \"none\"\n"
    );
    write_campaign(dir, from, "relay", &relay, sections, "", dns)
}

/// A direct-mode campaign greeting as `helo` from `public_ip`.
fn direct_campaign(dir: &Path, helo: &str, public_ip: &str, dns: SocketAddr) -> PathBuf {
    let direct = format!("helo = \"{helo}\"\npublic_ip = \"{public_ip}\"\n");
    write_campaign(dir, "news@acme.test", "direct", "", "", &direct, dns)
}

fn write_campaign(
    dir: &Path,
    from: &str,
    mode: &str,
    relay: &str,
    sections: &str,
    direct: &str,
    dns: SocketAddr,
) -> PathBuf {
    std::fs::write(
        dir.join("list.csv"),
        "email\nann@example.com\nbob@example.com\n",
    )
    .unwrap();
    std::fs::write(dir.join("body.txt"), "Hello {{ email }}\n").unwrap();
    let text = format!(
        "[message]\nfrom = \"Acme News <{from}>\"\nsubject = \"Hi\"\ntext = \"body.txt\"\n\
         unsubscribe = \"https://acme.test/u?e={{{{ email }}}}\"\n\n\
         [recipients]\ncsv = \"list.csv\"\n\n[delivery]\nmode = \"{mode}\"\nretry_delays = [\"1s\"]\n\n\
         {relay}\n{sections}\n[direct]\n{direct}nameservers = [\"{dns}\"]\ndns_timeout_secs = 1\n"
    );
    let path = dir.join("campaign.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn findings(path: &Path) -> Vec<Finding> {
    let campaign = Campaign::load(path).unwrap();
    dnsauth::check(&campaign)
}

fn only(findings: &[Finding], mechanism: Mechanism) -> &Finding {
    let found: Vec<&Finding> = findings
        .iter()
        .filter(|finding| finding.mechanism == mechanism)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {mechanism:?} finding expected: {findings:#?}"
    );
    found[0]
}

fn dkim_section(dir: &Path, domain: &str, pem: &[u8]) -> String {
    std::fs::write(dir.join("dkim.pem"), pem).unwrap();
    format!("[dkim]\ndomain = \"{domain}\"\nselector = \"s1\"\nprivate_key = \"dkim.pem\"\n")
}

#[test]
fn spf_through_nested_includes_passes_and_each_name_is_asked_once() {
    let dns = DnsServer::start(
        Zone::new()
            .txt("acme.test", "v=spf1 include:_spf.acme.test -all")
            .txt("_spf.acme.test", "v=spf1 include:_relays.acme.test -all")
            .txt("_relays.acme.test", "v=spf1 ip4:192.0.2.20 -all")
            .a("relay.acme.test", RELAY_IP),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = campaign(
        dir.path(),
        "news@acme.test",
        "relay.acme.test",
        dns.addr(),
        "",
    );
    let found = findings(&path);
    let spf = only(&found, Mechanism::Spf);
    assert_eq!(spf.level, Level::Green, "{spf:#?}");
    assert!(spf.summary.starts_with("pass"), "{spf:#?}");
    assert!(spf.subject.contains("192.0.2.20"), "{spf:#?}");
    assert_eq!(
        spf.record.as_deref(),
        Some("v=spf1 include:_spf.acme.test -all")
    );
    // The record shown and the record evaluated are one lookup (the resolver's cache).
    assert_eq!(dns.queries("acme.test", "TXT"), 1);
    assert_eq!(dns.queries("_relays.acme.test", "TXT"), 1);
}

#[test]
fn spf_with_eleven_lookups_is_a_permerror_and_ten_still_pass() {
    let mut zone = Zone::new().a("relay.acme.test", RELAY_IP);
    // ten.test's record includes a chain of 10 names, eleven.test's a chain of 11: RFC 7208
    // §4.6.4 allows 10 lookups.
    for (top, length) in [("ten.test", 10), ("eleven.test", 11)] {
        zone = zone.txt(top, &format!("v=spf1 include:l1.{top} -all"));
        for n in 1..length {
            zone = zone.txt(
                &format!("l{n}.{top}"),
                &format!("v=spf1 include:l{}.{top} -all", n + 1),
            );
        }
        zone = zone.txt(&format!("l{length}.{top}"), "v=spf1 ip4:192.0.2.20 -all");
    }
    let dns = DnsServer::start(zone);
    let ten = tempfile::tempdir().unwrap();
    let path = campaign(
        ten.path(),
        "news@ten.test",
        "relay.acme.test",
        dns.addr(),
        "",
    );
    let spf = only(&findings(&path), Mechanism::Spf).clone();
    assert_eq!(spf.level, Level::Green, "{spf:#?}");

    let eleven = tempfile::tempdir().unwrap();
    let path = campaign(
        eleven.path(),
        "news@eleven.test",
        "relay.acme.test",
        dns.addr(),
        "",
    );
    let spf = only(&findings(&path), Mechanism::Spf).clone();
    assert_eq!(spf.level, Level::Red, "{spf:#?}");
    assert!(spf.summary.starts_with("permerror"), "{spf:#?}");
    assert!(spf.summary.contains("more than 10"), "{spf:#?}");
}

#[test]
fn spf_minus_all_leaving_out_the_relay_is_red_with_the_record_to_publish() {
    let dns = DnsServer::start(
        Zone::new()
            .txt("acme.test", "v=spf1 ip4:192.0.2.99 -all")
            .a("relay.acme.test", RELAY_IP),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = campaign(
        dir.path(),
        "news@acme.test",
        "relay.acme.test",
        dns.addr(),
        "",
    );
    let found = findings(&path);
    let spf = only(&found, Mechanism::Spf);
    assert_eq!(spf.level, Level::Red, "{spf:#?}");
    assert!(spf.summary.starts_with("fail"), "{spf:#?}");
    let fix = spf.fix.as_deref().unwrap();
    assert!(
        fix.contains("v=spf1 ip4:192.0.2.99 ip4:192.0.2.20 -all"),
        "{fix}"
    );
    assert_eq!(dnsauth::blocking(&found).count(), 1);
}

#[test]
fn spf_plus_all_passes_but_is_amber() {
    let dns = DnsServer::start(
        Zone::new()
            .txt("acme.test", "v=spf1 +all")
            .a("relay.acme.test", RELAY_IP),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = campaign(
        dir.path(),
        "news@acme.test",
        "relay.acme.test",
        dns.addr(),
        "",
    );
    let spf = only(&findings(&path), Mechanism::Spf).clone();
    assert_eq!(spf.level, Level::Amber, "{spf:#?}");
    assert!(spf.summary.contains("+all"), "{spf:#?}");
    assert!(
        spf.fix
            .as_deref()
            .unwrap()
            .contains("v=spf1 ip4:192.0.2.20 ~all"),
        "{spf:#?}"
    );
}

#[test]
fn dkim_record_split_in_two_strings_holds_the_campaigns_key() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, kind, p) = make_key(dir.path(), "pkcs1");
    let record = format!("v=DKIM1; k={kind}; p={p}");
    let (first, second) = record.split_at(record.len() / 2);
    let dns = DnsServer::start(
        Zone::new()
            .txt_strings("s1._domainkey.acme.test", &[first, second])
            .txt("acme.test", "v=spf1 ip4:192.0.2.20 -all")
            .txt("_dmarc.acme.test", "v=DMARC1; p=reject")
            .a("relay.acme.test", RELAY_IP),
    );
    let dkim = dkim_section(dir.path(), "acme.test", &pem);
    let path = campaign(
        dir.path(),
        "news@acme.test",
        "relay.acme.test",
        dns.addr(),
        &dkim,
    );
    let found = findings(&path);
    let dkim = only(&found, Mechanism::Dkim);
    assert_eq!(dkim.level, Level::Green, "{dkim:#?}");
    assert!(dkim.summary.contains("RSA 2048 bits"), "{dkim:#?}");
    assert_eq!(dkim.record.as_deref(), Some(record.as_str()));
    let dmarc = only(&found, Mechanism::Dmarc);
    assert_eq!(dmarc.level, Level::Green, "{dmarc:#?}");
    assert!(dmarc.summary.contains("DKIM (d=acme.test"), "{dmarc:#?}");
    assert!(found.iter().all(|f| f.level == Level::Green), "{found:#?}");
}

#[test]
fn dkim_record_with_another_key_is_red_and_shows_the_right_record() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, _, ours) = make_key(dir.path(), "pkcs1");
    let (_, kind, other) = make_key(dir.path(), "pkcs8");
    let dns = DnsServer::start(
        Zone::new()
            .txt(
                "s1._domainkey.acme.test",
                &format!("v=DKIM1; k={kind}; p={other}"),
            )
            .txt("_dmarc.acme.test", "v=DMARC1; p=quarantine")
            .a("relay.acme.test", RELAY_IP),
    );
    let dkim = dkim_section(dir.path(), "acme.test", &pem);
    let path = campaign(
        dir.path(),
        "news@acme.test",
        "relay.acme.test",
        dns.addr(),
        &dkim,
    );
    let found = findings(&path);
    let dkim = only(&found, Mechanism::Dkim);
    assert_eq!(dkim.level, Level::Red, "{dkim:#?}");
    assert!(dkim.summary.contains("different key"), "{dkim:#?}");
    // The fix is the record of the campaign's own key, in the form openssl -pubout writes.
    assert!(
        dkim.fix
            .as_deref()
            .unwrap()
            .ends_with(&format!("v=DKIM1; k=rsa; p={ours}")),
        "{dkim:#?}"
    );
    // With the key wrong and no SPF record, quarantine applies: red too.
    let dmarc = only(&found, Mechanism::Dmarc);
    assert_eq!(dmarc.level, Level::Red, "{dmarc:#?}");
    assert!(dmarc.summary.contains("spam"), "{dmarc:#?}");
}

#[test]
fn dkim_ed25519_key_matches_but_is_amber() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, kind, p) = make_key(dir.path(), "ed25519");
    let dns = DnsServer::start(
        Zone::new()
            .txt(
                "s1._domainkey.acme.test",
                &format!("v=DKIM1; k={kind}; p={p}"),
            )
            .a("relay.acme.test", RELAY_IP),
    );
    let dkim = dkim_section(dir.path(), "acme.test", &pem);
    let path = campaign(
        dir.path(),
        "news@acme.test",
        "relay.acme.test",
        dns.addr(),
        &dkim,
    );
    let dkim = only(&findings(&path), Mechanism::Dkim).clone();
    assert_eq!(dkim.level, Level::Amber, "{dkim:#?}");
    assert!(
        dkim.summary.contains("campaign's key (Ed25519)"),
        "{dkim:#?}"
    );
}

#[test]
fn dmarc_found_only_at_the_organizational_domain_takes_sp() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, kind, p) = make_key(dir.path(), "pkcs1");
    let dns = DnsServer::start(
        Zone::new()
            .txt("_dmarc.acme.test", "v=DMARC1; p=reject; sp=quarantine")
            .txt(
                "s1._domainkey.acme.test",
                &format!("v=DKIM1; k={kind}; p={p}"),
            )
            .a("relay.acme.test", RELAY_IP),
    );
    let dkim = dkim_section(dir.path(), "acme.test", &pem);
    let path = campaign(
        dir.path(),
        "news@mail.acme.test",
        "relay.acme.test",
        dns.addr(),
        &dkim,
    );
    let found = findings(&path);
    let dmarc = only(&found, Mechanism::Dmarc);
    assert_eq!(dmarc.level, Level::Green, "{dmarc:#?}");
    assert_eq!(dmarc.subject, "_dmarc.acme.test");
    assert!(
        dmarc
            .summary
            .starts_with("p=quarantine (found at the organizational domain acme.test)"),
        "{dmarc:#?}"
    );
    assert!(
        dmarc.summary.contains("DKIM (d=acme.test, relaxed)"),
        "{dmarc:#?}"
    );
    // The From domain's own name was asked first (RFC 7489 §6.6.3).
    assert_eq!(dns.queries("_dmarc.mail.acme.test", "TXT"), 1);
}

#[test]
fn dmarc_strict_dkim_alignment_refuses_a_subdomain_d() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, kind, p) = make_key(dir.path(), "pkcs1");
    let dns = DnsServer::start(
        Zone::new()
            .txt("_dmarc.acme.test", "v=DMARC1; p=reject; adkim=s")
            .txt(
                "s1._domainkey.mail.acme.test",
                &format!("v=DKIM1; k={kind}; p={p}"),
            )
            .a("relay.acme.test", RELAY_IP),
    );
    let dkim = dkim_section(dir.path(), "mail.acme.test", &pem);
    let path = campaign(
        dir.path(),
        "news@acme.test",
        "relay.acme.test",
        dns.addr(),
        &dkim,
    );
    let found = findings(&path);
    assert_eq!(
        only(&found, Mechanism::Dkim).level,
        Level::Green,
        "{found:#?}"
    );
    let dmarc = only(&found, Mechanism::Dmarc);
    assert_eq!(dmarc.level, Level::Red, "{dmarc:#?}");
    assert!(
        dmarc
            .summary
            .contains("DKIM d=mail.acme.test does not match acme.test under adkim=s"),
        "{dmarc:#?}"
    );
    assert!(dmarc.summary.contains("refuse"), "{dmarc:#?}");
    assert!(
        dmarc
            .fix
            .as_deref()
            .unwrap()
            .contains("[dkim] domain = \"acme.test\""),
        "{dmarc:#?}"
    );
}

#[test]
fn direct_mode_ptr_that_does_not_resolve_back_is_red() {
    let dns = DnsServer::start(
        Zone::new()
            .ptr(Ipv4Addr::new(192, 0, 2, 10), "mail.acme.test")
            .a("mail.acme.test", Ipv4Addr::new(192, 0, 2, 11))
            .ptr(Ipv4Addr::new(192, 0, 2, 12), "mx.acme.test")
            .a("mx.acme.test", Ipv4Addr::new(192, 0, 2, 12))
            .txt("acme.test", "v=spf1 ip4:192.0.2.10 ip4:192.0.2.12 -all"),
    );
    let broken = tempfile::tempdir().unwrap();
    let path = direct_campaign(broken.path(), "mail.acme.test", "192.0.2.10", dns.addr());
    let found = findings(&path);
    let ptr = only(&found, Mechanism::Ptr);
    assert_eq!(ptr.level, Level::Red, "{ptr:#?}");
    assert!(
        ptr.summary
            .contains("mail.acme.test resolves to 192.0.2.11"),
        "{ptr:#?}"
    );
    // SPF is evaluated for this machine's address in direct mode.
    let spf = only(&found, Mechanism::Spf);
    assert_eq!(spf.level, Level::Green, "{spf:#?}");
    assert!(
        spf.subject
            .contains("192.0.2.10 (this machine, direct mode)"),
        "{spf:#?}"
    );

    let confirmed = tempfile::tempdir().unwrap();
    let path = direct_campaign(confirmed.path(), "mx.acme.test", "192.0.2.12", dns.addr());
    let ptr = only(&findings(&path), Mechanism::Ptr).clone();
    assert_eq!(ptr.level, Level::Green, "{ptr:#?}");
}

#[test]
fn red_findings_stop_a_send_and_ignore_dns_goes_on() {
    let smtp = SmtpServer::start();
    let dns = DnsServer::start(Zone::new().txt("acme.test", "v=spf1 ip4:192.0.2.99 -all"));
    let dir = tempfile::tempdir().unwrap();
    let path = campaign_on_port(
        dir.path(),
        "news@acme.test",
        "127.0.0.1",
        smtp.port(),
        dns.addr(),
        "",
    );
    let db = dir.path().join("herald.db");
    let limit = Duration::from_secs(60);
    let ran = herald(&["send"], &path, &db, &[], limit);
    ran.assert_code(1);
    assert!(
        ran.stdout.contains("problem: SPF acme.test for 127.0.0.1"),
        "{}",
        ran.all()
    );
    assert!(ran.stderr.contains("nothing was sent"), "{}", ran.all());
    assert_eq!(smtp.received_count(), 0);

    let check = herald(&["check"], &path, &db, &[], limit);
    check.assert_code(1);
    assert!(
        check.stdout.contains("fix: add ip4:127.0.0.1"),
        "{}",
        check.all()
    );

    let ran = herald(&["send", "--ignore-dns"], &path, &db, &[], limit);
    ran.assert_code(0);
    assert_eq!(smtp.received_count(), 2, "{}", ran.all());
}

#[test]
fn unreachable_dns_is_amber_and_the_send_goes_on() {
    let smtp = SmtpServer::start();
    let dns = DnsServer::silent();
    let dir = tempfile::tempdir().unwrap();
    let path = campaign_on_port(
        dir.path(),
        "news@acme.test",
        "127.0.0.1",
        smtp.port(),
        dns.addr(),
        "",
    );
    let campaign = Campaign::load(&path).unwrap();
    let found = dnsauth::check(&campaign);
    assert!(found.iter().all(|f| f.level == Level::Amber), "{found:#?}");
    for mechanism in [Mechanism::Spf, Mechanism::Dmarc] {
        let finding = only(&found, mechanism);
        assert!(
            finding.summary.starts_with("could not check"),
            "{finding:#?}"
        );
    }
    let db = dir.path().join("herald.db");
    let ran = herald(&["send"], &path, &db, &[], Duration::from_secs(60));
    ran.assert_code(0);
    assert!(ran.stdout.contains("warning: SPF"), "{}", ran.all());
    assert_eq!(smtp.received_count(), 2, "{}", ran.all());
}

#[test]
fn check_says_one_line_per_mechanism_when_dns_is_right_and_json_has_the_findings() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, kind, p) = make_key(dir.path(), "pkcs1");
    let dns = DnsServer::start(
        Zone::new()
            .txt("acme.test", "v=spf1 ip4:127.0.0.1 -all")
            .txt(
                "s1._domainkey.acme.test",
                &format!("v=DKIM1; k={kind}; p={p}"),
            )
            .txt("_dmarc.acme.test", "v=DMARC1; p=reject; adkim=s; aspf=s"),
    );
    let dkim = dkim_section(dir.path(), "acme.test", &pem);
    let path = campaign(dir.path(), "news@acme.test", "127.0.0.1", dns.addr(), &dkim);
    let db = dir.path().join("herald.db");
    let limit = Duration::from_secs(60);
    let ran = herald(&["check"], &path, &db, &[], limit);
    ran.assert_code(0);
    for mechanism in ["SPF", "DKIM", "DMARC"] {
        let lines = ran
            .stdout
            .lines()
            .filter(|line| line.starts_with(&format!("ok: {mechanism} ")))
            .count();
        assert_eq!(lines, 1, "{mechanism}\n{}", ran.all());
    }
    assert!(!ran.stdout.contains("fix:"), "{}", ran.all());

    let ran = herald(&["check", "--json"], &path, &db, &[], limit);
    ran.assert_code(0);
    let object: serde_json::Value = serde_json::from_str(ran.stdout.trim()).unwrap();
    assert_eq!(object["ok"], true);
    let dns_findings = object["dns"].as_array().unwrap();
    assert_eq!(dns_findings.len(), 3, "{object}");
    for finding in dns_findings {
        assert_eq!(finding["level"], "green", "{finding}");
    }
    assert_eq!(dns_findings[2]["mechanism"], "dmarc");
    assert_eq!(
        dns_findings[2]["record"],
        "v=DMARC1; p=reject; adkim=s; aspf=s"
    );
}

#[test]
fn dkim_rsa_keys_under_2048_bits_are_amber_and_under_1024_red() {
    // Herald refuses to sign with such keys, so the published record's size is the finding.
    for (kind, bits, level, word) in [
        ("rsa1024", 1024, Level::Amber, "weak"),
        ("rsa512", 512, Level::Red, "ignore"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (pem, k, p) = make_key(dir.path(), kind);
        let dns = DnsServer::start(
            Zone::new()
                .txt("s1._domainkey.acme.test", &format!("v=DKIM1; k={k}; p={p}"))
                .a("relay.acme.test", RELAY_IP),
        );
        let dkim = dkim_section(dir.path(), "acme.test", &pem);
        let path = campaign(
            dir.path(),
            "news@acme.test",
            "relay.acme.test",
            dns.addr(),
            &dkim,
        );
        let dkim = only(&findings(&path), Mechanism::Dkim).clone();
        assert_eq!(dkim.level, level, "{kind}: {dkim:#?}");
        assert!(
            dkim.summary.contains(&format!("RSA {bits} bits")) && dkim.summary.contains(word),
            "{kind}: {dkim:#?}"
        );
        assert!(
            dkim.fix
                .as_deref()
                .unwrap_or_default()
                .contains("2,048 bits"),
            "{kind}: {dkim:#?}"
        );
    }
}

#[test]
fn direct_mode_helo_other_than_the_ptr_name_is_amber() {
    let dns = DnsServer::start(
        Zone::new()
            .ptr(Ipv4Addr::new(192, 0, 2, 12), "mx.acme.test")
            .a("mx.acme.test", Ipv4Addr::new(192, 0, 2, 12))
            .txt("acme.test", "v=spf1 ip4:192.0.2.12 -all"),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = direct_campaign(dir.path(), "mail.acme.test", "192.0.2.12", dns.addr());
    let ptr = only(&findings(&path), Mechanism::Ptr).clone();
    assert_eq!(ptr.level, Level::Amber, "{ptr:#?}");
    assert!(
        ptr.summary.contains("greets receivers as mail.acme.test"),
        "{ptr:#?}"
    );
    assert_eq!(
        ptr.fix.as_deref(),
        Some("set [direct] helo = \"mx.acme.test\"")
    );
}

#[test]
fn spf_softfail_neutral_and_none_are_amber_and_stop_nothing() {
    for (record, name, word) in [
        (Some("v=spf1 ip4:192.0.2.99 ~all"), "softfail", "suspicious"),
        (
            Some("v=spf1 ip4:192.0.2.99 ?all"),
            "neutral",
            "no SPF credit",
        ),
        (None, "none", "publishes no SPF record"),
    ] {
        let mut zone = Zone::new().a("relay.acme.test", RELAY_IP);
        if let Some(record) = record {
            zone = zone.txt("acme.test", record);
        }
        let dns = DnsServer::start(zone);
        let dir = tempfile::tempdir().unwrap();
        let path = campaign(
            dir.path(),
            "news@acme.test",
            "relay.acme.test",
            dns.addr(),
            "",
        );
        let found = findings(&path);
        let spf = only(&found, Mechanism::Spf);
        assert_eq!(spf.level, Level::Amber, "{name}: {spf:#?}");
        assert!(
            spf.summary.starts_with(&format!("{name}:")) && spf.summary.contains(word),
            "{name}: {spf:#?}"
        );
        assert!(
            spf.fix
                .as_deref()
                .unwrap_or_default()
                .contains("ip4:192.0.2.20"),
            "{name}: {spf:#?}"
        );
        assert_eq!(dnsauth::blocking(&found).count(), 0, "{name}: {found:#?}");
    }
}

/// `[bounces]` with a VERP return path at `return_path` (the mailbox is never reached here;
/// PATH stands in for the password variable, which must be set).
fn verp_section(return_path: &str) -> String {
    format!(
        "[bounces]\nhost = \"imap.acme.test\"\nusername = \"bounces\"\npassword_env = \"PATH\"\n\
         return_path = \"{return_path}\"\n"
    )
}

#[test]
fn spf_is_evaluated_for_the_verp_return_path_domain_not_the_from_domain() {
    let zone = |dmarc: &str| {
        Zone::new()
            // The From domain's record would fail the relay; the envelope domain's passes it.
            .txt("acme.test", "v=spf1 -all")
            .txt("bounce.acme.test", "v=spf1 ip4:192.0.2.20 -all")
            .txt("_dmarc.acme.test", dmarc)
            .a("relay.acme.test", RELAY_IP)
    };
    let dns = DnsServer::start(zone("v=DMARC1; p=reject"));
    let dir = tempfile::tempdir().unwrap();
    let verp = verp_section("bounces@bounce.acme.test");
    let path = campaign(
        dir.path(),
        "news@acme.test",
        "relay.acme.test",
        dns.addr(),
        &verp,
    );
    let found = findings(&path);
    let spf = only(&found, Mechanism::Spf);
    assert_eq!(spf.level, Level::Green, "{spf:#?}");
    assert!(
        spf.subject.starts_with("bounce.acme.test for 192.0.2.20"),
        "{spf:#?}"
    );
    assert_eq!(spf.record.as_deref(), Some("v=spf1 ip4:192.0.2.20 -all"));
    assert_eq!(dns.queries("acme.test", "TXT"), 0, "the From domain's SPF");
    // Relaxed alignment: bounce.acme.test and acme.test share an organizational domain.
    let dmarc = only(&found, Mechanism::Dmarc);
    assert_eq!(dmarc.level, Level::Green, "{dmarc:#?}");
    assert!(
        dmarc.summary.contains("SPF (bounce.acme.test, relaxed)"),
        "{dmarc:#?}"
    );

    // Strict SPF alignment wants the From domain itself in MAIL FROM.
    let dns = DnsServer::start(zone("v=DMARC1; p=reject; aspf=s"));
    let dir = tempfile::tempdir().unwrap();
    let path = campaign(
        dir.path(),
        "news@acme.test",
        "relay.acme.test",
        dns.addr(),
        &verp,
    );
    let dmarc = only(&findings(&path), Mechanism::Dmarc).clone();
    assert_eq!(dmarc.level, Level::Red, "{dmarc:#?}");
    assert!(
        dmarc
            .summary
            .contains("the envelope domain bounce.acme.test does not match acme.test under aspf=s"),
        "{dmarc:#?}"
    );
}

#[test]
fn dmarc_aligns_through_spf_alone_when_the_campaign_does_not_sign() {
    let dns = DnsServer::start(
        Zone::new()
            .txt("acme.test", "v=spf1 ip4:192.0.2.20 -all")
            .txt("_dmarc.acme.test", "v=DMARC1; p=reject")
            .a("relay.acme.test", RELAY_IP),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = campaign(
        dir.path(),
        "news@acme.test",
        "relay.acme.test",
        dns.addr(),
        "",
    );
    let found = findings(&path);
    assert_eq!(only(&found, Mechanism::Dkim).level, Level::Amber);
    let dmarc = only(&found, Mechanism::Dmarc);
    assert_eq!(dmarc.level, Level::Green, "{dmarc:#?}");
    assert!(
        dmarc
            .summary
            .ends_with("this mail aligns through SPF (acme.test, relaxed)"),
        "{dmarc:#?}"
    );
}

#[test]
fn a_hosted_relay_left_out_of_spf_is_told_the_include_its_provider_documents() {
    let dns = DnsServer::start(
        Zone::new()
            .txt("acme.test", "v=spf1 ip4:192.0.2.99 -all")
            .a("smtp.office365.com", RELAY_IP),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = campaign(
        dir.path(),
        "news@acme.test",
        "smtp.office365.com",
        dns.addr(),
        "",
    );
    let found = findings(&path);
    let spf = only(&found, Mechanism::Spf);
    assert_eq!(spf.level, Level::Red, "{spf:#?}");
    assert!(spf.summary.starts_with("fail"), "{spf:#?}");
    let fix = spf.fix.as_deref().unwrap_or_default();
    assert!(
        fix.contains("include:spf.protection.outlook.com (what Microsoft 365 documents")
            && fix.contains("v=spf1 ip4:192.0.2.99 include:spf.protection.outlook.com -all"),
        "{fix}"
    );
    // A Microsoft 365 mailbox also has a daily limit, which a bulk campaign meets quickly.
    let provider = only(&found, Mechanism::Provider);
    assert_eq!(provider.level, Level::Amber, "{provider:#?}");
    assert!(provider.summary.contains("10,000"), "{provider:#?}");
}
