//! The render worker: one thread that draws previews and opens them in a browser, so the
//! window's thread never lays out HTML or writes files. Jobs carry a generation; when several
//! renders queue up (the user flicks through recipients or widths) only the newest is drawn, and
//! the window drops any answer whose generation is no longer its own. Answers go to a `deliver`
//! hook that runs on this thread, so the window can prepare its textures here too.

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
}

impl RenderWorker {
    /// Starts the thread; `deliver` gets each answer, on the worker's thread.
    pub fn spawn(deliver: impl Fn(Done) + Send + 'static) -> std::io::Result<Self> {
        let (jobs, job_rx) = channel();
        std::thread::Builder::new()
            .name("render".into())
            .spawn(move || work(&job_rx, &deliver))?;
        Ok(RenderWorker { jobs })
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
}

fn work(jobs: &Receiver<Job>, deliver: &dyn Fn(Done)) {
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
                deliver(Done::Opened(super::browser::open(&html, &inline)));
            }
        }
        if let Some((generation, request)) = latest {
            let started = Instant::now();
            let result = super::render(&request).map_err(|error| error.to_string());
            let elapsed_ms = started.elapsed().as_millis() as u64;
            tracing::debug!(generation, elapsed_ms, "rendered the preview");
            deliver(Done::Rendered {
                generation,
                result,
                elapsed_ms,
            });
        }
    }
}
