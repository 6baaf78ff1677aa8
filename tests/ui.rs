//! The window driven headless through egui_kittest's accessibility tree: tabs, compose, import,
//! a real send to the scriptable SMTP server, pause/resume and resend of failures, checking what
//! the user would see and what the server received. Issue #6.

use crate::support::window::wait_for_label;
use std::time::{Duration, Instant};

use crate::support::campaign::{CampaignDir, RelayConf, addresses, campaign};
use crate::support::smtp_server::{Reply, SmtpServer};
use crate::support::window::{start, wait_until, window};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use herald::ui::{HeraldApp, Remembered, Tab};

fn harness(dir: &CampaignDir) -> Harness<'static, HeraldApp> {
    window(&dir.db, Some(dir.campaign.clone()), Remembered::default())
}

fn opened(harness: &mut Harness<'_, HeraldApp>) {
    wait_until(harness, "the campaign to open", |app| {
        app.status().contains("valid")
    });
}

#[test]
fn tabs_switch_and_compose_edits_the_campaign() {
    let server = SmtpServer::start();
    let dir = campaign(
        &addresses(3),
        &[RelayConf::new("main", server.port())],
        "connections = 1",
    );
    let mut harness = harness(&dir);
    opened(&mut harness);
    assert_eq!(harness.state().tab(), Tab::Compose);
    harness.get_by_label("Subject").focus();
    harness.get_by_label("Subject").type_text(" and welcome");
    harness.step();
    assert_eq!(
        harness.state().document().raw.message.subject.as_deref(),
        Some("Hi {{ first_name }} and welcome")
    );
    assert!(harness.state().is_dirty());

    harness.get_by_label("Recipients").click_accesskit();
    harness.step();
    harness.step();
    assert_eq!(harness.state().tab(), Tab::Recipients);
    assert!(harness.query_by_label("Import").is_some());

    harness.get_by_label("Publish").click_accesskit();
    harness.step();
    harness.step();
    assert!(harness.query_by_label("Start").is_some());
    assert!(harness.query_by_label("Test connection").is_some());
}

#[test]
fn import_fills_the_table_and_preview_renders_a_recipient() {
    let server = SmtpServer::start();
    let dir = campaign(
        &addresses(25),
        &[RelayConf::new("main", server.port())],
        "connections = 1",
    );
    let mut harness = harness(&dir);
    opened(&mut harness);
    harness.get_by_label("Recipients").click_accesskit();
    harness.run_steps(4);
    harness.get_by_label("Import").click_accesskit();
    wait_until(&mut harness, "the import", |app| app.counts().pending == 25);
    wait_until(&mut harness, "the table rows", |app| {
        app.table_total() == 25 && app.table_row(0).is_some()
    });
    assert!(harness.query_by_label("user0@d0.example").is_some());
    assert!(harness.query_all_by_label_contains("25 recipients").count() >= 1);

    harness.get_by_label("Compose").click_accesskit();
    harness.step();
    harness
        .get_by_role_and_label(egui::accesskit::Role::Button, "Preview")
        .click_accesskit();
    wait_until(&mut harness, "the preview", |_| true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while harness.query_by_label_contains("Hello Name0").is_none() {
        assert!(Instant::now() < deadline, "the preview never showed");
        harness.step();
        std::thread::sleep(Duration::from_millis(15));
    }
}

#[test]
fn start_sends_everyone_and_progress_reaches_100_percent() {
    let server = SmtpServer::start();
    let dir = campaign(
        &addresses(30),
        &[RelayConf::new("main", server.port())],
        "connections = 3",
    );
    let mut harness = harness(&dir);
    opened(&mut harness);
    harness.get_by_label("Publish").click_accesskit();
    harness.step();
    start(&mut harness);
    wait_until(&mut harness, "the run to end", |app| {
        !app.is_running() && app.counts().sent == 30
    });
    assert!(harness.query_by_label_contains("100 %").is_some());
    assert_eq!(server.received_count(), 30);
    harness.get_by_label("Recipients").click_accesskit();
    wait_until(&mut harness, "sent rows in the table", |app| {
        app.table_row(0)
            .is_some_and(|row| row.state == herald::store::State::Sent)
    });
    assert!(
        !harness
            .query_all_by_label("sent")
            .collect::<Vec<_>>()
            .is_empty()
    );
}

#[test]
fn pause_stops_the_flow_and_resume_finishes() {
    let server = SmtpServer::builder()
        .rule(|_| Reply::SlowData(Duration::from_millis(40)))
        .start();
    let dir = campaign(
        &addresses(40),
        &[RelayConf::new("main", server.port())],
        "connections = 2",
    );
    let mut harness = harness(&dir);
    opened(&mut harness);
    harness.get_by_label("Publish").click_accesskit();
    harness.step();
    start(&mut harness);
    wait_until(&mut harness, "some messages", |app| app.counts().sent >= 4);
    harness.get_by_label("Pause").click_accesskit();
    wait_until(&mut harness, "the pause", |app| {
        app.progress().is_some_and(|p| {
            matches!(p.state, herald::engine::RunState::Paused { .. }) && p.counts.sending == 0
        })
    });
    let during = server.received_count();
    for _ in 0..20 {
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        server.received_count(),
        during,
        "messages went out while paused"
    );
    harness.get_by_label("Resume").click_accesskit();
    wait_until(&mut harness, "the end", |app| {
        !app.is_running() && app.counts().sent == 40
    });
    assert_eq!(server.received_count(), 40);
}

#[test]
fn resend_failed_is_one_click() {
    let server = SmtpServer::builder()
        .attempt_rule(|rcpt, attempt| {
            if (rcpt == "user1@d1.example" || rcpt == "user2@d2.example") && attempt == 1 {
                Reply::PolicyReject
            } else {
                Reply::Accept
            }
        })
        .start();
    let dir = campaign(
        &addresses(6),
        &[RelayConf::new("main", server.port())],
        "connections = 1",
    );
    let mut harness = harness(&dir);
    opened(&mut harness);
    harness.get_by_label("Publish").click_accesskit();
    harness.step();
    start(&mut harness);
    wait_until(&mut harness, "the first run", |app| {
        !app.is_running() && app.counts().failed == 2
    });
    harness.get_by_label("Resend failed (2)").click_accesskit();
    wait_until(&mut harness, "the resend", |app| {
        !app.is_running() && app.counts().sent == 6 && app.counts().failed == 0
    });
    assert_eq!(server.received_count(), 6);
    let received = server.rcpt_counts();
    assert_eq!(received.get("user1@d1.example"), Some(&1));
}

/// Issue #21: a recipient a server refused as dead (550 5.1.1) is suppressed, so "Resend failed"
/// leaves it out; the "with dead addresses" box beside it resends it.
#[test]
fn resend_failed_leaves_dead_addresses_out_unless_the_box_is_ticked() {
    let server = SmtpServer::builder()
        .attempt_rule(|rcpt, attempt| {
            if rcpt == "user1@d1.example" && attempt == 1 {
                Reply::PermFail
            } else {
                Reply::Accept
            }
        })
        .start();
    let dir = campaign(
        &addresses(3),
        &[RelayConf::new("main", server.port())],
        "connections = 1",
    );
    let mut harness = harness(&dir);
    opened(&mut harness);
    harness.get_by_label("Publish").click_accesskit();
    harness.step();
    start(&mut harness);
    wait_until(&mut harness, "the first run", |app| {
        !app.is_running() && app.counts().failed == 1
    });
    harness.get_by_label("Resend failed (1)").click_accesskit();
    for _ in 0..30 {
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        harness.state().counts().failed,
        1,
        "the dead address was resent"
    );
    assert_eq!(server.rcpt_attempts().get("user1@d1.example"), Some(&1));
    harness
        .get_by_label("with dead addresses")
        .click_accesskit();
    harness.step();
    harness.get_by_label("Resend failed (1)").click_accesskit();
    wait_until(&mut harness, "the resend", |app| {
        !app.is_running() && app.counts().sent == 3 && app.counts().failed == 0
    });
    assert_eq!(server.rcpt_attempts().get("user1@d1.example"), Some(&2));
}

#[test]
fn send_test_delivers_one_rendered_message_to_the_given_address() {
    let server = SmtpServer::start();
    let dir = campaign(
        &addresses(3),
        &[RelayConf::new("main", server.port())],
        "connections = 1",
    );
    let mut harness = harness(&dir);
    opened(&mut harness);
    harness.get_by_label("Send test to").focus();
    harness
        .get_by_label("Send test to")
        .type_text("proof@tester.example");
    harness.step();
    harness.get_by_label("Send test").click_accesskit();
    wait_until(&mut harness, "the test-send report", |app| {
        app.test_result().is_some_and(|result| {
            result
                .as_ref()
                .map_or(true, |text| !text.starts_with("sending a test"))
        })
    });
    let result = harness.state().test_result().cloned();
    assert!(matches!(&result, Some(Ok(_))), "{result:?}");
    assert!(server.wait_for_messages(1, Duration::from_secs(30)));
    let received = server.received();
    assert_eq!(
        received[0].rcpt_to,
        vec!["proof@tester.example".to_string()]
    );
    assert!(received[0].data_str().contains("Hi Name0"));
    wait_until(&mut harness, "the test-send report", |_| true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while harness
        .query_by_label_contains("sent to proof@tester.example")
        .is_none()
    {
        assert!(Instant::now() < deadline, "no report of the test send");
        harness.step();
        std::thread::sleep(Duration::from_millis(15));
    }
    // A test send changes nobody's state.
    assert_eq!(harness.state().counts().sent, 0);
}

/// Imports `campaign` into `db` as `herald import` would, so the library has something to list.
fn import_into(db: &std::path::Path, campaign: &std::path::Path) {
    let mut store = herald::store::Store::open(db).unwrap();
    let loaded = herald::campaign::Campaign::load_for_reading(campaign).unwrap();
    herald::import::import(&mut store, &loaded).unwrap();
}

fn harness_on_library(db: std::path::PathBuf) -> Harness<'static, HeraldApp> {
    Harness::builder()
        .with_size(egui::vec2(1280.0, 860.0))
        .build_eframe(move |cc| {
            HeraldApp::with_service(cc.egui_ctx.clone(), db, None, Remembered::default())
                .expect("the app starts")
        })
}

/// Issue #14: the start page lists the campaigns the database knows, with their counts, and
/// opens one in one click; Duplicate makes the next mailing from one.
#[test]
fn the_library_lists_campaigns_opens_one_in_a_click_and_duplicates() {
    let dir = campaign(&addresses(25), &[RelayConf::new("main", 2525)], "");
    let autumn = dir.path().join("autumn.toml");
    std::fs::copy(&dir.campaign, &autumn).unwrap();
    import_into(&dir.db, &dir.campaign);
    import_into(&dir.db, &autumn);
    let mut harness = harness_on_library(dir.db.clone());
    wait_until(&mut harness, "the library", |app| {
        app.library_len() == Some(2)
    });
    assert_eq!(harness.state().tab(), Tab::Library);
    // A file called campaign.toml goes by its folder's name (issue #14: names people know).
    let folder = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(harness.query_by_label(&folder).is_some());
    assert!(harness.query_by_label("campaign").is_none());
    assert_eq!(
        harness.query_all_by_label("25").count(),
        4,
        "recipients and to send, twice"
    );

    harness.get_by_label("autumn").click_accesskit();
    wait_until(&mut harness, "autumn to open", |app| {
        app.campaign_path() == Some(autumn.canonicalize().unwrap().as_path())
            && app.status().contains("valid")
    });
    assert_eq!(harness.state().tab(), Tab::Compose);
    assert_eq!(harness.state().counts().pending, 25);

    harness.get_by_label("Campaigns").click_accesskit();
    wait_for_label(&mut harness, "Duplicate");
    let rows = harness.query_all_by_label("Duplicate").count();
    assert_eq!(rows, 2);
    harness
        .get_all_by_label("Duplicate")
        .next()
        .unwrap()
        .click_accesskit();
    wait_until(&mut harness, "the copy to open", |app| {
        app.campaign_path()
            .is_some_and(|path| path.to_string_lossy().ends_with("-2.toml"))
    });
    let copy = harness.state().campaign_path().unwrap().to_path_buf();
    let stem = copy.file_stem().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        std::fs::read_to_string(dir.path().join(format!("{stem}.html"))).unwrap(),
        std::fs::read_to_string(dir.path().join("body.html")).unwrap()
    );
    // The next mailing starts with no delivery state of its own.
    assert_eq!(harness.state().counts().total(), 0);
}

/// Issue #14: "New campaign…" writes a ready folder where the user says and opens it.
#[test]
fn a_new_campaign_is_a_ready_folder_opened_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("spring sale");
    let mut harness = harness_on_library(dir.path().join("herald.db"));
    wait_for_label(&mut harness, "No campaigns yet");
    harness.get_by_label("New campaign in folder").focus();
    harness
        .get_by_label("New campaign in folder")
        .type_text(&folder.to_string_lossy());
    harness.step();
    harness.get_by_label("Create").click_accesskit();
    wait_until(&mut harness, "the new campaign to open", |app| {
        app.campaign_path() == Some(folder.join("campaign.toml").as_path())
    });
    for file in ["campaign.toml", "body.html", "list.csv"] {
        assert!(folder.join(file).exists(), "{file} was not written");
    }
    // Issue #20: no text body of its own, so the text part follows the HTML.
    assert!(!folder.join("body.txt").exists());
    assert_eq!(harness.state().tab(), Tab::Compose);
    assert!(harness.state().document().html.contains("{{ first_name }}"));
    assert!(harness.state().last_toast().unwrap().starts_with("Created"));
}

/// Issue #14: switching campaigns never loses unsaved edits: the window asks, "Keep editing"
/// keeps them, "Save changes" writes them before the other campaign opens. Ctrl+S saves.
#[test]
fn unsaved_edits_are_asked_about_before_another_campaign_opens() {
    let dir = campaign(&addresses(3), &[RelayConf::new("main", 2525)], "");
    let autumn = dir.path().join("autumn.toml");
    std::fs::copy(&dir.campaign, &autumn).unwrap();
    import_into(&dir.db, &autumn);
    let mut harness = harness(&dir);
    opened(&mut harness);
    harness.get_by_label("Subject").focus();
    harness.get_by_label("Subject").type_text(" and welcome");
    harness.step();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::S);
    wait_until(&mut harness, "Ctrl+S to save", |app| !app.is_dirty());
    assert!(harness.state().last_toast().unwrap().starts_with("Saved"));

    harness.get_by_label("Subject").focus();
    harness.get_by_label("Subject").type_text(" back");
    harness.step();
    assert!(harness.state().is_dirty());
    harness.get_by_label("Campaigns").click_accesskit();
    wait_for_label(&mut harness, "autumn");
    harness.get_by_label("autumn").click_accesskit();
    harness.run_steps(2);
    assert!(harness.state().is_asking_about_unsaved());
    wait_for_label(&mut harness, "Unsaved changes");
    harness.get_by_label("Keep editing").click_accesskit();
    harness.run_steps(2);
    assert!(!harness.state().is_asking_about_unsaved());
    assert!(harness.state().is_dirty());
    assert_eq!(
        harness.state().campaign_path(),
        Some(dir.campaign.as_path())
    );

    harness.get_by_label("autumn").click_accesskit();
    wait_for_label(&mut harness, "Save changes");
    harness.get_by_label("Save changes").click_accesskit();
    wait_until(&mut harness, "autumn to open", |app| {
        app.campaign_path()
            .is_some_and(|path| path.ends_with("autumn.toml"))
    });
    let saved = std::fs::read_to_string(&dir.campaign).unwrap();
    assert!(
        saved.contains("Hi {{ first_name }} and welcome back"),
        "{saved}"
    );
}

/// Issue #14: the results of a finished run break down by reply class and by domain, each
/// figure filters the recipients table, and every recipient's outcome exports to CSV.
#[test]
fn results_break_a_run_down_and_filter_the_recipients_table() {
    let server = SmtpServer::builder()
        .attempt_rule(|rcpt, _| match rcpt {
            "user1@d1.example" => Reply::Custom {
                code: 550,
                text: "5.1.1 no such user here".into(),
            },
            "user2@d2.example" => Reply::PolicyReject,
            _ => Reply::Accept,
        })
        .start();
    let dir = campaign(
        &addresses(8),
        &[RelayConf::new("main", server.port())],
        "connections = 2",
    );
    let mut harness = harness(&dir);
    opened(&mut harness);
    harness.get_by_label("Publish").click_accesskit();
    harness.step();
    start(&mut harness);
    wait_until(&mut harness, "the run to end", |app| {
        !app.is_running() && app.counts().sent == 6 && app.counts().failed == 2
    });
    harness.get_by_label("Results").click_accesskit();
    wait_until(&mut harness, "the results", |app| app.has_results());
    assert!(harness.query_all_by_label("Delivered").count() >= 1);
    assert!(
        harness
            .query_by_label("refused by policy or as spam (x.7.x)")
            .is_some()
    );
    assert!(harness.query_by_label("Outcomes over time").is_some());

    harness
        .get_by_label("no such user (x.1.1)")
        .click_accesskit();
    wait_until(&mut harness, "the filtered table", |app| {
        app.tab() == Tab::Recipients && app.table_total() == 1 && app.table_row(0).is_some()
    });
    assert_eq!(
        harness.state().table_row(0).unwrap().email,
        "user1@d1.example"
    );

    harness.get_by_label("Results").click_accesskit();
    harness.run_steps(2);
    harness.get_by_label("d0.example").click_accesskit();
    wait_until(&mut harness, "the domain's rows", |app| {
        app.tab() == Tab::Recipients && app.table_row(0).is_some()
    });
    // user0 and user7 are the recipients at d0.example.
    assert_eq!(harness.state().table_total(), 2);

    harness.get_by_label("Results").click_accesskit();
    wait_for_label(&mut harness, "Export every recipient");
    let out = dir.path().join("outcomes.csv");
    harness
        .get_by_label("Export every recipient's outcome to")
        .focus();
    harness
        .get_by_label("Export every recipient's outcome to")
        .type_text(&out.to_string_lossy());
    harness.step();
    harness.get_by_label("Export CSV").click_accesskit();
    wait_until(&mut harness, "the export", |app| {
        app.last_toast()
            .is_some_and(|toast| toast.starts_with("Exported"))
    });
    let csv = std::fs::read_to_string(&out).unwrap();
    assert_eq!(csv.lines().count(), 9, "{csv}");
    assert!(
        csv.contains("user1@d1.example,failed,1,main,550,5.1.1"),
        "{csv}"
    );
    assert!(csv.contains("user0@d0.example,sent"), "{csv}");
}

/// Issue #14, item 2: where no file chooser can open (no portal, no zenity: rfd then answers
/// at once as if cancelled), the window says so next to the control and the path can be
/// typed instead.
#[test]
fn without_a_file_chooser_the_window_says_so_and_takes_a_typed_path() {
    let dir = campaign(&addresses(3), &[RelayConf::new("main", 2525)], "");
    let (db, path) = (dir.db.clone(), dir.campaign.clone());
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 860.0))
        .build_eframe(move |cc| {
            HeraldApp::with_service(cc.egui_ctx.clone(), db, Some(path), Remembered::default())
                .expect("the app starts")
                .with_dialogs(herald::ui::dialogs::Dialogs::with_backend(
                    std::sync::Arc::new(|_| None),
                    Some(cc.egui_ctx.clone()),
                ))
        });
    opened(&mut harness);
    harness.get_by_label("Recipients").click_accesskit();
    harness.step();
    assert!(harness.query_by_label_contains("No file chooser").is_none());
    harness.get_by_label("Browse…").click_accesskit();
    wait_for_label(&mut harness, "No file chooser could open");
    let other = dir.path().join("other.csv");
    std::fs::write(&other, "email\nsomeone@else.example\n").unwrap();
    harness.get_by_label("List file").focus();
    harness.step();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.get_by_label("List file").type_text("other.csv");
    harness.step();
    assert_eq!(
        harness.state().document().raw.recipients.csv.as_deref(),
        Some("other.csv")
    );
}
