//! The window's review list of held unverified reports (issue #21 §1), driven headless with
//! egui_kittest over a real store: three reports are held (as `inbox::check` holds reports that
//! prove nothing), the Suppression view lists each with its evidence, Dismiss forgets one and
//! changes nobody, Apply applies one (its address suppressed, the others still held), and
//! "Apply all" applies the rest — through `app::held`, the functions `herald bounces
//! --apply-unverified` calls.

use std::path::Path;
use std::time::Duration;

use crate::support::campaign::{RelayConf, campaign_with, closed_port};
use crate::support::cli_run::herald;
use crate::support::window::{wait_until, window};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use herald::campaign::Campaign;
use herald::store::{Feedback, FeedbackKind, Held, MailboxCursor, Store};
use herald::ui::{HeraldApp, Remembered, Tab};

const LIMIT: Duration = Duration::from_secs(60);
const PEOPLE: [&str; 3] = ["ada@example.org", "grace@example.org", "linus@example.org"];

/// Holds one unverified hard bounce for each of `PEOPLE`, as a mailbox check would.
fn hold_reports(campaign: &Path, db: &Path) {
    let loaded = Campaign::load_for_reading(campaign).expect("campaign");
    let mut store = Store::open(db).expect("store");
    let id = herald::identity::campaign_id(&mut store, &loaded).expect("campaign id");
    let rows = store.page(id, None, None, 0, 10).expect("rows");
    let held: Vec<Held> = rows
        .iter()
        .map(|row| Held {
            feedback: Feedback {
                recipient: row.id,
                kind: FeedbackKind::Hard,
                status: Some("5.1.1".into()),
                smtp_code: Some(550),
                diagnostic: format!("550 5.1.1 <{}>: user unknown", row.email),
            },
            evidence: "no VERP tag or keyed Message-ID: named by the failed address".into(),
        })
        .collect();
    assert_eq!(held.len(), PEOPLE.len());
    store
        .apply_feedback("INBOX", &MailboxCursor::default(), &[], &held, 3)
        .expect("hold");
}

fn suppressed(db: &Path) -> Vec<String> {
    let store = Store::open(db).expect("store");
    let mut list: Vec<String> = store
        .suppressions()
        .expect("list")
        .into_iter()
        .map(|entry| entry.address)
        .collect();
    list.sort();
    list
}

fn click(harness: &mut Harness<'_, HeraldApp>, label: &str, nth: usize) {
    harness
        .get_all_by_label(label)
        .nth(nth)
        .unwrap_or_else(|| panic!("no button {label:?} #{nth}"))
        .click_accesskit();
    harness.step();
}

#[test]
fn held_reports_are_reviewed_dismissed_and_applied_in_the_window() {
    let emails: Vec<String> = PEOPLE.iter().map(|s| s.to_string()).collect();
    let relays = [RelayConf::new("down", closed_port())];
    let dir = campaign_with(&emails, &relays, "", "");
    herald(&["import"], &dir.campaign, &dir.db, &[], LIMIT).assert_code(0);
    hold_reports(&dir.campaign, &dir.db);

    let remembered = Remembered {
        tab: Tab::Suppression,
        ..Remembered::default()
    };
    let mut harness = window(&dir.db, Some(dir.campaign.clone()), remembered);
    harness.run_steps(3);
    wait_until(&mut harness, "the held reports", |app| {
        app.held_count() == Some(3)
    });
    assert!(
        harness
            .query_by_label("3 unverified report(s) to review")
            .is_some()
    );
    for person in PEOPLE {
        assert!(harness.query_by_label(person).is_some(), "{person} listed");
    }
    assert_eq!(
        harness
            .query_all_by_label("no VERP tag or keyed Message-ID: named by the failed address")
            .count(),
        3,
        "each row's evidence says why it is unverified"
    );
    assert!(suppressed(&dir.db).is_empty(), "nothing applied by itself");

    // Dismiss the first (ada): forgotten, nobody suppressed.
    click(&mut harness, "Dismiss", 0);
    wait_until(&mut harness, "the dismissal", |app| {
        app.held_count() == Some(2)
    });
    assert!(harness.query_by_label("ada@example.org").is_none());
    assert!(
        suppressed(&dir.db).is_empty(),
        "a dismissed report changes nobody"
    );

    // Apply the first left (grace): suppressed; linus still held.
    click(&mut harness, "Apply", 0);
    wait_until(&mut harness, "the apply", |app| app.held_count() == Some(1));
    assert_eq!(suppressed(&dir.db), ["grace@example.org"]);

    // Apply all: linus too.
    click(&mut harness, "Apply all", 0);
    wait_until(&mut harness, "apply all", |app| app.held_count() == Some(0));
    assert_eq!(
        suppressed(&dir.db),
        ["grace@example.org", "linus@example.org"]
    );
    assert!(
        harness.query_by_label("Apply all").is_none(),
        "the list is gone"
    );
}
