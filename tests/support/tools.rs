//! Tests that need a tool from outside (Postfix, openssl, saslpasswd2, Dovecot) go through one
//! decision: where the tool is missing they skip with a reason on a developer's machine, but
//! when `CI=true` they fail, so that a broken install step in `.ci/run` can never turn CI green
//! with part of the suite skipped (issue #12). Test-only.

/// Whether this run is CI's (`CI=true`, as `.ci/run` exports it).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

/// Returns true when the test should skip because `missing` names what it lacks; under CI a
/// missing tool fails the test instead.
pub fn skip_if_missing(missing: Option<String>) -> bool {
    decide(missing, in_ci())
}

/// The decision itself, with CI's flag passed in so that it can be tested.
pub fn decide(missing: Option<String>, ci: bool) -> bool {
    match missing {
        None => false,
        Some(reason) if ci => {
            panic!("{reason}; CI=true, so a missing tool fails the test instead of skipping it")
        }
        Some(reason) => {
            eprintln!("skipped: {reason}");
            true
        }
    }
}
