//! The window's shell: the views (one struct each, owning its own state), which one is shown,
//! the campaign being edited, and the one place of change. Answers from the service are folded
//! in by `logic` (which runs even while the window is hidden); the actions the views return are
//! applied by `apply`, the only code that talks to the service. A view never reaches into
//! another view's state: what several share (the document, the counts, the run) travels in a
//! [`ViewContext`].

use std::path::PathBuf;
use std::sync::Arc;

use super::compose_ui::ComposeView;
use super::dialogs::{Dialogs, Purpose};
use super::library_ui::LibraryView;
use super::publish_ui::PublishView;
use super::recipients_ui::{BLOCK_ROWS, RecipientsView};
use super::results_ui::ResultsView;
use super::suppression_ui::{self, SuppressionView};
use super::theme;
use crate::engine::service::{Answer, BeforeStart, Document, Request, Service};
use crate::engine::{Progress, RunState};
use crate::store::{Counts, FeedbackCounts, RecipientRow, ReplyClass, State};

/// The views, in the order a campaign is made; the library comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Tab {
    Library,
    Compose,
    Recipients,
    Publish,
    Results,
    /// The global suppression list (not tied to the open campaign).
    Suppression,
}

/// What the user asked for; returned by the views, applied in one place.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A blank campaign in the window (not yet saved anywhere).
    New,
    Open(PathBuf),
    Save,
    SaveAs(PathBuf),
    /// Open a file chooser; its answer comes back to the control that asked.
    Browse(Purpose),
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
    ExportAll(PathBuf),
    TestRelay(usize),
    /// Keep the password typed for relay `index` in the keyring.
    StorePassword {
        index: usize,
        password: String,
    },
    /// Rows of the recipients table from `block` on are wanted.
    FetchRows(u64),
    TableChanged,
    ToggleTheme,
    Show(Tab),
    RefreshLibrary,
    /// Write a ready campaign into this folder and open it.
    NewCampaignIn(PathBuf),
    /// Make the next mailing from this campaign and open it.
    Duplicate(PathBuf),
    RefreshResults,
    /// Read the campaign's bounce mailbox now.
    CheckMailbox,
    /// Keep a password in the keyring under `name` (the bounce mailbox's `password_env`).
    StoreSecret {
        name: String,
        password: String,
    },
    /// The user answered "Send anyway?" after a check before the start failed.
    SendAnyway,
    CancelStart,
    RefreshSuppressions,
    Suppress {
        address: String,
        note: String,
    },
    Unsuppress(String),
    ExportSuppressions(PathBuf),
    /// The recipients table filtered as a figure of the results view counts them.
    ShowRecipients {
        state: Option<State>,
        reply: Option<ReplyClass>,
        search: String,
    },
}

/// What the views share for one frame: the campaign being edited and where its run stands.
pub struct ViewContext<'a> {
    pub doc: &'a mut Document,
    /// The campaign file; None for a campaign not saved yet.
    pub path: Option<&'a std::path::Path>,
    pub counts: Counts,
    /// Complained and unsubscribed (and soft, blocked) for the open campaign.
    pub feedback: FeedbackCounts,
    pub running: bool,
    pub progress: Option<&'a Progress>,
    /// The list's columns, for "insert field" (from the recipients view's last look at it).
    pub columns: &'a [String],
    /// The control whose file chooser could not open: it says so and offers its text box.
    pub dialog_failed: Option<Purpose>,
}

/// What the window remembers between sessions (eframe persistence).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Remembered {
    pub last_campaign: Option<PathBuf>,
    pub dark: bool,
    pub tab: Tab,
    /// The window was once sized to its screen (later launches keep the user's size).
    pub fitted_to_screen: bool,
}

impl Default for Remembered {
    fn default() -> Self {
        Remembered {
            last_campaign: None,
            dark: true,
            tab: Tab::Library,
            fitted_to_screen: false,
        }
    }
}

pub struct HeraldApp {
    service: Service,
    remembered: Remembered,
    tab: Tab,
    /// The campaign file being edited; None for a new, unsaved campaign.
    path: Option<PathBuf>,
    path_text: String,
    doc: Document,
    saved: Document,
    status: String,
    problems: Vec<String>,
    busy: Option<String>,
    counts: Counts,
    feedback: FeedbackCounts,
    progress: Option<Progress>,
    running: bool,
    /// A start stopped by a failed check, waiting for "Send anyway" or "Cancel".
    ask_send_anyway: Option<BeforeStart>,
    /// A start was asked and its answer has not come yet.
    starting: bool,
    offered_resume: bool,
    after_save: Vec<Request>,
    /// A switch of campaign waiting for the user to say what becomes of unsaved edits.
    pending_switch: Option<Action>,
    /// A switch to make once the save under way has succeeded.
    switch_after_save: Option<Action>,
    compose: ComposeView,
    recipients: RecipientsView,
    publish: PublishView,
    library: LibraryView,
    results: ResultsView,
    suppression: SuppressionView,
    dialogs: Dialogs,
    toasts: egui_notify::Toasts,
    /// The last toast shown, for tests (toasts are painted, not in the accessibility tree).
    last_toast: Option<String>,
    /// The window title last sent: sending a viewport command requests a repaint, so it is
    /// sent only when it changes (otherwise an idle window would redraw forever).
    title: String,
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
            saved: starter_document(),
            status: "ready".into(),
            problems: Vec::new(),
            busy: None,
            counts: Counts::default(),
            feedback: FeedbackCounts::default(),
            progress: None,
            running: false,
            ask_send_anyway: None,
            starting: false,
            offered_resume: false,
            after_save: Vec::new(),
            pending_switch: None,
            switch_after_save: None,
            compose: ComposeView::default(),
            recipients: RecipientsView::default(),
            publish: PublishView::default(),
            library: LibraryView::default(),
            results: ResultsView::default(),
            suppression: SuppressionView::default(),
            dialogs: Dialogs::system(ctx.clone()),
            toasts: egui_notify::Toasts::default(),
            last_toast: None,
            title: String::new(),
        };
        app.service.send(Request::Library);
        if app.tab == Tab::Suppression {
            app.apply(Action::RefreshSuppressions);
        }
        match campaign.or_else(|| app.remembered.last_campaign.clone()) {
            Some(path) => app.apply(Action::Open(path)),
            None => app.tab = Tab::Library,
        }
        Ok(app)
    }

    /// Replaces the file choosers (tests use one that behaves as rfd does where none opens).
    pub fn with_dialogs(mut self, dialogs: Dialogs) -> HeraldApp {
        self.dialogs = dialogs;
        self
    }

    pub fn campaign_name(&self) -> String {
        self.path
            .as_deref()
            .map(super::library_ui::name_of)
            .unwrap_or_else(|| "new campaign".to_string())
    }

    pub fn campaign_path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
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
        self.compose.test_result.as_ref()
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
        self.recipients.table.total
    }

    pub fn table_row(&self, index: u64) -> Option<&RecipientRow> {
        self.recipients.table.row(index)
    }

    /// How many campaigns the library lists (None until the service answered).
    pub fn library_len(&self) -> Option<usize> {
        self.library.len()
    }

    /// Whether the results of the open campaign have arrived.
    pub fn has_results(&self) -> bool {
        self.results.has_data()
    }

    /// The last toast shown ("saved", "exported 25 recipients"…).
    pub fn last_toast(&self) -> Option<&str> {
        self.last_toast.as_deref()
    }

    /// Whether a start waits for the user to say "Send anyway" or "Cancel".
    pub fn is_asking_to_send_anyway(&self) -> bool {
        self.ask_send_anyway.is_some()
    }

    /// What the last start checked first (mailbox, unsubscribe pull).
    pub fn before_start(&self) -> Option<&BeforeStart> {
        self.publish.before_start.as_ref()
    }

    /// The last "Check mailbox" result.
    pub fn mailbox_result(&self) -> Option<&Result<Box<crate::inbox::Summary>, String>> {
        self.publish.mailbox.as_ref()
    }

    pub fn feedback(&self) -> FeedbackCounts {
        self.feedback
    }

    /// How many suppressed addresses match the view's search (None until read).
    pub fn suppression_total(&self) -> Option<u64> {
        self.suppression.total()
    }

    /// The feedback note of the table's row `index`, if it has one.
    pub fn table_note(&self, index: u64) -> Option<&str> {
        let row = self.recipients.table.row(index)?;
        self.recipients.table.notes.get(&row.id).map(String::as_str)
    }

    /// Whether a switch of campaign waits for the user to say what becomes of unsaved edits.
    pub fn is_asking_about_unsaved(&self) -> bool {
        self.pending_switch.is_some()
    }

    fn toast_success(&mut self, text: String) {
        self.toast(text, "•", theme::state_color(State::Sent));
    }

    fn toast_error(&mut self, text: String) {
        self.toast(text, "!", theme::state_color(State::Failed));
    }

    /// egui-notify's own icons and close cross are emoji that egui's bundled fonts lack (a
    /// panic in a headless test, a box elsewhere): ours are plain characters, and the toast
    /// goes by itself.
    fn toast(&mut self, text: String, icon: &str, color: egui::Color32) {
        self.toasts
            .custom(text.clone(), icon.to_string(), color)
            .closable(false)
            .duration(Some(std::time::Duration::from_secs(4)));
        self.last_toast = Some(text);
    }

    /// Folds in what the service answered. Runs every frame, and while hidden.
    pub fn drain(&mut self) {
        for answer in self.service.answers() {
            self.absorb(answer);
        }
        if let Some((purpose, path)) = self.dialogs.poll() {
            self.chosen(purpose, path);
        }
        if let Some(progress) = self.service.progress()
            && self.running
        {
            self.counts = progress.counts;
            self.publish.record_rate(&progress);
            self.progress = Some(progress);
        }
    }

    /// A path came back from a file chooser: it goes where the control that asked wants it.
    fn chosen(&mut self, purpose: Purpose, path: PathBuf) {
        match purpose {
            Purpose::OpenCampaign => self.apply(Action::Open(path)),
            Purpose::SaveCampaignAs => self.apply(Action::SaveAs(path)),
            Purpose::RecipientList => {
                let file = Some(self.relative_to_campaign(&path));
                let recipients = &mut self.doc.raw.recipients;
                // `list` and `csv` mean the same; set whichever the file uses.
                if recipients.list.is_some() {
                    recipients.list = file;
                } else {
                    recipients.csv = file;
                }
                self.apply(Action::PeekCsv);
            }
            Purpose::Attachment => {
                let name = self.relative_to_campaign(&path);
                self.doc.raw.message.attachments.push(name);
            }
            Purpose::NewCampaignFolder => self.library.set_folder(&path),
            Purpose::ExportResults => self.results.set_export_path(&path),
            Purpose::ExportSuppressions => self.suppression.set_export_path(&path),
        }
    }

    /// A chosen file as the campaign file names it: relative to the campaign's folder when it
    /// lies inside it, so the campaign folder can be moved whole.
    fn relative_to_campaign(&self, path: &std::path::Path) -> String {
        let relative = self
            .path
            .as_ref()
            .and_then(|campaign| campaign.parent())
            .and_then(|folder| path.strip_prefix(folder).ok());
        relative.unwrap_or(path).to_string_lossy().into_owned()
    }

    fn absorb(&mut self, answer: Answer) {
        match answer {
            Answer::Opened(Ok((path, doc))) => {
                self.status = format!("opened {}", super::library_ui::shown_path(&path));
                self.path_text = super::library_ui::shown_path(&path);
                self.remembered.last_campaign = Some(path.clone());
                self.path = Some(path.clone());
                self.saved = (*doc).clone();
                self.doc = *doc;
                self.problems.clear();
                self.compose.reset();
                self.recipients.reset();
                self.results.reset();
                self.counts = Counts::default();
                self.feedback = FeedbackCounts::default();
                self.publish.reset_feedback();
                self.offered_resume = false;
                if self.tab == Tab::Library {
                    self.tab = Tab::Compose;
                }
                if self.tab == Tab::Results {
                    // Reopened on Results (a later launch): its figures are asked for here.
                    self.apply(Action::RefreshResults);
                }
                self.service.send(Request::Counts { path: path.clone() });
                self.service.send(Request::Feedback { path: path.clone() });
                self.service.send(Request::Validate { path });
                self.apply(Action::PeekCsv);
            }
            Answer::Opened(Err(error)) => {
                self.status = "could not open the campaign".into();
                self.problems = vec![error];
            }
            Answer::Saved(Ok(path)) => {
                self.status = format!("saved {}", super::library_ui::shown_path(&path));
                let name = path
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.toast_success(format!("Saved {name}"));
                self.saved = self.doc.clone();
                self.remembered.last_campaign = Some(path.clone());
                self.path_text = super::library_ui::shown_path(&path);
                self.path = Some(path);
                for request in std::mem::take(&mut self.after_save) {
                    self.service.send(request);
                }
                if let Some(action) = self.switch_after_save.take() {
                    self.apply(action);
                }
            }
            Answer::Saved(Err(error)) => {
                self.after_save.clear();
                self.switch_after_save = None;
                self.status = "could not save".into();
                self.toast_error("Could not save: see the problem above".into());
                self.problems = vec![error];
            }
            Answer::Validated(result) => {
                self.problems = result.err().unwrap_or_default();
                if self.problems.is_empty() {
                    self.status = "the campaign is valid".into();
                }
            }
            Answer::Peeked(result) => self.recipients.peek = Some(result),
            Answer::Imported(Ok((report, counts))) => {
                self.busy = None;
                self.status = format!(
                    "imported {} row(s): {} new, {} invalid, {} duplicate(s)",
                    report.rows, report.added, report.invalid, report.duplicates
                );
                self.toast_success(format!("Imported {} new recipient(s)", report.added));
                self.recipients.import_report = Some(report);
                self.counts = counts;
                self.recipients.refresh();
                self.service.send(Request::Library);
            }
            Answer::Imported(Err(error)) => {
                self.busy = None;
                self.status = "import failed".into();
                self.recipients.import_error = Some(error);
            }
            Answer::Counts(counts) => {
                self.counts = counts;
                let interrupted = counts.sending > 0
                    || (counts.pending + counts.deferred > 0 && counts.sent + counts.failed > 0);
                if interrupted && !self.running && !self.offered_resume {
                    self.offered_resume = true;
                    self.status = "this campaign was interrupted: press Resume sending on the Publish tab to go on".into();
                }
                self.recipients.refresh();
            }
            Answer::Page {
                generation,
                offset,
                total,
                rows,
            } => {
                // The feedback of the rows on screen follows in a request of its own.
                let ids: Vec<_> = rows.iter().map(|row| row.id).collect();
                if !ids.is_empty() && generation == self.recipients.table.generation {
                    self.service.send(Request::RowFeedback { ids, generation });
                }
                self.recipients
                    .table
                    .insert(generation, offset, total, rows);
            }
            Answer::Preview(result) => self.compose.preview = Some(result),
            Answer::TestSent(result) => {
                match &result {
                    Ok(_) => self.toast_success("Test message sent".into()),
                    Err(_) => self.toast_error("The test message was not sent".into()),
                }
                self.compose.test_result = Some(result);
            }
            Answer::Started => {
                self.starting = false;
                self.busy = None;
                self.running = true;
                self.publish.clear_rates();
                self.status = "sending".into();
            }
            Answer::RunEnded(progress) => {
                self.running = false;
                self.counts = progress.counts;
                self.status = format!("run {}", progress.state.label());
                match &progress.state {
                    RunState::Failed { reason } => self.problems = vec![reason.clone()],
                    _ => self.toast_success(format!("Run {}", progress.state.label())),
                }
                self.progress = Some(progress);
                self.recipients.refresh();
                self.results.stale();
                self.service.send(Request::Library);
                self.refresh_feedback();
            }
            Answer::Resent(Ok(count)) => {
                self.status = format!("{count} recipient(s) put back to pending");
                self.toast_success(self.status.clone());
                if let Some(path) = self.path.clone() {
                    self.service.send(Request::Counts { path });
                }
            }
            Answer::Resent(Err(error)) => self.problems = vec![error],
            Answer::Exported(result) => {
                match &result {
                    Ok(count) => {
                        self.status = format!("exported {count} recipient(s)");
                        self.toast_success(format!("Exported {count} recipient(s)"));
                    }
                    Err(_) => self.toast_error("The export failed".into()),
                }
                self.recipients.export_result = Some(result.clone());
                self.results.export_result = Some(result);
            }
            Answer::RelayTested { name, result } => self.publish.relay_tested(name, result),
            Answer::PasswordStored { name, result } => match result {
                Ok(saved) => {
                    self.status = format!("password {name}: {saved}");
                    self.toast_success(self.status.clone());
                }
                Err(error) => self.problems = vec![error],
            },
            Answer::Problem(problem) => {
                self.busy = None;
                if std::mem::take(&mut self.starting) {
                    // Said beside the Start button, where it was asked.
                    self.publish.start_error = Some(problem.clone());
                }
                self.problems = vec![problem];
            }
            Answer::Library(result) => self.library.campaigns = Some(result),
            Answer::Created(Ok(path)) => {
                self.toast_success(format!("Created {}", super::library_ui::shown_path(&path)));
                self.service.send(Request::Library);
                self.apply(Action::Open(path));
            }
            Answer::Created(Err(error)) => self.library.create_error = Some(error),
            Answer::Results(result) => self.results.data = Some(result),
            Answer::BeforeStart(found) => self.before_start_found(*found),
            Answer::MailboxChecked(result) => {
                match &result {
                    Ok(summary) => {
                        self.toast_success(format!("Mailbox read: {} message(s)", summary.read))
                    }
                    Err(_) => self.toast_error("The mailbox could not be read".into()),
                }
                self.publish.mailbox_checked(result);
                self.after_feedback_changed();
            }
            Answer::Feedback(counts) => self.feedback = counts,
            Answer::RowFeedback { generation, notes } => {
                if generation == self.recipients.table.generation {
                    self.recipients.table.notes.extend(notes);
                }
            }
            Answer::Suppressions(page) => self.suppression.page = Some(page),
            Answer::SuppressionChanged(result) => {
                if let Ok(text) = &result {
                    self.toast_success(text.clone());
                }
                self.suppression.changed = Some(result);
                self.apply(Action::RefreshSuppressions);
            }
            Answer::SuppressionsExported(result) => {
                match &result {
                    Ok(count) => self.toast_success(format!("Exported {count} address(es)")),
                    Err(_) => self.toast_error("The export failed".into()),
                }
                self.suppression.export_result = Some(result);
            }
        }
    }

    /// What Start checked before sending: shown on Publish; a failed check asks the user.
    fn before_start_found(&mut self, found: BeforeStart) {
        if found.failed() && !found.started {
            self.starting = false;
            self.busy = None;
            self.status = "not sent yet: a check before sending failed".into();
            self.ask_send_anyway = Some(found.clone());
        } else if let Some(Ok(report)) = &found.pulled {
            self.status = format!(
                "pulled {} unsubscribe(s) from {}",
                report.records, report.endpoint
            );
        }
        if let Some(mailbox) = &found.mailbox {
            self.publish.mailbox_checked(mailbox.clone().map(Box::new));
        }
        self.publish.before_start = Some(found);
        self.after_feedback_changed();
    }

    /// Counts, feedback, table and results after the mailbox or a pull changed them.
    fn after_feedback_changed(&mut self) {
        if let Some(path) = self.path.clone() {
            self.service.send(Request::Counts { path });
        }
        self.refresh_feedback();
        self.results.stale();
        self.recipients.refresh();
        if self.tab == Tab::Suppression {
            self.apply(Action::RefreshSuppressions);
        }
    }

    fn refresh_feedback(&mut self) {
        if let Some(path) = self.path.clone() {
            self.service.send(Request::Feedback { path });
        }
    }

    /// Asks for the checks and then the run, as `herald send` does.
    fn start_checked(&mut self, path: PathBuf) {
        self.problems.clear();
        self.publish.start_error = None;
        self.starting = true;
        let raw = &self.doc.raw;
        let pulls = raw
            .unsubscribe
            .as_ref()
            .is_some_and(|spec| spec.endpoint.is_some());
        self.busy = Some(
            match (raw.bounces.is_some(), pulls) {
                (true, true) => "reading the bounce mailbox and pulling unsubscribes…",
                (true, false) => "reading the bounce mailbox before sending…",
                (false, true) => "pulling new unsubscribes before sending…",
                (false, false) => "starting…",
            }
            .into(),
        );
        self.after_saving(Request::StartChecked { path });
    }

    /// Sends `request` once the campaign on disk matches the window: saves first if edited.
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

    /// Whether `action` leaves the campaign in the window for another one.
    fn switches_campaign(&self, action: &Action) -> bool {
        match action {
            Action::New | Action::NewCampaignIn(_) => true,
            Action::Open(path) => self.path.as_ref() != Some(path),
            Action::Duplicate(path) => self.path.as_ref() == Some(path),
            _ => false,
        }
    }

    pub fn apply(&mut self, action: Action) {
        if self.is_dirty() && self.pending_switch.is_none() && self.switches_campaign(&action) {
            // Unsaved edits are never dropped silently: the window asks first.
            self.pending_switch = Some(action);
            return;
        }
        let path = self.path.clone();
        match action {
            Action::New => {
                self.path = None;
                self.path_text.clear();
                self.doc = starter_document();
                // Untouched, the blank campaign has nothing to lose; edited, it is asked about.
                self.saved = starter_document();
                self.counts = Counts::default();
                self.feedback = FeedbackCounts::default();
                self.publish.reset_feedback();
                self.compose.reset();
                self.recipients.reset();
                self.results.reset();
                self.problems.clear();
                self.status = "new campaign".into();
                self.tab = Tab::Compose;
            }
            Action::Open(path) => {
                self.status = format!("opening {}", super::library_ui::shown_path(&path));
                self.service.send(Request::Open { path });
            }
            Action::Save => match path {
                Some(path) => self.service.send(Request::Save {
                    path,
                    document: Box::new(self.doc.clone()),
                }),
                None => self.dialogs.open(Purpose::SaveCampaignAs),
            },
            Action::SaveAs(path) => {
                self.service.send(Request::Save {
                    path: path.clone(),
                    document: Box::new(self.doc.clone()),
                });
                self.after_save.push(Request::Validate { path });
            }
            Action::Browse(purpose) => self.dialogs.open(purpose),
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
                if path.is_some() {
                    self.busy = Some("importing…".into());
                    self.recipients.import_error = None;
                    if let Some(path) = path {
                        self.after_saving(Request::Import { path });
                    }
                } else {
                    self.recipients.import_error =
                        Some("Save the campaign first (Ctrl+S), then import its list.".into());
                }
            }
            Action::Preview(index) => {
                self.compose.preview_index = index;
                if let Some(path) = path {
                    self.after_saving(Request::Preview { path, index });
                }
            }
            Action::TestSend(to) => {
                if let Some(path) = path {
                    self.compose.test_result = Some(Ok(format!("sending a test to {to}…")));
                    let index = self.compose.preview_index;
                    self.after_saving(Request::TestSend { path, index, to });
                }
            }
            Action::Start => {
                if let Some(path) = path {
                    self.start_checked(path);
                } else {
                    self.problems = vec!["save the campaign first (File → Save as…)".into()];
                }
            }
            Action::Pause => self.service.send(Request::Pause),
            Action::Resume => {
                if self.running {
                    self.service.send(Request::Resume);
                } else if let Some(path) = path {
                    self.start_checked(path);
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
            Action::ExportAll(to) => {
                if let Some(path) = path {
                    self.service.send(Request::ExportAll { path, to });
                }
            }
            Action::TestRelay(index) => {
                if let Some((relay, helo)) = super::publish_ui::relay_spec(&self.doc, path, index) {
                    self.publish.relay_testing(&relay.name);
                    self.service.send(Request::TestRelay { relay, helo });
                }
            }
            Action::StorePassword { index, password } => self.store_password(index, password),
            Action::FetchRows(block) => {
                if let Some(path) = path {
                    let (state, search, reply) = self.recipients.filters();
                    self.service.send(Request::Page {
                        path,
                        state,
                        search,
                        reply,
                        offset: block * BLOCK_ROWS,
                        limit: BLOCK_ROWS as u32,
                        generation: self.recipients.table.generation,
                    });
                }
            }
            Action::TableChanged => self.recipients.refresh(),
            Action::ToggleTheme => self.remembered.dark = !self.remembered.dark,
            Action::Show(tab) => self.show(tab),
            Action::RefreshLibrary => self.service.send(Request::Library),
            Action::NewCampaignIn(folder) => {
                self.library.create_error = None;
                self.service.send(Request::NewCampaign { folder });
            }
            Action::Duplicate(path) => self.service.send(Request::Duplicate { path }),
            Action::RefreshResults => {
                if let Some(path) = path {
                    self.results.loading();
                    self.service.send(Request::Results { path });
                }
            }
            Action::CheckMailbox => {
                if let Some(path) = path {
                    // The mailbox settings are read from the file; the window does not edit them,
                    // so nothing needs saving first.
                    self.publish.mailbox_checking();
                    self.service.send(Request::CheckMailbox { path });
                }
            }
            Action::StoreSecret { name, password } => {
                self.service.send(Request::StorePassword { name, password })
            }
            Action::SendAnyway => {
                self.ask_send_anyway = None;
                if let Some(path) = path {
                    self.starting = true;
                    self.status = "sending without the checks, as asked".into();
                    self.service.send(Request::Start { path });
                }
            }
            Action::CancelStart => {
                self.ask_send_anyway = None;
                self.status = "not sent: cancelled after a failed check".into();
            }
            Action::RefreshSuppressions => self.service.send(Request::Suppressions {
                search: self.suppression.search.trim().to_string(),
                limit: suppression_ui::SHOWN,
            }),
            Action::Suppress { address, note } => {
                self.service.send(Request::Suppress { address, note })
            }
            Action::Unsuppress(address) => self.service.send(Request::Unsuppress { address }),
            Action::ExportSuppressions(to) => {
                self.suppression.export_result = None;
                self.service.send(Request::ExportSuppressions { to });
            }
            Action::ShowRecipients {
                state,
                reply,
                search,
            } => {
                self.recipients.filter_by(state, reply, search);
                self.tab = Tab::Recipients;
            }
        }
    }

    fn show(&mut self, tab: Tab) {
        self.tab = tab;
        match tab {
            Tab::Recipients => self.apply(Action::PeekCsv),
            Tab::Library => self.service.send(Request::Library),
            Tab::Suppression => self.apply(Action::RefreshSuppressions),
            Tab::Results if self.results.wants_data() => self.apply(Action::RefreshResults),
            _ => {}
        }
    }

    fn store_password(&mut self, index: usize, password: String) {
        if password.is_empty() {
            return;
        }
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

    /// Ctrl+S save, Ctrl+O open, Ctrl+N new, Ctrl+P preview (Cmd on macOS).
    fn shortcuts(&mut self, ctx: &egui::Context) -> Vec<Action> {
        use egui::{Key, KeyboardShortcut, Modifiers};
        let mut actions = Vec::new();
        let pressed = |key| {
            ctx.input_mut(|input| {
                input.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, key))
            })
        };
        if pressed(Key::S) {
            actions.push(Action::Save);
        }
        if pressed(Key::O) {
            actions.push(Action::Browse(Purpose::OpenCampaign));
        }
        if pressed(Key::N) {
            actions.push(Action::New);
        }
        if pressed(Key::P) {
            actions.push(Action::Show(Tab::Compose));
            actions.push(Action::Preview(self.compose.preview_index));
        }
        actions
    }
}

/// An error message as the start of a sentence: "the endpoint…" → "The endpoint…".
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
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
        self.fit_to_screen(ctx);
        let title = format!(
            "Herald — {}{}",
            self.campaign_name(),
            if self.is_dirty() { " •" } else { "" }
        );
        if title != self.title {
            self.title = title.clone();
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title));
        }
        if self.running || self.dialogs.is_open() {
            // Progress arrives on a watch, and a chooser's answer on a channel, not as
            // answers that wake the window: keep looking while either is under way.
            ctx.request_repaint_after(std::time::Duration::from_millis(250));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let mut actions = self.shortcuts(ui.ctx());
        actions.extend(self.frame_ui(ui));
        for action in actions {
            if action == Action::ToggleTheme {
                theme::apply(ui.ctx(), !self.remembered.dark);
            }
            self.apply(action);
        }
        self.toasts.show(ui.ctx());
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.remembered.tab = self.tab;
        eframe::set_value(storage, eframe::APP_KEY, &self.remembered);
    }
}

impl HeraldApp {
    /// On the first launch, a window that is not maximized (no window manager honoured the
    /// request, as under a bare X server) is made as large as its monitor. Later launches keep
    /// the size the user left (eframe restores it).
    fn fit_to_screen(&mut self, ctx: &egui::Context) {
        if self.remembered.fitted_to_screen {
            return;
        }
        let (monitor, maximized, inner) = ctx.input(|input| {
            let viewport = input.viewport();
            (
                viewport.monitor_size,
                viewport.maximized,
                viewport.inner_rect,
            )
        });
        let Some(monitor) = monitor.filter(|size| size.x > 0.0 && size.y > 0.0) else {
            return;
        };
        self.remembered.fitted_to_screen = true;
        let small = inner
            .is_none_or(|rect| rect.width() < monitor.x * 0.95 || rect.height() < monitor.y * 0.9);
        if maximized != Some(true) && small {
            ctx.send_viewport_cmd(egui::ViewportCommand::OuterPosition(egui::pos2(0.0, 0.0)));
            ctx.send_viewport_cmd(egui::ViewportCommand::InnerSize(monitor));
        }
    }

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
            if !self.problems.is_empty() && !matches!(self.tab, Tab::Library | Tab::Suppression) {
                self.problems_ui(ui);
            }
            let columns = self.recipients.columns();
            let mut ctx = ViewContext {
                doc: &mut self.doc,
                path: self.path.as_deref(),
                counts: self.counts,
                feedback: self.feedback,
                running: self.running,
                progress: self.progress.as_ref(),
                columns: &columns,
                dialog_failed: self.dialogs.failed(),
            };
            let asked = match self.tab {
                Tab::Library => self.library.ui(ui, &mut ctx),
                Tab::Compose => self.compose.ui(ui, &mut ctx),
                Tab::Recipients => self.recipients.ui(ui, &mut ctx),
                Tab::Publish => self.publish.ui(ui, &mut ctx),
                Tab::Results => self.results.ui(ui, &mut ctx),
                Tab::Suppression => self.suppression.ui(ui, &mut ctx),
            };
            actions.extend(asked);
        });
        self.unsaved_ui(ui.ctx(), &mut actions);
        self.send_anyway_ui(ui.ctx(), &mut actions);
        actions
    }

    /// Asks whether to send when a check before the start failed: mailing people who left is
    /// what gets a sender junked, so the window never decides that alone (issue #15).
    fn send_anyway_ui(&self, ctx: &egui::Context, actions: &mut Vec<Action>) {
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
    fn unsaved_ui(&mut self, ctx: &egui::Context, actions: &mut Vec<Action>) {
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

    fn top_bar_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            ui.heading("Herald");
            ui.separator();
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
            let label = ui.label("Campaign file");
            ui.add(
                egui::TextEdit::singleline(&mut self.path_text)
                    .hint_text("path/to/campaign.toml")
                    .desired_width((ui.available_width() - 560.0).clamp(160.0, 480.0)),
            )
            .labelled_by(label.id);
            if ui.button("Open").clicked() {
                if self.path_text.trim().is_empty() {
                    actions.push(Action::Browse(Purpose::OpenCampaign));
                } else {
                    actions.push(Action::Open(super::library_ui::expand_home(
                        self.path_text.trim(),
                    )));
                }
            }
            if ui.button("Save as").clicked() {
                if self.path_text.trim().is_empty() {
                    actions.push(Action::Browse(Purpose::SaveCampaignAs));
                } else {
                    actions.push(Action::SaveAs(super::library_ui::expand_home(
                        self.path_text.trim(),
                    )));
                }
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
        if matches!(
            self.dialogs.failed(),
            Some(Purpose::OpenCampaign | Purpose::SaveCampaignAs)
        ) {
            ui.colored_label(ui.visuals().warn_fg_color, super::dialogs::UNAVAILABLE);
        }
        ui.add_space(2.0);
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
