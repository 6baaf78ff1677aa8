//! What a server's reply (or silence) means for one recipient: pure functions, no I/O. The
//! rules: 2xx sent; 4xx, timeouts and lost connections before the end of DATA are temporary;
//! 5xx is permanent; a connection lost after the final "." is uncertain (RFC 1047).

use std::time::Duration;

use crate::campaign::{DeliverySpec, UncertainPolicy};
use crate::store::{Reply, State};

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The server accepted the message (2xx after DATA).
    Accepted(Reply),
    /// A 4xx reply, a timeout or a lost connection before the message was complete.
    Temporary(Reply),
    /// A 5xx reply.
    Permanent(Reply),
    /// The message was complete and the reply never came.
    Uncertain(Reply),
}

/// The transition an attempt leads to, given how many attempts were made before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub state: State,
    pub attempts: u32,
    /// For `deferred`: how long until the next attempt.
    pub retry_in: Option<Duration>,
}

pub fn decide(attempt: &Attempt, attempts_before: u32, delivery: &DeliverySpec) -> Decision {
    let attempts = attempts_before.saturating_add(1);
    match attempt {
        Attempt::Accepted(_) => Decision {
            state: State::Sent,
            attempts,
            retry_in: None,
        },
        Attempt::Permanent(_) => Decision {
            state: State::Failed,
            attempts,
            retry_in: None,
        },
        Attempt::Temporary(_) if attempts >= delivery.max_attempts => Decision {
            state: State::Failed,
            attempts,
            retry_in: None,
        },
        Attempt::Temporary(_) => Decision {
            state: State::Deferred,
            attempts,
            retry_in: Some(delivery.retry_delay(attempts)),
        },
        // At-least-once: try again after the usual delay, but never past the allowance; what
        // is still unknown then is held for the user, not called failed (it may have arrived).
        Attempt::Uncertain(_)
            if delivery.uncertain == UncertainPolicy::Resend
                && attempts < delivery.max_attempts =>
        {
            Decision {
                state: State::Deferred,
                attempts,
                retry_in: Some(delivery.retry_delay(attempts)),
            }
        }
        Attempt::Uncertain(_) => Decision {
            state: State::Uncertain,
            attempts,
            retry_in: None,
        },
    }
}

/// Classifies a reply code: `None` for codes that are not negative completions.
pub fn attempt_for_reply(reply: Reply) -> Attempt {
    match reply.code {
        Some(200..=299) => Attempt::Accepted(reply),
        Some(500..=599) => Attempt::Permanent(reply),
        _ => Attempt::Temporary(reply),
    }
}

/// The RFC 3463 enhanced status code at the start of a reply text ("5.1.1 no such user").
pub fn enhanced_status(text: &str) -> Option<String> {
    let first = text.split_whitespace().next()?;
    let mut parts = first.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    let valid = parts.next().is_none()
        && matches!(class, "2" | "4" | "5")
        && (1..=3).contains(&subject.len())
        && (1..=3).contains(&detail.len())
        && subject
            .bytes()
            .chain(detail.bytes())
            .all(|b| b.is_ascii_digit());
    valid.then(|| first.to_string())
}

/// A reply built from a server's code and text.
pub fn reply(code: u16, text: &str) -> Reply {
    let text = text.trim().to_string();
    Reply {
        code: Some(code),
        enhanced: enhanced_status(&text),
        text,
    }
}

/// A reply describing a local event (timeout, lost connection): no code.
pub fn local_reply(text: impl Into<String>) -> Reply {
    Reply {
        code: None,
        enhanced: None,
        text: text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(max_attempts: u32, uncertain: UncertainPolicy) -> DeliverySpec {
        DeliverySpec {
            mode: crate::campaign::Mode::Relay,
            connections: 1,
            max_attempts,
            uncertain,
            retry_delays: vec![Duration::from_secs(60), Duration::from_secs(300)],
            rate_per_hour: 0,
            sleep_every: 0,
            sleep_seconds: 0,
            messages_per_connection: 0,
            connect_timeout_secs: 1,
            command_timeout_secs: 1,
            data_timeout_secs: 1,
            relay_cooldown_secs: 1,
        }
    }

    #[test]
    fn enhanced_codes_are_read_from_the_text() {
        let check = |text: &str, expected: Option<&str>| {
            assert_eq!(enhanced_status(text).as_deref(), expected, "{text}");
        };
        check("5.1.1 <a@x> no such user", Some("5.1.1"));
        check("4.7.28 rate limited", Some("4.7.28"));
        check("2.0.0 Ok: queued", Some("2.0.0"));
        check("Ok queued as 123", None);
        check("5.1 short", None);
        check("6.1.1 bad class", None);
        check("5.1.1.1 too long", None);
        check("", None);
    }

    #[test]
    fn decisions_follow_the_state_machine() {
        let d = delivery(3, UncertainPolicy::Resend);
        let ok = attempt_for_reply(reply(250, "2.0.0 ok"));
        assert_eq!(decide(&ok, 0, &d).state, State::Sent);
        let temp = attempt_for_reply(reply(451, "4.3.0 try later"));
        let first = decide(&temp, 0, &d);
        assert_eq!(
            (first.state, first.attempts, first.retry_in),
            (State::Deferred, 1, Some(Duration::from_secs(60)))
        );
        let second = decide(&temp, 1, &d);
        assert_eq!(second.retry_in, Some(Duration::from_secs(300)));
        assert_eq!(decide(&temp, 2, &d).state, State::Failed);
        let perm = attempt_for_reply(reply(550, "5.1.1 unknown"));
        assert_eq!(decide(&perm, 0, &d).state, State::Failed);
        let lost = Attempt::Uncertain(local_reply("lost"));
        assert_eq!(decide(&lost, 0, &d).state, State::Deferred);
        assert_eq!(decide(&lost, 2, &d).state, State::Uncertain);
        let held = delivery(3, UncertainPolicy::Hold);
        assert_eq!(decide(&lost, 0, &held).state, State::Uncertain);
    }

    #[test]
    fn codes_are_classed() {
        assert!(matches!(
            attempt_for_reply(reply(421, "bye")),
            Attempt::Temporary(_)
        ));
        assert!(matches!(
            attempt_for_reply(reply(554, "no")),
            Attempt::Permanent(_)
        ));
        assert!(matches!(
            attempt_for_reply(local_reply("timeout")),
            Attempt::Temporary(_)
        ));
    }
}
