//! The engine: everything that turns a campaign into deliveries. Preparation (import, check)
//! is synchronous; sending runs on the engine's own tokio runtime and reports through events.
//! Knows nothing of the window or the terminal.

pub mod prepare;

pub use prepare::{
    CheckReport, ImportReport, PrepareError, campaign_id, campaign_key, check, import,
};
