//! The sending engine: everything that turns a campaign into deliveries, and nothing else.
//! Sending runs on the engine's own tokio runtime, is driven by commands on a [`RunHandle`] and
//! reports [`Progress`] on a watch channel, waking its watcher through a callback. Knows nothing
//! of the window, the terminal or the application layer above it (`app`), which decides when to
//! run; the mailbox reader, the unsubscribe endpoint and the HTTP client are async too, each on
//! a runtime of its own.

mod direct;
mod direct_policy;
mod direct_sts;
mod dispatch;
pub mod dns;
mod job;
mod launch;
mod outcome;
mod progress;
mod run;
mod run_lock;
mod shared;
pub mod smtp;
pub mod test_send;
mod throttle;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

pub use outcome::enhanced_status;
pub use progress::{ErrorEntry, Progress, RouteProgress, RunState};
pub use shared::{Control, relay_credentials};

use crate::campaign::Campaign;

/// Called when there is new progress to show (the window passes `ctx.request_repaint`).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// How often progress is published at most.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// The engine's runtime. One per process; runs any number of campaigns.
pub struct Engine {
    runtime: tokio::runtime::Runtime,
}

/// Looks up a secret by name.
pub type Passwords = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Whether a server's permanent refusal says the address is dead (issue #21): given by the
/// caller, since the classes are the report reader's (`inbox`), which the engine does not use.
pub type DeadAddress = Arc<dyn Fn(&crate::delivery::Reply) -> bool + Send + Sync>;

/// Options of one run.
#[derive(Clone)]
pub struct RunOptions {
    /// Looks up a relay password by the name in `password_env` (the environment, then the
    /// keyring, by default).
    pub passwords: Passwords,
    pub wake: Wake,
    /// Refusals that put the address on the global suppression list (none by default).
    pub dead_address: DeadAddress,
    /// Who reads the run's pauses: a pause that asks for a sign-in names `herald signin` to
    /// the CLI and the Sign in button to the window.
    pub front: crate::oauth2::Front,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            passwords: Arc::new(crate::credentials::lookup),
            wake: Arc::new(|| {}),
            dead_address: Arc::new(|_| false),
            front: crate::oauth2::Front::Cli,
        }
    }
}

/// Controls one run and watches its progress.
pub struct RunHandle {
    control: watch::Sender<Control>,
    progress: watch::Receiver<Progress>,
    done: Option<std::sync::mpsc::Receiver<()>>,
    interrupted: Arc<AtomicBool>,
}

impl RunHandle {
    pub fn pause(&self) {
        self.control.send_replace(Control::Pause);
    }

    pub fn resume(&self) {
        self.control.send_replace(Control::Run);
    }

    /// Graceful stop: messages in flight finish, the rest goes back to pending, state is flushed.
    pub fn stop(&self) {
        self.control.send_replace(Control::Stop);
    }

    /// The latest progress.
    pub fn progress(&self) -> Progress {
        self.progress.borrow().clone()
    }

    /// A receiver of every progress update.
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// Whether the run stopped because of SIGINT/SIGTERM.
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Blocks until the run is over and returns its last progress. Not for async contexts.
    pub fn wait(&mut self) -> Progress {
        if let Some(done) = self.done.take() {
            let _ = done.recv();
        }
        self.progress()
    }

    pub fn is_over(&self) -> bool {
        self.progress.borrow().state.is_over()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("could not start the engine's threads: {0}")]
    Runtime(std::io::Error),
}

impl Engine {
    pub fn new() -> Result<Engine, EngineError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("herald-engine")
            .enable_all()
            .build()
            .map_err(EngineError::Runtime)?;
        Ok(Engine { runtime })
    }

    /// Starts sending `campaign`, with its state in the database at `db`. Imports the recipient
    /// list first if the campaign has none yet.
    pub fn start(&self, campaign: Campaign, db: &Path, options: RunOptions) -> RunHandle {
        let (control, control_rx) = watch::channel(Control::Run);
        let (progress_tx, progress) = watch::channel(Progress::default());
        let (done_tx, done) = std::sync::mpsc::channel();
        let db = db.to_path_buf();
        self.runtime.spawn(async move {
            let span = tracing::info_span!("campaign", name = %campaign.name);
            let _entered = span.enter();
            let final_progress =
                launch::run_campaign(campaign, db, control_rx, &progress_tx, &options).await;
            progress_tx.send_replace(final_progress);
            (options.wake)();
            let _ = done_tx.send(());
        });
        RunHandle {
            control,
            progress,
            done: Some(done),
            interrupted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Stops `run` gracefully on SIGINT or SIGTERM, and marks it interrupted.
    pub fn stop_on_signals(&self, run: &RunHandle) {
        let control = run.control.clone();
        let interrupted = Arc::clone(&run.interrupted);
        self.runtime.spawn(async move {
            wait_for_signal().await;
            interrupted.store(true, Ordering::SeqCst);
            control.send_replace(Control::Stop);
        });
    }

    /// Runs a future on the engine's runtime and waits for it (for one-off jobs such as a test
    /// send). Not for async contexts.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

fn failed(reason: impl Into<String>) -> Progress {
    Progress {
        state: RunState::Failed {
            reason: reason.into(),
        },
        ..Progress::default()
    }
}
