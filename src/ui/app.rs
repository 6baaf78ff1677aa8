//! The window's shell: the views (one struct each, owning its own state), which one is shown,
//! the campaign being edited, and the one place of change. Answers from the service are folded
//! in by `logic` (which runs even while the window is hidden); the actions the views return are
//! applied by `apply`, the only code that talks to the service. A view never reaches into
//! another view's state: what several share (the document, the counts, the run) travels in a
//! [`ViewContext`].

mod actions;
mod answers;
mod chrome;

use std::path::PathBuf;
use std::sync::Arc;

use super::compose_ui::ComposeView;
use super::dialogs::{Dialogs, Purpose};
use super::library_ui::LibraryView;
use super::publish_ui::PublishView;
use super::recipients_ui::RecipientsView;
use super::results_ui::ResultsView;
use super::suppression_ui::SuppressionView;
use super::theme;
use crate::app::service::{BeforeStart, Document, Request, Service};
use crate::app::{Counts, FeedbackCounts, RecipientRow, ReplyClass, State};
use crate::engine::Progress;

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
    /// Read a newsletter's HTML file into the HTML body (typed where no chooser could open).
    LoadHtml(PathBuf),
    Start,
    Pause,
    Resume,
    Stop,
    Resend {
        include_uncertain: bool,
        /// Also failed rows refused as dead addresses ("no such user"), taken off the list.
        include_hard: bool,
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
    /// Rename the campaign in this file to this name (issue #20).
    Rename {
        path: PathBuf,
        name: String,
    },
    RefreshResults,
    /// Read the campaign's bounce mailbox now.
    CheckMailbox,
    /// Keep the bounce mailbox's password in the keyring (under its `password_env`, named
    /// when the file names none).
    StoreMailboxPassword(String),
    /// Close the window as asked: after saving the edits (or discarding them), and after
    /// stopping the run if one goes.
    Close {
        save: bool,
    },
    /// The close was called off: back to editing (or watching the run).
    KeepOpen,
    /// Close without waiting any longer for the run to stop (a relay that does not answer):
    /// the messages under way are then found uncertain on the next open.
    CloseNow,
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
    /// The review list of held unverified reports (issue #21): apply some or all, dismiss one.
    ApplyHeld(crate::app::held::Which),
    DismissHeld(crate::app::RecipientId, crate::app::FeedbackKind),
    /// Add the addresses of a CSV file to the suppression list.
    ImportSuppressions(PathBuf),
    /// The recipients table filtered as a figure of the results view counts them.
    ShowRecipients {
        state: Option<State>,
        reply: Option<ReplyClass>,
        search: String,
    },
    /// Sign in to, or out of, an OAuth2 grant of the campaign (issue #22).
    SignIn(super::signin_ui::SignInAction),
    /// Read the saved campaign's DNS deliverability findings (issue #23); the number of the
    /// ask comes back with them.
    CheckDns(u64),
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

/// Closing the window (issue #20): unsaved edits and a run under way are asked about first,
/// then saved and stopped as the user chose, and only then does the window go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// Nobody asked to close.
    Open,
    /// The close was held back: "Save changes / Discard / Keep editing" (or "Stop and close").
    Asking,
    /// Saving as asked; closes (after stopping the run, if one goes) once saved.
    Saving,
    /// Stopping the run; closes when it has ended.
    Stopping,
    /// Everything asked is done: the window closes on the next frame.
    Ready,
    /// The close was sent; a further close request is let through.
    Closed,
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
    /// Where closing the window stands: asked, waiting for a save or for the run to stop.
    closing: Closing,
    compose: ComposeView,
    recipients: RecipientsView,
    publish: PublishView,
    library: LibraryView,
    results: ResultsView,
    suppression: SuppressionView,
    dialogs: Dialogs,
    toasts: egui_notify::Toasts,
    /// Toasts asked for since the last frame was drawn: laid out when drawn, to the window's
    /// width then (text, icon, icon colour).
    pending_toasts: Vec<(String, String, egui::Color32)>,
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
        let service = Service::start(db, Arc::new(move || wake_ctx.request_repaint()))
            .map_err(|error| error.to_string())?;
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
            closing: Closing::Open,
            compose: ComposeView::default(),
            recipients: RecipientsView::default(),
            publish: PublishView::default(),
            library: LibraryView::default(),
            results: ResultsView::default(),
            suppression: SuppressionView::default(),
            dialogs: Dialogs::system(ctx.clone()),
            // Bottom right, above the status bar: at the top they covered the theme button
            // and the preview's controls for their four seconds.
            toasts: egui_notify::Toasts::default()
                .with_anchor(egui_notify::Anchor::BottomRight)
                .with_margin(egui::vec2(8.0, 40.0)),
            pending_toasts: Vec::new(),
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

    /// How many unverified reports the review list shows (None until read).
    pub fn held_count(&self) -> Option<usize> {
        match &self.suppression.review.rows {
            Some(Ok(rows)) => Some(rows.len()),
            _ => None,
        }
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

    /// Where closing the window stands.
    pub fn closing(&self) -> Closing {
        self.closing
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
        self.pending_toasts
            .push((text.clone(), icon.to_string(), color));
        self.last_toast = Some(text);
    }

    /// Draws the toasts, laying out new ones first. egui-notify lays a caption out on one line
    /// however long (issue #20: a long sentence, then a long path, ran off the window): each
    /// is handed over already broken into lines that fit the window, at spaces where it can
    /// and inside a long word (a path, at its slashes) where it must.
    fn toasts_ui(&mut self, ctx: &egui::Context) {
        let width = toast_text_width(ctx.content_rect().width());
        for (text, icon, color) in self.pending_toasts.drain(..) {
            let font = egui::TextStyle::Body.resolve(&ctx.global_style());
            let galley =
                ctx.fonts_mut(|fonts| fonts.layout(text, font, egui::Color32::PLACEHOLDER, width));
            self.toasts
                .custom(egui::WidgetText::Galley(galley), icon, color)
                .closable(false)
                .duration(Some(std::time::Duration::from_secs(4)));
        }
        self.toasts.show(ctx);
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
            Purpose::HtmlFile => self.load_html(path),
            Purpose::NewCampaignFolder => self.library.set_folder(&path),
            Purpose::ExportResults => self.results.set_export_path(&path),
            Purpose::ExportSuppressions => self.suppression.set_export_path(&path),
            Purpose::ImportSuppressions => self.suppression.set_import_path(&path),
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
}

/// What File → New starts from: a campaign that only needs a list and a relay.
fn starter_document() -> Document {
    let mut doc = Document::default();
    doc.raw.message.from = Some("Your Name <you@example.com>".into());
    doc.raw.message.subject = Some("Hello {{ first_name }}".into());
    doc.html = "<p>Hello {{ first_name }},</p>\n<p>…</p>\n".into();
    // No email column named: the import finds it ("Email Address" in a Mailchimp export).
    doc
}

impl eframe::App for HeraldApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.drain();
        self.close_requested(ctx);
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
        if self.running || self.dialogs.is_open() || self.closing != Closing::Open {
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
        self.toasts_ui(ui.ctx());
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.remembered.tab = self.tab;
        eframe::set_value(storage, eframe::APP_KEY, &self.remembered);
    }
}

impl HeraldApp {
    /// The window's close button (or Alt+F4): held back while edits are unsaved or a run
    /// goes, so that the user decides (eframe lets a close request be cancelled).
    fn close_requested(&mut self, ctx: &egui::Context) {
        if self.closing == Closing::Ready {
            self.closing = Closing::Closed;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        if !ctx.input(|input| input.viewport().close_requested()) {
            return;
        }
        match self.closing {
            Closing::Closed => {}
            Closing::Open if !self.is_dirty() && !self.running => self.closing = Closing::Closed,
            // Asked already, or saving and stopping as asked: the close waits for that.
            _ => {
                ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
                if self.closing == Closing::Open {
                    self.closing = Closing::Asking;
                }
            }
        }
    }

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
            // In a scope of its own, drawn or not: egui numbers a widget's id by the widgets
            // drawn before it, so the Problems box coming and going as answers arrive would
            // otherwise renumber every field below it, dropping the keyboard focus of the one
            // being typed in (and a click pressed in that frame).
            ui.push_id("problems", |ui| {
                if !self.problems.is_empty() && !matches!(self.tab, Tab::Library | Tab::Suppression)
                {
                    self.problems_ui(ui);
                }
            });
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
        self.close_ui(ui.ctx(), &mut actions);
        self.send_anyway_ui(ui.ctx(), &mut actions);
        actions
    }
}

/// How wide a toast's text may be in a window `window_width` points wide: the window less
/// egui-notify's margins (8 each side), padding (10 each side and after the icon) and icon
/// (about a line high), and a line of about 500 points at most, which reads as a sentence.
pub fn toast_text_width(window_width: f32) -> f32 {
    const AROUND_POINTS: f32 = 2.0 * 8.0 + 3.0 * 10.0 + 24.0;
    (window_width - AROUND_POINTS).clamp(60.0, 500.0)
}

#[cfg(test)]
mod tests {
    use super::toast_text_width;

    #[test]
    fn toasts_are_as_wide_as_the_window_allows() {
        assert_eq!(toast_text_width(1280.0), 500.0);
        assert_eq!(toast_text_width(400.0), 330.0);
        assert_eq!(toast_text_width(50.0), 60.0);
    }
}
