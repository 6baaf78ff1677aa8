//! The database schema as an append-only list of migrations, applied by `PRAGMA user_version`
//! in one exclusive transaction. Never edit a migration that has shipped: add a new one.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Each entry moves the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: campaigns, recipients carrying their delivery state, and the transition log.
    r#"
    CREATE TABLE campaign (
        id          INTEGER PRIMARY KEY,
        file_key    TEXT NOT NULL UNIQUE,
        name        TEXT NOT NULL,
        columns     TEXT NOT NULL DEFAULT '[]',
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE recipient (
        id              INTEGER PRIMARY KEY,
        campaign_id     INTEGER NOT NULL REFERENCES campaign(id),
        line            INTEGER NOT NULL,
        email           TEXT NOT NULL,
        email_key       TEXT NOT NULL,
        fields          TEXT NOT NULL,
        state           TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL DEFAULT 0,
        route           TEXT,
        reply_code      INTEGER,
        reply_enhanced  TEXT,
        reply_text      TEXT,
        skip_reason     TEXT,
        updated_at      INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX recipient_key ON recipient(campaign_id, email_key);
    CREATE INDEX recipient_state ON recipient(campaign_id, state, id);
    CREATE INDEX recipient_due ON recipient(campaign_id, next_attempt_at) WHERE state = 'deferred';
    CREATE TABLE event (
        id              INTEGER PRIMARY KEY,
        recipient_id    INTEGER NOT NULL,
        at              INTEGER NOT NULL,
        state           TEXT NOT NULL,
        attempt         INTEGER NOT NULL,
        route           TEXT,
        reply_code      INTEGER,
        reply_enhanced  TEXT,
        reply_text      TEXT
    );
    CREATE INDEX event_recipient ON event(recipient_id);
    "#,
    // 2: the suppression list (issue #5): address keys and "@domain" entries per campaign.
    r#"
    CREATE TABLE suppression (
        campaign_id INTEGER NOT NULL REFERENCES campaign(id),
        entry       TEXT NOT NULL,
        PRIMARY KEY (campaign_id, entry)
    ) WITHOUT ROWID;
    "#,
    // 3: uniqueness of recipients within a campaign is kept by the importer (which holds the
    // write lock for the whole import and knows every key), not by a text index: maintaining
    // that index cost more than all the rest of an import of a million rows.
    r#"
    DROP INDEX recipient_key;
    "#,
];

/// The schema version this build of Herald writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Refuses a database that another program made: tables but no Herald schema version. Must run
/// before anything writes to the file (even switching it to WAL rewrites its header).
pub fn ensure_ours(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version != 0 {
        return Ok(());
    }
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |row| row.get(0),
    )?;
    if tables > 0 {
        return Err(StoreError::NotADatabase {
            path: std::path::PathBuf::new(),
        });
    }
    Ok(())
}

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > CURRENT_VERSION {
        return Err(StoreError::NewerSchema {
            found: version,
            supported: CURRENT_VERSION,
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}
