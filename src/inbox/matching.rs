//! Naming the recipient a report is about (issues #13 and #21). A report changes a recipient
//! only when it proves it concerns a message Herald sent to that recipient: a VERP tag that
//! verifies (in the address the report came to, or in the returned message's Return-Path), or
//! a keyed Message-ID of the returned message (the unsubscribe mailto's own tag for mail to
//! it). Those reports are [`Proof::Verified`] and name that one recipient only. Anything else
//! (the failed address, a Message-ID from before ids were keyed) is [`Proof::Unverified`]:
//! anyone who knows an address can write it, so it is held for the user with its evidence and
//! never applied by itself. A tag or keyed id with a bad MAC marks the report forged: it names
//! nobody. One report concerns one message, and each of Herald's messages has one recipient,
//! so one report names at most one recipient however many addresses it lists. The decisions
//! are pure ([`plan`]); the store is asked only in [`resolve`], once per batch for the
//! addresses.

use std::collections::HashMap;

use crate::campaign::ReturnPath;
use crate::compose::{HeraldId, UNSUBSCRIBE_PREFIX, campaign_tag, parse_message_id};
use crate::store::{Feedback, FeedbackKind, Held, Mailed, RecipientId, Store, StoreError};
use crate::token::{self, Named, Purpose};

use super::report::{self, Action, Class, Reading, Report};

/// What matching needs to know: the return path and the database's secrets (the return-path
/// secret also keys Message-IDs).
#[derive(Debug, Clone)]
pub struct Keys {
    pub return_path: Option<ReturnPath>,
    pub return_secret: [u8; 32],
    pub unsubscribe_secret: [u8; 32],
}

/// What a report offers as proof that it is about one of Herald's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// A tag or keyed Message-ID this database signed names this recipient of this campaign;
    /// the store still checks that the message left.
    Verified {
        campaign: i64,
        recipient: RecipientId,
        /// What proved it, for logs and tests ("VERP tag", "Message-ID"…).
        by: &'static str,
    },
    /// Nothing proves it: candidates in order of likelihood, for the user to judge.
    Unverified(Vec<Target>),
}

/// A candidate of an unverified report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Message-ID written before ids were keyed (`<id.campaign-hash.herald@…>`).
    UnkeyedId {
        id: RecipientId,
        campaign_tag: String,
    },
    /// Only the failed address is known (its key: lower-case, ASCII domain).
    Address(String),
}

/// One thing a report asks to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub proof: Proof,
    pub kind: FeedbackKind,
    pub status: Option<String>,
    pub smtp_code: Option<u16>,
    pub diagnostic: String,
    /// The address the report gives for this piece (its key), if any: with several pieces
    /// and a verified proof, the piece about the recipient's own address is the one kept.
    pub address: Option<String>,
    /// How the report came (for the evidence of an unverified one).
    pub context: String,
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

/// What the tags of `addresses` say: whom a valid one names, and whether one was forged.
fn tags_in<'a>(keys: &Keys, addresses: impl Iterator<Item = &'a String>) -> (Option<Named>, bool) {
    let Some(return_path) = &keys.return_path else {
        return (None, false);
    };
    let mut forged = false;
    for address in addresses {
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

/// What the report's proofs say: the verified name, if any, whether something was forged,
/// and the unkeyed Message-IDs (candidates only).
struct Proofs {
    verified: Option<(Named, &'static str)>,
    forged: bool,
    unkeyed: Vec<Target>,
}

fn proofs(keys: &Keys, reading: &Reading) -> Proofs {
    let clues = &reading.clues;
    let (by_envelope, forged_envelope) = tags_in(keys, clues.envelope_to.iter());
    let (by_return_path, forged_return_path) = tags_in(keys, clues.return_paths.iter());
    let mut by_id = None;
    let mut forged_id = false;
    let mut unkeyed = Vec::new();
    for id in &clues.message_ids {
        match parse_message_id(id) {
            Some(HeraldId::Keyed(text)) => {
                match token::decode(&keys.return_secret, Purpose::MessageId, text) {
                    Ok(named) => {
                        by_id.get_or_insert(named);
                    }
                    Err(_) => forged_id = true,
                }
            }
            Some(HeraldId::Unkeyed {
                recipient,
                campaign_tag,
            }) => unkeyed.push(Target::UnkeyedId {
                id: recipient,
                campaign_tag: campaign_tag.to_string(),
            }),
            None => {}
        }
    }
    let verified = by_envelope
        .map(|named| (named, "VERP tag"))
        .or(by_return_path.map(|named| (named, "VERP tag in the returned Return-Path")))
        .or(by_id.map(|named| (named, "keyed Message-ID")));
    Proofs {
        verified,
        forged: forged_envelope || forged_return_path || forged_id,
        unkeyed,
    }
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

/// How a report came, in words, for the evidence of an unverified one.
fn context(reading: &Reading, pieces: usize) -> String {
    let to = reading
        .clues
        .envelope_to
        .first()
        .map(|to| format!("came to {}", bounded(to)))
        .unwrap_or_else(|| "came to no address it names".to_string());
    if pieces > 1 {
        format!("{to}; it lists {pieces} addresses")
    } else {
        to
    }
}

/// Decides what a read message asks for, without the store.
pub fn plan(keys: &Keys, reading: &Reading) -> Plan {
    let proofs = proofs(keys, reading);
    let proof_for = |address: Option<&str>| match proofs.verified {
        Some((named, by)) => Proof::Verified {
            campaign: named.campaign,
            recipient: named.recipient,
            by,
        },
        None => {
            let mut targets = proofs.unkeyed.clone();
            targets.extend(address.map(|a| Target::Address(address_key(a))));
            Proof::Unverified(targets)
        }
    };
    let wanted = match &reading.report {
        Report::NotAReport => return Plan::NotAReport,
        Report::Unrecognized { .. } => return Plan::Unrecognized,
        Report::AutoReply => return Plan::AutoReply,
        Report::Delivery(statuses) => {
            let context = context(reading, statuses.len());
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
                    Some(Wanted {
                        proof: proof_for(status.address.as_deref()),
                        kind,
                        status: status.status.clone(),
                        smtp_code: status.smtp_code,
                        diagnostic: bounded(&status.diagnostic),
                        address: status.address.as_deref().map(address_key),
                        context: context.clone(),
                    })
                })
                .collect()
        }
        Report::Complaint(complaint) => vec![Wanted {
            proof: proof_for(complaint.address.as_deref()),
            kind: FeedbackKind::Complaint,
            status: None,
            smtp_code: None,
            diagnostic: bounded(&format!("feedback type {}", complaint.feedback_type)),
            address: complaint.address.as_deref().map(address_key),
            context: context(reading, 1),
        }],
        Report::Unsubscribe { tag } => {
            let tag = tag.strip_prefix(UNSUBSCRIBE_PREFIX).unwrap_or(tag);
            let Ok(named) = token::decode(&keys.unsubscribe_secret, Purpose::Unsubscribe, tag)
            else {
                return Plan::Report {
                    wanted: Vec::new(),
                    forged: true,
                };
            };
            vec![Wanted {
                proof: Proof::Verified {
                    campaign: named.campaign,
                    recipient: named.recipient,
                    by: "unsubscribe tag",
                },
                kind: FeedbackKind::Unsubscribe,
                status: None,
                smtp_code: None,
                diagnostic: "List-Unsubscribe mailto".into(),
                address: None,
                context: String::new(),
            }]
        }
    };
    if proofs.verified.is_none() && proofs.forged {
        // A tag or keyed Message-ID that does not verify was not made by this database: the
        // report is forged (or about another database's mail). Nobody is named.
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

/// What one report comes to once the store is asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Verified: applied now. At most one.
    pub apply: Option<Feedback>,
    /// Unverified: held for the user, with its evidence. At most one.
    pub hold: Option<Held>,
}

impl Resolved {
    /// Whether the report named nobody Herald mailed (or, unverified, more than one person).
    pub fn unmatched(&self) -> bool {
        self.apply.is_none() && self.hold.is_none()
    }
}

fn feedback_of(wanted: &Wanted, recipient: RecipientId) -> Feedback {
    Feedback {
        recipient,
        kind: wanted.kind,
        status: wanted.status.clone(),
        smtp_code: wanted.smtp_code,
        diagnostic: wanted.diagnostic.clone(),
    }
}

/// Confirms a batch of reports (the wanted items of each) against the store. One query per
/// verified name and one pass for all the addresses of the batch.
pub fn resolve(store: &Store, reports: &[Vec<Wanted>]) -> Result<Vec<Resolved>, StoreError> {
    let addresses: Vec<String> = reports
        .iter()
        .flatten()
        .filter_map(|wanted| match &wanted.proof {
            Proof::Unverified(targets) => Some(targets),
            Proof::Verified { .. } => None,
        })
        .flatten()
        .filter_map(|target| match target {
            Target::Address(address) => Some(address.clone()),
            Target::UnkeyedId { .. } => None,
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let by_address: HashMap<String, Mailed> = if addresses.is_empty() {
        HashMap::new()
    } else {
        store.latest_mailed(&addresses)?
    };
    reports
        .iter()
        .map(|wanted| resolve_one(store, wanted, &by_address))
        .collect()
}

fn resolve_one(
    store: &Store,
    wanted: &[Wanted],
    by_address: &HashMap<String, Mailed>,
) -> Result<Resolved, StoreError> {
    let Some(first) = wanted.first() else {
        return Ok(Resolved::default());
    };
    if let Proof::Verified {
        campaign,
        recipient,
        ..
    } = first.proof
    {
        // The proof names one recipient; of several pieces, the one about its own address
        // (else the first) is about its message.
        let Some(mailed) = store
            .mailed(recipient)?
            .filter(|mailed| mailed.campaign == campaign)
        else {
            return Ok(Resolved::default());
        };
        let piece = wanted
            .iter()
            .find(|w| w.address.as_deref() == Some(mailed.address.as_str()))
            .unwrap_or(first);
        return Ok(Resolved {
            apply: Some(feedback_of(piece, mailed.id)),
            hold: None,
        });
    }
    // Unverified: each piece's first candidate the store knows.
    let mut found: Vec<(&Wanted, Mailed, String)> = Vec::new();
    for piece in wanted {
        let Proof::Unverified(targets) = &piece.proof else {
            continue;
        };
        for target in targets {
            let hit = match target {
                Target::UnkeyedId {
                    id,
                    campaign_tag: tag,
                } => store
                    .mailed(*id)?
                    .filter(|mailed| *tag == campaign_tag(&mailed.campaign_key))
                    .map(|mailed| {
                        (
                            mailed,
                            format!(
                                "an unkeyed Message-ID from before ids were keyed (recipient {id})"
                            ),
                        )
                    }),
                Target::Address(address) => by_address.get(address).cloned().map(|mailed| {
                    (
                        mailed,
                        format!("only the address {address}, which anyone who knows it can write"),
                    )
                }),
            };
            if let Some((mailed, how)) = hit {
                found.push((piece, mailed, how));
                break;
            }
        }
    }
    let mut people: Vec<RecipientId> = found.iter().map(|(_, mailed, _)| mailed.id).collect();
    people.sort_unstable();
    people.dedup();
    // One report, one message, one recipient: a report that names several people Herald
    // mailed cannot be about one of its messages.
    let (Some((piece, mailed, how)), 1) = (found.first(), people.len()) else {
        return Ok(Resolved::default());
    };
    Ok(Resolved {
        apply: None,
        hold: Some(Held {
            feedback: feedback_of(piece, mailed.id),
            evidence: bounded(&format!(
                "no VERP tag or keyed Message-ID: named by {how}; the report {}",
                piece.context
            )),
        }),
    })
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
                return_paths: Vec::new(),
            },
        }
    }

    fn proofs_of(plan: &Plan) -> Vec<Proof> {
        match plan {
            Plan::Report { wanted, .. } => wanted.iter().map(|w| w.proof.clone()).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn a_valid_tag_or_keyed_message_id_verifies_and_nothing_else_does() {
        let named = Named {
            campaign: 4,
            recipient: 9,
        };
        let tag = token::encode(&[1; 32], Purpose::ReturnPath, named);
        let envelope = format!("Bounces+{tag}@ACME.example");
        let verified = Proof::Verified {
            campaign: 4,
            recipient: 9,
            by: "VERP tag",
        };
        let delivery = || Report::Delivery(vec![failed("Ada@Example.org", "5.1.1")]);
        let plan_tag = plan(&keys(), &reading(delivery(), &[&envelope], &[]));
        assert_eq!(proofs_of(&plan_tag), [verified]);
        // The tag in the returned message's Return-Path, the report sent to the plain address.
        let mut by_return_path = reading(delivery(), &["bounces@acme.example"], &[]);
        by_return_path.clues.return_paths = vec![format!("bounces+{tag}@acme.example")];
        assert!(matches!(
            proofs_of(&plan(&keys(), &by_return_path))[..],
            [Proof::Verified {
                campaign: 4,
                recipient: 9,
                ..
            }]
        ));
        // A keyed Message-ID alone.
        let id = crate::compose::message_id(&[1; 32], 4, 9, "acme.example");
        let by_id = plan(&keys(), &reading(delivery(), &[], &[&id]));
        assert!(matches!(
            proofs_of(&by_id)[..],
            [Proof::Verified {
                campaign: 4,
                recipient: 9,
                by: "keyed Message-ID"
            }]
        ));
        // An unkeyed (old) Message-ID and the address: candidates only.
        let old = format!("9.{}.herald@acme.example", campaign_tag("/c.toml"));
        let unkeyed = plan(
            &keys(),
            &reading(delivery(), &["bounces@acme.example"], &[&old]),
        );
        assert_eq!(
            proofs_of(&unkeyed),
            [Proof::Unverified(vec![
                Target::UnkeyedId {
                    id: 9,
                    campaign_tag: campaign_tag("/c.toml")
                },
                Target::Address("ada@example.org".into()),
            ])]
        );
    }

    #[test]
    fn a_forged_tag_or_message_id_names_nobody() {
        let named = Named {
            campaign: 4,
            recipient: 9,
        };
        // Made with another database's secret.
        let tag = token::encode(&[9; 32], Purpose::ReturnPath, named);
        let envelope = format!("bounces+{tag}@acme.example");
        let nobody = Plan::Report {
            wanted: Vec::new(),
            forged: true,
        };
        let delivery = || Report::Delivery(vec![failed("ada@example.org", "5.1.1")]);
        assert_eq!(
            plan(&keys(), &reading(delivery(), &[&envelope], &[])),
            nobody
        );
        // One above the id a subscriber read off their own copy.
        let own = crate::compose::message_id(&[1; 32], 4, 9, "acme.example");
        let neighbour = own.replacen("<4.9.", "<4.a.", 1);
        assert_eq!(
            plan(&keys(), &reading(delivery(), &[], &[&neighbour])),
            nobody
        );
        let bad_unsubscribe = plan_of(Report::Unsubscribe {
            tag: "u-1.2.00".into(),
        });
        assert_eq!(bad_unsubscribe, nobody);
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
            wanted[0].proof,
            Proof::Unverified(vec![Target::Address("cy@example.org".into())])
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
