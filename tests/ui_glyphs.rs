//! Every character the window draws is in the fonts it installs: egui draws a missing glyph as
//! a box, and in debug builds and tests (`MissingGlyphPolicy::Panic`) it panics, which once
//! took down the Publish tab drawn before a campaign was open ("→" is not in egui's bundled
//! fonts). One test sweeps the sources' string text against the window's own fonts; one draws
//! each tab with no campaign open.

use std::path::{Path, PathBuf};

use crate::support::window::window;
use egui_kittest::kittest::Queryable;
use herald::ui::{Remembered, Tab};

/// The non-ASCII characters on code lines (not comments, not test modules) of `dir`'s sources,
/// with a file that uses each.
fn characters_in(dir: &Path, found: &mut Vec<(char, PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            characters_in(&path, found);
            continue;
        }
        let is_tests = path.file_name().is_some_and(|name| name == "tests.rs");
        // Text matched against what users and mail servers write, never drawn: the email
        // column's names in the users' languages (メールアドレス), and the report reader's
        // phrases of bounce notices (a Japanese carrier's 宛先不明).
        let is_data =
            path.ends_with("recipients/columns.rs") || path.ends_with("inbox/report/classify.rs");
        if path.extension().is_none_or(|ext| ext != "rs") || is_tests || is_data {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            if line.trim_start().starts_with("//") {
                continue;
            }
            for c in line.chars().filter(|c| !c.is_ascii()) {
                if !found.iter().any(|(known, _)| *known == c) {
                    found.push((c, path.clone()));
                }
            }
        }
    }
}

#[test]
fn every_character_the_sources_draw_is_in_the_windows_fonts() {
    let db = tempfile::tempdir().unwrap();
    let mut harness = window(&db.path().join("herald.db"), None, Remembered::default());
    harness.step();
    // Everything under src/ may reach the window: the Problems box shows the engine's, the
    // campaign's and the DNS checks' sentences as they are.
    let mut found = Vec::new();
    characters_in(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(!found.is_empty(), "the sweep read the sources");
    let missing: Vec<String> = harness.ctx.fonts_mut(|fonts| {
        found
            .iter()
            .filter(|(c, _)| {
                [egui::FontFamily::Proportional, egui::FontFamily::Monospace]
                    .into_iter()
                    .any(|family| !fonts.has_glyph(&egui::FontId::new(14.0, family), *c))
            })
            .map(|(c, path)| format!("{c:?} (U+{:04X}) in {}", *c as u32, path.display()))
            .collect()
    });
    assert!(
        missing.is_empty(),
        "the window's fonts lack: {}",
        missing.join("; ")
    );
}

#[test]
fn every_tab_draws_before_a_campaign_is_open() {
    let db = tempfile::tempdir().unwrap();
    let mut harness = window(&db.path().join("herald.db"), None, Remembered::default());
    harness.run_steps(2);
    for (label, tab) in [
        ("Publish", Tab::Publish),
        ("Compose", Tab::Compose),
        ("Recipients", Tab::Recipients),
        ("Results", Tab::Results),
    ] {
        // The harness panics on a glyph its fonts lack, as debug builds do.
        harness.get_by_label(label).click_accesskit();
        harness.run_steps(3);
        assert_eq!(harness.state().tab(), tab, "the {label} tab is shown");
        assert!(harness.state().campaign_path().is_none());
    }
}
