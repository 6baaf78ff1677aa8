//! The unsubscribe endpoint's own small database (`herald unsubscribe-server`, issue #15): one
//! row per recipient who asked to leave, numbered by a cursor that Herald pulls from. It knows
//! no addresses, only the campaign and recipient ids a verified token named, so a stolen copy of
//! the server's disk reveals nobody. A request is answered only after its row is committed with
//! `synchronous = FULL`: a 2xx means the record survives a power cut (RFC 8058 asks the sender
//! to honor it; losing it would mail someone who left).

use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};

use super::StoreError;

/// One recorded unsubscribe, as the pull endpoint serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedUnsubscribe {
    /// Increases with every new record; Herald asks for records after the last one it applied.
    pub cursor: i64,
    pub campaign: i64,
    pub recipient: i64,
    pub at_ms: i64,
    /// `one-click` (a mailbox provider's POST, RFC 8058) or `form` (a person's button).
    pub how: String,
}

const SCHEMA_VERSION: i64 = 1;

/// The endpoint's log, on one connection (the server serializes access to it).
pub struct UnsubscribeLog {
    conn: Connection,
}

impl UnsubscribeLog {
    /// Opens (creating) the log at `path`. A file of another program, or of a newer schema, is
    /// refused untouched.
    pub fn open(path: &Path) -> Result<UnsubscribeLog, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|error| super::with_path(error.into(), path))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |row| row.get(0),
        )?;
        if (version == 0 && tables > 0) || version > SCHEMA_VERSION {
            return Err(StoreError::NotADatabase {
                path: path.to_path_buf(),
            });
        }
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        if version == 0 {
            conn.execute_batch(
                "BEGIN;
                 CREATE TABLE unsubscribe (
                     cursor      INTEGER PRIMARY KEY AUTOINCREMENT,
                     campaign    INTEGER NOT NULL,
                     recipient   INTEGER NOT NULL,
                     at          INTEGER NOT NULL,
                     how         TEXT NOT NULL,
                     UNIQUE (campaign, recipient)
                 );
                 PRAGMA user_version = 1;
                 COMMIT;",
            )?;
        }
        Ok(UnsubscribeLog { conn })
    }

    /// Records that the recipient `recipient` of campaign `campaign` asked to leave. Asking again
    /// changes nothing (the first record stands). Returns whether the record is new.
    pub fn record(
        &mut self,
        campaign: i64,
        recipient: i64,
        how: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let added = self.conn.execute(
            "INSERT OR IGNORE INTO unsubscribe (campaign, recipient, at, how)
             VALUES (?1, ?2, ?3, ?4)",
            params![campaign, recipient, at_ms, how],
        )?;
        Ok(added > 0)
    }

    /// At most `limit` records after `cursor`, oldest first.
    pub fn since(&self, cursor: i64, limit: u32) -> Result<Vec<LoggedUnsubscribe>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT cursor, campaign, recipient, at, how FROM unsubscribe
             WHERE cursor > ?1 ORDER BY cursor LIMIT ?2",
        )?;
        let rows = statement.query_map(params![cursor, limit], |row| {
            Ok(LoggedUnsubscribe {
                cursor: row.get(0)?,
                campaign: row.get(1)?,
                recipient: row.get(2)?,
                at_ms: row.get(3)?,
                how: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// How many records the log holds.
    pub fn count(&self) -> Result<u64, StoreError> {
        let count: i64 = self
            .conn
            .query_row("SELECT count(*) FROM unsubscribe", [], |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_once_and_pages_by_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let mut log = UnsubscribeLog::open(&path).unwrap();
        assert!(log.record(1, 10, "one-click", 1_000).unwrap());
        assert!(!log.record(1, 10, "form", 2_000).unwrap(), "recorded twice");
        assert!(log.record(2, 10, "form", 3_000).unwrap());
        assert!(log.record(1, 11, "one-click", 4_000).unwrap());
        let first = log.since(0, 2).unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!((first[0].campaign, first[0].recipient), (1, 10));
        assert_eq!(first[0].how, "one-click");
        let rest = log.since(first[1].cursor, 100).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].campaign, rest[0].recipient), (1, 11));
        drop(log);
        // Reopened, the records are still there.
        let log = UnsubscribeLog::open(&path).unwrap();
        assert_eq!(log.count().unwrap(), 3);
    }

    #[test]
    fn another_programs_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE notes (x)")
            .unwrap();
        assert!(matches!(
            UnsubscribeLog::open(&path),
            Err(StoreError::NotADatabase { .. })
        ));
    }
}
