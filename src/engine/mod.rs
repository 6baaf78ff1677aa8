//! The engine: everything that turns a campaign into deliveries. Preparation (import, check) is
//! synchronous; sending runs on the engine's own tokio runtime, is driven by commands on a
//! [`RunHandle`] and reports [`Progress`] on a watch channel, waking its watcher through a
//! callback. The only async code in Herald. Knows nothing of the window or the terminal.

mod direct;
mod direct_policy;
mod dispatch;
mod dns;
mod job;
mod outcome;
pub mod prepare;
mod progress;
mod run;
mod run_lock;
pub mod secrets;
pub mod service;
mod shared;
pub mod smtp;
pub mod suppression_file;
pub mod test_send;
mod throttle;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};

pub use outcome::enhanced_status;
pub use prepare::{
    CheckReport, ImportReport, PrepareError, campaign_id, campaign_key, check, import,
};
pub use progress::{ErrorEntry, Progress, RouteProgress, RunState};
pub use shared::Control;

use crate::campaign::{Campaign, Mode, UncertainPolicy};
use crate::compose::Composer;
use crate::store::{Store, Writer};

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

/// Options of one run.
#[derive(Clone)]
pub struct RunOptions {
    /// Looks up a relay password by the name in `password_env` (the environment, then the
    /// keyring, by default).
    pub passwords: Passwords,
    pub wake: Wake,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            passwords: Arc::new(secrets::lookup),
            wake: Arc::new(|| {}),
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
                run_campaign(campaign, db, control_rx, &progress_tx, &options).await;
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

async fn run_campaign(
    campaign: Campaign,
    db: PathBuf,
    control: watch::Receiver<Control>,
    progress_tx: &watch::Sender<Progress>,
    options: &RunOptions,
) -> Progress {
    // Opening, importing and recovering touch the disk: keep them off the async threads.
    let prepared = {
        let campaign = campaign.clone();
        let db = db.clone();
        tokio::task::spawn_blocking(move || prepare_run(&campaign, &db)).await
    };
    // Held to the end of this function: until then no other run of the campaign can start.
    let (store, campaign_id, recovered, _run_lock, link_key) = match prepared {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(reason)) => return failed(reason),
        Err(error) => return failed(error.to_string()),
    };
    let mut composer = match Composer::new(&campaign) {
        Ok(mut composer) => {
            composer.sign_links(link_key, campaign_id);
            composer
        }
        Err(problems) => {
            let list = problems.iter().map(ToString::to_string).collect::<Vec<_>>();
            return failed(format!("the message cannot be built: {}", list.join("; ")));
        }
    };
    // VERP (issue #13): each message's envelope sender names its recipient; its Message-ID
    // is keyed, so a report returning it proves which message it is about (issue #21).
    let feedback = {
        let mut store = store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        prepare::key_message_ids(&mut composer, &mut store, campaign_id)
            .and_then(|()| prepare::feedback_for(&mut store, &campaign, campaign_id))
    };
    match feedback {
        Ok(Some(feedback)) => composer.set_feedback(feedback),
        Ok(None) => {}
        Err(error) => return failed(error.to_string()),
    }
    let from = match composer_sender(&campaign) {
        Ok(from) => from,
        Err(reason) => return failed(reason),
    };
    // Direct mode uses no relay even when the file lists some (they may be kept for later).
    let relay_campaign = if campaign.delivery.mode == Mode::Direct {
        Campaign {
            relays: Vec::new(),
            ..campaign.clone()
        }
    } else {
        campaign.clone()
    };
    let (relays, senders) = match shared::make_relays(&relay_campaign, options.passwords.as_ref()) {
        Ok(made) => made,
        Err(reason) => return failed(reason),
    };
    let direct = if campaign.delivery.mode == Mode::Relay {
        None
    } else {
        match direct::Direct::new(&campaign, relays.len()) {
            Ok(direct) => Some(Arc::new(direct)),
            Err(reason) => return failed(reason),
        }
    };
    let (writer, writer_thread) = match Writer::spawn(&db) {
        Ok(made) => made,
        Err(error) => return failed(error.to_string()),
    };
    let counts = {
        let store = store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        store.counts(campaign_id)
    };
    let counts = match counts {
        Ok(counts) => counts,
        Err(error) => return failed(error.to_string()),
    };
    let (events, mut event_rx) = mpsc::unbounded_channel();
    let (bounced_tx, bounced_rx) = mpsc::unbounded_channel();
    let delivery = campaign.delivery.clone();
    let shared = Arc::new(shared::Shared {
        campaign_id,
        timeouts: smtp::Timeouts {
            connect: Duration::from_secs(u64::from(delivery.connect_timeout_secs)),
            command: Duration::from_secs(u64::from(delivery.command_timeout_secs)),
            data: Duration::from_secs(u64::from(delivery.data_timeout_secs)),
        },
        connections: Arc::new(Semaphore::new(usize::from(delivery.connections))),
        delivery,
        composer,
        from,
        writer: writer.clone(),
        events,
        control,
        relays,
        outstanding: AtomicUsize::new(0),
        bounced: bounced_tx,
    });

    // The aggregator folds events into progress and publishes at most ten times a second.
    let names = shared
        .relays
        .iter()
        .map(|relay| relay.target.route.clone())
        .collect();
    let mut aggregator = progress::Aggregator::new(counts, names, recovered);
    aggregator.apply(progress::Event::State(RunState::Running));
    let publisher = {
        let progress_tx = progress_tx.clone();
        let wake = Arc::clone(&options.wake);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PUBLISH_EVERY);
            loop {
                tokio::select! {
                    event = event_rx.recv() => match event {
                        Some(event) => aggregator.apply(event),
                        None => break,
                    },
                    _ = tick.tick() => {
                        progress_tx.send_replace(aggregator.snapshot());
                        wake();
                    }
                }
            }
            aggregator
        })
    };

    let mut workers = Vec::new();
    for (route, relay) in shared.relays.iter().enumerate() {
        for _ in 0..relay.workers {
            workers.push(tokio::spawn(run::work(Arc::clone(&shared), route)));
        }
    }
    let outcome = dispatch::dispatch(
        Arc::clone(&shared),
        direct.clone(),
        Arc::clone(&store),
        senders,
        bounced_rx,
    )
    .await;
    if outcome != RunState::Finished {
        shared.event(progress::Event::State(RunState::Stopping));
    }
    if let Some(direct) = &direct {
        direct.shut_down(&shared).await;
    }
    for worker in workers {
        let _ = worker.await;
    }
    drop(shared);
    let final_state = {
        let store = Arc::clone(&store);
        tokio::task::spawn_blocking(move || {
            let flushed = writer.flush();
            drop(writer);
            writer_thread.join();
            let counts = store
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .counts(campaign_id);
            (flushed, counts)
        })
        .await
    };
    let mut aggregator = match publisher.await {
        Ok(aggregator) => aggregator,
        Err(error) => return failed(error.to_string()),
    };
    let mut last = aggregator.snapshot();
    last.state = outcome;
    match final_state {
        Ok((flushed, counts)) => {
            if let Ok(counts) = counts {
                last.counts = counts;
            }
            if let Err(error) = flushed
                && !matches!(last.state, RunState::Failed { .. })
            {
                last.state = RunState::Failed {
                    reason: error.to_string(),
                };
            }
        }
        Err(error) => {
            last.state = RunState::Failed {
                reason: error.to_string(),
            };
        }
    }
    last
}

/// What a run starts from: its store, its campaign, how many rows it recovered as in flight,
/// the lock that keeps other runs of the campaign out while it lives, and the unsubscribe
/// links' key.
type Prepared = (Arc<Mutex<Store>>, i64, u64, run_lock::RunLock, [u8; 32]);

/// Opens the store, takes the campaign's run lock, imports the list on first run and recovers
/// rows a previous run left in flight.
fn prepare_run(campaign: &Campaign, db: &Path) -> Result<Prepared, String> {
    let mut store = Store::open(db).map_err(|error| error.to_string())?;
    let id = campaign_id(&mut store, campaign).map_err(|error| error.to_string())?;
    // Before anything else touches the rows: while another run lives, its rows in `sending`
    // are in flight, not left over (issue #12). The OS drops the lock when a run dies.
    let lock = run_lock::RunLock::acquire(db, id).map_err(|error| error.to_string())?;
    let counts = store.counts(id).map_err(|error| error.to_string())?;
    if counts.total() == 0 {
        import(&mut store, campaign).map_err(|error| error.to_string())?;
    }
    let resend = campaign.delivery.uncertain == UncertainPolicy::Resend;
    let recovered = store
        .recover_in_flight(id, resend)
        .map_err(|error| error.to_string())?;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            "rows were left in sending by a run that did not finish; they are uncertain"
        );
    }
    let secret = store
        .secret(crate::token::UNSUBSCRIBE_KEY)
        .map_err(|error| error.to_string())?;
    Ok((Arc::new(Mutex::new(store)), id, recovered, lock, secret))
}

fn composer_sender(campaign: &Campaign) -> Result<smtp::EnvelopeAddress, String> {
    let from = campaign.message.from.trim();
    let address = match (from.rfind('<'), from.rfind('>')) {
        (Some(open), Some(close)) if open < close => from.get(open + 1..close).unwrap_or(from),
        _ => from,
    };
    smtp::envelope_address(address.trim())
        .map_err(|reason| format!("the sender address \"{address}\" is not valid: {reason}"))
}
