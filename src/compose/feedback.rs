//! The addresses that bring mail back to the campaign's bounce mailbox (issue #13): the
//! per-recipient envelope sender `bounces+TAG@acme.example` (VERP: the bounce names its
//! recipient without being parsed) and the List-Unsubscribe mailto `bounces+u-TAG@…`, each
//! tag a signed token (`crate::token`). And the deterministic Message-ID's parts, which the
//! mailbox reader uses to match a report whose return path a relay rewrote. Pure functions.

use std::path::Path;

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

/// The campaign part of Message-IDs: a stable hash of the campaign file's key.
pub fn campaign_tag(campaign_key: &str) -> String {
    format!("{:016x}", fnv1a(campaign_key.as_bytes()))
}

/// The campaign tag of a campaign file.
pub fn campaign_tag_of(path: &Path) -> String {
    campaign_tag(&path.to_string_lossy())
}

/// The recipient id and campaign tag of a Herald Message-ID (`<id.tag.herald@domain>`, with
/// or without the angle brackets), or None when it is not one.
pub fn parse_message_id(text: &str) -> Option<(i64, &str)> {
    let text = text.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, _domain) = text.split_once('@')?;
    let mut parts = local.split('.');
    let (Some(id), Some(tag), Some("herald"), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if tag.len() != 16 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((id.parse().ok()?, tag))
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
        assert_eq!(parse_message_id(&id), Some((17, tag.as_str())));
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
