//! Refresh tokens in the operating system's keyring (through `credentials`, which owns the
//! keyring crate), split into pieces that fit every platform: Windows' Credential Manager keeps
//! at most 2,560 bytes a credential and `keyring` stores a password there as UTF-16, so a piece
//! is at most 1,000 characters (2,000 bytes); Microsoft's refresh tokens can be longer. Entry
//! `oauth2:NAME:CLIENT` holds `pieces=N`; `…#1` to `…#N` hold the text. The head is written
//! last, so a reader never sees a count whose pieces are not all there. `…#account` holds who
//! signed in (from the ID token), so the window can name the account without asking the
//! provider. Blocking calls; the caller runs them off the async threads.

use crate::credentials as secrets;

/// Characters per keyring entry: 2,000 bytes as UTF-16, under Windows' 2,560.
const PIECE_CHARS: usize = 1_000;
/// More pieces than any token needs; a head claiming more is taken as damaged.
const MAX_PIECES: usize = 64;

/// The keyring name of a grant: the campaign's name for it and the app registration it
/// belongs to, so two campaigns naming different apps alike do not share a token.
pub fn entry_name(grant: &str, client_id: &str) -> String {
    format!("oauth2:{grant}:{client_id}")
}

fn piece_name(entry: &str, index: usize) -> String {
    format!("{entry}#{index}")
}

fn account_name(entry: &str) -> String {
    format!("{entry}#account")
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

/// Stores `token` under `entry`; says where it went ("Saved in GNOME Keyring").
pub fn save(entry: &str, token: &str) -> Result<secrets::KeyringStore, String> {
    let chars: Vec<char> = token.chars().collect();
    let pieces: Vec<String> = chars
        .chunks(PIECE_CHARS)
        .map(|piece| piece.iter().collect())
        .collect();
    if pieces.is_empty() || pieces.len() > MAX_PIECES {
        return Err("the refresh token is empty or too long to keep".into());
    }
    for (index, piece) in pieces.iter().enumerate() {
        secrets::store(&piece_name(entry, index + 1), piece).map_err(no_keyring)?;
    }
    let stored = secrets::store(entry, &format!("pieces={}", pieces.len())).map_err(no_keyring)?;
    // Pieces of a longer token saved before would only go stale.
    for index in pieces.len() + 1..=MAX_PIECES {
        if !secrets::forget(&piece_name(entry, index)) {
            break;
        }
    }
    Ok(stored)
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

/// The token stored under `entry`, if whole.
pub fn load(entry: &str) -> Option<String> {
    let head = secrets::lookup(entry)?;
    let count: usize = head.strip_prefix("pieces=")?.parse().ok()?;
    if count == 0 || count > MAX_PIECES {
        return None;
    }
    let mut token = String::new();
    for index in 1..=count {
        token.push_str(&secrets::lookup(&piece_name(entry, index))?);
    }
    Some(token)
}

/// Forgets the token under `entry`; says whether there was one.
pub fn forget(entry: &str) -> bool {
    let had = secrets::forget(entry);
    secrets::forget(&account_name(entry));
    for index in 1..=MAX_PIECES {
        if !secrets::forget(&piece_name(entry, index)) && index > 1 {
            break;
        }
    }
    had
}
