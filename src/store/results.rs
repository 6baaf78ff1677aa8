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
/// basic RFC 5321 code when the server gave none). The same rules group the results and filter
/// the recipients table, because both use [`ReplyClass::sql`].
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

impl ReplyClass {
    pub const ALL: [ReplyClass; 9] = [
        ReplyClass::NoSuchUser,
        ReplyClass::BadAddress,
        ReplyClass::MailboxFull,
        ReplyClass::MailboxUnavailable,
        ReplyClass::Policy,
        ReplyClass::Network,
        ReplyClass::NoReply,
        ReplyClass::OtherTemporary,
        ReplyClass::OtherPermanent,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ReplyClass::NoSuchUser => "no such user (x.1.1)",
            ReplyClass::BadAddress => "bad address (x.1.x)",
            ReplyClass::MailboxFull => "mailbox full (x.2.2)",
            ReplyClass::MailboxUnavailable => "mailbox unavailable (x.2.x, 550)",
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

    /// The class of a row as an SQL expression over its reply columns. The first rule that
    /// matches wins, in the order of RFC 3463's subjects (address, mailbox, network, policy).
    fn sql() -> &'static str {
        "CASE
            WHEN reply_enhanced LIKE '_.1.1' THEN 'no_such_user'
            WHEN reply_enhanced LIKE '_.1.%' THEN 'bad_address'
            WHEN reply_enhanced LIKE '_.2.2'
              OR (reply_enhanced IS NULL AND reply_code IN (452, 552)) THEN 'mailbox_full'
            WHEN reply_enhanced LIKE '_.2.%'
              OR (reply_enhanced IS NULL AND reply_code IN (450, 550, 551)) THEN 'mailbox_unavailable'
            WHEN reply_enhanced LIKE '_.7.%'
              OR (reply_enhanced IS NULL AND reply_code = 554) THEN 'policy'
            WHEN reply_enhanced LIKE '_.4.%' THEN 'network'
            WHEN reply_code IS NULL THEN 'no_reply'
            WHEN reply_code BETWEEN 400 AND 499 THEN 'other_temporary'
            ELSE 'other_permanent'
         END"
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
