//! One-click unsubscribe that a desktop sender can honor (issue #15): the small HTTP endpoint
//! to deploy on any server (`server`, `herald unsubscribe-server`), its pages (`page`, pure),
//! and Herald's side that pulls the endpoint's records into the global suppression list before
//! every send (`pull`). The only owner of axum, hyper, hyper-util and http-body-util (HTTPS
//! borrows the SMTP sessions' rustls connector); tokio is used here beside `engine`, because the
//! endpoint runs without the engine and the pull must finish before a run starts.
//!
//! Trust: the endpoint verifies the signed tokens of `crate::token` with the database's
//! unsubscribe key (a file on the server), so it needs no list of recipients and never learns an
//! address; Herald pulls with a bearer secret derived from the same key.

pub mod page;
pub mod pull;
pub mod server;

use serde::{Deserialize, Serialize};

/// One record as `GET /pull` serves it and Herald reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PulledRecord {
    pub cursor: i64,
    pub campaign: i64,
    pub recipient: i64,
    pub at_ms: i64,
    pub how: String,
}

/// The body of `GET /pull`: records after the asked cursor, oldest first, and the cursor to ask
/// from next (the last record's, or the asked one when there is none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullPage {
    pub records: Vec<PulledRecord>,
    pub cursor: i64,
}

/// Most records one `GET /pull` returns; Herald asks again while pages come back full.
pub const PULL_PAGE: u32 = 1_000;

/// The key file in the endpoint's data folder: the database's unsubscribe key, 64 hex digits.
pub const KEY_FILE: &str = "unsubscribe.key";

/// The endpoint's database in its data folder.
pub const LOG_FILE: &str = "unsubscribes.db";

/// The key as the key file holds it.
pub fn key_to_hex(key: &[u8; 32]) -> String {
    key.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The key from the key file's text (surrounding whitespace ignored).
pub fn key_from_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut key = [0u8; 32];
    for (slot, pair) in key.iter_mut().zip(text.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *slot = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_round_trips() {
        let key = [0xa5; 32];
        let text = key_to_hex(&key);
        assert_eq!(key_from_hex(&format!("{text}\n")), Some(key));
        assert_eq!(key_from_hex(&text[..62]), None);
        assert_eq!(key_from_hex(&text.replacen('a', "g", 1)), None);
    }
}
