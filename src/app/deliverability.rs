//! The deliverability check as a use case (issue #23): the findings of `dnsauth` for a campaign
//! and which of them stop a send. `herald check` and `herald send` (cli/deliverability.rs), the
//! window's Start (`presend`) and its "Deliverability (DNS)" panel on Publish (through the
//! service) all call this, so what stops a send is decided once. Re-exports the plain types the
//! front ends show, which never name `dnsauth` themselves. Blocking: DNS can take seconds, so it
//! runs on a plain thread (the CLI, the service's own threads), never on the UI thread.

use crate::campaign::Campaign;
use crate::dnsauth;

pub use crate::dnsauth::{Finding, Level, Mechanism};

/// Every finding of the check for `campaign`: one or more per mechanism, green, amber or red,
/// with the record seen and the fix. A lookup that failed is amber ("could not check").
pub fn findings(campaign: &Campaign) -> Vec<Finding> {
    dnsauth::check(campaign)
}

/// The findings that stop a send: the red ones (a receiver would refuse or junk the mail).
pub fn blocking(findings: &[Finding]) -> impl Iterator<Item = &Finding> {
    dnsauth::blocking(findings)
}

/// How many findings stop a send; none when the user said to send anyway (`--ignore-dns`).
pub fn stopping(findings: &[Finding], ignore: bool) -> usize {
    if ignore {
        0
    } else {
        blocking(findings).count()
    }
}

/// The findings worth saying before a send: those that are not green, in order.
pub fn worth_saying(findings: Vec<Finding>) -> Vec<Finding> {
    findings
        .into_iter()
        .filter(|finding| finding.level != Level::Green)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(level: Level) -> Finding {
        Finding {
            mechanism: Mechanism::Spf,
            level,
            subject: "acme.example".into(),
            summary: level.as_str().into(),
            record: None,
            fix: None,
        }
    }

    #[test]
    fn only_red_stops_a_send_and_ignoring_stops_nothing() {
        let all = vec![
            finding(Level::Green),
            finding(Level::Amber),
            finding(Level::Red),
            finding(Level::Red),
        ];
        assert_eq!(stopping(&all, false), 2);
        assert_eq!(stopping(&all, true), 0);
        assert_eq!(stopping(&all[..2], false), 0);
        let said: Vec<Level> = worth_saying(all).iter().map(|f| f.level).collect();
        assert_eq!(said, [Level::Amber, Level::Red, Level::Red]);
    }
}
