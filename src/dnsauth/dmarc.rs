//! DMARC (RFC 7489): the policy record at `_dmarc.` the From domain, else at its organizational
//! domain (§6.6.3, by the public suffix list), read by mail-auth; the policy that applies to
//! this From domain (`sp=` for a subdomain found through its organizational domain); and
//! whether this campaign's mail will align (§3.1: From vs DKIM `d=`, From vs the envelope
//! domain; relaxed compares organizational domains, strict the names).

use mail_auth::common::parse::TxtRecordParser as _;
use mail_auth::dmarc::{Alignment, Dmarc, Policy};

use super::dkim::DkimOutcome;
use super::dns::{Dns, Missing};
use super::spf::SpfOutcome;
use super::{Finding, Level, Mechanism, Plan, organizational_domain};

/// What the DNS holds for the From domain.
pub enum Lookup {
    Found {
        /// The `_dmarc.` name the record was found at.
        name: String,
        record: String,
        parsed: Box<Dmarc>,
        /// Found at the organizational domain for a From subdomain.
        inherited: bool,
    },
    /// No record at any of these names.
    Absent(Vec<String>),
    /// A record that cannot be used: several, or one that does not parse.
    Unusable {
        name: String,
        record: String,
        why: String,
    },
    Failed {
        name: String,
        why: String,
    },
}

pub async fn look_up(dns: &Dns, from_domain: &str) -> Lookup {
    let first = format!("_dmarc.{from_domain}");
    match at(dns, &first, false).await {
        Lookup::Absent(_) => {}
        other => return other,
    }
    let organizational = organizational_domain(from_domain);
    if organizational == from_domain {
        return Lookup::Absent(vec![first]);
    }
    let second = format!("_dmarc.{organizational}");
    match at(dns, &second, true).await {
        Lookup::Absent(_) => Lookup::Absent(vec![first, second]),
        other => other,
    }
}

async fn at(dns: &Dns, name: &str, inherited: bool) -> Lookup {
    let records = match dns.txt(name).await {
        Ok(records) => records,
        Err(Missing::NotFound) => return Lookup::Absent(vec![name.to_string()]),
        Err(Missing::Failed(why)) => {
            return Lookup::Failed {
                name: name.to_string(),
                why,
            };
        }
    };
    let dmarc: Vec<&String> = records
        .iter()
        .filter(|record| {
            record
                .trim_start()
                .get(..8)
                .is_some_and(|start| start.eq_ignore_ascii_case("v=DMARC1"))
        })
        .collect();
    match dmarc.as_slice() {
        [] => Lookup::Absent(vec![name.to_string()]),
        [record] => match Dmarc::parse(record.as_bytes()) {
            Ok(parsed) => Lookup::Found {
                name: name.to_string(),
                record: (*record).clone(),
                parsed: Box::new(parsed),
                inherited,
            },
            Err(error) => Lookup::Unusable {
                name: name.to_string(),
                record: (*record).clone(),
                why: format!("it cannot be read ({error})"),
            },
        },
        // RFC 7489 §6.6.3: more than one record means no DMARC policy at all.
        several => Lookup::Unusable {
            name: name.to_string(),
            record: several
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" | "),
            why: format!(
                "{} DMARC records are published there, which receivers read as none (RFC 7489 §6.6.3)",
                several.len()
            ),
        },
    }
}

/// Aligned identifiers (RFC 7489 §3.1): strict wants the same name, relaxed the same
/// organizational domain.
fn aligned(identifier: &str, from: &str, mode: Alignment) -> bool {
    let identifier = identifier.trim_end_matches('.').to_ascii_lowercase();
    let from = from.trim_end_matches('.').to_ascii_lowercase();
    match mode {
        Alignment::Strict => identifier == from,
        Alignment::Relaxed => organizational_domain(&identifier) == organizational_domain(&from),
    }
}

fn mode_name(mode: Alignment) -> &'static str {
    match mode {
        Alignment::Strict => "strict",
        Alignment::Relaxed => "relaxed",
    }
}

const BULK_RULES: &str = "Gmail and Yahoo (since February 2024) and Outlook.com (since May 2025) require bulk senders (5,000+ messages a day) to publish DMARC and to align the From domain with DKIM or SPF";

// Long for its sentences, not its decisions: each outcome (absent, unusable, aligned, not
// aligned under each policy) carries its own words and fix; the decision is the few lines
// that compute the policy and the two alignments.
pub fn evaluate(plan: &Plan, lookup: &Lookup, spf: &SpfOutcome, dkim: &DkimOutcome) -> Finding {
    let from = plan.from_domain.as_str();
    let organizational = organizational_domain(from);
    let suggestion = format!(
        "publish a TXT record at _dmarc.{organizational}: v=DMARC1; p=none; rua=mailto:postmaster@{organizational}"
    );
    let (name, record, parsed, inherited) = match lookup {
        Lookup::Failed { name, why } => {
            return Finding::unchecked(Mechanism::Dmarc, name.clone(), why);
        }
        Lookup::Absent(names) => {
            return Finding::new(Mechanism::Dmarc, Level::Amber, names.join(", "))
                .summary(format!(
                    "no DMARC record at {}: receivers apply no policy, but {BULK_RULES}",
                    names.join(" or ")
                ))
                .fix(suggestion);
        }
        Lookup::Unusable { name, record, why } => {
            return Finding::new(Mechanism::Dmarc, Level::Amber, name.clone())
                .summary(format!("the DMARC record is unusable: {why}"))
                .record(Some(record.clone()))
                .fix(format!("keep one valid record: {suggestion}"));
        }
        Lookup::Found {
            name,
            record,
            parsed,
            inherited,
        } => (name, record, parsed, *inherited),
    };
    // §6.6.3: a subdomain found through its organizational domain takes sp=.
    let policy = if inherited { parsed.sp } else { parsed.p };
    let policy_name = match policy {
        Policy::Reject => "reject",
        Policy::Quarantine => "quarantine",
        Policy::None | Policy::Unspecified => "none",
    };
    let dkim_domain = plan.dkim.as_ref().map(|dkim| dkim.domain.as_str());
    let dkim_aligns = dkim_domain.is_some_and(|d| aligned(d, from, parsed.adkim));
    let spf_aligns = aligned(&plan.envelope_domain, from, parsed.aspf);
    let through_dkim = dkim.verifies && dkim_aligns;
    let through_spf = spf.all_pass && spf_aligns;
    let base =
        Finding::new(Mechanism::Dmarc, Level::Green, name.clone()).record(Some(record.clone()));
    let via = if inherited {
        format!(" (found at the organizational domain {organizational})")
    } else {
        String::new()
    };
    if through_dkim || through_spf {
        let mut ways = Vec::new();
        if through_dkim {
            ways.push(format!(
                "DKIM (d={}, {})",
                dkim_domain.unwrap_or_default(),
                mode_name(parsed.adkim)
            ));
        }
        if through_spf {
            ways.push(format!(
                "SPF ({}, {})",
                plan.envelope_domain,
                mode_name(parsed.aspf)
            ));
        }
        return base.summary(format!(
            "p={policy_name}{via}; this mail aligns through {}",
            ways.join(" and ")
        ));
    }
    // Why neither identifier aligns, in the record's own terms.
    let mut reasons = Vec::new();
    match dkim_domain {
        None => reasons.push("the campaign does not sign with DKIM".to_string()),
        Some(d) if !dkim_aligns => reasons.push(format!(
            "DKIM d={d} does not match {from} under adkim={} ({})",
            if parsed.adkim == Alignment::Strict {
                "s"
            } else {
                "r"
            },
            mode_name(parsed.adkim)
        )),
        Some(d) => reasons.push(format!(
            "DKIM d={d} would align, but its key record is not right (see DKIM)"
        )),
    }
    if !spf_aligns {
        reasons.push(format!(
            "the envelope domain {} does not match {from} under aspf={} ({})",
            plan.envelope_domain,
            if parsed.aspf == Alignment::Strict {
                "s"
            } else {
                "r"
            },
            mode_name(parsed.aspf)
        ));
    } else {
        reasons.push(format!(
            "SPF of {} does not pass for every address the mail leaves from (see SPF)",
            plan.envelope_domain
        ));
    }
    let fix = match dkim_domain {
        Some(d)
            if !dkim_aligns
                && parsed.adkim == Alignment::Strict
                && aligned(d, from, Alignment::Relaxed) =>
        {
            format!(
                "sign with [dkim] domain = \"{from}\" (adkim=s wants the exact From domain), or relax the record to adkim=r"
            )
        }
        Some(d) if !dkim_aligns => {
            format!("sign with [dkim] domain = \"{from}\" (now {d}) and publish its key there")
        }
        Some(_) => "fix the DKIM record (see DKIM)".to_string(),
        None => format!("sign with DKIM for {from} ([dkim] domain = \"{from}\")"),
    };
    let level = match policy {
        Policy::Reject | Policy::Quarantine => Level::Red,
        Policy::None | Policy::Unspecified => Level::Amber,
    };
    let outcome = match policy {
        Policy::Reject => "receivers will refuse this mail",
        Policy::Quarantine => "receivers will put this mail in spam",
        Policy::None | Policy::Unspecified => {
            "receivers deliver it for now (p=none), but it fails DMARC"
        }
    };
    Finding { level, ..base }
        .summary(format!(
            "p={policy_name}{via}: this mail aligns through neither DKIM nor SPF ({}), so {outcome}; {BULK_RULES}",
            reasons.join("; ")
        ))
        .fix(fix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_modes() {
        assert!(aligned(
            "news.acme.example",
            "acme.example",
            Alignment::Relaxed
        ));
        assert!(!aligned(
            "news.acme.example",
            "acme.example",
            Alignment::Strict
        ));
        assert!(aligned("Acme.Example.", "acme.example", Alignment::Strict));
        assert!(!aligned(
            "acme.example",
            "other.example",
            Alignment::Relaxed
        ));
        assert!(aligned("a.acme.co.uk", "b.acme.co.uk", Alignment::Relaxed));
        assert!(!aligned("acme.co.uk", "other.co.uk", Alignment::Relaxed));
    }
}
