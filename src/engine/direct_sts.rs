//! How a recipient domain's MTA-STS policy (RFC 8461, found by `mtasts`) shapes direct
//! delivery: which of its MX hosts may be tried and with what TLS, and the sentences a marketer
//! reads when a policy stops delivery. `enforce`: only hosts the policy lists, only over
//! STARTTLS with a certificate verified for the MX name (public roots plus `[direct] ca_file`);
//! `testing`: every host as without a policy, with a note of what enforcement would refuse (RFC
//! 8461 §5: deliver, but report); no policy: opportunistic STARTTLS. Pure: never connects.

use super::dns::{Destination, MxHost};
use crate::mtasts::{Mode, Policy};

/// How to use TLS with one MX host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HostTls {
    /// STARTTLS when offered, certificate unchecked (RFC 7435); `note` says what an enforced
    /// policy would have refused here.
    Opportunistic { note: Option<String> },
    /// STARTTLS required, certificate verified for the MX name (an enforce policy).
    Required,
    /// A testing policy: as `Required` first; if TLS fails, noted and tried opportunistically.
    Trial,
}

/// The hosts of `destination` to try, in order, and how; empty when an enforce policy lists
/// none of them.
pub(super) fn plan<'a>(
    domain: &str,
    destination: &'a Destination,
    policy: Option<&Policy>,
) -> Vec<(&'a MxHost, HostTls)> {
    let Some(policy) = policy else {
        return opportunistic(destination);
    };
    match policy.mode {
        Mode::None => opportunistic(destination),
        Mode::Enforce => destination
            .hosts
            .iter()
            .filter(|host| policy.allows(&host.name))
            .map(|host| (host, HostTls::Required))
            .collect(),
        Mode::Testing => destination
            .hosts
            .iter()
            .map(|host| {
                let tls = if policy.allows(&host.name) {
                    HostTls::Trial
                } else {
                    HostTls::Opportunistic {
                        note: Some(unlisted_note(domain, policy, &host.name)),
                    }
                };
                (host, tls)
            })
            .collect(),
    }
}

fn opportunistic(destination: &Destination) -> Vec<(&MxHost, HostTls)> {
    destination
        .hosts
        .iter()
        .map(|host| (host, HostTls::Opportunistic { note: None }))
        .collect()
}

/// Why an enforce domain gets nothing: none of its MX hosts is one its policy lists.
pub(super) fn no_listed_mx(domain: &str, policy: &Policy, destination: &Destination) -> String {
    let hosts = destination
        .hosts
        .iter()
        .map(|host| host.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "not sent: {domain} publishes an MTA-STS policy that allows its mail only to {}, and none of its mail servers ({hosts}) is one of them; Herald sends it nowhere else and will try again later",
        policy.patterns()
    )
}

/// Why an enforce domain gets nothing: no listed MX host gave verified TLS.
pub(super) fn no_secure_mx(domain: &str, reasons: &[String]) -> String {
    format!(
        "not sent: {domain} publishes an MTA-STS policy that requires an encrypted connection with a certificate valid for its mail server, and none of its listed mail servers gave one ({}); nothing was sent unencrypted, and Herald will try again later",
        reasons.join("; ")
    )
}

/// A testing policy's note for a host it does not list.
fn unlisted_note(domain: &str, policy: &Policy, host: &str) -> String {
    format!(
        "MTA-STS testing: {domain}'s policy lists {}, not {host}; once enforced, this server would not be used",
        policy.patterns()
    )
}

/// A testing policy's note for a listed host whose TLS would not pass.
pub(super) fn trial_note(host: &str, reason: &str) -> String {
    format!("MTA-STS testing: once enforced, {host} would be refused: {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(names: &[&str]) -> Destination {
        Destination {
            hosts: names
                .iter()
                .map(|name| MxHost {
                    name: name.to_string(),
                    addresses: vec![std::net::IpAddr::from([127, 0, 0, 1])],
                    problem: None,
                })
                .collect(),
            implicit: false,
        }
    }

    fn policy(mode: Mode) -> Policy {
        Policy {
            mode,
            mx: vec!["*.mx.example".into()],
            max_age_secs: 60,
        }
    }

    fn names(plan: &[(&MxHost, HostTls)]) -> Vec<(String, HostTls)> {
        plan.iter()
            .map(|(host, tls)| (host.name.clone(), tls.clone()))
            .collect()
    }

    #[test]
    fn enforce_keeps_only_listed_hosts_and_requires_tls() {
        let hosts = destination(&["a.mx.example", "rogue.example", "b.mx.example"]);
        let enforce = policy(Mode::Enforce);
        assert_eq!(
            names(&plan("example", &hosts, Some(&enforce))),
            [
                ("a.mx.example".to_string(), HostTls::Required),
                ("b.mx.example".to_string(), HostTls::Required)
            ]
        );
        let none = destination(&["rogue.example"]);
        assert!(plan("example", &none, Some(&enforce)).is_empty());
        assert!(no_listed_mx("example", &enforce, &none).contains("*.mx.example"));
    }

    #[test]
    fn testing_and_no_policy_try_every_host() {
        let hosts = destination(&["a.mx.example", "rogue.example"]);
        let testing = plan("example", &hosts, Some(&policy(Mode::Testing)));
        assert_eq!(testing.len(), 2);
        assert_eq!(testing[0].1, HostTls::Trial);
        assert!(matches!(
            &testing[1].1,
            HostTls::Opportunistic { note: Some(note) } if note.contains("rogue.example")
        ));
        for policy in [None, Some(policy(Mode::None))] {
            let plain = plan("example", &hosts, policy.as_ref());
            assert!(
                plain
                    .iter()
                    .all(|(_, tls)| *tls == HostTls::Opportunistic { note: None })
            );
        }
    }
}
