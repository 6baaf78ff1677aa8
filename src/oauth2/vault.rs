//! Refresh tokens in the operating system's keyring (through `credentials`, which owns the
//! keyring crate), split into pieces that fit every platform: Windows' Credential Manager keeps
//! at most 2,560 bytes a credential and `keyring` stores a password there as UTF-16, so a piece
//! is at most 1,000 characters (2,000 bytes); Microsoft's refresh tokens can be longer. Entry
//! `oauth2:NAME:CLIENT` is the head, `v2 slot=S pieces=N sum=X`: the pieces `…#S1` to `…#SN`
//! (slot `a` or `b`) hold the text, and X is a checksum of the whole. A save writes the slot the
//! head does not name and the head last, so another process reading meanwhile (the window and
//! a `herald send` share a grant) gets the old token whole, and a read that still meets a torn
//! token (the checksum does not add up) reads again rather than use it. Heads `pieces=N` over
//! `…#1` to `…#N` (the first format) are still read. `…#account` holds who signed in (from the
//! ID token), so the window can name the account without asking the provider. Blocking calls;
//! the caller runs them off the async threads.

use crate::credentials as secrets;

/// Characters per keyring entry: 2,000 bytes as UTF-16, under Windows' 2,560.
const PIECE_CHARS: usize = 1_000;
/// More pieces than any token needs; a head claiming more is taken as damaged.
const MAX_PIECES: usize = 64;
/// How often a reader tries again when it read a token while another process was writing it.
const READ_ATTEMPTS: usize = 10;
/// The two slots the pieces alternate between.
const SLOTS: [char; 2] = ['a', 'b'];

/// The keyring name of a grant: the campaign's name for it and the app registration it
/// belongs to, so two campaigns naming different apps alike do not share a token.
pub fn entry_name(grant: &str, client_id: &str) -> String {
    format!("oauth2:{grant}:{client_id}")
}

/// A piece of the token: `slot` is `None` for the first format (`pieces=N`, no checksum),
/// still read so a sign-in kept by an older Herald is not lost.
fn piece_name(entry: &str, slot: Option<char>, index: usize) -> String {
    match slot {
        Some(slot) => format!("{entry}#{slot}{index}"),
        None => format!("{entry}#{index}"),
    }
}

fn account_name(entry: &str) -> String {
    format!("{entry}#account")
}

/// What the head entry says: where the pieces are, how many, and the checksum of the whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    slot: Option<char>,
    pieces: usize,
    checksum: Option<u64>,
}

impl Head {
    fn parse(text: &str) -> Option<Head> {
        if let Some(count) = text.strip_prefix("pieces=") {
            return Head::checked(None, count.parse().ok()?, None);
        }
        // `v2 slot=a pieces=3 sum=0123456789abcdef`
        let mut fields = text.split(' ');
        if fields.next()? != "v2" {
            return None;
        }
        let mut slot = None;
        let mut pieces = None;
        let mut checksum = None;
        for field in fields {
            match field.split_once('=')? {
                ("slot", value) => slot = value.chars().next().filter(|c| SLOTS.contains(c)),
                ("pieces", value) => pieces = value.parse().ok(),
                ("sum", value) => checksum = u64::from_str_radix(value, 16).ok(),
                _ => {}
            }
        }
        Head::checked(Some(slot?), pieces?, Some(checksum?))
    }

    fn checked(slot: Option<char>, pieces: usize, checksum: Option<u64>) -> Option<Head> {
        (1..=MAX_PIECES).contains(&pieces).then_some(Head {
            slot,
            pieces,
            checksum,
        })
    }

    fn text(&self) -> String {
        format!(
            "v2 slot={} pieces={} sum={:016x}",
            self.slot.unwrap_or(SLOTS[0]),
            self.pieces,
            self.checksum.unwrap_or(0)
        )
    }
}

/// FNV-1a (64 bits) of the token: not a defence against anyone, only a way to tell a token read
/// whole from one read while another process replaced it.
fn checksum(token: &str) -> u64 {
    token.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Keeps who signed in beside the token under `entry` (or forgets a previous one: a sign-in
/// whose provider did not say who must not show the last account's name).
pub fn save_account(entry: &str, account: Option<&str>) -> Result<(), String> {
    match account {
        Some(account) => secrets::store(&account_name(entry), account)
            .map(|_| ())
            .map_err(no_keyring),
        None => {
            secrets::forget(&account_name(entry));
            Ok(())
        }
    }
}

/// Who signed in to the token under `entry`, when the provider said and a token is kept.
pub fn account(entry: &str) -> Option<String> {
    secrets::lookup(&account_name(entry))
}

/// Stores `token` under `entry`; says where it went ("Saved in GNOME Keyring"). The pieces go
/// to the slot the head does not name, then the head switches to them: a reader (another
/// process) meanwhile reads the previous token whole, and a save cut short leaves it intact.
pub fn save(entry: &str, token: &str) -> Result<secrets::KeyringStore, String> {
    let chars: Vec<char> = token.chars().collect();
    let pieces: Vec<String> = chars
        .chunks(PIECE_CHARS)
        .map(|piece| piece.iter().collect())
        .collect();
    if pieces.is_empty() || pieces.len() > MAX_PIECES {
        return Err("the refresh token is empty or too long to keep".into());
    }
    let previous = secrets::lookup(entry).and_then(|text| Head::parse(&text));
    let slot = match previous.and_then(|head| head.slot) {
        Some(slot) if slot == SLOTS[0] => SLOTS[1],
        _ => SLOTS[0],
    };
    for (index, piece) in pieces.iter().enumerate() {
        secrets::store(&piece_name(entry, Some(slot), index + 1), piece).map_err(no_keyring)?;
    }
    // Pieces of a longer token kept in this slot before would only go stale.
    forget_pieces(entry, Some(slot), pieces.len() + 1);
    let head = Head {
        slot: Some(slot),
        pieces: pieces.len(),
        checksum: Some(checksum(token)),
    };
    let stored = secrets::store(entry, &head.text()).map_err(no_keyring)?;
    // The token replaced (already used up at the provider when it rotated) goes.
    if let Some(previous) = previous
        && previous.slot != Some(slot)
    {
        forget_pieces(entry, previous.slot, 1);
    }
    Ok(stored)
}

/// Forgets the pieces of `slot` from `from` on, up to the first one missing.
fn forget_pieces(entry: &str, slot: Option<char>, from: usize) {
    for index in from..=MAX_PIECES {
        if !secrets::forget(&piece_name(entry, slot, index)) {
            break;
        }
    }
}

/// The keyring's refusal without its advice about environment variables, which cannot hold a
/// refresh token that changes as it is used.
fn no_keyring(error: String) -> String {
    let reason = error
        .split("; set the environment variable")
        .next()
        .unwrap_or(&error)
        .to_string();
    format!("{reason}; start GNOME Keyring or KWallet (a Secret Service) and sign in again")
}

/// The token stored under `entry`, if whole. A read that meets a save in another process (a
/// piece gone, or pieces that do not add up to the head's checksum) is tried again; a token
/// that never adds up is not returned at all, never half old and half new.
pub fn load(entry: &str) -> Option<String> {
    for attempt in 0..READ_ATTEMPTS {
        let head = Head::parse(&secrets::lookup(entry)?)?;
        if let Some(token) = read_pieces(entry, head) {
            return Some(token);
        }
        if attempt + 1 < READ_ATTEMPTS {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    tracing::warn!(
        entry,
        "the refresh token in the keyring does not add up; sign in again"
    );
    None
}

fn read_pieces(entry: &str, head: Head) -> Option<String> {
    let mut token = String::new();
    for index in 1..=head.pieces {
        token.push_str(&secrets::lookup(&piece_name(entry, head.slot, index))?);
    }
    match head.checksum {
        Some(sum) if sum != checksum(&token) => None,
        _ => Some(token),
    }
}

/// Held while this process refreshes the token under `entry` (released when dropped). Every
/// Herald process using the grant (the window, a `herald send`, another run) refreshes one at a
/// time and reads the keyring under the lock, so none of them sends the provider a refresh
/// token another has just rotated away. An empty lock means the lock file could not be used;
/// the refresh then goes ahead unguarded, as it did before the lock existed.
#[derive(Debug, Default)]
pub struct RefreshLock {
    _held: Option<std::fs::File>,
}

/// The lock file of `entry`: in the user's runtime directory where there is one (Linux), else
/// in the temporary directory; named by a hash, so the grant's name never reaches the disk.
fn lock_path(entry: &str) -> std::path::PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(std::path::PathBuf::from)
        .filter(|dir| dir.is_dir())
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("herald-oauth2-{:016x}.lock", checksum(entry)))
}

/// Takes the refresh lock of `entry`, waiting at most `limit` for another process to finish
/// its refresh (blocking).
pub fn lock_for_refresh(entry: &str, limit: std::time::Duration) -> RefreshLock {
    let path = lock_path(entry);
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .or_else(|_| std::fs::File::open(&path));
    let file = match opened {
        Ok(file) => file,
        Err(error) => {
            tracing::warn!(%error, "no refresh lock file; refreshing without it");
            return RefreshLock { _held: None };
        }
    };
    let deadline = std::time::Instant::now() + limit;
    loop {
        match file.try_lock() {
            Ok(()) => {
                return RefreshLock { _held: Some(file) };
            }
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            Err(error) => {
                tracing::warn!(%error, "the refresh lock was not free in time; refreshing without it");
                return RefreshLock { _held: None };
            }
        }
    }
}

/// Forgets the token under `entry`; says whether there was one.
pub fn forget(entry: &str) -> bool {
    let had = secrets::forget(entry);
    secrets::forget(&account_name(entry));
    for slot in [None, Some(SLOTS[0]), Some(SLOTS[1])] {
        forget_pieces(entry, slot, 1);
    }
    had
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read_in_both_formats_and_damaged_ones_refused() {
        let check = |text: &str, expected: Option<(Option<char>, usize, Option<u64>)>| {
            assert_eq!(
                Head::parse(text).map(|head| (head.slot, head.pieces, head.checksum)),
                expected,
                "{text}"
            );
        };
        check("pieces=3", Some((None, 3, None)));
        check(
            "v2 slot=b pieces=2 sum=00000000000000ff",
            Some((Some('b'), 2, Some(255))),
        );
        check("v2 slot=c pieces=2 sum=ff", None);
        check("v2 slot=a pieces=2", None);
        check("v2 slot=a pieces=0 sum=1", None);
        check("pieces=65", None);
        check("v3 slot=a pieces=1 sum=1", None);
        check("nonsense", None);
        let head = Head {
            slot: Some('a'),
            pieces: 5,
            checksum: Some(checksum("token")),
        };
        assert_eq!(Head::parse(&head.text()), Some(head));
        assert_ne!(checksum("ab"), checksum("ba"));
    }
}
