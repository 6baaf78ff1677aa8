//! "Send a test": recipient N's message previewed exactly as the campaign will send it, then
//! handed to the engine's test send (one message, the first relay that answers, nobody's state
//! touched). The CLI's `test-send` and the window's Test send both come here.

use std::path::Path;

use super::preview::{PreviewError, preview};
use crate::campaign::Campaign;
use crate::engine::test_send::{TestMessage, TestSendError, TestSent};
use crate::engine::{Engine, Passwords};
use crate::store::{RecipientRef, Store};

#[derive(Debug, thiserror::Error)]
pub enum TestSendFailure {
    #[error(transparent)]
    Preview(#[from] PreviewError),
    #[error(
        "recipient {email} is skipped by the personalization script ({reason}); there is no message to send"
    )]
    Skipped { email: String, reason: String },
    #[error(transparent)]
    Send(#[from] TestSendError),
}

/// Sends recipient `which`'s message to `to`; blocks on the engine's runtime.
pub fn test_send(
    engine: &Engine,
    campaign: &Campaign,
    db: &Path,
    which: &RecipientRef,
    to: &str,
    passwords: Passwords,
    front: crate::oauth2::Front,
) -> Result<TestSent, TestSendFailure> {
    let rendered = {
        let mut store = Store::open(db).map_err(PreviewError::from)?;
        preview(campaign, &mut store, which)?
    };
    if let Some(reason) = rendered.skipped {
        return Err(TestSendFailure::Skipped {
            email: rendered.email,
            reason,
        });
    }
    let message_id = rendered
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("Message-ID"))
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let message = TestMessage {
        raw: rendered.raw,
        envelope_from: rendered.envelope_from,
        message_id,
        size_bytes: rendered.size_bytes,
    };
    Ok(engine.block_on(crate::engine::test_send::test_send(
        campaign, message, to, passwords, front,
    ))?)
}
