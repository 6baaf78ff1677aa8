//! Status the window can be trusted on (issue #20): figures that come from the database even
//! when the campaign file has a problem, one reading of why a recipient failed on Publish and
//! Results, which file a duplicate repeats, the library's status column and rename, and the
//! results export. Driven headless through egui_kittest, against the scriptable SMTP server.

use crate::support::campaign::{CampaignDir, RelayConf, addresses, campaign};
use crate::support::run;
use crate::support::smtp_server::SmtpServer;
use crate::support::window::click_tab;
use crate::support::window::{start, wait_until, window};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use herald::ui::{HeraldApp, Remembered};

fn harness(dir: &CampaignDir) -> Harness<'static, HeraldApp> {
    window(&dir.db, Some(dir.campaign.clone()), Remembered::default())
}

/// Sends the whole campaign to a server that takes everything.
fn sent_campaign(count: usize) -> (SmtpServer, CampaignDir) {
    let server = SmtpServer::start();
    let dir = campaign(
        &addresses(count),
        &[RelayConf::new("main", server.port())],
        "",
    );
    let engine = herald::engine::Engine::new().expect("engine");
    let mut handle = run::start(&engine, &dir);
    let progress = run::finish(&mut handle);
    assert_eq!(progress.counts.sent, count as u64, "{progress:?}");
    (server, dir)
}

/// Rewrites the campaign file with `edit`.
fn edit_file(dir: &CampaignDir, edit: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(&dir.campaign).expect("campaign file");
    std::fs::write(&dir.campaign, edit(text)).expect("campaign file");
}

/// Issue #20, status: a campaign whose file has a problem showed "0 of 0 done · 0 recipients"
/// while Results showed what was delivered. The figures come from the database by the file's
/// identity, and the problem is on screen.
#[test]
fn a_campaign_file_with_a_problem_still_shows_its_figures() {
    let (_server, dir) = sent_campaign(3);
    edit_file(&dir, |text| {
        text.replace(
            "from = \"Test Sender <sender@herald.example>\"",
            "from = \"nobody\"",
        )
    });
    let mut harness = harness(&dir);
    wait_until(&mut harness, "the problem and the figures", |app| {
        !app.problems().is_empty() && app.counts().sent == 3
    });
    assert!(
        harness
            .query_all_by_label_contains("3 recipients · 3 sent")
            .next()
            .is_some(),
        "the status bar shows the database's figures"
    );
    // The recipients table reads the database too.
    click_tab(&mut harness, "Recipients");
    wait_until(&mut harness, "the recipients table", |app| {
        app.table_total() == 3
    });
}

/// Issue #20, status: a file that no longer reads at all says so, and that its recipients and
/// their outcomes are still in the database.
#[test]
fn a_campaign_file_that_does_not_read_says_its_outcomes_are_kept() {
    let (_server, dir) = sent_campaign(2);
    edit_file(&dir, |text| text.replace("[delivery]", "[delivery"));
    let mut harness = harness(&dir);
    wait_until(&mut harness, "the problem", |app| {
        !app.problems().is_empty()
    });
    let problem = harness.state().problems().join("\n");
    assert!(problem.contains("not a campaign file"), "{problem}");
    assert!(
        problem.contains("2 recipients (2 sent"),
        "the database's figures are named: {problem}"
    );
    // Said where the user is: the campaigns list, which hides the campaign's problems box.
    assert!(shows(&harness, "are safe in the database"));
}

fn opened(harness: &mut Harness<'_, HeraldApp>) {
    wait_until(harness, "the campaign to open", |app| {
        app.status().contains("valid") || !app.problems().is_empty()
    });
}

fn shows(harness: &Harness<'_, HeraldApp>, text: &str) -> bool {
    harness.query_all_by_label_contains(text).next().is_some()
}

/// Issue #20, status: a recipient refused because the relay has no SMTPUTF8 was filed under
/// "no reply: connection failed or dropped" on Results while Publish had the right reason.
/// One classification names it on both pages; and the import already warned that many relays
/// refuse such addresses.
#[test]
fn a_failure_reads_the_same_on_publish_and_results_and_import_warns_first() {
    let server = SmtpServer::builder().no_smtputf8().start();
    let mut emails = addresses(2);
    emails.push("jürgen@d1.example".into());
    let dir = campaign(
        &emails,
        &[RelayConf::new("main", server.port())],
        "connections = 1",
    );
    let mut harness = harness(&dir);
    opened(&mut harness);
    click_tab(&mut harness, "Recipients");
    harness.get_by_label("Import").click_accesskit();
    wait_until(&mut harness, "the import", |app| app.counts().total() == 3);
    assert!(
        shows(&harness, "1 address has non-ASCII characters before the @"),
        "the import warns about the address many relays refuse"
    );

    click_tab(&mut harness, "Publish");
    // The campaign has no DKIM: `start` answers the question a first send asks.
    start(&mut harness);
    wait_until(&mut harness, "the run to end", |app| {
        !app.is_running() && app.counts().failed == 1 && app.counts().sent == 2
    });
    const CLASS: &str = "non-ASCII address: the server has no SMTPUTF8 (x.6.7)";
    harness
        .get_by_label_contains("Latest errors")
        .click_accesskit();
    harness.run_steps(2);
    assert!(shows(&harness, CLASS), "Publish names the class");

    click_tab(&mut harness, "Results");
    wait_until(&mut harness, "the results", HeraldApp::has_results);
    assert!(shows(&harness, CLASS), "Results names the same class");
    assert!(!shows(&harness, "no reply: connection failed or dropped"));
}

/// Issue #20, status: the recipients table said "duplicate of line 2" without saying of which
/// file, once several lists had been imported into the campaign.
#[test]
fn a_duplicate_names_the_file_it_repeats() {
    let mut emails = addresses(2);
    emails.push(emails[0].clone());
    let dir = campaign(&emails, &[RelayConf::new("main", 2525)], "");
    let mut harness = harness(&dir);
    opened(&mut harness);
    click_tab(&mut harness, "Recipients");
    harness.get_by_label("Import").click_accesskit();
    wait_until(&mut harness, "the table", |app| {
        app.table_total() == 3 && app.table_row(2).is_some()
    });
    let row = harness
        .state()
        .table_row(2)
        .expect("the duplicate's row")
        .clone();
    assert_eq!(
        row.skip_reason.as_deref(),
        Some("duplicate of line 2 of list.csv")
    );
}

/// Copies the campaign in `dir` into the folder `name` beside it and imports it there: a second
/// campaign of the same database, named by its folder, never sent.
fn second_campaign(dir: &CampaignDir, name: &str) -> std::path::PathBuf {
    let folder = dir.path().join(name);
    std::fs::create_dir(&folder).expect("folder");
    for file in ["campaign.toml", "list.csv", "body.html"] {
        std::fs::copy(dir.path().join(file), folder.join(file)).expect("copy");
    }
    let file = folder.join("campaign.toml");
    let mut store = herald::store::Store::open(&dir.db).expect("db");
    let campaign = herald::campaign::Campaign::load(&file).expect("campaign");
    herald::import::import(&mut store, &campaign).expect("import");
    file
}

/// Issue #20, what a marketer expects: the library says where each campaign stands (from the
/// database), and a campaign can be renamed — a name that exists is refused, and the renamed
/// campaign keeps its recipients and their state.
#[test]
fn the_library_shows_each_status_and_renames_a_campaign_keeping_its_state() {
    let (_server, dir) = sent_campaign(2);
    second_campaign(&dir, "spring");
    std::fs::create_dir(dir.path().join("taken")).expect("folder");
    let mut harness = window(&dir.db, None, Remembered::default());
    wait_until(&mut harness, "the library", |app| {
        app.library_len() == Some(2)
    });
    assert!(shows(&harness, "draft"), "the new campaign is a draft");
    assert!(
        harness.query_all_by_label("sent").next().is_some(),
        "the campaign that went out is sent"
    );

    harness.get_by_label("Find").focus();
    harness.get_by_label("Find").type_text("spri");
    harness.run_steps(2);
    harness.get_by_label("Rename").click_accesskit();
    harness.run_steps(2);
    let rename_to = |harness: &mut Harness<'_, HeraldApp>, from: &str, to: &str| {
        let field = |harness: &Harness<'_, HeraldApp>, text: Option<&str>| {
            let field = harness
                .query_all_by_value(from)
                .find(|node| node.accesskit_node().role() == egui::accesskit::Role::TextInput)
                .expect("the name field");
            match text {
                None => field.focus(),
                Some(text) => field.type_text(text),
            }
        };
        field(harness, None);
        harness.step();
        harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
        field(harness, Some(to));
        harness.step();
        harness.get_by_label("OK").click_accesskit();
        harness.run_steps(2);
    };
    rename_to(&mut harness, "spring", "taken");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !shows(&harness, "taken already exists") {
        assert!(
            std::time::Instant::now() < deadline,
            "the clash was never said"
        );
        harness.step();
        std::thread::sleep(std::time::Duration::from_millis(15));
    }
    assert!(dir.path().join("spring/campaign.toml").exists());

    rename_to(&mut harness, "taken", "summer");
    wait_until(&mut harness, "the renamed campaign", |_| {
        dir.path().join("summer/campaign.toml").exists()
    });
    harness.get_by_label("Find").focus();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.get_by_label("Find").type_text("summ");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while harness.query_by_label("summer").is_none() {
        assert!(std::time::Instant::now() < deadline, "summer never listed");
        harness.step();
        std::thread::sleep(std::time::Duration::from_millis(15));
    }
    assert!(!dir.path().join("spring").exists());
    // The database followed the folder: the campaign has its two recipients there.
    let store = herald::store::Store::open(&dir.db).expect("db");
    let moved = std::fs::canonicalize(dir.path().join("summer/campaign.toml")).expect("file");
    let id = store
        .find_campaign(&moved.to_string_lossy())
        .expect("query")
        .expect("the campaign moved with its file");
    assert_eq!(store.counts(id).expect("counts").total(), 2);
}

/// Types `text` into the field labelled `label` (its old text selected first).
fn type_into(harness: &mut Harness<'_, HeraldApp>, label: &str, text: &str) {
    harness.get_by_label(label).focus();
    harness.step();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.get_by_label(label).type_text(text);
    harness.step();
}

/// Issue #20, what a marketer expects: the results export carries ISO 8601 times and the
/// list's own columns, so it goes back into a spreadsheet or a CRM as the list came.
#[test]
fn the_results_export_has_iso_times_and_the_lists_own_columns() {
    let (_server, dir) = sent_campaign(2);
    let mut harness = harness(&dir);
    opened(&mut harness);
    click_tab(&mut harness, "Results");
    wait_until(&mut harness, "the results", HeraldApp::has_results);
    let out = dir.path().join("outcomes.csv");
    type_into(
        &mut harness,
        "Export every recipient's outcome to",
        &out.to_string_lossy(),
    );
    harness.get_by_label("Export CSV").click_accesskit();
    wait_until(&mut harness, "the export", |_| out.exists());
    let csv = std::fs::read_to_string(&out).expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "line,email,state,attempts,route,code,status,reply,skip_reason,updated_at,first_name"
    );
    let row: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(row[1], "user0@d0.example", "{csv}");
    assert_eq!(row[10], "Name0", "{csv}");
    // 2026-12-07T17:18:00Z: a date, a T, a time and the zone.
    let at = row[9];
    assert_eq!(at.len(), 20, "{at}");
    assert!(at.ends_with('Z') && at.as_bytes()[10] == b'T', "{at}");
    assert!(at.starts_with("20"), "{at}");
}

/// Issue #20, what a marketer expects: a suppression list (say, unsubscribes kept in another
/// tool) is added from the window, as `herald suppression import` adds it.
#[test]
fn a_suppression_list_is_imported_from_the_window() {
    let dir = campaign(&addresses(1), &[RelayConf::new("main", 2525)], "");
    let file = dir.path().join("unsubscribed.csv");
    std::fs::write(
        &file,
        "Email,Reason\nada@example.org,unsubscribed\nnot an address,\ngrace@example.org,\n",
    )
    .expect("file");
    let mut harness = window(&dir.db, None, Remembered::default());
    harness
        .query_all_by_label("Suppression list")
        .next()
        .expect("the tab")
        .click_accesskit();
    harness.run_steps(2);
    type_into(&mut harness, "Add from file", &file.to_string_lossy());
    harness.get_by_label("Add addresses").click_accesskit();
    wait_until(&mut harness, "the import", |app| {
        app.suppression_total() == Some(2)
    });
    assert!(shows(
        &harness,
        "2 address(es) added to the suppression list"
    ));
    assert!(shows(
        &harness,
        "1 line(s) without a valid address skipped (line 3"
    ));
    assert!(shows(&harness, "ada@example.org"));
}

/// Issue #20, what a marketer expects: Preview works before a list is imported, with a sample
/// recipient whose fields show their names, labelled as a sample.
#[test]
fn preview_before_any_list_shows_a_labelled_sample_recipient() {
    let dir = campaign(&[], &[RelayConf::new("main", 2525)], "");
    let mut harness = harness(&dir);
    opened(&mut harness);
    harness
        .get_by_role_and_label(egui::accesskit::Role::Button, "Preview")
        .click_accesskit();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !shows(&harness, "Hello [first_name]") {
        assert!(
            std::time::Instant::now() < deadline,
            "the sample never showed; problems: {:?}",
            harness.state().problems()
        );
        harness.step();
        std::thread::sleep(std::time::Duration::from_millis(15));
    }
    assert!(shows(&harness, "Sample recipient: no list is imported yet"));
    assert!(shows(&harness, "To sample@example.com"));
    assert_eq!(harness.state().counts().total(), 0, "nobody was made up");
}

/// Issue #20, what a marketer expects: "Insert field" offers a fallback for recipients whose
/// value is empty, and the preview shows it where the list has no value.
#[test]
fn insert_field_offers_a_fallback_for_empty_values() {
    let dir = campaign(&addresses(1), &[RelayConf::new("main", 2525)], "");
    let mut harness = harness(&dir);
    opened(&mut harness);
    harness
        .query_all_by_label("Insert field")
        .next()
        .expect("the subject's Insert field")
        .click_accesskit();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while harness
        .query_by_label("If a recipient's value is empty, write")
        .is_none()
    {
        assert!(std::time::Instant::now() < deadline, "no fallback offered");
        harness.step();
        std::thread::sleep(std::time::Duration::from_millis(15));
    }
    harness
        .get_by_label("If a recipient's value is empty, write")
        .focus();
    harness
        .get_by_label("If a recipient's value is empty, write")
        .type_text("there");
    harness.step();
    harness.get_by_label("first_name").click_accesskit();
    harness.run_steps(2);
    assert_eq!(
        harness.state().document().raw.message.subject.as_deref(),
        Some("Hi {{ first_name }}{{ or(first_name, \"there\") }}")
    );
}
