//! The deliverability check of issue #23: will receivers accept this campaign's mail? It reads
//! the DNS that decides it (SPF for each address the mail leaves from, the DKIM key record, the
//! DMARC policy and this mail's alignment with it, reverse DNS in direct mode) and returns
//! findings as plain data: the mechanism, green/amber/red, the record seen and the sentence
//! saying what to fix. Owns `mail-auth` (SPF and DMARC evaluation, RFC 7208 and RFC 7489) and
//! `psl` (organizational domains). Asks through the resolver direct mode uses
//! (`engine::dns::build_resolver`: `[direct] nameservers`, else the system's). Never sends mail,
//! touches the store or prints; a check that cannot be made is amber ("could not check"),
//! never red, so an offline laptop is told, not blocked.

mod dkim;
mod dmarc;
mod dns;
mod plan;
mod providers;
mod ptr;
mod spf;

use std::time::Duration;

use serde::Serialize;

use crate::campaign::Campaign;

pub use plan::{DirectPlan, DkimPlan, Plan, RelayPlan, public_address};
pub use providers::{PROVIDERS, Provider, provider_of};

/// How a receiver would take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// As receivers want it.
    Green,
    /// Worth fixing, or could not be checked; never stops a send.
    Amber,
    /// A receiver would refuse or junk this mail; `herald send` stops unless told otherwise.
    Red,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Green => "green",
            Level::Amber => "amber",
            Level::Red => "red",
        }
    }
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    Spf,
    Dkim,
    Dmarc,
    /// Reverse DNS of the sending address and its forward confirmation (direct mode).
    Ptr,
    /// A hosted mailbox provider's relay and its sending limits.
    Provider,
}

impl Mechanism {
    pub fn label(self) -> &'static str {
        match self {
            Mechanism::Spf => "SPF",
            Mechanism::Dkim => "DKIM",
            Mechanism::Dmarc => "DMARC",
            Mechanism::Ptr => "PTR",
            Mechanism::Provider => "provider",
        }
    }
}

/// One result of the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub mechanism: Mechanism,
    pub level: Level,
    /// What was checked, e.g. `acme.example for 192.0.2.1 (relay "primary")`.
    pub subject: String,
    /// What was found, as one sentence (SPF results as RFC 7208 names them).
    pub summary: String,
    /// The DNS record seen, its strings joined, when there was one.
    pub record: Option<String>,
    /// What to change (often the exact record to publish); None when nothing needs to.
    pub fix: Option<String>,
}

impl Finding {
    fn new(mechanism: Mechanism, level: Level, subject: impl Into<String>) -> Finding {
        Finding {
            mechanism,
            level,
            subject: subject.into(),
            summary: String::new(),
            record: None,
            fix: None,
        }
    }

    fn summary(mut self, summary: impl Into<String>) -> Finding {
        self.summary = summary.into();
        self
    }

    fn record(mut self, record: Option<String>) -> Finding {
        self.record = record;
        self
    }

    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }

    /// The amber finding of a check that could not be made.
    fn unchecked(mechanism: Mechanism, subject: impl Into<String>, why: &str) -> Finding {
        Finding::new(mechanism, Level::Amber, subject)
            .summary(format!("could not check: {why}"))
            .fix("check again when the DNS answers; this does not stop a send")
    }
}

/// The red findings, which stop `herald send` unless it is given `--ignore-dns`.
pub fn blocking(findings: &[Finding]) -> impl Iterator<Item = &Finding> {
    findings
        .iter()
        .filter(|finding| finding.level == Level::Red)
}

/// Runs the whole check for a campaign. Blocking: it runs on a small runtime of its own, so
/// call it from a plain thread (the CLI, the window's service thread), never from async code.
pub fn check(campaign: &Campaign) -> Vec<Finding> {
    check_plan(&Plan::from_campaign(campaign))
}

/// [`check`] for a plan made by hand (tests, or a caller that already knows the addresses).
pub fn check_plan(plan: &Plan) -> Vec<Finding> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return unchecked_all(plan, &format!("no runtime for DNS lookups ({error})"));
        }
    };
    runtime.block_on(check_async(plan))
}

/// The check itself. Lookups run concurrently; the resolver's cache makes a name asked by two
/// mechanisms cost one round trip. Bounded as a whole, so a DNS that answers slowly cannot hold
/// a send for longer than a few query timeouts.
pub async fn check_async(plan: &Plan) -> Vec<Finding> {
    let dns = match dns::Dns::new(&plan.nameservers, plan.timeout_secs) {
        Ok(dns) => dns,
        Err(error) => return unchecked_all(plan, &error),
    };
    let bound = Duration::from_secs(u64::from(plan.timeout_secs.max(1)) * 4 + 5);
    match tokio::time::timeout(bound, run(&dns, plan)).await {
        Ok(findings) => findings,
        Err(_) => unchecked_all(
            plan,
            &format!(
                "the DNS did not finish answering within {} s",
                bound.as_secs()
            ),
        ),
    }
}

async fn run(dns: &dns::Dns, plan: &Plan) -> Vec<Finding> {
    let (spf, dkim, dmarc_record, ptr) = tokio::join!(
        spf::check(dns, plan),
        dkim::check(dns, plan),
        dmarc::look_up(dns, &plan.from_domain),
        ptr::check(dns, plan),
    );
    let dmarc = dmarc::evaluate(plan, &dmarc_record, &spf, &dkim);
    let mut findings = spf.findings;
    findings.extend(dkim.findings);
    findings.push(dmarc);
    findings.extend(ptr);
    findings.extend(providers::notes(plan));
    findings
}

/// One amber "could not check" per mechanism the plan would have checked.
fn unchecked_all(plan: &Plan, why: &str) -> Vec<Finding> {
    let mut findings = vec![
        Finding::unchecked(Mechanism::Spf, plan.envelope_domain.clone(), why),
        Finding::unchecked(
            Mechanism::Dkim,
            plan.dkim
                .as_ref()
                .map(DkimPlan::record_name)
                .unwrap_or_else(|| plan.from_domain.clone()),
            why,
        ),
        Finding::unchecked(
            Mechanism::Dmarc,
            format!("_dmarc.{}", plan.from_domain),
            why,
        ),
    ];
    if let Some(direct) = &plan.direct {
        let subject = direct
            .public_ip
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| direct.helo.clone());
        findings.push(Finding::unchecked(Mechanism::Ptr, subject, why));
    }
    findings.extend(providers::notes(plan));
    findings
}

/// The organizational domain (RFC 7489 §3.2): the public suffix plus one label, by the public
/// suffix list; a name under no listed suffix is taken to sit under its last label.
pub fn organizational_domain(domain: &str) -> String {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&domain)
        .map(str::to_string)
        .unwrap_or(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organizational_domains_follow_the_public_suffix_list() {
        let check = |domain: &str, expected: &str| {
            assert_eq!(organizational_domain(domain), expected, "{domain}");
        };
        check("news.acme.example", "acme.example");
        check("acme.example", "acme.example");
        check("mail.news.acme.co.uk", "acme.co.uk");
        check("Bounce.Acme.Test.", "acme.test");
        check("example.com", "example.com");
    }

    #[test]
    fn only_red_blocks() {
        let finding = |level| Finding::new(Mechanism::Spf, level, "x");
        let findings = [
            finding(Level::Green),
            finding(Level::Amber),
            finding(Level::Red),
        ];
        assert_eq!(blocking(&findings).count(), 1);
    }
}
