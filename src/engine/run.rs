//! One run of a campaign: a dispatcher that claims due recipients from the store and deals them
//! to the direct router (direct and mixed modes, `direct.rs`) or to relays by weight, relay
//! workers that each hold one SMTP session, and the batched writer that records every outcome.
//! Claims are committed before sending; whatever is claimed but not sent when the run pauses or
//! stops goes back to `pending`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::outcome::{Attempt, decide, local_reply};
use super::progress::{Event, RunState};
use super::smtp::{ConnectError, EnvelopeAddress, Session, Target, Timeouts, envelope_address};
use super::throttle::{PeriodicSleep, TokenBucket};
use crate::campaign::{Campaign, DeliverySpec};
use crate::compose::{Composer, RecipientData};
use crate::recipients::EmailAddress;
use crate::store::{CampaignId, Claimed, State, Store, Transition, Writer, now_ms};

/// What the user asks of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Run,
    Pause,
    Stop,
}

/// How long an idle session stays open before it is closed (QUIT).
const IDLE_SESSION: Duration = Duration::from_secs(2);

pub(super) struct Job {
    pub claimed: Claimed,
    /// Bound for the relays: always in relay mode; in mixed mode once direct delivery failed
    /// for a reason a relay can fix.
    pub to_relay: bool,
}

/// A relay's health and limits, shared by the dispatcher and the relay's workers.
pub(super) struct Relay {
    pub target: Target,
    pub weight: u32,
    pub workers: u32,
    health: Mutex<Health>,
    bucket: Mutex<TokenBucket>,
    queue: tokio::sync::Mutex<mpsc::Receiver<Job>>,
}

#[derive(Default)]
struct Health {
    resting_until: Option<Instant>,
    reason: Option<String>,
    needs_user: bool,
}

impl Relay {
    fn resting(&self, now: Instant) -> Option<(Instant, String, bool)> {
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

    fn rest(&self, reason: String, needs_user: bool, cooldown: Duration) {
        let mut health = self
            .health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        health.resting_until = Some(Instant::now() + cooldown);
        health.reason = Some(reason);
        health.needs_user = needs_user;
    }

    fn revive(&self) -> bool {
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
    /// The direct router, in direct and mixed modes.
    pub direct: Option<Arc<super::direct::Direct>>,
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
        });
        self.outstanding.fetch_sub(1, Ordering::SeqCst);
        self.event(Event::Released);
    }
}

/// The relays, and the senders feeding each one's workers.
pub(super) type RelaySet = (Vec<Arc<Relay>>, Vec<mpsc::Sender<Job>>);

pub(super) fn make_relays(
    campaign: &Campaign,
    passwords: &dyn Fn(&str) -> Option<String>,
) -> Result<RelaySet, String> {
    let mut relays = Vec::new();
    let mut senders = Vec::new();
    for spec in &campaign.relays {
        let credentials = match (&spec.username, &spec.password_env) {
            (Some(user), Some(var)) => match passwords(var) {
                Some(password) => Some((user.clone(), password)),
                None => {
                    return Err(format!(
                        "the password for relay \"{}\" is not set (environment variable {var})",
                        spec.name
                    ));
                }
            },
            _ => None,
        };
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
            weight: spec.weight,
            workers,
            health: Mutex::new(Health::default()),
            bucket: Mutex::new(TokenBucket::per_hour(spec.rate_per_hour, Instant::now())),
            queue: tokio::sync::Mutex::new(receiver),
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

/// Smooth weighted round robin (as nginx does it): over time each relay gets its weight's share,
/// interleaved rather than in bursts.
pub(super) struct WeightedPicker {
    current: Vec<i64>,
}

impl WeightedPicker {
    pub fn new(count: usize) -> WeightedPicker {
        WeightedPicker {
            current: vec![0; count],
        }
    }

    /// Picks among `eligible` relays (index, weight).
    pub fn pick(&mut self, eligible: &[(usize, u32)]) -> Option<usize> {
        let total: i64 = eligible.iter().map(|(_, weight)| i64::from(*weight)).sum();
        let mut best: Option<(usize, i64)> = None;
        for (index, weight) in eligible {
            let Some(current) = self.current.get_mut(*index) else {
                continue;
            };
            *current += i64::from(*weight);
            if best.is_none_or(|(_, value)| *current > value) {
                best = Some((*index, *current));
            }
        }
        let best = best.map(|(index, _)| index);
        if let Some(chosen) = best.and_then(|b| self.current.get_mut(b)) {
            *chosen -= total;
        }
        best
    }
}

/// The dispatcher: claims due recipients and deals them to relays until nothing is left, the
/// user stops the run, or it cannot go on. Returns the final run state.
pub(super) async fn dispatch(
    shared: Arc<Shared>,
    store: Arc<Mutex<Store>>,
    senders: Vec<mpsc::Sender<Job>>,
    mut bounced: mpsc::UnboundedReceiver<Job>,
) -> RunState {
    let delivery = shared.delivery.clone();
    let mut control = shared.control.clone();
    let mut buffer: VecDeque<Job> = VecDeque::new();
    // Mixed mode: recipients for the relays, set aside while no relay can take them so that
    // direct delivery goes on behind them. Bounded, so that memory is too.
    let mut held: VecDeque<Job> = VecDeque::new();
    let mut bucket = TokenBucket::per_hour(delivery.rate_per_hour, Instant::now());
    let mut sleep = PeriodicSleep::new(delivery.sleep_every, delivery.sleep_seconds);
    let mut picker = WeightedPicker::new(shared.relays.len());
    let claim_size = (u32::from(delivery.connections) * 2).clamp(16, 1_000);
    // Direct mode keeps a wider window of claimed recipients so that each domain's queue holds
    // enough of them for one connection to carry many messages.
    let direct_window = (usize::from(delivery.connections) * 32).clamp(256, 4_000);
    let direct_only = shared.direct.is_some() && shared.relays.is_empty();
    let mut shown = RunState::Starting;
    let show = |state: RunState, shown: &mut RunState| {
        if *shown != state {
            *shown = state.clone();
            shared.event(Event::State(state));
        }
    };
    let outcome = loop {
        if let Some(failure) = shared.writer.failure() {
            break RunState::Failed {
                reason: format!("could not record delivery states: {failure}"),
            };
        }
        while let Ok(job) = bounced.try_recv() {
            buffer.push_front(job);
        }
        if direct_only
            && let Some(direct) = &shared.direct
            && let Some(reason) = direct.blocked()
        {
            // Nothing will get through until the user changes the network or the mode.
            for job in buffer.drain(..).chain(held.drain(..)) {
                shared.release(job);
            }
            direct.release_all(&shared);
            show(
                RunState::Paused {
                    reason: Some(reason),
                    needs_user: true,
                },
                &mut shown,
            );
            let _ = control.changed().await;
            direct.unblock();
            continue;
        }
        match shared.control() {
            Control::Stop => break RunState::Stopped,
            Control::Pause => {
                for job in buffer.drain(..).chain(held.drain(..)) {
                    shared.release(job);
                }
                if let Some(direct) = &shared.direct {
                    direct.release_all(&shared);
                }
                if !matches!(shown, RunState::Paused { .. }) {
                    show(
                        RunState::Paused {
                            reason: None,
                            needs_user: false,
                        },
                        &mut shown,
                    );
                }
                tokio::select! {
                    _ = control.changed() => {}
                    Some(job) = bounced.recv() => buffer.push_front(job),
                }
                continue;
            }
            Control::Run => {}
        }
        let now = Instant::now();
        if let Some(until) = sleep.resting_until(now) {
            show(
                RunState::Resting {
                    resumes_in_secs: until.saturating_duration_since(now).as_secs().max(1),
                },
                &mut shown,
            );
            wait(
                &mut control,
                until
                    .saturating_duration_since(now)
                    .min(Duration::from_secs(1)),
            )
            .await;
            continue;
        }
        let pause_for = bucket.wait_time(now);
        if !pause_for.is_zero() {
            wait(&mut control, pause_for).await;
            continue;
        }
        // Held jobs are claimed but wait for a relay: they do not narrow direct mode's window.
        let in_flight = shared
            .outstanding
            .load(Ordering::SeqCst)
            .saturating_sub(held.len());
        let window_full = shared.direct.is_some() && in_flight >= direct_window;
        if buffer.is_empty() && window_full && held.is_empty() {
            tokio::select! {
                _ = control.changed() => {}
                Some(job) = bounced.recv() => buffer.push_front(job),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            continue;
        }
        if buffer.is_empty() && !window_full {
            let claim_size = if shared.direct.is_some() {
                ((direct_window - in_flight) as u32).min(1_000)
            } else {
                claim_size
            };
            let claimed = {
                let store = Arc::clone(&store);
                let id = shared.campaign_id;
                tokio::task::spawn_blocking(move || {
                    let mut store = store
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    store.claim(id, now_ms(), claim_size)
                })
                .await
            };
            let claimed = match claimed {
                Ok(Ok(rows)) => rows,
                Ok(Err(error)) => {
                    break RunState::Failed {
                        reason: error.to_string(),
                    };
                }
                Err(error) => {
                    break RunState::Failed {
                        reason: format!("the claim task failed: {error}"),
                    };
                }
            };
            if claimed.is_empty() && held.is_empty() {
                match idle_decision(&shared, &store).await {
                    Idle::Done => break RunState::Finished,
                    Idle::Failed(reason) => break RunState::Failed { reason },
                    Idle::Busy => {
                        tokio::select! {
                            _ = control.changed() => {}
                            Some(job) = bounced.recv() => buffer.push_front(job),
                            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        }
                    }
                    Idle::WaitUntil(due_in) => {
                        show(
                            RunState::Waiting {
                                reason: "deferred recipients are not due yet".into(),
                                retry_in_secs: due_in.as_secs().max(1),
                            },
                            &mut shown,
                        );
                        wait(&mut control, due_in.min(Duration::from_secs(1))).await;
                    }
                }
                continue;
            }
            shared
                .outstanding
                .fetch_add(claimed.len(), Ordering::SeqCst);
            for row in claimed {
                shared.event(Event::Claimed { from: row.from });
                // A recipient a relay already tried (mixed mode) stays with the relays.
                let to_relay = match &shared.direct {
                    None => true,
                    Some(_) => row.route.as_ref().is_some_and(|route| {
                        shared
                            .relays
                            .iter()
                            .any(|relay| &relay.target.route == route)
                    }),
                };
                buffer.push_back(Job {
                    claimed: row,
                    to_relay,
                });
            }
        }
        if let Some(direct) = &shared.direct
            && buffer.front().is_some_and(|job| !job.to_relay)
        {
            let Some(job) = buffer.pop_front() else {
                continue;
            };
            show(RunState::Running, &mut shown);
            direct.enqueue(&shared, job);
            let now = Instant::now();
            bucket.take(now);
            sleep.count(now);
            continue;
        }
        if buffer.is_empty() && held.is_empty() {
            continue;
        }
        // Choose a relay that is up and within its rate.
        let now = Instant::now();
        let mut eligible = Vec::new();
        let mut soonest: Option<Duration> = None;
        let mut down: Vec<(String, bool)> = Vec::new();
        for (index, relay) in shared.relays.iter().enumerate() {
            if let Some((until, reason, needs_user)) = relay.resting(now) {
                down.push((format!("{}: {reason}", relay.target.route), needs_user));
                if !needs_user {
                    let left = until.saturating_duration_since(now);
                    soonest = Some(soonest.map_or(left, |s| s.min(left)));
                }
                continue;
            }
            let wait_for = relay
                .bucket
                .lock()
                .map(|mut bucket| bucket.wait_time(now))
                .unwrap_or_default();
            if wait_for.is_zero() {
                eligible.push((index, relay.weight));
            } else {
                soonest = Some(soonest.map_or(wait_for, |s| s.min(wait_for)));
            }
        }
        let Some(chosen) = picker.pick(&eligible) else {
            if down.len() == shared.relays.len() && down.iter().all(|(_, needs_user)| *needs_user) {
                // Waiting will not fix a wrong password: hand the decision to the user.
                for job in buffer.drain(..).chain(held.drain(..)) {
                    shared.release(job);
                }
                let reason = down
                    .into_iter()
                    .map(|(text, _)| text)
                    .collect::<Vec<_>>()
                    .join("; ");
                show(
                    RunState::Paused {
                        reason: Some(reason),
                        needs_user: true,
                    },
                    &mut shown,
                );
                // On resume, try every relay again.
                let _ = control.changed().await;
                for (index, relay) in shared.relays.iter().enumerate() {
                    if relay.revive() {
                        shared.event(Event::RouteUp { route: index });
                    }
                }
                continue;
            }
            if shared.direct.is_some()
                && held.len() < MAX_HELD
                && let Some(job) = buffer.pop_front()
            {
                held.push_back(job);
                continue;
            }
            let retry_in = soonest.unwrap_or(Duration::from_secs(1));
            // While direct delivery has work, look again soon: the dispatcher also feeds it.
            let retry_in = if shared.direct.is_some()
                && shared.outstanding.load(Ordering::SeqCst) > held.len()
            {
                retry_in.min(Duration::from_millis(100))
            } else {
                retry_in
            };
            if down.len() == shared.relays.len() {
                let reason = down
                    .into_iter()
                    .map(|(text, _)| text)
                    .collect::<Vec<_>>()
                    .join("; ");
                show(
                    RunState::Waiting {
                        reason: format!("no relay is reachable ({reason})"),
                        retry_in_secs: retry_in.as_secs().max(1),
                    },
                    &mut shown,
                );
            }
            wait(&mut control, retry_in.min(Duration::from_secs(1))).await;
            continue;
        };
        let (Some(relay), Some(sender)) = (shared.relays.get(chosen), senders.get(chosen)) else {
            continue;
        };
        let from_held = !held.is_empty();
        let Some(job) = (if from_held {
            held.pop_front()
        } else {
            buffer.pop_front()
        }) else {
            continue;
        };
        let queue = if from_held { &mut held } else { &mut buffer };
        show(RunState::Running, &mut shown);
        // Reserve first: unlike `send`, a reservation can be abandoned without losing the job.
        tokio::select! {
            slot = sender.reserve() => match slot {
                Ok(slot) => slot.send(job),
                Err(_) => {
                    queue.push_front(job);
                    break RunState::Failed { reason: format!("the workers of relay {} stopped", relay.target.route) };
                }
            },
            _ = control.changed() => {
                queue.push_front(job);
                continue;
            }
        }
        let now = Instant::now();
        bucket.take(now);
        if let Ok(mut relay_bucket) = relay.bucket.lock() {
            relay_bucket.take(now);
        }
        sleep.count(now);
    };
    for job in buffer.drain(..).chain(held.drain(..)) {
        shared.release(job);
    }
    while let Ok(job) = bounced.try_recv() {
        shared.release(job);
    }
    outcome
}

/// The most relay-bound recipients mixed mode sets aside while no relay can take them.
const MAX_HELD: usize = 10_000;

enum Idle {
    Done,
    Busy,
    WaitUntil(Duration),
    Failed(String),
}

/// Nothing was claimable: is the run over, are messages still in flight, or are deferred
/// recipients waiting for their time?
async fn idle_decision(shared: &Arc<Shared>, store: &Arc<Mutex<Store>>) -> Idle {
    if shared.outstanding.load(Ordering::SeqCst) > 0 {
        return Idle::Busy;
    }
    let writer = shared.writer.clone();
    let store = Arc::clone(store);
    let id = shared.campaign_id;
    let checked = tokio::task::spawn_blocking(move || {
        writer.flush().map_err(|error| error.to_string())?;
        let store = store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let counts = store.counts(id).map_err(|error| error.to_string())?;
        let next_due = store.next_due_ms(id).map_err(|error| error.to_string())?;
        Ok::<_, String>((counts, next_due))
    })
    .await;
    match checked {
        Ok(Ok((counts, next_due))) => {
            if counts.pending > 0 || counts.sending > 0 {
                Idle::Busy
            } else if counts.deferred > 0 {
                let due_in_ms = next_due.unwrap_or(0).saturating_sub(now_ms()).max(0) as u64;
                Idle::WaitUntil(Duration::from_millis(due_in_ms))
            } else {
                Idle::Done
            }
        }
        Ok(Err(reason)) => Idle::Failed(reason),
        Err(error) => Idle::Failed(error.to_string()),
    }
}

/// Waits for `duration` or until the user changes the run's control.
async fn wait(control: &mut watch::Receiver<Control>, duration: Duration) {
    tokio::select! {
        _ = control.changed() => {}
        _ = tokio::time::sleep(duration) => {}
    }
}

/// One worker: one SMTP session at a time to its relay.
pub(super) async fn work(shared: Arc<Shared>, route: usize) {
    let Some(relay) = shared.relays.get(route).cloned() else {
        return;
    };
    let mut session: Option<(Session, OwnedSemaphorePermit)> = None;
    loop {
        // The idle limit covers waiting for the queue's lock too: a worker holding a session
        // (and a connection permit) must give both up if its relay has no work for it.
        let next = if session.is_some() {
            tokio::time::timeout(IDLE_SESSION, async {
                relay.queue.lock().await.recv().await
            })
            .await
            .ok()
        } else {
            Some(relay.queue.lock().await.recv().await)
        };
        let job = match next {
            None => {
                close(&shared, route, &mut session).await;
                continue;
            }
            Some(None) => break,
            Some(Some(job)) => job,
        };
        if shared.control() != Control::Run {
            close(&shared, route, &mut session).await;
            shared.release(job);
            continue;
        }
        if relay.resting(Instant::now()).is_some() {
            close(&shared, route, &mut session).await;
            let _ = shared.bounced.send(job);
            continue;
        }
        deliver(&shared, &relay, route, &mut session, job).await;
    }
    close(&shared, route, &mut session).await;
}

async fn close(
    shared: &Shared,
    route: usize,
    session: &mut Option<(Session, OwnedSemaphorePermit)>,
) {
    if let Some((open, permit)) = session.take() {
        open.quit().await;
        drop(permit);
        shared.event(Event::Connections { route, delta: -1 });
    }
}

/// Opens a session (under the campaign's connection cap) or rests the relay.
async fn open_session(
    shared: &Shared,
    relay: &Relay,
    route: usize,
) -> Result<(Session, OwnedSemaphorePermit), ConnectError> {
    let Ok(permit) = Arc::clone(&shared.connections).acquire_owned().await else {
        return Err(ConnectError::Network("the run is ending".into()));
    };
    let span =
        tracing::info_span!("connection", route = %relay.target.route, host = %relay.target.host);
    let _entered = span.enter();
    match Session::connect(&relay.target, shared.timeouts).await {
        Ok(session) => {
            shared.event(Event::Connections { route, delta: 1 });
            Ok((session, permit))
        }
        Err(error) => {
            let cooldown = Duration::from_secs(u64::from(shared.delivery.relay_cooldown_secs));
            let reason = error.to_string();
            tracing::warn!(%reason, "relay unavailable; resting it");
            relay.rest(reason.clone(), error.needs_user(), cooldown);
            shared.event(Event::RouteDown { route, reason });
            Err(error)
        }
    }
}

/// Why a recipient's message was not built.
pub(super) enum NotBuilt {
    /// The personalization script skipped the recipient, with this reason.
    Skipped(String),
    /// The message cannot be built for this recipient: a permanent failure.
    Failed(Attempt),
}

impl NotBuilt {
    /// Records the outcome on the recipient's row.
    pub(super) fn record(self, shared: &Shared, route: usize, job: &Job) {
        match self {
            NotBuilt::Skipped(reason) => skip(shared, route, job, &reason),
            NotBuilt::Failed(attempt) => finish(shared, route, job, attempt, None),
        }
    }
}

/// Builds one recipient's message and envelope address.
pub(super) fn compose_for(
    shared: &Shared,
    claimed: &Claimed,
) -> Result<(EnvelopeAddress, Vec<u8>), NotBuilt> {
    let invalid = || NotBuilt::Failed(Attempt::Permanent(local_reply("the address is not valid")));
    let address = EmailAddress::parse(&claimed.email).map_err(|_| invalid())?;
    let envelope = address.to_ascii();
    let data = RecipientData {
        id: claimed.id,
        email: &envelope,
        fields_json: &claimed.fields_json,
    };
    let composed = shared
        .composer
        .compose(&data)
        .map_err(|error| match error.skip_reason() {
            Some(reason) => NotBuilt::Skipped(reason.to_string()),
            None => NotBuilt::Failed(Attempt::Permanent(local_reply(format!(
                "could not build the message: {error}"
            )))),
        })?;
    let to = envelope_address(&composed.envelope_to).map_err(|_| invalid())?;
    Ok((to, composed.bytes))
}

async fn deliver(
    shared: &Shared,
    relay: &Relay,
    route: usize,
    session: &mut Option<(Session, OwnedSemaphorePermit)>,
    job: Job,
) {
    let (to, bytes) = match compose_for(shared, &job.claimed) {
        Ok(composed) => composed,
        Err(not_built) => {
            not_built.record(shared, route, &job);
            return;
        }
    };
    // A reused session the server has closed fails before anything is sent: retry once on a
    // fresh one without counting an attempt.
    for _ in 0..2 {
        if session.is_none() {
            match open_session(shared, relay, route).await {
                Ok(opened) => {
                    if relay.revive() {
                        shared.event(Event::RouteUp { route });
                    }
                    *session = Some(opened);
                }
                Err(_) => {
                    // Nothing reached a server: the attempt does not count.
                    let _ = shared.bounced.send(job);
                    return;
                }
            }
        }
        let Some((open, _)) = session.as_mut() else {
            continue;
        };
        let offer = open.send(&shared.from, &to, &bytes).await;
        let spent = open.messages;
        if !offer.usable {
            if let Some((dead, permit)) = session.take() {
                drop(dead);
                drop(permit);
                shared.event(Event::Connections { route, delta: -1 });
            }
        } else if shared.delivery.messages_per_connection > 0
            && spent >= shared.delivery.messages_per_connection
        {
            close(shared, route, session).await;
        }
        if offer.stale {
            continue;
        }
        finish(
            shared,
            route,
            &job,
            offer.attempt,
            Some(&relay.target.route),
        );
        return;
    }
    let _ = shared.bounced.send(job);
}

/// The personalization script skipped this recipient (issue #5): recorded with its reason,
/// never sent.
fn skip(shared: &Shared, route: usize, job: &Job, reason: &str) {
    let reply = local_reply(reason);
    let _ = shared.writer.write(Transition {
        id: job.claimed.id,
        to: State::Skipped,
        attempts: job.claimed.attempts,
        next_attempt_at_ms: 0,
        route: None,
        reply: Some(reply.clone()),
    });
    shared.outstanding.fetch_sub(1, Ordering::SeqCst);
    shared.event(Event::Outcome {
        route,
        email: job.claimed.email.clone(),
        to: State::Skipped,
        uncertain: false,
        reply: Some(reply),
    });
}

pub(super) fn finish(
    shared: &Shared,
    route: usize,
    job: &Job,
    attempt: Attempt,
    route_name: Option<&str>,
) {
    let decision = decide(&attempt, job.claimed.attempts, &shared.delivery);
    let uncertain = matches!(attempt, Attempt::Uncertain(_));
    let reply = match attempt {
        Attempt::Accepted(reply)
        | Attempt::Temporary(reply)
        | Attempt::Permanent(reply)
        | Attempt::Uncertain(reply) => reply,
    };
    let next_attempt_at_ms = decision
        .retry_in
        .map(|delay| now_ms() + delay.as_millis() as i64)
        .unwrap_or(0);
    if decision.state != State::Sent {
        tracing::info!(
            state = decision.state.as_str(),
            code = reply.code,
            reply = %reply.text,
            recipient = %job.claimed.email,
            "delivery attempt did not succeed"
        );
    }
    let _ = shared.writer.write(Transition {
        id: job.claimed.id,
        to: decision.state,
        attempts: decision.attempts,
        next_attempt_at_ms,
        route: route_name.map(str::to_string),
        reply: Some(reply.clone()),
    });
    shared.outstanding.fetch_sub(1, Ordering::SeqCst);
    shared.event(Event::Outcome {
        route,
        email: job.claimed.email.clone(),
        to: decision.state,
        uncertain,
        reply: Some(reply),
    });
}

#[cfg(test)]
mod tests {
    use super::WeightedPicker;

    #[test]
    fn weights_share_the_traffic() {
        let mut picker = WeightedPicker::new(3);
        let eligible = [(0, 1), (1, 1), (2, 2)];
        let mut counts = [0; 3];
        for _ in 0..400 {
            if let Some(chosen) = picker.pick(&eligible) {
                counts[chosen] += 1;
            }
        }
        assert_eq!(counts, [100, 100, 200]);
        // A relay that is down gets nothing; the others share its part.
        let mut counts = [0; 3];
        for _ in 0..300 {
            if let Some(chosen) = picker.pick(&[(0, 1), (2, 2)]) {
                counts[chosen] += 1;
            }
        }
        assert_eq!(counts, [100, 0, 200]);
        assert_eq!(picker.pick(&[]), None);
    }
}
