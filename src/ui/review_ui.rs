//! The review list of held reports (issue #21 §1), on the Suppression view: reports that name a
//! recipient without proving they concern your mail (no VERP tag, no keyed Message-ID) are held,
//! never applied by themselves; here each is shown with its evidence — who, what kind, why it is
//! unverified — and applied or dismissed by the user, one at a time or all those shown at once.
//! The list and the changes travel through the service to `app::held`, as `herald bounces
//! --apply ID,…` does.

use super::app::Action;
use super::library_ui::ago;
use crate::app::HeldRow;
use crate::app::held::{HeldId, Which};

#[derive(Default)]
pub struct ReviewView {
    /// The held reports the service last sent (None until it answered).
    pub rows: Option<Result<Vec<HeldRow>, String>>,
    /// What the last apply or dismiss did.
    pub changed: Option<Result<String, String>>,
}

impl ReviewView {
    /// Draws the list when something is held (or the list failed); nothing otherwise.
    pub fn ui(&mut self, ui: &mut egui::Ui) -> Vec<Action> {
        let mut actions = Vec::new();
        match &self.rows {
            Some(Err(error)) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("The unverified reports could not be read: {error}"),
                );
            }
            Some(Ok(rows)) if !rows.is_empty() => {
                ui.separator();
                ui.horizontal(|ui| {
                    ui.strong(format!("{} unverified report(s) to review", rows.len()));
                    if ui
                        .button("Apply all")
                        .on_hover_text("Apply every report below as if it were verified")
                        .clicked()
                    {
                        // The rows shown, by id: one held since the list was read is not
                        // among them.
                        let shown = rows.iter().map(HeldId::of).collect();
                        actions.push(Action::ApplyHeld(Which::These(shown)));
                    }
                });
                ui.weak(
                    "These reports name a recipient but do not prove they are about your mail \
                     (no VERP tag, no keyed Message-ID): anyone who knows an address could write \
                     one. Apply those you believe; dismiss the rest.",
                );
                rows_ui(ui, rows, &mut actions);
            }
            _ => {}
        }
        match &self.changed {
            Some(Ok(text)) => {
                ui.weak(text);
            }
            Some(Err(text)) => {
                ui.colored_label(ui.visuals().error_fg_color, text);
            }
            None => {}
        }
        actions
    }
}

fn rows_ui(ui: &mut egui::Ui, rows: &[HeldRow], actions: &mut Vec<Action>) {
    let now_ms = crate::app::now_ms();
    egui::ScrollArea::vertical()
        .id_salt("held_reports")
        .max_height(220.0)
        .show(ui, |ui| {
            egui::Grid::new("held_grid")
                .num_columns(5)
                .striped(true)
                .spacing([12.0, 6.0])
                .show(ui, |ui| {
                    ui.strong("Recipient");
                    ui.strong("Kind");
                    ui.strong("Received");
                    ui.label("");
                    ui.strong("Why unverified");
                    ui.end_row();
                    for row in rows {
                        ui.label(&row.email).on_hover_text(&row.campaign_name);
                        let status = row.status.as_deref().unwrap_or_default();
                        ui.label(format!("{} {status}", row.kind.as_str()).trim().to_string())
                            .on_hover_text(&row.diagnostic);
                        ui.label(ago(now_ms, row.at_ms));
                        ui.horizontal(|ui| {
                            if ui.button("Apply").clicked() {
                                actions
                                    .push(Action::ApplyHeld(Which::One(row.recipient, row.kind)));
                            }
                            if ui.button("Dismiss").clicked() {
                                actions.push(Action::DismissHeld(row.recipient, row.kind));
                            }
                        });
                        // Last, so the evidence has the rest of the width and wraps there.
                        ui.add(egui::Label::new(&row.evidence).wrap());
                        ui.end_row();
                    }
                });
        });
}
