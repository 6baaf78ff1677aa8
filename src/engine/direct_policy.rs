//! The rules of direct delivery as plain functions and state machines, no I/O: the shipped
//! per-provider limits and the user's overrides, the adaptive backoff of a domain that pushes
//! back, the "port 25 is blocked here" verdict, and which failures mixed mode hands to the
//! backup relays. The direct router asks; nothing here sends, resolves or waits.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::outcome::Attempt;
use crate::campaign::DomainLimitsSpec;

/// How hard Herald may push one destination domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub connections: u32,
    /// 0: no limit.
    pub messages_per_connection: u32,
    /// 0: no limit.
    pub rate_per_hour: u32,
}

/// Shaping shipped for the big mailbox providers, matched by the suffix of their MX host names
/// (one provider serves many domains: gmail.com, googlemail.com and every Workspace domain all
/// point at google.com MX hosts). The figures are those a leading MTA ships (KumoMTA's shaping
/// defaults); an empty suffix list is the default for everybody else.
const PRESETS: &[(&str, &[&str], Limits)] = &[
    (
        "Gmail",
        &["google.com", "googlemail.com"],
        Limits {
            connections: 5,
            messages_per_connection: 50,
            rate_per_hour: 0,
        },
    ),
    (
        "Yahoo",
        &["yahoodns.net"],
        Limits {
            connections: 10,
            messages_per_connection: 20,
            rate_per_hour: 0,
        },
    ),
    (
        "Outlook",
        &["outlook.com", "protection.outlook.com"],
        Limits {
            connections: 5,
            messages_per_connection: 50,
            rate_per_hour: 0,
        },
    ),
    (
        "iCloud",
        &["icloud.com"],
        Limits {
            connections: 10,
            messages_per_connection: 100,
            rate_per_hour: 0,
        },
    ),
];

pub const DEFAULT_LIMITS: Limits = Limits {
    connections: 10,
    messages_per_connection: 100,
    rate_per_hour: 0,
};

/// The preset for a domain whose first MX host is `mx_host`: its provider's name and limits.
pub fn preset_for(mx_host: &str) -> (&'static str, Limits) {
    let host = mx_host.trim_end_matches('.').to_ascii_lowercase();
    for (name, suffixes, limits) in PRESETS {
        let matches = suffixes.iter().any(|suffix| {
            host == *suffix
                || host
                    .strip_suffix(suffix)
                    .is_some_and(|rest| rest.ends_with('.'))
        });
        if matches {
            return (name, *limits);
        }
    }
    ("default", DEFAULT_LIMITS)
}

/// The preset, with the user's `[[direct.domain]]` values over it.
pub fn limits_for(domain: &str, mx_host: &str, overrides: &[DomainLimitsSpec]) -> Limits {
    let (_, mut limits) = preset_for(mx_host);
    if let Some(user) = overrides.iter().find(|spec| spec.name == domain) {
        if let Some(connections) = user.connections {
            limits.connections = connections.max(1);
        }
        if let Some(messages) = user.messages_per_connection {
            limits.messages_per_connection = messages;
        }
        if let Some(rate) = user.rate_per_hour {
            limits.rate_per_hour = rate;
        }
    }
    limits
}

/// After this many temporary replies in a row (without a success in between), a domain is
/// slowed down as if it had said 421.
pub const TEMPORARY_RUN: u32 = 4;
/// Successes in a row that earn one level back.
pub const RECOVER_AFTER: u32 = 20;
const MAX_LEVEL: u32 = 4;

/// A domain's adaptive backoff. Each level halves the connections allowed (at least one) and
/// starts a pause that doubles per level; a run of successes climbs back one level at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    pub level: u32,
    pub paused_until: Option<Instant>,
    temporary_run: u32,
    successes: u32,
    base_pause: Duration,
}

/// What a reply means for the domain's pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Success,
    /// 421: the server is closing on us (RFC 5321 §3.8); it is asking us to slow down.
    Closing,
    Temporary,
    /// Anything that says nothing about load (5xx, uncertain).
    Neutral,
}

impl Backoff {
    pub fn new(base_pause: Duration) -> Backoff {
        Backoff {
            level: 0,
            paused_until: None,
            temporary_run: 0,
            successes: 0,
            base_pause,
        }
    }

    /// Feeds one reply; returns the pause length when this reply started one.
    pub fn observe(&mut self, signal: Signal, now: Instant) -> Option<Duration> {
        match signal {
            Signal::Success => {
                self.temporary_run = 0;
                self.successes += 1;
                if self.level > 0 && self.successes >= RECOVER_AFTER {
                    self.level -= 1;
                    self.successes = 0;
                }
                None
            }
            Signal::Neutral => None,
            Signal::Temporary => {
                self.successes = 0;
                self.temporary_run += 1;
                if self.temporary_run >= TEMPORARY_RUN {
                    Some(self.slow_down(now))
                } else {
                    None
                }
            }
            Signal::Closing => {
                self.successes = 0;
                Some(self.slow_down(now))
            }
        }
    }

    fn slow_down(&mut self, now: Instant) -> Duration {
        self.temporary_run = 0;
        self.level = (self.level + 1).min(MAX_LEVEL);
        let pause = self.base_pause * 2u32.pow(self.level - 1);
        let until = now + pause;
        // A second signal while already paused does not shorten the pause.
        self.paused_until = Some(self.paused_until.map_or(until, |old| old.max(until)));
        pause
    }

    /// When paused, the instant it ends.
    pub fn paused(&mut self, now: Instant) -> Option<Instant> {
        match self.paused_until {
            Some(until) if until > now => Some(until),
            _ => {
                self.paused_until = None;
                None
            }
        }
    }

    /// The connections allowed now: the limit halved per level, never below one.
    pub fn connections(&self, limit: u32) -> u32 {
        (limit >> self.level).max(1)
    }

    /// For progress: how the domain is slowed, if it is.
    pub fn describe(&mut self, limit: u32, now: Instant) -> Option<String> {
        if self.level == 0 {
            return None;
        }
        let connections = self.connections(limit);
        Some(match self.paused(now) {
            Some(until) => format!(
                "slowed down (level {}): paused {} s more, then {connections} connection(s)",
                self.level,
                until.saturating_duration_since(now).as_secs().max(1)
            ),
            None => format!(
                "slowed down (level {}): {connections} connection(s)",
                self.level
            ),
        })
    }
}

/// How many unrelated domains must fail the same way, with no connection succeeding at all,
/// before Herald says the network blocks port 25.
pub const BLOCKED_AFTER_DOMAINS: usize = 3;

/// Watches the first connections of a run for the signature of a filtered port 25: every mail
/// server of several unrelated domains unreachable in the same way, and nothing reachable.
#[derive(Debug, Default)]
pub struct PortWatch {
    any_success: bool,
    failures: Vec<(String, &'static str)>,
    domains: HashSet<String>,
}

impl PortWatch {
    pub fn success(&mut self) {
        self.any_success = true;
    }

    /// Whether any mail server answered in this run (or the failures pointed at the servers).
    pub fn any_success(&self) -> bool {
        self.any_success
    }

    /// Records that no server of `domain` could be reached, each failing as `kinds` says.
    /// Returns the verdict when this failure makes it.
    pub fn unreachable(&mut self, domain: &str, kinds: &[&'static str]) -> Option<String> {
        if self.any_success || kinds.is_empty() {
            return None;
        }
        let first = kinds.first().copied()?;
        if kinds.iter().any(|kind| *kind != first) {
            // Mixed symptoms point at the servers, not at our network.
            self.any_success = true;
            return None;
        }
        if self.domains.insert(domain.to_string()) {
            self.failures.push((domain.to_string(), first));
        }
        let same = self.failures.iter().all(|(_, kind)| *kind == first);
        if !same {
            self.any_success = true;
            return None;
        }
        (self.failures.len() >= BLOCKED_AFTER_DOMAINS).then(|| {
            let names = self
                .failures
                .iter()
                .map(|(domain, _)| domain.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "this network seems to block outgoing connections to port 25 (every mail server of {} domains {first}: {names}); \
                 most home and cloud networks do. Send through a relay (mode = \"relay\") or let relays take over (mode = \"mixed\")",
                self.failures.len()
            )
        })
    }
}

/// Where a direct attempt's recipient goes next in mixed mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixedRoute {
    /// Record the attempt as direct mode would.
    Direct,
    /// Hand the recipient to the backup relays now.
    Relay,
}

/// Mixed mode's table: a relay can fix what is about us or about the path (our IP's
/// reputation: 5.7.x; throttling that outlasted the attempts: 4xx; unreachable hosts), not
/// what is about the recipient (5.1.x no such user, null MX, other 5xx), nor a message the
/// server may already have (uncertain: a relay would duplicate it).
pub fn mixed_route(attempt: &Attempt, attempts_before: u32, max_attempts: u32) -> MixedRoute {
    match attempt {
        Attempt::Accepted(_) | Attempt::Uncertain(_) => MixedRoute::Direct,
        Attempt::Permanent(reply) => {
            let policy = reply
                .enhanced
                .as_deref()
                .is_some_and(|code| code.starts_with("5.7."));
            if policy {
                MixedRoute::Relay
            } else {
                MixedRoute::Direct
            }
        }
        Attempt::Temporary(_) if attempts_before.saturating_add(1) >= max_attempts => {
            MixedRoute::Relay
        }
        Attempt::Temporary(_) => MixedRoute::Direct,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::outcome::{local_reply, reply};

    #[test]
    fn presets_match_by_mx_host_suffix() {
        let check = |host: &str, expected: &str| {
            assert_eq!(preset_for(host).0, expected, "{host}");
        };
        check("gmail-smtp-in.l.google.com.", "Gmail");
        check("alt1.gmail-smtp-in.l.google.com", "Gmail");
        check("aspmx.l.google.com", "Gmail");
        check("gmail-smtp-in.googlemail.com", "Gmail");
        check("mta5.am0.yahoodns.net", "Yahoo");
        check("acme-com.mail.protection.outlook.com", "Outlook");
        check("eur.olc.protection.outlook.com.", "Outlook");
        check("mx01.mail.icloud.com", "iCloud");
        check("mx.acme.example", "default");
        // A suffix must end on a label boundary.
        check("notgoogle.com", "default");
        check("google.com.evil.example", "default");
        assert_eq!(preset_for("aspmx.l.google.com").1.connections, 5);
        assert_eq!(
            preset_for("mta5.am0.yahoodns.net")
                .1
                .messages_per_connection,
            20
        );
        assert_eq!(preset_for("x.example").1, DEFAULT_LIMITS);
    }

    #[test]
    fn user_limits_override_the_preset_for_their_domain_only() {
        let overrides = vec![DomainLimitsSpec {
            name: "gmail.com".into(),
            connections: Some(2),
            messages_per_connection: None,
            rate_per_hour: Some(1_000),
        }];
        let gmail = limits_for("gmail.com", "gmail-smtp-in.l.google.com", &overrides);
        assert_eq!(
            gmail,
            Limits {
                connections: 2,
                messages_per_connection: 50,
                rate_per_hour: 1_000
            }
        );
        let workspace = limits_for("acme.example", "aspmx.l.google.com", &overrides);
        assert_eq!(workspace.connections, 5);
    }

    #[test]
    fn backoff_slows_on_421_and_recovers_gradually() {
        let start = Instant::now();
        let mut backoff = Backoff::new(Duration::from_secs(10));
        assert_eq!(backoff.connections(8), 8);
        assert_eq!(
            backoff.observe(Signal::Closing, start),
            Some(Duration::from_secs(10))
        );
        assert_eq!(backoff.connections(8), 4);
        assert_eq!(backoff.paused(start), Some(start + Duration::from_secs(10)));
        assert!(backoff.describe(8, start).unwrap().contains("paused 10 s"));
        // A second 421 doubles the pause and halves again.
        assert_eq!(
            backoff.observe(Signal::Closing, start),
            Some(Duration::from_secs(20))
        );
        assert_eq!(backoff.connections(8), 2);
        let later = start + Duration::from_secs(21);
        assert_eq!(backoff.paused(later), None);
        // Recovery: one level per run of successes.
        for _ in 0..RECOVER_AFTER {
            backoff.observe(Signal::Success, later);
        }
        assert_eq!(backoff.level, 1);
        for _ in 0..RECOVER_AFTER {
            backoff.observe(Signal::Success, later);
        }
        assert_eq!((backoff.level, backoff.connections(8)), (0, 8));
        assert_eq!(backoff.describe(8, later), None);
        // Levels stop at the maximum, connections never below one.
        for _ in 0..10 {
            backoff.observe(Signal::Closing, later);
        }
        assert_eq!(backoff.level, MAX_LEVEL);
        assert_eq!(backoff.connections(2), 1);
    }

    #[test]
    fn a_run_of_temporary_replies_slows_but_scattered_ones_do_not() {
        let now = Instant::now();
        let mut backoff = Backoff::new(Duration::from_secs(1));
        for _ in 0..TEMPORARY_RUN - 1 {
            assert_eq!(backoff.observe(Signal::Temporary, now), None);
        }
        backoff.observe(Signal::Success, now);
        for _ in 0..TEMPORARY_RUN - 1 {
            assert_eq!(backoff.observe(Signal::Temporary, now), None);
        }
        assert_eq!(backoff.level, 0);
        assert!(backoff.observe(Signal::Temporary, now).is_some());
        assert_eq!(backoff.level, 1);
        assert_eq!(backoff.observe(Signal::Neutral, now), None);
    }

    #[test]
    fn port_watch_needs_several_domains_failing_alike_and_no_success() {
        let mut watch = PortWatch::default();
        assert_eq!(
            watch.unreachable("a.example", &["timed out", "timed out"]),
            None
        );
        assert_eq!(watch.unreachable("a.example", &["timed out"]), None);
        assert_eq!(watch.unreachable("b.example", &["timed out"]), None);
        let verdict = watch.unreachable("c.example", &["timed out"]).unwrap();
        assert!(
            verdict.contains("port 25") && verdict.contains("mixed"),
            "{verdict}"
        );

        let mut refused = PortWatch::default();
        refused.unreachable("a.example", &["refused"]);
        refused.unreachable("b.example", &["timed out"]);
        assert_eq!(refused.unreachable("c.example", &["refused"]), None);
        assert_eq!(refused.unreachable("d.example", &["refused"]), None);

        let mut reached = PortWatch::default();
        reached.success();
        for domain in ["a", "b", "c", "d"] {
            assert_eq!(reached.unreachable(domain, &["refused"]), None);
        }
    }

    #[test]
    fn mixed_mode_sends_what_a_relay_can_fix_to_the_relays() {
        use MixedRoute::{Direct, Relay};
        let check = |attempt: Attempt, before: u32, expected: MixedRoute| {
            assert_eq!(
                mixed_route(&attempt, before, 3),
                expected,
                "{attempt:?} after {before}"
            );
        };
        let code = |c: u16, text: &str| reply(c, text);
        check(Attempt::Accepted(code(250, "2.0.0 ok")), 0, Direct);
        check(
            Attempt::Permanent(code(550, "5.1.1 no such user")),
            0,
            Direct,
        );
        check(Attempt::Permanent(code(554, "5.6.0 content")), 0, Direct);
        check(Attempt::Permanent(code(550, "denied")), 0, Direct);
        check(
            Attempt::Permanent(code(550, "5.7.1 blocked by policy")),
            0,
            Relay,
        );
        check(
            Attempt::Permanent(code(550, "5.7.26 unauthenticated")),
            0,
            Relay,
        );
        check(Attempt::Temporary(code(451, "4.7.0 try later")), 0, Direct);
        check(Attempt::Temporary(code(451, "4.7.0 try later")), 1, Direct);
        check(Attempt::Temporary(code(451, "4.7.0 try later")), 2, Relay);
        check(
            Attempt::Temporary(local_reply("no reply to RCPT")),
            2,
            Relay,
        );
        check(
            Attempt::Uncertain(local_reply("lost after DATA")),
            2,
            Direct,
        );
    }
}
