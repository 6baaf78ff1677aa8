//! The window's "Deliverability (DNS)" panel on Publish (issue #23): the findings of
//! `app::deliverability` for a saved campaign, on a thread of their own (DNS can take seconds,
//! and the service must go on answering Pause and Stop meanwhile). The answer names the
//! campaign and the window's generation, so the window never shows one campaign's findings for
//! another, nor an older check over a newer one. Answers through the service's channel and
//! wakes the window.

use std::path::PathBuf;
use std::sync::mpsc::Sender;

use super::Answer;
use crate::app::AppError;
use crate::campaign::Campaign;
use crate::engine::Wake;

/// Checks the campaign in `path` and answers with `generation`. A campaign file that does not
/// read answers at once with its problem.
pub(super) fn check(
    path: PathBuf,
    generation: u64,
    answers: Sender<Answer>,
    wake: Wake,
) -> Option<Answer> {
    // Relay passwords are not needed to read the DNS: a missing one must not hide the findings.
    let campaign = match Campaign::load_for_reading(&path) {
        Ok(campaign) => campaign,
        Err(error) => {
            return Some(Answer::Deliverability {
                path,
                generation: Some(generation),
                result: Err(AppError::from(error)),
            });
        }
    };
    let asked = path.clone();
    let spawned = std::thread::Builder::new()
        .name("herald-dns-check".into())
        .spawn(move || {
            let findings = crate::app::deliverability::findings(&campaign);
            let _ = answers.send(Answer::Deliverability {
                path: asked,
                generation: Some(generation),
                result: Ok(findings),
            });
            wake();
        });
    match spawned {
        Ok(_) => None,
        // The panel waits for this generation's answer: it gets one either way.
        Err(error) => Some(Answer::Deliverability {
            path,
            generation: Some(generation),
            result: Err(AppError::from(error)),
        }),
    }
}
