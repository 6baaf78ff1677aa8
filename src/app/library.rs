//! The campaign library's decisions (issue #20): the state each campaign is in, read from the
//! database (draft, sending, interrupted, sent), and renaming a campaign — its file, or its
//! folder when the file is the `campaign.toml` every new campaign gets — without losing what
//! the database holds for it. The window asks through the service; nothing here draws.

use std::path::{Path, PathBuf};

use crate::app::AppError;
use crate::delivery::Counts;
use crate::store::{CampaignSummary, Store};

/// Where a campaign stands, as the library's status column says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignStatus {
    /// Nobody has been sent to yet.
    Draft,
    /// A run is sending it now.
    Sending,
    /// Sent in part: recipients are left and no run goes.
    Interrupted,
    /// Everyone was tried: nobody is left to send to.
    Sent,
}

/// How recently a campaign with rows in `sending` must have changed to be taken for one that
/// another process is sending (older, its run ended without finishing them).
const SENDING_QUIET_MS: i64 = 60_000;

impl CampaignStatus {
    /// The status of a campaign with these counts; `running` when a run of it goes now.
    pub fn of(counts: &Counts, running: bool) -> CampaignStatus {
        let left = counts.pending + counts.deferred + counts.sending;
        // Skipped rows (invalid, duplicates, suppressed) were never tried: a list with some is
        // still a draft until a message goes.
        let tried = counts.sent + counts.failed + counts.bounced + counts.uncertain;
        match () {
            _ if running => CampaignStatus::Sending,
            _ if tried == 0 && counts.sending == 0 => CampaignStatus::Draft,
            _ if left == 0 => CampaignStatus::Sent,
            _ => CampaignStatus::Interrupted,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Sending => "sending",
            CampaignStatus::Interrupted => "interrupted",
            CampaignStatus::Sent => "sent",
        }
    }

    /// What the status means, for a hover.
    pub fn explain(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "Nobody has been sent to yet",
            CampaignStatus::Sending => "A run is sending it now",
            CampaignStatus::Interrupted => {
                "Sent in part: open it and press Resume sending to go on"
            }
            CampaignStatus::Sent => "Everyone on the list was tried",
        }
    }
}

/// One campaign of the library with its status.
#[derive(Debug, Clone, PartialEq)]
pub struct LibraryEntry {
    pub summary: CampaignSummary,
    pub status: CampaignStatus,
}

/// Every campaign the database knows with its status; `sending` is the campaign file the
/// window's own run sends, if one goes.
pub fn entries(
    store: &Store,
    sending: Option<&Path>,
    now_ms: i64,
) -> Result<Vec<LibraryEntry>, AppError> {
    let campaigns = store.library().map_err(AppError::from)?;
    Ok(campaigns
        .into_iter()
        .map(|summary| {
            let elsewhere = summary.counts.sending > 0
                && summary
                    .last_activity_ms
                    .is_some_and(|at| now_ms - at < SENDING_QUIET_MS);
            let running = elsewhere || sending == Some(summary.file.as_path());
            LibraryEntry {
                status: CampaignStatus::of(&summary.counts, running),
                summary,
            }
        })
        .collect())
}

/// A campaign's name as people call it: the file's name, or its folder's when the file has the
/// name every new campaign gets (`~/Campaigns/spring-sale/campaign.toml` is "spring-sale").
pub fn name_of(file: &Path) -> String {
    let stem = file
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    match named_by_folder(file) {
        Some(folder) => folder
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or(stem),
        None => stem,
    }
}

/// The folder that names the campaign in `file`, when it is the folder that names it.
fn named_by_folder(file: &Path) -> Option<&Path> {
    let stem = file.file_stem()?.to_string_lossy();
    let folder = file.parent()?;
    (stem.eq_ignore_ascii_case("campaign") && folder.file_name().is_some()).then_some(folder)
}

/// Renames the campaign in `file` to `name`: its folder when the folder names it (every file
/// in it moves along, templates and lists included), else the file itself (its templates keep
/// their names: the file names them). Refuses a name that is taken, on disk or in the
/// database, and a campaign being sent; the database follows in one transaction, and the
/// files are put back if it cannot.
pub fn rename(
    store: &mut Store,
    file: &Path,
    name: &str,
    sending: Option<&Path>,
) -> Result<Renamed, AppError> {
    let name = name.trim();
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\'])
        || name.starts_with('.')
    {
        return Err(format!(
            "\"{name}\" cannot name a campaign: use letters, digits, spaces or dashes, without / or a leading dot"
        )
        .into());
    }
    let file = std::fs::canonicalize(file)
        .map_err(|error| format!("could not find {}: {error}", file.display()))?;
    let campaigns = entries(store, sending, crate::delivery::now_ms())?;
    if let Some(busy) = campaigns.iter().find(|entry| {
        entry.status == CampaignStatus::Sending && moved(&file, &entry.summary.file).is_some()
    }) {
        return Err(format!(
            "{} is being sent: stop it before renaming",
            name_of(&busy.summary.file)
        )
        .into());
    }
    let (from, to) = match named_by_folder(&file) {
        Some(folder) => (folder.to_path_buf(), folder.with_file_name(name)),
        None => (file.clone(), file.with_file_name(format!("{name}.toml"))),
    };
    if to.exists() {
        return Err(format!(
            "{} already exists: choose another name",
            to.file_name().unwrap_or_default().to_string_lossy()
        )
        .into());
    }
    // Every campaign the move carries: the one renamed, and with a folder, its neighbours.
    let mut moves = Vec::new();
    for entry in &campaigns {
        if let Some(new_file) = moved_to(&from, &to, &entry.summary.file) {
            let key = new_file.to_string_lossy().into_owned();
            if store.find_campaign(&key).map_err(AppError::from)?.is_some() {
                return Err(format!(
                    "the database already has a campaign at {}: choose another name",
                    new_file.display()
                )
                .into());
            }
            let stem = new_file
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_default();
            moves.push((entry.summary.id, key, stem));
        }
    }
    std::fs::rename(&from, &to).map_err(|error| {
        format!(
            "could not rename {} to {name}: {error}",
            from.file_name().unwrap_or_default().to_string_lossy()
        )
    })?;
    if let Err(error) = store.move_campaigns(&moves) {
        // The database did not follow: the files go back, so the campaign keeps its sends.
        let _ = std::fs::rename(&to, &from);
        return Err(AppError::from(error));
    }
    let file = moved_to(&from, &to, &file)
        .ok_or_else(|| AppError::other("the renamed campaign moved away"))?;
    Ok(Renamed { from, to, file })
}

/// What a rename moved: `from` became `to` (the folder or the file), and the campaign file is
/// now `file`. A file open elsewhere under `from` is found again with [`Renamed::carry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renamed {
    pub from: PathBuf,
    pub to: PathBuf,
    pub file: PathBuf,
}

impl Renamed {
    /// Where `path` is after the rename, when the rename moved it.
    pub fn carry(&self, path: &Path) -> Option<PathBuf> {
        moved_to(&self.from, &self.to, path)
    }
}

/// Whether `file` is `from` or lies under it.
fn moved<'a>(from: &Path, file: &'a Path) -> Option<&'a Path> {
    file.strip_prefix(from).ok()
}

/// Where `file` goes when `from` becomes `to` (None when the move does not carry it).
fn moved_to(from: &Path, to: &Path, file: &Path) -> Option<PathBuf> {
    let rest = moved(from, file)?;
    Some(if rest.as_os_str().is_empty() {
        to.to_path_buf()
    } else {
        to.join(rest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(sent: u64, pending: u64, sending: u64, skipped: u64) -> Counts {
        Counts {
            sent,
            pending,
            sending,
            skipped,
            ..Counts::default()
        }
    }

    #[test]
    fn a_status_reads_the_counts() {
        let check = |counts: Counts, running: bool, expected: CampaignStatus| {
            assert_eq!(CampaignStatus::of(&counts, running), expected, "{counts:?}");
        };
        check(Counts::default(), false, CampaignStatus::Draft);
        check(counts(0, 5, 0, 0), false, CampaignStatus::Draft);
        check(counts(0, 3, 0, 1), false, CampaignStatus::Draft);
        check(counts(0, 5, 0, 0), true, CampaignStatus::Sending);
        check(counts(2, 3, 0, 0), false, CampaignStatus::Interrupted);
        check(counts(0, 3, 2, 0), false, CampaignStatus::Interrupted);
        check(counts(5, 0, 0, 1), false, CampaignStatus::Sent);
    }

    #[test]
    fn names_come_from_the_file_or_the_folder_that_names_it() {
        assert_eq!(
            name_of(Path::new("/c/spring-sale/campaign.toml")),
            "spring-sale"
        );
        assert_eq!(name_of(Path::new("/c/spring-sale/promo.toml")), "promo");
        assert_eq!(
            moved_to(
                Path::new("/c/a"),
                Path::new("/c/b"),
                Path::new("/c/a/campaign.toml")
            ),
            Some(PathBuf::from("/c/b/campaign.toml"))
        );
        assert_eq!(
            moved_to(
                Path::new("/c/a.toml"),
                Path::new("/c/b.toml"),
                Path::new("/c/a.toml")
            ),
            Some(PathBuf::from("/c/b.toml"))
        );
        assert_eq!(
            moved_to(
                Path::new("/c/a"),
                Path::new("/c/b"),
                Path::new("/c/ab/x.toml")
            ),
            None
        );
    }
}
