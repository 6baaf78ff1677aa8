//! The "Deliverability (DNS)" section of Publish (issue #23), driven headless through
//! egui_kittest against the test DNS server (asked over real UDP through `[direct]
//! nameservers`) and the scriptable SMTP server: the findings are on screen before Start is
//! pressed and before anything is sent, green ones and a red one with the record seen and the
//! fix; "Check again" reads the DNS again after a record changed; a save asks again (the From
//! domain decides what is checked); and another campaign never shows the first one's findings.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::campaign::{CampaignDir, RelayConf, addresses, campaign_with};
use crate::support::dkim::make_key;
use crate::support::dns_server::{DnsServer, Zone};
use crate::support::smtp_server::SmtpServer;
use crate::support::window::{wait_until, window};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use herald::ui::{HeraldApp, Remembered};

/// A campaign From `news@DOMAIN` through the SMTP server on `port` (at 127.0.0.1), signing
/// with `pem` as `s1._domainkey.DOMAIN`, whose DNS is `dns`.
fn dns_campaign(port: u16, domain: &str, pem: &[u8], dns: &DnsServer) -> CampaignDir {
    let sections = format!(
        "[dkim]\ndomain = \"{domain}\"\nselector = \"s1\"\nprivate_key = \"dkim.pem\"\n\n\
         [direct]\nnameservers = [\"{}\"]\ndns_timeout_secs = 1\n",
        dns.addr()
    );
    let dir = campaign_with(
        &addresses(2),
        &[RelayConf::new("main", port)],
        "",
        &sections,
    );
    std::fs::write(dir.path().join("dkim.pem"), pem).unwrap();
    set_from(&dir.campaign, &format!("news@{domain}"));
    dir
}

fn set_from(campaign: &Path, address: &str) {
    let text = std::fs::read_to_string(campaign).unwrap();
    let text = text.replace("sender@herald.example", address);
    std::fs::write(campaign, text).unwrap();
}

/// SPF allowing the relay (127.0.0.1), a DMARC record, and the DKIM record holding `key`.
fn zone(domain: &str, key: &str) -> Zone {
    Zone::new()
        .txt(domain, "v=spf1 ip4:127.0.0.1 -all")
        .txt(&format!("_dmarc.{domain}"), "v=DMARC1; p=none")
        .txt(
            &format!("s1._domainkey.{domain}"),
            &format!("v=DKIM1; k=rsa; p={key}"),
        )
}

fn shows(harness: &Harness<'_, HeraldApp>, text: &str) -> bool {
    harness.query_all_by_label_contains(text).next().is_some()
}

/// Steps frames until a label containing `text` is drawn (the accessibility tree is the last
/// frame's), failing within a minute.
fn wait_for_label(harness: &mut Harness<'_, HeraldApp>, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !shows(harness, text) {
        assert!(
            Instant::now() < deadline,
            "never saw {text:?}; status: {}; problems: {:?}",
            harness.state().status(),
            harness.state().problems()
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(15));
    }
}

/// Waits until the check under way has answered ("Check again" is drawn enabled again).
fn wait_for_check(harness: &mut Harness<'_, HeraldApp>) {
    wait_for_label(harness, "Check again");
    let deadline = Instant::now() + Duration::from_secs(60);
    while shows(harness, "Checking DNS") {
        assert!(Instant::now() < deadline, "the DNS check never answered");
        harness.step();
        std::thread::sleep(Duration::from_millis(15));
    }
    harness.run_steps(2);
}

fn open_publish(harness: &mut Harness<'_, HeraldApp>) {
    wait_until(harness, "the campaign to open", |app| {
        app.status().contains("valid") || !app.problems().is_empty()
    });
    harness.get_by_label("Publish").click_accesskit();
    harness.run_steps(2);
}

/// Issue #23: "a panel on Publish: each finding green, amber or red with the record seen and
/// the fix", before Start. Opening Publish shows SPF and DMARC green and the DKIM record that
/// holds another key red, with that record and the one to publish, and nothing is sent. Once
/// the record is fixed, "Check again" turns it green and the old record leaves the screen.
#[test]
fn publish_shows_the_dns_findings_before_start_and_check_again_reads_them_again() {
    let keys = tempfile::tempdir().unwrap();
    let (pem, _, ours) = make_key(keys.path(), "pkcs1");
    let (_, _, other) = make_key(keys.path(), "pkcs8");
    let dns = DnsServer::start(zone("acme.test", &other));
    let server = SmtpServer::start();
    let dir = dns_campaign(server.port(), "acme.test", &pem, &dns);
    let mut harness = window(&dir.db, Some(dir.campaign.clone()), Remembered::default());
    open_publish(&mut harness);

    wait_for_label(&mut harness, "Deliverability (DNS)");
    wait_for_label(&mut harness, "Problem  DKIM s1._domainkey.acme.test");
    wait_for_check(&mut harness);
    assert!(
        shows(
            &harness,
            "OK  SPF acme.test for 127.0.0.1 (relay \"main\"): pass"
        ),
        "SPF is green"
    );
    assert!(shows(&harness, "OK  DMARC"), "DMARC p=none is green");
    assert!(
        shows(&harness, &format!("Record seen: v=DKIM1; k=rsa; p={other}")),
        "the record seen is on screen"
    );
    assert!(
        shows(
            &harness,
            &format!(
                "Fix: publish this record at s1._domainkey.acme.test instead: v=DKIM1; k=rsa; p={ours}"
            )
        ),
        "the record to publish is on screen"
    );
    assert!(
        shows(&harness, "1 problem(s)"),
        "the tally counts the red one"
    );
    // Green findings show no record or fix.
    assert!(!shows(&harness, "Record seen: v=spf1"));
    // Seen before Start: nothing was started and nothing reached the relay.
    assert!(harness.state().progress().is_none());
    assert!(harness.state().before_start().is_none());
    assert_eq!(server.received_count(), 0);
    let asked = dns.queries("s1._domainkey.acme.test", "TXT");
    assert!(asked >= 1, "the findings came from the DNS server");

    // The key record is fixed; the panel reads it again only when asked.
    dns.replace(zone("acme.test", &ours));
    harness.run_steps(3);
    assert!(
        shows(&harness, "Problem  DKIM"),
        "no new ask without a reason"
    );
    harness.get_by_label("Check again").click_accesskit();
    wait_for_label(&mut harness, "OK  DKIM s1._domainkey.acme.test");
    wait_for_check(&mut harness);
    assert!(dns.queries("s1._domainkey.acme.test", "TXT") > asked);
    assert!(!shows(&harness, "Problem  DKIM"));
    assert!(!shows(&harness, &format!("p={other}")));
    assert!(shows(&harness, "0 problem(s)"));
    assert_eq!(server.received_count(), 0);
}

/// A save may change what decides the findings (here the From domain): the panel asks again,
/// and the old domain's findings leave the screen.
#[test]
fn a_save_reads_the_dns_again() {
    let keys = tempfile::tempdir().unwrap();
    let (pem, _, ours) = make_key(keys.path(), "pkcs1");
    let dns = DnsServer::start(zone("acme.test", &ours).txt("beta.test", "v=spf1 -all"));
    let dir = dns_campaign(2525, "acme.test", &pem, &dns);
    let mut harness = window(&dir.db, Some(dir.campaign.clone()), Remembered::default());
    open_publish(&mut harness);
    wait_for_label(&mut harness, "OK  SPF acme.test");
    wait_for_check(&mut harness);
    assert!(!shows(&harness, "SPF beta.test"));

    harness.get_by_label("Compose").click_accesskit();
    harness.run_steps(2);
    harness.get_by_label("From").focus();
    harness.step();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness
        .get_by_label("From")
        .type_text("Acme News <news@beta.test>");
    harness.step();
    assert!(harness.state().is_dirty());
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::S);
    wait_until(&mut harness, "the save", |app| !app.is_dirty());
    harness.get_by_label("Publish").click_accesskit();
    wait_for_label(&mut harness, "SPF beta.test");
    wait_for_check(&mut harness);
    assert!(
        shows(&harness, "Problem  SPF beta.test for 127.0.0.1"),
        "beta.test's -all leaves the relay out: red"
    );
    assert!(
        !shows(&harness, "SPF acme.test"),
        "acme.test's findings are gone"
    );
    let saved = std::fs::read_to_string(&dir.campaign).unwrap();
    assert!(saved.contains("news@beta.test"), "{saved}");
}

/// Another campaign opened from the library: the first one's findings leave the screen, and
/// the panel shows those of the campaign on screen, read from its own domain.
#[test]
fn another_campaign_never_shows_the_first_ones_findings() {
    let keys = tempfile::tempdir().unwrap();
    let (pem, _, ours) = make_key(keys.path(), "pkcs1");
    let (_, _, other) = make_key(keys.path(), "pkcs8");
    let mut both = zone("acme.test", &other);
    for extra in [
        ("beta.test", "v=spf1 ip4:127.0.0.1 -all".to_string()),
        ("_dmarc.beta.test", "v=DMARC1; p=none".to_string()),
        (
            "s1._domainkey.beta.test",
            format!("v=DKIM1; k=rsa; p={ours}"),
        ),
    ] {
        both = both.txt(extra.0, &extra.1);
    }
    let dns = DnsServer::start(both);
    let dir = dns_campaign(2525, "acme.test", &pem, &dns);
    let beta = dir.path().join("beta.toml");
    let text = std::fs::read_to_string(&dir.campaign).unwrap();
    std::fs::write(&beta, text.replace("acme.test", "beta.test")).unwrap();
    let mut store = herald::store::Store::open(&dir.db).unwrap();
    let loaded = herald::campaign::Campaign::load_for_reading(&beta).unwrap();
    herald::import::import(&mut store, &loaded).unwrap();
    drop(store);

    let mut harness = window(&dir.db, Some(dir.campaign.clone()), Remembered::default());
    open_publish(&mut harness);
    wait_for_label(&mut harness, "Problem  DKIM s1._domainkey.acme.test");
    wait_for_check(&mut harness);

    harness.get_by_label("Campaigns").click_accesskit();
    wait_for_label(&mut harness, "beta");
    harness.get_by_label("beta").click_accesskit();
    wait_until(&mut harness, "beta to open", |app| {
        app.campaign_path()
            .is_some_and(|path| path.ends_with("beta.toml"))
    });
    open_publish(&mut harness);
    assert!(
        !shows(&harness, "acme.test"),
        "nothing of acme.test's check is on beta's Publish"
    );
    wait_for_label(&mut harness, "OK  DKIM s1._domainkey.beta.test");
    wait_for_check(&mut harness);
    assert!(!shows(&harness, "Problem  DKIM"));
    assert!(!shows(&harness, "acme.test"));
}
