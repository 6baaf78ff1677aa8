//! The service's answers for the window's campaign library and results view (issue #14): the
//! campaigns the database knows, a new ready-to-edit campaign folder, the next mailing made
//! from an existing one, a campaign's results (breakdowns and the outcomes over time) and the
//! export of every recipient's outcome. Runs on the service thread, never on the window's;
//! reads through `store`, writes only the files the user asked for, and never overwrites one.

use crate::app::AppError;
use std::path::{Path, PathBuf};

use super::files::{open_document, save_document};
use crate::store::{
    CampaignId, Counts, DomainRow, FeedbackCounts, RecipientRow, ReplyClass, ReplyGroup, State,
    Store, TimeBucket,
};

/// How many destination domains the results list (the largest ones).
pub const RESULT_DOMAINS: usize = 25;

/// A campaign's results, as the results view shows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultsData {
    pub file: PathBuf,
    pub counts: Counts,
    pub domains: Vec<DomainRow>,
    pub replies: Vec<ReplyGroup>,
    pub timeline: Vec<TimeBucket>,
    /// Complained, unsubscribed, soft and blocked (bounced is a state, in `counts`).
    pub feedback: FeedbackCounts,
}

/// The store's key for a campaign file: its canonical path (as `Campaign::load` makes it).
fn key_of(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

pub(super) fn find(store: &Store, path: &Path) -> Result<Option<CampaignId>, AppError> {
    store.find_campaign(&key_of(path)).map_err(AppError::from)
}

/// The results of the campaign in `path`: empty figures when nothing was imported yet.
pub fn results(store: &Store, path: &Path) -> Result<ResultsData, AppError> {
    let Some(id) = find(store, path)? else {
        return Ok(ResultsData {
            file: path.to_path_buf(),
            ..ResultsData::default()
        });
    };
    let text = |error: crate::store::StoreError| error.to_string();
    Ok(ResultsData {
        file: path.to_path_buf(),
        counts: store.counts(id).map_err(text)?,
        domains: store.domain_breakdown(id, RESULT_DOMAINS).map_err(text)?,
        replies: store.reply_breakdown(id).map_err(text)?,
        timeline: store.sends_over_time(id).map_err(text)?,
        feedback: store.feedback_counts(id).map_err(text)?,
    })
}

/// What the database holds for a campaign whose file cannot be read, for people: None when
/// nothing was imported.
pub(super) fn kept_outcomes(counts: &Counts) -> Option<String> {
    if counts.total() == 0 {
        return None;
    }
    Some(format!(
        "Its {} recipients ({} sent, {} failed, {} to send) are safe in the database: fix the \
         file, then open it again",
        counts.total(),
        counts.sent,
        counts.failed + counts.bounced,
        counts.pending + counts.deferred + counts.sending
    ))
}

/// Rows `offset..offset + limit` of the recipients of `state` whose last reply is of `class`,
/// with how many there are: the recipients table filtered from a figure of the results view.
pub fn reply_page(
    store: &Store,
    path: &Path,
    (state, class): (State, ReplyClass),
    offset: u64,
    limit: u32,
) -> Result<(u64, Vec<RecipientRow>), AppError> {
    let Some(id) = find(store, path)? else {
        return Ok((0, Vec::new()));
    };
    let text = |error: crate::store::StoreError| error.to_string();
    let total = store.count_by_reply(id, state, class).map_err(text)?;
    let rows = store
        .page_by_reply(id, state, class, offset, limit)
        .map_err(text)?;
    Ok((total, rows))
}

/// Writes every recipient's outcome (all states, import order) to a CSV file: when it last
/// changed in ISO 8601 (UTC), then the list's own columns as the recipient had them (issue #20),
/// so the file goes back into the marketer's own tools as it came.
pub fn export_all(store: &Store, path: &Path, to: &Path) -> Result<u64, AppError> {
    let Some(id) = find(store, path)? else {
        return Err("nothing to export yet: import the list first".into());
    };
    let fields = store.columns(id).map_err(AppError::from)?;
    let mut header = vec![
        "line",
        "email",
        "state",
        "attempts",
        "route",
        "code",
        "status",
        "reply",
        "skip_reason",
        "updated_at",
    ];
    header.extend(fields.iter().map(String::as_str));
    let mut out = crate::csvfile::line(&header);
    let mut after = 0;
    let mut count = 0;
    loop {
        let rows = store
            .page(id, None, None, after, 2_000)
            .map_err(AppError::from)?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.id;
        for row in &rows {
            let reply = row.reply.clone().unwrap_or_default();
            let mut cells = vec![
                row.line.to_string(),
                row.email.clone(),
                row.state.as_str().to_string(),
                row.attempts.to_string(),
                row.route.clone().unwrap_or_default(),
                reply.code.map(|code| code.to_string()).unwrap_or_default(),
                reply.enhanced.unwrap_or_default(),
                reply.text,
                row.skip_reason.clone().unwrap_or_default(),
                crate::compose::iso8601_utc(row.updated_at_ms),
            ];
            cells.extend(field_values(&row.fields_json, &fields));
            out.push_str(&crate::csvfile::line(&cells));
            count += 1;
        }
    }
    std::fs::write(to, out)
        .map_err(|error| format!("could not write {}: {error}", to.display()))?;
    Ok(count)
}

/// A row's values of the list's `columns`, in their order; a column the row lacks is empty.
fn field_values(fields_json: &str, columns: &[String]) -> Vec<String> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(fields_json).unwrap_or_default();
    columns
        .iter()
        .map(|column| match object.get(column) {
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        })
        .collect()
}

const STARTER_TOML: &str = r#"# A new Herald campaign. Fill in the sender, add your list to list.csv (or point
# [recipients] csv at your own file), set up a relay on the Publish tab, then send a test.
# The plain-text part is derived from the HTML until you write a text body of your own, and
# the import finds the address column by its name ("email", "Email Address", "E-mail"…).

[message]
from = "Your Name <you@example.com>"
subject = "Hello {{ first_name }}"
html = "body.html"

[recipients]
csv = "list.csv"

[delivery]
mode = "relay"
connections = 8

[[relay]]
name = "main"
host = "smtp.example.com"
port = 587
security = "starttls"
"#;

const STARTER_HTML: &str = r#"<!DOCTYPE html>
<html>
<body style="margin:0;padding:0;background:#f4f4f4;">
  <table role="presentation" width="100%" cellpadding="0" cellspacing="0">
    <tr><td align="center">
      <table role="presentation" width="600" cellpadding="24" cellspacing="0" style="background:#ffffff;font-family:Arial,sans-serif;">
        <tr><td>
          <h1 style="font-size:22px;">Hello {{ first_name }},</h1>
          <p>Write your message here.</p>
        </td></tr>
      </table>
    </td></tr>
  </table>
</body>
</html>
"#;

const STARTER_LIST: &str = "email,first_name\n";

/// Writes a ready campaign into `folder` (created if needed): campaign.toml, body.html and an
/// empty list.csv. Refuses a folder that already holds any of them. No body.txt (issue #20): a
/// placeholder text body would be sent beside whatever newsletter is loaded later, so the
/// plain-text part is derived from the HTML until the marketer writes one.
pub fn new_campaign(folder: &Path) -> Result<PathBuf, AppError> {
    let files = [
        ("campaign.toml", STARTER_TOML),
        ("body.html", STARTER_HTML),
        ("list.csv", STARTER_LIST),
    ];
    if let Some((name, _)) = files.iter().find(|(name, _)| folder.join(name).exists()) {
        return Err(format!(
            "{} already holds a {name}: choose an empty folder, or open that campaign",
            folder.display()
        )
        .into());
    }
    std::fs::create_dir_all(folder)
        .map_err(|error| format!("could not create {}: {error}", folder.display()))?;
    for (name, text) in files {
        std::fs::write(folder.join(name), text)
            .map_err(|error| format!("could not write {name}: {error}"))?;
    }
    Ok(folder.join("campaign.toml"))
}

/// The next free name beside `path` for its next mailing: `news.toml` → `news-2.toml`,
/// `news-2.toml` → `news-3.toml`.
pub fn next_name(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "campaign".into());
    let (base, mut n) = match stem.rsplit_once('-') {
        Some((base, number)) if !base.is_empty() => match number.parse::<u32>() {
            Ok(number) => (base.to_string(), number + 1),
            Err(_) => (stem.clone(), 2),
        },
        _ => (stem.clone(), 2),
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    loop {
        let candidate = folder.join(format!("{base}-{n}.toml"));
        let taken = ["toml", "html", "txt"]
            .iter()
            .any(|ext| candidate.with_extension(ext).exists());
        if !taken {
            return candidate;
        }
        n += 1;
    }
}

/// Makes the next mailing from the campaign in `path`: a new campaign file beside it with
/// copies of its templates, the same list and settings, and no delivery state (a new file is a
/// new campaign for the store).
pub fn duplicate(path: &Path) -> Result<PathBuf, AppError> {
    let mut document = open_document(path)?;
    let target = next_name(path);
    // The copies get the new campaign's names, so editing one mailing never changes the other.
    document.raw.message.html = None;
    document.raw.message.text = None;
    save_document(&target, &document)?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn next_names_count_up_and_skip_taken_ones() {
        let dir = tempfile::tempdir().unwrap();
        let news = dir.path().join("news.toml");
        assert_eq!(next_name(&news), dir.path().join("news-2.toml"));
        std::fs::write(dir.path().join("news-2.html"), "").unwrap();
        assert_eq!(next_name(&news), dir.path().join("news-3.toml"));
        assert_eq!(
            next_name(&dir.path().join("news-7.toml")),
            dir.path().join("news-8.toml")
        );
        assert_eq!(
            next_name(&dir.path().join("black-friday.toml")),
            dir.path().join("black-friday-2.toml")
        );
    }

    #[test]
    fn a_new_campaign_is_valid_apart_from_what_the_user_must_fill_in() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("spring");
        let path = new_campaign(&folder).unwrap();
        let document = open_document(&path).unwrap();
        assert!(document.html.contains("{{ first_name }}"));
        assert_eq!(document.raw.recipients.csv.as_deref(), Some("list.csv"));
        assert!(
            new_campaign(&folder)
                .unwrap_err()
                .to_string()
                .contains("already holds")
        );

        let copy = duplicate(&path).unwrap();
        assert_eq!(copy, folder.join("campaign-2.toml"));
        let copied = open_document(&copy).unwrap();
        assert_eq!(copied.html, document.html);
        assert_eq!(copied.raw.message.html.as_deref(), Some("campaign-2.html"));
        assert_eq!(copied.raw.recipients, document.raw.recipients);
    }
}
