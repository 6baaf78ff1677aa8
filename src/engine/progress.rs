//! What a run reports: plain data the window and the terminal draw, published at most ten times
//! a second. Also the aggregator that folds the workers' events into it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::store::{Counts, Reply, State};

/// Where a run stands.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    Starting,
    Running,
    /// The periodic sleep: all sending rests.
    Resting {
        resumes_in_secs: u64,
    },
    /// Nothing can be sent right now, and the run retries by itself (deferred recipients not
    /// yet due, every relay unreachable).
    Waiting {
        reason: String,
        retry_in_secs: u64,
    },
    /// Paused by the user, or by the run itself for a reason only the user can fix (wrong
    /// password, TLS refused): then `needs_user` is true and `reason` says what to do.
    Paused {
        reason: Option<String>,
        needs_user: bool,
    },
    Stopping,
    /// Nothing left to do: every recipient is sent, failed or skipped (or held uncertain).
    Finished,
    /// Stopped before the end; the next run resumes.
    Stopped,
    /// The run could not go on (database unwritable, campaign broken).
    Failed {
        reason: String,
    },
}

impl RunState {
    pub fn is_over(&self) -> bool {
        matches!(
            self,
            RunState::Finished | RunState::Stopped | RunState::Failed { .. }
        )
    }

    pub fn label(&self) -> String {
        match self {
            RunState::Starting => "starting".into(),
            RunState::Running => "sending".into(),
            RunState::Resting { resumes_in_secs } => {
                format!("resting, resumes in {resumes_in_secs} s")
            }
            RunState::Waiting {
                reason,
                retry_in_secs,
            } => format!("waiting: {reason} (next try in {retry_in_secs} s)"),
            RunState::Paused { reason: None, .. } => "paused".into(),
            RunState::Paused {
                reason: Some(reason),
                ..
            } => format!("paused: {reason}"),
            RunState::Stopping => "stopping".into(),
            RunState::Finished => "finished".into(),
            RunState::Stopped => "stopped".into(),
            RunState::Failed { reason } => format!("failed: {reason}"),
        }
    }
}

/// One route's figures (a relay, or an MX host in direct mode).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteProgress {
    pub name: String,
    pub sent: u64,
    pub deferred: u64,
    pub failed: u64,
    pub uncertain: u64,
    pub connections: u32,
    /// Why the route is resting, while it is.
    pub down: Option<String>,
}

/// A recent failure, for the error log.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorEntry {
    pub email: String,
    pub route: String,
    pub state: State,
    pub reply: Reply,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub state: RunState,
    pub counts: Counts,
    /// Messages accepted per second over the last few seconds.
    pub rate_per_sec: f64,
    pub routes: Vec<RouteProgress>,
    /// Newest last; at most [`RECENT_ERRORS`].
    pub recent_errors: Vec<ErrorEntry>,
    /// Rows found in `sending` at start (the previous run ended without finishing them).
    pub recovered_in_flight: u64,
    /// Messages whose delivery could not be known, sent again under `uncertain = "resend"`.
    pub uncertain_resent: u64,
    pub elapsed_secs: u64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            state: RunState::Starting,
            counts: Counts::default(),
            rate_per_sec: 0.0,
            routes: Vec::new(),
            recent_errors: Vec::new(),
            recovered_in_flight: 0,
            uncertain_resent: 0,
            elapsed_secs: 0,
        }
    }
}

impl Progress {
    /// Seconds until nothing is pending at the current rate, when it can be told.
    pub fn eta_secs(&self) -> Option<u64> {
        let left = self.counts.pending + self.counts.deferred + self.counts.sending;
        if left == 0 {
            return Some(0);
        }
        (self.rate_per_sec > 0.1).then(|| (left as f64 / self.rate_per_sec).ceil() as u64)
    }
}

pub const RECENT_ERRORS: usize = 100;
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// What workers and the dispatcher tell the aggregator.
#[derive(Debug)]
pub enum Event {
    Claimed {
        from: State,
    },
    Outcome {
        route: usize,
        email: String,
        to: State,
        uncertain: bool,
        reply: Option<Reply>,
    },
    Released,
    RouteDown {
        route: usize,
        reason: String,
    },
    RouteUp {
        route: usize,
    },
    Connections {
        route: usize,
        delta: i32,
    },
    /// A route that appears during the run (a destination domain in direct mode).
    NewRoute {
        route: usize,
        name: String,
    },
    State(RunState),
}

/// Folds events into a [`Progress`].
pub struct Aggregator {
    pub progress: Progress,
    started: Instant,
    accepted: VecDeque<Instant>,
    recent: VecDeque<ErrorEntry>,
}

impl Aggregator {
    pub fn new(counts: Counts, routes: Vec<String>, recovered: u64) -> Aggregator {
        Aggregator {
            progress: Progress {
                counts,
                routes: routes
                    .into_iter()
                    .map(|name| RouteProgress {
                        name,
                        ..RouteProgress::default()
                    })
                    .collect(),
                recovered_in_flight: recovered,
                ..Progress::default()
            },
            started: Instant::now(),
            accepted: VecDeque::new(),
            recent: VecDeque::new(),
        }
    }

    pub fn apply(&mut self, event: Event) {
        let p = &mut self.progress;
        match event {
            Event::Claimed { from } => {
                let slot = p.counts.slot(from);
                *slot = slot.saturating_sub(1);
                p.counts.sending += 1;
            }
            Event::Released => {
                p.counts.sending = p.counts.sending.saturating_sub(1);
                p.counts.pending += 1;
            }
            Event::Outcome {
                route,
                email,
                to,
                uncertain,
                reply,
            } => {
                p.counts.sending = p.counts.sending.saturating_sub(1);
                *p.counts.slot(to) += 1;
                if uncertain && to == State::Deferred {
                    p.uncertain_resent += 1;
                }
                if let Some(figures) = p.routes.get_mut(route) {
                    match to {
                        _ if uncertain => figures.uncertain += 1,
                        State::Sent => figures.sent += 1,
                        State::Deferred => figures.deferred += 1,
                        State::Failed => figures.failed += 1,
                        _ => {}
                    }
                }
                if to == State::Sent {
                    self.accepted.push_back(Instant::now());
                } else if let Some(reply) = reply {
                    let name = p
                        .routes
                        .get(route)
                        .map(|r| r.name.clone())
                        .unwrap_or_default();
                    self.recent.push_back(ErrorEntry {
                        email,
                        route: name,
                        state: if uncertain { State::Uncertain } else { to },
                        reply,
                    });
                    while self.recent.len() > RECENT_ERRORS {
                        self.recent.pop_front();
                    }
                }
            }
            Event::RouteDown { route, reason } => {
                if let Some(figures) = p.routes.get_mut(route) {
                    figures.down = Some(reason);
                }
            }
            Event::RouteUp { route } => {
                if let Some(figures) = p.routes.get_mut(route) {
                    figures.down = None;
                }
            }
            Event::Connections { route, delta } => {
                if let Some(figures) = p.routes.get_mut(route) {
                    figures.connections = figures.connections.saturating_add_signed(delta);
                }
            }
            Event::NewRoute { route, name } => {
                if p.routes.len() <= route {
                    p.routes.resize_with(route + 1, RouteProgress::default);
                }
                if let Some(figures) = p.routes.get_mut(route) {
                    figures.name = name;
                }
            }
            Event::State(state) => p.state = state,
        }
    }

    /// Brings time-based figures up to date and returns the snapshot to publish.
    pub fn snapshot(&mut self) -> Progress {
        let now = Instant::now();
        while self
            .accepted
            .front()
            .is_some_and(|at| now.duration_since(*at) > RATE_WINDOW)
        {
            self.accepted.pop_front();
        }
        let window = now
            .duration_since(self.started)
            .min(RATE_WINDOW)
            .as_secs_f64()
            .max(0.5);
        self.progress.rate_per_sec = self.accepted.len() as f64 / window;
        self.progress.elapsed_secs = now.duration_since(self.started).as_secs();
        self.progress.recent_errors = self.recent.iter().cloned().collect();
        self.progress.clone()
    }
}
