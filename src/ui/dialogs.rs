//! File choosers that never fail silently (issue #14, item 2). The only user of rfd. A dialog
//! runs on a thread of its own, so the window keeps drawing while it is open, and its answer
//! is picked up by [`Dialogs::poll`]. rfd says nothing when no chooser can open (on Linux: no
//! xdg-desktop-portal and no zenity; the error only reaches its log) and answers as if the
//! user had cancelled; an answer of "nothing" that comes back faster than a person can close
//! a dialog is taken for that, and the window then says so next to the control and points to
//! the text box beside it, where the path can be typed or pasted.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// What a chooser is for: which control asked, so the answer (or the failure) is shown there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    OpenCampaign,
    SaveCampaignAs,
    RecipientList,
    Attachment,
    /// A newsletter's HTML file for the body ("Open HTML file…").
    HtmlFile,
    NewCampaignFolder,
    ExportResults,
    ExportSuppressions,
    ImportSuppressions,
}

/// Shows a chooser for `purpose` and returns the path chosen, or None (cancelled, or no
/// chooser could open). Blocks its own thread, never the window's.
pub type Backend = Arc<dyn Fn(Purpose) -> Option<PathBuf> + Send + Sync>;

/// No person closes a dialog this fast; an empty answer sooner means none was shown.
const FASTEST_HUMAN: Duration = Duration::from_millis(400);

/// What the window tells the user when no chooser could open.
pub const UNAVAILABLE: &str = "No file chooser could open on this desktop (it needs \
    xdg-desktop-portal or zenity). Type or paste the path in the box instead.";

pub struct Dialogs {
    backend: Backend,
    wake: Option<egui::Context>,
    waiting: Option<(Purpose, Instant, Receiver<Option<PathBuf>>)>,
    failed: Option<Purpose>,
}

impl Dialogs {
    /// The system's choosers, through rfd.
    pub fn system(wake: egui::Context) -> Dialogs {
        Dialogs::with_backend(Arc::new(rfd_dialog), Some(wake))
    }

    /// Choosers from `backend` (tests pass one that behaves as rfd does where none can open).
    pub fn with_backend(backend: Backend, wake: Option<egui::Context>) -> Dialogs {
        Dialogs {
            backend,
            wake,
            waiting: None,
            failed: None,
        }
    }

    /// Opens a chooser for `purpose`, unless one is open already.
    pub fn open(&mut self, purpose: Purpose) {
        if self.waiting.is_some() {
            return;
        }
        self.failed = None;
        let (tx, rx) = mpsc::channel();
        let backend = Arc::clone(&self.backend);
        let wake = self.wake.clone();
        let spawned = std::thread::Builder::new()
            .name("herald-file-dialog".into())
            .spawn(move || {
                let _ = tx.send(backend(purpose));
                if let Some(ctx) = wake {
                    ctx.request_repaint();
                }
            });
        match spawned {
            Ok(_) => self.waiting = Some((purpose, Instant::now(), rx)),
            Err(error) => {
                tracing::warn!(%error, "could not start a file dialog");
                self.failed = Some(purpose);
            }
        }
    }

    /// The path chosen, once the chooser has answered; never blocks.
    pub fn poll(&mut self) -> Option<(Purpose, PathBuf)> {
        let (purpose, opened, rx) = self.waiting.as_ref()?;
        let (purpose, opened) = (*purpose, *opened);
        let answer = match rx.try_recv() {
            Ok(answer) => answer,
            Err(mpsc::TryRecvError::Empty) => return None,
            Err(mpsc::TryRecvError::Disconnected) => None,
        };
        self.waiting = None;
        match answer {
            Some(path) => Some((purpose, path)),
            None => {
                if opened.elapsed() < FASTEST_HUMAN {
                    self.failed = Some(purpose);
                }
                None
            }
        }
    }

    /// Whether a chooser is open (the window keeps polling while it is).
    pub fn is_open(&self) -> bool {
        self.waiting.is_some()
    }

    /// The control whose chooser could not open, if the last one failed.
    pub fn failed(&self) -> Option<Purpose> {
        self.failed
    }
}

fn rfd_dialog(purpose: Purpose) -> Option<PathBuf> {
    let dialog = rfd::FileDialog::new();
    match purpose {
        Purpose::OpenCampaign => dialog.add_filter("Campaign", &["toml"]).pick_file(),
        Purpose::SaveCampaignAs => dialog.add_filter("Campaign", &["toml"]).save_file(),
        Purpose::RecipientList => dialog
            .add_filter("Lists", &["csv", "txt", "tsv", "xlsx", "xls", "ods"])
            .pick_file(),
        Purpose::Attachment => dialog.pick_file(),
        Purpose::HtmlFile => dialog.add_filter("HTML", &["html", "htm"]).pick_file(),
        Purpose::NewCampaignFolder => dialog.pick_folder(),
        Purpose::ExportResults => dialog
            .add_filter("CSV", &["csv"])
            .set_file_name("results.csv")
            .save_file(),
        Purpose::ExportSuppressions => dialog
            .add_filter("CSV", &["csv"])
            .set_file_name("suppressed.csv")
            .save_file(),
        Purpose::ImportSuppressions => dialog.add_filter("Lists", &["csv", "txt"]).pick_file(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn answer_of(dialogs: &mut Dialogs) -> Option<(Purpose, PathBuf)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while dialogs.is_open() && Instant::now() < deadline {
            if let Some(answer) = dialogs.poll() {
                return Some(answer);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    #[test]
    fn an_instant_empty_answer_means_no_chooser_could_open() {
        let mut dialogs = Dialogs::with_backend(Arc::new(|_| None), None);
        dialogs.open(Purpose::RecipientList);
        assert_eq!(answer_of(&mut dialogs), None);
        assert_eq!(dialogs.failed(), Some(Purpose::RecipientList));
    }

    #[test]
    fn a_slow_empty_answer_is_a_cancel_and_a_path_is_chosen() {
        let mut dialogs = Dialogs::with_backend(
            Arc::new(|_| {
                std::thread::sleep(FASTEST_HUMAN + Duration::from_millis(50));
                None
            }),
            None,
        );
        dialogs.open(Purpose::Attachment);
        assert_eq!(answer_of(&mut dialogs), None);
        assert_eq!(dialogs.failed(), None);

        let mut dialogs =
            Dialogs::with_backend(Arc::new(|_| Some(PathBuf::from("/tmp/list.csv"))), None);
        dialogs.open(Purpose::RecipientList);
        assert_eq!(
            answer_of(&mut dialogs),
            Some((Purpose::RecipientList, PathBuf::from("/tmp/list.csv")))
        );
        assert_eq!(dialogs.failed(), None);
    }
}
