//! The dispatcher of a run: claims due recipients from the store in batches and deals them to
//! the direct router (direct and mixed modes) or to a relay picked by weight, under the
//! campaign's rate and periodic sleep, until nothing is left, the user stops the run, or it
//! cannot go on. Each round goes through a few stages in order (the writer's health, the user's
//! control, the throttles, claiming, dealing); a stage either lets the round go on or ends it.
//! Whatever it holds claimed when the run pauses or ends goes back to `pending`.
//!
//! A claim is synced to disk before any of its messages leaves (issue #24), which costs an
//! fsync per batch. In relay mode batches therefore grow with the run's pace to about
//! [`CLAIM_SPAN`] of sending (group commit: one fsync for all of them), and the next batch is
//! claimed in the background as soon as the current one is taken, so that its fsync overlaps a
//! whole batch of sending instead of stalling it (claiming at half a batch left the dispatcher
//! waiting on the disk: 0.85x the rate without the sync in `benches/send.rs`).

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::direct::Direct;
use super::job::Job;
use super::progress::{Event, RunState};
use super::shared::{Control, Shared};
use super::throttle::{PeriodicSleep, TokenBucket};
use crate::store::{Claimed, Store, now_ms};

/// The most relay-bound recipients mixed mode sets aside while no relay can take them.
const MAX_HELD: usize = 10_000;

/// Relay mode: how much sending one claim batch covers at the run's pace. Each batch costs an
/// fsync, and what is claimed when Herald dies or the power goes comes back `uncertain`: 50 ms
/// keeps the fsyncs to about 20 a second at any speed and the claimed rows to what the writer
/// may hold unrecorded anyway (its batches are 100 ms).
const CLAIM_SPAN: Duration = Duration::from_millis(50);

/// The largest claim batch.
const MAX_CLAIM: u32 = 1_000;

/// Runs the dispatcher until the run is over; returns the run's final state.
pub(super) async fn dispatch(
    shared: Arc<Shared>,
    direct: Option<Arc<Direct>>,
    store: Arc<Mutex<Store>>,
    senders: Vec<mpsc::Sender<Job>>,
    bounced: mpsc::UnboundedReceiver<Job>,
) -> RunState {
    Dispatcher::new(shared, direct, store, senders, bounced)
        .run()
        .await
}

/// Why a round of the dispatcher stops before its last stage.
enum Round {
    /// This round is done: start the next one.
    Again,
    /// The run is over.
    End(RunState),
}

/// `Continue` lets the round go on to its next stage.
type Stage = ControlFlow<Round>;

const AGAIN: Stage = ControlFlow::Break(Round::Again);

fn end(state: RunState) -> Stage {
    ControlFlow::Break(Round::End(state))
}

struct Dispatcher {
    shared: Arc<Shared>,
    /// The direct router, in direct and mixed modes.
    direct: Option<Arc<Direct>>,
    store: Arc<Mutex<Store>>,
    /// One per relay, feeding that relay's workers.
    senders: Vec<mpsc::Sender<Job>>,
    /// Jobs given back by workers (relay down, nothing sent) or by the direct router (mixed
    /// mode: the relays take over).
    bounced: mpsc::UnboundedReceiver<Job>,
    control: watch::Receiver<Control>,
    /// Claimed and not yet dealt.
    buffer: VecDeque<Job>,
    /// Mixed mode: recipients for the relays, set aside while no relay can take them so that
    /// direct delivery goes on behind them. Bounded, so that memory is too.
    held: VecDeque<Job>,
    bucket: TokenBucket,
    sleep: PeriodicSleep,
    picker: WeightedPicker,
    claim_size: u32,
    /// The smallest claim batch (2 × connections, at least 16); relay mode grows `claim_size`
    /// from it with the run's pace.
    min_claim: u32,
    /// Every claimed row taken for dealing so far: less `outstanding`, the rows done with.
    taken_total: usize,
    /// Relay mode: when the last batch was taken, and how many rows were done with then.
    last_paced: Option<(Instant, usize)>,
    /// Relay mode: the next batch, being claimed (and synced) while the buffer is dealt.
    next_claim: Option<JoinHandle<Result<Vec<Claimed>, String>>>,
    /// Direct mode keeps a wider window of claimed recipients so that each domain's queue
    /// holds enough of them for one connection to carry many messages.
    direct_window: usize,
    /// The run state last shown, so that each change is sent once.
    shown: RunState,
}

impl Dispatcher {
    fn new(
        shared: Arc<Shared>,
        direct: Option<Arc<Direct>>,
        store: Arc<Mutex<Store>>,
        senders: Vec<mpsc::Sender<Job>>,
        bounced: mpsc::UnboundedReceiver<Job>,
    ) -> Dispatcher {
        let delivery = &shared.delivery;
        let now = Instant::now();
        Dispatcher {
            control: shared.control.clone(),
            buffer: VecDeque::new(),
            held: VecDeque::new(),
            bucket: TokenBucket::per_hour(delivery.rate_per_hour, now),
            sleep: PeriodicSleep::new(delivery.sleep_every, delivery.sleep_seconds),
            picker: WeightedPicker::new(shared.relays.len()),
            claim_size: (u32::from(delivery.connections) * 2).clamp(16, MAX_CLAIM),
            min_claim: (u32::from(delivery.connections) * 2).clamp(16, MAX_CLAIM),
            taken_total: 0,
            last_paced: None,
            next_claim: None,
            direct_window: (usize::from(delivery.connections) * 32).clamp(256, 4_000),
            shown: RunState::Starting,
            shared,
            direct,
            store,
            senders,
            bounced,
        }
    }

    async fn run(mut self) -> RunState {
        let outcome = loop {
            if let ControlFlow::Break(Round::End(state)) = self.round().await {
                break state;
            }
        };
        self.release_claimed().await;
        while let Ok(job) = self.bounced.try_recv() {
            self.shared.release(job);
        }
        outcome
    }

    /// One round: take back bounced jobs, obey the user and the throttles, claim when the
    /// buffer is empty, and deal one job.
    async fn round(&mut self) -> Stage {
        if let Some(failure) = self.shared.writer.failure() {
            return end(RunState::Failed {
                reason: format!("could not record delivery states: {failure}"),
            });
        }
        while let Ok(job) = self.bounced.try_recv() {
            self.buffer.push_front(job);
        }
        self.wait_while_port_blocked().await?;
        self.obey_control().await?;
        self.throttle().await?;
        self.wait_for_a_relay().await?;
        self.fill().await?;
        self.deal_direct()?;
        self.deal_to_relay().await
    }

    fn show(&mut self, state: RunState) {
        if self.shown != state {
            self.shown = state.clone();
            self.shared.event(Event::State(state));
        }
    }

    /// Gives every claimed job the dispatcher holds back to `pending`, a batch still being
    /// claimed in the background included.
    async fn release_claimed(&mut self) {
        if let Some(next) = self.next_claim.take()
            && let Ok(rows) = join_claim(next).await
        {
            self.take_claimed(rows);
        }
        for job in self.buffer.drain(..).chain(self.held.drain(..)) {
            self.shared.release(job);
        }
    }

    /// Waits for `duration` or until the user changes the run's control.
    async fn wait(&mut self, duration: Duration) {
        wait(&mut self.control, duration).await;
    }

    /// Waits for the user, a bounced job or `duration`, whichever comes first.
    async fn idle(&mut self, duration: Duration) {
        tokio::select! {
            _ = self.control.changed() => {}
            Some(job) = self.bounced.recv() => self.buffer.push_front(job),
            _ = tokio::time::sleep(duration) => {}
        }
    }

    /// Direct mode only: when port 25 looks blocked, nothing will get through until the user
    /// changes the network or the mode, so everything goes back to `pending` and the run waits.
    async fn wait_while_port_blocked(&mut self) -> Stage {
        let Some(direct) = self.direct.clone() else {
            return ControlFlow::Continue(());
        };
        if !self.shared.relays.is_empty() {
            return ControlFlow::Continue(());
        }
        let Some(reason) = direct.blocked() else {
            return ControlFlow::Continue(());
        };
        self.release_claimed().await;
        direct.release_all(&self.shared);
        self.show(RunState::Paused {
            reason: Some(reason),
            needs_user: true,
        });
        let _ = self.control.changed().await;
        direct.unblock();
        AGAIN
    }

    /// Ends the run on stop; on pause gives back what is claimed and waits for the user.
    async fn obey_control(&mut self) -> Stage {
        match self.shared.control() {
            Control::Run => ControlFlow::Continue(()),
            Control::Stop => end(RunState::Stopped),
            Control::Pause => {
                self.release_claimed().await;
                if let Some(direct) = &self.direct {
                    direct.release_all(&self.shared);
                }
                if !matches!(self.shown, RunState::Paused { .. }) {
                    self.show(RunState::Paused {
                        reason: None,
                        needs_user: false,
                    });
                }
                tokio::select! {
                    _ = self.control.changed() => {}
                    Some(job) = self.bounced.recv() => self.buffer.push_front(job),
                }
                AGAIN
            }
        }
    }

    /// The periodic sleep and the campaign's rate.
    async fn throttle(&mut self) -> Stage {
        let now = Instant::now();
        if let Some(until) = self.sleep.resting_until(now) {
            let left = until.saturating_duration_since(now);
            self.show(RunState::Resting {
                resumes_in_secs: left.as_secs().max(1),
            });
            self.wait(left.min(Duration::from_secs(1))).await;
            return AGAIN;
        }
        let pause_for = self.bucket.wait_time(now);
        if !pause_for.is_zero() {
            self.wait(pause_for).await;
            return AGAIN;
        }
        ControlFlow::Continue(())
    }

    /// Relay mode: while every relay rests, the run holds nothing claimed. What it holds goes
    /// back to `pending` and nothing more is claimed until a relay's rest is over, so the window
    /// shows nobody in `sending` and a `kill -9` meanwhile leaves nobody `uncertain` (issue #12).
    /// Mixed mode keeps its relay-bound recipients aside instead (direct delivery goes on).
    async fn wait_for_a_relay(&mut self) -> Stage {
        if self.direct.is_some() {
            return ControlFlow::Continue(());
        }
        let Some(unavailable) = self.every_relay_down(Instant::now()) else {
            return ControlFlow::Continue(());
        };
        if unavailable.down.iter().all(|(_, needs_user)| *needs_user) {
            return self.pause_for_user(unavailable).await;
        }
        self.release_claimed().await;
        let retry_in = unavailable.soonest.unwrap_or(Duration::from_secs(1));
        self.show(RunState::Waiting {
            reason: format!("no relay is reachable ({})", unavailable.reasons()),
            retry_in_secs: retry_in.as_secs().max(1),
        });
        // Jobs the workers give back meanwhile are released by the next round.
        self.idle(retry_in.min(Duration::from_secs(1))).await;
        AGAIN
    }

    /// Why no relay is up, when none is (and there is at least one).
    fn every_relay_down(&self, now: Instant) -> Option<Unavailable> {
        let mut unavailable = Unavailable::default();
        for relay in &self.shared.relays {
            let (until, reason, needs_user) = relay.resting(now)?;
            unavailable
                .down
                .push((format!("{}: {reason}", relay.target.route), needs_user));
            if !needs_user {
                unavailable.sooner(until.saturating_duration_since(now));
            }
        }
        (!unavailable.down.is_empty()).then_some(unavailable)
    }

    /// Claims more recipients when the buffer is empty and direct mode's window has room; when
    /// nothing is claimable, decides whether the run is over or waits.
    async fn fill(&mut self) -> Stage {
        // Held jobs are claimed but wait for a relay: they do not narrow direct mode's window.
        let in_flight = self
            .shared
            .outstanding
            .load(Ordering::SeqCst)
            .saturating_sub(self.held.len());
        let window_full = self.direct.is_some() && in_flight >= self.direct_window;
        if !self.buffer.is_empty() {
            self.claim_ahead();
            return ControlFlow::Continue(());
        }
        if window_full {
            if self.held.is_empty() {
                self.idle(Duration::from_millis(20)).await;
                return AGAIN;
            }
            return ControlFlow::Continue(());
        }
        let claim_size = if self.direct.is_some() {
            ((self.direct_window - in_flight) as u32).min(1_000)
        } else {
            self.claim_size
        };
        let next = match self.next_claim.take() {
            Some(next) => next,
            None => self.claim(claim_size),
        };
        let claimed = match join_claim(next).await {
            Ok(rows) => rows,
            Err(reason) => return end(RunState::Failed { reason }),
        };
        if claimed.is_empty() && self.held.is_empty() {
            return self.nothing_claimable().await;
        }
        if self.direct.is_none() {
            self.pace_claims(Instant::now());
        }
        self.take_claimed(claimed);
        ControlFlow::Continue(())
    }

    /// Relay mode: sizes the next claim to [`CLAIM_SPAN`] at the pace rows were done with (sent,
    /// failed, deferred, released) since the last batch, never below `min_claim`. Done, not
    /// dealt: dealing into the workers' empty queues at the start is no measure of sending.
    fn pace_claims(&mut self, now: Instant) {
        let outstanding = self.shared.outstanding.load(Ordering::SeqCst);
        let done = self.taken_total.saturating_sub(outstanding);
        if let Some((since, done_then)) = self.last_paced {
            let finished = done.saturating_sub(done_then);
            self.claim_size = claim_size_for(finished, now.saturating_duration_since(since))
                .clamp(self.min_claim, MAX_CLAIM);
        }
        self.last_paced = Some((now, done));
    }

    /// Relay mode: starts claiming the next batch while the current one is dealt (one claim in
    /// flight at a time), which `fill` takes when the buffer runs out. At most two batches,
    /// about 2 x [`CLAIM_SPAN`] of sending, are claimed ahead of what has left.
    fn claim_ahead(&mut self) {
        if self.direct.is_none() && self.next_claim.is_none() {
            self.next_claim = Some(self.claim(self.claim_size));
        }
    }

    /// Counts claimed rows as outstanding and queues them for dealing.
    fn take_claimed(&mut self, claimed: Vec<Claimed>) {
        self.taken_total += claimed.len();
        self.shared
            .outstanding
            .fetch_add(claimed.len(), Ordering::SeqCst);
        for row in claimed {
            self.shared.event(Event::Claimed { from: row.from });
            let to_relay = self.bound_for_relay(&row);
            self.buffer.push_back(Job {
                claimed: row,
                to_relay,
            });
        }
    }

    /// Starts claiming up to `count` due recipients on a blocking thread; the claim is
    /// committed and synced to disk before the task returns its rows.
    fn claim(&self, count: u32) -> JoinHandle<Result<Vec<Claimed>, String>> {
        let store = Arc::clone(&self.store);
        let id = self.shared.campaign_id;
        tokio::task::spawn_blocking(move || {
            let mut store = store
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            store
                .claim(id, now_ms(), count)
                .map_err(|error| error.to_string())
        })
    }

    /// Relay mode: always. Mixed mode: a recipient a relay already tried stays with the relays.
    fn bound_for_relay(&self, row: &Claimed) -> bool {
        if self.direct.is_none() {
            return true;
        }
        row.route.as_ref().is_some_and(|route| {
            self.shared
                .relays
                .iter()
                .any(|relay| &relay.target.route == route)
        })
    }

    /// Nothing was claimable and nothing is held: finish, or wait for messages in flight or
    /// for deferred recipients to fall due.
    async fn nothing_claimable(&mut self) -> Stage {
        match idle_decision(&self.shared, &self.store).await {
            Idle::Done => end(RunState::Finished),
            Idle::Failed(reason) => end(RunState::Failed { reason }),
            Idle::Busy => {
                self.idle(Duration::from_millis(50)).await;
                AGAIN
            }
            Idle::WaitUntil(due_in) => {
                self.show(RunState::Waiting {
                    reason: "deferred recipients are not due yet".into(),
                    retry_in_secs: due_in.as_secs().max(1),
                });
                self.wait(due_in.min(Duration::from_secs(1))).await;
                AGAIN
            }
        }
    }

    /// Direct and mixed modes: the next job goes to the direct router unless it is bound for
    /// the relays.
    fn deal_direct(&mut self) -> Stage {
        let Some(direct) = &self.direct else {
            return ControlFlow::Continue(());
        };
        if self.buffer.front().is_none_or(|job| job.to_relay) {
            return ControlFlow::Continue(());
        }
        let Some(job) = self.buffer.pop_front() else {
            return AGAIN;
        };
        let direct = Arc::clone(direct);
        self.show(RunState::Running);
        direct.enqueue(&self.shared, job);
        let now = Instant::now();
        self.bucket.take(now);
        self.sleep.count(now);
        AGAIN
    }

    /// Hands the next relay-bound job (held ones first) to a relay that is up and within its
    /// rate, or waits when none is.
    async fn deal_to_relay(&mut self) -> Stage {
        if self.buffer.is_empty() && self.held.is_empty() {
            return AGAIN;
        }
        let chosen = match self.choose_relay() {
            Ok(chosen) => chosen,
            Err(unavailable) => return self.no_relay_available(unavailable).await,
        };
        let Some(sender) = self.senders.get(chosen).cloned() else {
            return AGAIN;
        };
        let from_held = !self.held.is_empty();
        let queue = if from_held {
            &mut self.held
        } else {
            &mut self.buffer
        };
        let Some(job) = queue.pop_front() else {
            return AGAIN;
        };
        self.show(RunState::Running);
        // Reserve first: unlike `send`, a reservation can be abandoned without losing the job.
        tokio::select! {
            slot = sender.reserve() => match slot {
                Ok(slot) => slot.send(job),
                Err(_) => {
                    self.queue(from_held).push_front(job);
                    let route = self.shared.relays.get(chosen).map(|relay| relay.target.route.clone()).unwrap_or_default();
                    return end(RunState::Failed { reason: format!("the workers of relay {route} stopped") });
                }
            },
            _ = self.control.changed() => {
                self.queue(from_held).push_front(job);
                return AGAIN;
            }
        }
        let now = Instant::now();
        self.bucket.take(now);
        if let Some(relay) = self.shared.relays.get(chosen)
            && let Ok(mut relay_bucket) = relay.bucket.lock()
        {
            relay_bucket.take(now);
        }
        self.sleep.count(now);
        AGAIN
    }

    fn queue(&mut self, held: bool) -> &mut VecDeque<Job> {
        if held {
            &mut self.held
        } else {
            &mut self.buffer
        }
    }

    /// Picks a relay that is up and within its own rate, by weight.
    fn choose_relay(&mut self) -> Result<usize, Unavailable> {
        let now = Instant::now();
        let mut eligible = Vec::new();
        let mut unavailable = Unavailable::default();
        for (index, relay) in self.shared.relays.iter().enumerate() {
            if let Some((until, reason, needs_user)) = relay.resting(now) {
                unavailable
                    .down
                    .push((format!("{}: {reason}", relay.target.route), needs_user));
                if !needs_user {
                    unavailable.sooner(until.saturating_duration_since(now));
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
                unavailable.sooner(wait_for);
            }
        }
        self.picker.pick(&eligible).ok_or(unavailable)
    }

    /// No relay can take a job now: pause for the user when every relay needs them, set the
    /// job aside in mixed mode, or wait for the soonest relay.
    async fn no_relay_available(&mut self, unavailable: Unavailable) -> Stage {
        let all_down = unavailable.down.len() == self.shared.relays.len();
        if all_down && unavailable.down.iter().all(|(_, needs_user)| *needs_user) {
            return self.pause_for_user(unavailable).await;
        }
        if self.direct.is_some()
            && self.held.len() < MAX_HELD
            && let Some(job) = self.buffer.pop_front()
        {
            self.held.push_back(job);
            return AGAIN;
        }
        let retry_in = unavailable.soonest.unwrap_or(Duration::from_secs(1));
        // While direct delivery has work, look again soon: the dispatcher also feeds it.
        let retry_in = if self.direct.is_some()
            && self.shared.outstanding.load(Ordering::SeqCst) > self.held.len()
        {
            retry_in.min(Duration::from_millis(100))
        } else {
            retry_in
        };
        if all_down {
            self.show(RunState::Waiting {
                reason: format!("no relay is reachable ({})", unavailable.reasons()),
                retry_in_secs: retry_in.as_secs().max(1),
            });
        }
        self.wait(retry_in.min(Duration::from_secs(1))).await;
        AGAIN
    }

    /// Waiting will not fix a wrong password: hand the decision to the user, and on resume try
    /// every relay again.
    async fn pause_for_user(&mut self, unavailable: Unavailable) -> Stage {
        self.release_claimed().await;
        self.show(RunState::Paused {
            reason: Some(unavailable.reasons()),
            needs_user: true,
        });
        let _ = self.control.changed().await;
        for (index, relay) in self.shared.relays.iter().enumerate() {
            if relay.revive() {
                self.shared.event(Event::RouteUp { route: index });
            }
        }
        AGAIN
    }
}

/// Why no relay could be chosen.
#[derive(Default)]
struct Unavailable {
    /// Relays resting: "name: reason", and whether only the user can fix it.
    down: Vec<(String, bool)>,
    /// When the first relay is expected back (its rest or its rate).
    soonest: Option<Duration>,
}

impl Unavailable {
    fn sooner(&mut self, left: Duration) {
        self.soonest = Some(self.soonest.map_or(left, |soonest| soonest.min(left)));
    }

    fn reasons(&self) -> String {
        self.down
            .iter()
            .map(|(text, _)| text.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

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

/// How many recipients make [`CLAIM_SPAN`] of sending when `done` were done with in `took`
/// (unclamped).
fn claim_size_for(done: usize, took: Duration) -> u32 {
    let per_second = done as f64 / took.as_secs_f64().max(0.001);
    (per_second * CLAIM_SPAN.as_secs_f64()).min(f64::from(u32::MAX)) as u32
}

/// The rows of a claim started by [`Dispatcher::claim`], once committed.
async fn join_claim(
    claim: JoinHandle<Result<Vec<Claimed>, String>>,
) -> Result<Vec<Claimed>, String> {
    match claim.await {
        Ok(claimed) => claimed,
        Err(error) => Err(format!("the claim task failed: {error}")),
    }
}

/// Waits for `duration` or until the user changes the run's control.
async fn wait(control: &mut watch::Receiver<Control>, duration: Duration) {
    tokio::select! {
        _ = control.changed() => {}
        _ = tokio::time::sleep(duration) => {}
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{WeightedPicker, claim_size_for};

    #[test]
    fn claims_cover_fifty_milliseconds_of_sending() {
        // 100 dealt in 10 ms is 10,000 a second: 500 in 50 ms.
        assert_eq!(claim_size_for(100, Duration::from_millis(10)), 500);
        // 16 dealt in 80 ms is 200 a second: 10 (the caller raises it to its floor).
        assert_eq!(claim_size_for(16, Duration::from_millis(80)), 10);
        // No time measured is counted as 1 ms, not as infinity.
        assert_eq!(claim_size_for(16, Duration::ZERO), 800);
    }

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
