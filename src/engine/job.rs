//! One claimed recipient on its way through a run (`Job`), and what becomes of it: its message
//! built (`compose_for`), its outcome recorded (`finish`, `skip`, `NotBuilt::record`). Used by
//! the relay workers (`run.rs`) and the direct router (`direct.rs`) alike, so that neither
//! reaches into the other.

use std::sync::atomic::Ordering;

use super::outcome::{Attempt, decide, local_reply};
use super::progress::Event;
use super::shared::Shared;
use super::smtp::{EnvelopeAddress, envelope_address};
use crate::compose::RecipientData;
use crate::recipients::EmailAddress;
use crate::store::{Claimed, State, Transition, now_ms};

pub(super) struct Job {
    pub claimed: Claimed,
    /// Bound for the relays: always in relay mode; in mixed mode once direct delivery failed
    /// for a reason a relay can fix.
    pub to_relay: bool,
}

/// Why a recipient's message was not built.
pub(super) enum NotBuilt {
    /// The personalization script skipped the recipient, with this reason.
    Skipped(String),
    /// The message cannot be built for this recipient: a permanent failure.
    Failed(Attempt),
}

impl NotBuilt {
    /// Records the outcome on the recipient's row.
    pub(super) fn record(self, shared: &Shared, route: usize, job: &Job) {
        match self {
            NotBuilt::Skipped(reason) => skip(shared, route, job, &reason),
            NotBuilt::Failed(attempt) => finish(shared, route, job, attempt, None),
        }
    }
}

/// Builds one recipient's message and envelope: (MAIL FROM, RCPT TO, content). MAIL FROM is
/// the campaign's sender, or its VERP return path when `[bounces] return_path` is set.
pub(super) fn compose_for(
    shared: &Shared,
    claimed: &Claimed,
) -> Result<(EnvelopeAddress, EnvelopeAddress, Vec<u8>), NotBuilt> {
    let invalid = || NotBuilt::Failed(Attempt::Permanent(local_reply("the address is not valid")));
    let address = EmailAddress::parse(&claimed.email).map_err(|_| invalid())?;
    let envelope = address.to_ascii();
    let data = RecipientData {
        id: claimed.id,
        email: &envelope,
        fields_json: &claimed.fields_json,
    };
    let composed = shared
        .composer
        .compose(&data)
        .map_err(|error| match error.skip_reason() {
            Some(reason) => NotBuilt::Skipped(reason.to_string()),
            None => NotBuilt::Failed(Attempt::Permanent(local_reply(format!(
                "could not build the message: {error}"
            )))),
        })?;
    let to = envelope_address(&composed.envelope_to).map_err(|_| invalid())?;
    let from = if shared.composer.has_feedback() {
        envelope_address(&composed.envelope_from).map_err(|_| invalid())?
    } else {
        shared.from.clone()
    };
    Ok((from, to, composed.bytes))
}

/// The personalization script skipped this recipient (issue #5): recorded with its reason,
/// never sent.
pub(super) fn skip(shared: &Shared, route: usize, job: &Job, reason: &str) {
    let reply = local_reply(reason);
    let _ = shared.writer.write(Transition {
        id: job.claimed.id,
        to: State::Skipped,
        attempts: job.claimed.attempts,
        next_attempt_at_ms: 0,
        route: None,
        reply: Some(reply.clone()),
        dead_address: false,
    });
    shared.outstanding.fetch_sub(1, Ordering::SeqCst);
    shared.event(Event::Outcome {
        route,
        email: job.claimed.email.clone(),
        to: State::Skipped,
        uncertain: false,
        reply: Some(reply),
    });
}

pub(super) fn finish(
    shared: &Shared,
    route: usize,
    job: &Job,
    attempt: Attempt,
    route_name: Option<&str>,
) {
    let decision = decide(&attempt, job.claimed.attempts, &shared.delivery);
    let uncertain = matches!(attempt, Attempt::Uncertain(_));
    let dead_address = decision.state == State::Failed
        && matches!(&attempt, Attempt::Permanent(reply) if (shared.dead_address)(reply));
    let reply = match attempt {
        Attempt::Accepted(reply)
        | Attempt::Temporary(reply)
        | Attempt::Permanent(reply)
        | Attempt::Uncertain(reply) => reply,
    };
    let next_attempt_at_ms = decision
        .retry_in
        .map(|delay| now_ms() + delay.as_millis() as i64)
        .unwrap_or(0);
    if decision.state != State::Sent {
        tracing::info!(
            state = decision.state.as_str(),
            code = reply.code,
            reply = %reply.text,
            recipient = %job.claimed.email,
            "delivery attempt did not succeed"
        );
    }
    let _ = shared.writer.write(Transition {
        id: job.claimed.id,
        to: decision.state,
        attempts: decision.attempts,
        next_attempt_at_ms,
        route: route_name.map(str::to_string),
        reply: Some(reply.clone()),
        dead_address,
    });
    shared.outstanding.fetch_sub(1, Ordering::SeqCst);
    shared.event(Event::Outcome {
        route,
        email: job.claimed.email.clone(),
        to: decision.state,
        uncertain,
        reply: Some(reply),
    });
}
