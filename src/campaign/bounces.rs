//! `[bounces]`: the campaign's bounce mailbox (issue #13). Where bounces, complaints and
//! unsubscribe requests come back (an IMAP account and folder), the return path whose
//! `+TAG` form Herald puts on every message's envelope (VERP), and how many soft bounces in a
//! row suppress an address. The raw keys, their validation and the validated spec; nothing here
//! connects or reads a password.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Security;
use super::validate::Collector;

/// `[bounces]` exactly as written.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
pub struct RawBounces {
    pub host: Option<String>,
    pub port: Option<i64>,
    pub security: Option<String>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    /// Names an `[oauth2.NAME]` section to sign in with instead of a password.
    pub oauth2: Option<String>,
    pub ca_file: Option<String>,
    pub folder: Option<String>,
    pub processed_folder: Option<String>,
    pub return_path: Option<String>,
    pub soft_limit: Option<i64>,
}

pub(super) const BOUNCES_KEYS: &[&str] = &[
    "host",
    "port",
    "security",
    "username",
    "password_env",
    "oauth2",
    "ca_file",
    "folder",
    "processed_folder",
    "return_path",
    "soft_limit",
];

/// The keyring name the window keeps a mailbox password under when the file names none.
pub const DEFAULT_PASSWORD_NAME: &str = "HERALD_BOUNCES_PASSWORD";

impl RawBounces {
    /// The port an IMAP server listens on for `security` (RFC 8314 §3.3: 993 is implicit TLS;
    /// 143 is IMAP with or without STARTTLS).
    pub fn default_port(security: Security) -> u16 {
        match security {
            Security::Tls => 993,
            Security::StartTls | Security::None => 143,
        }
    }

    /// The environment variable or keyring entry the mailbox password is read from: the one
    /// `password_env` names, else the window's default name.
    pub fn password_name(&self) -> String {
        self.password_env
            .clone()
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_PASSWORD_NAME.to_string())
    }
}

/// The validated `[bounces]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BouncesSpec {
    pub host: String,
    pub port: u16,
    /// Implicit TLS (993) by default; STARTTLS (143); plain text only when asked for.
    pub security: Security,
    pub username: String,
    /// The environment variable (or keyring entry) holding the mailbox password; empty when
    /// the mailbox signs in with `oauth2`.
    pub password_env: String,
    /// The `[oauth2.NAME]` grant the mailbox signs in with instead (SASL XOAUTH2).
    pub oauth2: Option<String>,
    pub ca_file: Option<PathBuf>,
    /// The folder bounces arrive in ("INBOX" unless set).
    pub folder: String,
    /// Where handled mail is moved; it stays in `folder`, marked read, when unset.
    pub processed_folder: Option<String>,
    /// `bounces@acme.example`: messages go out with the envelope sender
    /// `bounces+TAG@acme.example`. No VERP when unset (matching then uses Message-IDs and the
    /// failed addresses).
    pub return_path: Option<ReturnPath>,
    /// Soft bounces in a row (no delivery in between) that suppress an address.
    pub soft_limit: u32,
}

/// A return path split into the parts VERP needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnPath {
    pub local: String,
    /// Lower-case ASCII.
    pub domain: String,
}

impl ReturnPath {
    /// `local+TAG@domain` (Postfix's VERP_README convention, `+` as the delimiter).
    pub fn with_tag(&self, tag: &str) -> String {
        format!("{}+{tag}@{}", self.local, self.domain)
    }
}

// Long because it checks the [bounces] section key by key, collecting every problem with its
// key, as `validate::build` does for the rest of the file.
pub(super) fn build(
    raw: Option<&RawBounces>,
    grants: &std::collections::BTreeMap<String, super::RawOAuth2>,
    base: &Path,
    env_is_set: &dyn Fn(&str) -> bool,
    c: &mut Collector,
) -> Option<BouncesSpec> {
    let raw = raw?;
    let text = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    };
    let host = text(&raw.host).unwrap_or_else(|| {
        c.add(
            "bounces.host",
            "is missing; give the IMAP server's host name",
        );
        String::new()
    });
    let security = match raw.security.as_deref().map(str::trim) {
        None | Some("tls") => Security::Tls,
        Some("starttls") => Security::StartTls,
        Some("none") => Security::None,
        Some(other) => {
            c.add(
                "bounces.security",
                format!("\"{other}\" is not a choice; use tls, starttls or none"),
            );
            Security::Tls
        }
    };
    let default_port = RawBounces::default_port(security);
    let username = text(&raw.username).unwrap_or_else(|| {
        c.add(
            "bounces.username",
            "is missing; give the mailbox's login name",
        );
        String::new()
    });
    let oauth2 = text(&raw.oauth2);
    if let Some(grant) = &oauth2 {
        super::oauth2::check_reference(
            c,
            "bounces",
            grant,
            raw.password_env.as_deref(),
            Some(username.as_str()),
            grants,
        );
    }
    let password_env = match text(&raw.password_env) {
        _ if oauth2.is_some() => String::new(),
        Some(name) => {
            if !env_is_set(&name) {
                c.add(
                    "bounces.password_env",
                    format!(
                        "the environment variable {name} is not set; set it to the mailbox password"
                    ),
                );
            }
            name
        }
        None => {
            c.add(
                "bounces.password_env",
                "is missing; name the environment variable that holds the mailbox password",
            );
            String::new()
        }
    };
    let return_path = text(&raw.return_path).and_then(|address| {
        let parsed = address
            .rsplit_once('@')
            .filter(|(local, domain)| {
                !local.is_empty()
                    && !domain.is_empty()
                    && !local.contains('+')
                    && local.len() <= 30
                    && (local.bytes().chain(domain.bytes()))
                        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            })
            .map(|(local, domain)| ReturnPath {
                local: local.to_string(),
                domain: domain.to_ascii_lowercase(),
            });
        if parsed.is_none() {
            c.add(
                "bounces.return_path",
                format!(
                    "\"{address}\" is not a plain address like bounces@acme.example (ASCII, no \"+\", \
                     a local part of at most 30 characters so the tag fits)"
                ),
            );
        }
        parsed
    });
    let folder = text(&raw.folder).unwrap_or_else(|| "INBOX".to_string());
    let processed_folder = text(&raw.processed_folder);
    if processed_folder.as_deref() == Some(folder.as_str()) {
        c.add(
            "bounces.processed_folder",
            "is the folder bounces are read from; name another folder or leave it out",
        );
    }
    Some(BouncesSpec {
        host,
        port: c.int("bounces.port", raw.port, 1..=65_535, default_port),
        security,
        username,
        password_env,
        oauth2,
        ca_file: raw
            .ca_file
            .as_deref()
            .map(|file| c.file("bounces.ca_file", base, file)),
        folder,
        processed_folder,
        return_path,
        soft_limit: c.int("bounces.soft_limit", raw.soft_limit, 1..=100, 3),
    })
}

#[cfg(test)]
mod tests {
    use crate::campaign::{Campaign, Problem, Security};

    fn parse(extra: &str) -> Result<Campaign, Vec<Problem>> {
        let dir = tempfile::tempdir().unwrap();
        for file in ["body.html", "list.csv"] {
            std::fs::write(dir.path().join(file), "x").unwrap();
        }
        let text = format!(
            "[message]\nfrom = \"a@acme.example\"\nsubject = \"s\"\nhtml = \"body.html\"\n\
             [recipients]\ncsv = \"list.csv\"\n[[relay]]\nhost = \"smtp.acme.example\"\n{extra}"
        );
        super::super::validate::parse(&text, &dir.path().join("c.toml"), &|name| name == "PW")
    }

    #[test]
    fn defaults_and_return_path() {
        let campaign = parse(
            "[bounces]\nhost = \"imap.acme.example\"\nusername = \"b\"\npassword_env = \"PW\"\n\
             return_path = \"Bounces@ACME.example\"\n",
        )
        .unwrap();
        let bounces = campaign.bounces.unwrap();
        assert_eq!(bounces.port, 993);
        assert_eq!(bounces.security, Security::Tls);
        assert_eq!(bounces.folder, "INBOX");
        assert_eq!(bounces.soft_limit, 3);
        let path = bounces.return_path.unwrap();
        assert_eq!(path.with_tag("x.y.z"), "Bounces+x.y.z@acme.example");
        assert!(parse("").unwrap().bounces.is_none());
    }

    #[test]
    fn every_problem_is_named() {
        let problems = parse(
            "[bounces]\nsecurity = \"ssl\"\npassword_env = \"UNSET\"\nreturn_path = \"a+b@x\"\n\
             soft_limit = 0\nfolder = \"Bounces\"\nprocessed_folder = \"Bounces\"\nhots = 1\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "bounces.hots",
            "bounces.host",
            "bounces.security",
            "bounces.username",
            "bounces.password_env",
            "bounces.return_path",
            "bounces.processed_folder",
            "bounces.soft_limit",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
    }
}
