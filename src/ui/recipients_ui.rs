//! The Recipients tab: choose the list (CSV or sheet) and its email column (found automatically
//! unless chosen, with what was found and a preview of the first rows), import it, and browse
//! every recipient with its state, attempts and last reply in a table that only ever holds the
//! rows on screen, fetched in blocks off the UI thread.

use egui_extras::{Column, TableBuilder};

use super::app::{Action, HeraldApp};
use super::theme::state_color;
use crate::store::State;

const ROW_HEIGHT: f32 = 22.0;

pub fn recipients_ui(app: &mut HeraldApp, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    source_ui(app, ui, actions);
    ui.separator();
    counts_ui(app, ui);
    ui.separator();
    filters_ui(app, ui, actions);
    table_ui(app, ui);
}

fn source_ui(app: &mut HeraldApp, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        let label = ui.label("List file");
        let recipients = &mut app.doc.raw.recipients;
        // `list` and `csv` mean the same; edit whichever the file uses.
        let uses_list = recipients.list.is_some();
        let key = if uses_list {
            &mut recipients.list
        } else {
            &mut recipients.csv
        };
        let mut file = key.clone().unwrap_or_default();
        let response = ui
            .add(
                egui::TextEdit::singleline(&mut file)
                    .hint_text("list.csv, contacts.xlsx or .ods")
                    .desired_width(300.0),
            )
            .labelled_by(label.id);
        if response.changed() {
            *key = Some(file).filter(|file| !file.is_empty());
        }
        if ui.button("Browse…").clicked()
            && let Some(path) = rfd::FileDialog::new()
                .add_filter("Lists", &["csv", "txt", "xlsx", "xlsm", "xls", "ods"])
                .pick_file()
        {
            *key = Some(path.to_string_lossy().into_owned());
            actions.push(Action::PeekCsv);
        }
        let label = ui.label("Email column");
        let peek = app.peek.as_ref().and_then(|peek| peek.as_ref().ok());
        let headers = peek.map(|peek| peek.headers.clone()).unwrap_or_default();
        let before = recipients.email_column.clone();
        let mut column = before.clone();
        if headers.is_empty() {
            let mut text = column.clone().unwrap_or_default();
            ui.add(
                egui::TextEdit::singleline(&mut text)
                    .hint_text("found automatically")
                    .desired_width(120.0),
            )
            .labelled_by(label.id);
            column = Some(text).filter(|text| !text.trim().is_empty());
        } else {
            let automatic = match peek {
                Some(peek) if peek.email_column_found && before.is_none() => {
                    format!("Automatic: {}", peek.email_header)
                }
                _ => "Automatic".to_string(),
            };
            egui::ComboBox::from_id_salt("email_column")
                .selected_text(column.clone().unwrap_or_else(|| automatic.clone()))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut column, None, automatic);
                    for header in &headers {
                        ui.selectable_value(&mut column, Some(header.clone()), header);
                    }
                });
        }
        if column != before {
            recipients.email_column = column;
            actions.push(Action::PeekCsv);
        }
        if ui.button("Show first rows").clicked() {
            actions.push(Action::PeekCsv);
        }
        if ui.button("Import").clicked() {
            actions.push(Action::Import);
        }
    });
    match &app.peek {
        Some(Err(error)) => {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        Some(Ok(peek)) if !peek.email_column_found => {
            let text = match app.doc.raw.recipients.email_column.as_deref() {
                Some(named) => format!(
                    "No column is named \"{named}\". Choose the email column among: {}",
                    peek.headers.join(", ")
                ),
                None => format!(
                    "No column looks like email addresses. Choose the email column among: {}",
                    peek.headers.join(", ")
                ),
            };
            ui.colored_label(ui.visuals().warn_fg_color, text);
        }
        Some(Ok(peek)) => {
            ui.label(format!("Email column: {}", peek.detected));
            ui.collapsing(
                format!(
                    "First rows ({} · fields: {})",
                    peek.format,
                    peek.columns.join(", ")
                ),
                |ui| {
                    egui::Grid::new("csv_peek").striped(true).show(ui, |ui| {
                        ui.strong(&peek.email_header);
                        for column in &peek.columns {
                            ui.strong(column);
                        }
                        ui.end_row();
                        for row in &peek.rows {
                            for cell in row {
                                ui.label(cell);
                            }
                            ui.end_row();
                        }
                    });
                },
            );
        }
        None => {}
    }
}

fn counts_ui(app: &mut HeraldApp, ui: &mut egui::Ui) {
    let counts = app.counts();
    ui.horizontal_wrapped(|ui| {
        ui.strong(format!("{} recipients", counts.total()));
        for state in State::ALL {
            ui.colored_label(
                state_color(state),
                format!("{} {}", counts.get(state), state.as_str()),
            );
        }
        if let Some(report) = &app.import_report {
            ui.separator();
            ui.label(format!(
                "last import: {} valid new, {} invalid, {} duplicate(s), {} malformed",
                report.added.saturating_sub(report.added_skipped),
                report.invalid,
                report.duplicates,
                report.malformed
            ));
        }
    });
}

fn filters_ui(app: &mut HeraldApp, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        let label = ui.label("Show");
        let before = app.filter;
        egui::ComboBox::from_id_salt("state_filter")
            .selected_text(app.filter.map_or("all states", State::as_str))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut app.filter, None, "all states");
                for state in State::ALL {
                    ui.selectable_value(&mut app.filter, Some(state), state.as_str());
                }
            })
            .response
            .labelled_by(label.id);
        if app.filter != before {
            actions.push(Action::TableChanged);
        }
        let label = ui.label("Search");
        if ui
            .add(
                egui::TextEdit::singleline(&mut app.search)
                    .hint_text("address contains…")
                    .desired_width(200.0),
            )
            .labelled_by(label.id)
            .changed()
        {
            actions.push(Action::TableChanged);
        }
        ui.separator();
        let label = ui.label("Export failed to");
        ui.add(
            egui::TextEdit::singleline(&mut app.export_path)
                .hint_text("failed.csv")
                .desired_width(160.0),
        )
        .labelled_by(label.id);
        if ui.button("Export").clicked() && !app.export_path.trim().is_empty() {
            actions.push(Action::ExportFailed(app.export_path.trim().into()));
        }
    });
}

fn table_ui(app: &mut HeraldApp, ui: &mut egui::Ui) {
    let total = app.table_total();
    if total == 0 {
        // Ask for the first block: its answer carries the total.
        app.want_row(0);
    }
    let mut wanted = Vec::new();
    TableBuilder::new(ui)
        .striped(true)
        .resizable(true)
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
        .column(Column::exact(70.0))
        .column(Column::initial(240.0).at_least(120.0))
        .column(Column::exact(80.0))
        .column(Column::exact(60.0))
        .column(Column::initial(110.0))
        .column(Column::initial(260.0).at_least(80.0))
        .column(Column::remainder().at_least(80.0))
        .header(ROW_HEIGHT, |mut header| {
            for title in [
                "Line",
                "Email",
                "State",
                "Tries",
                "Route",
                "Last reply",
                "Fields",
            ] {
                header.col(|ui| {
                    ui.strong(title);
                });
            }
        })
        .body(|body| {
            body.rows(ROW_HEIGHT, total as usize, |mut row| {
                let index = row.index() as u64;
                match app.table_row(index) {
                    Some(recipient) => {
                        let reply = recipient
                            .reply
                            .as_ref()
                            .map(|reply| {
                                let code =
                                    reply.code.map(|code| code.to_string()).unwrap_or_default();
                                format!("{code} {}", reply.text).trim().to_string()
                            })
                            .or_else(|| recipient.skip_reason.clone())
                            .unwrap_or_default();
                        let cells = [
                            recipient.line.to_string(),
                            recipient.email.clone(),
                            String::new(),
                            recipient.attempts.to_string(),
                            recipient.route.clone().unwrap_or_default(),
                            reply,
                            compact_fields(&recipient.fields_json),
                        ];
                        let state = recipient.state;
                        for (column, text) in cells.into_iter().enumerate() {
                            row.col(|ui| {
                                if column == 2 {
                                    ui.colored_label(state_color(state), state.as_str());
                                } else {
                                    ui.add(egui::Label::new(text).truncate());
                                }
                            });
                        }
                    }
                    None => {
                        wanted.push(index);
                        row.col(|ui| {
                            ui.weak("…");
                        });
                    }
                }
            });
        });
    for index in wanted {
        app.want_row(index);
    }
}

/// `{"first_name":"Ada","city":"Paris"}` → `first_name=Ada, city=Paris`.
fn compact_fields(json: &str) -> String {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json) {
        Ok(map) => map
            .iter()
            .map(|(name, value)| format!("{name}={}", value.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", "),
        Err(_) => json.to_string(),
    }
}
