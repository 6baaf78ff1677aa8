//! The state one run shares between its dispatcher, its relay workers and the direct router:
//! the user's control, the relays with their health and limits, the connection cap, the writer
//! and the progress events. Plain shared data and small helpers; no loop of its own, no SQL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, watch};

use super::job::Job;
use super::progress::Event;
use super::smtp::{ConnectError, Credentials, EnvelopeAddress, Session, Target, Timeouts};
use super::throttle::TokenBucket;
use crate::campaign::{Campaign, DeliverySpec};
use crate::compose::Composer;
use crate::store::{CampaignId, State, Transition, Writer};

/// What the user asks of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Run,
    Pause,
    Stop,
}

/// A relay's health and limits, shared by the dispatcher and the relay's workers.
pub(super) struct Relay {
    pub target: Target,
    /// The username and token cell of a relay that signs in with OAuth2 (issue #22).
    pub oauth2: Option<(String, Arc<crate::oauth2::Grant>)>,
    /// Who reads a pause that asks for a sign-in, and the campaign file it names.
    sign_in_words: (crate::oauth2::Front, std::path::PathBuf),
    pub weight: u32,
    pub workers: u32,
    health: Mutex<Health>,
    pub bucket: Mutex<TokenBucket>,
    pub queue: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    /// Jobs waiting for a ready session: left by a worker that had to connect first, or not
    /// attempted on a session that died. Ready sessions draw from here before the queue.
    pub spill: Mutex<std::collections::VecDeque<Job>>,
    pub spilled: tokio::sync::Notify,
    /// Sessions open to this relay now.
    pub open: AtomicUsize,
}

#[derive(Default)]
struct Health {
    resting_until: Option<Instant>,
    reason: Option<String>,
    needs_user: bool,
}

impl Relay {
    /// Opens a session, signing in with the relay's password or an access token from its
    /// grant's shared cell. A token the server refuses though we believed it valid is
    /// refreshed once and the connection tried again; nothing is charged to any recipient.
    pub(super) async fn connect(&self, timeouts: Timeouts) -> Result<Session, ConnectError> {
        let Some((user, grant)) = &self.oauth2 else {
            return Session::connect(&self.target, timeouts).await;
        };
        let token = grant
            .access_token()
            .await
            .map_err(|error| self.oauth2_error(error))?;
        let mut target = self.target.clone();
        target.credentials = Some(Credentials::Bearer {
            user: user.clone(),
            token: token.clone(),
        });
        match Session::connect(&target, timeouts).await {
            Err(ConnectError::Auth(reason)) => {
                tracing::info!(%reason, "the relay refused an access token believed valid; refreshing once");
                let fresh = grant
                    .rejected(&token)
                    .await
                    .map_err(|error| self.oauth2_error(error))?;
                target.credentials = Some(Credentials::Bearer {
                    user: user.clone(),
                    token: fresh,
                });
                Session::connect(&target, timeouts).await
            }
            other => other,
        }
    }

    /// A grant's failure as a connection failure: one that needs the user pauses the relay
    /// like a wrong password ("Sign in again to m365"); an unreachable provider is waited out.
    fn oauth2_error(&self, error: crate::oauth2::OAuth2Error) -> ConnectError {
        use crate::oauth2::OAuth2Error;
        let route = &self.target.route;
        let (front, file) = &self.sign_in_words;
        match error {
            OAuth2Error::SignInAgain { grant, reason } => ConnectError::Auth(format!(
                "Sign in again to {route}: the provider no longer accepts the sign-in of [oauth2.{grant}] ({reason}); {}",
                front.sign_in_step(&grant, file)
            )),
            OAuth2Error::NotSignedIn { grant } => ConnectError::Auth(format!(
                "Sign in to {route} first: nobody is signed in to [oauth2.{grant}] on this computer; {}",
                front.sign_in_step(&grant, file)
            )),
            OAuth2Error::Unreachable { .. } => ConnectError::Network(error.to_string()),
            other => ConnectError::Auth(other.to_string()),
        }
    }

    pub(super) fn resting(&self, now: Instant) -> Option<(Instant, String, bool)> {
        let health = self
            .health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match health.resting_until {
            Some(until) if until > now || health.needs_user => Some((
                until,
                health.reason.clone().unwrap_or_default(),
                health.needs_user,
            )),
            _ => None,
        }
    }

    pub(super) fn rest(&self, reason: String, needs_user: bool, cooldown: Duration) {
        let mut health = self
            .health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        health.resting_until = Some(Instant::now() + cooldown);
        health.reason = Some(reason);
        health.needs_user = needs_user;
    }

    pub(super) fn revive(&self) -> bool {
        let mut health = self
            .health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let was_down = health.resting_until.is_some();
        *health = Health::default();
        was_down
    }
}

/// Everything the workers share.
pub(super) struct Shared {
    pub campaign_id: CampaignId,
    pub delivery: DeliverySpec,
    pub composer: Composer,
    pub from: EnvelopeAddress,
    pub writer: Writer,
    pub events: mpsc::UnboundedSender<Event>,
    pub control: watch::Receiver<Control>,
    pub connections: Arc<Semaphore>,
    pub timeouts: Timeouts,
    pub relays: Vec<Arc<Relay>>,
    /// Claimed and not yet finished (sent, deferred, failed, released).
    pub outstanding: AtomicUsize,
    pub bounced: mpsc::UnboundedSender<Job>,
    /// Whether a permanent refusal says the address is dead (`RunOptions::dead_address`).
    pub dead_address: super::DeadAddress,
}

impl Shared {
    pub(super) fn control(&self) -> Control {
        *self.control.borrow()
    }

    pub(super) fn event(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Gives an unsent job back to `pending`, keeping its attempts.
    pub(super) fn release(&self, job: Job) {
        let _ = self.writer.write(Transition {
            id: job.claimed.id,
            to: State::Pending,
            attempts: job.claimed.attempts,
            next_attempt_at_ms: 0,
            route: None,
            reply: None,
            dead_address: false,
        });
        self.outstanding.fetch_sub(1, Ordering::SeqCst);
        self.event(Event::Released);
    }
}

/// The relays, and the senders feeding each one's workers.
pub(super) type RelaySet = (Vec<Arc<Relay>>, Vec<mpsc::Sender<Job>>);

/// The login of relay `spec` with a password, found as every run finds it: `passwords` looks
/// the `password_env` name up (the environment, then the keyring where the window and
/// `herald password` keep what the user typed). The window's "Test connection" calls this too,
/// so a test and a run never disagree about which password a relay has. None for a relay that
/// does not log in with a password (no username, or OAuth2).
pub fn relay_credentials(
    spec: &crate::campaign::RelaySpec,
    passwords: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Credentials>, String> {
    match (&spec.username, &spec.password_env) {
        (Some(user), Some(var)) => match passwords(var) {
            Some(password) => Ok(Some(Credentials::Plain {
                user: user.clone(),
                password,
            })),
            None => Err(format!(
                "the password for relay \"{}\" is not set (neither in the keyring nor in the environment variable {var})",
                spec.name
            )),
        },
        _ => Ok(None),
    }
}

pub(super) fn make_relays(
    campaign: &Campaign,
    passwords: &dyn Fn(&str) -> Option<String>,
    front: crate::oauth2::Front,
) -> Result<RelaySet, String> {
    let mut relays = Vec::new();
    let mut senders = Vec::new();
    for spec in &campaign.relays {
        let oauth2 = match (&spec.username, &spec.oauth2) {
            (Some(user), Some(grant)) => {
                let client = crate::oauth2::Client::for_campaign(campaign, grant)
                    .map_err(|error| format!("relay \"{}\": {error}", spec.name))?;
                Some((user.clone(), crate::oauth2::Grant::shared(client)))
            }
            _ => None,
        };
        let credentials = relay_credentials(spec, passwords)?;
        let ca_pem = match &spec.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|error| {
                format!(
                    "could not read the CA file of relay \"{}\": {error} ({})",
                    spec.name,
                    path.display()
                )
            })?),
            None => None,
        };
        let workers = spec
            .max_connections
            .min(u32::from(campaign.delivery.connections))
            .max(1);
        let (sender, receiver) = mpsc::channel(workers as usize);
        relays.push(Arc::new(Relay {
            target: Target {
                route: spec.name.clone(),
                host: spec.host.clone(),
                port: spec.port,
                security: spec.security,
                helo: helo_name(campaign),
                credentials,
                ca_pem,
                address: None,
                opportunistic_tls: None,
            },
            oauth2,
            sign_in_words: (front, campaign.path.clone()),
            weight: spec.weight,
            workers,
            health: Mutex::new(Health::default()),
            bucket: Mutex::new(TokenBucket::per_hour(spec.rate_per_hour, Instant::now())),
            queue: tokio::sync::Mutex::new(receiver),
            spill: Mutex::new(std::collections::VecDeque::new()),
            spilled: tokio::sync::Notify::new(),
            open: AtomicUsize::new(0),
        }));
        senders.push(sender);
    }
    Ok((relays, senders))
}

/// Our EHLO name: the direct-mode HELO if set, else the sender's domain.
pub(super) fn helo_name(campaign: &Campaign) -> String {
    if !campaign.direct.helo.is_empty() {
        return campaign.direct.helo.clone();
    }
    campaign
        .message
        .from
        .rsplit_once('@')
        .map(|(_, domain)| domain.trim_end_matches('>').trim().to_string())
        .unwrap_or_else(|| "localhost".to_string())
}
