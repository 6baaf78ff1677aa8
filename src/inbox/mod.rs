//! Reading mail back (issue #13): bounces, complaints, auto-replies and unsubscribe requests from
//! the campaign's mailbox. `report` reads a message into data (pure, fuzzed); `matching` names the
//! recipient through the store; the IMAP client (`imap`) only fetches and flags, and never
//! deletes. This file drives one check: batches of UIDs after the stored cursor are fetched,
//! read, matched and applied in one store transaction each, and only then flagged. Reading mail
//! is not sending mail: nothing here uses the engine's sessions.

pub mod imap;
pub mod matching;
pub mod report;

use std::path::{Path, PathBuf};

use crate::campaign::{BouncesSpec, Campaign};
use crate::credentials as secrets;
use crate::identity::{RETURN_PATH_SECRET, UNSUBSCRIBE_SECRET, campaign_id};
use crate::store::{FeedbackKind, MailboxCursor, Store, StoreError};

use matching::{Keys, Plan};

/// Messages fetched and applied per round trip and transaction.
pub const BATCH: usize = 200;

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
    let mut mailbox = match &spec.oauth2 {
        Some(grant) => connect_oauth2(campaign, spec, grant).await?,
        None => {
            let password =
                secrets::lookup(&spec.password_env).ok_or_else(|| InboxError::NoPassword {
                    name: spec.password_env.clone(),
                })?;
            imap::Mailbox::connect(spec, &imap::Login::Password(password)).await?
        }
    };
    let result = read_folder(&mut mailbox, campaign, spec, db).await;
    mailbox.logout().await;
    result
}

/// Signs in with the grant's access token (the run's shared token cell). A refusal of a token
/// believed valid refreshes once and tries again (issue #22).
async fn connect_oauth2(
    campaign: &Campaign,
    spec: &BouncesSpec,
    grant: &str,
) -> Result<imap::Mailbox, InboxError> {
    let grant = crate::oauth2::Grant::shared(crate::oauth2::Client::for_campaign(campaign, grant)?);
    let token = grant.access_token().await?;
    match imap::Mailbox::connect(spec, &imap::Login::Bearer(token.clone())).await {
        Err(InboxError::Login { reason, .. }) => {
            tracing::info!(%reason, "the IMAP server refused an access token believed valid; refreshing once");
            let fresh = grant.rejected(&token).await?;
            imap::Mailbox::connect(spec, &imap::Login::Bearer(fresh)).await
        }
        other => other,
    }
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
    let mut summary = Summary::default();
    let uids = mailbox.uids_after(cursor.last_uid).await?;
    for chunk in uids.chunks(BATCH) {
        let fetched = mailbox.fetch(chunk).await?;
        let mut handled = Vec::new();
        let mut reports: Vec<Vec<matching::Wanted>> = Vec::new();
        for (uid, raw) in &fetched {
            summary.read += 1;
            let reading = report::read(raw);
            match matching::plan(&keys, &reading) {
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
        let resolved = matching::resolve(&store, &reports)?;
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
            uid_validity: cursor.uid_validity,
            last_uid: chunk.last().copied().unwrap_or(cursor.last_uid),
            unfinished: handled.clone(),
        };
        let (applied, new_held) =
            store.apply_feedback(&key, &next, &items, &held, spec.soft_limit)?;
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
        cursor = next;
        mailbox.mark_handled(&handled, processed).await?;
        cursor.unfinished.clear();
        store.set_mailbox_cursor(&key, &cursor)?;
    }
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
