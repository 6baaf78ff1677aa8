//! Credentials, a capability with one owner (a leaf: imports nothing of Herald's): relay and
//! mailbox passwords, looked up in the process environment first, then in the operating system's
//! keyring (where the window, or `herald password`, stores what the user types), under service
//! "herald" and the name the campaign's `password_env` gives. Owns the `keyring` and `zbus`
//! crates; OAuth2 grants (their refresh tokens live in the same keyring) belong here too. Never logs or returns a password anywhere but to the SMTP session that needs it.
//!
//! On Linux the keyring is the Secret Service (GNOME Keyring, KWallet, KeePassXC…), which keeps
//! passwords on disk; only when none runs on the session bus does a password go to the kernel's
//! keyutils store, which keeps it in memory until reboot, and [`KeyringStore`] says which one
//! took it. Every Secret Service call runs on a thread of its own with a time limit: keyring's
//! D-Bus client blocks on a tokio runtime of its own, which must not be entered from the
//! engine's runtime threads, and a locked keyring may wait for the user to unlock it.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

const SERVICE: &str = "herald";

/// Where a password the user keeps is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyringStore {
    /// A Secret Service: on disk, unlocked with the user's login. `provider` names it
    /// ("GNOME Keyring", "KWallet", "the Secret Service" when it cannot tell).
    SecretService { provider: String },
    /// The Linux kernel's keyutils store: in memory, gone at the next reboot. `why` says why not
    /// the Secret Service ("no Secret Service running").
    UntilReboot { why: String },
    /// The operating system's own credential store (macOS Keychain, Windows Credential Manager).
    System,
}

impl KeyringStore {
    /// Whether a password kept there is still there after a reboot.
    pub fn survives_reboot(&self) -> bool {
        !matches!(self, KeyringStore::UntilReboot { .. })
    }

    /// What the window shows after a save: "Saved in GNOME Keyring", "Saved until reboot (no
    /// Secret Service running)".
    pub fn saved_text(&self) -> String {
        match self {
            KeyringStore::SecretService { provider } => format!("Saved in {provider}"),
            KeyringStore::UntilReboot { why } => format!("Saved until reboot ({why})"),
            KeyringStore::System => "Saved in the system keychain".to_string(),
        }
    }
}

/// The password stored under `name`: the environment variable of that name, else the keyring.
pub fn lookup(name: &str) -> Option<String> {
    if let Ok(value) = std::env::var(name) {
        return Some(value);
    }
    platform::lookup(name)
}

/// Whether a password is available under `name`.
pub fn is_available(name: &str) -> bool {
    lookup(name).is_some()
}

/// Stores `password` in the keyring under `name`; says which store took it. The error says
/// what to do instead when this system has no usable keyring.
pub fn store(name: &str, password: &str) -> Result<KeyringStore, String> {
    platform::store(name, password).map_err(|error| no_keyring(name, &error))
}

/// Removes what the keyring holds under `name` (every store it may be in); says whether
/// something was there. The environment is left alone.
pub fn forget(name: &str) -> bool {
    platform::forget(name)
}

fn delete(entry: &keyring::Entry) -> bool {
    let _guard = KEYRING.lock().unwrap_or_else(PoisonError::into_inner);
    entry.delete_credential().is_ok()
}

/// Where [`store`] would keep a password now.
pub fn current_store() -> KeyringStore {
    platform::current_store()
}

fn no_keyring(name: &str, error: &dyn std::fmt::Display) -> String {
    format!(
        "no usable keyring on this system ({error}); set the environment variable {name} to the password before starting Herald"
    )
}

/// Keyring stores may fail when used from several threads at once (keyring's own caveat):
/// every call goes through this lock.
static KEYRING: Mutex<()> = Mutex::new(());

/// Stores through `entry` and reads the password back: some stores accept a write they cannot
/// read back (no session keyring).
fn set_and_check(entry: &keyring::Entry, password: &str) -> Result<(), String> {
    let _guard = KEYRING.lock().unwrap_or_else(PoisonError::into_inner);
    entry.set_password(password).map_err(|e| e.to_string())?;
    match entry.get_password() {
        Ok(stored) if stored == password => Ok(()),
        _ => Err("the stored password could not be read back".to_string()),
    }
}

fn get(entry: &keyring::Entry) -> Option<String> {
    let _guard = KEYRING.lock().unwrap_or_else(PoisonError::into_inner);
    entry.get_password().ok()
}

#[cfg(target_os = "linux")]
mod platform {
    use std::time::Duration;

    use keyring::Entry;
    use keyring::keyutils::KeyutilsCredential;
    use keyring::secret_service::SsCredential;
    use zbus::blocking::Connection;
    use zbus::blocking::fdo::DBusProxy;
    use zbus::names::BusName;

    use super::{KeyringStore, SERVICE, delete, get, off_thread, set_and_check};

    /// Finding out whether a Secret Service runs: a local D-Bus answers in milliseconds.
    const PROBE_LIMIT: Duration = Duration::from_secs(5);
    /// Reading a password: the keyring may be locked and ask the user to unlock it.
    const READ_LIMIT: Duration = Duration::from_secs(30);
    /// Saving one: the same, and a new collection may be created (with a prompt).
    const WRITE_LIMIT: Duration = Duration::from_secs(90);

    /// The D-Bus name a Secret Service owns (Secret Service API, "Object paths and names").
    const SECRETS: &str = "org.freedesktop.secrets";
    /// Names the known providers own beside it.
    const PROVIDERS: &[(&str, &str)] = &[
        ("org.gnome.keyring", "GNOME Keyring"),
        ("org.kde.kwalletd6", "KWallet"),
        ("org.kde.kwalletd5", "KWallet"),
        ("org.keepassxc.KeePassXC.MainWindow", "KeePassXC"),
    ];

    /// The Secret Service on the session bus, by name, or why there is none. A service the bus
    /// can start on demand (D-Bus activation) counts: the first call starts it.
    fn secret_service() -> Result<String, String> {
        off_thread(PROBE_LIMIT, || {
            let no_service = |_| "no Secret Service running".to_string();
            let connection = Connection::session().map_err(no_service)?;
            let bus = DBusProxy::new(&connection).map_err(no_service)?;
            let owned = |name: &str| {
                BusName::try_from(name)
                    .ok()
                    .and_then(|name| bus.name_has_owner(name).ok())
                    .unwrap_or(false)
            };
            let running = owned(SECRETS);
            if !running {
                let activatable = bus
                    .list_activatable_names()
                    .map(|names| names.iter().any(|name| name.as_str() == SECRETS))
                    .unwrap_or(false);
                if !activatable {
                    return Err("no Secret Service running".to_string());
                }
            }
            let provider = PROVIDERS
                .iter()
                .find(|(name, _)| owned(name))
                .map_or("the Secret Service", |(_, provider)| provider);
            Ok(provider.to_string())
        })
    }

    fn secret_service_entry(name: &str) -> Result<Entry, String> {
        SsCredential::new_with_target(None, SERVICE, name)
            .map(|credential| Entry::new_with_credential(Box::new(credential)))
            .map_err(|error| error.to_string())
    }

    fn kernel_entry(name: &str) -> Result<Entry, String> {
        KeyutilsCredential::new_with_target(None, SERVICE, name)
            .map(|credential| Entry::new_with_credential(Box::new(credential)))
            .map_err(|error| error.to_string())
    }

    pub(super) fn lookup(name: &str) -> Option<String> {
        if secret_service().is_ok() {
            let owned = name.to_string();
            let found = off_thread(READ_LIMIT, move || {
                secret_service_entry(&owned).map(|entry| get(&entry))
            });
            if let Ok(Some(password)) = found {
                return Some(password);
            }
        }
        // Saved while no Secret Service ran, and not rebooted since.
        kernel_entry(name).ok().and_then(|entry| get(&entry))
    }

    pub(super) fn store(name: &str, password: &str) -> Result<KeyringStore, String> {
        let why = match secret_service() {
            Ok(provider) => {
                let (owned, secret) = (name.to_string(), password.to_string());
                let saved = off_thread(WRITE_LIMIT, move || {
                    set_and_check(&secret_service_entry(&owned)?, &secret)
                });
                match saved {
                    Ok(()) => {
                        // A copy kept until reboot from before would only go stale.
                        if let Ok(entry) = kernel_entry(name) {
                            let _ = entry.delete_credential();
                        }
                        // Started on demand, it may only now own its provider's name.
                        let provider = secret_service().unwrap_or(provider);
                        return Ok(KeyringStore::SecretService { provider });
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the Secret Service refused a password");
                        format!("{provider} refused it: {error}")
                    }
                }
            }
            Err(why) => why,
        };
        kernel_entry(name)
            .and_then(|entry| set_and_check(&entry, password))
            .map_err(|error| format!("{why}, and the kernel keyring failed: {error}"))?;
        Ok(KeyringStore::UntilReboot { why })
    }

    pub(super) fn forget(name: &str) -> bool {
        let mut found = false;
        if secret_service().is_ok() {
            let owned = name.to_string();
            found = off_thread(WRITE_LIMIT, move || {
                secret_service_entry(&owned).map(|entry| delete(&entry))
            })
            .unwrap_or(false);
        }
        let kernel = kernel_entry(name).is_ok_and(|entry| delete(&entry));
        found || kernel
    }

    pub(super) fn current_store() -> KeyringStore {
        match secret_service() {
            Ok(provider) => KeyringStore::SecretService { provider },
            Err(why) => KeyringStore::UntilReboot { why },
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use super::{KeyringStore, SERVICE, delete, get, set_and_check};

    pub(super) fn forget(name: &str) -> bool {
        keyring::Entry::new(SERVICE, name)
            .ok()
            .is_some_and(|entry| delete(&entry))
    }

    pub(super) fn lookup(name: &str) -> Option<String> {
        keyring::Entry::new(SERVICE, name)
            .ok()
            .and_then(|entry| get(&entry))
    }

    pub(super) fn store(name: &str, password: &str) -> Result<KeyringStore, String> {
        let entry = keyring::Entry::new(SERVICE, name).map_err(|error| error.to_string())?;
        set_and_check(&entry, password)?;
        Ok(KeyringStore::System)
    }

    pub(super) fn current_store() -> KeyringStore {
        KeyringStore::System
    }
}

/// Runs `work` on a thread of its own and waits at most `limit` for it; a thread that runs
/// over is left to finish alone (its answer is dropped).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn off_thread<T: Send + 'static>(
    limit: Duration,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (answer, answered) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("herald-keyring".into())
        .spawn(move || {
            let _ = answer.send(work());
        })
        .map_err(|error| error.to_string())?;
    answered
        .recv_timeout(limit)
        .map_err(|_| format!("the keyring did not answer within {} s", limit.as_secs()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_passwords_come_back_or_the_error_says_what_to_do() {
        let name = format!("HERALD_TEST_KEYRING_{}", std::process::id());
        match store(&name, "s3cret-value") {
            Ok(store) => {
                assert_eq!(lookup(&name).as_deref(), Some("s3cret-value"));
                assert!(store.saved_text().starts_with("Saved "), "{store:?}");
            }
            Err(error) => {
                assert!(
                    error.contains(&format!("set the environment variable {name}")),
                    "{error}"
                );
                assert!(
                    !error.contains("s3cret-value"),
                    "the password leaked: {error}"
                );
            }
        }
    }

    #[test]
    fn the_environment_comes_first() {
        let name = format!("HERALD_TEST_ENV_FIRST_{}", std::process::id());
        // SAFETY: a variable unique to this test process and test.
        unsafe { std::env::set_var(&name, "from-env") };
        assert_eq!(lookup(&name).as_deref(), Some("from-env"));
        assert!(is_available(&name));
        assert!(!is_available("HERALD_TEST_SURELY_UNSET_VARIABLE"));
    }

    #[test]
    fn the_window_is_told_whether_a_reboot_forgets() {
        let cases = [
            (
                KeyringStore::SecretService {
                    provider: "GNOME Keyring".into(),
                },
                "Saved in GNOME Keyring",
                true,
            ),
            (
                KeyringStore::UntilReboot {
                    why: "no Secret Service running".into(),
                },
                "Saved until reboot (no Secret Service running)",
                false,
            ),
            (KeyringStore::System, "Saved in the system keychain", true),
        ];
        for (store, text, survives) in cases {
            assert_eq!(store.saved_text(), text);
            assert_eq!(store.survives_reboot(), survives, "{store:?}");
        }
    }

    #[test]
    fn a_slow_keyring_is_given_up_on() {
        let answer = off_thread(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_secs(2));
            Ok(1)
        });
        let error = answer.unwrap_err();
        assert!(
            error.starts_with("the keyring did not answer within"),
            "{error}"
        );
    }
}
