//! The application layer: the use cases the window and the CLI both call, so each decision is
//! made once — check a campaign and its DNS (`deliverability`), preview and test-send a
//! recipient, the checks before a send (the bounce mailbox, the unsubscribe pull), starting runs,
//! resending, the suppression list and its files, the library and results, signing in to OAuth2
//! grants. Front ends only parse, draw and print. Below it: `engine` (sending only), `inbox`
//! (reading mail back), `unsubscribe` (the endpoint and its pull), and the leaves (`import`,
//! `identity`, `tls`, `http`, `credentials`, `store`, ...), none of which imports this module.
//! `service` is the window's adapter: a thread answering its requests by calling the same
//! functions the CLI calls.

pub mod check;
mod database;
pub mod deliverability;
mod error;
pub mod held;
pub mod html_file;
pub mod library;
pub mod presend;
pub mod preview;
pub mod service;
pub mod signin;
pub mod suppression;
pub mod test_send;

pub use check::{CheckReport, check};
pub use database::Database;
pub use error::{AppError, ErrorKind};
pub use library::{CampaignStatus, LibraryEntry, Renamed};
pub use preview::{Preview, PreviewError, preview};

/// The plain words the front ends show and pass back: the delivery vocabulary, and the shapes of
/// the store's answers. Front ends take them from here, never from `store`.
pub use crate::compose::field_expression;
pub use crate::delivery::{Counts, Reply, State, now_ms};
pub use crate::store::{
    Applied, CampaignSummary, DomainRow, FeedbackCounts, FeedbackKind, HeldRow, RecipientId,
    RecipientRef, RecipientRow, ReplyClass, ReplyGroup, ResendFilter, Suppression, SuppressionPage,
    SuppressionReason, TimeBucket, default_path, reason_label,
};

/// The options of a run either front end starts: the engine's defaults, plus the report
/// reader's classes of a dead address, so a `550 5.1.1` at send time suppresses it (issue #21).
pub fn run_options() -> crate::engine::RunOptions {
    crate::engine::RunOptions {
        dead_address: std::sync::Arc::new(crate::inbox::report::refused_as_dead),
        ..crate::engine::RunOptions::default()
    }
}
