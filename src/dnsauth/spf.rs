//! SPF (RFC 7208) of the envelope domain, evaluated by mail-auth for each address the mail
//! will leave from: each relay host's addresses, and in direct mode this machine's public
//! address. One finding per source and result, with the record as published and, when an
//! address is left out, the record with the missing term added (a hosted relay's documented
//! `include:`, else `ip4:`/`ip6:`).

use std::net::IpAddr;

use futures_util::future::join_all;
use mail_auth::SpfResult;

use super::dns::{Dns, Missing};
use super::providers::{Provider, provider_of};
use super::{Finding, Level, Mechanism, Plan};

/// What the SPF half of the check found.
pub struct SpfOutcome {
    pub findings: Vec<Finding>,
    /// Every address the mail leaves from passes: DMARC's SPF half can align.
    pub all_pass: bool,
}

/// Where mail leaves from, and the name it greets with.
struct Source {
    /// How the findings name it.
    via: String,
    helo: String,
    provider: Option<&'static Provider>,
    addresses: Result<Vec<IpAddr>, String>,
}

pub async fn check(dns: &Dns, plan: &Plan) -> SpfOutcome {
    let domain = plan.envelope_domain.as_str();
    // The record as published, for the findings, asked while the relays' addresses are; the
    // evaluation's own lookup of the same name is then answered from the resolver's cache.
    let (published, sources) = tokio::join!(dns.txt(domain), sources(dns, plan));
    let records: Vec<&String> = match &published {
        Ok(records) => records.iter().filter(|record| is_spf(record)).collect(),
        Err(_) => Vec::new(),
    };
    let record = match records.as_slice() {
        [] => None,
        [one] => Some((*one).clone()),
        several => Some(
            several
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" | "),
        ),
    };
    let mut findings = Vec::new();
    let mut all_pass = !sources.is_empty();
    for source in sources {
        let addresses = match &source.addresses {
            Ok(addresses) => addresses.clone(),
            Err(why) => {
                all_pass = false;
                findings.push(
                    Finding::unchecked(Mechanism::Spf, format!("{domain} ({})", source.via), why)
                        .record(record.clone()),
                );
                continue;
            }
        };
        let results = join_all(
            addresses
                .iter()
                .map(|ip| dns.spf(*ip, &source.helo, &plan.envelope_sender)),
        )
        .await;
        // One finding per result, naming the addresses that got it.
        let mut grouped: Vec<(SpfResult, Vec<IpAddr>)> = Vec::new();
        for (ip, result) in addresses.iter().zip(results) {
            all_pass &= result == SpfResult::Pass;
            match grouped.iter_mut().find(|(seen, _)| *seen == result) {
                Some((_, ips)) => ips.push(*ip),
                None => grouped.push((result, vec![*ip])),
            }
        }
        for (result, ips) in grouped {
            findings.push(finding(
                domain,
                &source,
                &ips,
                result,
                record.as_deref(),
                records.len(),
            ));
        }
    }
    SpfOutcome { findings, all_pass }
}

async fn sources(dns: &Dns, plan: &Plan) -> Vec<Source> {
    let relays = join_all(plan.relays.iter().map(|relay| async move {
        let addresses = dns
            .addresses(&relay.host)
            .await
            .map_err(|missing| match missing {
                Missing::NotFound => format!("the relay host {} has no address in DNS", relay.host),
                Missing::Failed(why) => why,
            });
        let is_literal = relay
            .host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok();
        Source {
            via: if is_literal {
                format!("relay \"{}\"", relay.name)
            } else {
                format!("relay \"{}\", {}", relay.name, relay.host)
            },
            helo: relay.host.clone(),
            provider: provider_of(&relay.host),
            addresses,
        }
    }))
    .await;
    let mut sources = relays;
    if let Some(direct) = &plan.direct {
        sources.push(Source {
            via: "this machine, direct mode".into(),
            helo: direct.helo.clone(),
            provider: None,
            addresses: match (direct.public_ip, &direct.unknown_because) {
                (Some(ip), _) => Ok(vec![ip]),
                (None, why) => Err(format!(
                    "{}; set [direct] public_ip to the address receivers see",
                    why.as_deref()
                        .unwrap_or("this machine's public address is not known")
                )),
            },
        });
    }
    sources
}

/// RFC 7208 §4.5: an SPF record starts with `v=spf1` followed by a space or nothing.
fn is_spf(record: &str) -> bool {
    let lower = record.trim_start().to_ascii_lowercase();
    lower == "v=spf1" || lower.starts_with("v=spf1 ")
}

/// Whether the record ends in `all` with the pass qualifier (`+all` or a bare `all`).
fn passes_everyone(record: &str) -> bool {
    record
        .split_whitespace()
        .any(|term| term.eq_ignore_ascii_case("+all") || term.eq_ignore_ascii_case("all"))
}

fn result_name(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

// Long for its sentences: one arm per RFC 7208 result, each with the words and the record to
// publish that a marketer needs; the decision is the `match result` itself.
fn finding(
    domain: &str,
    source: &Source,
    ips: &[IpAddr],
    result: SpfResult,
    record: Option<&str>,
    record_count: usize,
) -> Finding {
    let list = ips
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let subject = format!("{domain} for {list} ({})", source.via);
    let name = result_name(result);
    let (term, term_says) = match source.provider {
        Some(provider) => (
            format!("include:{}", provider.spf_include),
            format!(
                "include:{} (what {} documents for its senders)",
                provider.spf_include, provider.name
            ),
        ),
        None => {
            let terms = ips
                .iter()
                .map(|ip| match ip {
                    IpAddr::V4(v4) => format!("ip4:{v4}"),
                    IpAddr::V6(v6) => format!("ip6:{v6}"),
                })
                .collect::<Vec<_>>()
                .join(" ");
            (terms.clone(), terms)
        }
    };
    let add_term = format!(
        "add {term_says} to the SPF record of {domain}: {}",
        suggest(record, &term)
    );
    let base =
        Finding::new(Mechanism::Spf, Level::Green, subject).record(record.map(str::to_string));
    let rewrites = source
        .provider
        .is_some_and(|provider| provider.own_return_path);
    let left_out = |level: Level, how: &str| {
        let level = if rewrites { Level::Amber } else { level };
        let mut summary = format!("{name}: the SPF record of {domain} {how} {list}");
        if let (true, Some(provider)) = (rewrites, source.provider) {
            summary.push_str(&format!(
                "; {} usually sends with its own domain in MAIL FROM, and then receivers do not read this record",
                provider.name
            ));
        }
        Finding {
            level,
            summary,
            ..base.clone()
        }
        .fix(add_term.clone())
    };
    match result {
        SpfResult::Pass if record.is_some_and(passes_everyone) => Finding {
            level: Level::Amber,
            ..base.clone()
        }
        .summary(format!(
            "pass, but only because the record ends in +all, which lets every address on the internet send as {domain}: receivers give it no weight"
        ))
        .fix(format!(
            "replace +all with -all (or ~all) after the terms for the servers that really send: {}",
            suggest(record.map(strip_all).as_deref(), &term)
        )),
        SpfResult::Pass => base
            .clone()
            .summary(format!("pass: the SPF record of {domain} allows {list}")),
        SpfResult::Fail => left_out(
            Level::Red,
            "leaves out (-all), so receivers refuse or junk mail from",
        ),
        SpfResult::SoftFail => left_out(
            Level::Amber,
            "does not list (~all), so receivers treat as suspicious mail from",
        ),
        SpfResult::Neutral => left_out(
            Level::Amber,
            "says nothing (?all) about, so receivers give no SPF credit to mail from",
        ),
        SpfResult::None => Finding {
            level: Level::Amber,
            ..base.clone()
        }
        .summary(format!(
            "none: {domain} publishes no SPF record; Gmail, Yahoo and Outlook.com want SPF or DKIM from everyone and both from bulk senders"
        ))
        .fix(format!(
            "publish a TXT record at {domain}: {}",
            suggest(None, &term)
        )),
        SpfResult::PermError => {
            let why = if record_count > 1 {
                format!(
                    "{domain} publishes {record_count} SPF records, and RFC 7208 §4.5 makes that an error"
                )
            } else {
                "the record or one it includes cannot be evaluated: more than 10 terms that need DNS lookups (include, a, mx, ptr, exists, redirect; RFC 7208 §4.6.4) or a syntax error".to_string()
            };
            Finding {
                level: Level::Red,
                ..base.clone()
            }
            .summary(format!("permerror: {why}; receivers treat it as a failure"))
            .fix(if record_count > 1 {
                format!("merge them into one TXT record at {domain}")
            } else {
                format!(
                    "flatten nested includes into ip4:/ip6: terms until at most 10 lookups remain, and check the syntax of the record at {domain} and those it includes"
                )
            })
        }
        SpfResult::TempError => Finding::unchecked(
            Mechanism::Spf,
            base.subject.clone(),
            &format!("the DNS gave no answer while evaluating the SPF record of {domain} (temperror)"),
        )
        .record(record.map(str::to_string)),
    }
}

/// The record without its `all` term.
fn strip_all(record: &str) -> String {
    record
        .split_whitespace()
        .filter(|term| !is_all(term))
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_all(term: &str) -> bool {
    let bare = term.trim_start_matches(['+', '-', '~', '?']);
    bare.eq_ignore_ascii_case("all")
}

/// `record` with `term` added before its `all` (or `redirect=`) term; a fresh record ending in
/// `~all` when there is none.
fn suggest(record: Option<&str>, term: &str) -> String {
    let Some(record) = record.filter(|r| is_spf(r)) else {
        return format!("v=spf1 {term} ~all");
    };
    let mut terms: Vec<&str> = record.split_whitespace().collect();
    let at = terms
        .iter()
        .position(|t| is_all(t) || t.to_ascii_lowercase().starts_with("redirect="))
        .unwrap_or(terms.len());
    terms.insert(at, term);
    if !terms.iter().any(|t| is_all(t)) {
        terms.push("~all");
    }
    terms.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggested_records_keep_the_all_term_last() {
        let check = |record: Option<&str>, term: &str, expected: &str| {
            assert_eq!(suggest(record, term), expected, "{record:?}");
        };
        check(None, "ip4:192.0.2.1", "v=spf1 ip4:192.0.2.1 ~all");
        check(
            Some("v=spf1 mx -all"),
            "include:_spf.google.com",
            "v=spf1 mx include:_spf.google.com -all",
        );
        check(
            Some("v=spf1 redirect=_spf.acme.example"),
            "ip4:192.0.2.1",
            "v=spf1 ip4:192.0.2.1 redirect=_spf.acme.example ~all",
        );
        check(
            Some("v=spf1 a"),
            "ip6:2001:db8::1",
            "v=spf1 a ip6:2001:db8::1 ~all",
        );
        check(Some("google-site-verification=x"), "a", "v=spf1 a ~all");
    }

    #[test]
    fn spf_records_and_pass_all() {
        assert!(is_spf("v=spf1 -all"));
        assert!(is_spf("V=SPF1"));
        assert!(!is_spf("v=spf10 -all"));
        assert!(!is_spf("v=DKIM1; p=x"));
        assert!(passes_everyone("v=spf1 +all"));
        assert!(passes_everyone("v=spf1 ip4:192.0.2.1 all"));
        assert!(!passes_everyone("v=spf1 ip4:192.0.2.1 ~all"));
        assert_eq!(strip_all("v=spf1 a +all"), "v=spf1 a");
    }
}
