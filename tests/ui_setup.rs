//! Setting a campaign up in the window (issue #20), driven headless through egui_kittest:
//! saving keeps the comments and layout of a campaign file a person wrote, Start shows what
//! `herald check` warns of and asks before a first send past a red one (against the scriptable
//! SMTP server), "Open HTML file…" brings a design tool's export in with its images inline,
//! and the bounce mailbox and unsubscribe endpoint are set up in fields, not in TOML.

use crate::support::window::{click_tab, wait_for_label};

use crate::support::campaign::{CampaignDir, RelayConf, addresses, campaign};
use crate::support::smtp_server::SmtpServer;
use crate::support::window::{start, wait_until, window};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use herald::ui::{HeraldApp, Remembered};

fn harness(dir: &CampaignDir) -> Harness<'static, HeraldApp> {
    window(&dir.db, Some(dir.campaign.clone()), Remembered::default())
}

fn opened(harness: &mut Harness<'_, HeraldApp>) {
    wait_until(harness, "the campaign to open", |app| {
        app.status().contains("valid") || !app.problems().is_empty()
    });
}

fn save(harness: &mut Harness<'_, HeraldApp>) {
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::S);
    wait_until(harness, "the save", |app| !app.is_dirty());
}

/// The lines of `after` that are not in `before`, and those of `before` gone from `after`.
fn changed_lines(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
    let added = after
        .lines()
        .filter(|line| !before.lines().any(|old| old == *line))
        .map(String::from)
        .collect();
    let removed = before
        .lines()
        .filter(|line| !after.lines().any(|new| new == *line))
        .map(String::from)
        .collect();
    (added, removed)
}

/// A campaign file as a person writes one: a comment on top, one beside a value, and a key
/// Herald does not know yet.
fn written_by_hand(dir: &CampaignDir) -> String {
    let generated = std::fs::read_to_string(&dir.campaign).unwrap();
    let text = format!(
        "# Spring sale. Ask Ben before changing the sender.\n\n{}",
        generated.replace(
            "[recipients]\ncsv = \"list.csv\"",
            "[recipients]\ncsv = \"list.csv\"   # exported from the shop on Monday"
        )
    );
    std::fs::write(&dir.campaign, &text).unwrap();
    text
}

/// Issue #20: saving from the window edits the subject's line and nothing else; the
/// comments stay where the person put them.
#[test]
fn saving_from_the_window_keeps_the_files_comments() {
    let dir = campaign(&addresses(2), &[RelayConf::new("main", 2525)], "");
    let before = written_by_hand(&dir);
    let mut harness = harness(&dir);
    opened(&mut harness);
    harness.get_by_label("Subject").focus();
    harness
        .get_by_label("Subject")
        .type_text(", spring is here");
    harness.step();
    save(&mut harness);

    let after = std::fs::read_to_string(&dir.campaign).unwrap();
    assert_eq!(
        changed_lines(&before, &after),
        (
            vec!["subject = \"Hi {{ first_name }}, spring is here\"".to_string()],
            vec!["subject = \"Hi {{ first_name }}\"".to_string()]
        ),
        "{after}"
    );
    assert!(after.starts_with("# Spring sale. Ask Ben before changing the sender.\n"));
    assert!(after.contains("csv = \"list.csv\"   # exported from the shop on Monday"));
}

/// Issue #20, item 5: the window sent 1,531 messages without the warnings `herald check`
/// prints. Start shows them (from the same function) and, before a first send past a red
/// one, asks: nothing reaches the server until "Send anyway".
#[test]
fn start_shows_the_checks_warnings_and_sends_nothing_until_confirmed() {
    let server = SmtpServer::start();
    let dir = campaign(
        &addresses(3),
        &[RelayConf::new("main", server.port())],
        "connections = 1",
    );
    let mut harness = harness(&dir);
    opened(&mut harness);
    click_tab(&mut harness, "Publish");
    harness.get_by_label("Start").click_accesskit();
    wait_for_label(&mut harness, "Send anyway?");
    // Red, the reason it asks; then amber, listed without being the reason.
    for warning in [
        "• No unsubscribe link",
        "• No DKIM signature",
        "• No bounce mailbox",
    ] {
        assert!(
            harness
                .query_all_by_label_contains(warning)
                .next()
                .is_some(),
            "the question does not name {warning:?}"
        );
    }
    harness.run_steps(20);
    assert_eq!(server.received_count(), 0, "sent before the answer");
    assert!(!harness.state().is_running());
    assert_eq!(harness.state().counts().sent, 0);

    harness.get_by_label("Send anyway").click_accesskit();
    wait_until(&mut harness, "the run", |app| {
        !app.is_running() && app.counts().sent == 3
    });
    assert_eq!(server.received_count(), 3);
    // The warnings stay listed on Publish, where the run is.
    assert!(
        harness
            .query_all_by_label_contains("no bounce mailbox ([bounces])")
            .next()
            .is_some()
    );
}

fn type_into(harness: &mut Harness<'_, HeraldApp>, label: &str, text: &str) {
    harness.get_by_label(label).focus();
    harness.step();
    harness.get_by_label(label).type_text(text);
    harness.step();
}

/// Issue #20: the bounce mailbox and the unsubscribe endpoint are set up in fields on
/// Publish, not by pasting TOML; saving writes their keys into the file, which keeps its
/// comments. Drawing the empty fields changes nothing.
#[test]
fn the_mailbox_and_the_endpoint_are_set_up_in_fields_and_saved_into_the_file() {
    let dir = campaign(&addresses(2), &[RelayConf::new("main", 2525)], "");
    let before = written_by_hand(&dir);
    let mut harness = harness(&dir);
    opened(&mut harness);
    click_tab(&mut harness, "Publish");
    assert!(
        !harness.state().is_dirty(),
        "drawing the empty form edited the campaign"
    );
    assert!(harness.query_by_label("Check mailbox").is_none());
    harness
        .get_by_label("Mailbox and unsubscribe settings")
        .click_accesskit();
    harness.run_steps(2);
    assert!(!harness.state().is_dirty());

    type_into(&mut harness, "Mailbox host", "imap.herald.example");
    type_into(&mut harness, "Mailbox username", "bounces@herald.example");
    harness
        .get_by_label("Mailbox port")
        .set_value_accesskit(1143.0);
    harness.step();
    type_into(&mut harness, "Return path", "bounces@herald.example");
    type_into(
        &mut harness,
        "Unsubscribe link",
        "https://u.herald.example/u/{token}",
    );
    type_into(&mut harness, "Endpoint to pull", "https://u.herald.example");
    assert!(harness.state().is_dirty());
    // "Test mailbox": the mailbox can be checked once it is set up.
    assert!(harness.query_by_label("Check mailbox").is_some());
    save(&mut harness);

    let after = std::fs::read_to_string(&dir.campaign).unwrap();
    let (_, removed) = changed_lines(&before, &after);
    assert!(removed.is_empty(), "lines lost: {removed:?}\n{after}");
    assert!(after.starts_with("# Spring sale. Ask Ben before changing the sender.\n"));
    assert!(after.contains("csv = \"list.csv\"   # exported from the shop on Monday"));
    let saved = herald::campaign::RawCampaign::from_toml(&after).unwrap();
    let bounces = saved.bounces.expect("a [bounces] section");
    assert_eq!(bounces.host.as_deref(), Some("imap.herald.example"));
    assert_eq!(bounces.username.as_deref(), Some("bounces@herald.example"));
    assert_eq!(bounces.port, Some(1143));
    assert_eq!(
        bounces.return_path.as_deref(),
        Some("bounces@herald.example")
    );
    let unsubscribe = saved.unsubscribe.expect("an [unsubscribe] section");
    assert_eq!(
        unsubscribe.url.as_deref(),
        Some("https://u.herald.example/u/{token}")
    );
    assert_eq!(
        unsubscribe.endpoint.as_deref(),
        Some("https://u.herald.example")
    );

    // Emptied, the endpoint's section leaves the file again.
    for label in ["Unsubscribe link", "Endpoint to pull"] {
        harness.get_by_label(label).focus();
        harness.step();
        harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
        harness.key_press(egui::Key::Backspace);
        harness.step();
    }
    save(&mut harness);
    let emptied = std::fs::read_to_string(&dir.campaign).unwrap();
    assert!(!emptied.contains("[unsubscribe]"), "{emptied}");
    assert!(emptied.contains("[bounces]"));
}

/// Issue #20, item 4: "Open HTML file…" loads a newsletter exported from a design tool; its
/// local images (an `<img>`, and a CSS `background-image:url(…)` as design tools write) are
/// copied beside the campaign and go out as inline parts the HTML shows by `cid:`, the remote
/// one stays a link, and the missing one is named.
#[test]
fn open_html_file_brings_a_newsletter_in_with_its_images_inline() {
    let server = SmtpServer::start();
    let dir = campaign(
        &addresses(1),
        &[RelayConf::new("main", server.port())],
        "connections = 1",
    );
    let export = tempfile::tempdir().unwrap();
    std::fs::create_dir(export.path().join("images")).unwrap();
    let logo = b"\x89PNG\r\n\x1a\n a logo, as far as this test cares";
    std::fs::write(export.path().join("images/logo.png"), logo).unwrap();
    std::fs::write(export.path().join("images/hero.png"), b"\x89PNG a hero").unwrap();
    let newsletter = export.path().join("newsletter.html");
    std::fs::write(
        &newsletter,
        "<html><body><img src=\"images/logo.png\" alt=\"Acme\">\
         <td style=\"background-image:url(images/hero.png);height:200px\"></td>\
         <p>Hello {{ first_name }}</p><img src=\"https://cdn.acme.example/banner.png\">\
         <img src=\"images/gone.png\"></body></html>",
    )
    .unwrap();
    let (db, path) = (dir.db.clone(), dir.campaign.clone());
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 860.0))
        .build_eframe(move |cc| {
            let chosen = newsletter.clone();
            HeraldApp::with_service(cc.egui_ctx.clone(), db, Some(path), Remembered::default())
                .expect("the app starts")
                .with_dialogs(herald::ui::dialogs::Dialogs::with_backend(
                    std::sync::Arc::new(move |_| Some(chosen.clone())),
                    Some(cc.egui_ctx.clone()),
                ))
        });
    opened(&mut harness);
    harness.get_by_label("Open HTML file…").click_accesskit();
    wait_until(&mut harness, "the newsletter in the HTML body", |app| {
        app.document().html.contains("cid:logo.png")
    });
    let document = harness.state().document().clone();
    assert_eq!(
        document.raw.message.inline,
        vec!["logo.png".to_string(), "hero.png".to_string()]
    );
    assert!(
        document.html.contains("url(cid:hero.png)"),
        "{}",
        document.html
    );
    assert!(
        document
            .html
            .contains("src=\"https://cdn.acme.example/banner.png\"")
    );
    assert!(document.html.contains("src=\"images/gone.png\""));
    assert_eq!(std::fs::read(dir.path().join("logo.png")).unwrap(), logo);
    wait_for_label(&mut harness, "2 images copied into the campaign folder");
    assert!(
        harness.query_by_label_contains("images/gone.png").is_some(),
        "the missing image is not named"
    );
    assert!(harness.state().is_dirty());

    click_tab(&mut harness, "Publish");
    start(&mut harness);
    wait_until(&mut harness, "the send", |app| {
        !app.is_running() && app.counts().sent == 1
    });
    let received = server.received();
    let message = String::from_utf8_lossy(&received[0].data).replace("=\r\n", "");
    assert!(message.contains("Content-ID: <logo.png>"), "{message}");
    assert!(message.contains("cid:logo.png"), "{message}");
    assert!(message.contains("Content-ID: <hero.png>"), "{message}");
    assert!(message.contains("url(cid:hero.png)"), "{message}");
    assert!(message.contains("https://cdn.acme.example/banner.png"));
}
