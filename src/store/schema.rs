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
    // 4: narrower recipient rows (issue #2: an import writes every byte of them). `email_key`
    // is NULL when the key is the address itself, as it is for most rows; a row whose
    // `field_names` is set keeps `fields` as a JSON array of values named by that list, instead
    // of repeating the names in an object on every row. Rows from before keep their object
    // (field_names NULL), and their key is kept only where it differs from the address.
    r#"
    CREATE TABLE field_names (
        id      INTEGER PRIMARY KEY,
        names   TEXT NOT NULL UNIQUE
    );
    CREATE TABLE recipient_v4 (
        id              INTEGER PRIMARY KEY,
        campaign_id     INTEGER NOT NULL REFERENCES campaign(id),
        line            INTEGER NOT NULL,
        email           TEXT NOT NULL,
        email_key       TEXT,
        fields          TEXT NOT NULL,
        field_names     INTEGER,
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
    INSERT INTO recipient_v4 (id, campaign_id, line, email, email_key, fields, field_names, state,
            attempts, next_attempt_at, route, reply_code, reply_enhanced, reply_text, skip_reason,
            updated_at)
        SELECT id, campaign_id, line, email, nullif(email_key, email), fields, NULL, state,
            attempts, next_attempt_at, route, reply_code, reply_enhanced, reply_text, skip_reason,
            updated_at
        FROM recipient;
    DROP TABLE recipient;
    ALTER TABLE recipient_v4 RENAME TO recipient;
    CREATE INDEX recipient_state ON recipient(campaign_id, state, id);
    CREATE INDEX recipient_due ON recipient(campaign_id, next_attempt_at) WHERE state = 'deferred';
    "#,
    // 5: one suppression list across campaigns (issues #13, #15): bounces, complaints and
    // unsubscribes that every later campaign honors, keyed by the address key (as a recipient's
    // key: lower-case, ASCII domain). And the database's own secrets (the MAC keys of return-path
    // tags and unsubscribe tokens), made on first use and never leaving the file.
    r#"
    CREATE TABLE global_suppression (
        address     TEXT PRIMARY KEY,
        reason      TEXT NOT NULL,
        at          INTEGER NOT NULL,
        campaign_id INTEGER,
        evidence    TEXT NOT NULL DEFAULT ''
    ) WITHOUT ROWID;
    CREATE TABLE secret (
        name    TEXT PRIMARY KEY,
        value   BLOB NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 6: counts per campaign and state kept as they change (issue #14: the campaign library
    // shows 50 campaigns of a million recipients without counting 50 million index entries).
    // A trigger follows every change of state, whoever makes it; inserts are added by the
    // importer once per import (a trigger per inserted row cost an import about a third more),
    // so any other INSERT into `recipient` must add its rows here too. `last_at` is the time of
    // the latest change, the library's "last activity".
    r#"
    CREATE TABLE campaign_tally (
        campaign_id INTEGER NOT NULL,
        state       TEXT NOT NULL,
        n           INTEGER NOT NULL,
        last_at     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (campaign_id, state)
    ) WITHOUT ROWID;
    INSERT INTO campaign_tally (campaign_id, state, n, last_at)
        SELECT campaign_id, state, count(*), max(updated_at) FROM recipient
        GROUP BY campaign_id, state;
    CREATE TRIGGER recipient_tally_update AFTER UPDATE OF state ON recipient
        WHEN OLD.state IS NOT NEW.state
    BEGIN
        INSERT INTO campaign_tally (campaign_id, state, n, last_at)
            VALUES (NEW.campaign_id, NEW.state, 1, NEW.updated_at)
            ON CONFLICT DO UPDATE SET n = n + 1, last_at = max(last_at, excluded.last_at);
        UPDATE campaign_tally SET n = n - 1
            WHERE campaign_id = OLD.campaign_id AND state = OLD.state;
    END;
    CREATE TRIGGER recipient_tally_delete AFTER DELETE ON recipient
    BEGIN
        UPDATE campaign_tally SET n = n - 1
            WHERE campaign_id = OLD.campaign_id AND state = OLD.state;
    END;
    "#,
    // 7: what came back from the bounce mailbox (issue #13). One row per recipient and kind
    // (hard, soft, blocked, delayed, complaint, unsubscribe), so a report read twice counts
    // once; and per mailbox folder the UIDVALIDITY, the last UID handled and the UIDs whose
    // IMAP flags are still to be set.
    r#"
    CREATE TABLE feedback (
        recipient_id INTEGER NOT NULL,
        kind         TEXT NOT NULL,
        at           INTEGER NOT NULL,
        status       TEXT,
        diagnostic   TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (recipient_id, kind)
    ) WITHOUT ROWID;
    CREATE TABLE mailbox_cursor (
        mailbox      TEXT PRIMARY KEY,
        uid_validity INTEGER NOT NULL,
        last_uid     INTEGER NOT NULL,
        unfinished   TEXT NOT NULL DEFAULT ''
    ) WITHOUT ROWID;
    "#,
    // 8: where each unsubscribe endpoint's log was last read (issue #15), so every pull asks
    // only for records Herald has not applied yet.
    r#"
    CREATE TABLE unsubscribe_cursor (
        endpoint    TEXT PRIMARY KEY,
        cursor      INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 9: reports that do not prove they concern Herald's mail (issue #21: no VERP tag, no keyed
    // Message-ID), held for the user with their evidence instead of applied. One row per
    // recipient and kind, like `feedback`; applying one moves it there.
    r#"
    CREATE TABLE held_feedback (
        recipient_id INTEGER NOT NULL,
        kind         TEXT NOT NULL,
        at           INTEGER NOT NULL,
        status       TEXT,
        smtp_code    INTEGER,
        diagnostic   TEXT NOT NULL DEFAULT '',
        evidence     TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (recipient_id, kind)
    ) WITHOUT ROWID;
    "#,
    // 10: MTA-STS policies by recipient domain (issue #23, RFC 8461 §5.1): the TXT record's id
    // the policy was fetched under, when, how long it may be used, and the policy file itself,
    // so one run and the next campaign reuse a policy instead of fetching it again.
    r#"
    CREATE TABLE mta_sts_policy (
        domain      TEXT PRIMARY KEY,
        id          TEXT NOT NULL,
        fetched_at  INTEGER NOT NULL,
        max_age     INTEGER NOT NULL,
        body        BLOB NOT NULL
    ) WITHOUT ROWID;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ImportRow, RecipientRef, ResendFilter, State, Store, Transition};

    /// A database as Herald wrote it at schema 3: keys on every row, fields as JSON objects.
    fn version_3_database(path: &std::path::Path) {
        let conn = Connection::open(path).unwrap();
        for migration in &MIGRATIONS[..3] {
            conn.execute_batch(migration).unwrap();
        }
        conn.execute_batch(
            r#"
            PRAGMA user_version = 3;
            INSERT INTO campaign (id, file_key, name, columns, created_at)
                VALUES (1, '/old.toml', 'old', '["first_name","city"]', 0);
            INSERT INTO recipient (id, campaign_id, line, email, email_key, fields, state,
                    attempts, updated_at)
                VALUES (1, 1, 2, 'ada@example.org', 'ada@example.org',
                        '{"first_name":"Ada","city":"Paris"}', 'pending', 0, 0),
                       (2, 1, 3, 'Grace@Example.org', 'grace@example.org',
                        '{"first_name":"Grace","city":"New York, NY"}', 'failed', 1, 0),
                       (3, 1, 4, 'broken', 'invalid:broken#1', '{"first_name":"X","city":""}',
                        'skipped', 0, 0);
            "#,
        )
        .unwrap();
    }

    #[test]
    fn migration_4_keeps_old_rows_readable_and_unique() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.db");
        version_3_database(&path);
        let mut store = Store::open(&path).unwrap();
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, CURRENT_VERSION);
        // Keys equal to the address are folded into it; the others stay.
        let keys: Vec<Option<String>> = store
            .conn
            .prepare("SELECT email_key FROM recipient ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            keys,
            [
                None,
                Some("grace@example.org".into()),
                Some("invalid:broken#1".into())
            ]
        );

        let c = store.campaign("/old.toml", "old").unwrap();
        assert_eq!(c, 1);
        let page = store.page(c, None, None, 0, 10).unwrap();
        let fields: Vec<&str> = page.iter().map(|row| row.fields_json.as_str()).collect();
        assert_eq!(
            fields,
            [
                r#"{"first_name":"Ada","city":"Paris"}"#,
                r#"{"first_name":"Grace","city":"New York, NY"}"#,
                r#"{"first_name":"X","city":""}"#
            ]
        );
        let grace = store
            .find_recipient(c, &RecipientRef::Email("GRACE@example.org".into()))
            .unwrap()
            .unwrap();
        assert_eq!(grace.email, "Grace@Example.org");
        let ada = store
            .find_recipient(c, &RecipientRef::Email("ada@example.org".into()))
            .unwrap()
            .unwrap();
        assert_eq!(ada.id, 1);
        assert_eq!(store.count_matching(c, None, Some("GRACE")).unwrap(), 1);

        // Importing the same people again adds nobody; a new one is added beside them.
        let columns = ["first_name".to_string(), "city".to_string()];
        let mut importer = store.importer(c, &columns).unwrap();
        for (email, key) in [
            ("ada@example.org", "ada@example.org"),
            ("grace@example.org", "grace@example.org"),
            ("broken", "invalid:broken#1"),
        ] {
            let row = ImportRow::new(9, email.into(), key.into(), [""; 0], None);
            assert!(!importer.push(row).unwrap(), "{email} was added twice");
        }
        let linus = ImportRow::new(
            5,
            "linus@example.net".into(),
            "linus@example.net".into(),
            ["Linus", "Helsinki"],
            None,
        );
        assert!(importer.push(linus).unwrap());
        assert_eq!(importer.finish().unwrap(), (1, 0));

        // Old and new rows are claimed alike, with their fields as objects.
        let claimed = store.claim(c, i64::MAX, 10).unwrap();
        let fields: Vec<(&str, &str)> = claimed
            .iter()
            .map(|row| (row.email.as_str(), row.fields_json.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("ada@example.org", r#"{"first_name":"Ada","city":"Paris"}"#),
                (
                    "linus@example.net",
                    r#"{"first_name":"Linus","city":"Helsinki"}"#
                )
            ]
        );
        // Resend by domain still reads the key of an old row.
        let resent = store
            .resend(
                c,
                &ResendFilter {
                    include_failed: true,
                    domain: Some("example.org".into()),
                    ..ResendFilter::default()
                },
            )
            .unwrap();
        assert_eq!(resent, 1);
        store
            .apply(&[Transition {
                id: 1,
                to: State::Sent,
                attempts: 1,
                next_attempt_at_ms: 0,
                route: None,
                reply: None,
                dead_address: false,
            }])
            .unwrap();
        assert_eq!(store.counts(c).unwrap().sent, 1);
    }
}
