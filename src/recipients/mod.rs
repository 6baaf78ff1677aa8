//! Recipient lists: reading CSV files and spreadsheets as marketers really have them (any
//! delimiter, BOM, quoted fields, Windows-1252; .xlsx and .ods), finding the email column
//! without being told, checking addresses, finding duplicates. Owns `csv`, `encoding_rs`,
//! `idna` and `calamine`. Never writes anything: the engine stores what it returns.

mod address;
mod columns;
mod csv_import;
mod dedupe;
mod list;
mod sheet;

pub use address::{AddressError, EmailAddress};
pub use columns::{EmailColumn, FoundBy};
pub use csv_import::{CsvRecipients, CsvRow, ImportError};
pub use dedupe::{Deduper, Verdict};
pub use list::{ListFormat, RecipientList, Record, is_sheet, open};
