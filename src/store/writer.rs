//! The batched writer: one thread owning its own connection, committing the engine's transitions
//! in one transaction per batch (at least every 100 ms or every 1,000 transitions). Batching is
//! what lets thousands of messages a second be tracked one by one; the bound on a batch is what
//! bounds the duplicates a crash can cause.
//!
//! Its commits are the one thing in the store left lazy on power loss (`synchronous = NORMAL`):
//! a lost `sent` leaves the row `sending`, claimed by a commit that was synced before the
//! message left, and the next run names it `uncertain`. The next claim's fsync (or a checkpoint)
//! makes the writer's earlier commits durable along with it (issue #24), and the writer syncs
//! the WAL itself once when it ends, so a finished run's last outcomes do not wait for either.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Store, StoreError, Transition, apply_in, now_ms};

const MAX_BATCH: usize = 1_000;
const MAX_DELAY: Duration = Duration::from_millis(100);

enum Command {
    Write(Transition),
    Flush(Sender<Result<(), String>>),
}

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("the state database stopped accepting writes: {0}")]
    Failed(String),
}

/// Cheap to clone; every clone feeds the same writer thread.
#[derive(Clone)]
pub struct Writer {
    commands: Sender<Command>,
    failure: Arc<Mutex<Option<String>>>,
}

pub struct WriterThread {
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Opens a second connection to the database at `path` and starts the writer thread.
    pub fn spawn(path: &Path) -> Result<(Writer, WriterThread), StoreError> {
        let store = Store::open(path)?;
        store.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let (commands, receiver) = mpsc::channel();
        let failure = Arc::new(Mutex::new(None));
        let seen = Arc::clone(&failure);
        let thread = std::thread::Builder::new()
            .name("herald-store-writer".into())
            .spawn(move || {
                let path = store.path.clone();
                run(store, receiver, &seen);
                sync_wal(&path);
            })
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Ok((
            Writer { commands, failure },
            WriterThread {
                thread: Some(thread),
            },
        ))
    }

    /// Queues a transition; it is committed with the next batch.
    pub fn write(&self, transition: Transition) -> Result<(), WriterError> {
        self.commands
            .send(Command::Write(transition))
            .map_err(|_| WriterError::Failed("the writer has stopped".into()))
    }

    /// Why the writer stopped accepting writes, if it did (disk full, database gone).
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .map(|failure| failure.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Commits everything queued so far and waits for it. Blocking: call it off async threads
    /// (or through `spawn_blocking`).
    pub fn flush(&self) -> Result<(), WriterError> {
        let (done, wait) = mpsc::channel();
        self.commands
            .send(Command::Flush(done))
            .map_err(|_| WriterError::Failed("the writer has stopped".into()))?;
        match wait.recv() {
            Ok(result) => result.map_err(WriterError::Failed),
            Err(_) => Err(WriterError::Failed("the writer has stopped".into())),
        }
    }
}

impl WriterThread {
    /// Waits for the thread to commit what it has and end; every `Writer` must be dropped first.
    pub fn join(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(mut store: Store, commands: Receiver<Command>, shared_failure: &Mutex<Option<String>>) {
    let mut batch: Vec<Transition> = Vec::with_capacity(MAX_BATCH);
    let mut waiting: Vec<Sender<Result<(), String>>> = Vec::new();
    let mut failure: Option<String> = None;
    let mut oldest: Option<Instant> = None;
    loop {
        let timeout = match oldest {
            Some(since) => MAX_DELAY.saturating_sub(since.elapsed()),
            None => Duration::from_secs(3_600),
        };
        let mut disconnected = false;
        match commands.recv_timeout(timeout) {
            Ok(Command::Write(transition)) => {
                if failure.is_none() {
                    oldest.get_or_insert_with(Instant::now);
                    batch.push(transition);
                }
            }
            Ok(Command::Flush(done)) => waiting.push(done),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => disconnected = true,
        }
        let due = oldest.is_some_and(|since| since.elapsed() >= MAX_DELAY);
        if !batch.is_empty()
            && (due || batch.len() >= MAX_BATCH || !waiting.is_empty() || disconnected)
        {
            if let Err(error) = commit(&mut store, &batch) {
                tracing::error!(%error, rows = batch.len(), "could not record delivery states");
                failure = Some(error.to_string());
                if let Ok(mut shared) = shared_failure.lock() {
                    *shared = failure.clone();
                }
            }
            batch.clear();
            oldest = None;
        }
        for done in waiting.drain(..) {
            let _ = done.send(match &failure {
                Some(error) => Err(error.clone()),
                None => Ok(()),
            });
        }
        if disconnected {
            return;
        }
    }
}

/// Syncs the WAL of the database at `path` (a file of its own next to it, `-wal`), making every
/// commit so far durable. A WAL that is gone was checkpointed into the database, synced.
fn sync_wal(path: &Path) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    match std::fs::File::open(&wal).and_then(|file| file.sync_data()) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => tracing::warn!(%error, "could not sync the last delivery states to disk"),
    }
}

fn commit(store: &mut Store, batch: &[Transition]) -> Result<(), StoreError> {
    let tx = store.conn.transaction()?;
    apply_in(&tx, batch, now_ms())?;
    tx.commit()?;
    Ok(())
}
