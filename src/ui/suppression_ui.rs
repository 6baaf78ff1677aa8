//! The Suppression view (issue #13): the one list every campaign honors — addresses that bounced
//! hard, complained, unsubscribed, soft-bounced too often or were added by hand — searched,
//! added to, taken from, exported as CSV and added to from a file (issue #20). Owns the page the service last sent, the search
//! and the forms; the list itself lives in the store and travels through the service.

use std::path::Path;

use egui_extras::{Column, TableBuilder};

use super::app::{Action, ViewContext};
use super::dialogs::{Purpose, UNAVAILABLE};
use super::library_ui::{ago, thousands};
use super::theme::state_color;
use crate::app::{
    State, Suppression as SuppressionEntry, SuppressionPage, SuppressionReason, reason_label,
};

/// The most entries shown at once; the search narrows a longer list.
pub const SHOWN: u32 = 500;

#[derive(Default)]
pub struct SuppressionView {
    pub page: Option<Result<SuppressionPage, String>>,
    pub search: String,
    address: String,
    note: String,
    /// What the last add or remove did, shown beside the Add button.
    pub changed: Option<Result<String, String>>,
    export_path: String,
    pub export_result: Option<Result<u64, String>>,
    import_path: String,
    /// What the last import of a file did, shown beside its button.
    pub import_result: Option<Result<String, String>>,
    /// The address whose Remove was pressed and awaits "Mail again": someone who bounced,
    /// complained or unsubscribed is never mailed again on one mis-click.
    confirming: Option<String>,
}

impl SuppressionView {
    pub fn set_export_path(&mut self, path: &Path) {
        self.export_path = path.to_string_lossy().into_owned();
    }

    pub fn set_import_path(&mut self, path: &Path) {
        self.import_path = path.to_string_lossy().into_owned();
    }

    /// How many entries match the search (None until the service answered).
    pub fn total(&self) -> Option<u64> {
        match &self.page {
            Some(Ok(page)) => Some(page.total),
            _ => None,
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut ViewContext<'_>) -> Vec<Action> {
        let mut actions = Vec::new();
        ui.horizontal(|ui| {
            ui.heading("Suppression list");
            ui.add_space(12.0);
            let label = ui.label("Search");
            if ui
                .add(
                    egui::TextEdit::singleline(&mut self.search)
                        .hint_text("address contains…")
                        .desired_width(220.0),
                )
                .labelled_by(label.id)
                .changed()
            {
                actions.push(Action::RefreshSuppressions);
            }
            if ui.button("Refresh").clicked() {
                actions.push(Action::RefreshSuppressions);
            }
        });
        ui.weak(
            "No campaign mails these addresses: hard bounces, spam complaints and unsubscribes \
             land here by themselves, and you can add or remove addresses by hand.",
        );
        ui.add_space(6.0);
        self.forms_ui(ui, ctx, &mut actions);
        ui.separator();
        match &self.page {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Reading the list…");
                });
            }
            Some(Err(error)) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("The suppression list could not be read: {error}"),
                );
            }
            Some(Ok(page)) if page.total == 0 && self.search.trim().is_empty() => {
                ui.add_space(24.0);
                ui.vertical_centered(|ui| {
                    ui.heading("Nobody is suppressed yet");
                    ui.label(
                        "Addresses arrive here when they bounce hard, complain or unsubscribe \
                         (press Check mailbox on the Publish tab, or set up the unsubscribe \
                         endpoint), or when you add one above.",
                    );
                });
            }
            Some(Ok(page)) if page.total == 0 => {
                ui.add_space(12.0);
                ui.weak(format!(
                    "No suppressed address contains \"{}\".",
                    self.search.trim()
                ));
            }
            Some(Ok(page)) => {
                let shown = page.entries.len() as u64;
                if shown < page.total {
                    ui.weak(format!(
                        "The newest {} of {} addresses: search to find the others.",
                        thousands(shown),
                        thousands(page.total)
                    ));
                } else {
                    ui.weak(format!("{} address(es)", thousands(page.total)));
                }
                table_ui(ui, page, &mut self.confirming, &mut actions);
            }
        }
        actions
    }

    fn forms_ui(&mut self, ui: &mut egui::Ui, ctx: &ViewContext<'_>, actions: &mut Vec<Action>) {
        egui::Grid::new("suppression_forms")
            .num_columns(2)
            .spacing([8.0, 6.0])
            .show(ui, |ui| {
                let label = ui.label("Add address");
                ui.horizontal(|ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut self.address)
                            .hint_text("someone@example.com")
                            .desired_width(220.0),
                    )
                    .labelled_by(label.id);
                    let note = ui.label("Note");
                    ui.add(
                        egui::TextEdit::singleline(&mut self.note)
                            .hint_text("asked by phone")
                            .desired_width(180.0),
                    )
                    .labelled_by(note.id);
                    if ui
                        .add_enabled(
                            !self.address.trim().is_empty(),
                            egui::Button::new("Add to list"),
                        )
                        .clicked()
                    {
                        actions.push(Action::Suppress {
                            address: self.address.trim().to_string(),
                            note: std::mem::take(&mut self.note),
                        });
                        self.address.clear();
                    }
                    match &self.changed {
                        Some(Ok(text)) => {
                            ui.colored_label(state_color(State::Sent), text);
                        }
                        Some(Err(text)) => {
                            ui.colored_label(ui.visuals().error_fg_color, text);
                        }
                        None => {}
                    }
                });
                ui.end_row();
                let label = ui.label("Export to");
                ui.horizontal(|ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut self.export_path)
                            .hint_text("suppressed.csv")
                            .desired_width(220.0),
                    )
                    .labelled_by(label.id);
                    if ui.button("Choose…").clicked() {
                        actions.push(Action::Browse(Purpose::ExportSuppressions));
                    }
                    if ui
                        .add_enabled(
                            !self.export_path.trim().is_empty(),
                            egui::Button::new("Export CSV"),
                        )
                        .clicked()
                    {
                        actions.push(Action::ExportSuppressions(self.export_path.trim().into()));
                    }
                    match &self.export_result {
                        Some(Ok(count)) => {
                            ui.label(format!("{} address(es) exported", thousands(*count)));
                        }
                        Some(Err(error)) => {
                            ui.colored_label(ui.visuals().error_fg_color, error);
                        }
                        None => {}
                    }
                });
                ui.end_row();
                self.import_ui(ui, actions);
                ui.end_row();
            });
        if matches!(
            ctx.dialog_failed,
            Some(Purpose::ExportSuppressions | Purpose::ImportSuppressions)
        ) {
            ui.colored_label(ui.visuals().warn_fg_color, UNAVAILABLE);
        }
        // Below the form, where a long sentence wraps instead of running off the window.
        match &self.import_result {
            Some(Ok(text)) => {
                ui.colored_label(state_color(State::Sent), text);
            }
            Some(Err(error)) => {
                ui.colored_label(ui.visuals().error_fg_color, error);
            }
            None => {}
        }
    }

    /// "Add from file": a CSV or text file of addresses (an `address` or `email` column, else
    /// the first), as `herald suppression import` reads it.
    fn import_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        let label = ui.label("Add from file");
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.import_path)
                    .hint_text("unsubscribed.csv")
                    .desired_width(220.0),
            )
            .labelled_by(label.id)
            .on_hover_text("A CSV with an address or email column (else the first column), or one address a line");
            if ui.button("Choose…").clicked() {
                actions.push(Action::Browse(Purpose::ImportSuppressions));
            }
            if ui
                .add_enabled(
                    !self.import_path.trim().is_empty(),
                    egui::Button::new("Add addresses"),
                )
                .clicked()
            {
                actions.push(Action::ImportSuppressions(
                    super::library_ui::expand_home(self.import_path.trim()),
                ));
            }
        });
    }
}

/// "Remove", and for an address that asked to leave or bounced, "Mail again?" first.
fn remove_ui(
    ui: &mut egui::Ui,
    entry: &SuppressionEntry,
    confirming: &mut Option<String>,
    actions: &mut Vec<Action>,
) {
    if confirming.as_deref() == Some(entry.address.as_str()) {
        if ui
            .small_button("Mail again")
            .on_hover_text(format!(
                "{} is on the list as {}: remove it anyway",
                entry.address,
                reason_label(entry.reason)
            ))
            .clicked()
        {
            actions.push(Action::Unsuppress(entry.address.clone()));
            *confirming = None;
        }
        if ui.small_button("Keep").clicked() {
            *confirming = None;
        }
        return;
    }
    if ui
        .small_button("Remove")
        .on_hover_text(format!("Mail {} again", entry.address))
        .clicked()
    {
        if entry.reason == SuppressionReason::Manual {
            actions.push(Action::Unsuppress(entry.address.clone()));
        } else {
            *confirming = Some(entry.address.clone());
        }
    }
}

fn reason_color(reason: SuppressionReason) -> egui::Color32 {
    match reason {
        SuppressionReason::Bounced | SuppressionReason::SoftBounces => state_color(State::Bounced),
        SuppressionReason::Complained => state_color(State::Failed),
        SuppressionReason::Unsubscribed => state_color(State::Uncertain),
        SuppressionReason::Manual => state_color(State::Skipped),
    }
}

fn table_ui(
    ui: &mut egui::Ui,
    page: &SuppressionPage,
    confirming: &mut Option<String>,
    actions: &mut Vec<Action>,
) {
    let now_ms = crate::app::now_ms();
    TableBuilder::new(ui)
        .striped(true)
        .resizable(true)
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
        .column(Column::initial(260.0).at_least(140.0))
        .column(Column::initial(110.0))
        .column(Column::initial(100.0))
        .column(Column::initial(80.0))
        .column(Column::remainder().at_least(160.0))
        .header(24.0, |mut header| {
            for title in ["Address", "Why", "Since", "", "Evidence"] {
                header.col(|ui| {
                    ui.strong(title);
                });
            }
        })
        .body(|body| {
            body.rows(26.0, page.entries.len(), |mut row| {
                let Some(entry) = page.entries.get(row.index()) else {
                    return;
                };
                row.col(|ui| {
                    ui.add(egui::Label::new(&entry.address).truncate());
                });
                row.col(|ui| {
                    ui.colored_label(reason_color(entry.reason), reason_label(entry.reason));
                });
                row.col(|ui| {
                    ui.label(ago(now_ms, entry.at_ms));
                });
                row.col(|ui| remove_ui(ui, entry, confirming, actions));
                row.col(|ui| {
                    ui.add(
                        egui::Label::new(egui::RichText::new(&entry.evidence).weak()).truncate(),
                    );
                });
            });
        });
}
