//! Read queries for the campaign library and the results view (issue #14): every campaign with
//! its counts and last activity (from `campaign_tally`, kept by migration 5's trigger and the
//! importer, so the library never counts rows), and per campaign the breakdowns by destination
//! domain, by reply class and over time. Reads only; the one write here is the importer's
//! addition to the tally inside its own transaction.

use std::path::PathBuf;

use rusqlite::{Connection, params};

use super::{CampaignId, Counts, ROW_COLUMNS, RecipientRow, State, Store, StoreError, read_row};

/// One campaign the database knows, as the library lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignSummary {
    pub id: CampaignId,
    /// The campaign file (its canonical path, the campaign's key).
    pub file: PathBuf,
    pub name: String,
    pub counts: Counts,
    pub created_at_ms: i64,
    /// The latest change of any recipient's state (or the last import); None before any.
    pub last_activity_ms: Option<i64>,
}

/// Recipients of one destination domain, per state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainRow {
    pub domain: String,
    pub counts: Counts,
}

/// What a server's reply means for a marketer, from its RFC 3463 enhanced status code (or the
/// basic RFC 5321 code when the server gave none). One classification (issue #20): [`RULES`]
/// decides it, both as SQL (the results' groups and the recipients table filtered from them) and
/// in Rust ([`ReplyClass::of`], for a run's latest errors on Publish), so a failure is named the
/// same on every page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyClass {
    /// X.1.1: the mailbox does not exist.
    NoSuchUser,
    /// Other X.1.x: the address is bad (domain, syntax).
    BadAddress,
    /// X.2.2 (or 452/552): the mailbox is full.
    MailboxFull,
    /// Other X.2.x, or 550 without an enhanced code: the mailbox is disabled or unavailable.
    MailboxUnavailable,
    /// X.6.7 (RFC 6531): an address with non-ASCII characters before the @, which the server
    /// cannot take without SMTPUTF8 (Herald says so itself when the server does not offer it).
    NonAsciiAddress,
    /// X.7.x (or 554): refused by policy: spam filter, reputation, authentication (SPF, DKIM).
    Policy,
    /// X.4.x: network or routing trouble on the way.
    Network,
    /// No reply at all: the connection failed, timed out or dropped.
    NoReply,
    /// Any other temporary (4xx) reply.
    OtherTemporary,
    /// Any other permanent (5xx) reply.
    OtherPermanent,
}

/// One test of a rule over a reply's columns.
#[derive(Debug, Clone, Copy)]
enum Test {
    /// The enhanced code matches this SQL `LIKE` pattern (`_` one character, `%` the rest).
    Enhanced(&'static str),
    /// No enhanced code, and the basic code is one of these.
    CodeWithoutEnhanced(&'static [u16]),
    /// No basic code: no reply came (or Herald refused the message itself, and then the
    /// enhanced code decides first).
    NoCode,
    /// A temporary (4xx) basic code.
    Temporary,
}

/// The classification: the first class one of whose tests holds, else other permanent. In the
/// order of RFC 3463's subjects (address, mailbox, media, policy, network).
const RULES: [(ReplyClass, &[Test]); 9] = [
    (ReplyClass::NoSuchUser, &[Test::Enhanced("_.1.1")]),
    (ReplyClass::BadAddress, &[Test::Enhanced("_.1.%")]),
    (
        ReplyClass::MailboxFull,
        &[
            Test::Enhanced("_.2.2"),
            Test::CodeWithoutEnhanced(&[452, 552]),
        ],
    ),
    (
        ReplyClass::MailboxUnavailable,
        &[
            Test::Enhanced("_.2.%"),
            Test::CodeWithoutEnhanced(&[450, 550, 551]),
        ],
    ),
    (ReplyClass::NonAsciiAddress, &[Test::Enhanced("_.6.7")]),
    (
        ReplyClass::Policy,
        &[Test::Enhanced("_.7.%"), Test::CodeWithoutEnhanced(&[554])],
    ),
    (ReplyClass::Network, &[Test::Enhanced("_.4.%")]),
    (ReplyClass::NoReply, &[Test::NoCode]),
    (ReplyClass::OtherTemporary, &[Test::Temporary]),
];

impl Test {
    fn sql(self) -> String {
        match self {
            Test::Enhanced(pattern) => format!("reply_enhanced LIKE '{pattern}'"),
            Test::CodeWithoutEnhanced(codes) => format!(
                "(reply_enhanced IS NULL AND reply_code IN ({}))",
                codes
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Test::NoCode => "reply_code IS NULL".into(),
            Test::Temporary => "reply_code BETWEEN 400 AND 499".into(),
        }
    }

    fn holds(self, reply: &crate::delivery::Reply) -> bool {
        match self {
            Test::Enhanced(pattern) => reply
                .enhanced
                .as_deref()
                .is_some_and(|enhanced| like(pattern.as_bytes(), enhanced.as_bytes())),
            Test::CodeWithoutEnhanced(codes) => {
                reply.enhanced.is_none() && reply.code.is_some_and(|code| codes.contains(&code))
            }
            Test::NoCode => reply.code.is_none(),
            Test::Temporary => reply.code.is_some_and(|code| (400..500).contains(&code)),
        }
    }
}

/// SQL's `LIKE` for the patterns of [`RULES`]: `_` is one character, `%` any run of them
/// (ASCII case does not matter, as in SQLite).
fn like(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.split_first(), text.split_first()) {
        (None, None) => true,
        (Some((b'%', rest)), _) => {
            (0..=text.len()).any(|skip| text.get(skip..).is_some_and(|tail| like(rest, tail)))
        }
        (Some((b'_', rest)), Some((_, tail))) => like(rest, tail),
        (Some((p, rest)), Some((t, tail))) => p.eq_ignore_ascii_case(t) && like(rest, tail),
        _ => false,
    }
}

impl ReplyClass {
    pub const ALL: [ReplyClass; 10] = [
        ReplyClass::NoSuchUser,
        ReplyClass::BadAddress,
        ReplyClass::MailboxFull,
        ReplyClass::MailboxUnavailable,
        ReplyClass::NonAsciiAddress,
        ReplyClass::Policy,
        ReplyClass::Network,
        ReplyClass::NoReply,
        ReplyClass::OtherTemporary,
        ReplyClass::OtherPermanent,
    ];

    /// The class of a reply: the same rules the store's queries apply to a row.
    pub fn of(reply: &crate::delivery::Reply) -> ReplyClass {
        RULES
            .iter()
            .find(|(_, tests)| tests.iter().any(|test| test.holds(reply)))
            .map_or(ReplyClass::OtherPermanent, |(class, _)| *class)
    }

    pub fn label(self) -> &'static str {
        match self {
            ReplyClass::NoSuchUser => "no such user (x.1.1)",
            ReplyClass::BadAddress => "bad address (x.1.x)",
            ReplyClass::MailboxFull => "mailbox full (x.2.2)",
            ReplyClass::MailboxUnavailable => "mailbox unavailable (x.2.x, 550)",
            ReplyClass::NonAsciiAddress => "non-ASCII address: the server has no SMTPUTF8 (x.6.7)",
            ReplyClass::Policy => "refused by policy or as spam (x.7.x)",
            ReplyClass::Network => "network or routing (x.4.x)",
            ReplyClass::NoReply => "no reply: connection failed or dropped",
            ReplyClass::OtherTemporary => "other temporary error (4xx)",
            ReplyClass::OtherPermanent => "other permanent error (5xx)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            ReplyClass::NoSuchUser => "no_such_user",
            ReplyClass::BadAddress => "bad_address",
            ReplyClass::MailboxFull => "mailbox_full",
            ReplyClass::MailboxUnavailable => "mailbox_unavailable",
            ReplyClass::NonAsciiAddress => "non_ascii_address",
            ReplyClass::Policy => "policy",
            ReplyClass::Network => "network",
            ReplyClass::NoReply => "no_reply",
            ReplyClass::OtherTemporary => "other_temporary",
            ReplyClass::OtherPermanent => "other_permanent",
        }
    }

    fn from_key(key: &str) -> Option<ReplyClass> {
        ReplyClass::ALL.into_iter().find(|class| class.key() == key)
    }

    /// The class of a row as an SQL expression over its reply columns, made from [`RULES`].
    fn sql() -> String {
        let mut sql = String::from("CASE");
        for (class, tests) in RULES {
            let tests: Vec<String> = tests.iter().map(|test| test.sql()).collect();
            sql.push_str(&format!(
                " WHEN {} THEN '{}'",
                tests.join(" OR "),
                class.key()
            ));
        }
        sql.push_str(&format!(" ELSE '{}' END", ReplyClass::OtherPermanent.key()));
        sql
    }
}

/// Recipients of one state whose last reply falls in one class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyGroup {
    pub state: State,
    pub class: ReplyClass,
    pub count: u64,
    /// One reply of the group as the server worded it, for the marketer to recognise.
    pub example: String,
}

/// Outcomes recorded in one second of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBucket {
    /// Unix seconds.
    pub at_secs: i64,
    pub state: State,
    pub count: u64,
}

/// The states a reply class is shown for: those whose last reply says why they did not go.
const NOT_DELIVERED: &str = "('failed', 'bounced', 'deferred', 'uncertain')";

impl Store {
    /// Every campaign the database knows, most recently active first, with its counts from
    /// the tally (one small row per campaign and state: no recipient is read).
    pub fn library(&self) -> Result<Vec<CampaignSummary>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT c.id, c.file_key, c.name, c.created_at, t.state, t.n, t.last_at
             FROM campaign c LEFT JOIN campaign_tally t ON t.campaign_id = c.id
             ORDER BY c.id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, Option<i64>>(5)?,
                row.get::<_, Option<i64>>(6)?,
            ))
        })?;
        let mut campaigns: Vec<CampaignSummary> = Vec::new();
        for row in rows {
            let (id, file, name, created_at_ms, state, n, last_at) = row?;
            if campaigns.last().is_none_or(|last| last.id != id) {
                campaigns.push(CampaignSummary {
                    id,
                    file: PathBuf::from(file),
                    name,
                    counts: Counts::default(),
                    created_at_ms,
                    last_activity_ms: None,
                });
            }
            let Some(summary) = campaigns.last_mut() else {
                continue;
            };
            if let Some(state) = state.as_deref().and_then(State::parse) {
                *summary.counts.slot(state) += n.unwrap_or(0).max(0) as u64;
            }
            if let Some(at) = last_at.filter(|at| *at > 0) {
                summary.last_activity_ms = Some(summary.last_activity_ms.map_or(at, |t| t.max(at)));
            }
        }
        campaigns.sort_by_key(|c| std::cmp::Reverse(c.last_activity_ms.unwrap_or(c.created_at_ms)));
        Ok(campaigns)
    }

    /// Recipients per destination domain and state, the `limit` largest domains first. Reads
    /// every row of the campaign once (the domain is no column); the window asks for it off its
    /// thread, when the results view opens.
    pub fn domain_breakdown(
        &self,
        campaign: CampaignId,
        limit: usize,
    ) -> Result<Vec<DomainRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT lower(substr(email, instr(email, '@') + 1)) AS domain, state, count(*)
             FROM recipient NOT INDEXED WHERE campaign_id = ?1 AND state != 'skipped'
             GROUP BY domain, state",
        )?;
        let rows = statement.query_map([campaign], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
        let mut domains: Vec<DomainRow> = Vec::new();
        for row in rows {
            let (domain, state, n) = row?;
            if domains.last().is_none_or(|last| last.domain != domain) {
                domains.push(DomainRow {
                    domain,
                    counts: Counts::default(),
                });
            }
            if let (Some(last), Some(state)) = (domains.last_mut(), State::parse(&state)) {
                *last.counts.slot(state) += n.max(0) as u64;
            }
        }
        domains.sort_by(|a, b| {
            b.counts
                .total()
                .cmp(&a.counts.total())
                .then_with(|| a.domain.cmp(&b.domain))
        });
        domains.truncate(limit);
        Ok(domains)
    }

    /// The recipients that did not go (failed, bounced, deferred, uncertain) grouped by state and reply
    /// class, largest first. Walks only those states' rows, through `recipient_state`.
    pub fn reply_breakdown(&self, campaign: CampaignId) -> Result<Vec<ReplyGroup>, StoreError> {
        let sql = format!(
            "SELECT state, {} AS class, count(*),
                    max(coalesce(reply_code || ' ', '') || coalesce(reply_enhanced || ' ', '')
                        || coalesce(reply_text, ''))
             FROM recipient WHERE campaign_id = ?1 AND state IN {NOT_DELIVERED}
             GROUP BY state, class",
            ReplyClass::sql()
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        let rows = statement.query_map([campaign], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut groups = Vec::new();
        for row in rows {
            let (state, class, count, example) = row?;
            if let (Some(state), Some(class)) = (State::parse(&state), ReplyClass::from_key(&class))
            {
                groups.push(ReplyGroup {
                    state,
                    class,
                    count: count.max(0) as u64,
                    example: example.unwrap_or_default().trim().to_string(),
                });
            }
        }
        groups.sort_by_key(|group| std::cmp::Reverse(group.count));
        Ok(groups)
    }

    /// Outcomes recorded per second (sent, failed, deferred, uncertain), from the event log,
    /// for the chart of a run, finished or not.
    pub fn sends_over_time(&self, campaign: CampaignId) -> Result<Vec<TimeBucket>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT e.at / 1000 AS second, e.state, count(*)
             FROM recipient r JOIN event e ON e.recipient_id = r.id
             WHERE r.campaign_id = ?1
               AND e.state IN ('sent', 'failed', 'bounced', 'deferred', 'uncertain')
             GROUP BY second, e.state ORDER BY second",
        )?;
        let rows = statement.query_map([campaign], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
        let mut buckets = Vec::new();
        for row in rows {
            let (at_secs, state, count) = row?;
            if let Some(state) = State::parse(&state) {
                buckets.push(TimeBucket {
                    at_secs,
                    state,
                    count: count.max(0) as u64,
                });
            }
        }
        Ok(buckets)
    }

    /// How many recipients of `state` have a last reply of `class`.
    pub fn count_by_reply(
        &self,
        campaign: CampaignId,
        state: State,
        class: ReplyClass,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT count(*) FROM recipient
             WHERE campaign_id = ?1 AND state = ?2 AND {} = ?3",
            ReplyClass::sql()
        );
        let count: i64 = self.conn.query_row(
            &sql,
            params![campaign, state.as_str(), class.key()],
            |row| row.get(0),
        )?;
        Ok(count.max(0) as u64)
    }

    /// Rows `offset..offset + limit` (id order) of the recipients of `state` whose last reply
    /// is of `class`: the recipients table filtered from a figure of the results view.
    pub fn page_by_reply(
        &self,
        campaign: CampaignId,
        state: State,
        class: ReplyClass,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<RecipientRow>, StoreError> {
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM recipient
             WHERE campaign_id = ?1 AND state = ?2 AND {} = ?3
             ORDER BY id LIMIT ?4 OFFSET ?5",
            ReplyClass::sql()
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        let rows = statement.query_map(
            params![campaign, state.as_str(), class.key(), limit, offset as i64],
            read_row,
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The campaign's counts from the tally (what the library shows), for tests and checks
    /// against [`Store::counts`].
    pub fn tallied_counts(&self, campaign: CampaignId) -> Result<Counts, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT state, n FROM campaign_tally WHERE campaign_id = ?1")?;
        let rows = statement.query_map([campaign], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?;
        let mut counts = Counts::default();
        for row in rows {
            let (state, n) = row?;
            if let Some(state) = State::parse(&state) {
                *counts.slot(state) += n.max(0) as u64;
            }
        }
        Ok(counts)
    }
}

/// Adds an import's rows to the tally, inside the import's transaction.
pub(super) fn add_to_tally(
    conn: &Connection,
    campaign: CampaignId,
    pending: u64,
    skipped: u64,
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO campaign_tally (campaign_id, state, n, last_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT DO UPDATE SET n = n + excluded.n, last_at = max(last_at, excluded.last_at)",
    )?;
    for (state, n) in [(State::Pending, pending), (State::Skipped, skipped)] {
        if n > 0 {
            statement.execute(params![campaign, state.as_str(), n as i64, now_ms])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::{ImportRow, Reply, ResendFilter, Transition};

    fn import(store: &mut Store, campaign: CampaignId, emails: &[&str]) {
        let mut importer = store.importer(campaign, &[]).unwrap();
        for (line, email) in emails.iter().enumerate() {
            let skip = (!email.contains('@')).then(|| "invalid address".to_string());
            importer
                .push(ImportRow::new(
                    line as u64 + 2,
                    email.to_string(),
                    email.to_lowercase(),
                    [""; 0],
                    skip,
                ))
                .unwrap();
        }
        importer.finish().unwrap();
    }

    fn outcome(id: i64, to: State, code: Option<u16>, enhanced: Option<&str>) -> Transition {
        Transition {
            id,
            to,
            attempts: 1,
            next_attempt_at_ms: 0,
            route: Some("primary".into()),
            reply: Some(Reply {
                code,
                enhanced: enhanced.map(str::to_string),
                text: "server said so".into(),
            }),
            dead_address: false,
        }
    }

    #[test]
    fn the_tally_follows_every_change_of_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("herald.db")).unwrap();
        let a = store.campaign("/a.toml", "a").unwrap();
        let b = store.campaign("/b.toml", "b").unwrap();
        import(
            &mut store,
            a,
            &[
                "x@one.example",
                "y@one.example",
                "z@two.example",
                "broken",
                "w@two.example",
            ],
        );
        import(&mut store, b, &["q@three.example"]);
        let check = |store: &Store| {
            for campaign in [a, b] {
                assert_eq!(
                    store.tallied_counts(campaign).unwrap(),
                    store.counts(campaign).unwrap()
                );
            }
        };
        check(&store);
        let claimed = store.claim(a, i64::MAX, 10).unwrap();
        assert_eq!(claimed.len(), 4);
        check(&store);
        let ids: Vec<i64> = claimed.iter().map(|row| row.id).collect();
        store
            .apply(&[
                outcome(ids[0], State::Sent, Some(250), Some("2.0.0")),
                outcome(ids[1], State::Failed, Some(550), Some("5.1.1")),
                outcome(ids[2], State::Deferred, Some(452), None),
            ])
            .unwrap();
        check(&store);
        assert_eq!(store.recover_in_flight(a, false).unwrap(), 1);
        check(&store);
        store
            .resend(
                a,
                &ResendFilter {
                    include_failed: true,
                    ..ResendFilter::default()
                },
            )
            .unwrap();
        check(&store);
        store.mark_uncertain_sent(a).unwrap();
        check(&store);
        let library = store.library().unwrap();
        assert_eq!(library.len(), 2);
        let first = library.iter().find(|c| c.id == a).unwrap();
        assert_eq!(first.counts, store.counts(a).unwrap());
        assert_eq!(first.file, PathBuf::from("/a.toml"));
        assert!(first.last_activity_ms.is_some());
    }

    /// Issue #20: the one classification reads a reply the same in SQL (Results, the table)
    /// and in Rust (Publish's latest errors), case by case.
    #[test]
    fn a_reply_has_one_class_in_sql_and_in_rust() {
        let cases: [(Option<u16>, Option<&str>, ReplyClass); 16] = [
            (Some(550), Some("5.1.1"), ReplyClass::NoSuchUser),
            (Some(550), Some("5.1.10"), ReplyClass::BadAddress),
            (Some(553), Some("5.1.3"), ReplyClass::BadAddress),
            (Some(452), Some("4.2.2"), ReplyClass::MailboxFull),
            (Some(552), None, ReplyClass::MailboxFull),
            (Some(550), Some("5.2.1"), ReplyClass::MailboxUnavailable),
            (Some(550), None, ReplyClass::MailboxUnavailable),
            (None, Some("5.6.7"), ReplyClass::NonAsciiAddress),
            (Some(553), Some("5.6.7"), ReplyClass::NonAsciiAddress),
            (Some(554), Some("5.6.0"), ReplyClass::OtherPermanent),
            (Some(550), Some("5.7.26"), ReplyClass::Policy),
            (Some(554), None, ReplyClass::Policy),
            (Some(451), Some("4.4.1"), ReplyClass::Network),
            (None, None, ReplyClass::NoReply),
            (Some(421), None, ReplyClass::OtherTemporary),
            (Some(500), Some("5.5.1"), ReplyClass::OtherPermanent),
        ];
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("herald.db")).unwrap();
        let sql = format!(
            "SELECT {} FROM (SELECT ?1 AS reply_code, ?2 AS reply_enhanced)",
            ReplyClass::sql()
        );
        for (code, enhanced, expected) in cases {
            let reply = Reply {
                code,
                enhanced: enhanced.map(str::to_string),
                text: String::new(),
            };
            assert_eq!(ReplyClass::of(&reply), expected, "{reply:?} in Rust");
            let key: String = store
                .conn
                .query_row(&sql, params![code, enhanced], |row| row.get(0))
                .unwrap();
            assert_eq!(
                ReplyClass::from_key(&key),
                Some(expected),
                "{reply:?} in SQL"
            );
        }
    }

    #[test]
    fn results_group_by_domain_and_reply_class_and_filter_alike() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("herald.db")).unwrap();
        let c = store.campaign("/c.toml", "c").unwrap();
        let emails = [
            "a@big.example",
            "b@Big.example",
            "c@big.example",
            "d@small.example",
            "e@small.example",
            "f@tiny.example",
        ];
        import(&mut store, c, &emails);
        let ids: Vec<i64> = store
            .claim(c, i64::MAX, 10)
            .unwrap()
            .iter()
            .map(|row| row.id)
            .collect();
        store
            .apply(&[
                outcome(ids[0], State::Sent, Some(250), Some("2.0.0")),
                outcome(ids[1], State::Failed, Some(550), Some("5.1.1")),
                outcome(ids[2], State::Failed, Some(550), Some("5.7.1")),
                outcome(ids[3], State::Failed, Some(550), Some("5.1.1")),
                outcome(ids[4], State::Deferred, Some(452), None),
                outcome(ids[5], State::Uncertain, None, None),
            ])
            .unwrap();

        let domains = store.domain_breakdown(c, 2).unwrap();
        assert_eq!(domains.len(), 2);
        assert_eq!(domains[0].domain, "big.example");
        assert_eq!((domains[0].counts.sent, domains[0].counts.failed), (1, 2));
        assert_eq!(domains[1].domain, "small.example");
        assert_eq!(
            (domains[1].counts.failed, domains[1].counts.deferred),
            (1, 1)
        );

        let groups = store.reply_breakdown(c).unwrap();
        let find = |state, class| {
            groups
                .iter()
                .find(|g| g.state == state && g.class == class)
                .map(|g| g.count)
        };
        assert_eq!(find(State::Failed, ReplyClass::NoSuchUser), Some(2));
        assert_eq!(find(State::Failed, ReplyClass::Policy), Some(1));
        assert_eq!(find(State::Deferred, ReplyClass::MailboxFull), Some(1));
        assert_eq!(find(State::Uncertain, ReplyClass::NoReply), Some(1));
        assert_eq!(groups.len(), 4, "{groups:?}");
        assert!(groups[0].example.contains("5.1.1"));

        assert_eq!(
            store
                .count_by_reply(c, State::Failed, ReplyClass::NoSuchUser)
                .unwrap(),
            2
        );
        let page = store
            .page_by_reply(c, State::Failed, ReplyClass::NoSuchUser, 1, 10)
            .unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].email, "d@small.example");

        let over_time = store.sends_over_time(c).unwrap();
        let total: u64 = over_time.iter().map(|bucket| bucket.count).sum();
        assert_eq!(total, 6);
    }
}
