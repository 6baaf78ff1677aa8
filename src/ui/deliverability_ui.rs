//! The "Deliverability (DNS)" section of Publish (issue #23): what receiving servers will read
//! in DNS about this campaign's mail, before anything is sent. Each finding is green, amber or
//! red with what was checked and what was found; those that are not green also show the record
//! seen and the fix, as text to select and copy. Owns the last findings, which campaign and
//! which ask they answer, and whether a check is under way; draws them and returns actions.
//! Decides nothing: the findings come from `app::deliverability` through the service, checked
//! on a thread of the service's, never on the frame. Findings are shown only for the campaign
//! they were read for, and an answer to an older ask never replaces a newer one.

use std::path::{Path, PathBuf};

use super::app::{Action, ViewContext};
use crate::app::deliverability::{Finding, Level};

/// Green, as the rest of the window says "sent".
const GREEN: egui::Color32 = egui::Color32::from_rgb(0x2e, 0x8b, 0x57);

#[derive(Default)]
pub struct DnsPanel {
    /// The campaign the last ask was for (None: ask on the next frame Publish is drawn).
    asked_for: Option<PathBuf>,
    /// The last ask's number; answers to any other are dropped.
    generation: u64,
    checking: bool,
    /// The last findings, with the campaign they were read for and when.
    shown: Option<Shown>,
}

struct Shown {
    path: PathBuf,
    at_ms: i64,
    findings: Result<Vec<Finding>, String>,
}

impl DnsPanel {
    /// Another campaign (or none): nothing of this one's stays, and the next frame asks again.
    pub fn reset(&mut self) {
        *self = DnsPanel {
            generation: self.generation,
            ..DnsPanel::default()
        };
    }

    /// What decides the findings may have changed (the campaign was saved): ask again on the
    /// next frame; the findings on screen stay until the new ones arrive.
    pub fn stale(&mut self) {
        self.asked_for = None;
    }

    /// Asks for the findings when none were asked for the campaign on screen.
    pub fn keep_current(&mut self, ctx: &ViewContext<'_>, actions: &mut Vec<Action>) {
        self.keep_current_for(ctx.path, actions);
    }

    fn keep_current_for(&mut self, path: Option<&Path>, actions: &mut Vec<Action>) {
        let Some(path) = path else {
            return;
        };
        if self.asked_for.as_deref() != Some(path) {
            self.ask(path, actions);
        }
    }

    fn ask(&mut self, path: &Path, actions: &mut Vec<Action>) {
        self.generation += 1;
        self.asked_for = Some(path.to_path_buf());
        self.checking = true;
        actions.push(Action::CheckDns(self.generation));
    }

    /// Folds in what the service answered for `asked` (the campaign in the window is `path`).
    /// `generation` None: the findings Start read just now, newer than any shown.
    pub fn answer(
        &mut self,
        asked: PathBuf,
        generation: Option<u64>,
        findings: Result<Vec<Finding>, String>,
        path: Option<&Path>,
    ) {
        if path != Some(asked.as_path()) {
            return;
        }
        match generation {
            Some(generation) if generation != self.generation => return,
            Some(_) => self.checking = false,
            // A check asked before Start is still under way: it answers in its turn.
            None => {}
        }
        self.shown = Some(Shown {
            path: asked,
            at_ms: crate::app::now_ms(),
            findings,
        });
    }

    /// The section: its heading, "Check again" with what is under way, and the findings.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &ViewContext<'_>, actions: &mut Vec<Action>) {
        ui.heading("Deliverability (DNS)");
        let Some(path) = ctx.path else {
            ui.weak("Save the campaign to check what receiving servers will read in DNS.");
            return;
        };
        let said = self
            .shown
            .as_ref()
            .filter(|shown| shown.path == path)
            .map(|shown| tally(shown, crate::app::now_ms()));
        ui.horizontal(|ui| {
            let hint = "Read SPF, DKIM, DMARC (and reverse DNS in direct mode) again, as \
                        receiving servers will";
            if ui
                .add_enabled(!self.checking, egui::Button::new("Check again"))
                .on_hover_text(hint)
                .clicked()
            {
                self.ask(path, actions);
            }
            if self.checking {
                ui.spinner();
                ui.label("Checking DNS…");
            } else if let Some(said) = said {
                ui.weak(said);
            }
        });
        let Some(shown) = self.shown.as_ref().filter(|shown| shown.path == path) else {
            return;
        };
        match &shown.findings {
            Ok(findings) => {
                ui.weak(
                    "What receiving servers will read in DNS about this campaign's mail. A \
                     problem stops Start until it is fixed or you choose to send anyway; a \
                     warning does not.",
                );
                for finding in findings {
                    finding_ui(ui, finding);
                }
            }
            Err(error) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("The DNS could not be checked: {error}"),
                );
            }
        }
    }
}

/// "Checked 2 minutes ago: 3 ok, 1 warning, 1 problem".
fn tally(shown: &Shown, now_ms: i64) -> String {
    let when = super::library_ui::ago(now_ms, shown.at_ms);
    let Ok(findings) = &shown.findings else {
        return format!("Checked {when}");
    };
    let count = |level: Level| findings.iter().filter(|f| f.level == level).count();
    format!(
        "Checked {when}: {} ok, {} warning(s), {} problem(s)",
        count(Level::Green),
        count(Level::Amber),
        count(Level::Red)
    )
}

/// The word and colour of a level, as `herald check` says it.
fn level_word(ui: &egui::Ui, level: Level) -> (&'static str, egui::Color32) {
    match level {
        Level::Green => ("OK", GREEN),
        Level::Amber => ("Warning", ui.visuals().warn_fg_color),
        Level::Red => ("Problem", ui.visuals().error_fg_color),
    }
}

/// One finding: its level and what was checked and found, as one label (read whole by screen
/// readers); the record seen and the fix beneath when it is not green, selectable so they can
/// be copied into a DNS provider's form.
fn finding_ui(ui: &mut egui::Ui, finding: &Finding) {
    let (word, color) = level_word(ui, finding.level);
    let mut line = egui::text::LayoutJob::default();
    let style = ui.style();
    egui::RichText::new(format!("{word}  "))
        .strong()
        .color(color)
        .append_to(
            &mut line,
            style,
            egui::FontSelection::Default,
            egui::Align::Center,
        );
    egui::RichText::new(format!(
        "{} {}: {}",
        finding.mechanism.label(),
        finding.subject,
        finding.summary
    ))
    .append_to(
        &mut line,
        style,
        egui::FontSelection::Default,
        egui::Align::Center,
    );
    ui.add(egui::Label::new(line).selectable(true));
    if finding.level == Level::Green {
        return;
    }
    ui.indent(("dns_finding", &finding.subject, finding.mechanism), |ui| {
        if let Some(record) = &finding.record {
            selectable(ui, "Record seen:", record, true);
        }
        if let Some(fix) = &finding.fix {
            selectable(ui, "Fix:", fix, false);
        }
    });
}

/// `label text` as one selectable label (found whole by tests and screen readers): the label
/// weak, the text as readable as the summary (the fix is what the user came for); a record in
/// monospace, as DNS providers show them.
fn selectable(ui: &mut egui::Ui, label: &str, text: &str, monospace: bool) {
    let mut line = egui::text::LayoutJob::default();
    let style = ui.style();
    let size = egui::TextStyle::Body.resolve(style).size;
    egui::RichText::new(format!("{label} ")).weak().append_to(
        &mut line,
        style,
        egui::FontSelection::Default,
        egui::Align::Center,
    );
    let text = egui::RichText::new(text);
    let text = if monospace {
        // Monospace a little smaller than the body, so a 400-character key stays compact.
        text.family(egui::FontFamily::Monospace).size(size - 1.5)
    } else {
        text
    };
    text.append_to(
        &mut line,
        style,
        egui::FontSelection::Default,
        egui::Align::Center,
    );
    ui.add(egui::Label::new(line).selectable(true));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::deliverability::Mechanism;

    fn findings(summary: &str) -> Result<Vec<Finding>, String> {
        Ok(vec![Finding {
            mechanism: Mechanism::Spf,
            level: Level::Green,
            subject: "acme.example".into(),
            summary: summary.into(),
            record: None,
            fix: None,
        }])
    }

    fn summary(panel: &DnsPanel) -> Option<String> {
        let shown = panel.shown.as_ref()?;
        Some(shown.findings.as_ref().ok()?.first()?.summary.clone())
    }

    /// Asks as a frame of Publish would, returning the ask's number.
    fn ask(panel: &mut DnsPanel, path: &Path) -> u64 {
        let mut actions = Vec::new();
        panel.ask(path, &mut actions);
        match actions.as_slice() {
            [Action::CheckDns(generation)] => *generation,
            other => panic!("one ask expected: {other:?}"),
        }
    }

    #[test]
    fn only_the_last_ask_for_the_campaign_on_screen_is_shown() {
        let a = Path::new("/c/a.toml");
        let b = Path::new("/c/b.toml");
        let mut panel = DnsPanel::default();
        let first = ask(&mut panel, a);
        let second = ask(&mut panel, a);
        // The older ask answers last: dropped, still checking.
        panel.answer(a.into(), Some(first), findings("old"), Some(a));
        assert_eq!(summary(&panel), None);
        assert!(panel.checking);
        panel.answer(a.into(), Some(second), findings("new"), Some(a));
        assert_eq!(summary(&panel).as_deref(), Some("new"));
        assert!(!panel.checking);
        // Another campaign opened: nothing of a.toml stays, and a.toml's late answers are
        // dropped even with the right number.
        panel.reset();
        assert_eq!(summary(&panel), None);
        let third = ask(&mut panel, b);
        panel.answer(a.into(), Some(third), findings("a's"), Some(b));
        assert_eq!(summary(&panel), None);
        // What Start read is shown for its campaign, and the ask under way still answers.
        panel.answer(b.into(), None, findings("start"), Some(b));
        assert_eq!(summary(&panel).as_deref(), Some("start"));
        assert!(panel.checking);
        panel.answer(b.into(), Some(third), findings("b's"), Some(b));
        assert_eq!(summary(&panel).as_deref(), Some("b's"));
    }

    #[test]
    fn a_save_asks_again_once() {
        let a = std::path::PathBuf::from("/c/a.toml");
        let mut panel = DnsPanel::default();
        let asks = |panel: &mut DnsPanel| {
            let mut actions = Vec::new();
            panel.keep_current_for(Some(&a), &mut actions);
            actions.len()
        };
        assert_eq!(asks(&mut panel), 1);
        assert_eq!(asks(&mut panel), 0, "one ask per campaign, not per frame");
        panel.stale();
        assert_eq!(asks(&mut panel), 1);
        assert_eq!(asks(&mut panel), 0);
    }
}
