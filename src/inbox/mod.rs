//! Reading mail back (issue #13): bounces, complaints, auto-replies and unsubscribe requests from
//! the campaign's mailbox. `report` reads a message into data (pure, fuzzed); `matching` names the
//! recipient through the store; the IMAP client (`imap`) only fetches and flags, and never
//! deletes. This file drives one check: the UIDs after the stored cursor and their sizes are
//! listed, then batches of them (bounded in count and bytes) are fetched, read, matched and
//! applied in one store transaction each, and only then flagged. A message over
//! `imap::MAX_MESSAGE_BYTES` is read only in part: a report when that part holds its whole
//! report part (`report::read_partial`), else counted `too_large` and left as it was; one
//! that does not arrive in its time or that the server will not give is fetched again alone on a
//! fresh connection and, failing that, passed and named, so no message can stop every later check
//! (issue #21). Reading mail is not sending mail: nothing here uses the engine's sessions.

pub mod imap;
pub mod matching;
pub mod report;

use std::path::{Path, PathBuf};

use crate::campaign::{BouncesSpec, Campaign};
use crate::credentials as secrets;
use crate::identity::{RETURN_PATH_SECRET, UNSUBSCRIBE_SECRET, campaign_id};
use crate::store::{FeedbackKind, MailboxCursor, Store, StoreError};

use matching::{Keys, Plan};

/// UIDs whose sizes are asked with one command.
const SIZES_PER_COMMAND: usize = 1_000;
/// Messages named in a summary's `passed` (the counts go on).
const MAX_NAMED: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("the campaign has no [bounces] section")]
    NotConfigured,
    #[error(
        "no password for the bounce mailbox: set the environment variable {name} (or store it in the keyring under that name)"
    )]
    NoPassword { name: String },
    #[error("could not reach the IMAP server: {reason} ({host}:{port})")]
    Connect {
        host: String,
        port: u16,
        reason: String,
    },
    #[error("TLS with the IMAP server failed: {reason} ({host})")]
    Tls { host: String, reason: String },
    #[error("the CA file cannot be used: {reason} ({})", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error(
        "the IMAP server refused the login: check the username and password ({reason}; {username})"
    )]
    Login { username: String, reason: String },
    #[error("the folder cannot be used: {reason} ({folder})")]
    Folder { folder: String, reason: String },
    #[error("IMAP {what} failed: {reason}")]
    Imap { what: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing in to the mailbox's OAuth2 grant failed (not signed in, refused, unreachable).
    #[error("the bounce mailbox: {0}")]
    OAuth2(#[from] crate::oauth2::OAuth2Error),
    #[error("could not start the mailbox reader: {0}")]
    Runtime(String),
}

/// What one check found and did. Counts are of this check only: a report handled by an
/// earlier check is not read again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Messages fetched.
    pub read: u64,
    pub hard: u64,
    pub soft: u64,
    pub blocked: u64,
    pub delayed: u64,
    pub complaints: u64,
    pub unsubscribes: u64,
    pub auto_replies: u64,
    /// Reports that named nobody Herald mailed (or, unproven, several people), forged ones
    /// included.
    pub unmatched: u64,
    /// Of those, reports whose VERP tag or keyed Message-ID did not verify.
    pub forged: u64,
    /// Reports that named someone Herald mailed without proving they concern its mail (no
    /// VERP tag, no keyed Message-ID): held for the user, not applied (issue #21).
    pub unverified: u64,
    /// Looked like reports but could not be read: left unread in the mailbox.
    pub unrecognized: u64,
    /// Not reports at all: left exactly as they were.
    pub not_reports: u64,
    /// Over `imap::MAX_MESSAGE_BYTES` and, in the part read, no whole report part: left
    /// exactly as they were.
    pub too_large: u64,
    /// Not given by the server in time, or at all, even alone on a fresh connection: passed
    /// (the next check does not try them again) and left as they were.
    pub not_fetched: u64,
    /// One sentence per message passed (too large or not fetched), naming it for a person to
    /// look at; at most `MAX_NAMED`.
    pub passed: Vec<String>,
    /// Recipients that became `bounced`.
    pub bounced: u64,
    /// Addresses added to the suppression list.
    pub suppressed: u64,
    /// One line per distinct warning about the sender (blocked mail).
    pub warnings: Vec<String>,
}

/// Reads the campaign's bounce mailbox and applies everything, on a runtime of its own (the
/// CLI and the window's service thread call this; neither is inside a runtime).
pub fn check(campaign: &Campaign, db: &Path) -> Result<Summary, InboxError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| InboxError::Runtime(error.to_string()))?;
    runtime.block_on(check_async(campaign, db))
}

/// [`check`] inside a runtime.
pub async fn check_async(campaign: &Campaign, db: &Path) -> Result<Summary, InboxError> {
    let Some(spec) = &campaign.bounces else {
        return Err(InboxError::NotConfigured);
    };
    // Connect before touching the database: a wrong password changes nothing.
    let (mut mailbox, login) = match &spec.oauth2 {
        Some(grant) => connect_oauth2(campaign, spec, grant).await?,
        None => {
            let password =
                secrets::lookup(&spec.password_env).ok_or_else(|| InboxError::NoPassword {
                    name: spec.password_env.clone(),
                })?;
            let login = imap::Login::Password(password);
            (imap::Mailbox::connect(spec, &login).await?, login)
        }
    };
    let result = read_folder(&mut mailbox, campaign, spec, &login, db).await;
    mailbox.logout().await;
    result
}

/// Signs in with the grant's access token (the run's shared token cell). A refusal of a token
/// believed valid refreshes once and tries again (issue #22).
async fn connect_oauth2(
    campaign: &Campaign,
    spec: &BouncesSpec,
    grant: &str,
) -> Result<(imap::Mailbox, imap::Login), InboxError> {
    let grant = crate::oauth2::Grant::shared(crate::oauth2::Client::for_campaign(campaign, grant)?);
    let token = grant.access_token().await?;
    let login = imap::Login::Bearer(token.clone());
    match imap::Mailbox::connect(spec, &login).await {
        Err(InboxError::Login { reason, .. }) => {
            tracing::info!(%reason, "the IMAP server refused an access token believed valid; refreshing once");
            let login = imap::Login::Bearer(grant.rejected(&token).await?);
            Ok((imap::Mailbox::connect(spec, &login).await?, login))
        }
        other => other.map(|mailbox| (mailbox, login)),
    }
}

/// What a check needs to log in again after a fetch failed.
struct Login<'a> {
    spec: &'a BouncesSpec,
    login: &'a imap::Login,
    uid_validity: u32,
}

impl Login<'_> {
    /// A fresh session on the same folder, refused when the folder's UIDVALIDITY changed
    /// meanwhile (the UIDs in hand would name other messages; the next check reads again).
    async fn again(&self) -> Result<imap::Mailbox, InboxError> {
        let mut mailbox = imap::Mailbox::connect(self.spec, self.login).await?;
        let selected = mailbox.select(&self.spec.folder).await?;
        if selected.uid_validity != self.uid_validity {
            return Err(InboxError::Imap {
                what: "SELECT".into(),
                reason: "the folder's UIDVALIDITY changed during the check".into(),
            });
        }
        Ok(mailbox)
    }
}

/// What came of one batch: the messages to read, and the ones passed with the reason.
struct Fetched {
    messages: Vec<(u32, Vec<u8>)>,
    passed: Vec<(u32, String)>,
}

/// Why a message the server left out of an answer (without failing) is passed.
const NOT_GIVEN: &str = "the server did not give it (deleted meanwhile, or unreadable)";

/// Fetches `batch`. Messages missing from the answer (it failed, or the server left them out)
/// are asked again on a fresh connection: the first of them alone — passed if it fails alone
/// too — and the rest together, until none is missing; servers answer in UID order and stop at
/// a message they cannot give, so one bad or slow message costs itself and a few round trips.
async fn fetch_batch(
    mailbox: &mut imap::Mailbox,
    login: &Login<'_>,
    batch: &imap::Batch,
) -> Result<Fetched, InboxError> {
    let (mut messages, mut failure) = mailbox.fetch(&batch.messages, batch.part).await;
    let mut passed = Vec::new();
    let mut pending = missing(&batch.messages, &messages);
    while let Some(&(uid, size)) = pending.first() {
        *mailbox = login.again().await?;
        let (mut alone, lone_failure) = mailbox.fetch(&[(uid, size)], batch.part).await;
        match alone.pop() {
            Some(message) => messages.push(message),
            None => {
                let reason = lone_failure
                    .as_ref()
                    .or(failure.as_ref())
                    .map_or_else(|| NOT_GIVEN.to_string(), ToString::to_string);
                tracing::warn!(uid, %reason, "a message was passed");
                passed.push((uid, reason));
            }
        }
        let rest = pending.get(1..).unwrap_or_default().to_vec();
        if rest.is_empty() {
            break;
        }
        if lone_failure.is_some() {
            *mailbox = login.again().await?;
        }
        let (more, more_failure) = mailbox.fetch(&rest, batch.part).await;
        pending = missing(&rest, &more);
        messages.extend(more);
        failure = more_failure;
    }
    messages.sort_by_key(|(uid, _)| *uid);
    Ok(Fetched { messages, passed })
}

/// The messages of `asked` that are not in `got`.
fn missing<T>(asked: &[(u32, u32)], got: &[(u32, T)]) -> Vec<(u32, u32)> {
    asked
        .iter()
        .filter(|(uid, _)| !got.iter().any(|(have, _)| have == uid))
        .copied()
        .collect()
}

/// The sizes of `group`, asked again in the same way as `fetch_batch` asks for messages: a UID
/// whose size the server will not give even alone on a fresh connection is passed.
async fn sizes_of(
    mailbox: &mut imap::Mailbox,
    login: &Login<'_>,
    group: &[u32],
) -> Result<(Vec<(u32, u32)>, Vec<(u32, String)>), InboxError> {
    let (mut sizes, mut failure) = mailbox.sizes(group).await;
    let mut passed = Vec::new();
    let lacking = |asked: &[u32], got: &[(u32, u32)]| -> Vec<u32> {
        asked
            .iter()
            .filter(|uid| !got.iter().any(|(have, _)| have == *uid))
            .copied()
            .collect()
    };
    let mut pending = lacking(group, &sizes);
    while let Some(&uid) = pending.first() {
        *mailbox = login.again().await?;
        let (alone, lone_failure) = mailbox.sizes(&[uid]).await;
        if alone.is_empty() {
            let reason = lone_failure
                .as_ref()
                .or(failure.as_ref())
                .map_or_else(|| NOT_GIVEN.to_string(), ToString::to_string);
            tracing::warn!(uid, %reason, "a message was passed");
            passed.push((uid, reason));
        }
        sizes.extend(alone);
        let rest = pending.get(1..).unwrap_or_default().to_vec();
        if rest.is_empty() {
            break;
        }
        if lone_failure.is_some() {
            *mailbox = login.again().await?;
        }
        let (more, more_failure) = mailbox.sizes(&rest).await;
        pending = lacking(&rest, &more);
        sizes.extend(more);
        failure = more_failure;
    }
    sizes.sort_unstable();
    Ok((sizes, passed))
}

/// Adds a sentence naming a passed message, up to `MAX_NAMED` of them.
fn name_passed(summary: &mut Summary, sentence: String) {
    if summary.passed.len() < MAX_NAMED {
        summary.passed.push(sentence);
    }
}

/// "UID 7 (10.5 MB, from …, "…")": a message read in part, named by its header section.
fn describe_large(uid: u32, size: u32, part: &[u8]) -> String {
    let field = |name: &str| {
        header_field(part, name)
            .map(|value| format!(", {} {value}", name.to_ascii_lowercase()))
            .unwrap_or_default()
    };
    format!(
        "UID {uid} ({:.1} MB{}{}): over the {} MB bound, read only in part and left as it was",
        f64::from(size) / 1_048_576.0,
        field("From"),
        field("Subject"),
        imap::MAX_MESSAGE_BYTES / 1_048_576
    )
}

/// The first `name:` field of a header section, unfolded, printable, at most 80 characters.
fn header_field(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split("\r\n").take_while(|line| !line.is_empty());
    let first = lines.find(|line| {
        line.len() > name.len()
            && line.is_char_boundary(name.len())
            && line[..name.len()].eq_ignore_ascii_case(name)
            && line[name.len()..].starts_with(':')
    })?;
    let mut value = first[name.len() + 1..].trim().to_string();
    // RFC 5322 §2.2.3: a line starting with white space continues the field.
    for more in lines.take_while(|line| line.starts_with([' ', '\t'])) {
        value.push(' ');
        value.push_str(more.trim());
    }
    let value: String = value.chars().filter(|c| !c.is_control()).take(80).collect();
    (!value.is_empty()).then_some(value)
}

/// The key of a folder's cursor in the store: account, server and folder.
fn mailbox_key(spec: &BouncesSpec) -> String {
    format!(
        "imap://{}@{}:{}/{}",
        spec.username,
        spec.host.to_ascii_lowercase(),
        spec.port,
        spec.folder
    )
}

async fn read_folder(
    mailbox: &mut imap::Mailbox,
    campaign: &Campaign,
    spec: &BouncesSpec,
    login: &imap::Login,
    db: &Path,
) -> Result<Summary, InboxError> {
    let mut store = Store::open(db)?;
    // The campaign's own row (so a first check before any send still works).
    let _ = campaign_id(&mut store, campaign)?;
    let keys = Keys {
        return_path: spec.return_path.clone(),
        return_secret: store.secret(RETURN_PATH_SECRET)?,
        unsubscribe_secret: store.secret(UNSUBSCRIBE_SECRET)?,
    };
    let key = mailbox_key(spec);
    let selected = mailbox.select(&spec.folder).await?;
    let mut cursor = match store.mailbox_cursor(&key)? {
        // RFC 3501 §2.3.1.1: another UIDVALIDITY means the old UIDs name other messages.
        Some(cursor) if cursor.uid_validity == selected.uid_validity => cursor,
        Some(_) | None => MailboxCursor {
            uid_validity: selected.uid_validity,
            last_uid: 0,
            unfinished: Vec::new(),
        },
    };
    let processed = spec.processed_folder.as_deref();
    // A check killed between a commit and its flags: finish them first.
    if !cursor.unfinished.is_empty() {
        mailbox.mark_handled(&cursor.unfinished, processed).await?;
        cursor.unfinished.clear();
        store.set_mailbox_cursor(&key, &cursor)?;
    }
    let mut check = Check {
        store,
        keys,
        key,
        spec,
        login: Login {
            spec,
            login,
            uid_validity: cursor.uid_validity,
        },
        cursor,
        summary: Summary::default(),
    };
    let uids = mailbox.uids_after(check.cursor.last_uid).await?;
    for group in uids.chunks(SIZES_PER_COMMAND) {
        let (sizes, passed) = sizes_of(mailbox, &check.login, group).await?;
        for (uid, reason) in passed {
            check.summary.not_fetched += 1;
            name_passed(
                &mut check.summary,
                format!("UID {uid}: no size: {reason}; passed, left as it was"),
            );
        }
        for batch in imap::batches(&sizes) {
            check.batch(mailbox, &batch).await?;
        }
        // Past the group's last UID, messages without a size included.
        if let Some(&end) = group.last()
            && end > check.cursor.last_uid
        {
            check.cursor.last_uid = end;
            check.store.set_mailbox_cursor(&check.key, &check.cursor)?;
        }
    }
    let Check {
        mut store,
        key,
        cursor,
        summary,
        ..
    } = check;
    if uids.is_empty() {
        // Keeps a new UIDVALIDITY even when the folder is empty.
        store.set_mailbox_cursor(&key, &cursor)?;
    }
    tracing::info!(
        read = summary.read,
        hard = summary.hard,
        "bounce mailbox read"
    );
    Ok(summary)
}

/// One check under way: the store, the keys, and the cursor and counts so far.
struct Check<'a> {
    store: Store,
    keys: Keys,
    /// The folder's key in the store (`mailbox_key`).
    key: String,
    spec: &'a BouncesSpec,
    login: Login<'a>,
    cursor: MailboxCursor,
    summary: Summary,
}

impl Check<'_> {
    /// Fetches one batch, reads and applies it, and commits its effects with the cursor past
    /// its last UID, then flags what was handled.
    async fn batch(
        &mut self,
        mailbox: &mut imap::Mailbox,
        batch: &imap::Batch,
    ) -> Result<(), InboxError> {
        let fetched = fetch_batch(mailbox, &self.login, batch).await?;
        let summary = &mut self.summary;
        for (uid, reason) in &fetched.passed {
            summary.not_fetched += 1;
            name_passed(
                summary,
                format!("UID {uid}: {reason}; passed, left as it was"),
            );
        }
        let mut handled = Vec::new();
        let mut reports: Vec<Vec<matching::Wanted>> = Vec::new();
        for (uid, raw) in &fetched.messages {
            let reading = if batch.part {
                // Read in part: a report only when the part read holds its whole report part
                // (a DSN or complaint returning a big newsletter puts that part first).
                match report::read_partial(raw) {
                    Some(reading) => reading,
                    None => {
                        // Named for a person, never flagged.
                        summary.too_large += 1;
                        let size = batch
                            .messages
                            .iter()
                            .find(|(u, _)| u == uid)
                            .map_or(0, |(_, size)| *size);
                        name_passed(summary, describe_large(*uid, size, raw));
                        continue;
                    }
                }
            } else {
                report::read(raw)
            };
            summary.read += 1;
            match matching::plan(&self.keys, &reading) {
                Plan::NotAReport => summary.not_reports += 1,
                Plan::Unrecognized => summary.unrecognized += 1,
                // RFC 3834 auto-replies ("away until…") may matter to a person: counted, but
                // left unread and unflagged, like mail that is not a report.
                Plan::AutoReply => summary.auto_replies += 1,
                Plan::Report {
                    wanted: items,
                    forged,
                } => {
                    summary.forged += u64::from(forged);
                    reports.push(items);
                    handled.push(*uid);
                }
            }
        }
        // The raw messages are no longer needed: the batch's memory goes before the store's.
        drop(fetched);
        let resolved = matching::resolve(&self.store, &reports)?;
        let mut items = Vec::new();
        let mut held = Vec::new();
        for (wanted, found) in reports.iter().zip(resolved) {
            if found.unmatched() {
                summary.unmatched += 1;
            }
            items.extend(found.apply);
            held.extend(found.hold);
            // A block names the sender's trouble whoever the report is about: warn either way.
            for piece in wanted.iter().filter(|w| w.kind == FeedbackKind::Blocked) {
                let warning = matching::sender_warning(piece.status.as_deref(), &piece.diagnostic);
                if !summary.warnings.contains(&warning) {
                    summary.warnings.push(warning);
                }
            }
        }
        // The batch, its effects and the cursor past it commit together.
        let next = MailboxCursor {
            uid_validity: self.cursor.uid_validity,
            last_uid: batch
                .messages
                .last()
                .map_or(self.cursor.last_uid, |(uid, _)| *uid),
            unfinished: handled.clone(),
        };
        let (applied, new_held) =
            self.store
                .apply_feedback(&self.key, &next, &items, &held, self.spec.soft_limit)?;
        summary.unverified += new_held;
        for (item, applied) in items.iter().zip(&applied) {
            summary.bounced += u64::from(applied.bounced);
            summary.suppressed += u64::from(applied.suppressed);
            let slot = match item.kind {
                FeedbackKind::Hard => &mut summary.hard,
                FeedbackKind::Soft => &mut summary.soft,
                FeedbackKind::Blocked => &mut summary.blocked,
                FeedbackKind::Delayed => &mut summary.delayed,
                FeedbackKind::Complaint => &mut summary.complaints,
                FeedbackKind::Unsubscribe => &mut summary.unsubscribes,
            };
            *slot += 1;
        }
        self.cursor = next;
        mailbox
            .mark_handled(&handled, self.spec.processed_folder.as_deref())
            .await?;
        self.cursor.unfinished.clear();
        self.store.set_mailbox_cursor(&self.key, &self.cursor)?;
        Ok(())
    }
}
