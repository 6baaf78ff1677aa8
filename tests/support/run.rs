//! Driving the engine from integration tests: start a campaign's run, wait for its end or for a
//! state (failing the test instead of hanging), and read rows and counts back from the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use herald::campaign::Campaign;
use herald::engine::{Engine, Progress, RunHandle, RunOptions};
use herald::store::{Counts, RecipientRef, RecipientRow, Store};

use super::campaign::CampaignDir;

/// How long a test waits for a run before failing.
pub const LIMIT: Duration = Duration::from_secs(60);

pub fn start(engine: &Engine, dir: &CampaignDir) -> RunHandle {
    let campaign = Campaign::load(&dir.campaign).expect("campaign loads");
    engine.start(campaign, &dir.db, RunOptions::default())
}

/// Waits for the run to end and returns its last progress.
pub fn finish(run: &mut RunHandle) -> Progress {
    let deadline = Instant::now() + LIMIT;
    while !run.is_over() {
        assert!(
            Instant::now() < deadline,
            "run did not end: {:?}",
            run.progress()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    run.wait()
}

/// Waits until the run's progress satisfies `test`.
pub fn wait_for(run: &RunHandle, what: &str, test: impl Fn(&Progress) -> bool) -> Progress {
    let deadline = Instant::now() + LIMIT;
    loop {
        let progress = run.progress();
        if test(&progress) {
            return progress;
        }
        assert!(Instant::now() < deadline, "never saw {what}: {progress:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn counts(dir: &CampaignDir) -> Counts {
    let mut store = Store::open(&dir.db).expect("db");
    let campaign = Campaign::load(&dir.campaign).expect("campaign");
    let id = herald::identity::campaign_id(&mut store, &campaign).expect("id");
    store.counts(id).expect("counts")
}

pub fn row(dir: &CampaignDir, email: &str) -> RecipientRow {
    let mut store = Store::open(&dir.db).expect("db");
    let campaign = Campaign::load(&dir.campaign).expect("campaign");
    let id = herald::identity::campaign_id(&mut store, &campaign).expect("id");
    store
        .find_recipient(id, &RecipientRef::Email(email.to_string()))
        .expect("query")
        .expect("row exists")
}
