//! Unit tests of the store: schema, import idempotence, claims, transitions, recovery, resend.

use super::*;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("herald.db")).unwrap();
    (dir, store)
}

fn import(store: &mut Store, campaign: CampaignId, emails: &[&str]) -> (u64, u64) {
    let mut importer = store
        .importer(campaign, &["first_name".to_string()])
        .unwrap();
    for (line, email) in emails.iter().enumerate() {
        importer
            .push(ImportRow::new(
                line as u64 + 2,
                email.to_string(),
                email.to_lowercase(),
                &[format!("name {line}")],
                None,
            ))
            .unwrap();
    }
    importer.finish().unwrap()
}

fn transition(id: RecipientId, to: State, attempts: u32) -> Transition {
    Transition {
        id,
        to,
        attempts,
        next_attempt_at_ms: 0,
        route: Some("primary".into()),
        reply: Some(Reply {
            code: Some(250),
            enhanced: Some("2.0.0".into()),
            text: "ok".into(),
        }),
        dead_address: false,
    }
}

#[test]
fn campaigns_are_found_by_file_and_kept_apart() {
    let (_dir, mut store) = temp_store();
    let a = store.campaign("/x/a.toml", "a").unwrap();
    let b = store.campaign("/x/b.toml", "b").unwrap();
    assert_ne!(a, b);
    assert_eq!(store.campaign("/x/a.toml", "a").unwrap(), a);
    import(&mut store, a, &["one@a.example", "two@a.example"]);
    import(&mut store, b, &["one@a.example"]);
    assert_eq!(store.counts(a).unwrap().pending, 2);
    assert_eq!(store.counts(b).unwrap().pending, 1);
    assert_eq!(store.columns(a).unwrap(), vec!["first_name".to_string()]);
}

#[test]
fn importing_again_adds_nobody_twice() {
    let (_dir, mut store) = temp_store();
    let c = store.campaign("/c.toml", "c").unwrap();
    assert_eq!(
        import(&mut store, c, &["a@x.example", "b@x.example"]),
        (2, 0)
    );
    assert_eq!(
        import(&mut store, c, &["a@x.example", "b@x.example"]),
        (0, 0)
    );
    assert_eq!(
        import(&mut store, c, &["A@X.example", "c@x.example"]),
        (1, 0)
    );
    assert_eq!(store.counts(c).unwrap().total(), 3);
}

#[test]
fn dropped_import_leaves_nothing() {
    let (_dir, mut store) = temp_store();
    let c = store.campaign("/c.toml", "c").unwrap();
    {
        let mut importer = store.importer(c, &[]).unwrap();
        importer
            .push(ImportRow::new(
                2,
                "a@x.example".into(),
                "a@x.example".into(),
                [""; 0],
                None,
            ))
            .unwrap();
    }
    assert_eq!(store.counts(c).unwrap().total(), 0);
}

#[test]
fn claim_then_outcomes_walk_the_state_machine() {
    let (_dir, mut store) = temp_store();
    let c = store.campaign("/c.toml", "c").unwrap();
    import(
        &mut store,
        c,
        &["a@x.example", "b@x.example", "c@x.example", "d@x.example"],
    );
    let claimed = store.claim(c, now_ms(), 3).unwrap();
    assert_eq!(claimed.len(), 3);
    assert_eq!(store.counts(c).unwrap().sending, 3);
    let later = now_ms() + 60_000;
    let mut deferred = transition(claimed[1].id, State::Deferred, 1);
    deferred.next_attempt_at_ms = later;
    store
        .apply(&[
            transition(claimed[0].id, State::Sent, 1),
            deferred,
            transition(claimed[2].id, State::Failed, 1),
        ])
        .unwrap();
    let counts = store.counts(c).unwrap();
    assert_eq!(
        (counts.sent, counts.deferred, counts.failed, counts.pending),
        (1, 1, 1, 1)
    );
    // The deferred row is not due yet; only the pending one is claimed.
    let next = store.claim(c, now_ms(), 10).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].email, "d@x.example");
    assert_eq!(store.next_due_ms(c).unwrap(), Some(later));
    // Once due, the deferred row comes back with its attempts.
    let due = store.claim(c, later, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].attempts, 1);
    let history = store.history(claimed[0].id).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].state, State::Sent);
    assert_eq!(history[0].reply.enhanced.as_deref(), Some("2.0.0"));
}

#[test]
fn rows_left_sending_become_uncertain() {
    let (_dir, mut store) = temp_store();
    let c = store.campaign("/c.toml", "c").unwrap();
    import(
        &mut store,
        c,
        &["a@x.example", "b@x.example", "c@x.example"],
    );
    store.claim(c, now_ms(), 2).unwrap();
    assert_eq!(store.recover_in_flight(c, false).unwrap(), 2);
    let counts = store.counts(c).unwrap();
    assert_eq!(
        (counts.uncertain, counts.pending, counts.sending),
        (2, 1, 0)
    );
    assert_eq!(store.mark_uncertain_sent(c).unwrap(), 2);
    assert_eq!(store.counts(c).unwrap().sent, 2);

    let d = store.campaign("/d.toml", "d").unwrap();
    import(&mut store, d, &["a@x.example", "b@x.example"]);
    store.claim(d, now_ms(), 2).unwrap();
    assert_eq!(store.recover_in_flight(d, true).unwrap(), 2);
    assert_eq!(store.counts(d).unwrap().pending, 2);
}

#[test]
fn resend_filters_by_reply_route_and_domain() {
    let (_dir, mut store) = temp_store();
    let c = store.campaign("/c.toml", "c").unwrap();
    import(
        &mut store,
        c,
        &["a@x.example", "b@y.example", "c@x.example"],
    );
    let claimed = store.claim(c, now_ms(), 3).unwrap();
    let failed = |id, code: u16, enhanced: &str| Transition {
        reply: Some(Reply {
            code: Some(code),
            enhanced: Some(enhanced.into()),
            text: "no".into(),
        }),
        ..transition(id, State::Failed, 1)
    };
    store
        .apply(&[
            failed(claimed[0].id, 550, "5.7.1"),
            failed(claimed[1].id, 550, "5.7.26"),
            failed(claimed[2].id, 550, "5.1.1"),
        ])
        .unwrap();
    let policy = ResendFilter {
        include_failed: true,
        reply_patterns: vec!["5.7.*".into()],
        domain: Some("x.example".into()),
        ..ResendFilter::default()
    };
    assert_eq!(store.resend(c, &policy).unwrap(), 1);
    let all = ResendFilter {
        include_failed: true,
        ..ResendFilter::default()
    };
    assert_eq!(store.resend(c, &all).unwrap(), 2);
    let counts = store.counts(c).unwrap();
    assert_eq!((counts.pending, counts.failed), (3, 0));
}

#[test]
fn pages_are_keyset_and_filterable() {
    let (_dir, mut store) = temp_store();
    let c = store.campaign("/c.toml", "c").unwrap();
    let emails: Vec<String> = (0..25).map(|n| format!("user{n}@x.example")).collect();
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    import(&mut store, c, &refs);
    let first = store.page(c, None, None, 0, 10).unwrap();
    assert_eq!(first.len(), 10);
    let second = store.page(c, None, None, first[9].id, 10).unwrap();
    assert_eq!(second[0].email, "user10@x.example");
    let found = store
        .page(c, Some(State::Pending), Some("USER2"), 0, 100)
        .unwrap();
    assert_eq!(found.len(), 6); // user2, user20..user24
    assert!(
        store
            .page(c, Some(State::Sent), None, 0, 100)
            .unwrap()
            .is_empty()
    );
    let by_index = store
        .find_recipient(c, &RecipientRef::Index(3))
        .unwrap()
        .unwrap();
    assert_eq!(by_index.email, "user3@x.example");
    let by_email = store
        .find_recipient(c, &RecipientRef::Email("User7@X.example".into()))
        .unwrap()
        .unwrap();
    assert_eq!(by_email.email, "user7@x.example");
}

#[test]
fn writer_commits_batches_and_flushes() {
    let (dir, mut store) = temp_store();
    let c = store.campaign("/c.toml", "c").unwrap();
    import(&mut store, c, &["a@x.example", "b@x.example"]);
    let claimed = store.claim(c, now_ms(), 2).unwrap();
    let (writer, thread) = Writer::spawn(&dir.path().join("herald.db")).unwrap();
    for row in &claimed {
        writer.write(transition(row.id, State::Sent, 1)).unwrap();
    }
    writer.flush().unwrap();
    assert_eq!(store.counts(c).unwrap().sent, 2);
    drop(writer);
    thread.join();
}

#[test]
fn newer_schema_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.db");
    drop(Store::open(&path).unwrap());
    {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let error = Store::open(&path).err().unwrap();
    assert!(
        matches!(error, StoreError::NewerSchema { found: 99, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("newer version of Herald"));
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(
        &path,
        "this is plainly a text file, not SQLite at all; ".repeat(100),
    )
    .unwrap();
    let error = Store::open(&path).err().unwrap();
    assert!(
        error.to_string().contains("not a Herald database"),
        "{error}"
    );
}

#[cfg(unix)]
#[test]
fn database_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _store) = temp_store();
    let mode = std::fs::metadata(dir.path().join("herald.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn state_names_round_trip() {
    for state in State::ALL {
        assert_eq!(State::parse(state.as_str()), Some(state));
    }
    assert_eq!(State::parse("lost"), None);
}

fn journal_mode(store: &Store) -> String {
    store
        .conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap()
}

#[test]
fn an_import_alone_uses_a_rollback_journal_then_returns_to_wal() {
    // Issue #2: with nobody else on the file the import skips WAL's double write.
    let (_dir, mut store) = temp_store();
    let c = store.campaign("/c.toml", "c").unwrap();
    {
        let importer = store.importer(c, &[]).unwrap();
        let mode: String = importer
            .conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "delete");
        importer.finish().unwrap();
    }
    assert_eq!(journal_mode(&store), "wal");
    let synchronous: i64 = store
        .conn
        .query_row("PRAGMA synchronous", [], |row| row.get(0))
        .unwrap();
    assert_eq!(
        synchronous, 2,
        "FULL, the store's setting, after the import (issue #24)"
    );
    assert_eq!(import(&mut store, c, &["a@x.example"]), (1, 0));
    assert_eq!(journal_mode(&store), "wal");
}

#[test]
fn a_dropped_import_returns_to_wal_and_leaves_nothing() {
    let (_dir, mut store) = temp_store();
    let c = store.campaign("/c.toml", "c").unwrap();
    {
        let mut importer = store.importer(c, &[]).unwrap();
        for line in 0..500_u64 {
            importer
                .push(ImportRow::new(
                    line + 2,
                    format!("r{line}@x.example"),
                    format!("r{line}@x.example"),
                    [""; 0],
                    None,
                ))
                .unwrap();
        }
    }
    assert_eq!(journal_mode(&store), "wal");
    assert_eq!(store.counts(c).unwrap().total(), 0);
    assert_eq!(import(&mut store, c, &["a@x.example"]), (1, 0));
}

#[test]
fn an_import_beside_another_connection_stays_in_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.db");
    let mut store = Store::open(&path).unwrap();
    let reader = Store::open(&path).unwrap();
    let c = store.campaign("/c.toml", "c").unwrap();
    let started = std::time::Instant::now();
    {
        let importer = store.importer(c, &[]).unwrap();
        let mode: String = importer
            .conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        importer.finish().unwrap();
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the import waited for the other connection"
    );
    assert_eq!(
        import(&mut store, c, &["a@x.example", "b@x.example"]),
        (2, 0)
    );
    // WAL still lets the other connection read while nobody writes.
    assert_eq!(reader.counts(c).unwrap().total(), 2);
    assert_eq!(journal_mode(&reader), "wal");
}

#[test]
fn an_import_skips_the_keys_the_campaign_already_had() {
    let (_dir, mut store) = temp_store();
    let c = store.campaign("/c.toml", "c").unwrap();
    let row = |email: &str| ImportRow::new(2, email.into(), email.to_lowercase(), [""], None);
    let mut importer = store.importer(c, &[]).unwrap();
    assert!(importer.push(row("Ann@x.example")).unwrap());
    assert!(
        !importer.contains("ann@x.example"),
        "only rows from before count"
    );
    assert_eq!(importer.finish().unwrap(), (1, 0));

    let mut importer = store.importer(c, &[]).unwrap();
    assert!(importer.contains("ann@x.example"));
    assert!(!importer.contains("bob@x.example"));
    assert!(!importer.push(row("ANN@x.example")).unwrap());
    assert!(importer.push(row("bob@x.example")).unwrap());
    assert_eq!(importer.finish().unwrap(), (1, 0));
    assert_eq!(store.counts(c).unwrap().total(), 2);
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "pushed twice in one import")]
fn pushing_one_key_twice_in_an_import_is_a_caller_bug() {
    let (_dir, mut store) = temp_store();
    let c = store.campaign("/c.toml", "c").unwrap();
    let mut importer = store.importer(c, &[]).unwrap();
    let row = ImportRow::new(2, "a@x.example".into(), "a@x.example".into(), [""], None);
    let _ = importer.push(row.clone());
    let _ = importer.push(row);
}

#[test]
fn imported_fields_come_back_as_objects_named_by_their_own_import() {
    let (_dir, mut store) = temp_store();
    let c = store.campaign("/c.toml", "c").unwrap();
    let first = ["first_name".to_string(), "city".to_string()];
    let mut importer = store.importer(c, &first).unwrap();
    importer
        .push(ImportRow::new(
            2,
            "Ann@X.example".into(),
            "ann@x.example".into(),
            ["Ann \"A\"\n", "Zürich"],
            None,
        ))
        .unwrap();
    importer
        .push(ImportRow::new(
            3,
            "bob@x.example".into(),
            "bob@x.example".into(),
            ["Bob", "Köln"],
            None,
        ))
        .unwrap();
    importer.finish().unwrap();
    // An edited list with another column: the rows already there keep their names.
    let second = ["nick".to_string()];
    let mut importer = store.importer(c, &second).unwrap();
    importer
        .push(ImportRow::new(
            4,
            "cy@x.example".into(),
            "cy@x.example".into(),
            ["Cy"],
            None,
        ))
        .unwrap();
    importer.finish().unwrap();
    assert_eq!(store.columns(c).unwrap(), second);

    let page = store.page(c, None, None, 0, 10).unwrap();
    let fields: Vec<serde_json::Value> = page
        .iter()
        .map(|row| serde_json::from_str(&row.fields_json).unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            serde_json::json!({"first_name": "Ann \"A\"\n", "city": "Zürich"}),
            serde_json::json!({"first_name": "Bob", "city": "Köln"}),
            serde_json::json!({"nick": "Cy"}),
        ]
    );
    // A key that differs from the address is kept and found.
    let ann = store
        .find_recipient(c, &RecipientRef::Email("ANN@x.example".into()))
        .unwrap()
        .unwrap();
    assert_eq!(ann.email, "Ann@X.example");
    assert_eq!(store.count_matching(c, None, Some("ann@")).unwrap(), 1);
    assert_eq!(
        import(&mut store, c, &["ANN@X.EXAMPLE", "bob@x.example"]),
        (0, 0)
    );
}

fn foreign_keys(store: &Store) -> bool {
    store
        .conn
        .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
        .unwrap()
}

#[test]
fn an_import_checks_its_campaign_once_and_restores_foreign_keys() {
    let (_dir, mut store) = temp_store();
    assert!(store.importer(42, &[]).is_err(), "no campaign 42");
    assert!(foreign_keys(&store));
    let c = store.campaign("/c.toml", "c").unwrap();
    assert_eq!(
        import(&mut store, c, &["a@x.example", "b@x.example"]),
        (2, 0)
    );
    assert!(foreign_keys(&store));
    drop(store.importer(c, &[]).unwrap());
    assert!(foreign_keys(&store));
    // Skipped rows get their state from the reason.
    let mut importer = store.importer(c, &[]).unwrap();
    importer
        .push(ImportRow::new(
            9,
            "broken".into(),
            "invalid:broken#1".into(),
            [""; 0],
            Some("invalid address".into()),
        ))
        .unwrap();
    assert_eq!(importer.finish().unwrap(), (1, 1));
    let counts = store.counts(c).unwrap();
    assert_eq!((counts.pending, counts.skipped), (2, 1));
    let row = store
        .find_recipient(c, &RecipientRef::Index(2))
        .unwrap()
        .unwrap();
    assert_eq!(row.skip_reason.as_deref(), Some("invalid address"));
}

#[test]
fn pages_walk_rows_in_id_order_instead_of_sorting_the_campaign() {
    let (_dir, mut store) = temp_store();
    let c = store.campaign("/c.toml", "c").unwrap();
    import(
        &mut store,
        c,
        &["b@x.example", "a@x.example", "c@y.example"],
    );
    for state in [None, Some(State::Pending), Some(State::Failed)] {
        for search in [None, Some("x.ex")] {
            let filter = Filter::new(state, search);
            for sql in [filter.page_at_sql(), filter.page_sql()] {
                let mut plan = store
                    .conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .unwrap();
                let steps: Vec<String> = plan
                    .query_map(params![c, filter.state, filter.pattern, 10, 0], |row| {
                        row.get(3)
                    })
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert!(
                    !steps.iter().any(|step| step.contains("TEMP B-TREE")),
                    "state {state:?}, search {search:?}: {steps:?}"
                );
            }
            let ids: Vec<_> = store
                .page_at(c, state, search, 0, 10)
                .unwrap()
                .iter()
                .map(|row| row.id)
                .collect();
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            assert_eq!(ids, sorted);
            let expected = match (state, search) {
                (Some(State::Failed), _) => 0,
                (_, Some(_)) => 2,
                _ => 3,
            };
            assert_eq!(ids.len(), expected, "state {state:?}, search {search:?}");
            assert_eq!(
                store.count_matching(c, state, search).unwrap(),
                expected as u64
            );
            let after_first: Vec<_> = store
                .page(c, state, search, ids.first().copied().unwrap_or(0), 10)
                .unwrap()
                .iter()
                .map(|row| row.id)
                .collect();
            assert_eq!(after_first, ids.get(1..).unwrap_or_default());
        }
    }
}
