//! Folding the service's answers into the window: `absorb` only says which area an answer
//! belongs to; each area's handler below changes that area's state and asks the service for
//! what follows. Runs in `logic`, even while the window is hidden; never waits on anything.

use std::path::PathBuf;

use super::super::library_ui::shown_path;
use super::{Action, Closing, HeraldApp, Tab};
use crate::app::service::{Answer, BeforeStart, Document, Request, SignInAnswer};
use crate::app::{AppError, Counts, ErrorKind, FeedbackCounts, RecipientRow};
use crate::engine::RunState;
use crate::inbox::Summary;

/// The sentence of a service error, for the views that only show it; `problem` acts on its kind.
fn text<T>(result: Result<T, AppError>) -> Result<T, String> {
    result.map_err(|error| error.to_string())
}

impl HeraldApp {
    pub(super) fn absorb(&mut self, answer: Answer) {
        match answer {
            // The campaign file and the library.
            Answer::Opened(Ok((path, doc))) => self.opened(path, doc),
            Answer::Opened(Err(error)) => {
                self.status = "could not open the campaign".into();
                self.problems = vec![error.to_string()];
                // The Campaigns view hides the campaign's problems box: it says it there.
                self.library.open_error = Some(error.to_string());
            }
            Answer::Saved(result) => self.saved_answer(text(result)),
            Answer::Validated(result) => self.validated(result),
            Answer::Library(result) => self.library.campaigns = Some(text(result)),
            Answer::Created(result) => self.created(text(result)),
            Answer::Renamed(result) => self.renamed(text(result)),
            // The list and the recipients table.
            Answer::Peeked(result) => self.recipients.peek = Some(text(result)),
            Answer::Imported(result) => self.imported(text(result)),
            Answer::Counts(counts) => self.counted(counts),
            Answer::Page {
                generation,
                offset,
                total,
                rows,
            } => self.page_arrived(generation, offset, total, rows),
            Answer::RowFeedback { generation, notes } => {
                if generation == self.recipients.table.generation {
                    self.recipients.table.notes.extend(notes);
                }
            }
            // Compose.
            Answer::Preview(result) => self.compose.preview = Some(text(result)),
            Answer::TestSent(result) => self.test_sent(text(result)),
            Answer::HtmlLoaded { file, result } => self.html_loaded(&file, text(result)),
            // Publish: relays, passwords and the run.
            Answer::RelayTested { name, result } => self.publish.relay_tested(name, text(result)),
            Answer::PasswordStored { name, result } => self.password_stored(name, text(result)),
            Answer::BeforeStart(found) => self.before_start_found(*found),
            Answer::Started => self.started(),
            Answer::RunEnded(progress) => self.run_ended(progress),
            Answer::Problem(problem) => self.problem(problem),
            // Results.
            Answer::Resent(result) => self.resent(text(result)),
            Answer::Exported(result) => self.exported(text(result)),
            Answer::Results(result) => self.results.data = Some(text(result)),
            // Feedback: the bounce mailbox and the suppression list.
            Answer::MailboxChecked(result) => self.mailbox_checked(text(result)),
            Answer::Deliverability {
                path,
                generation,
                result,
            } => self
                .publish
                .dns
                .answer(path, generation, text(result), self.path.as_deref()),
            Answer::Feedback(counts) => self.feedback = counts,
            Answer::Suppressions(page) => self.suppression.page = Some(text(page)),
            Answer::SuppressionChanged(result) => self.suppression_changed(text(result)),
            Answer::SuppressionsExported(result) => self.suppressions_exported(text(result)),
            Answer::HeldReports(rows) => self.suppression.review.rows = Some(text(rows)),
            Answer::HeldChanged(result) => self.held_changed(text(result)),
            Answer::SuppressionsImported(result) => {
                if result.is_ok() {
                    self.toast_success("Suppression list updated".into());
                }
                self.suppression.import_result = Some(text(result));
                self.apply(Action::RefreshSuppressions);
            }
            Answer::SignIn(answer) => self.signin_answered(answer),
        }
    }

    /// A campaign file was read: every view starts over on it.
    fn opened(&mut self, path: PathBuf, doc: Box<Document>) {
        self.status = format!("opened {}", shown_path(&path));
        self.path_text = shown_path(&path);
        self.remembered.last_campaign = Some(path.clone());
        self.path = Some(path.clone());
        self.saved = (*doc).clone();
        self.doc = *doc;
        self.problems.clear();
        self.library.open_error = None;
        self.compose.reset();
        self.recipients.reset();
        self.results.reset();
        self.counts = Counts::default();
        self.feedback = FeedbackCounts::default();
        for cancel in self.publish.reset_feedback() {
            self.service.send(Request::SignIn(cancel));
        }
        if !self.running {
            // The last run shown was another campaign's (a duplicate starts with none).
            self.progress = None;
            self.publish.clear_rates();
        }
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

    /// A save ended: on success the requests waiting for it go, then the waiting switch.
    fn saved_answer(&mut self, result: Result<PathBuf, String>) {
        let path = match result {
            Ok(path) => path,
            Err(error) => {
                self.after_save.clear();
                self.switch_after_save = None;
                if self.closing == Closing::Saving {
                    // Not saved, so not closed: the error is on screen to act on.
                    self.closing = Closing::Open;
                }
                self.starting = false;
                self.busy = None;
                // A "Check again" that waited for this save was dropped with it.
                self.publish.dns.stale();
                self.status = "could not save".into();
                self.toast_error("Could not save: see the problem above".into());
                self.problems = vec![error];
                return;
            }
        };
        self.status = format!("saved {}", shown_path(&path));
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.toast_success(format!("Saved {name}"));
        self.saved = self.doc.clone();
        self.remembered.last_campaign = Some(path.clone());
        self.path_text = shown_path(&path);
        self.path = Some(path.clone());
        for request in std::mem::take(&mut self.after_save) {
            self.service.send(request);
        }
        // The settings that decide the DNS findings may have changed.
        self.publish.dns.stale();
        // What the file says changed: its problems are found again (after the requests that
        // waited, so that a start is not held up by the check).
        self.service.send(Request::Validate { path });
        if self.closing == Closing::Saving {
            self.close_after_saving();
        }
        if let Some(action) = self.switch_after_save.take() {
            self.apply(action);
        }
    }

    fn validated(&mut self, result: Result<(), Vec<String>>) {
        self.problems = result.err().unwrap_or_default();
        if self.problems.is_empty() {
            self.status = "the campaign is valid".into();
        }
        // Why the last start did not start stays in the box until the next start.
        if let Some(error) = &self.publish.start_error
            && !self.problems.contains(error)
        {
            self.problems.push(error.clone());
        }
    }

    /// A sign-in or sign-out that ended changes what `herald check` says ("nobody has signed
    /// in yet"), so the campaign is checked again.
    fn signin_answered(&mut self, answer: SignInAnswer) {
        let ended = matches!(
            answer,
            SignInAnswer::Finished { result: Ok(_), .. } | SignInAnswer::SignedOut { .. }
        );
        self.publish.signin.answer(answer, self.path.as_deref());
        if ended && let Some(path) = self.path.clone() {
            self.service.send(Request::Validate { path });
        }
    }

    /// A new campaign or a duplicate was written: it is opened.
    fn created(&mut self, result: Result<PathBuf, String>) {
        match result {
            Ok(path) => {
                self.toast_success(format!("Created {}", shown_path(&path)));
                self.service.send(Request::Library);
                self.apply(Action::Open(path));
            }
            Err(error) => self.library.create_error = Some(error),
        }
    }

    /// A campaign was renamed: the list is read again, and the campaign open in the window
    /// (when the rename carried it) is opened where it went.
    fn renamed(&mut self, result: Result<crate::app::Renamed, String>) {
        match result {
            Ok(renamed) => {
                self.library.rename_done();
                self.toast_success(format!("Renamed to {}", shown_path(&renamed.to)));
                self.service.send(Request::Library);
                if let Some(moved) = self.path.as_deref().and_then(|path| renamed.carry(path)) {
                    if self.remembered.last_campaign.as_deref() == self.path.as_deref() {
                        self.remembered.last_campaign = Some(moved.clone());
                    }
                    self.apply(Action::Open(moved));
                }
            }
            Err(error) => self.library.rename_error = Some(error),
        }
    }

    fn imported(&mut self, result: Result<(crate::import::ImportReport, Counts), String>) {
        self.busy = None;
        match result {
            Ok((report, counts)) => {
                self.status = format!(
                    "imported {} row(s): {} new, {} invalid, {} duplicate(s)",
                    report.rows, report.added, report.invalid, report.duplicates
                );
                self.toast_success(format!("Imported {} new recipient(s)", report.added));
                self.recipients.import_report = Some(report);
                self.counts = counts;
                self.recipients.refresh();
                self.service.send(Request::Library);
                // "The list has no recipients" and its kind are answered again.
                self.revalidate();
            }
            Err(error) => {
                self.status = "import failed".into();
                self.recipients.import_error = Some(error);
            }
        }
    }

    /// The campaign's counts; a run that stopped half-way is offered to resume, once.
    fn counted(&mut self, counts: Counts) {
        self.counts = counts;
        let interrupted = counts.sending > 0
            || (counts.pending + counts.deferred > 0 && counts.sent + counts.failed > 0);
        if interrupted && !self.running && !self.offered_resume {
            self.offered_resume = true;
            self.status =
                "this campaign was interrupted: press Resume sending on the Publish tab to go on"
                    .into();
        }
        self.recipients.refresh();
    }

    fn page_arrived(&mut self, generation: u64, offset: u64, total: u64, rows: Vec<RecipientRow>) {
        // The feedback of the rows on screen follows in a request of its own.
        let ids: Vec<_> = rows.iter().map(|row| row.id).collect();
        if !ids.is_empty() && generation == self.recipients.table.generation {
            self.service.send(Request::RowFeedback { ids, generation });
        }
        self.recipients
            .table
            .insert(generation, offset, total, rows);
    }

    /// A newsletter's HTML file was read: it is the HTML body now (not saved yet), and the
    /// images copied beside the campaign are its inline images.
    fn html_loaded(
        &mut self,
        file: &std::path::Path,
        result: Result<crate::app::html_file::LoadedHtml, String>,
    ) {
        let loaded = match result {
            Ok(loaded) => loaded,
            Err(error) => {
                self.status = "could not read the HTML file".into();
                self.compose.html_loaded = Some(Err(error));
                return;
            }
        };
        let name = file
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let summary = loaded.summary(&name);
        self.doc.html = loaded.html;
        let inline = &mut self.doc.raw.message.inline;
        for image in loaded.inline {
            if !inline.contains(&image) {
                inline.push(image);
            }
        }
        self.status = format!("loaded {name} (not saved yet)");
        // The Text body stays the marketer's own (issue #20): say so rather than send words
        // that no longer match the HTML.
        self.compose.text_kept = !self.doc.text.trim().is_empty();
        self.compose.html_loaded = Some(if loaded.missing.is_empty() {
            Ok(summary)
        } else {
            Err(summary)
        });
    }

    fn test_sent(&mut self, result: Result<String, String>) {
        match &result {
            Ok(_) => self.toast_success("Test message sent".into()),
            Err(_) => self.toast_error("The test message was not sent".into()),
        }
        self.compose.test_result = Some(result);
    }

    fn password_stored(&mut self, name: String, result: Result<String, String>) {
        match result {
            Ok(saved) => {
                self.status = format!("password {name}: {saved}");
                self.toast_success(self.status.clone());
                // "Password not set" is answered again now that the keyring has it.
                self.revalidate();
            }
            Err(error) => self.problems = vec![error],
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

    fn started(&mut self) {
        self.starting = false;
        self.busy = None;
        self.running = true;
        self.publish.clear_rates();
        self.status = "run started".into();
    }

    /// The run's last progress: what it changed is read again everywhere.
    fn run_ended(&mut self, progress: crate::engine::Progress) {
        self.running = false;
        if self.closing == Closing::Stopping {
            self.closing = Closing::Ready;
        }
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

    /// A request failed: the sentence where it was asked, and what the user can do about it by
    /// its kind (read from the error, never from its text).
    fn problem(&mut self, error: AppError) {
        self.busy = None;
        let sentence = error.to_string();
        if std::mem::take(&mut self.starting) {
            // Said beside the Start button, where it was asked.
            self.publish.start_error = Some(sentence.clone());
        }
        match error.kind {
            ErrorKind::DiskFull => self.toast_error(
                "The disk is full: free some space, then try again. Nothing was lost.".into(),
            ),
            // Passwords are entered beside the relays, on Publish.
            ErrorKind::Credentials => {
                self.tab = Tab::Publish;
                self.toast_error(
                    "A password or sign-in was refused: enter it again on Publish.".into(),
                );
            }
            ErrorKind::Busy => self.toast_error(
                "Another program holds the database; close it (or the other Herald) and try again."
                    .into(),
            ),
            _ => {}
        }
        self.problems = vec![sentence];
    }

    fn resent(&mut self, result: Result<u64, String>) {
        match result {
            Ok(count) => {
                self.status = format!("{count} recipient(s) put back to pending");
                self.toast_success(self.status.clone());
                if let Some(path) = self.path.clone() {
                    self.service.send(Request::Counts { path });
                }
            }
            Err(error) => self.problems = vec![error],
        }
    }

    /// An export of recipients, asked from the recipients or the results view.
    fn exported(&mut self, result: Result<u64, String>) {
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

    fn mailbox_checked(&mut self, result: Result<Box<Summary>, String>) {
        match &result {
            Ok(summary) => self.toast_success(format!("Mailbox read: {} message(s)", summary.read)),
            Err(_) => self.toast_error("The mailbox could not be read".into()),
        }
        self.publish.mailbox_checked(result);
        self.after_feedback_changed();
    }

    fn suppression_changed(&mut self, result: Result<String, String>) {
        if let Ok(text) = &result {
            self.toast_success(text.clone());
        }
        self.suppression.changed = Some(result);
        self.apply(Action::RefreshSuppressions);
    }

    /// Held reports applied or dismissed: the list, the counts and the table change.
    fn held_changed(&mut self, result: Result<String, String>) {
        if let Ok(text) = &result {
            self.toast_success(text.clone());
        }
        self.suppression.review.changed = Some(result);
        // The suppression list and the held reports are read again there (this is their tab).
        self.after_feedback_changed();
    }

    fn suppressions_exported(&mut self, result: Result<u64, String>) {
        match &result {
            Ok(count) => self.toast_success(format!("Exported {count} address(es)")),
            Err(_) => self.toast_error("The export failed".into()),
        }
        self.suppression.export_result = Some(result);
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

    /// The campaign's problems, found again from the file after what they depend on changed.
    fn revalidate(&mut self) {
        if let Some(path) = self.path.clone() {
            self.service.send(Request::Validate { path });
        }
    }

    fn refresh_feedback(&mut self) {
        if let Some(path) = self.path.clone() {
            self.service.send(Request::Feedback { path });
        }
    }
}
