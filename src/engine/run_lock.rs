//! One run per campaign at a time (issue #12): a run holds an exclusive advisory lock on a
//! small file beside the database, one file per campaign, for as long as it lives. The
//! operating system releases the lock when the process ends however it ends (`kill -9`
//! included), so a lock that can be taken proves that no other run of the campaign is alive,
//! and only then are rows left in `sending` recovered as in flight. The file also says who holds
//! it (pid, host, since when) so that a refused run can name the other one. Never touches SQL.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::store::{CampaignId, now_ms};

/// Why a run could not take its campaign's lock.
#[derive(Debug, thiserror::Error)]
pub enum RunLockError {
    #[error(
        "this campaign is already being sent by another run ({holder}); wait for it to finish or stop it, then try again"
    )]
    Busy { holder: String },
    #[error("could not use the run lock file: {source} ({})", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Held while a run of one campaign lives; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// The lock file of `campaign` in the database at `db`: `herald.db.campaign-7.lock`.
pub fn lock_path(db: &Path, campaign: CampaignId) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".campaign-{campaign}.lock"));
    db.with_file_name(name)
}

impl RunLock {
    /// Takes the campaign's lock without waiting, or says which run holds it.
    pub fn acquire(db: &Path, campaign: CampaignId) -> Result<RunLock, RunLockError> {
        let path = lock_path(db, campaign);
        let io = |source| RunLockError::Io {
            path: path.clone(),
            source,
        };
        // Not truncated on open: the holder's details stay readable until we hold the lock.
        let mut file = open_private(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(RunLockError::Busy {
                    holder: describe(&text, now_ms()),
                });
            }
            Err(TryLockError::Error(error)) => return Err(io(error)),
        }
        let holder = format!(
            "pid={}\nhost={}\nsince_ms={}\n",
            std::process::id(),
            host_name(),
            now_ms()
        );
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(holder.as_bytes()))
            .map_err(io)?;
        Ok(RunLock { _file: file })
    }
}

fn open_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// This machine's name, for the lock file (a run on another machine sharing the folder).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "this computer".to_string())
}

/// "pid 4242 on mail-pc, since 09:31:05 UTC (3 min ago)" from the lock file's text.
fn describe(text: &str, now_ms: i64) -> String {
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    let (Some(pid), Some(host)) = (field("pid"), field("host")) else {
        return "it is just starting".to_string();
    };
    let since = field("since_ms")
        .and_then(|ms| ms.parse::<i64>().ok())
        .map(|since| {
            let secs_of_day = (since / 1000).rem_euclid(86_400);
            // The file is another process's words: a damaged time must not overflow.
            let ago_secs = now_ms.saturating_sub(since).max(0) / 1000;
            let ago = if ago_secs < 120 {
                format!("{ago_secs} s ago")
            } else if ago_secs < 7_200 {
                format!("{} min ago", ago_secs / 60)
            } else {
                format!("{} h ago", ago_secs / 3_600)
            };
            format!(
                ", since {:02}:{:02}:{:02} UTC ({ago})",
                secs_of_day / 3_600,
                secs_of_day / 60 % 60,
                secs_of_day % 60
            )
        })
        .unwrap_or_default();
    format!("pid {pid} on {host}{since}")
}

#[cfg(test)]
mod tests {
    use super::{RunLock, RunLockError, describe, lock_path};
    use std::path::Path;

    #[test]
    fn the_lock_file_sits_beside_the_database_per_campaign() {
        assert_eq!(
            lock_path(Path::new("/data/herald.db"), 7),
            Path::new("/data/herald.db.campaign-7.lock")
        );
    }

    #[test]
    fn the_holder_is_described_by_pid_host_and_start() {
        let started = 9 * 3_600_000 + 31 * 60_000 + 5_000;
        let text = format!("pid=4242\nhost=mail-pc\nsince_ms={started}\n");
        assert_eq!(
            describe(&text, started + 180_000),
            "pid 4242 on mail-pc, since 09:31:05 UTC (3 min ago)"
        );
        assert_eq!(describe("", 0), "it is just starting");
    }

    #[test]
    fn a_second_lock_on_the_same_campaign_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let db = dir.path().join("herald.db");
        let first = RunLock::acquire(&db, 1).unwrap_or_else(|error| panic!("{error}"));
        match RunLock::acquire(&db, 1) {
            Err(RunLockError::Busy { holder }) => {
                assert!(
                    holder.contains(&format!("pid {}", std::process::id())),
                    "{holder}"
                );
            }
            other => panic!("expected busy, got {other:?}"),
        }
        // Another campaign of the same database is not held up.
        let other = RunLock::acquire(&db, 2);
        assert!(other.is_ok(), "{other:?}");
        drop(first);
        assert!(RunLock::acquire(&db, 1).is_ok());
    }
}
