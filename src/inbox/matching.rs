//! Naming the recipient a report is about (issue #13, item 4), in this order: the signed tag of
//! the VERP return path the report was delivered to; Herald's Message-ID in the returned
//! message; the failed address among the recipients of the campaigns that mailed it, latest
//! first. A tag with a bad MAC marks the report forged: it names nobody and suppresses nobody,
//! even when the address it gives was mailed. The decisions are pure ([`plan`]); the store is
//! asked only in [`resolve`], once per batch for the address fallbacks.

use std::collections::HashMap;

use crate::campaign::ReturnPath;
use crate::compose::{UNSUBSCRIBE_PREFIX, campaign_tag, parse_message_id};
use crate::store::{Feedback, FeedbackKind, Mailed, RecipientId, Store, StoreError};
use crate::token::{self, Named, Purpose};

use super::report::{self, Action, Class, Reading, Report};

/// What matching needs to know: the return path and the database's secrets.
#[derive(Debug, Clone)]
pub struct Keys {
    pub return_path: Option<ReturnPath>,
    pub return_secret: [u8; 32],
    pub unsubscribe_secret: [u8; 32],
}

/// Whom one piece of a report is about, before the store is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Named by a valid tag or a Herald Message-ID; the store still checks it was mailed (and,
    /// for a Message-ID, that the campaign hash matches).
    Recipient {
        id: RecipientId,
        campaign: Option<i64>,
        campaign_tag: Option<String>,
    },
    /// Only the failed address is known (lower-case).
    Address(String),
}

/// One thing a report asks to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Candidates in order of trust: the first that the store confirms wins.
    pub targets: Vec<Target>,
    pub kind: FeedbackKind,
    pub status: Option<String>,
    pub smtp_code: Option<u16>,
    pub diagnostic: String,
}

/// What a message is, for counting and for the mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// A report: record these (empty when it named nobody, e.g. only `delivered` lines).
    Report {
        wanted: Vec<Wanted>,
        forged: bool,
    },
    AutoReply,
    /// Looked like a report but could not be read: left unread.
    Unrecognized,
    /// Not a report at all: left exactly as it was.
    NotAReport,
}

/// Longest diagnostic text kept as evidence.
const MAX_DIAGNOSTIC: usize = 300;

fn bounded(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(MAX_DIAGNOSTIC) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// What the tags in the report's envelope recipients say: whom they name (None if nobody)
/// and whether one of them was forged.
fn tags(keys: &Keys, reading: &Reading) -> (Option<Named>, bool) {
    let Some(return_path) = &keys.return_path else {
        return (None, false);
    };
    let mut forged = false;
    for address in &reading.clues.envelope_to {
        let address = address.trim().trim_start_matches('<').trim_end_matches('>');
        let Some((local, domain)) = address.rsplit_once('@') else {
            continue;
        };
        let Some((base, tag)) = local.split_once('+') else {
            continue;
        };
        if !base.eq_ignore_ascii_case(&return_path.local)
            || !domain.eq_ignore_ascii_case(&return_path.domain)
        {
            continue;
        }
        let decoded = match tag.strip_prefix(UNSUBSCRIBE_PREFIX) {
            Some(tag) => token::decode(&keys.unsubscribe_secret, Purpose::Unsubscribe, tag),
            None => token::decode(&keys.return_secret, Purpose::ReturnPath, tag),
        };
        match decoded {
            Ok(named) => return (Some(named), false),
            Err(_) => forged = true,
        }
    }
    (None, forged)
}

fn recipient_targets(reading: &Reading, named: Option<Named>) -> Vec<Target> {
    let mut targets: Vec<Target> = named
        .map(|named| Target::Recipient {
            id: named.recipient,
            campaign: Some(named.campaign),
            campaign_tag: None,
        })
        .into_iter()
        .collect();
    for id in &reading.clues.message_ids {
        if let Some((recipient, tag)) = parse_message_id(id) {
            targets.push(Target::Recipient {
                id: recipient,
                campaign: None,
                campaign_tag: Some(tag.to_string()),
            });
        }
    }
    targets
}

/// The recipient key of an address as a report spells it (lower-case, ASCII domain), so it
/// meets the key the import stored.
fn address_key(address: &str) -> String {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    match crate::recipients::EmailAddress::parse(address) {
        Ok(parsed) => parsed.key(),
        Err(_) => address.to_lowercase(),
    }
}

/// Decides what a read message asks for, without the store.
pub fn plan(keys: &Keys, reading: &Reading) -> Plan {
    let (named, forged) = tags(keys, reading);
    let by_id = recipient_targets(reading, named);
    let wanted = match &reading.report {
        Report::NotAReport => return Plan::NotAReport,
        Report::Unrecognized { .. } => return Plan::Unrecognized,
        Report::AutoReply => return Plan::AutoReply,
        Report::Delivery(statuses) => {
            let single = statuses.len() == 1;
            statuses
                .iter()
                .filter_map(|status| {
                    let kind = match status.action {
                        Action::Failed => match report::classify(status) {
                            Class::Hard => FeedbackKind::Hard,
                            Class::Soft => FeedbackKind::Soft,
                            Class::Blocked => FeedbackKind::Blocked,
                        },
                        Action::Delayed => FeedbackKind::Delayed,
                        Action::Delivered | Action::Relayed | Action::Expanded => return None,
                    };
                    // One recipient reported: it is the one the tag or Message-ID names (even
                    // when forwarding changed the address). Several: the tag names only one of
                    // them, and the others are found by address.
                    let mut targets = if single { by_id.clone() } else { Vec::new() };
                    if let Some(address) = &status.address {
                        if !single {
                            targets.extend(by_id.iter().cloned());
                        }
                        targets.push(Target::Address(address_key(address)));
                    }
                    Some(Wanted {
                        targets,
                        kind,
                        status: status.status.clone(),
                        smtp_code: status.smtp_code,
                        diagnostic: bounded(&status.diagnostic),
                    })
                })
                .collect()
        }
        Report::Complaint(complaint) => {
            let mut targets = by_id.clone();
            targets.extend(
                complaint
                    .address
                    .as_deref()
                    .map(|a| Target::Address(address_key(a))),
            );
            vec![Wanted {
                targets,
                kind: FeedbackKind::Complaint,
                status: None,
                smtp_code: None,
                diagnostic: bounded(&format!("feedback type {}", complaint.feedback_type)),
            }]
        }
        Report::Unsubscribe { tag } => {
            let tag = tag.strip_prefix(UNSUBSCRIBE_PREFIX).unwrap_or(tag);
            let targets = match token::decode(&keys.unsubscribe_secret, Purpose::Unsubscribe, tag) {
                Ok(named) => vec![Target::Recipient {
                    id: named.recipient,
                    campaign: Some(named.campaign),
                    campaign_tag: None,
                }],
                Err(_) => {
                    return Plan::Report {
                        wanted: Vec::new(),
                        forged: true,
                    };
                }
            };
            vec![Wanted {
                targets,
                kind: FeedbackKind::Unsubscribe,
                status: None,
                smtp_code: None,
                diagnostic: "List-Unsubscribe mailto".into(),
            }]
        }
    };
    if forged {
        // RFC 3464 reports come back to the envelope sender: a tag that does not verify was
        // not made by this database. Nobody is named.
        return Plan::Report {
            wanted: Vec::new(),
            forged: true,
        };
    }
    Plan::Report {
        wanted,
        forged: false,
    }
}

/// Confirms a batch of plans against the store: each wanted item becomes feedback for the
/// first target the store confirms, or None (unmatched). One query per target named by id and
/// one pass for all the addresses of the batch.
pub fn resolve(store: &Store, plans: &[&Wanted]) -> Result<Vec<Option<Feedback>>, StoreError> {
    let addresses: Vec<String> = plans
        .iter()
        .flat_map(|wanted| wanted.targets.iter())
        .filter_map(|target| match target {
            Target::Address(address) => Some(address.clone()),
            Target::Recipient { .. } => None,
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let by_address: HashMap<String, Mailed> = if addresses.is_empty() {
        HashMap::new()
    } else {
        store.latest_mailed(&addresses)?
    };
    let mut resolved = Vec::with_capacity(plans.len());
    for wanted in plans {
        let mut found = None;
        for target in &wanted.targets {
            found = match target {
                Target::Recipient {
                    id,
                    campaign,
                    campaign_tag: tag,
                } => store.mailed(*id)?.filter(|mailed| {
                    campaign.is_none_or(|campaign| campaign == mailed.campaign)
                        && tag
                            .as_deref()
                            .is_none_or(|tag| tag == campaign_tag(&mailed.campaign_key))
                }),
                Target::Address(address) => by_address.get(address).cloned(),
            };
            if found.is_some() {
                break;
            }
        }
        resolved.push(found.map(|mailed| Feedback {
            recipient: mailed.id,
            kind: wanted.kind,
            status: wanted.status.clone(),
            smtp_code: wanted.smtp_code,
            diagnostic: wanted.diagnostic.clone(),
        }));
    }
    Ok(resolved)
}

/// The warning shown to the sender for a blocked report: the receiving side refuses the
/// sender, not the recipient (issue #13, item 5).
pub fn sender_warning(status: Option<&str>, diagnostic: &str) -> String {
    let text = diagnostic.to_ascii_lowercase();
    let provider = if text.contains("outlook")
        || text.contains("hotmail")
        || text.contains("protection.outlook")
    {
        Some("Outlook")
    } else if text.contains("gmail") || text.contains("google") {
        Some("Gmail")
    } else if text.contains("yahoo") {
        Some("Yahoo")
    } else {
        None
    };
    let authentication = matches!(status, Some("5.7.26" | "5.7.515" | "5.7.25" | "5.7.27"))
        || ["spf", "dkim", "dmarc", "authenticat"]
            .iter()
            .any(|word| text.contains(word));
    let who = provider.unwrap_or("A receiving server");
    let code = status
        .map(|status| format!(" ({status})"))
        .unwrap_or_default();
    if authentication {
        format!("{who} rejects your mail for authentication{code}: check SPF and DKIM")
    } else {
        format!(
            "{who} blocks your mail by policy{code}: check your sending IP's reputation and block lists"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::report::{Clues, Complaint, RecipientStatus};

    fn keys() -> Keys {
        Keys {
            return_path: Some(ReturnPath {
                local: "bounces".into(),
                domain: "acme.example".into(),
            }),
            return_secret: [1; 32],
            unsubscribe_secret: [2; 32],
        }
    }

    fn failed(address: &str, status: &str) -> RecipientStatus {
        RecipientStatus {
            address: Some(address.into()),
            action: Action::Failed,
            status: Some(status.into()),
            smtp_code: Some(550),
            diagnostic: "550 5.1.1 no   such user".into(),
        }
    }

    fn reading(report: Report, envelope_to: &[&str], message_ids: &[&str]) -> Reading {
        Reading {
            report,
            clues: Clues {
                envelope_to: envelope_to.iter().map(|s| s.to_string()).collect(),
                message_ids: message_ids.iter().map(|s| s.to_string()).collect(),
            },
        }
    }

    fn targets(plan: &Plan) -> Vec<Vec<Target>> {
        match plan {
            Plan::Report { wanted, .. } => wanted.iter().map(|w| w.targets.clone()).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn a_valid_tag_comes_first_then_the_message_id_then_the_address() {
        let named = Named {
            campaign: 4,
            recipient: 9,
        };
        let tag = token::encode(&[1; 32], Purpose::ReturnPath, named);
        let envelope = format!("Bounces+{tag}@ACME.example");
        let id = format!("9.{}.herald@acme.example", campaign_tag("/c.toml"));
        let plan = plan(
            &keys(),
            &reading(
                Report::Delivery(vec![failed("Ada@Example.org", "5.1.1")]),
                &[&envelope],
                &[&id],
            ),
        );
        assert_eq!(
            targets(&plan),
            [vec![
                Target::Recipient {
                    id: 9,
                    campaign: Some(4),
                    campaign_tag: None
                },
                Target::Recipient {
                    id: 9,
                    campaign: None,
                    campaign_tag: Some(campaign_tag("/c.toml"))
                },
                Target::Address("ada@example.org".into()),
            ]]
        );
    }

    #[test]
    fn a_forged_tag_names_nobody() {
        let named = Named {
            campaign: 4,
            recipient: 9,
        };
        // Made with another database's secret.
        let tag = token::encode(&[9; 32], Purpose::ReturnPath, named);
        let envelope = format!("bounces+{tag}@acme.example");
        let plan = plan(
            &keys(),
            &reading(
                Report::Delivery(vec![failed("ada@example.org", "5.1.1")]),
                &[&envelope],
                &[],
            ),
        );
        assert_eq!(
            plan,
            Plan::Report {
                wanted: Vec::new(),
                forged: true
            }
        );
        let bad_unsubscribe = plan_of(Report::Unsubscribe {
            tag: "u-1.2.00".into(),
        });
        assert_eq!(
            bad_unsubscribe,
            Plan::Report {
                wanted: Vec::new(),
                forged: true
            }
        );
    }

    fn plan_of(report: Report) -> Plan {
        plan(&keys(), &reading(report, &[], &[]))
    }

    #[test]
    fn kinds_follow_the_report() {
        assert_eq!(plan_of(Report::AutoReply), Plan::AutoReply);
        assert_eq!(plan_of(Report::NotAReport), Plan::NotAReport);
        assert_eq!(
            plan_of(Report::Unrecognized { why: "x".into() }),
            Plan::Unrecognized
        );
        let mut delayed = failed("a@b.example", "4.4.7");
        delayed.action = Action::Delayed;
        let mut delivered = failed("c@b.example", "2.0.0");
        delivered.action = Action::Delivered;
        let Plan::Report { wanted, .. } = plan_of(Report::Delivery(vec![delayed, delivered]))
        else {
            panic!("not a report");
        };
        assert_eq!(wanted.len(), 1);
        assert_eq!(wanted[0].kind, FeedbackKind::Delayed);
        assert_eq!(wanted[0].diagnostic, "550 5.1.1 no such user");
        let Plan::Report { wanted, .. } = plan_of(Report::Complaint(Complaint {
            address: Some("Cy@Example.org".into()),
            feedback_type: "abuse".into(),
        })) else {
            panic!("not a report");
        };
        assert_eq!(wanted[0].kind, FeedbackKind::Complaint);
        assert_eq!(
            wanted[0].targets,
            [Target::Address("cy@example.org".into())]
        );
        let tag = token::encode(
            &[2; 32],
            Purpose::Unsubscribe,
            Named {
                campaign: 1,
                recipient: 2,
            },
        );
        let Plan::Report { wanted, .. } = plan_of(Report::Unsubscribe { tag }) else {
            panic!("not a report");
        };
        assert_eq!(wanted[0].kind, FeedbackKind::Unsubscribe);
    }

    #[test]
    fn blocked_mail_warns_the_sender() {
        assert_eq!(
            sender_warning(
                Some("5.7.515"),
                "550 5.7.515 Access denied, sending domain does not meet the required authentication level (outlook.com)"
            ),
            "Outlook rejects your mail for authentication (5.7.515): check SPF and DKIM"
        );
        assert!(
            sender_warning(Some("5.7.1"), "listed at zen.spamhaus.org")
                .starts_with("A receiving server blocks your mail by policy (5.7.1)")
        );
    }
}
