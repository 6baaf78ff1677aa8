//! The window's state and its one place of change: answers from the service are folded in by
//! `logic` (which runs even while the window is hidden), and the actions the tabs return are
//! applied by `apply`. Drawing lives in the `*_ui.rs` files.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::service::{Answer, CsvPeek, Document, PreviewData, Request, Service};
use crate::engine::{ImportReport, Progress, RunState};
use crate::store::{Counts, RecipientRow, State};

/// The tabs, in the order a campaign is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Tab {
    Compose,
    Recipients,
    Publish,
}

/// What the user asked for; returned by the view functions, applied in one place.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    New,
    Open(PathBuf),
    Save,
    SaveAs(PathBuf),
    PeekCsv,
    Import,
    Preview(u64),
    TestSend(String),
    Start,
    Pause,
    Resume,
    Stop,
    Resend {
        include_uncertain: bool,
    },
    MarkUncertainSent,
    ExportFailed(PathBuf),
    TestRelay(usize),
    /// Store the password typed for relay N in the keyring.
    StorePassword(usize),
    TableChanged,
    ToggleTheme,
}

/// What the window remembers between sessions (eframe persistence).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Remembered {
    pub last_campaign: Option<PathBuf>,
    pub dark: bool,
    pub tab: Tab,
}

impl Default for Remembered {
    fn default() -> Self {
        Remembered {
            last_campaign: None,
            dark: true,
            tab: Tab::Compose,
        }
    }
}

/// Rows of the recipients table, fetched in blocks as the user scrolls.
#[derive(Default)]
pub struct TableCache {
    pub generation: u64,
    pub total: u64,
    pub blocks: HashMap<u64, Vec<RecipientRow>>,
    pub requested: HashSet<u64>,
}

pub const BLOCK_ROWS: u64 = 200;

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
    }
}

pub struct HeraldApp {
    pub(super) service: Service,
    pub(super) remembered: Remembered,
    pub(super) tab: Tab,
    /// The campaign file being edited; None for a new, unsaved campaign.
    pub(super) path: Option<PathBuf>,
    pub(super) path_text: String,
    pub(super) doc: Document,
    pub(super) saved: Document,
    pub(super) status: String,
    pub(super) problems: Vec<String>,
    pub(super) busy: Option<String>,
    // Compose
    pub(super) preview_index: u64,
    pub(super) preview: Option<Result<PreviewData, String>>,
    pub(super) preview_tab: PreviewTab,
    pub(super) test_to: String,
    pub(super) test_result: Option<Result<String, String>>,
    // Recipients
    pub(super) peek: Option<Result<CsvPeek, String>>,
    pub(super) import_report: Option<ImportReport>,
    pub(super) counts: Counts,
    pub(super) filter: Option<State>,
    pub(super) search: String,
    pub(super) table: TableCache,
    pub(super) export_path: String,
    // Publish
    pub(super) progress: Option<Progress>,
    pub(super) running: bool,
    pub(super) rate_history: Vec<[f64; 2]>,
    pub(super) relay_tests: HashMap<String, Result<String, String>>,
    /// Passwords being typed, by relay index; never saved in the campaign or on disk.
    pub(super) password_inputs: HashMap<usize, String>,
    pub(super) offered_resume: bool,
    pub(super) after_save: Vec<Request>,
    /// The window title last sent: sending a viewport command requests a repaint, so it is
    /// sent only when it changes (otherwise an idle window would redraw forever).
    pub(super) title: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewTab {
    Text,
    Html,
    Headers,
}

impl HeraldApp {
    pub fn new(
        cc: &eframe::CreationContext<'_>,
        db: PathBuf,
        campaign: Option<PathBuf>,
    ) -> Result<HeraldApp, String> {
        let remembered: Remembered = cc
            .storage
            .and_then(|storage| eframe::get_value(storage, eframe::APP_KEY))
            .unwrap_or_default();
        HeraldApp::with_service(cc.egui_ctx.clone(), db, campaign, remembered)
    }

    /// Builds the app around a service over `db` (tests use this with a temporary database).
    pub fn with_service(
        ctx: egui::Context,
        db: PathBuf,
        campaign: Option<PathBuf>,
        remembered: Remembered,
    ) -> Result<HeraldApp, String> {
        theme::apply(&ctx, remembered.dark);
        let wake_ctx = ctx.clone();
        let service = Service::start(db, Arc::new(move || wake_ctx.request_repaint()))?;
        let mut app = HeraldApp {
            service,
            tab: remembered.tab,
            remembered,
            path: None,
            path_text: String::new(),
            doc: starter_document(),
            saved: Document::default(),
            status: "ready".into(),
            problems: Vec::new(),
            busy: None,
            preview_index: 0,
            preview: None,
            preview_tab: PreviewTab::Text,
            test_to: String::new(),
            test_result: None,
            peek: None,
            import_report: None,
            counts: Counts::default(),
            filter: None,
            search: String::new(),
            table: TableCache::default(),
            export_path: String::new(),
            progress: None,
            running: false,
            rate_history: Vec::new(),
            relay_tests: HashMap::new(),
            password_inputs: HashMap::new(),
            offered_resume: false,
            after_save: Vec::new(),
            title: String::new(),
        };
        if let Some(path) = campaign.or_else(|| app.remembered.last_campaign.clone()) {
            app.apply(Action::Open(path));
        }
        Ok(app)
    }

    pub fn campaign_name(&self) -> String {
        self.path
            .as_ref()
            .and_then(|path| path.file_stem())
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "new campaign".to_string())
    }

    pub fn is_dirty(&self) -> bool {
        self.doc != self.saved
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    pub fn document(&self) -> &Document {
        &self.doc
    }

    /// What the last "Send test" reported.
    pub fn test_result(&self) -> Option<&Result<String, String>> {
        self.test_result.as_ref()
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    pub fn tab(&self) -> Tab {
        self.tab
    }

    pub fn progress(&self) -> Option<&Progress> {
        self.progress.as_ref()
    }

    pub fn status(&self) -> &str {
        &self.status
    }

    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    pub fn table_total(&self) -> u64 {
        self.table.total
    }

    pub fn table_row(&self, index: u64) -> Option<&RecipientRow> {
        self.table.row(index)
    }

    /// Folds in what the service answered. Runs every frame, and while hidden.
    pub fn drain(&mut self) {
        for answer in self.service.answers() {
            self.absorb(answer);
        }
        if let Some(progress) = self.service.progress()
            && self.running
        {
            self.counts = progress.counts;
            let t = progress.elapsed_secs as f64;
            if self.rate_history.last().is_none_or(|last| last[0] < t) {
                self.rate_history.push([t, progress.rate_per_sec]);
                if self.rate_history.len() > 600 {
                    self.rate_history.remove(0);
                }
            }
            self.progress = Some(progress);
        }
    }

    fn absorb(&mut self, answer: Answer) {
        match answer {
            Answer::Opened(Ok((path, doc))) => {
                self.status = format!("opened {}", path.display());
                self.path_text = path.to_string_lossy().into_owned();
                self.remembered.last_campaign = Some(path.clone());
                self.path = Some(path.clone());
                self.saved = (*doc).clone();
                self.doc = *doc;
                self.problems.clear();
                self.preview = None;
                self.table.reset();
                self.table.total = 0;
                self.offered_resume = false;
                self.service.send(Request::Counts { path: path.clone() });
                self.service.send(Request::Validate { path });
            }
            Answer::Opened(Err(error)) => {
                self.status = "could not open the campaign".into();
                self.problems = vec![error];
            }
            Answer::Saved(Ok(path)) => {
                self.status = format!("saved {}", path.display());
                self.saved = self.doc.clone();
                self.remembered.last_campaign = Some(path.clone());
                self.path_text = path.to_string_lossy().into_owned();
                self.path = Some(path);
                for request in std::mem::take(&mut self.after_save) {
                    self.service.send(request);
                }
            }
            Answer::Saved(Err(error)) => {
                self.after_save.clear();
                self.status = "could not save".into();
                self.problems = vec![error];
            }
            Answer::Validated(result) => {
                self.problems = result.err().unwrap_or_default();
                if self.problems.is_empty() {
                    self.status = "the campaign is valid".into();
                }
            }
            Answer::Peeked(result) => self.peek = Some(result),
            Answer::Imported(Ok((report, counts))) => {
                self.busy = None;
                self.status = format!(
                    "imported {} row(s): {} new, {} invalid, {} duplicate(s)",
                    report.rows, report.added, report.invalid, report.duplicates
                );
                self.import_report = Some(report);
                self.counts = counts;
                self.refresh_table();
            }
            Answer::Imported(Err(error)) => {
                self.busy = None;
                self.status = "import failed".into();
                self.problems = vec![error];
            }
            Answer::Counts(counts) => {
                self.counts = counts;
                let interrupted = counts.sending > 0
                    || (counts.pending + counts.deferred > 0 && counts.sent + counts.failed > 0);
                if interrupted && !self.running && !self.offered_resume {
                    self.offered_resume = true;
                    self.status = "this campaign was interrupted: press Resume sending on the Publish tab to go on".into();
                }
                self.refresh_table();
            }
            Answer::Page {
                generation,
                offset,
                total,
                rows,
            } => {
                if generation == self.table.generation {
                    self.table.total = total;
                    self.table.blocks.insert(offset / BLOCK_ROWS, rows);
                }
            }
            Answer::Preview(result) => self.preview = Some(result),
            Answer::TestSent(result) => self.test_result = Some(result),
            Answer::Started => {
                self.running = true;
                self.rate_history.clear();
                self.status = "sending".into();
            }
            Answer::RunEnded(progress) => {
                self.running = false;
                self.counts = progress.counts;
                self.status = format!("run {}", progress.state.label());
                if let RunState::Failed { reason } = &progress.state {
                    self.problems = vec![reason.clone()];
                }
                self.progress = Some(progress);
                self.refresh_table();
            }
            Answer::Resent(Ok(count)) => {
                self.status = format!("{count} recipient(s) put back to pending");
                if let Some(path) = self.path.clone() {
                    self.service.send(Request::Counts { path });
                }
            }
            Answer::Resent(Err(error)) | Answer::Exported(Err(error)) => {
                self.problems = vec![error]
            }
            Answer::Exported(Ok(count)) => self.status = format!("exported {count} recipient(s)"),
            Answer::RelayTested { name, result } => {
                self.relay_tests.insert(name, result);
            }
            Answer::PasswordStored { name, result } => match result {
                Ok(()) => self.status = format!("password kept in the keyring as {name}"),
                Err(error) => self.problems = vec![error],
            },
            Answer::Problem(problem) => {
                self.busy = None;
                self.problems = vec![problem];
            }
        }
    }

    pub(super) fn refresh_table(&mut self) {
        self.table.reset();
    }

    /// Asks for the table block holding `index` unless it is cached or on its way.
    pub(super) fn want_row(&mut self, index: u64) {
        let block = index / BLOCK_ROWS;
        if self.table.blocks.contains_key(&block) || !self.table.requested.insert(block) {
            return;
        }
        let Some(path) = self.path.clone() else {
            return;
        };
        self.service.send(Request::Page {
            path,
            state: self.filter,
            search: self.search.clone(),
            offset: block * BLOCK_ROWS,
            limit: BLOCK_ROWS as u32,
            generation: self.table.generation,
        });
    }

    /// Saves first when the document changed, then sends `request`.
    fn after_saving(&mut self, request: Request) {
        match &self.path {
            Some(path) if self.is_dirty() => {
                self.after_save.push(request);
                self.service.send(Request::Save {
                    path: path.clone(),
                    document: Box::new(self.doc.clone()),
                });
            }
            Some(_) => self.service.send(request),
            None => {
                self.problems = vec!["save the campaign first (File → Save as…)".into()];
            }
        }
    }

    pub fn apply(&mut self, action: Action) {
        let path = self.path.clone();
        match action {
            Action::New => {
                self.path = None;
                self.path_text.clear();
                self.doc = starter_document();
                self.saved = Document::default();
                self.counts = Counts::default();
                self.table.reset();
                self.table.total = 0;
                self.preview = None;
                self.problems.clear();
                self.status = "new campaign".into();
            }
            Action::Open(path) => {
                self.status = format!("opening {}", path.display());
                self.service.send(Request::Open { path });
            }
            Action::Save => match path {
                Some(path) => self.service.send(Request::Save {
                    path,
                    document: Box::new(self.doc.clone()),
                }),
                None => {
                    self.problems =
                        vec!["choose where to save: type a path and press Save as".into()]
                }
            },
            Action::SaveAs(path) => {
                self.service.send(Request::Save {
                    path: path.clone(),
                    document: Box::new(self.doc.clone()),
                });
                self.after_save.push(Request::Validate { path });
            }
            Action::PeekCsv => {
                let recipients = &self.doc.raw.recipients;
                if let (Some(campaign), Some(csv)) =
                    (&path, recipients.list.as_ref().or(recipients.csv.as_ref()))
                {
                    let base = campaign.parent().map(PathBuf::from).unwrap_or_default();
                    // None: the service finds the column as an import would, and says how.
                    let email_column = self.doc.raw.recipients.email_column.clone();
                    self.service.send(Request::PeekCsv {
                        path: base.join(csv),
                        email_column,
                    });
                }
            }
            Action::Import => {
                if let Some(path) = path {
                    self.busy = Some("importing…".into());
                    self.after_saving(Request::Import { path });
                }
            }
            Action::Preview(index) => {
                self.preview_index = index;
                if let Some(path) = path {
                    self.after_saving(Request::Preview { path, index });
                }
            }
            Action::TestSend(to) => {
                if let Some(path) = path {
                    self.test_result = Some(Ok(format!("sending a test to {to}…")));
                    self.after_saving(Request::TestSend {
                        path,
                        index: self.preview_index,
                        to,
                    });
                }
            }
            Action::Start => {
                if let Some(path) = path {
                    self.problems.clear();
                    self.after_saving(Request::Start { path });
                } else {
                    self.problems = vec!["save the campaign first (File → Save as…)".into()];
                }
            }
            Action::Pause => self.service.send(Request::Pause),
            Action::Resume => {
                if self.running {
                    self.service.send(Request::Resume);
                } else if let Some(path) = path {
                    self.after_saving(Request::Start { path });
                }
            }
            Action::Stop => self.service.send(Request::Stop),
            Action::Resend { include_uncertain } => {
                if let Some(path) = path {
                    self.service.send(Request::Resend {
                        path,
                        include_uncertain,
                    });
                }
            }
            Action::MarkUncertainSent => {
                if let Some(path) = path {
                    self.service.send(Request::MarkUncertainSent { path });
                }
            }
            Action::ExportFailed(to) => {
                if let Some(path) = path {
                    self.service.send(Request::ExportFailed { path, to });
                }
            }
            Action::TestRelay(index) => self.test_relay(index),
            Action::StorePassword(index) => self.store_password(index),
            Action::TableChanged => self.refresh_table(),
            Action::ToggleTheme => self.remembered.dark = !self.remembered.dark,
        }
    }

    fn store_password(&mut self, index: usize) {
        let Some(password) = self
            .password_inputs
            .remove(&index)
            .filter(|p| !p.is_empty())
        else {
            return;
        };
        let Some(relay) = self.doc.raw.relays.get_mut(index) else {
            return;
        };
        let name = relay.password_env.clone().unwrap_or_else(|| {
            let base = relay
                .name
                .clone()
                .unwrap_or_else(|| format!("relay {}", index + 1));
            let cleaned: String = base
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("HERALD_{cleaned}_PASSWORD")
        });
        relay.password_env = Some(name.clone());
        self.service.send(Request::StorePassword { name, password });
    }

    fn test_relay(&mut self, index: usize) {
        let Some(raw) = self.doc.raw.relays.get(index) else {
            return;
        };
        let name = raw
            .name
            .clone()
            .unwrap_or_else(|| format!("relay {}", index + 1));
        let security = match raw.security.as_deref() {
            Some("none") => crate::campaign::Security::None,
            Some("tls") => crate::campaign::Security::Tls,
            _ => crate::campaign::Security::StartTls,
        };
        let default_port = match security {
            crate::campaign::Security::None => 25,
            crate::campaign::Security::StartTls => 587,
            crate::campaign::Security::Tls => 465,
        };
        let base = self
            .path
            .as_ref()
            .and_then(|p| p.parent().map(PathBuf::from))
            .unwrap_or_default();
        let relay = crate::campaign::RelaySpec {
            name: name.clone(),
            host: raw.host.clone().unwrap_or_default(),
            port: raw
                .port
                .and_then(|port| u16::try_from(port).ok())
                .unwrap_or(default_port),
            security,
            username: raw.username.clone(),
            password_env: raw.password_env.clone(),
            ca_file: raw.ca_file.as_ref().map(|file| base.join(file)),
            weight: 1,
            max_connections: 1,
            rate_per_hour: 0,
        };
        let helo = self
            .doc
            .raw
            .direct
            .as_ref()
            .and_then(|direct| direct.helo.clone())
            .unwrap_or_else(|| "localhost".into());
        self.relay_tests.insert(name, Ok("testing…".into()));
        self.service.send(Request::TestRelay { relay, helo });
    }
}

/// What File → New starts from: a campaign that only needs a list and a relay.
fn starter_document() -> Document {
    let mut doc = Document::default();
    doc.raw.message.from = Some("Your Name <you@example.com>".into());
    doc.raw.message.subject = Some("Hello {{ first_name }}".into());
    doc.html = "<p>Hello {{ first_name }},</p>\n<p>…</p>\n".into();
    doc.raw.recipients.email_column = Some("email".into());
    doc
}

impl eframe::App for HeraldApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.drain();
        let title = format!(
            "Herald — {}{}",
            self.campaign_name(),
            if self.is_dirty() { " •" } else { "" }
        );
        if title != self.title {
            self.title = title.clone();
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title));
        }
        if self.running {
            // Progress arrives on a watch, not as answers: keep drawing while a run goes on.
            ctx.request_repaint_after(std::time::Duration::from_millis(250));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let actions = self.frame_ui(ui);
        for action in actions {
            if action == Action::ToggleTheme {
                theme::apply(ui.ctx(), !self.remembered.dark);
            }
            self.apply(action);
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.remembered.tab = self.tab;
        eframe::set_value(storage, eframe::APP_KEY, &self.remembered);
    }
}

use super::theme;

impl HeraldApp {
    /// Draws the whole window; returns the actions asked for this frame.
    pub fn frame_ui(&mut self, ui: &mut egui::Ui) -> Vec<Action> {
        let mut actions = Vec::new();
        egui::Panel::top("top_bar").show(ui, |ui| {
            self.top_bar_ui(ui, &mut actions);
        });
        egui::Panel::bottom("status_bar").show(ui, |ui| {
            self.status_bar_ui(ui);
        });
        egui::CentralPanel::default().show(ui, |ui| {
            if !self.problems.is_empty() {
                self.problems_ui(ui);
            }
            match self.tab {
                Tab::Compose => super::compose_ui::compose_ui(self, ui, &mut actions),
                Tab::Recipients => super::recipients_ui::recipients_ui(self, ui, &mut actions),
                Tab::Publish => super::publish_ui::publish_ui(self, ui, &mut actions),
            }
        });
        actions
    }

    fn top_bar_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            ui.heading("Herald");
            ui.separator();
            ui.menu_button("File", |ui| {
                if ui.button("New").clicked() {
                    actions.push(Action::New);
                    ui.close();
                }
                if ui.button("Open…").clicked() {
                    if let Some(path) = rfd::FileDialog::new()
                        .add_filter("Campaign", &["toml"])
                        .pick_file()
                    {
                        actions.push(Action::Open(path));
                    }
                    ui.close();
                }
                if ui.button("Save").clicked() {
                    actions.push(Action::Save);
                    ui.close();
                }
                if ui.button("Save as…").clicked() {
                    if let Some(path) = rfd::FileDialog::new()
                        .add_filter("Campaign", &["toml"])
                        .save_file()
                    {
                        actions.push(Action::SaveAs(path));
                    }
                    ui.close();
                }
            });
            let label = ui.label("Campaign file");
            ui.add(
                egui::TextEdit::singleline(&mut self.path_text)
                    .hint_text("path/to/campaign.toml")
                    .desired_width(320.0),
            )
            .labelled_by(label.id);
            if ui.button("Open").clicked() && !self.path_text.trim().is_empty() {
                actions.push(Action::Open(PathBuf::from(self.path_text.trim())));
            }
            if ui.button("Save as").clicked() && !self.path_text.trim().is_empty() {
                actions.push(Action::SaveAs(PathBuf::from(self.path_text.trim())));
            }
            if ui
                .add_enabled(self.path.is_some(), egui::Button::new("Save"))
                .clicked()
            {
                actions.push(Action::Save);
            }
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
        ui.add_space(2.0);
        ui.horizontal(|ui| {
            for (tab, label) in [
                (Tab::Compose, "Compose"),
                (Tab::Recipients, "Recipients"),
                (Tab::Publish, "Publish"),
            ] {
                if ui.selectable_label(self.tab == tab, label).clicked() {
                    self.tab = tab;
                    if tab == Tab::Recipients {
                        actions.push(Action::PeekCsv);
                    }
                }
            }
        });
        ui.add_space(4.0);
    }

    fn status_bar_ui(&mut self, ui: &mut egui::Ui) {
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
                "{} recipients · {} sent · {} failed · {} pending",
                c.total(),
                c.sent,
                c.failed,
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

    fn problems_ui(&mut self, ui: &mut egui::Ui) {
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
