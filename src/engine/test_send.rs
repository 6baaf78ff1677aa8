//! Test sends: a message the application layer rendered and signed exactly as the campaign will
//! send it (`app::test_send`), delivered to one address the user gives (the envelope changes, the
//! headers do not), through the campaign's first relay that answers. Touches no recipient's
//! state: a test send is not a delivery. Direct-to-MX test sends are not available yet.

use std::time::Duration;

use super::outcome::Attempt;
use super::smtp::{Timeouts, envelope_address};
use super::{Passwords, shared};
use crate::campaign::{Campaign, Mode};
use crate::delivery::Reply;

/// The rendered message to send as a test.
#[derive(Debug, Clone, Default)]
pub struct TestMessage {
    pub raw: Vec<u8>,
    pub envelope_from: String,
    pub message_id: String,
    pub size_bytes: usize,
}

/// What the server said to a test message it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSent {
    /// The relay that took it.
    pub route: String,
    pub to: String,
    pub message_id: String,
    pub size_bytes: usize,
    pub reply: Reply,
}

#[derive(Debug, thiserror::Error)]
pub enum TestSendError {
    #[error("\"{address}\" is not an address to send the test to: {reason}")]
    BadAddress { address: String, reason: String },
    #[error(
        "test sends go through a relay; direct mode has none and direct test sends are not available yet"
    )]
    DirectMode,
    #[error("{0}")]
    Setup(String),
    #[error("no relay could be reached: {}", .0.join("; "))]
    Unreachable(Vec<String>),
    #[error("{route} did not accept the test message: {}", reply_text(.reply))]
    Refused { route: String, reply: Reply },
}

fn reply_text(reply: &Reply) -> String {
    match reply.code {
        Some(code) => format!("{code} {}", reply.text),
        None => reply.text.clone(),
    }
}

/// Sends `message` to `to` through the first relay that answers. Spawn it on the engine's
/// runtime (the application layer uses [`super::Engine::block_on`]).
pub async fn test_send(
    campaign: &Campaign,
    message: TestMessage,
    to: &str,
    passwords: Passwords,
    front: crate::oauth2::Front,
) -> Result<TestSent, TestSendError> {
    if campaign.delivery.mode == Mode::Direct || campaign.relays.is_empty() {
        return Err(TestSendError::DirectMode);
    }
    let recipient = envelope_address(to.trim()).map_err(|reason| TestSendError::BadAddress {
        address: to.to_string(),
        reason,
    })?;
    let from = envelope_address(&message.envelope_from).map_err(|reason| {
        TestSendError::Setup(format!(
            "the sender address \"{}\" is not valid: {reason}",
            message.envelope_from
        ))
    })?;
    let (relays, _) =
        shared::make_relays(campaign, passwords.as_ref(), front).map_err(TestSendError::Setup)?;
    let delivery = &campaign.delivery;
    let timeouts = Timeouts {
        connect: Duration::from_secs(u64::from(delivery.connect_timeout_secs)),
        command: Duration::from_secs(u64::from(delivery.command_timeout_secs)),
        data: Duration::from_secs(u64::from(delivery.data_timeout_secs)),
    };
    let mut failures = Vec::new();
    for relay in &relays {
        let target = &relay.target;
        let mut session = match relay.connect(timeouts).await {
            Ok(session) => session,
            Err(error) => {
                failures.push(format!("{}: {error}", target.route));
                continue;
            }
        };
        let offer = session.send(&from, &recipient, &message.raw).await;
        session.quit().await;
        return match offer.attempt {
            Attempt::Accepted(reply) => Ok(TestSent {
                route: target.route.clone(),
                to: recipient.to_string(),
                message_id: message.message_id,
                size_bytes: message.size_bytes,
                reply,
            }),
            Attempt::Temporary(reply) | Attempt::Permanent(reply) | Attempt::Uncertain(reply) => {
                Err(TestSendError::Refused {
                    route: target.route.clone(),
                    reply,
                })
            }
        };
    }
    Err(TestSendError::Unreachable(failures))
}
