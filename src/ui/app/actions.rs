//! Applying what the user asked for: `apply` guards unsaved edits, then only says which area an
//! action belongs to; each area's handler below changes the window's state and sends the
//! service its request. The only code that talks to the service; it never waits for an answer.

use std::path::PathBuf;

use super::super::dialogs::Purpose;
use super::super::library_ui::shown_path;
use super::super::recipients_ui::BLOCK_ROWS;
use super::super::signin_ui::SignInAction;
use super::super::suppression_ui;
use super::{Action, Closing, HeraldApp, Tab, starter_document};
use crate::app::service::Request;
use crate::app::{Counts, FeedbackCounts, ReplyClass, State};

impl HeraldApp {
    pub fn apply(&mut self, action: Action) {
        if self.is_dirty() && self.pending_switch.is_none() && self.switches_campaign(&action) {
            // Unsaved edits are never dropped silently: the window asks first.
            self.pending_switch = Some(action);
            return;
        }
        match action {
            // The campaign file and the library.
            Action::New => self.new_campaign(),
            Action::Open(path) => self.open(path),
            Action::Save => self.save_campaign(),
            Action::SaveAs(path) => self.save_as(path),
            Action::Browse(purpose) => self.dialogs.open(purpose),
            Action::RefreshLibrary => self.service.send(Request::Library),
            Action::NewCampaignIn(folder) => self.new_campaign_in(folder),
            Action::Duplicate(path) => self.service.send(Request::Duplicate { path }),
            Action::Rename { path, name } => self.service.send(Request::Rename { path, name }),
            // The window itself.
            Action::ToggleTheme => self.remembered.dark = !self.remembered.dark,
            Action::Close { save } => self.close(save),
            Action::KeepOpen => self.closing = Closing::Open,
            Action::CloseNow => self.closing = Closing::Ready,
            Action::Show(tab) => self.show(tab),
            // The list and the recipients table.
            Action::PeekCsv => self.peek_list(),
            Action::Import => self.import(),
            Action::FetchRows(block) => self.fetch_rows(block),
            Action::TableChanged => self.recipients.refresh(),
            Action::ShowRecipients {
                state,
                reply,
                search,
            } => self.show_recipients(state, reply, search),
            // Compose.
            Action::Preview(index) => self.preview(index),
            Action::TestSend(to) => self.test_send(to),
            // Publish: relays, passwords and the run.
            Action::TestRelay(index) => self.test_relay(index),
            Action::StorePassword { index, password } => self.store_password(index, password),
            Action::StoreMailboxPassword(password) => self.store_mailbox_password(password),
            Action::Start => self.start_checked(),
            Action::Pause => self.pause(),
            Action::Resume => self.resume(),
            Action::Stop => self.stop(),
            Action::SendAnyway => self.send_anyway(),
            Action::CancelStart => self.cancel_start(),
            Action::CheckMailbox => self.check_mailbox(),
            // Checked as saved: edits on screen are saved first, and a save asks again.
            Action::CheckDns(generation) => {
                self.after_saving(|path| Request::Deliverability { path, generation })
            }
            Action::LoadHtml(file) => self.load_html(file),
            // Results.
            Action::RefreshResults => self.refresh_results(),
            Action::Resend {
                include_uncertain,
                include_hard,
            } => self.resend(include_uncertain, include_hard),
            Action::MarkUncertainSent => {
                self.for_campaign(|path| Request::MarkUncertainSent { path })
            }
            Action::ExportFailed(to) => {
                self.for_campaign(|path| Request::ExportFailed { path, to })
            }
            Action::ExportAll(to) => self.for_campaign(|path| Request::ExportAll { path, to }),
            // The suppression list.
            Action::RefreshSuppressions => self.refresh_suppressions(),
            Action::Suppress { address, note } => {
                self.service.send(Request::Suppress { address, note })
            }
            Action::Unsuppress(address) => self.service.send(Request::Unsuppress { address }),
            Action::ExportSuppressions(to) => self.export_suppressions(to),
            Action::ApplyHeld(which) => self.service.send(Request::ApplyHeld {
                which,
                path: self.path.clone(),
            }),
            Action::DismissHeld(recipient, kind) => {
                self.service.send(Request::DismissHeld { recipient, kind })
            }
            Action::ImportSuppressions(from) => {
                self.suppression.import_result = None;
                self.service.send(Request::ImportSuppressions { from });
            }
            Action::SignIn(action) => self.sign_in(action),
        }
    }

    /// A sign-in reads the campaign file's `[oauth2.NAME]`, so it goes after a save; asking
    /// where grants stand, cancelling and signing out read what is saved.
    fn sign_in(&mut self, action: SignInAction) {
        match action {
            SignInAction::Start { .. } => {
                self.after_saving(|path| Request::SignIn(action.request(path)))
            }
            _ => self.for_campaign(|path| Request::SignIn(action.request(path))),
        }
    }

    /// Whether `action` leaves the campaign in the window for another one.
    fn switches_campaign(&self, action: &Action) -> bool {
        match action {
            Action::New | Action::NewCampaignIn(_) => true,
            Action::Open(path) => self.path.as_ref() != Some(path),
            Action::Duplicate(path) | Action::Rename { path, .. } => {
                self.path.as_ref() == Some(path)
            }
            _ => false,
        }
    }

    /// Sends the request `make` builds from the campaign file; nothing for an unsaved campaign.
    fn for_campaign(&mut self, make: impl FnOnce(PathBuf) -> Request) {
        if let Some(path) = self.path.clone() {
            self.service.send(make(path));
        }
    }

    /// Sends `request` once the campaign on disk matches the window: saves first if edited.
    /// Every action that sends mail (Start, Resume, Resend, Send anyway, the test send) and
    /// every preview comes through here, so what goes out is what the window shows (issue
    /// #20: a resend once went through the saved relay, not the one on screen). A campaign
    /// never saved is not sent: the window asks for a file first.
    fn after_saving(&mut self, request: impl FnOnce(PathBuf) -> Request) {
        let Some(path) = self.path.clone() else {
            self.busy = None;
            self.starting = false;
            self.problems = vec!["save the campaign first (File > Save as…)".into()];
            self.dialogs.open(Purpose::SaveCampaignAs);
            return;
        };
        if self.is_dirty() {
            self.after_save.push(request(path.clone()));
            self.save_to(path);
        } else {
            self.service.send(request(path));
        }
    }

    /// Writes the document to `path`. An empty Text body means "derived from the HTML"
    /// (issue #20): its key leaves the campaign file, so neither the preview, the send nor a
    /// duplicate picks up the text that was there before.
    fn save_to(&mut self, path: PathBuf) {
        if self.doc.text.trim().is_empty() {
            self.doc.text.clear();
            self.doc.raw.message.text = None;
        }
        self.service.send(Request::Save {
            path,
            document: Box::new(self.doc.clone()),
        });
    }

    fn new_campaign(&mut self) {
        self.path = None;
        self.path_text.clear();
        self.doc = starter_document();
        // Untouched, the blank campaign has nothing to lose; edited, it is asked about.
        self.saved = starter_document();
        self.counts = Counts::default();
        self.feedback = FeedbackCounts::default();
        for cancel in self.publish.reset_feedback() {
            self.service.send(Request::SignIn(cancel));
        }
        if !self.running {
            self.progress = None;
            self.publish.clear_rates();
        }
        self.compose.reset();
        self.recipients.reset();
        self.results.reset();
        self.problems.clear();
        self.status = "new campaign".into();
        self.tab = Tab::Compose;
    }

    fn open(&mut self, path: PathBuf) {
        self.status = format!("opening {}", shown_path(&path));
        self.service.send(Request::Open { path });
    }

    fn new_campaign_in(&mut self, folder: PathBuf) {
        self.library.create_error = None;
        self.service.send(Request::NewCampaign { folder });
    }

    fn save_campaign(&mut self) {
        match self.path.clone() {
            Some(path) => self.save_to(path),
            None => self.dialogs.open(Purpose::SaveCampaignAs),
        }
    }

    fn save_as(&mut self, path: PathBuf) {
        self.save_to(path);
    }

    /// Closing as the user chose: the edits saved (the close goes on once the save
    /// succeeded) or given up, then the run stopped.
    fn close(&mut self, save: bool) {
        if save
            && self.is_dirty()
            && let Some(path) = self.path.clone()
        {
            self.closing = Closing::Saving;
            self.save_to(path);
            return;
        }
        // The edits are given up.
        self.saved = self.doc.clone();
        self.close_after_saving();
    }

    /// The edits are safe: the run (if one goes) is stopped, then the window closes.
    pub(super) fn close_after_saving(&mut self) {
        if self.running {
            self.closing = Closing::Stopping;
            self.stop();
        } else {
            self.closing = Closing::Ready;
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

    /// The recipients table, filtered as a figure of the results view counts them.
    fn show_recipients(&mut self, state: Option<State>, reply: Option<ReplyClass>, search: String) {
        self.recipients.filter_by(state, reply, search);
        self.tab = Tab::Recipients;
    }

    /// A first look at the list the campaign names, found beside the campaign file.
    fn peek_list(&mut self) {
        let recipients = &self.doc.raw.recipients;
        if let (Some(campaign), Some(csv)) = (
            &self.path,
            recipients.list.as_ref().or(recipients.csv.as_ref()),
        ) {
            let base = campaign.parent().map(PathBuf::from).unwrap_or_default();
            // None: the service finds the column as an import would, and says how.
            let email_column = self.doc.raw.recipients.email_column.clone();
            self.service.send(Request::PeekCsv {
                path: base.join(csv),
                email_column,
            });
        }
    }

    fn import(&mut self) {
        if self.path.is_some() {
            self.busy = Some("importing…".into());
            self.recipients.import_error = None;
            self.after_saving(|path| Request::Import { path });
        } else {
            self.recipients.import_error =
                Some("Save the campaign first (Ctrl+S), then import its list.".into());
        }
    }

    /// Rows of the recipients table from `block` on, as its filters select them.
    fn fetch_rows(&mut self, block: u64) {
        if let Some(path) = self.path.clone() {
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

    fn preview(&mut self, index: u64) {
        self.compose.preview_index = index;
        if self.path.is_some() {
            self.after_saving(|path| Request::Preview { path, index });
        }
    }

    fn test_send(&mut self, to: String) {
        if self.path.is_some() {
            self.compose.test_result = Some(Ok(format!("sending a test to {to}…")));
        }
        let index = self.compose.preview_index;
        self.after_saving(|path| Request::TestSend { path, index, to });
    }

    fn test_relay(&mut self, index: usize) {
        let path = self.path.clone();
        if let Some((relay, helo)) = super::super::publish_ui::relay_spec(&self.doc, path, index) {
            let tested = self.doc.raw.relays.get(index).cloned().unwrap_or_default();
            self.publish.relay_testing(&relay.name, tested);
            let campaign = self.path.clone();
            self.service.send(Request::TestRelay {
                relay,
                helo,
                campaign,
            });
        }
    }

    /// Keeps relay `index`'s password in the keyring under its `password_env`, naming one
    /// after the relay when it has none.
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

    fn pause(&mut self) {
        self.status = "paused: nothing more is sent until Resume".into();
        self.service.send(Request::Pause);
    }

    fn stop(&mut self) {
        self.status = "stopping: the messages under way are finished first".into();
        self.service.send(Request::Stop);
    }

    /// Resume goes on with the run in progress, or starts one (with its checks) for a
    /// campaign that was interrupted. A paused run keeps the settings it started with: edits
    /// are saved first all the same, and the status says when they apply.
    fn resume(&mut self) {
        if self.running {
            self.status = if self.is_dirty() {
                "resumed; your changes are saved and apply from the next start (a run \
                 keeps the settings it started with)"
            } else {
                "resumed"
            }
            .into();
            self.after_saving(|_| Request::Resume);
        } else {
            self.start_checked();
        }
    }

    /// Resend failed (and uncertain) recipients: a send like Start, so saved first.
    fn resend(&mut self, include_uncertain: bool, include_hard: bool) {
        self.after_saving(|path| Request::Resend {
            path,
            include_uncertain,
            include_hard,
        });
    }

    /// Asks for the checks and then the run, as `herald send` does.
    fn start_checked(&mut self) {
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
        self.after_saving(|path| Request::StartChecked { path });
    }

    /// The user chose to send although a check before the start failed.
    fn send_anyway(&mut self) {
        self.ask_send_anyway = None;
        self.starting = true;
        self.status = "sending without the checks, as asked".into();
        self.after_saving(|path| Request::Start { path });
    }

    fn cancel_start(&mut self) {
        self.ask_send_anyway = None;
        self.status = "not sent: cancelled after a failed check".into();
    }

    /// "Open HTML file…": the newsletter becomes the HTML body once the service has copied
    /// its images into the campaign's folder, which a campaign never saved does not have yet.
    pub(super) fn load_html(&mut self, file: PathBuf) {
        let Some(path) = self.path.clone() else {
            self.compose.html_loaded = Some(Err(
                "Save the campaign first (File > Save as…): the newsletter's images are copied into its folder.".into(),
            ));
            return;
        };
        // A typed path is the campaign folder's, as the file's own paths are.
        let file = match path.parent() {
            Some(folder) if file.is_relative() => folder.join(file),
            _ => file,
        };
        self.compose.html_loaded = None;
        self.status = format!("reading {}", shown_path(&file));
        self.service.send(Request::LoadHtml { path, file });
    }

    /// Reads the bounce mailbox as the fields on screen set it up: saved first, as a send is.
    fn check_mailbox(&mut self) {
        if self.path.is_some() {
            self.publish.mailbox_checking();
            self.after_saving(|path| Request::CheckMailbox { path });
        }
    }

    /// Keeps the bounce mailbox's password in the keyring, under the name the campaign file
    /// gives (`password_env`), which is set to the default name when it gives none.
    fn store_mailbox_password(&mut self, password: String) {
        if password.is_empty() {
            return;
        }
        let bounces = self.doc.raw.bounces.get_or_insert_with(Default::default);
        let name = bounces.password_name();
        bounces.password_env = Some(name.clone());
        self.service.send(Request::StorePassword { name, password });
    }

    fn refresh_results(&mut self) {
        if let Some(path) = self.path.clone() {
            self.results.loading();
            self.service.send(Request::Results { path });
        }
    }

    fn refresh_suppressions(&mut self) {
        self.service.send(Request::Suppressions {
            search: self.suppression.search.trim().to_string(),
            limit: suppression_ui::SHOWN,
        });
        self.service.send(Request::HeldReports);
    }

    fn export_suppressions(&mut self, to: PathBuf) {
        self.suppression.export_result = None;
        self.service.send(Request::ExportSuppressions { to });
    }

    /// Ctrl+S save, Ctrl+O open, Ctrl+N new, Ctrl+P preview (Cmd on macOS).
    pub(super) fn shortcuts(&mut self, ctx: &egui::Context) -> Vec<Action> {
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
