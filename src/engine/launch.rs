//! One run from start to end, in two halves a reader can hold apart: [`setup`] (open the store,
//! take the campaign's run lock, import on first run, recover what a dead run left in flight, key
//! the composer, build the relays, the direct router and the writer) and [`execute`] (publish
//! progress, start the relay workers, dispatch until done, stop, flush and report).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};

use super::progress::{self, Progress, RunState};
use super::shared::{self, Control, Shared};
use super::{PUBLISH_EVERY, RunOptions, direct, dispatch, failed, run, run_lock, smtp};
use crate::campaign::{Campaign, Mode, UncertainPolicy};
use crate::compose::Composer;
use crate::store::{CampaignId, Store, Writer, WriterThread};

/// Runs `campaign` to its end and returns the last progress.
pub(super) async fn run_campaign(
    campaign: Campaign,
    db: PathBuf,
    control: watch::Receiver<Control>,
    progress_tx: &watch::Sender<Progress>,
    options: &RunOptions,
) -> Progress {
    match setup(campaign, db, control, options).await {
        // The run lock inside `ready` is held until `execute` returns: until then no other run
        // of the campaign can start.
        Ok(ready) => execute(ready, progress_tx, options).await,
        Err(reason) => failed(reason),
    }
}

/// Everything a run needs before its first claim.
struct Ready {
    shared: Arc<Shared>,
    store: Arc<Mutex<Store>>,
    direct: Option<Arc<direct::Direct>>,
    senders: Vec<mpsc::Sender<super::job::Job>>,
    writer: Writer,
    writer_thread: WriterThread,
    counts: crate::delivery::Counts,
    recovered: u64,
    events: mpsc::UnboundedReceiver<progress::Event>,
    bounced: mpsc::UnboundedReceiver<super::job::Job>,
    _run_lock: run_lock::RunLock,
}

async fn setup(
    campaign: Campaign,
    db: PathBuf,
    control: watch::Receiver<Control>,
    options: &RunOptions,
) -> Result<Ready, String> {
    // Opening, importing, recovering and reading keys touch the disk: keep them off the async
    // threads.
    let opened = {
        let campaign = campaign.clone();
        let db = db.clone();
        tokio::task::spawn_blocking(move || open_run(&campaign, &db)).await
    };
    let Opened {
        store,
        campaign_id,
        recovered,
        run_lock,
        composer,
        counts,
    } = opened.map_err(|error| error.to_string())??;
    let from = composer_sender(&campaign)?;
    // Direct mode uses no relay even when the file lists some (they may be kept for later).
    let relay_campaign = if campaign.delivery.mode == Mode::Direct {
        Campaign {
            relays: Vec::new(),
            ..campaign.clone()
        }
    } else {
        campaign.clone()
    };
    let (relays, senders) =
        shared::make_relays(&relay_campaign, options.passwords.as_ref(), options.front)?;
    let direct = match campaign.delivery.mode {
        Mode::Relay => None,
        _ => Some(Arc::new(direct::Direct::new(&campaign, relays.len(), &db)?)),
    };
    let (writer, writer_thread) = Writer::spawn(&db).map_err(|error| error.to_string())?;
    let (events_tx, events) = mpsc::unbounded_channel();
    let (bounced_tx, bounced) = mpsc::unbounded_channel();
    let delivery = campaign.delivery.clone();
    let shared = Arc::new(Shared {
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
        events: events_tx,
        control,
        relays,
        outstanding: AtomicUsize::new(0),
        bounced: bounced_tx,
        dead_address: Arc::clone(&options.dead_address),
    });
    Ok(Ready {
        shared,
        store: Arc::new(Mutex::new(store)),
        direct,
        senders,
        writer,
        writer_thread,
        counts,
        recovered,
        events,
        bounced,
        _run_lock: run_lock,
    })
}

/// What the blocking half of the setup hands back.
struct Opened {
    store: Store,
    campaign_id: CampaignId,
    recovered: u64,
    run_lock: run_lock::RunLock,
    composer: Composer,
    counts: crate::delivery::Counts,
}

/// Opens the store, takes the campaign's run lock, imports the list on first run, recovers rows
/// a previous run left in flight and keys the composer with the database's secrets.
fn open_run(campaign: &Campaign, db: &Path) -> Result<Opened, String> {
    let text = |error: crate::store::StoreError| error.to_string();
    let mut store = Store::open(db).map_err(text)?;
    let id = crate::identity::campaign_id(&mut store, campaign).map_err(text)?;
    // Before anything else touches the rows: while another run lives, its rows in `sending`
    // are in flight, not left over (issue #12). The OS drops the lock when a run dies.
    let run_lock = run_lock::RunLock::acquire(db, id).map_err(|error| error.to_string())?;
    crate::import::import_if_empty(&mut store, campaign).map_err(|error| error.to_string())?;
    let resend = campaign.delivery.uncertain == UncertainPolicy::Resend;
    let recovered = store.recover_in_flight(id, resend).map_err(text)?;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            "rows were left in sending by a run that did not finish; they are uncertain"
        );
    }
    let mut composer = Composer::new(campaign).map_err(|problems| {
        let list = problems.iter().map(ToString::to_string).collect::<Vec<_>>();
        format!("the message cannot be built: {}", list.join("; "))
    })?;
    // Signed unsubscribe links and VERP (issues #13, #15), keyed as the preview keys them.
    crate::identity::key_composer(&mut composer, &mut store, campaign, id).map_err(text)?;
    let counts = store.counts(id).map_err(text)?;
    Ok(Opened {
        store,
        campaign_id: id,
        recovered,
        run_lock,
        composer,
        counts,
    })
}

/// Runs a set-up run: progress, workers, the dispatcher, then an orderly end.
async fn execute(
    ready: Ready,
    progress_tx: &watch::Sender<Progress>,
    options: &RunOptions,
) -> Progress {
    let Ready {
        shared,
        store,
        direct,
        senders,
        writer,
        writer_thread,
        counts,
        recovered,
        events,
        bounced,
        _run_lock,
    } = ready;
    let campaign_id = shared.campaign_id;
    let names = shared
        .relays
        .iter()
        .map(|relay| relay.target.route.clone())
        .collect();
    let mut aggregator = progress::Aggregator::new(counts, names, recovered);
    aggregator.apply(progress::Event::State(RunState::Running));
    let publisher = publish(aggregator, events, progress_tx, options);
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
        bounced,
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

/// The aggregator folds events into progress and publishes at most ten times a second, until
/// every sender of events is gone; it hands the aggregator back for the last snapshot.
fn publish(
    mut aggregator: progress::Aggregator,
    mut events: mpsc::UnboundedReceiver<progress::Event>,
    progress_tx: &watch::Sender<Progress>,
    options: &RunOptions,
) -> tokio::task::JoinHandle<progress::Aggregator> {
    let progress_tx = progress_tx.clone();
    let wake = Arc::clone(&options.wake);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PUBLISH_EVERY);
        loop {
            tokio::select! {
                event = events.recv() => match event {
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
