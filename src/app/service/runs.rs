//! The service's runs side: the engine, the current run and its latest progress for the
//! window, and the one-off jobs that need the engine's runtime (a test send, a relay test).
//! Starts at most one run at a time from the window.

use crate::app::{AppError, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::load;
use crate::app::signin::Front;
use crate::campaign::RelaySpec;
use crate::engine::smtp::{Credentials, Session, Target, Timeouts};
use crate::engine::{Engine, Progress, RunHandle, RunOptions, Wake};
use crate::store::RecipientRef;

/// The token cell of `grant` in the saved campaign at `campaign`.
fn relay_grant(
    campaign: Option<&Path>,
    grant: &str,
) -> Result<Arc<crate::oauth2::Grant>, AppError> {
    let Some(path) = campaign else {
        return Err(AppError::new(
            ErrorKind::Campaign,
            format!(
                "save the campaign first: the relay signs in with [oauth2.{grant}], which is read from the file"
            ),
        ));
    };
    let campaign = crate::campaign::Campaign::load_for_reading(path)?;
    let client = crate::app::signin::client(&campaign, grant)?;
    Ok(crate::oauth2::Grant::shared(client))
}

pub(super) struct Runs {
    engine: Engine,
    db: PathBuf,
    run: Option<RunHandle>,
    /// The campaign file the run sends (canonical, as the library lists it).
    sending: Option<PathBuf>,
    /// What the window reads each frame.
    progress: Arc<Mutex<Option<Progress>>>,
    wake: Wake,
}

impl Runs {
    pub(super) fn new(
        engine: Engine,
        db: PathBuf,
        progress: Arc<Mutex<Option<Progress>>>,
        wake: Wake,
    ) -> Runs {
        Runs {
            engine,
            db,
            run: None,
            sending: None,
            progress,
            wake,
        }
    }

    pub(super) fn has_run(&self) -> bool {
        self.run.is_some()
    }

    /// The campaign file the current run sends, if one goes.
    pub(super) fn sending(&self) -> Option<&Path> {
        self.run.as_ref().and(self.sending.as_deref())
    }

    /// Copies the run's progress for the window; returns the last progress of a run that ended.
    pub(super) fn watch(&mut self) -> Option<Progress> {
        let run = self.run.as_ref()?;
        let latest = run.progress();
        let over = latest.state.is_over();
        if let Ok(mut shared) = self.progress.lock() {
            *shared = Some(latest.clone());
        }
        if over {
            self.run = None;
            return Some(latest);
        }
        None
    }

    pub(super) fn pause(&self) {
        if let Some(run) = &self.run {
            run.pause();
        }
    }

    pub(super) fn resume(&self) {
        if let Some(run) = &self.run {
            run.resume();
        }
    }

    pub(super) fn stop(&self) {
        if let Some(run) = &self.run {
            run.stop();
        }
    }

    /// The window is gone: stop the run gracefully and wait for it.
    pub(super) fn stop_and_wait(&mut self) {
        if let Some(mut run) = self.run.take() {
            run.stop();
            run.wait();
        }
    }

    pub(super) fn start(&mut self, path: &Path) -> Result<(), AppError> {
        if self.run.as_ref().is_some_and(|run| !run.is_over()) {
            return Err("a campaign is already sending; stop it first".into());
        }
        let campaign = load(path)?;
        self.sending = Some(campaign.path.clone());
        // The run opens its own connections; ours must not hold a write lock meanwhile.
        let wake = Arc::clone(&self.wake);
        let options = RunOptions {
            wake,
            front: Front::Window,
            ..crate::app::run_options()
        };
        self.run = Some(self.engine.start(campaign, &self.db, options));
        Ok(())
    }
    pub(super) fn test_send(
        &mut self,
        path: &Path,
        index: u64,
        to: String,
    ) -> Result<String, AppError> {
        let campaign = load(path)?;
        let db = self.db.clone();
        let passwords = RunOptions::default().passwords;
        let sent = crate::app::test_send::test_send(
            &self.engine,
            &campaign,
            &db,
            &RecipientRef::Index(index),
            &to,
            passwords,
            Front::Window,
        );
        match sent {
            Ok(sent) => Ok(format!(
                "sent to {} through {}: {} {}",
                sent.to,
                sent.route,
                sent.reply
                    .code
                    .map(|code| code.to_string())
                    .unwrap_or_default(),
                sent.reply.text
            )),
            Err(error) => Err(error.into()),
        }
    }
    /// Connects to `relay` as a run would and says how it went. A relay that signs in with
    /// OAuth2 gets an access token from its grant's shared cell, which reads the saved
    /// campaign's `[oauth2.NAME]` (`campaign`).
    pub(super) fn test_relay(
        &mut self,
        relay: &RelaySpec,
        helo: &str,
        campaign: Option<&Path>,
    ) -> Result<String, AppError> {
        let grant = match (&relay.username, &relay.oauth2) {
            (Some(user), Some(grant)) => Some((user.clone(), relay_grant(campaign, grant)?)),
            _ => None,
        };
        // The password is found exactly as a run finds it (environment, then keyring).
        let credentials = match &grant {
            Some(_) => None,
            None => crate::engine::relay_credentials(
                relay,
                crate::app::run_options().passwords.as_ref(),
            )
            .map_err(|reason| AppError::new(ErrorKind::Credentials, reason))?,
        };
        let ca_pem = match &relay.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(AppError::from)?),
            None => None,
        };
        let target = Target {
            route: relay.name.clone(),
            host: relay.host.clone(),
            port: relay.port,
            security: relay.security,
            helo: helo.to_string(),
            credentials,
            ca_pem,
            address: None,
            opportunistic_tls: None,
        };
        let timeouts = Timeouts {
            connect: Duration::from_secs(10),
            command: Duration::from_secs(20),
            data: Duration::from_secs(20),
        };
        self.engine.block_on(async move {
            let mut target = target;
            if let Some((user, grant)) = grant {
                let token = grant
                    .access_token()
                    .await
                    .map_err(|failure| crate::app::signin::error_for(failure, Front::Window))?;
                target.credentials = Some(Credentials::Bearer { user, token });
            }
            match Session::connect(&target, timeouts).await {
                Ok(session) => {
                    session.quit().await;
                    Ok(format!(
                        "connected to {}:{} ({}){}",
                        target.host,
                        target.port,
                        target.security.as_str(),
                        if target.credentials.is_some() {
                            ", signed in"
                        } else {
                            ""
                        }
                    ))
                }
                // A refused login is the user's to fix; the rest is the network's.
                Err(error) if error.needs_user() => {
                    Err(AppError::new(ErrorKind::Credentials, error.to_string()))
                }
                Err(error) => Err(AppError::new(ErrorKind::Network, error.to_string())),
            }
        })
    }
}
