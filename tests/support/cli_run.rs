//! Running the real `herald` binary from integration tests and reading the state it left: one
//! command with a time limit (killed if it runs over), its exit code and output; status as JSON;
//! a recipient's row; the message Herald's own composer builds for a recipient (what the binary
//! sent, up to the Date header and MIME boundaries). Test-only.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use herald::campaign::Campaign;
use herald::compose::{Composer, RecipientData};
use herald::store::{RecipientRef, RecipientRow, Store};

/// What one run of the binary did.
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub fn assert_code(&self, expected: i32) -> &Ran {
        assert_eq!(
            self.code,
            Some(expected),
            "expected exit code {expected}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }
}

pub fn herald_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command.env_remove("HERALD_LOG").env_remove("HERALD_DB");
    command
}

/// Runs `herald ARGS... CAMPAIGN --db DB` with extra environment variables, for at most
/// `limit`.
pub fn herald(
    args: &[&str],
    campaign: &Path,
    db: &Path,
    env: &[(&str, &str)],
    limit: Duration,
) -> Ran {
    let mut command = herald_command();
    command.args(args).arg(campaign).arg("--db").arg(db);
    for (key, value) in env {
        command.env(key, value);
    }
    run(command, limit)
}

/// Runs `command` to the end, killing it (by its pid) after `limit`.
pub fn run(mut command: Command, limit: Duration) -> Ran {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn herald");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "herald ran longer than {limit:?} and was killed\n--- stderr:\n{}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// `herald status --json`.
pub fn status(campaign: &Path, db: &Path) -> serde_json::Value {
    let ran = herald(
        &["status", "--json"],
        campaign,
        db,
        &[],
        Duration::from_secs(60),
    );
    ran.assert_code(0);
    serde_json::from_str(&ran.stdout).expect("status JSON")
}

/// The row of `email` in the campaign's state.
pub fn row(campaign: &Path, db: &Path, email: &str) -> RecipientRow {
    let mut store = Store::open(db).expect("db");
    let campaign = Campaign::load_for_reading(campaign).expect("campaign");
    let id = herald::identity::campaign_id(&mut store, &campaign).expect("id");
    store
        .find_recipient(id, &RecipientRef::Email(email.to_string()))
        .expect("query")
        .expect("row exists")
}

/// The message Herald's composer builds for `email` (its Date is now, its boundaries new),
/// keyed as a run keys it.
pub fn composed_for(campaign: &Path, db: &Path, email: &str) -> String {
    let row = row(campaign, db, email);
    let campaign = Campaign::load_for_reading(campaign).expect("campaign");
    let mut composer = match Composer::new(&campaign) {
        Ok(composer) => composer,
        Err(problems) => panic!("composer: {problems:?}"),
    };
    // Keyed Message-IDs (issue #21), with the database's key as a run uses it.
    let mut store = Store::open(db).expect("db");
    let id = herald::identity::campaign_id(&mut store, &campaign).expect("id");
    herald::identity::key_composer(&mut composer, &mut store, &campaign, id).expect("key");
    let composed = composer
        .compose(&RecipientData {
            id: row.id,
            email: &row.email,
            fields_json: &row.fields_json,
        })
        .expect("compose");
    String::from_utf8(composed.bytes).expect("messages are ASCII on the wire")
}
