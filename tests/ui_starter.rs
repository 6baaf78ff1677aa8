//! A campaign begun in the window (issue #20, the audit of "New campaign in folder"), driven
//! headless through egui_kittest: the ready-made folder takes a Mailchimp export as it comes
//! and sends text that follows the HTML; a newsletter brought in over a Text body of the
//! marketer's own says that text stays; a toast naming a long path stays inside the window.

use crate::support::window::{click_tab, wait_for_label};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::campaign::{RelayConf, addresses, campaign};
use crate::support::window::wait_until;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use herald::ui::dialogs::Dialogs;
use herald::ui::{HeraldApp, Remembered};

/// What the window says when a newsletter comes in over the campaign's own Text body.
const TEXT_KEPT: &str = "The Text body is still your own text";

/// A window `size` points large on `campaign` (or the start page), whose file chooser answers
/// `chosen` (the newsletter "Open HTML file…" loads).
fn window_choosing(
    db: &Path,
    campaign: Option<PathBuf>,
    chosen: Option<PathBuf>,
    size: egui::Vec2,
) -> Harness<'static, HeraldApp> {
    let db = db.to_path_buf();
    Harness::builder().with_size(size).build_eframe(move |cc| {
        let chosen = chosen.clone();
        HeraldApp::with_service(cc.egui_ctx.clone(), db, campaign, Remembered::default())
            .expect("the app starts")
            .with_dialogs(Dialogs::with_backend(
                std::sync::Arc::new(move |_| chosen.clone()),
                Some(cc.egui_ctx.clone()),
            ))
    })
}

/// "New campaign in folder" on the start page, typed and created.
fn new_campaign_in(harness: &mut Harness<'_, HeraldApp>, folder: &Path) {
    wait_for_label(harness, "No campaigns yet");
    harness.get_by_label("New campaign in folder").focus();
    harness
        .get_by_label("New campaign in folder")
        .type_text(&folder.to_string_lossy());
    harness.step();
    harness.get_by_label("Create").click_accesskit();
    wait_until(harness, "the new campaign to open", |app| {
        app.campaign_path() == Some(folder.join("campaign.toml").as_path())
    });
}

/// Issue #20: the folder "New campaign in folder" writes names no email column and has no
/// text body of its own. A Mailchimp export ("Email Address", "First Name") is imported as it
/// comes, and once a newsletter is loaded the text part previewed is derived from it, not a
/// placeholder.
#[test]
fn a_campaign_made_in_a_folder_takes_a_mailchimp_export_and_its_text_follows_the_html() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("spring sale");
    let newsletter = dir.path().join("newsletter.html");
    std::fs::write(
        &newsletter,
        "<html><body><h1>Spring sale</h1>\
         <p>Our spring sale starts Monday, {{ first_name }}.</p></body></html>",
    )
    .unwrap();
    let mut harness = window_choosing(
        &dir.path().join("herald.db"),
        None,
        Some(newsletter),
        egui::vec2(1280.0, 860.0),
    );
    new_campaign_in(&mut harness, &folder);
    assert!(!folder.join("body.txt").exists(), "a placeholder text body");
    let toml = std::fs::read_to_string(folder.join("campaign.toml")).unwrap();
    let keys: Vec<&str> = toml.lines().filter(|line| !line.starts_with('#')).collect();
    assert!(
        !keys.iter().any(|line| line.starts_with("email_column")),
        "{toml}"
    );
    assert!(!keys.iter().any(|line| line.starts_with("text")), "{toml}");

    std::fs::write(
        folder.join("list.csv"),
        "Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME\r\n\
         ada@example.org,Ada,Lovelace,2,2026-01-04 10:00:00\r\n\
         grace@example.org,Grace,Hopper,5,2026-02-11 09:30:00\r\n",
    )
    .unwrap();
    click_tab(&mut harness, "Recipients");
    harness.get_by_label("Import").click_accesskit();
    wait_until(&mut harness, "the Mailchimp export imported", |app| {
        app.counts().total() == 2
    });
    assert_eq!(harness.state().counts().pending, 2);
    assert!(
        harness
            .query_by_label_contains("No column is named")
            .is_none(),
        "the email column was not found"
    );

    click_tab(&mut harness, "Compose");
    harness.get_by_label("Open HTML file…").click_accesskit();
    wait_until(&mut harness, "the newsletter in the HTML body", |app| {
        app.document().html.contains("spring sale starts Monday")
    });
    harness.run_steps(2);
    assert!(
        harness.query_by_label_contains(TEXT_KEPT).is_none(),
        "a new campaign has no text of its own to keep"
    );
    harness
        .get_by_role_and_label(egui::accesskit::Role::Button, "Preview")
        .click_accesskit();
    wait_for_label(&mut harness, "Our spring sale starts Monday, Ada.");
    assert!(
        harness
            .query_by_label_contains("Write your message here")
            .is_none(),
        "the text part is the starter's placeholder"
    );
    assert!(!folder.join("body.txt").exists());
}

/// Issue #20: loading a newsletter (Open HTML file…, or a whole document pasted into the
/// HTML body) leaves a Text body the marketer wrote as it is; the window says so under the
/// HTML body, and "Clear the Text body" makes the text derived from the new HTML.
#[test]
fn a_newsletter_over_an_own_text_body_says_that_text_stays() {
    let dir = campaign(&addresses(2), &[RelayConf::new("main", 2525)], "");
    std::fs::write(dir.path().join("body.txt"), "Last month's words\n").unwrap();
    let toml = std::fs::read_to_string(&dir.campaign).unwrap();
    std::fs::write(
        &dir.campaign,
        toml.replace(
            "html = \"body.html\"",
            "html = \"body.html\"\ntext = \"body.txt\"",
        ),
    )
    .unwrap();
    let newsletter = dir.path().join("december.html");
    std::fs::write(
        &newsletter,
        "<html><body><p>December news</p></body></html>",
    )
    .unwrap();
    let mut harness = window_choosing(
        &dir.db,
        Some(dir.campaign.clone()),
        Some(newsletter),
        egui::vec2(1280.0, 860.0),
    );
    wait_until(&mut harness, "the campaign to open", |app| {
        app.document().text.starts_with("Last month's")
    });
    assert!(harness.query_by_label_contains(TEXT_KEPT).is_none());

    harness.get_by_label("Open HTML file…").click_accesskit();
    wait_until(&mut harness, "the newsletter in the HTML body", |app| {
        app.document().html.contains("December news")
    });
    wait_for_label(&mut harness, TEXT_KEPT);
    assert_eq!(harness.state().document().text, "Last month's words\n");
    harness
        .get_by_label("Clear the Text body")
        .click_accesskit();
    harness.run_steps(2);
    assert_eq!(harness.state().document().text, "");
    assert!(harness.query_by_label_contains(TEXT_KEPT).is_none());

    // Words of one's own again, then a whole newsletter pasted over the HTML.
    harness.get_by_label("Text body").focus();
    harness.step();
    harness.get_by_label("Text body").type_text("My own words");
    harness.step();
    harness.get_by_label("HTML body").focus();
    harness.step();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.step();
    let pasted = "<!DOCTYPE html><html><body><p>January news</p></body></html>";
    harness.event(egui::Event::Paste(pasted.into()));
    harness.step();
    assert_eq!(harness.state().document().html, pasted);
    wait_for_label(&mut harness, TEXT_KEPT);
    assert_eq!(harness.state().document().text, "My own words");
}

/// Every text shape painted in the last frame, with where it was painted.
fn painted_texts(harness: &Harness<'_, HeraldApp>) -> Vec<(String, egui::Rect, usize)> {
    fn walk(shape: &egui::Shape, out: &mut Vec<(String, egui::Rect, usize)>) {
        match shape {
            egui::Shape::Text(text) => out.push((
                text.galley.text().to_string(),
                text.visual_bounding_rect(),
                text.galley.rows.len(),
            )),
            egui::Shape::Vec(shapes) => shapes.iter().for_each(|shape| walk(shape, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for clipped in &harness.output().shapes {
        walk(&clipped.shape, &mut out);
    }
    out
}

/// Issue #20: toasts were broken into lines of 64 characters at spaces, so one naming a long
/// path (one word) still ran off the window. A toast is now laid out to the window's width,
/// breaking inside a word where it must.
#[test]
fn a_toast_naming_a_long_path_stays_inside_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join(format!(
        "campaigns-of-the-spring-season-for-the-shop-{}",
        "and-its-newsletter-readers-".repeat(4)
    ));
    let size = egui::vec2(900.0, 700.0);
    let mut harness = window_choosing(&dir.path().join("herald.db"), None, None, size);
    new_campaign_in(&mut harness, &folder);
    let toast = harness.state().last_toast().unwrap().to_string();
    assert!(toast.contains("campaigns-of-the-spring"), "{toast}");
    assert!(toast.chars().count() > 150, "the path is not long: {toast}");

    // The toast slides in from the right edge: let it settle.
    let window = egui::Rect::from_min_size(egui::Pos2::ZERO, size);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        harness.step();
        // A toast wholly outside the window may not be painted at all.
        let shown = painted_texts(&harness)
            .into_iter()
            .find(|(text, _, _)| text.replace('\n', "").starts_with("Created"));
        if let Some((_, rect, rows)) = &shown
            && window.contains_rect(*rect)
        {
            assert!(*rows > 1, "the path was not broken into lines");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the toast never showed inside the window {window:?}: {shown:?}"
        );
        std::thread::sleep(Duration::from_millis(15));
    }
}
