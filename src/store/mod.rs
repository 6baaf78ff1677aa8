//! The state database: every recipient of every campaign and where its delivery stands. Owns
//! rusqlite and **all** SQL; the state machine's transitions are written only here. Never knows
//! about SMTP, templates or the window: callers hand it plain data.

mod feedback;
mod feedback_view;
mod global_suppression;
mod import;
mod results;
mod schema;
mod suppression;
mod unsubscribe_log;
mod unsubscribe_pull;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

pub use feedback::{
    Applied, Feedback, FeedbackCounts, FeedbackKind, Held, HeldRow, MailboxCursor, Mailed,
};
pub use feedback_view::{SuppressionPage, reason_label};
pub use global_suppression::{Suppression, SuppressionReason};
pub use import::{ImportRow, Importer};
pub use results::{CampaignSummary, DomainRow, ReplyClass, ReplyGroup, TimeBucket};
pub use suppression::SUPPRESSED;
pub use unsubscribe_log::{LoggedUnsubscribe, UnsubscribeLog};
pub use unsubscribe_pull::{AppliedUnsubscribes, PulledUnsubscribe};
pub use writer::{Writer, WriterError, WriterThread};

// The delivery vocabulary lives in `crate::delivery`; these re-exports keep the old paths.
pub use crate::delivery::{Counts, Reply, State, now_ms};

pub type CampaignId = i64;
pub type RecipientId = i64;

/// One recipient row as the reports and the window show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientRow {
    pub id: RecipientId,
    pub line: u64,
    pub email: String,
    /// The personalization fields as a JSON object of strings.
    pub fields_json: String,
    pub state: State,
    pub attempts: u32,
    pub next_attempt_at_ms: i64,
    pub route: Option<String>,
    pub reply: Option<Reply>,
    pub skip_reason: Option<String>,
    pub updated_at_ms: i64,
}

/// A recipient claimed for sending: its row is already `sending` in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: RecipientId,
    pub email: String,
    pub fields_json: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The state the row was claimed from (pending or deferred).
    pub from: State,
    /// The route of the last attempt (a relay's name or an MX host), if any.
    pub route: Option<String>,
}

/// One change of a recipient's state, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub id: RecipientId,
    pub to: State,
    /// Attempts made so far, including the one that led here.
    pub attempts: u32,
    /// For `deferred`: when the next attempt is due (unix milliseconds).
    pub next_attempt_at_ms: i64,
    /// None keeps the row's last route.
    pub route: Option<String>,
    /// None keeps the row's last reply (a claimed row released unsent, say).
    pub reply: Option<Reply>,
    /// The server refused the address as dead (no such user or domain): the address goes on
    /// the global suppression list with the reply as evidence (issue #21).
    pub dead_address: bool,
}

/// Which rows a resend puts back to `pending`.
#[derive(Debug, Clone, Default)]
pub struct ResendFilter {
    pub include_failed: bool,
    pub include_uncertain: bool,
    /// Also failed rows whose address is on the global list as bounced (refused as dead);
    /// their entries are taken off the list, since the user says the address lives.
    pub include_hard: bool,
    /// Reply patterns: "550", "5.7.*", "4.*"; empty means any.
    pub reply_patterns: Vec<String>,
    pub route: Option<String>,
    /// Recipient domain (lower-case ASCII).
    pub domain: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the database is locked by another program (is another Herald sending this campaign?); close it and try again"
    )]
    Locked,
    #[error(
        "the database was written by a newer version of Herald (schema {found}, this one knows {supported}); update Herald"
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error("the disk is full; free some space, then resume: nothing was lost")]
    DiskFull,
    #[error("the file is not a Herald database or is damaged ({})", path.display())]
    NotADatabase { path: PathBuf },
    #[error("could not open the database: {source} ({})", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked,
            Some(ErrorCode::DiskFull) => StoreError::DiskFull,
            Some(ErrorCode::NotADatabase) => StoreError::NotADatabase {
                path: PathBuf::new(),
            },
            _ => StoreError::Sql(error),
        }
    }
}

/// Where the database lives unless the user says otherwise: herald.db in the data directory.
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "Herald").map(|dirs| dirs.data_dir().join("herald.db"))
}

/// How long a statement waits for another connection's write lock before reporting `Locked`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        create_private_file(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|error| with_path(error.into(), path))?;
        Store::prepare(conn, path).map_err(|error| with_path(error, path))
    }

    fn prepare(mut conn: Connection, path: &Path) -> Result<Store, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        schema::ensure_ours(&conn)?;
        // WAL lets the window read while the engine writes. FULL syncs the WAL at every commit
        // of this connection, so whatever a `Store` commits (a claim, a resend, a suppression,
        // a mailbox cursor) survives a power cut before the caller acts on it (issue #24); the
        // fsync also carries every earlier commit of other connections. Only the batched
        // writer opts out (`Writer::spawn`): its transitions are made durable by the next claim.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if mode != "wal" && mode != "memory" {
            tracing::warn!(mode, "the database could not switch to WAL");
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "cache_size", -32_768)?;
        schema::migrate(&mut conn)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Finds the campaign identified by `file_key` (the campaign file's absolute path), creating
    /// it on first use, so two campaign files never share state and the same file finds its own.
    pub fn campaign(&mut self, file_key: &str, name: &str) -> Result<CampaignId, StoreError> {
        if let Some(id) = self.find_campaign(file_key)? {
            return Ok(id);
        }
        self.conn.execute(
            "INSERT INTO campaign (file_key, name, created_at) VALUES (?1, ?2, ?3)",
            params![file_key, name, now_ms()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn find_campaign(&self, file_key: &str) -> Result<Option<CampaignId>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM campaign WHERE file_key = ?1",
                [file_key],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Gives campaigns their new files after a rename of the file or its folder (issue #20):
    /// `(campaign, new file key, new name)`, all in one transaction or none.
    pub fn move_campaigns(
        &mut self,
        moves: &[(CampaignId, String, String)],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for (id, key, name) in moves {
            tx.execute(
                "UPDATE campaign SET file_key = ?2, name = ?3 WHERE id = ?1",
                params![id, key, name],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The personalization columns recorded at the last import.
    pub fn columns(&self, campaign: CampaignId) -> Result<Vec<String>, StoreError> {
        let text: String = self.conn.query_row(
            "SELECT columns FROM campaign WHERE id = ?1",
            [campaign],
            |row| row.get(0),
        )?;
        Ok(serde_json::from_str(&text).unwrap_or_default())
    }

    pub fn counts(&self, campaign: CampaignId) -> Result<Counts, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT state, count(*) FROM recipient WHERE campaign_id = ?1 GROUP BY state",
        )?;
        let mut counts = Counts::default();
        let rows = statement.query_map([campaign], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (state, count) = row?;
            if let Some(state) = State::parse(&state) {
                *counts.slot(state) = count as u64;
            }
        }
        Ok(counts)
    }

    /// A page of recipients in import order after `after_id`, optionally of one state and/or
    /// whose address contains `search` (case-insensitive). Keyset paging: cost does not grow
    /// with how far the reader has scrolled.
    pub fn page(
        &self,
        campaign: CampaignId,
        state: Option<State>,
        search: Option<&str>,
        after_id: RecipientId,
        limit: u32,
    ) -> Result<Vec<RecipientRow>, StoreError> {
        let filter = Filter::new(state, search);
        let mut statement = self.conn.prepare_cached(&filter.page_sql())?;
        let rows = statement.query_map(
            params![campaign, filter.state, filter.pattern, after_id, limit],
            read_row,
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Rows `offset..offset + limit` of the campaign in import order, optionally of one state
    /// and/or whose address contains `search`: what a virtualized table shows when scrolled to
    /// `offset`. Cost grows with `offset` (SQLite walks the index or the table up to it), about
    /// a tenth of a second at the end of a million rows; callers run it off the UI thread.
    pub fn page_at(
        &self,
        campaign: CampaignId,
        state: Option<State>,
        search: Option<&str>,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<RecipientRow>, StoreError> {
        let filter = Filter::new(state, search);
        let mut statement = self.conn.prepare_cached(&filter.page_at_sql())?;
        let rows = statement.query_map(
            params![campaign, filter.state, filter.pattern, limit, offset as i64],
            read_row,
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// How many rows `page_at` can show with these filters.
    pub fn count_matching(
        &self,
        campaign: CampaignId,
        state: Option<State>,
        search: Option<&str>,
    ) -> Result<u64, StoreError> {
        let filter = Filter::new(state, search);
        let count: i64 = self.conn.query_row(
            &format!("SELECT count(*) FROM recipient {}", filter.sql(false)),
            params![campaign, filter.state, filter.pattern],
            |row| row.get(0),
        )?;
        Ok(count as u64)
    }

    /// The `index`-th recipient (0-based, import order) or the one with this address.
    pub fn find_recipient(
        &self,
        campaign: CampaignId,
        which: &RecipientRef,
    ) -> Result<Option<RecipientRow>, StoreError> {
        let row = match which {
            RecipientRef::Index(index) => self
                .conn
                .query_row(
                    // The table's own order, as `Filter::sql` explains.
                    &format!(
                        "SELECT {ROW_COLUMNS} FROM recipient NOT INDEXED WHERE campaign_id = ?1
                         ORDER BY id LIMIT 1 OFFSET ?2"
                    ),
                    params![campaign, *index as i64],
                    read_row,
                )
                .optional()?,
            RecipientRef::Email(email) => self
                .conn
                .query_row(
                    &format!(
                        "SELECT {ROW_COLUMNS} FROM recipient
                         WHERE campaign_id = ?1 AND coalesce(email_key, email) = ?2"
                    ),
                    params![campaign, email.trim().to_lowercase()],
                    read_row,
                )
                .optional()?,
        };
        Ok(row)
    }

    /// The 0-based position of a recipient in its campaign's import order.
    pub fn position(&self, campaign: CampaignId, id: RecipientId) -> Result<u64, StoreError> {
        let count: i64 = self.conn.query_row(
            "SELECT count(*) FROM recipient WHERE campaign_id = ?1 AND id < ?2",
            params![campaign, id],
            |row| row.get(0),
        )?;
        Ok(count as u64)
    }

    /// Puts rows left in `sending` by a run that did not finish (crash, kill, power loss) into
    /// `uncertain`: the server may or may not have them (RFC 1047). With `resend`, they then go
    /// back to `pending`. Returns how many rows were found.
    pub fn recover_in_flight(
        &mut self,
        campaign: CampaignId,
        resend: bool,
    ) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        let now = now_ms();
        tx.execute(
            "INSERT INTO event (recipient_id, at, state, attempt, route, reply_text)
             SELECT id, ?2, 'uncertain', attempts, route,
                    'Herald stopped while this message was being sent; the server may have it'
             FROM recipient WHERE campaign_id = ?1 AND state = 'sending'",
            params![campaign, now],
        )?;
        let found = tx.execute(
            "UPDATE recipient SET state = ?3, updated_at = ?2,
                reply_code = NULL, reply_enhanced = NULL,
                reply_text = 'Herald stopped while this message was being sent; the server may have it'
             WHERE campaign_id = ?1 AND state = 'sending'",
            params![campaign, now, if resend { "pending" } else { "uncertain" }],
        )?;
        if resend {
            tx.execute(
                "UPDATE recipient SET state = 'pending', updated_at = ?2
                 WHERE campaign_id = ?1 AND state = 'uncertain'",
                params![campaign, now],
            )?;
        }
        tx.commit()?;
        Ok(found as u64)
    }

    /// Claims up to `limit` recipients that are due (pending, or deferred whose time has come),
    /// marking them `sending` and committing before returning. The commit is synced to disk
    /// (`synchronous = FULL`, one fsync for the whole batch), so a claim is durable before its
    /// message leaves: after a power cut the row is `sending`, which the next run names
    /// `uncertain`, and never `pending` again (issue #24).
    pub fn claim(
        &mut self,
        campaign: CampaignId,
        now: i64,
        limit: u32,
    ) -> Result<Vec<Claimed>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut claimed = Vec::new();
        {
            let mut due = tx.prepare_cached(&format!(
                "SELECT id, email, fields, attempts, state, route, {FIELD_NAMES} FROM recipient
                 WHERE campaign_id = ?1 AND state = 'deferred' AND next_attempt_at <= ?2
                 ORDER BY next_attempt_at LIMIT ?3"
            ))?;
            let rows = due.query_map(params![campaign, now, limit], read_claimed)?;
            for row in rows {
                claimed.push(row?);
            }
            let left = limit.saturating_sub(claimed.len() as u32);
            if left > 0 {
                let mut pending = tx.prepare_cached(&format!(
                    "SELECT id, email, fields, attempts, state, route, {FIELD_NAMES} FROM recipient
                     WHERE campaign_id = ?1 AND state = 'pending' ORDER BY id LIMIT ?2"
                ))?;
                let rows = pending.query_map(params![campaign, left], read_claimed)?;
                for row in rows {
                    claimed.push(row?);
                }
            }
            suppression::drop_suppressed(&tx, campaign, &mut claimed, now)?;
            global_suppression::drop_suppressed(&tx, &mut claimed, now)?;
            let mut mark = tx.prepare_cached(
                "UPDATE recipient SET state = 'sending', updated_at = ?2 WHERE id = ?1",
            )?;
            for row in &claimed {
                mark.execute(params![row.id, now])?;
            }
        }
        tx.commit()?;
        Ok(claimed)
    }

    /// Applies a batch of transitions in one transaction, each also logged as an event.
    pub fn apply(&mut self, transitions: &[Transition]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        apply_in(&tx, transitions, now_ms())?;
        tx.commit()?;
        Ok(())
    }

    /// When the earliest deferred recipient is due, if any.
    pub fn next_due_ms(&self, campaign: CampaignId) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT min(next_attempt_at) FROM recipient WHERE campaign_id = ?1 AND state = 'deferred'",
            [campaign],
            |row| row.get(0),
        )?)
    }

    /// Puts failed and/or uncertain rows matching `filter` back to `pending` with a fresh
    /// allowance of attempts. Returns how many.
    pub fn resend(
        &mut self,
        campaign: CampaignId,
        filter: &ResendFilter,
    ) -> Result<u64, StoreError> {
        let mut states = Vec::new();
        if filter.include_failed {
            states.push(State::Failed);
        }
        if filter.include_uncertain {
            states.push(State::Uncertain);
        }
        let tx = self.conn.transaction()?;
        let now = now_ms();
        let mut chosen = Vec::new();
        let mut revived = Vec::new();
        {
            // A failed row whose address is on the global list as bounced was refused as dead
            // (here or elsewhere): left out unless the user includes those (issue #21).
            let mut select = tx.prepare(
                "SELECT id, coalesce(email_key, email), route, reply_code, reply_enhanced,
                     EXISTS (SELECT 1 FROM global_suppression g
                             WHERE g.address = coalesce(r.email_key, r.email) AND g.reason = 'bounced')
                 FROM recipient r WHERE campaign_id = ?1 AND state = ?2",
            )?;
            for state in states {
                let rows = select.query_map(params![campaign, state.as_str()], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, Option<String>>(2)?,
                        row.get::<_, Option<i64>>(3)?,
                        row.get::<_, Option<String>>(4)?,
                        row.get::<_, bool>(5)?,
                    ))
                })?;
                for row in rows {
                    let (id, key, route, code, enhanced, dead) = row?;
                    if dead && state == State::Failed && !filter.include_hard {
                        continue;
                    }
                    if resend_matches(filter, &key, route.as_deref(), code, enhanced.as_deref()) {
                        chosen.push(id);
                        if dead {
                            revived.push(key);
                        }
                    }
                }
            }
            let mut update = tx.prepare(
                "UPDATE recipient SET state = 'pending', attempts = 0, next_attempt_at = 0,
                     updated_at = ?2 WHERE id = ?1",
            )?;
            let mut log = tx.prepare(
                "INSERT INTO event (recipient_id, at, state, attempt, reply_text)
                 VALUES (?1, ?2, 'pending', 0, 'resend requested')",
            )?;
            for id in &chosen {
                update.execute(params![id, now])?;
                log.execute(params![id, now])?;
            }
            // Resending a dead address on purpose: the user says it lives again.
            let mut revive = tx.prepare(
                "DELETE FROM global_suppression WHERE address = ?1 AND reason = 'bounced'",
            )?;
            for key in &revived {
                revive.execute([key])?;
            }
        }
        tx.commit()?;
        Ok(chosen.len() as u64)
    }

    /// How many failed rows of the campaign a resend leaves out unless asked: their address
    /// is on the global list as bounced (refused as dead).
    pub fn hard_failed(&self, campaign: CampaignId) -> Result<u64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM recipient r WHERE campaign_id = ?1 AND state = 'failed'
               AND EXISTS (SELECT 1 FROM global_suppression g
                           WHERE g.address = coalesce(r.email_key, r.email) AND g.reason = 'bounced')",
            [campaign],
            |row| row.get::<_, i64>(0),
        )? as u64)
    }

    /// Marks uncertain rows as sent, for a user who checked that the server had them.
    pub fn mark_uncertain_sent(&mut self, campaign: CampaignId) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        let now = now_ms();
        tx.execute(
            "INSERT INTO event (recipient_id, at, state, attempt, reply_text)
             SELECT id, ?2, 'sent', attempts, 'marked sent by the user'
             FROM recipient WHERE campaign_id = ?1 AND state = 'uncertain'",
            params![campaign, now],
        )?;
        let changed = tx.execute(
            "UPDATE recipient SET state = 'sent', updated_at = ?2
             WHERE campaign_id = ?1 AND state = 'uncertain'",
            params![campaign, now],
        )?;
        tx.commit()?;
        Ok(changed as u64)
    }

    /// The transition log of one recipient, oldest first.
    pub fn history(&self, recipient: RecipientId) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut statement = self.conn.prepare(
            "SELECT state, attempt, route, reply_code, reply_enhanced, reply_text, at
             FROM event WHERE recipient_id = ?1 ORDER BY id",
        )?;
        let rows = statement.query_map([recipient], |row| {
            Ok(HistoryEntry {
                state: State::parse(&row.get::<_, String>(0)?).unwrap_or(State::Pending),
                attempt: row.get(1)?,
                route: row.get(2)?,
                reply: Reply {
                    code: row.get(3)?,
                    enhanced: row.get(4)?,
                    text: row.get::<_, Option<String>>(5)?.unwrap_or_default(),
                },
                at_ms: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

/// One logged transition of a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub state: State,
    pub attempt: u32,
    pub route: Option<String>,
    pub reply: Reply,
    pub at_ms: i64,
}

/// Which recipient to show: by position in import order or by address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientRef {
    Index(u64),
    Email(String),
}

/// The recipients table's filters (`?1` campaign, `?2` state, `?3` address pattern), written
/// so that SQLite reads the rows in id order and stops at the page instead of sorting every
/// row of the campaign first: at offset 999,000 of a million rows that was 2 s a page, and is
/// now under 0.2 s.
struct Filter {
    state: Option<&'static str>,
    pattern: Option<String>,
}

impl Filter {
    fn new(state: Option<State>, search: Option<&str>) -> Filter {
        Filter {
            state: state.map(State::as_str),
            pattern: like_pattern(search),
        }
    }

    /// `page`'s query: the filters, then `?5` rows after id `?4`.
    fn page_sql(&self) -> String {
        format!(
            "SELECT {ROW_COLUMNS} FROM recipient {} AND id > ?4 ORDER BY id LIMIT ?5",
            self.sql(true)
        )
    }

    /// `page_at`'s query: the filters, then `?4` rows from offset `?5`.
    fn page_at_sql(&self) -> String {
        format!(
            "SELECT {ROW_COLUMNS} FROM recipient {} ORDER BY id LIMIT ?4 OFFSET ?5",
            self.sql(true)
        )
    }

    /// The WHERE clause, for rows wanted in id order or (`in_order` false) only counted. With a
    /// state, the `recipient_state` index holds that state's rows in id order. Without one no
    /// index is in id order, so the table is walked in its own order (`NOT INDEXED`) rather
    /// than through the index and a sort of the whole campaign; a count still goes through the
    /// index, which is smaller. An absent filter's parameter is bound as NULL and tested as
    /// such, which keeps the parameters the same in every variant.
    fn sql(&self, in_order: bool) -> &'static str {
        match (self.state.is_some(), self.pattern.is_some()) {
            (false, false) if !in_order => "WHERE campaign_id = ?1 AND ?2 IS NULL AND ?3 IS NULL",
            (true, true) => {
                "WHERE campaign_id = ?1 AND state = ?2
                   AND coalesce(email_key, email) LIKE ?3 ESCAPE '\\'"
            }
            (true, false) => "WHERE campaign_id = ?1 AND state = ?2 AND ?3 IS NULL",
            (false, true) => {
                "NOT INDEXED WHERE campaign_id = ?1 AND ?2 IS NULL
                   AND coalesce(email_key, email) LIKE ?3 ESCAPE '\\'"
            }
            (false, false) => "NOT INDEXED WHERE campaign_id = ?1 AND ?2 IS NULL AND ?3 IS NULL",
        }
    }
}

/// A LIKE pattern matching addresses that contain `search`, case-insensitively.
fn like_pattern(search: Option<&str>) -> Option<String> {
    let text = search?.trim().to_lowercase();
    if text.is_empty() {
        return None;
    }
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    Some(format!("%{escaped}%"))
}

fn resend_matches(
    filter: &ResendFilter,
    key: &str,
    route: Option<&str>,
    code: Option<i64>,
    enhanced: Option<&str>,
) -> bool {
    if let Some(wanted) = &filter.route
        && route != Some(wanted.as_str())
    {
        return false;
    }
    if let Some(domain) = &filter.domain {
        let row_domain = key.rsplit_once('@').map(|(_, domain)| domain).unwrap_or("");
        if !row_domain.eq_ignore_ascii_case(domain) {
            return false;
        }
    }
    if filter.reply_patterns.is_empty() {
        return true;
    }
    let code = code.map(|code| code.to_string());
    filter.reply_patterns.iter().any(|pattern| {
        code.as_deref()
            .is_some_and(|code| pattern_matches(pattern, code))
            || enhanced.is_some_and(|enhanced| pattern_matches(pattern, enhanced))
    })
}

/// Matches "5.7.*", "4.*", "550" or "55*" against a code: `*` stands for any rest.
fn pattern_matches(pattern: &str, value: &str) -> bool {
    match pattern.trim().strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => value == pattern.trim(),
    }
}

const ROW_COLUMNS: &str = "id, line, email, fields, state, attempts, next_attempt_at, route,
    reply_code, reply_enhanced, reply_text, skip_reason, updated_at,
    (SELECT names FROM field_names WHERE field_names.id = recipient.field_names)";

/// The names of a row's fields when `fields` holds only their values (see [`fields_object`]).
const FIELD_NAMES: &str =
    "(SELECT names FROM field_names WHERE field_names.id = recipient.field_names)";

/// A row's fields as the JSON object the rest of Herald reads. Since migration 4 an import
/// stores only the values, as a JSON array, and the names once in `field_names`; rows stored
/// before keep their object (`names` is None). Text that does not decode is handed on as it is,
/// for the reader to report.
fn fields_object(fields: String, names: Option<String>) -> String {
    let Some(names) = names else {
        return fields;
    };
    let (Ok(names), Ok(values)) = (
        serde_json::from_str::<Vec<String>>(&names),
        serde_json::from_str::<Vec<String>>(&fields),
    ) else {
        return fields;
    };
    // Written by hand to keep the columns' order (serde_json's map would sort the names).
    let mut object = String::with_capacity(fields.len() + names.len() * 16);
    object.push('{');
    for (index, (name, value)) in names.iter().zip(&values).enumerate() {
        if index > 0 {
            object.push(',');
        }
        let (Ok(name), Ok(value)) = (serde_json::to_string(name), serde_json::to_string(value))
        else {
            return fields;
        };
        object.push_str(&name);
        object.push(':');
        object.push_str(&value);
    }
    object.push('}');
    object
}

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RecipientRow> {
    let code: Option<u16> = row.get(8)?;
    let enhanced: Option<String> = row.get(9)?;
    let text: Option<String> = row.get(10)?;
    let reply = if code.is_some() || text.is_some() {
        Some(Reply {
            code,
            enhanced,
            text: text.unwrap_or_default(),
        })
    } else {
        None
    };
    Ok(RecipientRow {
        id: row.get(0)?,
        line: row.get::<_, i64>(1)? as u64,
        email: row.get(2)?,
        fields_json: fields_object(row.get(3)?, row.get(13)?),
        state: State::parse(&row.get::<_, String>(4)?).unwrap_or(State::Pending),
        attempts: row.get(5)?,
        next_attempt_at_ms: row.get(6)?,
        route: row.get(7)?,
        reply,
        skip_reason: row.get(11)?,
        updated_at_ms: row.get(12)?,
    })
}

fn read_claimed(row: &rusqlite::Row<'_>) -> rusqlite::Result<Claimed> {
    Ok(Claimed {
        id: row.get(0)?,
        email: row.get(1)?,
        fields_json: fields_object(row.get(2)?, row.get(6)?),
        attempts: row.get(3)?,
        from: State::parse(&row.get::<_, String>(4)?).unwrap_or(State::Pending),
        route: row.get(5)?,
    })
}

pub(crate) fn apply_in(
    tx: &rusqlite::Transaction<'_>,
    transitions: &[Transition],
    now: i64,
) -> Result<(), StoreError> {
    let mut update = tx.prepare_cached(
        "UPDATE recipient SET state = ?2, attempts = ?3, next_attempt_at = ?4,
             route = coalesce(?5, route),
             reply_code = CASE WHEN ?10 THEN ?6 ELSE reply_code END,
             reply_enhanced = CASE WHEN ?10 THEN ?7 ELSE reply_enhanced END,
             reply_text = CASE WHEN ?10 THEN ?8 ELSE reply_text END,
             skip_reason = CASE WHEN ?2 = 'skipped' AND ?10 THEN ?8 ELSE skip_reason END,
             updated_at = ?9
         WHERE id = ?1",
    )?;
    let mut log = tx.prepare_cached(
        "INSERT INTO event (recipient_id, at, state, attempt, route, reply_code, reply_enhanced, reply_text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for t in transitions {
        let (code, enhanced, text) = match &t.reply {
            Some(reply) => (
                reply.code,
                reply.enhanced.as_deref(),
                Some(reply.text.as_str()),
            ),
            None => (None, None, None),
        };
        update.execute(params![
            t.id,
            t.to.as_str(),
            t.attempts,
            t.next_attempt_at_ms,
            t.route,
            code,
            enhanced,
            text,
            now,
            t.reply.is_some()
        ])?;
        log.execute(params![
            t.id,
            now,
            t.to.as_str(),
            t.attempts,
            t.route,
            code,
            enhanced,
            text
        ])?;
        if t.dead_address {
            suppress_refused(tx, t, now)?;
        }
    }
    Ok(())
}

/// Puts the address of a recipient the server refused as dead on the global suppression list
/// (reason `bounced`, as a hard bounce report would), with the reply as evidence.
fn suppress_refused(
    tx: &rusqlite::Transaction<'_>,
    t: &Transition,
    now: i64,
) -> Result<(), StoreError> {
    let reply = t.reply.as_ref();
    let evidence = [
        "refused at send time:".to_string(),
        reply
            .and_then(|r| r.code)
            .map(|c| c.to_string())
            .unwrap_or_default(),
        reply.and_then(|r| r.enhanced.clone()).unwrap_or_default(),
        reply.map(|r| r.text.clone()).unwrap_or_default(),
    ]
    .iter()
    .filter(|part| !part.is_empty())
    .cloned()
    .collect::<Vec<_>>()
    .join(" ");
    tx.prepare_cached(
        "INSERT OR IGNORE INTO global_suppression (address, reason, at, campaign_id, evidence)
         SELECT coalesce(email_key, email), ?2, ?3, campaign_id, ?4 FROM recipient WHERE id = ?1",
    )?
    .execute(params![
        t.id,
        SuppressionReason::Bounced.as_str(),
        now,
        evidence
    ])?;
    Ok(())
}

fn with_path(error: StoreError, path: &Path) -> StoreError {
    match error {
        StoreError::NotADatabase { .. } => StoreError::NotADatabase {
            path: path.to_path_buf(),
        },
        other => other,
    }
}

/// Creates the database file readable by its owner only: it holds every recipient's address.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    if path.exists() {
        return Ok(());
    }
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::Open {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests;
