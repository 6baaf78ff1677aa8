//! `herald suppression add | remove | export | import` through the real binary and a real
//! database (issue #13): a hand-added address keeps its reason text, export and import round-trip
//! the list into another database, a bad address is refused with a sentence naming it (and, in
//! an imported file, its line); and `herald check` says when a campaign that sends through
//! relays has no `[bounces]` mailbox.

// Test helpers (outside `#[test]` functions) fail the test loudly on a broken fixture.

use std::path::Path;
use std::time::Duration;

use crate::support::campaign::{RelayConf, campaign_with, closed_port};
use crate::support::cli_run::{Ran, herald, herald_command};

const LIMIT: Duration = Duration::from_secs(60);

fn suppression(db: &Path, args: &[&str]) -> Ran {
    let mut command = herald_command();
    command.arg("suppression").args(args).arg("--db").arg(db);
    crate::support::cli_run::run(command, LIMIT)
}

/// (address, reason, evidence) of every entry, sorted.
fn list(db: &Path) -> Vec<(String, String, String)> {
    let ran = suppression(db, &["list", "--json"]);
    ran.assert_code(0);
    let json: serde_json::Value = serde_json::from_str(ran.stdout.trim()).expect("json");
    let mut entries: Vec<(String, String, String)> = json
        .as_array()
        .expect("array")
        .iter()
        .map(|entry| {
            let text = |key: &str| entry[key].as_str().unwrap_or_default().to_string();
            (text("address"), text("reason"), text("evidence"))
        })
        .collect();
    entries.sort();
    entries
}

#[test]
fn add_remove_export_and_import_round_trip_and_refuse_bad_addresses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("herald.db");
    suppression(
        &db,
        &["add", "Ada@Example.ORG", "--reason", "asked by phone"],
    )
    .assert_code(0);
    suppression(&db, &["add", "bob@example.org"]).assert_code(0);
    suppression(&db, &["add", "cy@example.org"]).assert_code(0);
    let again = suppression(&db, &["add", "ada@example.org"]);
    again.assert_code(0);
    assert!(
        again.stdout.contains("already suppressed"),
        "{}",
        again.all()
    );

    let bad = suppression(&db, &["add", "not an address", "--reason", "x"]);
    bad.assert_code(1);
    assert!(
        bad.stderr
            .contains("\"not an address\" is not an email address"),
        "{}",
        bad.all()
    );

    let removed = suppression(&db, &["remove", "CY@example.org"]);
    removed.assert_code(0);
    assert!(
        removed.stdout.contains("removed cy@example.org"),
        "{}",
        removed.all()
    );
    let entries = list(&db);
    assert_eq!(
        entries
            .iter()
            .map(|(a, r, _)| (a.as_str(), r.as_str()))
            .collect::<Vec<_>>(),
        [("ada@example.org", "manual"), ("bob@example.org", "manual")]
    );
    assert_eq!(entries[0].2, "asked by phone");
    let not_there = suppression(&db, &["remove", "cy@example.org"]);
    not_there.assert_code(0);
    assert!(
        not_there.stdout.contains("was not on the list"),
        "{}",
        not_there.all()
    );

    // Export, then import into a fresh database: the same entries, evidence included.
    let csv = dir.path().join("list.csv");
    let exported = suppression(&db, &["export", csv.to_str().expect("utf-8 path")]);
    exported.assert_code(0);
    assert!(exported.stdout.contains("2 address(es) written"));
    let other = dir.path().join("other.db");
    let imported = suppression(&other, &["import", csv.to_str().expect("utf-8 path")]);
    imported.assert_code(0);
    assert!(
        imported.stdout.contains("2 address(es) added, 0 line(s)"),
        "{}",
        imported.all()
    );
    assert_eq!(list(&other), entries);

    // A file with one bad address: the good ones are added, the bad one named by its line.
    let mixed = dir.path().join("mixed.csv");
    std::fs::write(
        &mixed,
        "email,reason\ndee@example.org,unsubscribed\nnot-an-address,manual\n\neve@example.org,\n",
    )
    .expect("csv");
    let partly = suppression(&other, &["import", mixed.to_str().expect("utf-8 path")]);
    partly.assert_code(0);
    assert!(
        partly
            .stdout
            .contains("2 address(es) added, 1 line(s) without a valid address"),
        "{}",
        partly.all()
    );
    assert!(
        partly.stderr.contains("line 3")
            && partly
                .stderr
                .contains("\"not-an-address\" is not an email address"),
        "{}",
        partly.all()
    );
    let reasons: Vec<(String, String)> = list(&other).into_iter().map(|(a, r, _)| (a, r)).collect();
    assert!(reasons.contains(&("dee@example.org".into(), "unsubscribed".into())));
    assert!(reasons.contains(&("eve@example.org".into(), "manual".into())));
    assert_eq!(reasons.len(), 4, "{reasons:?}");
}

#[test]
fn check_warns_when_a_relay_campaign_has_no_bounce_mailbox() {
    let warning = "no bounce mailbox ([bounces])";
    let emails = ["ada@example.org".to_string()];
    let relays = [RelayConf::new("relay", closed_port())];
    let without = campaign_with(&emails, &relays, "", "");
    let ran = herald(&["check"], &without.campaign, &without.db, &[], LIMIT);
    ran.assert_code(0);
    assert!(ran.stdout.contains(warning), "{}", ran.all());

    let with = campaign_with(
        &emails,
        &relays,
        "",
        &format!(
            "[bounces]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"tls\"\n\
             username = \"bounces\"\npassword_env = \"HERALD_TEST_IMAP_PASSWORD\"\n\
             return_path = \"bounces@acme.example\"\n",
            closed_port()
        ),
    );
    let ran = herald(
        &["check"],
        &with.campaign,
        &with.db,
        &[("HERALD_TEST_IMAP_PASSWORD", "pw")],
        LIMIT,
    );
    ran.assert_code(0);
    assert!(!ran.stdout.contains(warning), "{}", ran.all());
}
