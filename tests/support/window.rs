//! Driving the window headless (egui_kittest): the app on a campaign and a database, and stepping
//! frames until something holds, failing the test rather than hanging. Shared by the window's
//! test modules (`ui`, `ui_setup`, `ui_signin`, `ui_starter`, `ui_status`, `ui_trust`, `ui_feedback`…).
//!
//! The window tests press widgets with `click_accesskit` (by widget id, as a screen reader
//! does) rather than `click` (a pointer at the centre of where the last frame drew it): answers
//! arrive from the service between frames, and a Problems box or findings list appearing above
//! moves everything below, so a pointer click lands on whatever is there now. The views keep
//! ids stable by drawing what comes and goes in scopes of its own.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use herald::ui::{HeraldApp, Remembered};

/// The window at 1280 × 860 over `db`, opening `campaign` when given, with `remembered` state.
pub fn window(
    db: &Path,
    campaign: Option<PathBuf>,
    remembered: Remembered,
) -> Harness<'static, HeraldApp> {
    let db = db.to_path_buf();
    Harness::builder()
        .with_size(egui::vec2(1280.0, 860.0))
        .build_eframe(move |cc| {
            HeraldApp::with_service(cc.egui_ctx.clone(), db, campaign, remembered)
                .expect("the app starts")
        })
}

/// Steps frames until `test` holds (then one more), failing within a minute with what the
/// window says instead of hanging.
pub fn wait_until(
    harness: &mut Harness<'_, HeraldApp>,
    what: &str,
    test: impl Fn(&HeraldApp) -> bool,
) {
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

/// Presses Start and, when the window asks first, answers "Send anyway": the test campaigns
/// have no unsubscribe link and no DKIM, which a first send asks about (issue #20). For tests
/// about sending, not about that question.
pub fn start(harness: &mut Harness<'_, HeraldApp>) {
    harness.get_by_label("Start").click_accesskit();
    wait_until(harness, "the run or the question before it", |app| {
        app.is_running() || app.progress().is_some() || app.is_asking_to_send_anyway()
    });
    if harness.state().is_asking_to_send_anyway() {
        harness.get_by_label("Send anyway").click_accesskit();
        harness.step();
    }
}

/// Steps frames until a widget labelled with `text` (in part) is on screen, failing within a
/// minute with what the window says instead.
pub fn wait_for_label(harness: &mut Harness<'_, HeraldApp>, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while harness.query_all_by_label_contains(text).next().is_none() {
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

/// Turns to the tab labelled `label` (the first widget so labelled: a page may repeat the
/// word) and draws it.
pub fn click_tab(harness: &mut Harness<'_, HeraldApp>, label: &str) {
    harness
        .get_all_by_label(label)
        .next()
        .expect("the tab")
        .click_accesskit();
    harness.run_steps(2);
}
