//! Importing recipients into a campaign: one transaction per import, rows written in multi-row
//! INSERTs, and the rule that a key appears once per campaign kept by the importer itself (it
//! holds the write lock and a hash of every key the campaign had before; the import's own rows
//! come with different keys, see [`Importer::push`]). Never leaves part of an import behind: an
//! importer dropped without `finish`, or a process killed mid-import, adds nobody.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, Statement, params};

use super::{BUSY_TIMEOUT, CampaignId, Store, StoreError, now_ms};

/// Rows per multi-row INSERT during an import (5 parameters each, far below SQLite's limit).
const INSERT_ROWS: usize = 64;

/// A recipient row to add at import, owned: the thread that reads the file builds it (encoding
/// its fields there) while the store's thread inserts the rows before it, so the strings move
/// into the INSERT without being copied again.
#[derive(Debug, Clone)]
pub struct ImportRow {
    line: i64,
    email: String,
    /// None when the key is the address itself (stored as NULL, see migration 4).
    key: Option<String>,
    /// The values as a JSON array, in the order of the import's columns.
    values_json: String,
    skip_reason: Option<String>,
}

impl ImportRow {
    /// `key` is the de-duplication key, unique within a campaign, so importing again adds
    /// nobody twice. `values` are the personalization fields in the order of the columns given
    /// to [`Store::importer`]. `skip_reason` Some keeps the row as `skipped` with that reason
    /// (invalid, duplicate, malformed…).
    pub fn new<V: AsRef<str>>(
        line: u64,
        email: String,
        key: String,
        values: impl IntoIterator<Item = V>,
        skip_reason: Option<String>,
    ) -> ImportRow {
        ImportRow {
            line: i64::try_from(line).unwrap_or(i64::MAX),
            key: (key != email).then_some(key),
            email,
            values_json: json_array(values),
            skip_reason,
        }
    }

    /// The key that makes the row unique within its campaign.
    fn key(&self) -> &str {
        self.key.as_deref().unwrap_or(&self.email)
    }
}

/// The values as a JSON array of strings, written straight from the cells.
fn json_array<V: AsRef<str>>(values: impl IntoIterator<Item = V>) -> String {
    let mut json = Vec::with_capacity(64);
    json.push(b'[');
    for (index, value) in values.into_iter().enumerate() {
        if index > 0 {
            json.push(b',');
        }
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut json, value.as_ref());
    }
    json.push(b']');
    String::from_utf8(json).unwrap_or_else(|_| "[]".to_string())
}

/// 128 bits of the key: 16 bytes a recipient in memory, and a collision between two of a
/// million keys is about as likely as 1 in 10^26.
fn key_hash(key: &str) -> u128 {
    use std::hash::Hash;
    let half = |salt: u64| {
        let mut hasher = std::hash::DefaultHasher::new();
        salt.hash(&mut hasher);
        key.hash(&mut hasher);
        hasher.finish()
    };
    (u128::from(half(0x5eed_0001)) << 64) | u128::from(half(0x5eed_0002))
}

/// The set of key hashes hashes them no further: they already are SipHash outputs, and hashing
/// a million of them again with SipHash cost more on the inserting thread than the lookups.
#[derive(Default)]
struct KeyHashHasher(u64);

impl Hasher for KeyHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used; this keeps any other input well spread all the same.
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = (value as u64) ^ ((value >> 64) as u64);
    }
}

type KnownKeys = HashSet<u128, BuildHasherDefault<KeyHashHasher>>;

/// How an import's transaction is journaled (see [`leave_wal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Journal {
    /// The database's own mode, left as it was.
    Unchanged,
    /// A rollback journal for the time of the import; WAL comes back when it ends.
    Rollback,
}

/// Switches an idle WAL connection to a rollback journal for an import, when no other
/// connection has the file open.
///
/// In WAL every page of an import is written twice, each time with an fsync: into the WAL at
/// the commit, then into the database by the checkpoint; that was a quarter of a million-row
/// import (issue #2). With a rollback journal new pages go once, straight into the file, and
/// only the few pages that existed before are journaled. A crash is no riskier: the
/// transaction is still one, and a crash mid-import leaves a hot journal that the next open
/// rolls back (before `Store::open` turns WAL on again). `synchronous = FULL` while the rollback
/// journal is in use, since NORMAL there can corrupt the file on power loss; the send path never
/// runs in this mode.
///
/// Leaving WAL needs an exclusive lock. When another connection holds the file (the window's
/// reader, a run in progress), the import stays in WAL at once rather than wait for it.
fn leave_wal(conn: &Connection) -> Result<Journal, StoreError> {
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    if mode != "wal" {
        return Ok(Journal::Unchanged);
    }
    conn.busy_timeout(Duration::ZERO)?;
    let switched = conn.query_row("PRAGMA journal_mode = DELETE", [], |row| {
        row.get::<_, String>(0)
    });
    conn.busy_timeout(BUSY_TIMEOUT)?;
    match switched {
        Ok(mode) if mode == "delete" => {}
        Ok(_) => return Ok(Journal::Unchanged),
        Err(error)
            if matches!(
                error.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            ) =>
        {
            return Ok(Journal::Unchanged);
        }
        Err(error) => return Err(error.into()),
    }
    if let Err(error) = conn.pragma_update(None, "synchronous", "FULL") {
        back_to_wal(conn);
        return Err(error.into());
    }
    Ok(Journal::Rollback)
}

/// Puts a connection that [`leave_wal`] switched back to WAL (keeping `synchronous = FULL`, the
/// store's setting, see `Store::open`). Called
/// after the import's transaction ended either way, so a failure is only logged: nothing is
/// lost, the connection just keeps the rollback journal until the next `Store::open`.
fn back_to_wal(conn: &Connection) {
    match conn.query_row("PRAGMA journal_mode = WAL", [], |row| {
        row.get::<_, String>(0)
    }) {
        Ok(mode) if mode == "wal" => {}
        Ok(mode) => tracing::warn!(mode, "after an import: the database did not return to WAL"),
        Err(error) => tracing::warn!(%error, "after an import: could not return to WAL"),
    }
}

impl Store {
    /// Starts an import of rows whose fields are named `columns`: every row goes in one
    /// transaction, which holds the write lock until `finish`.
    pub fn importer(
        &mut self,
        campaign: CampaignId,
        columns: &[String],
    ) -> Result<Importer<'_>, StoreError> {
        // The rows' one foreign key, their campaign, is checked once below rather than by a
        // lookup per row; the pragma only changes outside a transaction.
        let foreign_keys: bool = self
            .conn
            .query_row("PRAGMA foreign_keys", [], |row| row.get(0))?;
        let journal = leave_wal(&self.conn)?;
        let mut importer = Importer {
            conn: &self.conn,
            journal,
            foreign_keys,
            campaign,
            columns_json: serde_json::to_string(columns).unwrap_or_else(|_| "[]".to_string()),
            field_names: 0,
            now: now_ms(),
            added: 0,
            added_skipped: 0,
            known: KnownKeys::default(),
            #[cfg(debug_assertions)]
            pushed: KnownKeys::default(),
            waiting: Vec::with_capacity(INSERT_ROWS),
            insert: None,
        };
        // From here an error drops `importer`, which rolls back and puts WAL and the foreign
        // keys back.
        if foreign_keys {
            importer.conn.pragma_update(None, "foreign_keys", "OFF")?;
        }
        importer.conn.execute_batch("BEGIN IMMEDIATE")?;
        // What the foreign key would have checked on every row (an error when the campaign
        // does not exist); the write lock keeps it true until the commit.
        importer
            .conn
            .query_row("SELECT id FROM campaign WHERE id = ?1", [campaign], |row| {
                row.get::<_, i64>(0)
            })?;
        // The names are stored once; every row of this import refers to them.
        importer.conn.execute(
            "INSERT OR IGNORE INTO field_names (names) VALUES (?1)",
            [&importer.columns_json],
        )?;
        importer.field_names = importer.conn.query_row(
            "SELECT id FROM field_names WHERE names = ?1",
            [&importer.columns_json],
            |row| row.get(0),
        )?;
        importer.insert = Some(importer.conn.prepare(&importer.build_insert(INSERT_ROWS))?);
        // The write lock is held from here to the commit, so the keys read now stay the whole
        // truth for this campaign while the import decides who is new.
        {
            let mut keys = importer.conn.prepare(
                "SELECT coalesce(email_key, email) FROM recipient WHERE campaign_id = ?1",
            )?;
            let rows = keys.query_map([campaign], |row| row.get::<_, String>(0))?;
            for key in rows {
                importer.known.insert(key_hash(&key?));
            }
        }
        Ok(importer)
    }
}

/// An import in progress; dropped without `finish` it rolls back and leaves nothing behind.
pub struct Importer<'a> {
    pub(super) conn: &'a Connection,
    journal: Journal,
    /// Whether the connection enforced foreign keys before the import (turned off meanwhile).
    foreign_keys: bool,
    campaign: CampaignId,
    /// The import's column names as a JSON array, and their row in `field_names`.
    columns_json: String,
    field_names: i64,
    now: i64,
    added: u64,
    added_skipped: u64,
    /// Hashes of every key the campaign had before the import (see [`key_hash`]).
    known: KnownKeys,
    /// Hashes of the keys pushed, to hold callers to [`Importer::push`]'s contract in tests.
    #[cfg(debug_assertions)]
    pushed: KnownKeys,
    /// Rows accepted but not yet written.
    waiting: Vec<ImportRow>,
    /// The INSERT of [`INSERT_ROWS`] rows, prepared once.
    insert: Option<Statement<'a>>,
}

impl Importer<'_> {
    /// Adds a row unless the campaign had a row with the same key before the import; returns
    /// whether it was added.
    ///
    /// The rows of one import must have different keys: the caller de-duplicates its file
    /// (`recipients::Deduper` does, and gives the rows it keeps as skipped keys of their own).
    /// The importer compares keys only with the rows from before, which spares a million-row
    /// import a million insertions into a set of a million hashes; debug builds check the
    /// contract.
    ///
    /// Rows are written in multi-row INSERTs of [`INSERT_ROWS`]: SQLite's per-statement work
    /// (opening cursors, seeking) then counts once per batch instead of once per recipient.
    pub fn push(&mut self, row: ImportRow) -> Result<bool, StoreError> {
        if !self.known.is_empty() && self.known.contains(&key_hash(row.key())) {
            return Ok(false);
        }
        #[cfg(debug_assertions)]
        debug_assert!(
            self.pushed.insert(key_hash(row.key())),
            "key {:?} pushed twice in one import",
            row.key()
        );
        self.added += 1;
        if row.skip_reason.is_some() {
            self.added_skipped += 1;
        }
        self.waiting.push(row);
        if self.waiting.len() >= INSERT_ROWS {
            self.write_waiting()?;
        }
        Ok(true)
    }

    /// The INSERT of `rows` rows. What every row of the import shares is written into it as
    /// integers (campaign, field names, time), and the state follows from the skip reason:
    /// five parameters a row instead of nine.
    fn build_insert(&self, rows: usize) -> String {
        let (campaign, names, now) = (self.campaign, self.field_names, self.now);
        let values: Vec<String> = (0..rows)
            .map(|row| {
                let base = row * 5;
                let (line, email, key, fields, skip) =
                    (base + 1, base + 2, base + 3, base + 4, base + 5);
                format!(
                    "({campaign}, ?{line}, ?{email}, ?{key}, ?{fields}, {names}, \
                     iif(?{skip} IS NULL, 'pending', 'skipped'), ?{skip}, {now})"
                )
            })
            .collect();
        format!(
            "INSERT INTO recipient (campaign_id, line, email, email_key, fields, field_names, state,
                 skip_reason, updated_at)
             VALUES {}",
            values.join(", ")
        )
    }

    fn write_waiting(&mut self) -> Result<(), StoreError> {
        if self.waiting.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.waiting);
        let mut partial;
        let insert = match self.insert.as_mut() {
            Some(insert) if rows.len() == INSERT_ROWS => insert,
            _ => {
                partial = self.conn.prepare(&self.build_insert(rows.len()))?;
                &mut partial
            }
        };
        let mut parameters: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(rows.len() * 5);
        for row in &rows {
            parameters.push(&row.line);
            parameters.push(&row.email);
            parameters.push(&row.key);
            parameters.push(&row.values_json);
            parameters.push(&row.skip_reason);
        }
        insert.execute(parameters.as_slice())?;
        // The batch's buffer is kept for the next rows.
        drop(parameters);
        let mut rows = rows;
        rows.clear();
        self.waiting = rows;
        Ok(())
    }

    /// Whether the campaign had a row with this key before the import.
    pub fn contains(&self, key: &str) -> bool {
        self.known.contains(&key_hash(key))
    }

    /// Commits the import and records its columns as the campaign's. Returns rows added and,
    /// of those, rows added as skipped.
    pub fn finish(mut self) -> Result<(u64, u64), StoreError> {
        self.write_waiting()?;
        self.conn.execute(
            "UPDATE campaign SET columns = ?2 WHERE id = ?1",
            params![self.campaign, self.columns_json],
        )?;
        // The rows inserted are counted here, once, rather than by a trigger per row.
        super::results::add_to_tally(
            self.conn,
            self.campaign,
            self.added - self.added_skipped,
            self.added_skipped,
            self.now,
        )?;
        self.conn.execute_batch("COMMIT")?;
        // Dropping `self` now puts WAL back.
        Ok((self.added, self.added_skipped))
    }
}

impl Drop for Importer<'_> {
    fn drop(&mut self) {
        // A transaction still open here is this import's (the importer borrows the store
        // mutably): roll it back, so an import that did not finish adds nobody.
        if !self.conn.is_autocommit()
            && let Err(error) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(%error, "could not roll an unfinished import back");
        }
        if self.foreign_keys
            && let Err(error) = self.conn.pragma_update(None, "foreign_keys", "ON")
        {
            tracing::warn!(%error, "after an import: could not turn foreign keys back on");
        }
        if self.journal == Journal::Rollback {
            back_to_wal(self.conn);
        }
    }
}
