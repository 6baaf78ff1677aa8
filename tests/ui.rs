//! The window driven headless through egui_kittest's accessibility tree: tabs, compose, import,
//! a real send to the scriptable SMTP server, pause/resume and resend of failures, checking what
//! the user would see and what the server received. Issue #6.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use herald::ui::{HeraldApp, Remembered, Tab};
use support::campaign::{CampaignDir, RelayConf, addresses, campaign};
use support::smtp_server::{Reply, SmtpServer};

fn harness(dir: &CampaignDir) -> Harness<'static, HeraldApp> {
    let db = dir.db.clone();
    let path = dir.campaign.clone();
    Harness::builder()
        .with_size(egui::vec2(1280.0, 860.0))
        .build_eframe(move |cc| {
            HeraldApp::with_service(cc.egui_ctx.clone(), db, Some(path), Remembered::default())
                .expect("the app starts")
        })
}

/// Steps frames until `test` holds, failing the test rather than hanging.
fn wait_until(harness: &mut Harness<'_, HeraldApp>, what: &str, test: impl Fn(&HeraldApp) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        harness.step();
        if test(harness.state()) {
            harness.step();
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never saw {what}; status: {}; problems: {:?}",
            harness.state().status(),
            harness.state().problems()
        );
        std::thread::sleep(Duration::from_millis(15));
    }
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

    harness.get_by_label("Recipients").click();
    harness.step();
    harness.step();
    assert_eq!(harness.state().tab(), Tab::Recipients);
    assert!(harness.query_by_label("Import").is_some());

    harness.get_by_label("Publish").click();
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
    harness.get_by_label("Recipients").click();
    harness.run_steps(4);
    harness.get_by_label("Import").click();
    wait_until(&mut harness, "the import", |app| app.counts().pending == 25);
    wait_until(&mut harness, "the table rows", |app| {
        app.table_total() == 25 && app.table_row(0).is_some()
    });
    assert!(harness.query_by_label("user0@d0.example").is_some());
    assert!(harness.query_all_by_label_contains("25 recipients").count() >= 1);

    harness.get_by_label("Compose").click();
    harness.step();
    harness
        .get_by_role_and_label(egui::accesskit::Role::Button, "Preview")
        .click();
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
    harness.get_by_label("Publish").click();
    harness.step();
    harness.get_by_label("Start").click();
    wait_until(&mut harness, "the run to end", |app| {
        !app.is_running() && app.counts().sent == 30
    });
    assert!(harness.query_by_label_contains("100 %").is_some());
    assert_eq!(server.received_count(), 30);
    harness.get_by_label("Recipients").click();
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
    harness.get_by_label("Publish").click();
    harness.step();
    harness.get_by_label("Start").click();
    wait_until(&mut harness, "some messages", |app| app.counts().sent >= 4);
    harness.get_by_label("Pause").click();
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
    harness.get_by_label("Resume").click();
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
    harness.get_by_label("Publish").click();
    harness.step();
    harness.get_by_label("Start").click();
    wait_until(&mut harness, "the first run", |app| {
        !app.is_running() && app.counts().failed == 2
    });
    harness.get_by_label("Resend failed (2)").click();
    wait_until(&mut harness, "the resend", |app| {
        !app.is_running() && app.counts().sent == 6 && app.counts().failed == 0
    });
    assert_eq!(server.received_count(), 6);
    let received = server.rcpt_counts();
    assert_eq!(received.get("user1@d1.example"), Some(&1));
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
    harness.get_by_label("Send test").click();
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
