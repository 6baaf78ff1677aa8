//! The window's one door to the engine and the database: a thread that takes [`Request`]s and
//! answers with [`Answer`]s, waking the window through its callback. Everything slow (files,
//! SQL, SMTP) happens here, never on the UI thread, and the window never waits on a lock the
//! sender holds. Plain data in both directions.

use crate::app::{AppError, LibraryEntry, Renamed};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::campaign::{Campaign, RawCampaign, RelaySpec};
use crate::engine::{Engine, Progress, Wake};
use crate::store::{
    Counts, FeedbackCounts, RecipientId, RecipientRow, ReplyClass, State, SuppressionPage,
};

mod campaigns;
mod dns;
mod feedback;
mod files;
mod library;
mod runs;
mod signin;

pub use crate::app::presend::BeforeStart;
pub use campaigns::{RESULT_DOMAINS, ResultsData, next_name};
pub use signin::{SignInAnswer, SignInRequest};

use library::Library;
use runs::Runs;

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
    /// Read a newsletter's HTML file for the campaign in `path`, copying its local images into
    /// the campaign's folder as inline images ("Open HTML file…", issue #20).
    LoadHtml {
        path: PathBuf,
        file: PathBuf,
    },
    /// Validate a saved campaign file.
    Validate {
        path: PathBuf,
    },
    /// The first rows of a CSV, for the import dialog's column mapping.
    /// `email_column` None: find it as an import would, and say how in the answer.
    PeekCsv {
        path: PathBuf,
        email_column: Option<String>,
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
        /// Only the rows of this state whose last reply is of this class (the results view).
        reply: Option<(State, ReplyClass)>,
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
        /// Also failed rows whose address was refused as dead (issue #21).
        include_hard: bool,
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
        /// The saved campaign, for a relay that signs in with one of its `[oauth2.NAME]`.
        campaign: Option<PathBuf>,
    },
    /// Keep a relay password in the keyring under `name` (the relay's `password_env`).
    StorePassword {
        name: String,
        password: String,
    },
    /// The campaigns the database knows (the library).
    Library,
    /// Write a ready campaign into this folder, then open it.
    NewCampaign {
        folder: PathBuf,
    },
    /// Make the next mailing from this campaign, then open it.
    Duplicate {
        path: PathBuf,
    },
    /// Rename the campaign in this file (its folder when the folder names it), keeping its
    /// state in the database.
    Rename {
        path: PathBuf,
        name: String,
    },
    Results {
        path: PathBuf,
    },
    /// Every recipient's outcome, to a CSV file.
    ExportAll {
        path: PathBuf,
        to: PathBuf,
    },
    /// Start as `herald send` does: read the bounce mailbox and pull the unsubscribe endpoint
    /// first (when the campaign has them); a check that fails stops the start and says so
    /// ([`Answer::BeforeStart`]), and `Start` then sends anyway.
    StartChecked {
        path: PathBuf,
    },
    /// The deliverability check's findings for the saved campaign (issue #23: the Publish
    /// panel), answered from a thread of its own with [`Answer::Deliverability`].
    /// `generation` comes back, so the window can drop the answer to an older ask.
    Deliverability {
        path: PathBuf,
        generation: u64,
    },
    /// Read the campaign's `[bounces]` mailbox and apply what came back.
    CheckMailbox {
        path: PathBuf,
    },
    /// Bounced, complained and unsubscribed for the campaign (the Publish view's figures).
    Feedback {
        path: PathBuf,
    },
    /// The feedback events of these recipients (rows of the table on screen).
    RowFeedback {
        ids: Vec<RecipientId>,
        generation: u64,
    },
    /// The global suppression list, searched (the first `limit` matches, newest first).
    Suppressions {
        search: String,
        limit: u32,
    },
    /// Put an address on the global suppression list by hand.
    Suppress {
        address: String,
        note: String,
    },
    Unsuppress {
        address: String,
    },
    /// The whole global suppression list, to a CSV file.
    ExportSuppressions {
        to: PathBuf,
    },
    /// The reports held unverified (issue #21), for the review list.
    HeldReports,
    /// Apply held reports because the user said so; `path` is the campaign in the window,
    /// whose `soft_limit` counts (the default without one).
    ApplyHeld {
        which: crate::app::held::Which,
        path: Option<PathBuf>,
    },
    /// Forget one held report unapplied.
    DismissHeld {
        recipient: RecipientId,
        kind: crate::app::FeedbackKind,
    },
    /// Add the addresses of a CSV file to the global suppression list (as `herald
    /// suppression import` does).
    ImportSuppressions {
        from: PathBuf,
    },
    /// The campaign's OAuth2 grants: who is signed in, signing in and out (issue #22).
    SignIn(SignInRequest),
}

/// What the window edits: the campaign file and the text of its templates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    pub raw: RawCampaign,
    pub html: String,
    pub text: String,
    /// The campaign file's text as it was read (empty for a campaign never saved): a save
    /// under another name edits this text, so the person's comments go with the campaign.
    pub source: String,
}

/// The first rows of a list file (CSV or sheet).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CsvPeek {
    pub headers: Vec<String>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// A CSV's encoding and delimiter; empty and `,` for a sheet.
    pub encoding: String,
    pub delimiter: char,
    /// False when no column has the email column's name (or, when none was named, none could
    /// be recognized): `headers` lists what there is.
    pub email_column_found: bool,
    /// The email column's header as written in the file (empty when not found).
    pub email_header: String,
    /// How it was found, for people: `"Email Address" (recognized by its name)`.
    pub detected: String,
    /// What the file was read as: `CSV (UTF-8, comma-separated)`, `Excel workbook, sheet "x"`.
    pub format: String,
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
    /// A sample recipient's message: no list is imported yet (issue #20).
    pub sample: bool,
    /// The campaign's inline images as (Content-ID, bytes), for the rendered preview's `cid:`.
    pub inline_images: Vec<(String, Vec<u8>)>,
}

/// What the service answers.
#[derive(Debug, Clone)]
pub enum Answer {
    Opened(Result<(PathBuf, Box<Document>), AppError>),
    Saved(Result<PathBuf, AppError>),
    /// The HTML file read for the body, with what was copied and what was missing.
    HtmlLoaded {
        file: PathBuf,
        result: Result<crate::app::html_file::LoadedHtml, AppError>,
    },
    Validated(Result<(), Vec<String>>),
    Peeked(Result<CsvPeek, AppError>),
    Imported(Result<(crate::import::ImportReport, Counts), AppError>),
    Counts(Counts),
    Page {
        generation: u64,
        offset: u64,
        total: u64,
        rows: Vec<RecipientRow>,
    },
    Preview(Result<PreviewData, AppError>),
    TestSent(Result<String, AppError>),
    Started,
    /// The last progress of a run that ended.
    RunEnded(Progress),
    Resent(Result<u64, AppError>),
    Exported(Result<u64, AppError>),
    RelayTested {
        name: String,
        result: Result<String, AppError>,
    },
    /// `Ok` says where it went: "Saved in GNOME Keyring", "Saved until reboot (no Secret
    /// Service running)".
    PasswordStored {
        name: String,
        result: Result<String, AppError>,
    },
    Problem(AppError),
    Library(Result<Vec<LibraryEntry>, AppError>),
    /// A campaign renamed: what moved where.
    Renamed(Result<Renamed, AppError>),
    /// A campaign file written by `NewCampaign` or `Duplicate`.
    Created(Result<PathBuf, AppError>),
    Results(Result<Box<ResultsData>, AppError>),
    /// What Start checked first; when `started` is false a check failed and nothing was sent.
    BeforeStart(Box<BeforeStart>),
    MailboxChecked(Result<Box<crate::inbox::Summary>, AppError>),
    /// The deliverability findings for the campaign in `path`: for the window's ask of
    /// `generation`, or (None) those Start checked just now.
    Deliverability {
        path: PathBuf,
        generation: Option<u64>,
        result: Result<Vec<crate::app::deliverability::Finding>, AppError>,
    },
    Feedback(FeedbackCounts),
    RowFeedback {
        generation: u64,
        notes: HashMap<RecipientId, String>,
    },
    Suppressions(Result<SuppressionPage, AppError>),
    /// An address added to or taken off the list: what happened, for people.
    SuppressionChanged(Result<String, AppError>),
    SuppressionsExported(Result<u64, AppError>),
    HeldReports(Result<Vec<crate::app::HeldRow>, AppError>),
    /// Held reports applied or dismissed: what happened, for people.
    HeldChanged(Result<String, AppError>),
    /// What an import of a suppression file did, for people.
    SuppressionsImported(Result<String, AppError>),
    SignIn(SignInAnswer),
}

/// The window's handle on the service thread.
pub struct Service {
    requests: Sender<Request>,
    answers: Receiver<Answer>,
    progress: Arc<Mutex<Option<Progress>>>,
}

impl Service {
    /// Starts the service thread over the database at `db`.
    pub fn start(db: PathBuf, wake: Wake) -> Result<Service, AppError> {
        let engine = Engine::new().map_err(|error| AppError::other(error.to_string()))?;
        let (requests, request_rx) = mpsc::channel();
        let (answer_tx, answers) = mpsc::channel();
        let progress = Arc::new(Mutex::new(None));
        let shared_progress = Arc::clone(&progress);
        std::thread::Builder::new()
            .name("herald-service".into())
            .spawn(move || {
                let mut worker = Worker {
                    library: Library::new(db.clone()),
                    db: db.clone(),
                    runs: Runs::new(engine, db, shared_progress, Arc::clone(&wake)),
                    signins: signin::SignIns::default(),
                    answers: answer_tx,
                    wake,
                };
                worker.serve(&request_rx);
            })
            .map_err(AppError::from)?;
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

/// The service thread's state: the database side and the runs side, each in its own file.
struct Worker {
    library: Library,
    /// The database file, for the mailbox reader (which opens its own connection).
    db: PathBuf,
    runs: Runs,
    signins: signin::SignIns,
    answers: Sender<Answer>,
    wake: Wake,
}

impl Worker {
    fn serve(&mut self, requests: &Receiver<Request>) {
        loop {
            match requests.recv_timeout(Duration::from_millis(100)) {
                Ok(request) => {
                    if let Some(answer) = self.handle(request) {
                        self.answer(answer);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.runs.stop_and_wait();
                    return;
                }
            }
            if let Some(ended) = self.runs.watch() {
                self.answer(Answer::RunEnded(ended));
            }
        }
    }

    fn answer(&self, answer: Answer) {
        let _ = self.answers.send(answer);
        (self.wake)();
    }

    /// Answers one request; pause, resume and stop have no answer (progress shows them).
    // Long because it is the table of what the window can ask: one arm per request, each
    // handing it to the side that answers it.
    fn handle(&mut self, request: Request) -> Option<Answer> {
        Some(match request {
            // Campaign files (no database).
            Request::Open { path } => Answer::Opened(match files::open_document(&path) {
                Ok(doc) => Ok((path, Box::new(doc))),
                Err(error) => Err(self.unreadable(&path, error)),
            }),
            Request::Save { path, document } => {
                Answer::Saved(files::save_document(&path, &document).map(|()| path))
            }
            Request::LoadHtml { path, file } => Answer::HtmlLoaded {
                result: crate::app::html_file::load_html(
                    &file,
                    path.parent().unwrap_or(Path::new(".")),
                ),
                file,
            },
            Request::Validate { path } => Answer::Validated(files::validate(&path)),
            Request::PeekCsv { path, email_column } => {
                Answer::Peeked(files::peek_csv(&path, email_column.as_deref()))
            }
            Request::NewCampaign { folder } => Answer::Created(campaigns::new_campaign(&folder)),
            Request::Duplicate { path } => Answer::Created(campaigns::duplicate(&path)),
            // The library and one campaign's recipients.
            Request::Library => {
                let sending = self.runs.sending().map(Path::to_path_buf);
                Answer::Library(self.library.store().and_then(|store| {
                    crate::app::library::entries(store, sending.as_deref(), crate::app::now_ms())
                }))
            }
            Request::Rename { path, name } => {
                let sending = self.runs.sending().map(Path::to_path_buf);
                Answer::Renamed(self.library.store().and_then(|store| {
                    crate::app::library::rename(store, &path, &name, sending.as_deref())
                }))
            }
            Request::Import { path } => Answer::Imported(self.library.import(&path)),
            Request::Counts { path } => or_problem(self.library.counts(&path), Answer::Counts),
            Request::Page {
                path,
                state,
                search,
                reply,
                offset,
                limit,
                generation,
            } => or_problem(
                self.page(&path, state, &search, reply, offset, limit),
                |(total, rows)| Answer::Page {
                    generation,
                    offset,
                    total,
                    rows,
                },
            ),
            Request::Preview { path, index } => Answer::Preview(self.library.preview(&path, index)),
            Request::Results { path } => Answer::Results(
                self.library
                    .store()
                    .and_then(|store| campaigns::results(store, &path))
                    .map(Box::new),
            ),
            Request::ExportFailed { path, to } => {
                Answer::Exported(self.library.export_failed(&path, &to))
            }
            Request::ExportAll { path, to } => Answer::Exported(
                self.library
                    .store()
                    .and_then(|store| campaigns::export_all(store, &path, &to)),
            ),
            Request::MarkUncertainSent { path } => Answer::Resent(self.library.mark_sent(&path)),
            // Sending: tests, secrets and the run.
            Request::TestSend { path, index, to } => {
                Answer::TestSent(self.runs.test_send(&path, index, to))
            }
            Request::TestRelay {
                relay,
                helo,
                campaign,
            } => Answer::RelayTested {
                name: relay.name.clone(),
                result: self.runs.test_relay(&relay, &helo, campaign.as_deref()),
            },
            Request::StorePassword { name, password } => Answer::PasswordStored {
                result: crate::credentials::store(&name, &password)
                    .map(|store| store.saved_text())
                    .map_err(|error| AppError::new(crate::app::ErrorKind::Credentials, error)),
                name,
            },
            Request::Start { path } => or_problem(self.runs.start(&path), |()| Answer::Started),
            Request::StartChecked { path } => return self.start_checked(&path),
            Request::Resend {
                path,
                include_uncertain,
                include_hard,
            } => return self.resend(&path, include_uncertain, include_hard),
            Request::Pause => {
                self.runs.pause();
                return None;
            }
            Request::Resume => {
                self.runs.resume();
                return None;
            }
            Request::Stop => {
                self.runs.stop();
                return None;
            }
            Request::Deliverability { path, generation } => {
                return dns::check(path, generation, self.answers.clone(), self.wake.clone());
            }
            // Feedback: the bounce mailbox and the suppression list.
            Request::CheckMailbox { path } => {
                Answer::MailboxChecked(feedback::check_mailbox(&path, &self.db).map(Box::new))
            }
            Request::Feedback { path } => or_problem(
                self.library
                    .store()
                    .and_then(|store| feedback::counts(store, &path)),
                Answer::Feedback,
            ),
            Request::RowFeedback { ids, generation } => or_problem(
                self.library
                    .store()
                    .and_then(|store| feedback::notes(store, &ids)),
                |notes| Answer::RowFeedback { generation, notes },
            ),
            Request::Suppressions { search, limit } => Answer::Suppressions(
                self.library
                    .store()
                    .and_then(|store| feedback::page(store, &search, limit)),
            ),
            Request::Suppress { address, note } => Answer::SuppressionChanged(
                self.library
                    .store()
                    .and_then(|store| feedback::add(store, &address, &note)),
            ),
            Request::Unsuppress { address } => Answer::SuppressionChanged(
                self.library
                    .store()
                    .and_then(|store| feedback::remove(store, &address)),
            ),
            Request::ExportSuppressions { to } => Answer::SuppressionsExported(
                self.library
                    .store()
                    .and_then(|store| feedback::export(store, &to)),
            ),
            Request::HeldReports => Answer::HeldReports(
                self.library
                    .store()
                    .and_then(|store| crate::app::held::list(store)),
            ),
            Request::ApplyHeld { which, path } => {
                let campaign = path.as_deref().and_then(|path| load(path).ok());
                let limit = crate::app::held::soft_limit(campaign.as_ref());
                Answer::HeldChanged(self.library.store().and_then(|store| {
                    crate::app::held::apply(store, which, limit)
                        .map(|done| crate::app::held::applied_sentence(&done))
                }))
            }
            Request::DismissHeld { recipient, kind } => {
                Answer::HeldChanged(self.library.store().and_then(|store| {
                    crate::app::held::dismiss(store, recipient, kind).map(|gone| {
                        if gone {
                            "The report was dismissed: it changes nobody".to_string()
                        } else {
                            "That report was no longer held".to_string()
                        }
                    })
                }))
            }
            Request::ImportSuppressions { from } => Answer::SuppressionsImported(
                self.library
                    .store()
                    .and_then(|store| feedback::import(store, &from)),
            ),
            Request::SignIn(request) => {
                return self.signins.handle(request, &self.answers, &self.wake);
            }
        })
    }

    /// One block of the recipients table (its total and rows): by reply class when one is
    /// chosen, else by state and search.
    fn page(
        &mut self,
        path: &Path,
        state: Option<State>,
        search: &str,
        reply: Option<(State, ReplyClass)>,
        offset: u64,
        limit: u32,
    ) -> Result<(u64, Vec<RecipientRow>), AppError> {
        match reply {
            Some(reply) => self
                .library
                .store()
                .and_then(|store| campaigns::reply_page(store, path, reply, offset, limit)),
            None => self.library.page(path, state, search, offset, limit),
        }
    }

    /// Why a campaign file could not be opened, and what the database still holds for it: a
    /// file a person broke must not look like a campaign that lost its sends (issue #20).
    fn unreadable(&mut self, path: &Path, error: AppError) -> AppError {
        let kept = self
            .library
            .counts(path)
            .ok()
            .and_then(|counts| campaigns::kept_outcomes(&counts));
        match kept {
            Some(kept) => AppError::new(error.kind, format!("{error}. {kept}")),
            None => error,
        }
    }

    /// Puts recipients back to pending, then starts them when nothing is sending.
    fn resend(
        &mut self,
        path: &Path,
        include_uncertain: bool,
        include_hard: bool,
    ) -> Option<Answer> {
        let resent = self.library.resend(path, include_uncertain, include_hard);
        let start = matches!(resent, Ok(count) if count > 0) && !self.runs.has_run();
        self.answer(Answer::Resent(resent));
        // A resend is a send: the same checks first, as `herald resend` makes them.
        if start {
            self.start_checked(path)
        } else {
            None
        }
    }

    /// The checks `herald send` makes, then the run when they passed. Says what the checks
    /// found first, then that the run started (or why it could not).
    fn start_checked(&mut self, path: &Path) -> Option<Answer> {
        if self.runs.has_run() {
            return Some(Answer::Problem(
                "a campaign is already sending; stop it first".into(),
            ));
        }
        let campaign = match load(path) {
            Ok(campaign) => campaign,
            Err(problem) => return Some(Answer::Problem(problem)),
        };
        let mut found = match feedback::before_start(&campaign, &self.db, &mut self.library) {
            Ok(found) => found,
            Err(problem) => return Some(Answer::Problem(problem)),
        };
        // What Start read of the DNS is the newest: the Publish panel shows it.
        self.answer(Answer::Deliverability {
            path: path.to_path_buf(),
            generation: None,
            result: Ok(found.dns.clone()),
        });
        if found.failed() {
            self.answer(Answer::BeforeStart(Box::new(found)));
            return None;
        }
        let started = self.runs.start(path);
        found.started = started.is_ok();
        self.answer(Answer::BeforeStart(Box::new(found)));
        Some(match started {
            Ok(()) => Answer::Started,
            Err(problem) => Answer::Problem(problem),
        })
    }
}

/// The answer `ok` makes of a success, or the problem.
fn or_problem<T>(result: Result<T, AppError>, ok: impl FnOnce(T) -> Answer) -> Answer {
    result.map_or_else(Answer::Problem, ok)
}

/// Reads and validates a campaign file as the window's requests need it.
fn load(path: &Path) -> Result<Campaign, AppError> {
    Campaign::load_with(path, &crate::credentials::is_available).map_err(AppError::from)
}
