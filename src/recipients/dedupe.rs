//! Sorting the raw email cells of a recipient list into valid, invalid and
//! duplicate, in the order the rows arrive.
//!
//! This module owns the "have we seen this mailbox before?" memory. It must
//! never keep the addresses themselves (a million-row list should cost a few
//! tens of megabytes, not hundreds), never reorder or drop rows on its own,
//! and never print: the caller decides what to report.

use std::collections::HashMap;
use std::collections::hash_map::{DefaultHasher, Entry};
use std::hash::{BuildHasherDefault, Hasher};

use super::address::EmailAddress;

/// What to do with one row's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// First time this mailbox appears: send to it. `key` is the address's
    /// [`EmailAddress::key`], computed once here for whoever stores it.
    Valid { address: EmailAddress, key: String },
    /// The cell is not a usable address; `reason` is a plain-language
    /// sentence (the address error's message).
    Invalid { reason: String },
    /// The same mailbox (compared with [`EmailAddress::key`]) already
    /// appeared on `first_line`.
    Duplicate { first_line: u64 },
}

/// Remembers which mailboxes were already seen, by a 64-bit hash of their
/// key mapped to the line where each first appeared.
///
/// Storing hashes instead of strings keeps one entry at 16 bytes. The price
/// is that two different addresses could share a hash; with 64 bits the
/// chance over a million rows is about one in 37 million (birthday bound
/// n²/2⁶⁵), which is far below the rate of typos in real lists.
#[derive(Debug, Default)]
pub struct Deduper {
    first_seen: HashMap<u64, u64, BuildHasherDefault<AlreadyHashed>>,
}

/// The map's keys are SipHash outputs already: hashing them again would only cost time.
#[derive(Debug, Default)]
struct AlreadyHashed(u64);

impl Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else is still spread over the whole word.
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

impl Deduper {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes room for `additional` more mailboxes at once: growing a map of a million entries
    /// step by step stops the reading for tens of milliseconds at each doubling.
    pub fn reserve(&mut self, additional: usize) {
        self.first_seen.reserve(additional);
    }

    /// Classifies the email cell of the row starting at `line`. Invalid
    /// addresses are not remembered, so they never make a later row a
    /// duplicate.
    pub fn classify(&mut self, line: u64, raw_email: &str) -> Verdict {
        let address = match EmailAddress::parse(raw_email) {
            Ok(address) => address,
            Err(err) => {
                return Verdict::Invalid {
                    reason: err.to_string(),
                };
            }
        };
        let key = address.key();
        match self.first_seen.entry(hash_key(&key)) {
            Entry::Occupied(seen) => Verdict::Duplicate {
                first_line: *seen.get(),
            },
            Entry::Vacant(slot) => {
                slot.insert(line);
                Verdict::Valid { address, key }
            }
        }
    }
}

/// SipHash with fixed keys: deterministic within and across runs of the same
/// build, so a (very unlikely) collision is at least reproducible. The hashes
/// are never stored, so a change of algorithm between Rust releases is
/// harmless.
fn hash_key(key: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(key.as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_valid(verdict: &Verdict) -> bool {
        matches!(verdict, Verdict::Valid { .. })
    }

    #[test]
    fn duplicates_ignore_case() {
        let mut d = Deduper::new();
        assert!(is_valid(&d.classify(2, "Ann@Example.com")));
        assert_eq!(
            d.classify(5, "ann@example.COM"),
            Verdict::Duplicate { first_line: 2 }
        );
        assert_eq!(
            d.classify(9, "  ANN@EXAMPLE.COM "),
            Verdict::Duplicate { first_line: 2 }
        );
        assert!(is_valid(&d.classify(10, "bob@example.com")));
    }

    #[test]
    fn idn_and_punycode_are_the_same_mailbox() {
        let mut d = Deduper::new();
        assert!(is_valid(&d.classify(2, "user@bücher.example")));
        assert_eq!(
            d.classify(3, "USER@xn--bcher-kva.example"),
            Verdict::Duplicate { first_line: 2 }
        );
    }

    #[test]
    fn needlessly_quoted_local_part_is_a_duplicate() {
        let mut d = Deduper::new();
        assert!(is_valid(&d.classify(2, "ann@example.com")));
        assert_eq!(
            d.classify(3, "\"Ann\"@example.com"),
            Verdict::Duplicate { first_line: 2 }
        );
    }

    #[test]
    fn invalid_rows_do_not_enter_the_set() {
        let mut d = Deduper::new();
        let first = d.classify(2, "ann@example");
        assert_eq!(
            first,
            Verdict::Invalid {
                reason: "the domain has no dot in it, so it cannot be a public mail domain".into()
            }
        );
        assert_eq!(d.classify(3, "ann@example"), first);
        assert!(matches!(d.classify(4, ""), Verdict::Invalid { .. }));
        assert!(is_valid(&d.classify(5, "ann@example.com")));
        assert_eq!(
            d.classify(6, "ann@example.com"),
            Verdict::Duplicate { first_line: 5 }
        );
    }

    #[test]
    fn valid_verdict_carries_the_parsed_address() {
        let mut d = Deduper::new();
        match d.classify(1, " x@bücher.example ") {
            Verdict::Valid { address, key } => {
                assert_eq!(address.as_str(), "x@bücher.example");
                assert_eq!(key, address.key());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
