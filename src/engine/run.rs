//! The relay workers of a run: each holds one SMTP session at a time to its relay, takes jobs
//! from the relay's queue (fed by the dispatcher, `dispatch.rs`), sends them and records the
//! outcome. A relay that refuses connections, TLS or AUTH is rested and the job goes back to
//! the dispatcher with no attempt spent. Knows nothing of direct delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;

use super::job::{Job, compose_for, finish};
use super::progress::Event;
use super::shared::{Control, Relay, Shared};
use super::smtp::{ConnectError, Session};

/// How long an idle session stays open before it is closed (QUIT).
const IDLE_SESSION: Duration = Duration::from_secs(2);

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

async fn deliver(
    shared: &Shared,
    relay: &Relay,
    route: usize,
    session: &mut Option<(Session, OwnedSemaphorePermit)>,
    job: Job,
) {
    let (from, to, bytes) = match compose_for(shared, &job.claimed) {
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
        let offer = open.send(&from, &to, &bytes).await;
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
