//! The window a marketer can trust with a real campaign (issue #20), driven headless through
//! egui_kittest: no lost work (paste, an emptied Text body, closing with unsaved edits or
//! during a run), what is sent is what the window shows (every send saves first; a relay test
//! is not shown for settings it did not test), and status that does not contradict itself.

use crate::support::window::{click_tab, wait_for_label};
use std::time::Duration;

use crate::support::campaign::{CampaignDir, RelayConf, addresses, campaign};
use crate::support::smtp_server::{Reply, SmtpServer};
use crate::support::window::{start, wait_until, window};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use herald::ui::{Closing, HeraldApp, Remembered, Tab};

fn harness(dir: &CampaignDir) -> Harness<'static, HeraldApp> {
    window(&dir.db, Some(dir.campaign.clone()), Remembered::default())
}

fn opened(harness: &mut Harness<'_, HeraldApp>) {
    wait_until(harness, "the campaign to open", |app| {
        app.status().contains("valid") || !app.problems().is_empty()
    });
}

/// What the app asked of the clipboard in the last frame.
fn copied(harness: &Harness<'_, HeraldApp>) -> Vec<String> {
    harness
        .output()
        .platform_output
        .commands
        .iter()
        .filter_map(|command| match command {
            egui::OutputCommand::CopyText(text) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// The window's close button, as eframe reports it.
fn request_close(harness: &mut Harness<'_, HeraldApp>) {
    harness
        .input_mut()
        .viewports
        .entry(egui::ViewportId::ROOT)
        .or_default()
        .events
        .push(egui::ViewportEvent::Close);
    harness.step();
}

/// Whether the last frame held the close back.
fn close_cancelled(harness: &Harness<'_, HeraldApp>) -> bool {
    harness
        .output()
        .viewport_output
        .get(&egui::ViewportId::ROOT)
        .is_some_and(|viewport| {
            viewport
                .commands
                .contains(&egui::ViewportCommand::CancelClose)
        })
}

/// Issue #20, item 4: the window's Ctrl+V reached nothing from other applications because
/// eframe's `clipboard` feature was off; egui then keeps a clipboard of its own.
#[test]
fn the_window_is_built_with_the_system_clipboard() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("Cargo.toml");
    let eframe = manifest
        .lines()
        .find(|line| line.starts_with("eframe ="))
        .expect("eframe is a dependency");
    assert!(
        eframe.contains("\"clipboard\""),
        "eframe without its clipboard feature: {eframe}"
    );
}

/// Issue #20, item 4: copy, cut and paste work in the HTML editor and in a one-line field.
#[test]
fn copy_cut_and_paste_work_in_the_html_editor_and_a_field() {
    let dir = campaign(&addresses(2), &[RelayConf::new("main", 2525)], "");
    let mut harness = harness(&dir);
    opened(&mut harness);
    let html = harness.state().document().html.clone();

    harness.get_by_label("HTML body").focus();
    harness.step();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.step();
    harness.event(egui::Event::Copy);
    harness.step();
    assert_eq!(copied(&harness), vec![html.clone()]);

    harness.get_by_label("Subject").focus();
    harness.step();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.step();
    harness.event(egui::Event::Cut);
    harness.step();
    assert_eq!(copied(&harness), vec!["Hi {{ first_name }}".to_string()]);
    assert_eq!(harness.state().document().raw.message.subject, None);
    harness.event(egui::Event::Paste("Spring sale, {{ first_name }}".into()));
    harness.step();
    assert_eq!(
        harness.state().document().raw.message.subject.as_deref(),
        Some("Spring sale, {{ first_name }}")
    );

    // A newsletter pasted from a design tool replaces the selected template.
    let newsletter = "<table><tr><td>Hello {{ first_name }}</td></tr></table>\n";
    harness.get_by_label("HTML body").focus();
    harness.step();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.step();
    harness.event(egui::Event::Paste(newsletter.into()));
    harness.step();
    assert_eq!(harness.state().document().html, newsletter);
    assert!(harness.state().is_dirty());
}

/// Issue #20, item 1: an emptied Text body means "derived from the HTML": saving takes the
/// `text` key out of the campaign file, the preview shows text derived from the HTML, and a
/// duplicate does not bring the old text back.
#[test]
fn clearing_the_text_body_means_it_is_derived_from_the_html() {
    let dir = campaign(&addresses(3), &[RelayConf::new("main", 2525)], "");
    std::fs::write(
        dir.path().join("body.txt"),
        "Old plain words for {{ first_name }}\n",
    )
    .unwrap();
    let toml = std::fs::read_to_string(&dir.campaign).unwrap();
    std::fs::write(
        &dir.campaign,
        toml.replace(
            "html = \"body.html\"",
            "html = \"body.html\"\ntext = \"body.txt\"",
        ),
    )
    .unwrap();
    let mut harness = harness(&dir);
    opened(&mut harness);
    assert!(harness.state().document().text.starts_with("Old plain"));

    harness.get_by_label("Text body").focus();
    harness.step();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.key_press(egui::Key::Backspace);
    harness.step();
    assert_eq!(harness.state().document().text, "");
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::S);
    wait_until(&mut harness, "the save", |app| !app.is_dirty());
    let saved = std::fs::read_to_string(&dir.campaign).unwrap();
    assert!(!saved.contains("text ="), "{saved}");

    harness
        .get_by_role_and_label(egui::accesskit::Role::Button, "Preview")
        .click_accesskit();
    wait_for_label(&mut harness, "Hello Name0");
    assert!(
        harness.query_by_label_contains("Old plain").is_none(),
        "the preview still shows the old text"
    );

    click_tab(&mut harness, "Campaigns");
    wait_for_label(&mut harness, "Duplicate");
    harness.get_by_label("Duplicate").click_accesskit();
    wait_until(&mut harness, "the copy to open", |app| {
        app.campaign_path()
            .is_some_and(|path| path.to_string_lossy().ends_with("-2.toml"))
    });
    assert_eq!(harness.state().document().text, "");
    let copy = std::fs::read_to_string(harness.state().campaign_path().unwrap()).unwrap();
    assert!(!copy.contains("text ="), "{copy}");
}

/// Issue #20, item 2: closing the window with unsaved edits asks as switching campaigns
/// does; "Keep editing" keeps the window, "Save changes" saves and then closes. With nothing
/// to lose the window closes at once.
#[test]
fn closing_with_unsaved_edits_asks_and_save_changes_saves_before_closing() {
    let dir = campaign(&addresses(3), &[RelayConf::new("main", 2525)], "");
    {
        let mut harness = harness(&dir);
        opened(&mut harness);
        request_close(&mut harness);
        assert!(!close_cancelled(&harness));
        assert_eq!(harness.state().closing(), Closing::Closed);
    }
    let mut harness = harness(&dir);
    opened(&mut harness);
    harness.get_by_label("Subject").focus();
    harness.get_by_label("Subject").type_text(" and welcome");
    harness.step();
    request_close(&mut harness);
    assert!(close_cancelled(&harness), "the close was not held back");
    wait_for_label(&mut harness, "Close Herald?");
    assert!(
        harness
            .query_by_label_contains("has changes that are not saved yet")
            .is_some()
    );
    harness.get_by_label("Keep editing").click_accesskit();
    harness.run_steps(2);
    assert_eq!(harness.state().closing(), Closing::Open);
    assert!(harness.state().is_dirty());

    request_close(&mut harness);
    assert!(close_cancelled(&harness));
    wait_for_label(&mut harness, "Save changes");
    harness.get_by_label("Save changes").click_accesskit();
    wait_until(&mut harness, "the window to close", |app| {
        app.closing() == Closing::Closed
    });
    let saved = std::fs::read_to_string(&dir.campaign).unwrap();
    assert!(saved.contains("Hi {{ first_name }} and welcome"), "{saved}");
}

/// Issue #20, item 2: closing during a run says what becomes of it, and closes only once the
/// run has stopped, leaving the rest to Resume sending.
#[test]
fn closing_during_a_run_says_what_happens_and_stops_it_first() {
    let server = SmtpServer::builder()
        .rule(|_| Reply::SlowData(Duration::from_millis(60)))
        .start();
    let dir = campaign(
        &addresses(60),
        &[RelayConf::new("main", server.port())],
        "connections = 1",
    );
    let mut harness = harness(&dir);
    opened(&mut harness);
    click_tab(&mut harness, "Publish");
    start(&mut harness);
    wait_until(&mut harness, "some messages", |app| app.counts().sent >= 3);
    request_close(&mut harness);
    assert!(close_cancelled(&harness), "the close was not held back");
    wait_for_label(&mut harness, "A send is under way");
    assert!(harness.query_by_label_contains("Resume sending").is_some());
    harness
        .get_by_label("Close and stop sending")
        .click_accesskit();
    wait_until(&mut harness, "the window to close", |app| {
        app.closing() == Closing::Closed
    });
    let counts = harness.state().counts();
    assert!(!harness.state().is_running());
    assert_eq!(counts.sending, 0, "{counts:?}");
    assert!(counts.pending > 0, "the run was not stopped: {counts:?}");
    assert_eq!(server.received_count() as u64, counts.sent);
}

/// Issue #20, item 2: closing during a run with unsaved edits asked "Save changes / Discard
/// changes / Keep editing" without saying that either way the send stops. The buttons say it,
/// and "Save changes and stop sending" saves, stops the run and closes.
#[test]
fn closing_during_a_run_with_unsaved_edits_says_the_send_stops_too() {
    let server = SmtpServer::builder()
        .rule(|_| Reply::SlowData(Duration::from_millis(60)))
        .start();
    let dir = campaign(
        &addresses(60),
        &[RelayConf::new("main", server.port())],
        "connections = 1",
    );
    let mut harness = harness(&dir);
    opened(&mut harness);
    click_tab(&mut harness, "Publish");
    start(&mut harness);
    wait_until(&mut harness, "some messages", |app| app.counts().sent >= 3);
    click_tab(&mut harness, "Compose");
    harness.get_by_label("Subject").focus();
    harness.get_by_label("Subject").type_text(" and more");
    harness.step();
    assert!(harness.state().is_dirty());

    request_close(&mut harness);
    assert!(close_cancelled(&harness), "the close was not held back");
    wait_for_label(&mut harness, "Save changes and stop sending");
    assert!(
        harness
            .query_by_label_contains("A send is under way")
            .is_some()
    );
    assert!(
        harness
            .query_by_label("Discard changes and stop sending")
            .is_some()
    );
    assert!(harness.query_by_label("Keep editing and sending").is_some());
    assert!(harness.query_by_label("Save changes").is_none());
    harness
        .get_by_label("Save changes and stop sending")
        .click_accesskit();
    wait_until(&mut harness, "the window to close", |app| {
        app.closing() == Closing::Closed
    });
    let counts = harness.state().counts();
    assert!(!harness.state().is_running());
    assert!(counts.pending > 0, "the run was not stopped: {counts:?}");
    let saved = std::fs::read_to_string(&dir.campaign).unwrap();
    assert!(saved.contains("and more"), "{saved}");
}

/// Issue #20, item 2: a stop held up by a relay that stopped answering can be cut short.
#[test]
fn close_now_does_not_wait_for_a_relay_that_stopped_answering() {
    let server = SmtpServer::builder().rule(|_| Reply::Hang).start();
    let dir = campaign(
        &addresses(3),
        &[RelayConf::new("main", server.port())],
        "connections = 1\ncommand_timeout_secs = 60",
    );
    let mut harness = harness(&dir);
    opened(&mut harness);
    click_tab(&mut harness, "Publish");
    start(&mut harness);
    wait_until(&mut harness, "a message under way", |app| {
        app.progress().is_some_and(|p| p.counts.sending > 0)
    });
    request_close(&mut harness);
    wait_for_label(&mut harness, "Close and stop sending");
    harness
        .get_by_label("Close and stop sending")
        .click_accesskit();
    wait_for_label(&mut harness, "Stopping the send");
    assert_eq!(harness.state().closing(), Closing::Stopping);
    // The dialog is centred again once its new, shorter content was measured.
    harness.run_steps(2);
    harness.get_by_label("Close now").click_accesskit();
    harness.run_steps(3);
    assert_eq!(harness.state().closing(), Closing::Closed);
    assert!(
        harness.state().is_running(),
        "the stop did not hang after all"
    );
}

/// Issue #20, item 3: Resend failed sends through the relay on screen (saved first), as
/// Start does; a relay's "connected to" is not shown once its settings changed.
#[test]
fn resend_failed_uses_the_relay_on_screen_and_an_old_relay_test_is_not_shown() {
    let old = SmtpServer::builder()
        .attempt_rule(|rcpt, _| {
            if rcpt == "user1@d1.example" || rcpt == "user2@d2.example" {
                Reply::PolicyReject
            } else {
                Reply::Accept
            }
        })
        .start();
    let new = SmtpServer::start();
    let dir = campaign(
        &addresses(6),
        &[RelayConf::new("main", old.port())],
        "connections = 1",
    );
    let mut harness = harness(&dir);
    opened(&mut harness);
    click_tab(&mut harness, "Publish");
    harness.get_by_label("Test connection").click_accesskit();
    wait_for_label(&mut harness, "connected to");
    start(&mut harness);
    wait_until(&mut harness, "the first run", |app| {
        !app.is_running() && app.counts().failed == 2
    });
    assert_eq!(old.received_count(), 4);

    harness
        .get_by_label("Port")
        .set_value_accesskit(f64::from(new.port()));
    harness.run_steps(2);
    assert!(harness.state().is_dirty());
    assert!(
        harness.query_by_label_contains("connected to").is_none(),
        "a test of the old port is still shown"
    );
    assert!(
        harness
            .query_by_label_contains("Changed since the last test")
            .is_some()
    );

    harness.get_by_label("Resend failed (2)").click_accesskit();
    wait_until(&mut harness, "the resend", |app| {
        !app.is_running() && app.counts().sent == 6
    });
    assert_eq!(new.received_count(), 2, "the resend went elsewhere");
    assert_eq!(old.received_count(), 4);
    assert!(!harness.state().is_dirty());
    let saved = std::fs::read_to_string(&dir.campaign).unwrap();
    assert!(saved.contains(&format!("port = {}", new.port())), "{saved}");
}

/// Issue #20, status: the Problems box is answered again once what it depends on changed
/// (here the list, imported after the campaign was opened with an empty one).
#[test]
fn problems_are_found_again_after_the_list_is_imported() {
    let dir = campaign(&[], &[RelayConf::new("main", 2525)], "");
    let mut harness = harness(&dir);
    wait_until(&mut harness, "the empty list's problem", |app| {
        app.problems()
            .iter()
            .any(|problem| problem.contains("no recipients"))
    });
    let mut csv = String::from("email,first_name\n");
    for (n, email) in addresses(4).iter().enumerate() {
        csv.push_str(&format!("{email},Name{n}\n"));
    }
    std::fs::write(dir.path().join("list.csv"), csv).unwrap();
    click_tab(&mut harness, "Recipients");
    harness.get_by_label("Import").click_accesskit();
    wait_until(&mut harness, "the import", |app| app.counts().pending == 4);
    wait_until(&mut harness, "the problem to go", |app| {
        !app.problems()
            .iter()
            .any(|problem| problem.contains("no recipients"))
    });
}

/// Issue #20, status: after Pause and Stop every part of the window says the same thing;
/// a stopped campaign offers Resume sending (not Start) and says why Resend failed is grey;
/// a duplicate shows no run of the campaign it came from.
#[test]
fn pause_stop_and_duplicate_leave_no_contradicting_status() {
    let server = SmtpServer::builder()
        .attempt_rule(|rcpt, _| {
            if rcpt == "user1@d1.example" {
                Reply::TempFail
            } else {
                Reply::SlowData(Duration::from_millis(30))
            }
        })
        .start();
    let dir = campaign(
        &addresses(12),
        &[RelayConf::new("main", server.port())],
        "connections = 1\nretry_delays = [\"1h\"]",
    );
    let mut harness = harness(&dir);
    opened(&mut harness);
    click_tab(&mut harness, "Publish");
    assert!(
        harness
            .query_by_label_contains("Start sends to the 12 recipient(s)")
            .is_some()
            || harness
                .query_by_label_contains("Start imports the list")
                .is_some()
    );
    start(&mut harness);
    wait_until(&mut harness, "a deferral and some sends", |app| {
        app.counts().deferred == 1 && app.counts().sent >= 2
    });
    assert!(
        harness
            .query_by_label_contains("wait out a retry delay and are retried by this run")
            .is_some()
    );
    harness.get_by_label("Pause").click_accesskit();
    wait_until(&mut harness, "the pause", |app| {
        app.progress().is_some_and(|p| {
            matches!(p.state, herald::engine::RunState::Paused { .. }) && p.counts.sending == 0
        })
    });
    assert!(harness.state().status().starts_with("paused"));
    assert!(harness.query_by_label_contains("msg/s").is_none());
    assert!(
        harness
            .query_by_label_contains("Paused: nothing more")
            .is_some()
    );

    harness.get_by_label("Stop").click_accesskit();
    wait_until(&mut harness, "the stop", |app| !app.is_running());
    assert!(harness.query_by_label_contains("msg/s").is_none());
    assert!(harness.query_by_label("last run stopped").is_some());
    assert!(harness.query_by_label_contains("Sent in part").is_some());
    assert!(
        harness
            .query_by_label_contains("Resume sending retries them")
            .is_some()
    );
    assert!(!is_enabled(&harness, "Start"));
    assert!(is_enabled(&harness, "Resume sending"));
    assert!(!is_enabled(&harness, "Resend failed (0)"));

    click_tab(&mut harness, "Campaigns");
    wait_for_label(&mut harness, "Duplicate");
    harness.get_by_label("Duplicate").click_accesskit();
    wait_until(&mut harness, "the copy to open", |app| {
        app.campaign_path()
            .is_some_and(|path| path.to_string_lossy().ends_with("-2.toml"))
            && app.status().contains("valid")
    });
    assert_eq!(harness.state().tab(), Tab::Compose);
    assert!(harness.state().progress().is_none());
    click_tab(&mut harness, "Publish");
    assert!(harness.query_by_label_contains("last run").is_none());
    assert!(harness.query_by_label_contains("Latest errors").is_none());
    assert!(is_enabled(&harness, "Start"));
}

fn is_enabled(harness: &Harness<'_, HeraldApp>, label: &str) -> bool {
    !harness.get_by_label(label).accesskit_node().is_disabled()
}

/// Issue #20, what a marketer expects: the subject line has its own "Insert field", and a
/// new campaign names no email column, so a Mailchimp export's "Email Address" is found.
#[test]
fn the_subject_inserts_fields_and_a_new_campaign_finds_the_email_column_itself() {
    let dir = campaign(&addresses(2), &[RelayConf::new("main", 2525)], "");
    let mut harness = harness(&dir);
    opened(&mut harness);
    // The subject's comes first (the HTML body has one too).
    harness
        .get_all_by_label("Insert field")
        .next()
        .unwrap()
        .click_accesskit();
    wait_for_label(&mut harness, "first_name");
    harness.get_by_label("first_name").click_accesskit();
    harness.run_steps(2);
    assert_eq!(
        harness.state().document().raw.message.subject.as_deref(),
        Some("Hi {{ first_name }}{{ first_name }}")
    );

    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::N);
    wait_for_label(&mut harness, "Discard changes");
    harness.get_by_label("Discard changes").click_accesskit();
    wait_until(&mut harness, "the new campaign", |app| {
        app.campaign_path().is_none()
    });
    assert_eq!(harness.state().document().raw.recipients.email_column, None);
}
