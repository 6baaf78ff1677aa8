//! The relay workers of a run: each holds one SMTP session at a time to its relay, takes jobs
//! from the relay's queue (fed by the dispatcher, `dispatch.rs`), sends them and records the
//! outcome. A job belongs to a session only once that session is ready (greeted, EHLO, TLS and
//! AUTH done): a worker that must connect first leaves the job it woke for in the relay's
//! `spill`, which every ready session draws from before the queue, so a server that accepts a
//! connection and never greets costs only that connection (issue #12). A busy session has its
//! next job in hand when it writes a message's final "." (`Session::send_many`). A relay that
//! refuses connections, TLS or AUTH is rested and its jobs go back to the dispatcher with no
//! attempt spent. Knows nothing of direct delivery.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;

use super::job::{Job, compose_for, finish};
use super::progress::Event;
use super::shared::{Control, Relay, Shared};
use super::smtp::{ConnectError, Message, Outcome, Session};

/// How long an idle session stays open before it is closed (QUIT).
const IDLE_SESSION: Duration = Duration::from_secs(2);
/// How often a worker that is still connecting looks whether the run still needs it.
const STILL_NEEDED: Duration = Duration::from_millis(200);

type Open = Option<(Session, OwnedSemaphorePermit)>;

enum Next {
    Job(Job),
    /// No job within the idle limit.
    Idle,
    /// The dispatcher is gone and nothing is left.
    Closed,
}

impl Relay {
    fn spill_lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.spill
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Leaves a job where every ready session of the relay finds it first.
    fn leave(&self, job: Job) {
        self.spill_lock().push_front(job);
        self.spilled.notify_waiters();
    }

    /// A job to send now, if one is at hand: the spill first, then the queue. Never waits.
    fn ready_job(&self) -> Option<Job> {
        if let Some(job) = self.spill_lock().pop_front() {
            return Some(job);
        }
        self.queue.try_lock().ok()?.try_recv().ok()
    }

    /// Whether the run can still have work for this relay.
    fn still_needed(&self) -> bool {
        if !self.spill_lock().is_empty() {
            return true;
        }
        match self.queue.try_lock() {
            Ok(queue) => !(queue.is_closed() && queue.is_empty()),
            // A worker is waiting on the queue: the dispatcher still runs.
            Err(_) => true,
        }
    }

    /// Waits for a job: from the spill or the queue, whichever has one first.
    async fn next_job(&self, idle: Option<Duration>) -> Next {
        let deadline = idle.map(|limit| tokio::time::Instant::now() + limit);
        loop {
            // Registered before looking, so a job left meanwhile wakes us.
            let notified = self.spilled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(job) = self.spill_lock().pop_front() {
                return Next::Job(job);
            }
            let receive = async { self.queue.lock().await.recv().await };
            let expire = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                job = receive => return match job {
                    Some(job) => Next::Job(job),
                    None => match self.spill_lock().pop_front() {
                        Some(job) => Next::Job(job),
                        None => Next::Closed,
                    },
                },
                () = &mut notified => continue,
                () = expire => return Next::Idle,
            }
        }
    }
}

/// One worker: one SMTP session at a time to its relay.
pub(super) async fn work(shared: Arc<Shared>, route: usize) {
    let Some(relay) = shared.relays.get(route).cloned() else {
        return;
    };
    let mut session: Open = None;
    loop {
        // The idle limit covers waiting for the queue's lock too: a worker holding a session
        // (and a connection permit) must give both up if its relay has no work for it.
        let idle = session.as_ref().map(|_| IDLE_SESSION);
        let job = match relay.next_job(idle).await {
            Next::Idle => {
                close(&shared, &relay, route, &mut session).await;
                continue;
            }
            Next::Closed => break,
            Next::Job(job) => job,
        };
        if shared.control() != Control::Run {
            close(&shared, &relay, route, &mut session).await;
            shared.release(job);
            continue;
        }
        if relay.resting(Instant::now()).is_some() {
            close(&shared, &relay, route, &mut session).await;
            let _ = shared.bounced.send(job);
            continue;
        }
        if session.is_none() {
            // Not ready yet: the job waits where a ready session can take it meanwhile.
            relay.leave(job);
            match connect_while_needed(&shared, &relay, route).await {
                Some(Ok(opened)) => {
                    if relay.revive() {
                        shared.event(Event::RouteUp { route });
                    }
                    session = Some(opened);
                }
                Some(Err(_)) if relay.resting(Instant::now()).is_some() => {
                    // Nothing reached a server: no attempt counts.
                    let left: Vec<Job> = relay.spill_lock().drain(..).collect();
                    for job in left {
                        let _ = shared.bounced.send(job);
                    }
                }
                // One connection failed while others of the relay work: they take the jobs.
                Some(Err(_)) | None => {}
            }
            continue;
        }
        carry(&shared, &relay, route, &mut session, job).await;
    }
    close(&shared, &relay, route, &mut session).await;
    let left: Vec<Job> = relay.spill_lock().drain(..).collect();
    for job in left {
        shared.release(job);
    }
}

/// Opens a session unless the run stops needing one first (a server that never greets must
/// not hold the run's end for the greeting timeout).
async fn connect_while_needed(
    shared: &Shared,
    relay: &Relay,
    route: usize,
) -> Option<Result<(Session, OwnedSemaphorePermit), ConnectError>> {
    let connecting = open_session(shared, relay, route);
    tokio::pin!(connecting);
    loop {
        tokio::select! {
            result = &mut connecting => return Some(result),
            () = tokio::time::sleep(STILL_NEEDED) => {
                if !relay.still_needed() {
                    return None;
                }
            }
        }
    }
}

async fn close(shared: &Shared, relay: &Relay, route: usize, session: &mut Open) {
    if let Some((open, permit)) = session.take() {
        open.quit().await;
        drop(permit);
        relay.open.fetch_sub(1, Ordering::SeqCst);
        shared.event(Event::Connections { route, delta: -1 });
    }
}

/// Forgets a session that can no longer be used (no QUIT on a dead socket).
fn discard(shared: &Shared, relay: &Relay, route: usize, session: &mut Open) {
    if let Some((dead, permit)) = session.take() {
        drop(dead);
        drop(permit);
        relay.open.fetch_sub(1, Ordering::SeqCst);
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
    match relay.connect(shared.timeouts).await {
        Ok(session) => {
            relay.open.fetch_add(1, Ordering::SeqCst);
            shared.event(Event::Connections { route, delta: 1 });
            Ok((session, permit))
        }
        Err(error) if !error.needs_user() && relay.open.load(Ordering::SeqCst) > 0 => {
            // Other sessions of this relay work: one connection that timed out or was dropped
            // is that connection's problem, not the relay's.
            tracing::warn!(reason = %error, "one connection to the relay failed; its other sessions go on");
            Err(error)
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

/// Builds a job's message, or records why it has none.
fn build(shared: &Shared, route: usize, job: &Job) -> Option<Message> {
    match compose_for(shared, &job.claimed) {
        Ok((from, to, data)) => Some(Message { from, to, data }),
        Err(not_built) => {
            not_built.record(shared, route, job);
            None
        }
    }
}

/// Sends `job` and, behind it, whatever jobs are at hand while the session is busy.
async fn carry(shared: &Shared, relay: &Relay, route: usize, session: &mut Open, job: Job) {
    let Some(message) = build(shared, route, &job) else {
        return;
    };
    let Some((open, _)) = session.as_mut() else {
        relay.leave(job);
        return;
    };
    let limit = shared.delivery.messages_per_connection;
    let mut handed = open.messages.saturating_add(1);
    let next = || {
        loop {
            if (limit > 0 && handed >= limit)
                || shared.control() != Control::Run
                || relay.resting(Instant::now()).is_some()
            {
                return None;
            }
            let job = relay.ready_job()?;
            if let Some(message) = build(shared, route, &job) {
                handed += 1;
                return Some((job, message));
            }
        }
    };
    let done = |job: Job, outcome: Outcome| match outcome {
        Outcome::Attempted(attempt) => {
            finish(shared, route, &job, attempt, Some(&relay.target.route));
        }
        // Nothing of it reached the server: another session (or a fresh one) takes it.
        Outcome::NotAttempted(_) => relay.leave(job),
    };
    open.send_many(job, message, next, done).await;
    let spent = open.messages;
    if !open.usable() {
        discard(shared, relay, route, session);
    } else if limit > 0 && spent >= limit {
        close(shared, relay, route, session).await;
    }
}
