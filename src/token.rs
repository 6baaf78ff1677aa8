//! Signed tokens that name one recipient of one campaign: the tag of a per-recipient return
//! path (VERP, `bounces+TAG@acme.example`), of the mailto unsubscribe address, of the
//! one-click unsubscribe link, and the Message-ID of each recipient's message. A token carries the campaign and recipient ids and an HMAC-SHA256
//! over them and its purpose, keyed by a secret of the database, so a forged or edited token, or
//! one made for another purpose, names nobody. Pure functions; the only user of `hmac`/`sha2`.
//!
//! The text is lower-case letters, digits and dots: safe in a dot-atom local part (RFC 5321
//! §4.1.2) even through relays that fold the local part's case, and in a URL path unescaped.
//! `c.r.m`: campaign and recipient in base 36, then 80 bits of the MAC in hex.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What a token is for: a return-path tag cannot be replayed as an unsubscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The tag of a per-recipient envelope sender (bounces come back to it).
    ReturnPath,
    /// An unsubscribe request, by mail or by the one-click link.
    Unsubscribe,
    /// The Message-ID of a recipient's message (issue #21): a report that returns it proves
    /// it concerns that message, and nobody can make the id of another recipient from theirs.
    MessageId,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::ReturnPath => b"herald return-path v1",
            Purpose::Unsubscribe => b"herald unsubscribe v1",
            Purpose::MessageId => b"herald message-id v1",
        }
    }
}

/// Whom a token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named {
    pub campaign: i64,
    pub recipient: i64,
}

/// Why a text is not a valid token. The endpoint and the mailbox reader treat every case the
/// same (nothing recorded); the kinds are for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature does not match")]
    BadMac,
}

/// The name of the database secret that keys unsubscribe links: its own secret, because it is
/// installed on the endpoint's server (`herald unsubscribes secret`), and return-path tags
/// must not become forgeable there.
pub const UNSUBSCRIBE_KEY: &str = "unsubscribe-link";

/// Bytes of the MAC kept in a token: 80 bits make a forgery a 1-in-10^24 guess per try.
const MAC_BYTES: usize = 10;
/// Longest token `decode` considers: two 13-digit ids, the MAC, two dots (and some slack).
const MAX_TOKEN_LEN: usize = 64;

fn mac(secret: &[u8; 32], purpose: Purpose, named: Named) -> [u8; MAC_BYTES] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return [0; MAC_BYTES];
    };
    mac.update(purpose.label());
    mac.update(&named.campaign.to_be_bytes());
    mac.update(&named.recipient.to_be_bytes());
    let full = mac.finalize().into_bytes();
    let mut short = [0u8; MAC_BYTES];
    short.copy_from_slice(&full[..MAC_BYTES]);
    short
}

/// The token naming `named` for `purpose`.
pub fn encode(secret: &[u8; 32], purpose: Purpose, named: Named) -> String {
    let mut text = format!(
        "{}.{}.",
        base36(u64::try_from(named.campaign).unwrap_or(0)),
        base36(u64::try_from(named.recipient).unwrap_or(0))
    );
    for byte in mac(secret, purpose, named) {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// Whom `text` names, if it is a token made with `secret` for `purpose`. Upper case is
/// accepted, since some relays fold local parts.
pub fn decode(secret: &[u8; 32], purpose: Purpose, text: &str) -> Result<Named, TokenError> {
    // Only the token alphabet: `from_str_radix` would also take a leading `+`, giving one token
    // several spellings.
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'.';
    if text.len() > MAX_TOKEN_LEN || !text.bytes().all(alphabet) {
        return Err(TokenError::Malformed);
    }
    let text = text.to_ascii_lowercase();
    let mut parts = text.split('.');
    let (Some(campaign), Some(recipient), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let named = Named {
        campaign: parse_base36(campaign)?,
        recipient: parse_base36(recipient)?,
    };
    let given = parse_hex(tag)?;
    let expected = mac(secret, purpose, named);
    // Constant time: a timing difference must not tell a forger how many bytes were right.
    let difference = given
        .iter()
        .zip(expected.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if difference != 0 {
        return Err(TokenError::BadMac);
    }
    Ok(named)
}

/// The shortest pull bearer secret of the user's own (`--token-env` / `token_env`) that the
/// endpoint and the pull accept: 24 random characters are far beyond guessing over HTTP.
pub const MIN_PULL_BEARER: usize = 24;

/// The bearer secret with which Herald pulls records from the unsubscribe endpoint: derived
/// from the key the endpoint verifies tokens with, so one file installed on the server serves
/// both, and a leaked bearer secret cannot be used to make tokens.
pub fn pull_bearer(secret: &[u8; 32]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(b"herald unsubscribe pull v1");
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Whether `given` equals `expected`, in time that depends only on their lengths (a bearer
/// check must not tell a guesser how many leading bytes were right).
pub fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn base36(mut value: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(value % 36) as usize]);
        value /= 36;
        if value == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn parse_base36(text: &str) -> Result<i64, TokenError> {
    // One canonical spelling per id: no empty part, no leading zeros, within i64.
    if text.is_empty() || (text.len() > 1 && text.starts_with('0')) || text.len() > 13 {
        return Err(TokenError::Malformed);
    }
    let value = u64::from_str_radix(text, 36).map_err(|_| TokenError::Malformed)?;
    i64::try_from(value).map_err(|_| TokenError::Malformed)
}

fn parse_hex(text: &str) -> Result<[u8; MAC_BYTES], TokenError> {
    if text.len() != MAC_BYTES * 2 {
        return Err(TokenError::Malformed);
    }
    let mut out = [0u8; MAC_BYTES];
    for (slot, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| TokenError::Malformed)?;
        *slot = u8::from_str_radix(pair, 16).map_err(|_| TokenError::Malformed)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7; 32];
    const NAMED: Named = Named {
        campaign: 12,
        recipient: 1_000_000,
    };

    #[test]
    fn a_token_names_its_recipient_and_nothing_else() {
        let token = encode(&SECRET, Purpose::Unsubscribe, NAMED);
        assert!(token.starts_with("c.lfls."), "{token}");
        assert_eq!(token.len(), "c.lfls.".len() + 20);
        assert_eq!(decode(&SECRET, Purpose::Unsubscribe, &token), Ok(NAMED));
        assert_eq!(
            decode(&SECRET, Purpose::Unsubscribe, &token.to_ascii_uppercase()),
            Ok(NAMED)
        );
        // Another purpose, another secret: nobody.
        assert_eq!(
            decode(&SECRET, Purpose::ReturnPath, &token),
            Err(TokenError::BadMac)
        );
        assert_eq!(
            decode(&[8; 32], Purpose::Unsubscribe, &token),
            Err(TokenError::BadMac)
        );
    }

    #[test]
    fn edited_and_truncated_tokens_are_refused() {
        let token = encode(&SECRET, Purpose::ReturnPath, NAMED);
        let other_recipient = token.replacen("lfls", "lflt", 1);
        let other_campaign = format!("d{}", &token[1..]);
        let cases = [
            (other_recipient.as_str(), TokenError::BadMac),
            (other_campaign.as_str(), TokenError::BadMac),
            (&token[..token.len() - 1], TokenError::Malformed),
            ("", TokenError::Malformed),
            ("c.lfls", TokenError::Malformed),
            ("c..00000000000000000000", TokenError::Malformed),
            ("0c.lfls.00000000000000000000", TokenError::Malformed),
            ("c.lfls.0000000000000000000g", TokenError::Malformed),
            ("c.lfls.00000000000000000000.x", TokenError::Malformed),
            (
                "zzzzzzzzzzzzz.1.00000000000000000000",
                TokenError::Malformed,
            ),
            ("c.lfls.é0000000000000000000", TokenError::Malformed),
            ("+c.lfls.00000000000000000000", TokenError::Malformed),
            ("c.lfls.+0000000000000000000", TokenError::Malformed),
        ];
        for (text, expected) in cases {
            assert_eq!(
                decode(&SECRET, Purpose::ReturnPath, text),
                Err(expected),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_pull_bearer_is_derived_and_compared_whole() {
        let bearer = pull_bearer(&SECRET);
        assert_eq!(bearer.len(), 64);
        assert_ne!(bearer, pull_bearer(&[8; 32]));
        assert!(same_secret(
            bearer.as_bytes(),
            pull_bearer(&SECRET).as_bytes()
        ));
        assert!(!same_secret(&bearer.as_bytes()[..63], bearer.as_bytes()));
        assert!(!same_secret(b"", bearer.as_bytes()));
    }

    #[test]
    fn tokens_fit_a_local_part_and_a_url() {
        let big = Named {
            campaign: i64::MAX,
            recipient: i64::MAX,
        };
        let token = encode(&SECRET, Purpose::ReturnPath, big);
        assert_eq!(decode(&SECRET, Purpose::ReturnPath, &token), Ok(big));
        // "bounces+u-" and the token stay within RFC 5321's 64-octet local part.
        assert!("bounces+u-".len() + token.len() <= 64, "{token}");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.')
        );
    }
}
