//! Recipient lists: reading CSV files as marketers really have them (any delimiter, BOM,
//! quoted fields, Windows-1252), checking addresses, finding duplicates. Owns `csv`,
//! `encoding_rs` and `idna`. Never writes anything: the engine stores what it returns.

mod address;
mod csv_import;
mod dedupe;

pub use address::{AddressError, EmailAddress};
pub use csv_import::{CsvRecipients, CsvRow, ImportError, Record, open};
pub use dedupe::{Deduper, Verdict};
