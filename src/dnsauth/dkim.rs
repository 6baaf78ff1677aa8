//! DKIM (RFC 6376): the key record at `selector._domainkey.domain` exists, reads (its strings
//! joined, §3.6.2.2), and holds the public half of the campaign's private key; its type and
//! size (RSA under 1,024 bits red, RFC 8301 §3.2; under 2,048 amber). The key comparison is
//! compose's (`compose::read_published_key`), which owns DKIM keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::dns::{Dns, Missing};
use super::{DkimPlan, Finding, Level, Mechanism, Plan};
use crate::compose::{PublicKey, read_published_key};

/// What the DKIM half of the check found.
pub struct DkimOutcome {
    pub findings: Vec<Finding>,
    /// The record holds the campaign's key: signatures will verify, and `d=` can align.
    pub verifies: bool,
}

pub async fn check(dns: &Dns, plan: &Plan) -> DkimOutcome {
    let Some(dkim) = &plan.dkim else {
        return DkimOutcome {
            findings: vec![
                Finding::new(Mechanism::Dkim, Level::Amber, plan.from_domain.clone())
                    .summary("not signed: the campaign has no [dkim] section; Gmail, Yahoo and Outlook.com want DKIM from bulk senders, and DMARC then rests on SPF alone")
                    .fix(format!(
                        "make a key (openssl genrsa -traditional -out dkim.pem 2048), set [dkim] domain = \"{}\", selector and private_key, and publish the record herald check then shows",
                        plan.from_domain
                    )),
            ],
            verifies: false,
        };
    };
    let name = dkim.record_name();
    let (finding, verifies) = match dns.txt(&name).await {
        Err(Missing::Failed(why)) => (
            Finding::unchecked(Mechanism::Dkim, name.clone(), &why),
            false,
        ),
        Err(Missing::NotFound) => (missing(dkim, &name, "there is no DKIM record"), false),
        Ok(records) => {
            let keys: Vec<&String> = records.iter().filter(|r| is_key_record(r)).collect();
            match keys.as_slice() {
                [] => (
                    missing(dkim, &name, "no TXT record there is a DKIM key record"),
                    false,
                ),
                [record, ..] => {
                    let (mut finding, verifies) = judge(dkim, &name, record);
                    if keys.len() > 1 {
                        finding.summary.push_str(&format!(
                            "; {} key records are published at this name and verifiers may read any of them",
                            keys.len()
                        ));
                        finding.level = finding.level.max(Level::Amber);
                    }
                    (finding, verifies)
                }
            }
        }
    };
    DkimOutcome {
        findings: vec![finding],
        verifies,
    }
}

fn missing(dkim: &DkimPlan, name: &str, what: &str) -> Finding {
    let finding = Finding::new(Mechanism::Dkim, Level::Red, name).summary(format!(
        "{what} at {name}, so receivers cannot verify the signature Herald adds and treat the mail as unsigned"
    ));
    match &dkim.record_to_publish {
        Some(record) => finding.fix(format!("publish a TXT record at {name}: {record}")),
        None => finding.fix(format!(
            "publish the public key of [dkim] private_key as a TXT record at {name}"
        )),
    }
}

/// A DKIM key record: `v=DKIM1` first when present (RFC 6376 §3.6.1), and a `p=` tag.
fn is_key_record(record: &str) -> bool {
    let tags = tags(record);
    let version_ok = match tags.first() {
        Some((name, value)) if name.eq_ignore_ascii_case("v") => value == "DKIM1",
        _ => !tags.iter().any(|(name, _)| name.eq_ignore_ascii_case("v")),
    };
    version_ok && tags.iter().any(|(name, _)| name.eq_ignore_ascii_case("p"))
}

/// RFC 6376 §3.2 tag list: `name=value` pairs separated by `;`, whitespace around them folded.
fn tags(record: &str) -> Vec<(String, String)> {
    record
        .split(';')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let value: String = value.split_whitespace().collect();
            Some((name.trim().to_string(), value))
        })
        .collect()
}

fn tag<'a>(tags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    tags.iter()
        .find(|(tag, _)| tag.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// The finding for a key record, and whether signatures made with the campaign's key will
/// verify against it.
fn judge(dkim: &DkimPlan, name: &str, record: &str) -> (Finding, bool) {
    let tags = tags(record);
    let base = Finding::new(Mechanism::Dkim, Level::Red, name).record(Some(record.to_string()));
    let republish = |finding: Finding| match &dkim.record_to_publish {
        Some(ours) => finding.fix(format!("publish this record at {name} instead: {ours}")),
        None => finding.fix(format!(
            "publish the public key of [dkim] private_key at {name}"
        )),
    };
    let p = tag(&tags, "p").unwrap_or_default();
    if p.is_empty() {
        return (
            republish(base.summary(
                "the key is revoked (empty p=, RFC 6376 §3.6.1): every signature with this selector fails",
            )),
            false,
        );
    }
    let Ok(bytes) = BASE64.decode(p) else {
        return (
            republish(base.summary(
                "p= is not valid base64: the record is damaged (truncated, or split wrongly?)",
            )),
            false,
        );
    };
    let published = match read_published_key(tag(&tags, "k"), &bytes) {
        Ok(key) => key,
        Err(why) => {
            return (
                republish(base.summary(format!("the key cannot be read: {why}"))),
                false,
            );
        }
    };
    let (level, size_note, size_fix) = strength(&published);
    let ours = match &dkim.key {
        Ok(key) => key,
        // Herald signs only with RSA keys of 2,048 bits or more, so a smaller published key
        // is met here, with the campaign's key refused: its size is still the finding.
        Err(why) => {
            let finding = Finding {
                level: level.max(Level::Amber),
                ..base
            }
            .summary(format!(
                "a {} key is published{size_note}, but [dkim] private_key could not be read to compare: {why}",
                describe(&published)
            ))
            .fix(size_fix.unwrap_or("fix [dkim] private_key; herald check names the problem"));
            return (finding, false);
        }
    };
    if published != *ours {
        let finding = republish(base.summary(format!(
            "the record holds a different key ({}) than [dkim] private_key ({}): a rotated key or a record for another key, so every signature fails",
            describe(&published),
            describe(ours)
        )));
        return (finding, false);
    }
    let finding = Finding { level, ..base }.summary(format!(
        "the record holds the campaign's key ({}){size_note}",
        describe(&published)
    ));
    // A key too small to be read counts as no signature at all.
    let verifies = level != Level::Red;
    match size_fix {
        Some(fix) => (finding.fix(fix), verifies),
        None => (finding, verifies),
    }
}

/// How strong a published key is: its level, a note for the summary, and the fix.
fn strength(key: &PublicKey) -> (Level, &'static str, Option<&'static str>) {
    const BIGGER: &str = "make an RSA key of 2,048 bits, sign with it and publish its record";
    match key {
        PublicKey::Rsa { .. } if key.bits() < 1024 => (
            Level::Red,
            "; receivers ignore RSA keys under 1,024 bits (RFC 8301 §3.2)",
            Some(BIGGER),
        ),
        PublicKey::Rsa { .. } if key.bits() < 2048 => (
            Level::Amber,
            "; RSA keys under 2,048 bits are considered weak (RFC 8301 §3.2 asks for 2,048)",
            Some(BIGGER),
        ),
        PublicKey::Rsa { .. } => (Level::Green, "", None),
        PublicKey::Ed25519(_) => (
            Level::Amber,
            "; not every receiver verifies Ed25519 signatures (RFC 8463) yet, and where one does not, the mail counts as unsigned",
            Some("sign with an RSA key of 2,048 bits for now"),
        ),
    }
}

fn describe(key: &PublicKey) -> String {
    match key {
        PublicKey::Rsa { .. } => format!("RSA {} bits", key.bits()),
        PublicKey::Ed25519(_) => "Ed25519".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_records_are_told_from_other_txt() {
        assert!(is_key_record("v=DKIM1; k=rsa; p=AAAA"));
        assert!(is_key_record("k=rsa; p=AAAA"));
        assert!(is_key_record("v=DKIM1;p="));
        assert!(!is_key_record("k=rsa; v=DKIM1; p=AAAA"));
        assert!(!is_key_record("v=spf1 -all"));
        assert!(!is_key_record("v=DKIM2; p=AAAA"));
        assert_eq!(
            tag(&tags("v=DKIM1; p=AB CD\t EF ;k=rsa"), "p"),
            Some("ABCDEF")
        );
    }
}
