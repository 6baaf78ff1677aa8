//! The Recipients view: choose the list (CSV or sheet) and its email column (found
//! automatically unless chosen, with what was found and a preview of the first rows), import
//! it, and browse every recipient with its state, attempts and last reply in a table that only
//! ever holds the rows on screen, fetched in blocks off the UI thread. Owns the table's filters
//! and cache; the results view filters it through an action.

use std::collections::{HashMap, HashSet};

use egui_extras::{Column, TableBuilder};

use super::app::{Action, ViewContext};
use super::dialogs::{Purpose, UNAVAILABLE};
use super::theme::state_color;
use crate::app::service::CsvPeek;
use crate::app::{RecipientId, RecipientRow, ReplyClass, State};
use crate::campaign::RawRecipients;
use crate::import::ImportReport;

const ROW_HEIGHT: f32 = 22.0;

pub const BLOCK_ROWS: u64 = 200;

/// Rows of the recipients table, fetched in blocks as the user scrolls.
#[derive(Default)]
pub struct TableCache {
    pub generation: u64,
    pub total: u64,
    pub blocks: HashMap<u64, Vec<RecipientRow>>,
    pub requested: HashSet<u64>,
    /// What came back for the rows fetched (bounces, complaints, unsubscribes), by id.
    pub notes: HashMap<RecipientId, String>,
}

impl TableCache {
    pub fn row(&self, index: u64) -> Option<&RecipientRow> {
        self.blocks
            .get(&(index / BLOCK_ROWS))
            .and_then(|rows| rows.get((index % BLOCK_ROWS) as usize))
    }

    fn reset(&mut self) {
        self.generation += 1;
        self.blocks.clear();
        self.requested.clear();
        self.notes.clear();
    }

    /// A block the service answered; dropped when the filters changed since it was asked.
    pub fn insert(&mut self, generation: u64, offset: u64, total: u64, rows: Vec<RecipientRow>) {
        if generation == self.generation {
            self.total = total;
            self.blocks.insert(offset / BLOCK_ROWS, rows);
        }
    }
}

#[derive(Default)]
pub struct RecipientsView {
    pub peek: Option<Result<CsvPeek, String>>,
    pub import_report: Option<ImportReport>,
    /// Why the last import failed, shown beside the Import button.
    pub import_error: Option<String>,
    pub filter: Option<State>,
    pub search: String,
    /// Only the rows whose last reply is of this class (set from the results view).
    pub reply: Option<ReplyClass>,
    pub table: TableCache,
    export_path: String,
    pub export_result: Option<Result<u64, String>>,
}

impl RecipientsView {
    /// Another campaign: nothing of this view's state belongs to it.
    pub fn reset(&mut self) {
        *self = RecipientsView {
            table: TableCache {
                generation: self.table.generation + 1,
                ..TableCache::default()
            },
            ..RecipientsView::default()
        };
    }

    pub fn refresh(&mut self) {
        self.table.reset();
    }

    /// The list's personalization columns, as the last look at the file found them.
    pub fn columns(&self) -> Vec<String> {
        self.peek
            .as_ref()
            .and_then(|peek| peek.as_ref().ok())
            .map(|peek| peek.columns.clone())
            .unwrap_or_default()
    }

    /// The filters a page request carries: state, address search, and reply class.
    pub fn filters(&self) -> (Option<State>, String, Option<(State, ReplyClass)>) {
        let reply = match (self.filter, self.reply) {
            (Some(state), Some(class)) => Some((state, class)),
            _ => None,
        };
        (self.filter, self.search.clone(), reply)
    }

    pub fn filter_by(&mut self, state: Option<State>, reply: Option<ReplyClass>, search: String) {
        self.filter = state;
        self.reply = reply.filter(|_| state.is_some());
        self.search = search;
        self.refresh();
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut ViewContext<'_>) -> Vec<Action> {
        let mut actions = Vec::new();
        self.source_ui(ui, ctx, &mut actions);
        ui.separator();
        self.counts_ui(ui, ctx);
        ui.separator();
        self.filters_ui(ui, ctx, &mut actions);
        if ctx.counts.total() == 0 && self.table.total == 0 {
            ui.add_space(24.0);
            ui.vertical_centered(|ui| {
                ui.heading("No recipients yet");
                ui.label(
                    "Choose your list above (a CSV or Excel file, as Mailchimp, Google \
                     Contacts or Outlook export it) and press Import.",
                );
            });
            // Ask for the first block anyway: its answer carries the total.
            self.want_row(0, &mut actions);
        } else {
            self.table_ui(ui, &mut actions);
        }
        actions
    }

    fn source_ui(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &mut ViewContext<'_>,
        actions: &mut Vec<Action>,
    ) {
        ui.horizontal(|ui| {
            let recipients = &mut ctx.doc.raw.recipients;
            list_file_ui(ui, recipients, actions);
            // A field before the list's columns are known, a choice after: scoped, so the
            // buttons after it keep their ids when the first rows arrive.
            ui.push_id("email_column", |ui| {
                self.email_column_ui(ui, recipients, actions);
            });
            if ui.button("Show first rows").clicked() {
                actions.push(Action::PeekCsv);
            }
            if ui.button("Import").clicked() {
                actions.push(Action::Import);
            }
        });
        if ctx.dialog_failed == Some(Purpose::RecipientList) {
            ui.colored_label(ui.visuals().warn_fg_color, UNAVAILABLE);
        }
        if let Some(error) = &self.import_error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        self.peek_ui(ui, ctx);
    }

    /// The email column: typed before the list was read, then chosen among its headers
    /// ("Automatic" leaves it to the import).
    fn email_column_ui(
        &self,
        ui: &mut egui::Ui,
        recipients: &mut RawRecipients,
        actions: &mut Vec<Action>,
    ) {
        let label = ui.label("Email column");
        let peek = self.peek.as_ref().and_then(|peek| peek.as_ref().ok());
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
                })
                .response
                .labelled_by(label.id);
        }
        if column != before {
            recipients.email_column = column;
            actions.push(Action::PeekCsv);
        }
    }

    /// What the first look at the list found: its error, a missing email column, or the
    /// column found and the first rows.
    fn peek_ui(&self, ui: &mut egui::Ui, ctx: &ViewContext<'_>) {
        match &self.peek {
            Some(Err(error)) => {
                ui.colored_label(ui.visuals().error_fg_color, error);
            }
            Some(Ok(peek)) if !peek.email_column_found => {
                let text = match ctx.doc.raw.recipients.email_column.as_deref() {
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

    fn counts_ui(&self, ui: &mut egui::Ui, ctx: &ViewContext<'_>) {
        let counts = ctx.counts;
        ui.horizontal_wrapped(|ui| {
            ui.strong(format!("{} recipients", counts.total()));
            for state in State::ALL {
                ui.colored_label(
                    state_color(state),
                    format!("{} {}", counts.get(state), state.as_str()),
                );
            }
            if let Some(report) = &self.import_report {
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
        for warning in self
            .import_report
            .iter()
            .flat_map(|report| report.warnings())
        {
            ui.colored_label(ui.visuals().warn_fg_color, warning);
        }
    }

    fn filters_ui(&mut self, ui: &mut egui::Ui, ctx: &ViewContext<'_>, actions: &mut Vec<Action>) {
        ui.horizontal(|ui| {
            let label = ui.label("Show");
            let before = self.filter;
            egui::ComboBox::from_id_salt("state_filter")
                .selected_text(self.filter.map_or("all states", State::as_str))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.filter, None, "all states");
                    for state in State::ALL {
                        ui.selectable_value(&mut self.filter, Some(state), state.as_str());
                    }
                })
                .response
                .labelled_by(label.id);
            if self.filter != before {
                self.reply = None;
                actions.push(Action::TableChanged);
            }
            if let Some(class) = self.reply
                && ui
                    .button(format!("reply: {} (show all)", class.label()))
                    .on_hover_text("Show every reply again")
                    .clicked()
            {
                self.reply = None;
                actions.push(Action::TableChanged);
            }
            let label = ui.label("Search");
            if ui
                .add(
                    egui::TextEdit::singleline(&mut self.search)
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
                egui::TextEdit::singleline(&mut self.export_path)
                    .hint_text("failed.csv")
                    .desired_width(160.0),
            )
            .labelled_by(label.id);
            if ui
                .add_enabled(
                    ctx.counts.failed + ctx.counts.uncertain > 0,
                    egui::Button::new("Export"),
                )
                .clicked()
                && !self.export_path.trim().is_empty()
            {
                actions.push(Action::ExportFailed(self.export_path.trim().into()));
            }
            if let Some(Err(error)) = &self.export_result {
                ui.colored_label(ui.visuals().error_fg_color, error);
            }
        });
    }

    /// Asks for the table block holding `index` unless it is cached or on its way.
    fn want_row(&mut self, index: u64, actions: &mut Vec<Action>) {
        let block = index / BLOCK_ROWS;
        if self.table.blocks.contains_key(&block) || !self.table.requested.insert(block) {
            return;
        }
        actions.push(Action::FetchRows(block));
    }

    fn table_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        let total = self.table.total;
        if total == 0 {
            // Ask for the first block: its answer carries the total.
            self.want_row(0, actions);
            if self.table.blocks.contains_key(&0) {
                ui.add_space(12.0);
                ui.weak("No recipient matches these filters.");
                return;
            }
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
            .column(Column::initial(200.0).at_least(80.0))
            .column(Column::remainder().at_least(80.0))
            .header(ROW_HEIGHT, |mut header| {
                for title in [
                    "Line",
                    "Email",
                    "State",
                    "Tries",
                    "Route",
                    "Last reply",
                    "Came back",
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
                    match self.table.row(index) {
                        Some(recipient) => {
                            let note = self.table.notes.get(&recipient.id);
                            for (column, text) in row_cells(recipient, note).into_iter().enumerate()
                            {
                                row.col(|ui| cell_ui(ui, column, text, recipient.state));
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
            self.want_row(index, actions);
        }
    }
}

/// The list file, typed or chosen (`list` and `csv` mean the same; edit whichever the file
/// uses).
fn list_file_ui(ui: &mut egui::Ui, recipients: &mut RawRecipients, actions: &mut Vec<Action>) {
    let label = ui.label("List file");
    let key = if recipients.list.is_some() {
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
    if ui.button("Browse…").clicked() {
        actions.push(Action::Browse(Purpose::RecipientList));
    }
}

/// One recipient's cells, in the table's column order (the state's cell is drawn from the
/// state itself).
fn row_cells(recipient: &RecipientRow, note: Option<&String>) -> [String; 8] {
    let reply = recipient
        .reply
        .as_ref()
        .map(|reply| {
            let code = reply.code.map(|code| code.to_string()).unwrap_or_default();
            format!("{code} {}", reply.text).trim().to_string()
        })
        .or_else(|| recipient.skip_reason.clone())
        .unwrap_or_default();
    [
        recipient.line.to_string(),
        recipient.email.clone(),
        String::new(),
        recipient.attempts.to_string(),
        recipient.route.clone().unwrap_or_default(),
        reply,
        note.cloned().unwrap_or_default(),
        compact_fields(&recipient.fields_json),
    ]
}

/// One cell: the state in its colour, what came back in the bounced colour, the rest plain;
/// long text is truncated.
fn cell_ui(ui: &mut egui::Ui, column: usize, text: String, state: State) {
    if column == 2 {
        ui.colored_label(state_color(state), state.as_str());
    } else if column == 6 && !text.is_empty() {
        ui.add(
            egui::Label::new(egui::RichText::new(text).color(state_color(State::Bounced)))
                .truncate(),
        );
    } else {
        ui.add(egui::Label::new(text).truncate());
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
