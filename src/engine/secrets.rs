//! Relay passwords: looked up in the process environment first, then in the operating system's
//! keyring (where the window stores what the user types), under service "herald" and the name
//! the campaign's `password_env` gives. Owns the `keyring` crate. Never logs or returns a
//! password anywhere but to the SMTP session that needs it.

const SERVICE: &str = "herald";

/// The password stored under `name`: the environment variable of that name, else the keyring.
pub fn lookup(name: &str) -> Option<String> {
    if let Ok(value) = std::env::var(name) {
        return Some(value);
    }
    keyring::Entry::new(SERVICE, name)
        .ok()
        .and_then(|entry| entry.get_password().ok())
}

/// Whether a password is available under `name`.
pub fn is_available(name: &str) -> bool {
    lookup(name).is_some()
}

/// Stores `password` in the keyring under `name`. The error says what to do instead when this
/// system has no usable keyring.
pub fn store(name: &str, password: &str) -> Result<(), String> {
    let entry = keyring::Entry::new(SERVICE, name).map_err(|error| no_keyring(name, &error))?;
    entry
        .set_password(password)
        .map_err(|error| no_keyring(name, &error))?;
    // Some stores accept a write they cannot read back (no session keyring): check.
    match entry.get_password() {
        Ok(stored) if stored == password => Ok(()),
        _ => Err(no_keyring(
            name,
            &"the stored password could not be read back",
        )),
    }
}

fn no_keyring(name: &str, error: &dyn std::fmt::Display) -> String {
    format!(
        "no usable keyring on this system ({error}); set the environment variable {name} to the password before starting Herald"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_passwords_come_back_or_the_error_says_what_to_do() {
        let name = format!("HERALD_TEST_KEYRING_{}", std::process::id());
        match store(&name, "s3cret-value") {
            Ok(()) => assert_eq!(lookup(&name).as_deref(), Some("s3cret-value")),
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
}
