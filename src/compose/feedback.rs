//! The addresses that bring mail back to the campaign's bounce mailbox (issue #13): the
//! per-recipient envelope sender `bounces+TAG@acme.example` (VERP: the bounce names its
//! recipient without being parsed) and the List-Unsubscribe mailto `bounces+u-TAG@…`, each
//! tag a signed token (`crate::token`). And the keyed, deterministic Message-ID, which the
//! mailbox reader uses to match a report whose return path a relay rewrote. Pure functions.

use crate::campaign::ReturnPath;
use crate::token::{self, Named, Purpose};

/// What a campaign with `[bounces] return_path` puts on each message.
#[derive(Debug, Clone)]
pub struct Feedback {
    pub campaign: i64,
    pub return_path: ReturnPath,
    /// The database's "return-path" secret.
    pub return_secret: [u8; 32],
    /// The database's "unsubscribe" secret.
    pub unsubscribe_secret: [u8; 32],
}

/// The local-part prefix of a mailto unsubscribe tag, after the `+`.
pub const UNSUBSCRIBE_PREFIX: &str = "u-";

impl Feedback {
    fn named(&self, recipient: i64) -> Named {
        Named {
            campaign: self.campaign,
            recipient,
        }
    }

    /// The envelope sender (MAIL FROM) of one recipient's message.
    pub fn envelope_from(&self, recipient: i64) -> String {
        let tag = token::encode(
            &self.return_secret,
            Purpose::ReturnPath,
            self.named(recipient),
        );
        self.return_path.with_tag(&tag)
    }

    /// The List-Unsubscribe mailto of one recipient (RFC 2369 §3.2).
    pub fn unsubscribe_mailto(&self, recipient: i64) -> String {
        let tag = token::encode(
            &self.unsubscribe_secret,
            Purpose::Unsubscribe,
            self.named(recipient),
        );
        format!(
            "mailto:{}?subject=unsubscribe",
            self.return_path
                .with_tag(&format!("{UNSUBSCRIBE_PREFIX}{tag}"))
        )
    }
}

/// The Message-ID of one recipient's message (issue #21): `<TOKEN.herald@domain>`, the token
/// naming campaign and recipient under a MAC keyed by the database's return-path secret. The
/// same on every attempt (duplicates stay recognizable), and nobody who reads their own can
/// make another recipient's: a report returning it proves it concerns that message.
pub fn message_id(secret: &[u8; 32], campaign: i64, recipient: i64, domain: &str) -> String {
    let token = token::encode(
        secret,
        Purpose::MessageId,
        Named {
            campaign,
            recipient,
        },
    );
    format!("<{token}.herald@{domain}>")
}

/// What a Herald Message-ID found in a report says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeraldId<'a> {
    /// A keyed id (`c.r.mac`): its token, to be checked with [`token::decode`].
    Keyed(&'a str),
    /// An id written before ids were keyed (`<id.campaign-hash.herald@…>`): anyone who read
    /// one of them can write another, so it proves nothing.
    Unkeyed {
        recipient: i64,
        campaign_tag: &'a str,
    },
}

/// The campaign part of unkeyed Message-IDs: a stable hash of the campaign file's key.
pub fn campaign_tag(campaign_key: &str) -> String {
    format!("{:016x}", fnv1a(campaign_key.as_bytes()))
}

/// Reads a Message-ID (with or without angle brackets) as one of Herald's, or None.
pub fn parse_message_id(text: &str) -> Option<HeraldId<'_>> {
    let text = text.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, _domain) = text.split_once('@')?;
    let body = local.strip_suffix(".herald")?;
    let parts: Vec<&str> = body.split('.').collect();
    match parts.as_slice() {
        [_, _, _] => Some(HeraldId::Keyed(body)),
        [id, tag] if tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(HeraldId::Unkeyed {
                recipient: id.parse().ok()?,
                campaign_tag: tag,
            })
        }
        _ => None,
    }
}

/// FNV-1a: a stable hash (unlike std's, which may change between Rust releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_carry_tokens_that_decode() {
        let feedback = Feedback {
            campaign: 3,
            return_path: ReturnPath {
                local: "bounces".into(),
                domain: "acme.example".into(),
            },
            return_secret: [1; 32],
            unsubscribe_secret: [2; 32],
        };
        let from = feedback.envelope_from(42);
        let tag = from
            .strip_prefix("bounces+")
            .and_then(|rest| rest.strip_suffix("@acme.example"))
            .unwrap();
        let named = token::decode(&[1; 32], Purpose::ReturnPath, tag).unwrap();
        assert_eq!((named.campaign, named.recipient), (3, 42));
        let mailto = feedback.unsubscribe_mailto(42);
        let tag = mailto
            .strip_prefix("mailto:bounces+u-")
            .and_then(|rest| rest.strip_suffix("@acme.example?subject=unsubscribe"))
            .unwrap();
        assert!(token::decode(&[2; 32], Purpose::Unsubscribe, tag).is_ok());
    }

    #[test]
    fn message_ids_parse_back() {
        let tag = campaign_tag("/c.toml");
        let id = format!("<17.{tag}.herald@acme.example>");
        assert_eq!(
            parse_message_id(&id),
            Some(HeraldId::Unkeyed {
                recipient: 17,
                campaign_tag: tag.as_str()
            })
        );
        let keyed = message_id(&[3; 32], 4, 17, "acme.example");
        let Some(HeraldId::Keyed(token)) = parse_message_id(&keyed) else {
            panic!("{keyed} is not read as keyed");
        };
        let named = token::decode(&[3; 32], Purpose::MessageId, token).unwrap();
        assert_eq!((named.campaign, named.recipient), (4, 17));
        // The neighbour's id cannot be made from one's own: the MAC no longer matches.
        let neighbour = keyed.replacen("<4.h.", "<4.i.", 1);
        let Some(HeraldId::Keyed(token)) = parse_message_id(&neighbour) else {
            panic!("{neighbour}");
        };
        assert!(token::decode(&[3; 32], Purpose::MessageId, token).is_err());
        // Deterministic per recipient, different per recipient and per key.
        assert_eq!(keyed, message_id(&[3; 32], 4, 17, "acme.example"));
        assert_ne!(keyed, message_id(&[3; 32], 4, 18, "acme.example"));
        assert_ne!(keyed, message_id(&[5; 32], 4, 17, "acme.example"));
        for other in [
            "17.abc.herald@x",
            "<x.0123456789abcdef.herald@x>",
            "17.0123456789abcdef.other@x",
            "no-at-sign",
        ] {
            assert_eq!(parse_message_id(other), None, "{other}");
        }
    }
}
