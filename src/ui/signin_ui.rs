//! Signing in beside a relay or the bounce mailbox that names an `[oauth2.NAME]` grant (issue
//! #22): "Sign in with Microsoft / Google" (or "Sign in" for another OpenID provider), who is
//! signed in, "Sign out", and "Sign in again to NAME" when the provider refused the kept
//! sign-in during a run. Owns what the service last said about each grant and the sign-ins
//! waiting for the browser; draws them and returns actions. Decides nothing: the sentences and
//! the status come from `app::signin` through the service, and the sign-in itself runs on the
//! service's thread, never on the frame.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::app::{Action, ViewContext};
use crate::app::service::{SignInAnswer, SignInRequest};
use crate::app::signin::GrantStatus;
use crate::engine::RunState;

/// What the window asks of the sign-in panel (applied in `app/actions.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInAction {
    /// Ask where every grant of the saved campaign stands.
    Refresh,
    Start {
        grant: String,
        attempt: u64,
    },
    Cancel {
        grant: String,
    },
    SignOut {
        grant: String,
    },
}

impl SignInAction {
    /// The service's request for the campaign at `path`.
    pub fn request(self, path: PathBuf) -> SignInRequest {
        match self {
            SignInAction::Refresh => SignInRequest::Status { path },
            SignInAction::Start { grant, attempt } => SignInRequest::Start {
                path,
                grant,
                attempt,
            },
            SignInAction::Cancel { grant } => SignInRequest::Cancel { grant },
            SignInAction::SignOut { grant } => SignInRequest::SignOut { path, grant },
        }
    }
}

/// What the sign-in rows need to know of the window, taken before the relays are borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Scene {
    /// The campaign has a file (sign-ins read its `[oauth2.NAME]` sections).
    pub saved: bool,
    /// The run paused and waits for the user.
    pub paused_for_user: bool,
}

impl Scene {
    pub fn of(ctx: &ViewContext<'_>) -> Scene {
        Scene {
            saved: ctx.path.is_some(),
            paused_for_user: ctx.progress.is_some_and(|progress| {
                matches!(
                    progress.state,
                    RunState::Paused {
                        needs_user: true,
                        ..
                    }
                )
            }),
        }
    }
}

/// A sign-in waiting for the user in the browser.
#[derive(Debug, Clone)]
struct Waiting {
    attempt: u64,
    /// The provider's page, once the listener is up; shown when no browser opened.
    url: Option<String>,
    opened: bool,
}

#[derive(Default)]
pub struct SignInPanel {
    /// The campaign the statuses below are for (None: not asked yet).
    asked_for: Option<PathBuf>,
    statuses: HashMap<String, GrantStatus>,
    /// Why the statuses could not be read (a campaign file with problems).
    unreadable: Option<String>,
    waiting: HashMap<String, Waiting>,
    /// What the last sign-in or sign-out of a grant ended with, when it failed.
    failed: HashMap<String, String>,
    attempts: u64,
    /// The pause the statuses were last asked after: a new pause that needs the user may be a
    /// refused sign-in, so they are asked again.
    seen_pause: Option<String>,
}

impl SignInPanel {
    /// Another campaign (or the same one reopened): everything is asked again. Returns the
    /// cancels of the sign-ins still waiting for the browser, for the service to stop them
    /// (their loopback listeners close) rather than leave them waiting out their limit.
    pub fn reset(&mut self) -> Vec<SignInRequest> {
        let waiting = std::mem::take(&mut self.waiting);
        *self = SignInPanel {
            attempts: self.attempts,
            ..SignInPanel::default()
        };
        waiting
            .into_keys()
            .map(|grant| SignInRequest::Cancel { grant })
            .collect()
    }

    /// The statuses may be stale (a mailbox check failed): ask again on the next frame.
    pub fn stale(&mut self) {
        self.asked_for = None;
    }

    /// Asks for the statuses when they are not for the campaign on screen, or after the run
    /// paused for the user (a refused sign-in pauses it).
    pub fn keep_current(&mut self, ctx: &ViewContext<'_>, actions: &mut Vec<Action>) {
        let Some(path) = ctx.path else {
            return;
        };
        let pause = ctx.progress.and_then(|progress| match &progress.state {
            RunState::Paused {
                reason: Some(reason),
                needs_user: true,
            } => Some(reason.clone()),
            _ => None,
        });
        if pause.is_some() && pause != self.seen_pause {
            self.seen_pause = pause;
            self.asked_for = None;
        }
        if self.asked_for.as_deref() != Some(path) {
            self.asked_for = Some(path.to_path_buf());
            actions.push(Action::SignIn(SignInAction::Refresh));
        }
    }

    /// Folds in what the service answered.
    pub fn answer(&mut self, answer: SignInAnswer, path: Option<&Path>) {
        match answer {
            SignInAnswer::Statuses {
                path: asked,
                result,
            } => {
                if path != Some(asked.as_path()) {
                    return;
                }
                match result {
                    Ok(statuses) => {
                        self.unreadable = None;
                        self.statuses = statuses
                            .into_iter()
                            .map(|status| (status.grant.clone(), status))
                            .collect();
                    }
                    Err(error) => self.unreadable = Some(error.to_string()),
                }
            }
            SignInAnswer::Opened {
                grant,
                attempt,
                url,
                opened,
            } => {
                if let Some(waiting) = self.waiting.get_mut(&grant)
                    && waiting.attempt == attempt
                {
                    waiting.url = Some(url);
                    waiting.opened = opened;
                }
            }
            SignInAnswer::Finished {
                grant,
                attempt,
                result,
            } => {
                if self.waiting.get(&grant).map(|w| w.attempt) != Some(attempt) {
                    return;
                }
                self.waiting.remove(&grant);
                self.settle(grant, result.map_err(|error| error.to_string()));
            }
            SignInAnswer::SignedOut { grant, result } => {
                self.settle(grant, result.map_err(|error| error.to_string()));
            }
        }
    }

    fn settle(&mut self, grant: String, result: Result<GrantStatus, String>) {
        match result {
            Ok(status) => {
                self.failed.remove(&grant);
                self.statuses.insert(grant, status);
            }
            Err(error) => {
                self.failed.insert(grant, error);
            }
        }
    }

    /// The sign-in row of a relay or the mailbox that names grant `grant`. `scene` says
    /// whether the campaign is saved and whether the run waits for the user.
    pub fn grant_ui(
        &mut self,
        ui: &mut egui::Ui,
        scene: Scene,
        grant: &str,
        actions: &mut Vec<Action>,
    ) {
        if !scene.saved {
            ui.weak(format!("Save the campaign, then sign in to {grant} here."));
            return;
        }
        if let Some(problem) = &self.unreadable {
            ui.colored_label(ui.visuals().error_fg_color, problem);
            return;
        }
        let Some(status) = self.statuses.get(grant).cloned() else {
            if self.asked_for.is_some() {
                ui.weak(format!(
                    "The saved campaign has no [oauth2.{grant}] section: add it, save, and sign in here."
                ));
            }
            return;
        };
        ui.horizontal_wrapped(|ui| {
            self.buttons_ui(ui, &status, actions);
            let color = if status.needs_sign_in() || status.problem.is_some() {
                ui.visuals().warn_fg_color
            } else {
                ui.visuals().text_color()
            };
            ui.colored_label(color, status.sentence());
        });
        if let Some(waiting) = self.waiting.get(grant) {
            waiting_ui(ui, grant, waiting);
        } else if let Some(error) = self.failed.get(grant) {
            ui.colored_label(ui.visuals().error_fg_color, error);
        } else if status.refused.is_none() && status.signed_in && scene.paused_for_user {
            ui.weak("Signed in: press Resume to go on sending.");
        }
    }

    /// "Sign in with …" (or Cancel while the browser is out), and "Sign out".
    fn buttons_ui(&mut self, ui: &mut egui::Ui, status: &GrantStatus, actions: &mut Vec<Action>) {
        let grant = &status.grant;
        if self.waiting.contains_key(grant) {
            ui.spinner();
            if ui.button("Cancel sign-in").clicked() {
                self.waiting.remove(grant);
                actions.push(Action::SignIn(SignInAction::Cancel {
                    grant: grant.clone(),
                }));
            }
            return;
        }
        // Signed in and accepted: only "Sign out" (signing out first is how to change account).
        if status.needs_sign_in()
            && ui
                .add_enabled(
                    status.problem.is_none(),
                    egui::Button::new(egui::RichText::new(status.button()).strong()),
                )
            .on_hover_text("Opens the provider's sign-in page in your browser; the sign-in is kept in the system keyring, never in the campaign")
            .clicked()
        {
            self.attempts += 1;
            self.failed.remove(grant);
            self.waiting.insert(
                grant.clone(),
                Waiting {
                    attempt: self.attempts,
                    url: None,
                    opened: false,
                },
            );
            actions.push(Action::SignIn(SignInAction::Start {
                grant: grant.clone(),
                attempt: self.attempts,
            }));
        }
        if status.signed_in
            && ui
                .button("Sign out")
                .on_hover_text("Forget this sign-in on this computer")
                .clicked()
        {
            actions.push(Action::SignIn(SignInAction::SignOut {
                grant: grant.clone(),
            }));
        }
    }
}

/// While the browser is out: what to do there, and the address when no browser opened.
fn waiting_ui(ui: &mut egui::Ui, grant: &str, waiting: &Waiting) {
    match (&waiting.url, waiting.opened) {
        (None, _) => {
            ui.weak(format!("Opening the sign-in page of {grant}…"));
        }
        (Some(_), true) => {
            ui.weak("Finish signing in in your browser; this updates by itself.");
        }
        (Some(_), false) => {
            ui.label("No browser opened. Open this address in a browser on this computer:");
        }
    }
    if let Some(url) = &waiting.url {
        ui.horizontal(|ui| {
            if ui.small_button("Copy address").clicked() {
                ui.ctx().copy_text(url.clone());
            }
            ui.add(
                egui::Label::new(egui::RichText::new(url).small().monospace())
                    .truncate()
                    .selectable(true),
            )
            .on_hover_text(url);
        });
    }
}
