//! The render worker: one thread that draws previews and opens them in a browser, so the
//! window's thread never lays out HTML or writes files. Jobs carry a generation; when several
//! renders queue up (the user flicks through recipients or widths) only the newest is drawn, and
//! the window drops any answer whose generation is no longer its own.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::Instant;

use super::{InlineImage, RenderRequest, Rendered};

enum Job {
    Render {
        generation: u64,
        request: RenderRequest,
    },
    Open {
        html: String,
        inline: Vec<InlineImage>,
    },
}

/// What the worker answers.
#[derive(Debug)]
pub enum Done {
    Rendered {
        generation: u64,
        result: Result<Rendered, String>,
        elapsed_ms: u64,
    },
    Opened(Result<PathBuf, String>),
}

/// The window's handle on the worker thread; dropping it ends the thread.
pub struct RenderWorker {
    jobs: Sender<Job>,
    done: Receiver<Done>,
}

impl RenderWorker {
    /// Starts the thread; `wake` is called after each answer (the window asks for a repaint).
    pub fn spawn(wake: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let (jobs, job_rx) = channel();
        let (done_tx, done) = channel();
        std::thread::Builder::new()
            .name("render".into())
            .spawn(move || work(&job_rx, &done_tx, &wake))?;
        Ok(RenderWorker { jobs, done })
    }

    pub fn render(&self, generation: u64, request: RenderRequest) {
        // A send fails only if the thread is gone; the window then shows no new render.
        let _ = self.jobs.send(Job::Render {
            generation,
            request,
        });
    }

    pub fn open_in_browser(&self, html: String, inline: Vec<InlineImage>) {
        let _ = self.jobs.send(Job::Open { html, inline });
    }

    /// The next answer, if one is waiting (never blocks).
    pub fn try_recv(&self) -> Option<Done> {
        self.done.try_recv().ok()
    }
}

fn work(jobs: &Receiver<Job>, done: &Sender<Done>, wake: &dyn Fn()) {
    while let Ok(first) = jobs.recv() {
        // Keep every "open" and only the newest render of what queued up meanwhile.
        let mut latest = None;
        let mut opens = Vec::new();
        let mut next = Some(first);
        loop {
            match next.take() {
                Some(Job::Render {
                    generation,
                    request,
                }) => latest = Some((generation, request)),
                Some(open @ Job::Open { .. }) => opens.push(open),
                None => {}
            }
            match jobs.try_recv() {
                Ok(job) => next = Some(job),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        for open in opens {
            if let Job::Open { html, inline } = open {
                let result = super::browser::open(&html, &inline);
                if done.send(Done::Opened(result)).is_err() {
                    return;
                }
                wake();
            }
        }
        if let Some((generation, request)) = latest {
            let started = Instant::now();
            let result = super::render(&request).map_err(|error| error.to_string());
            let elapsed_ms = started.elapsed().as_millis() as u64;
            tracing::debug!(generation, elapsed_ms, "rendered the preview");
            if done
                .send(Done::Rendered {
                    generation,
                    result,
                    elapsed_ms,
                })
                .is_err()
            {
                return;
            }
            wake();
        }
    }
}
