//! The window's chrome around the shown view: the top bar (File menu, campaign file, theme,
//! tabs), the status bar, the problems box, and the two questions asked in a modal (send
//! anyway after a failed check; what becomes of unsaved edits). Draws and returns actions;
//! never talks to the service.

use std::path::PathBuf;

use super::{Action, Closing, HeraldApp, Tab};
use crate::ui::dialogs::Purpose;

impl HeraldApp {
    /// Asks whether to send when a check before the start failed: mailing people who left is
    /// what gets a sender junked, so the window never decides that alone (issue #15).
    pub(super) fn send_anyway_ui(&self, ctx: &egui::Context, actions: &mut Vec<Action>) {
        let Some(found) = &self.ask_send_anyway else {
            return;
        };
        egui::Modal::new(egui::Id::unique("send_anyway")).show(ctx, |ui| {
            ui.set_max_width(520.0);
            ui.heading("Send anyway?");
            ui.add_space(4.0);
            if let Some(Err(error)) = &found.pulled {
                ui.label(format!("{}.", sentence(error)));
                ui.label(
                    "People who unsubscribed there since the last pull would be mailed again.",
                );
                ui.add_space(4.0);
            }
            cautions_ui(ui, found);
            for finding in crate::app::deliverability::blocking(&found.dns) {
                ui.label(format!(
                    "{} {}: {}.",
                    finding.mechanism.label(),
                    finding.subject,
                    finding.summary
                ));
                if let Some(fix) = &finding.fix {
                    ui.small(format!("Fix: {fix}"));
                }
                ui.add_space(4.0);
            }
            if let Some(Err(error)) = &found.mailbox {
                ui.label(format!("The bounce mailbox was not read: {error}."));
                ui.label(
                    "The latest bounces, complaints and unsubscribes by mail are not applied yet.",
                );
                ui.add_space(4.0);
            }
            ui.add_space(4.0);
            ui.horizontal(|ui| {
                if ui.button("Send anyway").clicked() {
                    actions.push(Action::SendAnyway);
                }
                if ui.button("Cancel").clicked() {
                    actions.push(Action::CancelStart);
                }
            });
        });
    }

    /// Asks what becomes of unsaved edits before another campaign replaces them.
    pub(super) fn unsaved_ui(&mut self, ctx: &egui::Context, actions: &mut Vec<Action>) {
        let Some(pending) = self.pending_switch.clone() else {
            return;
        };
        let mut choice = None;
        egui::Modal::new(egui::Id::unique("unsaved_changes")).show(ctx, |ui| {
            ui.heading("Unsaved changes");
            ui.label(format!(
                "{} has changes that are not saved yet.",
                self.campaign_name()
            ));
            ui.add_space(8.0);
            ui.horizontal(|ui| {
                if self.path.is_some() && ui.button("Save changes").clicked() {
                    choice = Some(0);
                }
                if ui.button("Discard changes").clicked() {
                    choice = Some(1);
                }
                if ui.button("Keep editing").clicked() {
                    choice = Some(2);
                }
            });
        });
        match choice {
            Some(0) => {
                self.pending_switch = None;
                self.switch_after_save = Some(pending);
                actions.push(Action::Save);
            }
            Some(1) => {
                self.pending_switch = None;
                // The edits are given up: the switch then goes through as asked.
                self.saved = self.doc.clone();
                actions.push(pending);
            }
            Some(2) => self.pending_switch = None,
            _ => {}
        }
    }

    /// Asks what becomes of unsaved edits and of a run under way before the window closes;
    /// while the save or the stop asked for goes on, says so.
    pub(super) fn close_ui(&self, ctx: &egui::Context, actions: &mut Vec<Action>) {
        let waiting = match self.closing {
            Closing::Asking => None,
            Closing::Saving => Some("Saving, then closing…"),
            Closing::Stopping => Some(
                "Stopping the send: the messages under way are finished first, then the window \
                 closes…",
            ),
            Closing::Open | Closing::Ready | Closing::Closed => return,
        };
        egui::Modal::new(egui::Id::unique("close_window")).show(ctx, |ui| {
            ui.set_max_width(560.0);
            ui.heading("Close Herald?");
            ui.add_space(4.0);
            if let Some(waiting) = waiting {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(waiting);
                });
                if self.closing == Closing::Stopping {
                    ui.add_space(4.0);
                    // A relay that stopped answering can hold the stop for minutes.
                    if ui
                        .button("Close now")
                        .on_hover_text(
                            "The messages under way are marked uncertain when this campaign is \
                             opened again",
                        )
                        .clicked()
                    {
                        actions.push(Action::CloseNow);
                    }
                }
                return;
            }
            let dirty = self.is_dirty();
            if dirty {
                ui.label(format!(
                    "{} has changes that are not saved yet.",
                    self.campaign_name()
                ));
            }
            if self.running {
                ui.label(run_on_close(self.counts));
            }
            ui.add_space(8.0);
            ui.horizontal(|ui| {
                let stop = if self.running {
                    " and stop sending"
                } else {
                    ""
                };
                if dirty {
                    // Either way the window closes, and closing stops a run: the buttons say
                    // so (issue #20), as "Close and stop sending" does.
                    let (save, discard, keep) = close_with_edits_labels(self.running);
                    if self.path.is_some() && ui.button(save).clicked() {
                        actions.push(Action::Close { save: true });
                    }
                    if ui.button(discard).clicked() {
                        actions.push(Action::Close { save: false });
                    }
                    if ui.button(keep).clicked() {
                        actions.push(Action::KeepOpen);
                    }
                } else {
                    if ui.button(format!("Close{stop}")).clicked() {
                        actions.push(Action::Close { save: false });
                    }
                    if ui.button("Keep sending").clicked() {
                        actions.push(Action::KeepOpen);
                    }
                }
            });
        });
    }

    pub(super) fn top_bar_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            ui.heading("Herald");
            ui.separator();
            file_menu_ui(ui, actions);
            self.campaign_file_ui(ui, actions);
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let icon = if self.remembered.dark {
                    "Light theme"
                } else {
                    "Dark theme"
                };
                if ui.button(icon).clicked() {
                    actions.push(Action::ToggleTheme);
                }
            });
        });
        if matches!(
            self.dialogs.failed(),
            Some(Purpose::OpenCampaign | Purpose::SaveCampaignAs)
        ) {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                super::super::dialogs::UNAVAILABLE,
            );
        }
        ui.add_space(2.0);
        self.tabs_ui(ui, actions);
        ui.add_space(4.0);
    }

    /// The campaign file's path, typed or chosen, and what to do with it.
    fn campaign_file_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        let label = ui.label("Campaign file");
        ui.add(
            egui::TextEdit::singleline(&mut self.path_text)
                .hint_text("path/to/campaign.toml")
                .desired_width((ui.available_width() - 560.0).clamp(160.0, 480.0)),
        )
        .labelled_by(label.id);
        if ui.button("Open").clicked() {
            actions.push(self.typed_or_chosen(Purpose::OpenCampaign, Action::Open));
        }
        if ui.button("Save as").clicked() {
            actions.push(self.typed_or_chosen(Purpose::SaveCampaignAs, Action::SaveAs));
        }
        if ui
            .add_enabled(self.path.is_some(), egui::Button::new("Save"))
            .clicked()
        {
            actions.push(Action::Save);
        }
    }

    /// `then` on the typed path, or a file chooser for `purpose` when none is typed.
    fn typed_or_chosen(&self, purpose: Purpose, then: fn(PathBuf) -> Action) -> Action {
        let typed = self.path_text.trim();
        if typed.is_empty() {
            Action::Browse(purpose)
        } else {
            then(super::super::library_ui::expand_home(typed))
        }
    }

    fn tabs_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        ui.horizontal(|ui| {
            for (tab, label) in [
                (Tab::Library, "Campaigns"),
                (Tab::Compose, "Compose"),
                (Tab::Recipients, "Recipients"),
                (Tab::Publish, "Publish"),
                (Tab::Results, "Results"),
                (Tab::Suppression, "Suppression list"),
            ] {
                if ui.selectable_label(self.tab == tab, label).clicked() && self.tab != tab {
                    // Shown in this very frame (the panel below is drawn after the bar);
                    // what showing it asks of the service follows with the action.
                    self.tab = tab;
                    actions.push(Action::Show(tab));
                }
            }
        });
    }

    pub(super) fn status_bar_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let state = match &self.progress {
                Some(progress) if self.running => progress.state.label(),
                _ if self.running => "starting".to_string(),
                _ => "idle".to_string(),
            };
            ui.label(format!("Run: {state}"));
            ui.separator();
            let c = self.counts;
            ui.label(format!(
                "{} recipients · {} sent · {} failed · {} bounced · {} pending",
                c.total(),
                c.sent,
                c.failed,
                c.bounced,
                c.pending + c.deferred
            ));
            ui.separator();
            if let Some(busy) = &self.busy {
                ui.spinner();
                ui.label(busy);
            }
            ui.label(&self.status);
        });
    }

    pub(super) fn problems_ui(&mut self, ui: &mut egui::Ui) {
        egui::Frame::group(ui.style())
            .fill(ui.visuals().error_fg_color.gamma_multiply(0.12))
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.colored_label(ui.visuals().error_fg_color, "Problems");
                    if ui.small_button("Dismiss").clicked() {
                        self.problems.clear();
                    }
                });
                for problem in &self.problems {
                    ui.label(problem);
                }
            });
        ui.add_space(6.0);
    }
}

/// File: new, open, save, save as, and the two views not tied to a campaign.
fn file_menu_ui(ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    ui.menu_button("File", |ui| {
        for (label, action) in [
            ("New            Ctrl+N", Action::New),
            (
                "Open…          Ctrl+O",
                Action::Browse(Purpose::OpenCampaign),
            ),
            ("Save           Ctrl+S", Action::Save),
            ("Save as…", Action::Browse(Purpose::SaveCampaignAs)),
            ("Campaigns", Action::Show(Tab::Library)),
            ("Suppression list", Action::Show(Tab::Suppression)),
        ] {
            if ui.button(label).clicked() {
                actions.push(action);
                ui.close();
            }
        }
    });
}

/// The close question's buttons when edits are unsaved: save, discard, keep the window.
fn close_with_edits_labels(running: bool) -> (&'static str, &'static str, &'static str) {
    if running {
        (
            "Save changes and stop sending",
            "Discard changes and stop sending",
            "Keep editing and sending",
        )
    } else {
        ("Save changes", "Discard changes", "Keep editing")
    }
}

/// What closing does to the run under way, for the marketer deciding.
fn run_on_close(counts: crate::app::Counts) -> String {
    let left = counts.pending + counts.deferred + counts.sending;
    format!(
        "A send is under way ({left} of {} recipients not sent yet). Closing stops it: the \
         messages being delivered now are finished first and nobody else is mailed. Open \
         this campaign again and press Resume sending to go on where it stopped; those \
         already sent are not mailed again.",
        counts.total()
    )
}

/// An error message as the start of a sentence: "the endpoint…" → "The endpoint…".
/// `herald check`'s warnings in the question (issue #20): the red ones that made it ask, then
/// the amber ones, which alone would not have.
fn cautions_ui(ui: &mut egui::Ui, found: &crate::app::service::BeforeStart) {
    let red: Vec<_> = found.blocking_cautions().collect();
    if red.is_empty() {
        return;
    }
    ui.label("Nothing of this campaign was sent yet, and the check found what big mailbox providers refuse or junk:");
    for caution in red {
        ui.colored_label(
            ui.visuals().error_fg_color,
            format!("• {}.", sentence(&caution.text)),
        );
    }
    let amber: Vec<_> = found
        .cautions
        .iter()
        .filter(|caution| caution.level != crate::app::deliverability::Level::Red)
        .collect();
    if !amber.is_empty() {
        ui.add_space(2.0);
        ui.label("Also worth fixing:");
        for caution in amber {
            ui.small(format!("• {}.", sentence(&caution.text)));
        }
    }
    ui.add_space(4.0);
}

fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
