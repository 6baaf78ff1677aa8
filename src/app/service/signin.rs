//! The window's sign-ins (issue #22): where each of the campaign's OAuth2 grants stands, and a
//! sign-in through the browser on a thread of its own (it waits minutes for the user, and the
//! service must go on answering meanwhile), cancellable from the window. Calls `app::signin`,
//! as `herald signin` does; answers through the service's channel and wakes the window.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::Sender;

use super::Answer;
use crate::app::AppError;
use crate::app::signin::{self, BROWSER_LIMIT, Cancel, GrantStatus};
use crate::campaign::Campaign;
use crate::engine::Wake;

/// What the window asks about signing in.
#[derive(Debug, Clone)]
pub enum SignInRequest {
    /// Where every grant of the saved campaign stands.
    Status {
        path: PathBuf,
    },
    /// Sign in to `grant` through the system browser. `attempt` comes back with the answers,
    /// so the window can drop those of a sign-in it cancelled.
    Start {
        path: PathBuf,
        grant: String,
        attempt: u64,
    },
    /// Stop waiting for the browser of `grant`'s sign-in; nothing is saved.
    Cancel {
        grant: String,
    },
    SignOut {
        path: PathBuf,
        grant: String,
    },
}

/// What the service answers about signing in.
#[derive(Debug, Clone)]
pub enum SignInAnswer {
    Statuses {
        path: PathBuf,
        result: Result<Vec<GrantStatus>, AppError>,
    },
    /// The sign-in page's address, and whether a browser was opened on it (when not, the
    /// window shows it to open by hand).
    Opened {
        grant: String,
        attempt: u64,
        url: String,
        opened: bool,
    },
    /// The sign-in ended: the grant's status after it, or why it did not finish.
    Finished {
        grant: String,
        attempt: u64,
        result: Result<GrantStatus, AppError>,
    },
    SignedOut {
        grant: String,
        result: Result<GrantStatus, AppError>,
    },
}

/// The sign-ins waiting for a browser, by grant.
#[derive(Default)]
pub(super) struct SignIns {
    waiting: HashMap<String, Cancel>,
}

fn load(path: &std::path::Path) -> Result<Campaign, AppError> {
    Campaign::load_for_reading(path).map_err(AppError::from)
}

fn status_of(campaign: &Campaign, grant: &str) -> Result<GrantStatus, AppError> {
    signin::status(campaign, grant).ok_or_else(|| {
        AppError::new(
            crate::app::ErrorKind::Campaign,
            format!("the campaign has no [oauth2.{grant}] section"),
        )
    })
}

impl SignIns {
    /// Answers `request`; a sign-in answers later, from its own thread.
    pub(super) fn handle(
        &mut self,
        request: SignInRequest,
        answers: &Sender<Answer>,
        wake: &Wake,
    ) -> Option<Answer> {
        let answer = match request {
            SignInRequest::Status { path } => SignInAnswer::Statuses {
                result: load(&path).map(|campaign| signin::statuses(&campaign)),
                path,
            },
            SignInRequest::SignOut { path, grant } => SignInAnswer::SignedOut {
                result: load(&path).and_then(|campaign| {
                    signin::sign_out(&campaign, &grant)?;
                    status_of(&campaign, &grant)
                }),
                grant,
            },
            SignInRequest::Cancel { grant } => {
                if let Some(cancel) = self.waiting.remove(&grant) {
                    cancel.cancel();
                }
                return None;
            }
            SignInRequest::Start {
                path,
                grant,
                attempt,
            } => {
                return self.start(path, grant, attempt, answers.clone(), wake.clone());
            }
        };
        Some(Answer::SignIn(answer))
    }

    fn start(
        &mut self,
        path: PathBuf,
        grant: String,
        attempt: u64,
        answers: Sender<Answer>,
        wake: Wake,
    ) -> Option<Answer> {
        let campaign = match load(&path) {
            Ok(campaign) => campaign,
            Err(error) => {
                return Some(Answer::SignIn(SignInAnswer::Finished {
                    grant,
                    attempt,
                    result: Err(error),
                }));
            }
        };
        let cancel = Cancel::default();
        // One browser sign-in per grant: a new one replaces the one still waiting.
        if let Some(earlier) = self.waiting.insert(grant.clone(), cancel.clone()) {
            earlier.cancel();
        }
        let send = move |answer: SignInAnswer| {
            let _ = answers.send(Answer::SignIn(answer));
            wake();
        };
        let spawned = std::thread::Builder::new()
            .name("herald-signin".into())
            .spawn(move || {
                let show = |url: &str| {
                    send(SignInAnswer::Opened {
                        grant: grant.clone(),
                        attempt,
                        url: url.to_string(),
                        opened: signin::open_browser(url),
                    });
                };
                let result =
                    signin::sign_in_with_browser(&campaign, &grant, show, &cancel, BROWSER_LIMIT)
                        .and_then(|_| status_of(&campaign, &grant));
                send(SignInAnswer::Finished {
                    grant,
                    attempt,
                    result,
                });
            });
        match spawned {
            Ok(_) => None,
            Err(error) => Some(Answer::Problem(AppError::from(error))),
        }
    }
}
