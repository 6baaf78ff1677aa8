//! The window's one door to the engine and the database: a thread that takes [`Request`]s and
//! answers with [`Answer`]s, waking the window through its callback. Everything slow (files,
//! SQL, SMTP) happens here, never on the UI thread, and the window never waits on a lock the
//! sender holds. Plain data in both directions.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::smtp::{Session, Target, Timeouts};
use super::{Engine, Progress, RunHandle, RunOptions, Wake};
use crate::campaign::{Campaign, RawCampaign, RelaySpec};
use crate::recipients;
use crate::store::{CampaignId, Counts, RecipientRef, RecipientRow, ResendFilter, State, Store};

/// What the window asks.
#[derive(Debug, Clone)]
pub enum Request {
    /// Read a campaign file for editing, with its templates.
    Open {
        path: PathBuf,
    },
    /// Write the campaign file (and its templates) that the window edited.
    Save {
        path: PathBuf,
        document: Box<Document>,
    },
    /// Validate a saved campaign file.
    Validate {
        path: PathBuf,
    },
    /// The first rows of a CSV, for the import dialog's column mapping.
    PeekCsv {
        path: PathBuf,
        email_column: String,
    },
    Import {
        path: PathBuf,
    },
    Counts {
        path: PathBuf,
    },
    /// Rows of the recipients table; `generation` lets the window drop stale answers.
    Page {
        path: PathBuf,
        state: Option<State>,
        search: String,
        offset: u64,
        limit: u32,
        generation: u64,
    },
    Preview {
        path: PathBuf,
        index: u64,
    },
    /// Send recipient `index`'s message to `to` through the campaign's relay.
    TestSend {
        path: PathBuf,
        index: u64,
        to: String,
    },
    Start {
        path: PathBuf,
    },
    Pause,
    Resume,
    Stop,
    Resend {
        path: PathBuf,
        include_uncertain: bool,
    },
    MarkUncertainSent {
        path: PathBuf,
    },
    ExportFailed {
        path: PathBuf,
        to: PathBuf,
    },
    TestRelay {
        relay: RelaySpec,
        helo: String,
    },
    /// Keep a relay password in the keyring under `name` (the relay's `password_env`).
    StorePassword {
        name: String,
        password: String,
    },
}

/// What the window edits: the campaign file and the text of its templates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    pub raw: RawCampaign,
    pub html: String,
    pub text: String,
}

/// The first rows of a CSV file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CsvPeek {
    pub headers: Vec<String>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub encoding: String,
    pub delimiter: char,
    /// False when no column has the email column's name: `headers` lists what there is.
    pub email_column_found: bool,
}

/// A rendered message for the preview pane.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreviewData {
    pub index: u64,
    pub email: String,
    pub subject: String,
    pub headers: String,
    pub text: String,
    pub html: Option<String>,
    pub size_bytes: usize,
}

/// What the service answers.
#[derive(Debug, Clone)]
pub enum Answer {
    Opened(Result<(PathBuf, Box<Document>), String>),
    Saved(Result<PathBuf, String>),
    Validated(Result<(), Vec<String>>),
    Peeked(Result<CsvPeek, String>),
    Imported(Result<(super::ImportReport, Counts), String>),
    Counts(Counts),
    Page {
        generation: u64,
        offset: u64,
        total: u64,
        rows: Vec<RecipientRow>,
    },
    Preview(Result<PreviewData, String>),
    TestSent(Result<String, String>),
    Started,
    /// The last progress of a run that ended.
    RunEnded(Progress),
    Resent(Result<u64, String>),
    Exported(Result<u64, String>),
    RelayTested {
        name: String,
        result: Result<String, String>,
    },
    PasswordStored {
        name: String,
        result: Result<(), String>,
    },
    Problem(String),
}

/// The window's handle on the service thread.
pub struct Service {
    requests: Sender<Request>,
    answers: Receiver<Answer>,
    progress: Arc<Mutex<Option<Progress>>>,
}

impl Service {
    /// Starts the service thread over the database at `db`.
    pub fn start(db: PathBuf, wake: Wake) -> Result<Service, String> {
        let engine = Engine::new().map_err(|error| error.to_string())?;
        let (requests, request_rx) = mpsc::channel();
        let (answer_tx, answers) = mpsc::channel();
        let progress = Arc::new(Mutex::new(None));
        let shared_progress = Arc::clone(&progress);
        std::thread::Builder::new()
            .name("herald-service".into())
            .spawn(move || {
                let mut worker = Worker {
                    engine,
                    db,
                    store: None,
                    run: None,
                    answers: answer_tx,
                    progress: shared_progress,
                    wake,
                };
                worker.serve(&request_rx);
            })
            .map_err(|error| error.to_string())?;
        Ok(Service {
            requests,
            answers,
            progress,
        })
    }

    pub fn send(&self, request: Request) {
        let _ = self.requests.send(request);
    }

    /// Answers that arrived since the last call; never blocks.
    pub fn answers(&self) -> Vec<Answer> {
        self.answers.try_iter().collect()
    }

    /// The latest progress of the current run, if one is running or ran.
    pub fn progress(&self) -> Option<Progress> {
        self.progress
            .lock()
            .ok()
            .and_then(|progress| progress.clone())
    }
}

struct Worker {
    engine: Engine,
    db: PathBuf,
    store: Option<Store>,
    run: Option<RunHandle>,
    answers: Sender<Answer>,
    progress: Arc<Mutex<Option<Progress>>>,
    wake: Wake,
}

impl Worker {
    fn serve(&mut self, requests: &Receiver<Request>) {
        loop {
            match requests.recv_timeout(Duration::from_millis(100)) {
                Ok(request) => {
                    let answer = self.handle(request);
                    if let Some(answer) = answer {
                        self.answer(answer);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    if let Some(run) = &self.run {
                        run.stop();
                    }
                    if let Some(mut run) = self.run.take() {
                        run.wait();
                    }
                    return;
                }
            }
            self.watch_run();
        }
    }

    fn answer(&self, answer: Answer) {
        let _ = self.answers.send(answer);
        (self.wake)();
    }

    /// Copies the run's progress for the window, and reports the end of the run.
    fn watch_run(&mut self) {
        let Some(run) = &self.run else {
            return;
        };
        let latest = run.progress();
        let over = latest.state.is_over();
        if let Ok(mut shared) = self.progress.lock() {
            *shared = Some(latest.clone());
        }
        if over {
            self.run = None;
            self.answer(Answer::RunEnded(latest));
        }
    }

    fn store(&mut self) -> Result<&mut Store, String> {
        if self.store.is_none() {
            self.store = Some(Store::open(&self.db).map_err(|error| error.to_string())?);
        }
        self.store
            .as_mut()
            .ok_or_else(|| "the database is not open".to_string())
    }

    fn campaign_id(&mut self, campaign: &Campaign) -> Result<CampaignId, String> {
        let store = self.store()?;
        super::campaign_id(store, campaign).map_err(|error| error.to_string())
    }

    fn handle(&mut self, request: Request) -> Option<Answer> {
        Some(match request {
            Request::Open { path } => {
                Answer::Opened(open_document(&path).map(|doc| (path, Box::new(doc))))
            }
            Request::Save { path, document } => {
                Answer::Saved(save_document(&path, &document).map(|()| path))
            }
            Request::Validate { path } => Answer::Validated(validate(&path)),
            Request::PeekCsv { path, email_column } => {
                Answer::Peeked(peek_csv(&path, &email_column))
            }
            Request::Import { path } => Answer::Imported(self.import(&path)),
            Request::Counts { path } => match self.counts(&path) {
                Ok(counts) => Answer::Counts(counts),
                Err(problem) => Answer::Problem(problem),
            },
            Request::Page {
                path,
                state,
                search,
                offset,
                limit,
                generation,
            } => match self.page(&path, state, &search, offset, limit) {
                Ok((total, rows)) => Answer::Page {
                    generation,
                    offset,
                    total,
                    rows,
                },
                Err(problem) => Answer::Problem(problem),
            },
            Request::Preview { path, index } => Answer::Preview(self.preview(&path, index)),
            Request::TestSend { path, index, to } => {
                Answer::TestSent(self.test_send(&path, index, to))
            }
            Request::Start { path } => match self.start(&path) {
                Ok(()) => Answer::Started,
                Err(problem) => Answer::Problem(problem),
            },
            Request::Pause => {
                if let Some(run) = &self.run {
                    run.pause();
                }
                return None;
            }
            Request::Resume => {
                if let Some(run) = &self.run {
                    run.resume();
                }
                return None;
            }
            Request::Stop => {
                if let Some(run) = &self.run {
                    run.stop();
                }
                return None;
            }
            Request::Resend {
                path,
                include_uncertain,
            } => Answer::Resent(self.resend(&path, include_uncertain)),
            Request::MarkUncertainSent { path } => Answer::Resent(self.mark_sent(&path)),
            Request::ExportFailed { path, to } => Answer::Exported(self.export_failed(&path, &to)),
            Request::StorePassword { name, password } => Answer::PasswordStored {
                result: super::secrets::store(&name, &password),
                name,
            },
            Request::TestRelay { relay, helo } => {
                let name = relay.name.clone();
                Answer::RelayTested {
                    name,
                    result: self.test_relay(&relay, &helo),
                }
            }
        })
    }

    fn load(path: &Path) -> Result<Campaign, String> {
        Campaign::load_with(path, &super::secrets::is_available).map_err(|error| error.to_string())
    }

    fn import(&mut self, path: &Path) -> Result<(super::ImportReport, Counts), String> {
        let campaign = Self::load(path)?;
        let store = self.store()?;
        let (id, report) = super::import(store, &campaign).map_err(|error| error.to_string())?;
        let counts = store.counts(id).map_err(|error| error.to_string())?;
        Ok((report, counts))
    }

    fn counts(&mut self, path: &Path) -> Result<Counts, String> {
        let campaign = Self::load(path)?;
        let key = super::campaign_key(&campaign);
        let store = self.store()?;
        match store
            .find_campaign(&key)
            .map_err(|error| error.to_string())?
        {
            Some(id) => store.counts(id).map_err(|error| error.to_string()),
            None => Ok(Counts::default()),
        }
    }

    fn page(
        &mut self,
        path: &Path,
        state: Option<State>,
        search: &str,
        offset: u64,
        limit: u32,
    ) -> Result<(u64, Vec<RecipientRow>), String> {
        let campaign = Self::load(path)?;
        let key = super::campaign_key(&campaign);
        let store = self.store()?;
        let Some(id) = store
            .find_campaign(&key)
            .map_err(|error| error.to_string())?
        else {
            return Ok((0, Vec::new()));
        };
        let search = Some(search).filter(|text| !text.trim().is_empty());
        let total = store
            .count_matching(id, state, search)
            .map_err(|error| error.to_string())?;
        let rows = store
            .page_at(id, state, search, offset, limit)
            .map_err(|error| error.to_string())?;
        Ok((total, rows))
    }

    /// Recipient `index`'s message exactly as `herald preview` shows it (one code path).
    fn preview(&mut self, path: &Path, index: u64) -> Result<PreviewData, String> {
        let campaign = Self::load(path)?;
        let store = self.store()?;
        let preview = super::prepare::preview(&campaign, store, &RecipientRef::Index(index))
            .map_err(|error| error.to_string())?;
        if let Some(reason) = preview.skipped {
            return Err(format!(
                "the personalization script skips {}: {reason}",
                preview.email
            ));
        }
        let headers = preview
            .headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}"))
            .collect::<Vec<_>>()
            .join("\n");
        Ok(PreviewData {
            index,
            email: preview.email,
            subject: preview.subject,
            headers,
            text: preview.text,
            html: preview.html,
            size_bytes: preview.size_bytes,
        })
    }

    fn test_send(&mut self, path: &Path, index: u64, to: String) -> Result<String, String> {
        let campaign = Self::load(path)?;
        let db = self.db.clone();
        let passwords = RunOptions::default().passwords;
        let sent = self.engine.block_on(super::test_send::test_send(
            campaign,
            db,
            RecipientRef::Index(index),
            to,
            passwords,
        ));
        match sent {
            Ok(sent) => Ok(format!(
                "sent to {} through {}: {} {}",
                sent.to,
                sent.route,
                sent.reply
                    .code
                    .map(|code| code.to_string())
                    .unwrap_or_default(),
                sent.reply.text
            )),
            Err(error) => Err(error.to_string()),
        }
    }

    fn start(&mut self, path: &Path) -> Result<(), String> {
        if self.run.as_ref().is_some_and(|run| !run.is_over()) {
            return Err("a campaign is already sending; stop it first".into());
        }
        let campaign = Self::load(path)?;
        // The run opens its own connections; ours must not hold a write lock meanwhile.
        let wake = Arc::clone(&self.wake);
        let options = RunOptions {
            wake,
            ..RunOptions::default()
        };
        self.run = Some(self.engine.start(campaign, &self.db, options));
        Ok(())
    }

    fn resend(&mut self, path: &Path, include_uncertain: bool) -> Result<u64, String> {
        let campaign = Self::load(path)?;
        let id = self.campaign_id(&campaign)?;
        let filter = ResendFilter {
            include_failed: true,
            include_uncertain,
            ..ResendFilter::default()
        };
        let count = self
            .store()?
            .resend(id, &filter)
            .map_err(|error| error.to_string())?;
        if count > 0 && self.run.is_none() {
            self.start(path)?;
        }
        Ok(count)
    }

    fn mark_sent(&mut self, path: &Path) -> Result<u64, String> {
        let campaign = Self::load(path)?;
        let id = self.campaign_id(&campaign)?;
        self.store()?
            .mark_uncertain_sent(id)
            .map_err(|error| error.to_string())
    }

    fn export_failed(&mut self, path: &Path, to: &Path) -> Result<u64, String> {
        let campaign = Self::load(path)?;
        let id = self.campaign_id(&campaign)?;
        let store = self.store()?;
        let mut out = String::from("email,state,attempts,route,code,status,reply\n");
        let mut after = 0;
        let mut count = 0;
        for state in [State::Failed, State::Uncertain] {
            loop {
                let rows = store
                    .page(id, Some(state), None, after, 1_000)
                    .map_err(|error| error.to_string())?;
                let Some(last) = rows.last() else {
                    break;
                };
                after = last.id;
                for row in &rows {
                    let reply = row.reply.clone().unwrap_or_default();
                    out.push_str(&csv_line(&[
                        &row.email,
                        row.state.as_str(),
                        &row.attempts.to_string(),
                        row.route.as_deref().unwrap_or(""),
                        &reply.code.map(|code| code.to_string()).unwrap_or_default(),
                        reply.enhanced.as_deref().unwrap_or(""),
                        &reply.text,
                    ]));
                    count += 1;
                }
            }
            after = 0;
        }
        std::fs::write(to, out)
            .map_err(|error| format!("could not write {}: {error}", to.display()))?;
        Ok(count)
    }

    fn test_relay(&mut self, relay: &RelaySpec, helo: &str) -> Result<String, String> {
        let credentials = match (&relay.username, &relay.password_env) {
            (Some(user), Some(var)) => {
                let password = std::env::var(var).map_err(|_| {
                    format!("the environment variable {var} (the password) is not set")
                })?;
                Some((user.clone(), password))
            }
            _ => None,
        };
        let ca_pem = match &relay.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|error| error.to_string())?),
            None => None,
        };
        let target = Target {
            route: relay.name.clone(),
            host: relay.host.clone(),
            port: relay.port,
            security: relay.security,
            helo: helo.to_string(),
            credentials,
            ca_pem,
            address: None,
            opportunistic_tls: None,
        };
        let timeouts = Timeouts {
            connect: Duration::from_secs(10),
            command: Duration::from_secs(20),
            data: Duration::from_secs(20),
        };
        self.engine.block_on(async move {
            match Session::connect(&target, timeouts).await {
                Ok(session) => {
                    session.quit().await;
                    Ok(format!(
                        "connected to {}:{} ({}){}",
                        target.host,
                        target.port,
                        target.security.as_str(),
                        if target.credentials.is_some() {
                            ", signed in"
                        } else {
                            ""
                        }
                    ))
                }
                Err(error) => Err(error.to_string()),
            }
        })
    }
}

fn csv_line(fields: &[&str]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|field| {
            if field.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", field.replace('"', "\"\""))
            } else {
                (*field).to_string()
            }
        })
        .collect();
    format!("{}\n", quoted.join(","))
}

fn open_document(path: &Path) -> Result<Document, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("could not read {}: {error}", path.display()))?;
    let raw = RawCampaign::from_toml(&text)
        .map_err(|error| format!("{} is not a campaign file: {error}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let read = |name: &Option<String>| -> String {
        name.as_ref()
            .and_then(|name| std::fs::read_to_string(base.join(name)).ok())
            .unwrap_or_default()
    };
    Ok(Document {
        html: read(&raw.message.html),
        text: read(&raw.message.text),
        raw,
    })
}

fn save_document(path: &Path, document: &Document) -> Result<(), String> {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut raw = document.raw.clone();
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "campaign".into());
    if !document.html.is_empty() {
        let name = raw
            .message
            .html
            .get_or_insert_with(|| format!("{stem}.html"))
            .clone();
        std::fs::write(base.join(&name), &document.html)
            .map_err(|error| format!("could not write {name}: {error}"))?;
    }
    if !document.text.is_empty() {
        let name = raw
            .message
            .text
            .get_or_insert_with(|| format!("{stem}.txt"))
            .clone();
        std::fs::write(base.join(&name), &document.text)
            .map_err(|error| format!("could not write {name}: {error}"))?;
    }
    let text = raw.to_toml()?;
    std::fs::write(path, text)
        .map_err(|error| format!("could not write {}: {error}", path.display()))
}

fn validate(path: &Path) -> Result<(), Vec<String>> {
    match Campaign::load_with(path, &super::secrets::is_available) {
        Ok(campaign) => {
            let report = super::check(&campaign);
            if report.problems.is_empty() {
                Ok(())
            } else {
                Err(report.problems)
            }
        }
        Err(crate::campaign::CampaignError::Invalid { problems, .. }) => {
            Err(problems.iter().map(ToString::to_string).collect())
        }
        Err(error) => Err(vec![error.to_string()]),
    }
}

fn peek_csv(path: &Path, email_column: &str) -> Result<CsvPeek, String> {
    let csv = match recipients::open(path, email_column) {
        Ok(csv) => csv,
        Err(recipients::ImportError::NoEmailColumn { found, .. }) => {
            return Ok(CsvPeek {
                headers: found,
                email_column_found: false,
                ..CsvPeek::default()
            });
        }
        Err(error) => return Err(error.to_string()),
    };
    let headers = csv.headers().to_vec();
    let columns = csv.columns().to_vec();
    let encoding = csv.encoding_name().to_string();
    let delimiter = char::from(csv.delimiter());
    let rows = csv
        .take(10)
        .filter_map(Result::ok)
        .map(|row| {
            let mut cells = vec![row.email];
            cells.extend(row.fields);
            cells
        })
        .collect();
    Ok(CsvPeek {
        headers,
        columns,
        rows,
        encoding,
        delimiter,
        email_column_found: true,
    })
}
