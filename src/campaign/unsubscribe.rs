//! The `[unsubscribe]` section (issue #15): where signed one-click links point (`url`, with a
//! `{token}` placeholder), and the endpoint Herald pulls recorded unsubscribes from before every
//! send (`endpoint`, with an optional `token_env` naming the variable that holds the bearer
//! secret, the value the endpoint takes with `--token-env`; by default it is derived from the
//! database's key, see the README) and `ca_file`, the CA that issued the endpoint's certificate
//! when it is not a public one (as for relays). Pure validation, apart from checking that the
//! CA file exists.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `[unsubscribe]` exactly as written.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
pub struct RawUnsubscribe {
    pub url: Option<String>,
    pub endpoint: Option<String>,
    pub token_env: Option<String>,
    pub ca_file: Option<String>,
}

pub(super) const UNSUBSCRIBE_KEYS: &[&str] = &["url", "endpoint", "token_env", "ca_file"];

/// The placeholder in `url` that each recipient's signed token replaces.
pub const TOKEN_PLACEHOLDER: &str = "{token}";

/// A validated `[unsubscribe]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeSpec {
    /// The link pattern, e.g. `https://u.acme.example/u/{token}`.
    pub url: Option<String>,
    /// The endpoint's base URL, e.g. `https://u.acme.example` (no trailing slash).
    pub endpoint: Option<String>,
    /// The environment variable holding the pull's bearer secret, when not derived.
    pub token_env: Option<String>,
    /// A PEM file of the CA that issued the endpoint's certificate, trusted for the pull
    /// beside the public roots (relative paths are the campaign file's).
    pub ca_file: Option<PathBuf>,
}

impl UnsubscribeSpec {
    /// The link for one recipient's token.
    pub fn link(&self, token: &str) -> Option<String> {
        self.url
            .as_deref()
            .map(|url| url.replace(TOKEN_PLACEHOLDER, token))
    }
}

/// Validates the section; problems come back as (key, reason).
pub(super) fn build(
    raw: &RawUnsubscribe,
    base: &Path,
    env_is_set: &dyn Fn(&str) -> bool,
) -> (UnsubscribeSpec, Vec<(String, String)>) {
    let mut problems = Vec::new();
    let url = raw.url.as_deref().map(str::trim).filter(|v| !v.is_empty());
    if let Some(url) = url {
        if let Some(reason) = url_problem(url) {
            problems.push(("unsubscribe.url".to_string(), reason));
        } else if url.matches(TOKEN_PLACEHOLDER).count() != 1 {
            problems.push((
                "unsubscribe.url".to_string(),
                format!("must contain {TOKEN_PLACEHOLDER} once, where each recipient's signed token goes"),
            ));
        }
    }
    let endpoint = raw
        .endpoint
        .as_deref()
        .map(|value| value.trim().trim_end_matches('/'))
        .filter(|v| !v.is_empty());
    if let Some(reason) = endpoint.and_then(url_problem) {
        problems.push(("unsubscribe.endpoint".to_string(), reason));
    }
    let token_env = raw
        .token_env
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    if let Some(name) = token_env
        && !env_is_set(name)
    {
        problems.push((
            "unsubscribe.token_env".to_string(),
            format!("the environment variable {name} is not set"),
        ));
    }
    if token_env.is_some() && endpoint.is_none() {
        problems.push((
            "unsubscribe.token_env".to_string(),
            "is set but unsubscribe.endpoint is not; name the endpoint to pull from".to_string(),
        ));
    }
    let ca_file = raw.ca_file.as_deref().map(|file| {
        let path = base.join(file.trim());
        if file.trim().is_empty() {
            problems.push((
                "unsubscribe.ca_file".to_string(),
                "is empty; give a file name".to_string(),
            ));
        } else if !path.is_file() {
            problems.push((
                "unsubscribe.ca_file".to_string(),
                format!("the file does not exist ({})", path.display()),
            ));
        } else if endpoint.is_none() {
            problems.push((
                "unsubscribe.ca_file".to_string(),
                "is set but unsubscribe.endpoint is not; the CA is for the endpoint's certificate"
                    .to_string(),
            ));
        }
        path
    });
    (
        UnsubscribeSpec {
            url: url.map(str::to_string),
            endpoint: endpoint.map(str::to_string),
            token_env: token_env.map(str::to_string),
            ca_file,
        },
        problems,
    )
}

/// Why `url` cannot be a one-click target: RFC 8058 §3.1 requires HTTPS. Plain HTTP is
/// accepted for loopback only (tests, a local trial).
fn url_problem(url: &str) -> Option<String> {
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
    {
        return Some("must not contain spaces, control characters or angle brackets".into());
    }
    let lower = url.to_ascii_lowercase();
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|prefix| {
            lower.starts_with(prefix)
                && matches!(lower.as_bytes().get(prefix.len()), None | Some(b':' | b'/'))
        });
    let host_part = lower.strip_prefix("https://").unwrap_or("");
    if !(loopback || (!host_part.is_empty() && !host_part.starts_with('/'))) {
        return Some(
            "must be an https:// URL (RFC 8058 one-click needs HTTPS; http:// only for 127.0.0.1 or localhost)"
                .into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(url: Option<&str>, endpoint: Option<&str>) -> RawUnsubscribe {
        RawUnsubscribe {
            url: url.map(Into::into),
            endpoint: endpoint.map(Into::into),
            token_env: None,
            ca_file: None,
        }
    }

    #[test]
    fn a_signed_link_pattern_is_checked() {
        let (spec, problems) = build(
            &raw(
                Some("https://u.acme.example/u/{token}"),
                Some("https://u.acme.example/"),
            ),
            Path::new("."),
            &|_| true,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(spec.endpoint.as_deref(), Some("https://u.acme.example"));
        assert_eq!(
            spec.link("c.1.ab").as_deref(),
            Some("https://u.acme.example/u/c.1.ab")
        );
        for bad in [
            "https://u.acme.example/u/",
            "http://u.acme.example/u/{token}",
            "https://u.acme.example/u/{token}/{token}",
            "https://u.acme.example/u/{token} x",
            "http://localhost.evil.example/{token}",
        ] {
            let (_, problems) = build(&raw(Some(bad), None), Path::new("."), &|_| true);
            assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
            assert_eq!(problems[0].0, "unsubscribe.url");
        }
        let (_, problems) = build(
            &raw(Some("http://127.0.0.1:8080/u/{token}"), None),
            Path::new("."),
            &|_| true,
        );
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn the_bearer_variable_must_be_set() {
        let mut section = raw(None, Some("https://u.acme.example"));
        section.token_env = Some("HERALD_PULL".into());
        let (_, problems) = build(&section, Path::new("."), &|_| false);
        assert_eq!(problems[0].0, "unsubscribe.token_env");
        let (spec, problems) = build(&section, Path::new("."), &|_| true);
        assert!(problems.is_empty());
        assert_eq!(spec.token_env.as_deref(), Some("HERALD_PULL"));
    }

    #[test]
    fn the_ca_file_must_exist_and_serve_an_endpoint() {
        let dir = std::env::temp_dir();
        let mut section = raw(None, Some("https://u.acme.example"));
        section.ca_file = Some("surely-not-here-ca.pem".into());
        let (_, problems) = build(&section, &dir, &|_| true);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "unsubscribe.ca_file");
        assert!(problems[0].1.contains("does not exist"), "{problems:?}");
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        section.ca_file = Some("Cargo.toml".into());
        let (spec, problems) = build(&section, here, &|_| true);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(spec.ca_file, Some(here.join("Cargo.toml")));
        section.endpoint = None;
        let (_, problems) = build(&section, here, &|_| true);
        assert_eq!(problems[0].0, "unsubscribe.ca_file");
    }
}
