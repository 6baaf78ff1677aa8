//! `[oauth2.NAME]` (issue #22): an OAuth2 grant a relay (`oauth2 = "NAME"` instead of
//! `password_env`) or the bounce mailbox signs in with. The raw keys, their validation, the
//! validated spec and the scopes each provider needs for sending and for reading mail; also the
//! warnings for known providers' hosts still used with a password. Nothing here connects, opens
//! a browser or reads the keyring.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::validate::Collector;

/// `[oauth2.NAME]` exactly as written.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
pub struct RawOAuth2 {
    pub provider: Option<String>,
    pub client_id: Option<String>,
    pub tenant: Option<String>,
    pub client_secret_env: Option<String>,
    pub issuer: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub ca_file: Option<String>,
}

pub(super) const OAUTH2_KEYS: &[&str] = &[
    "provider",
    "client_id",
    "tenant",
    "client_secret_env",
    "issuer",
    "scopes",
    "ca_file",
];

/// Who issues the tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuth2Provider {
    /// Microsoft identity platform (Entra ID); `tenant` is "organizations", "common", a domain
    /// or a tenant id.
    Microsoft {
        tenant: String,
    },
    Google,
    /// Any OpenID provider: endpoints from `ISSUER/.well-known/openid-configuration`.
    Oidc {
        issuer: String,
    },
}

impl OAuth2Provider {
    /// "Microsoft", "Google", or the issuer's host, for "Sign in with …".
    pub fn label(&self) -> String {
        match self {
            OAuth2Provider::Microsoft { .. } => "Microsoft".into(),
            OAuth2Provider::Google => "Google".into(),
            OAuth2Provider::Oidc { issuer } => issuer.clone(),
        }
    }

    /// Whether the provider offers the device authorization grant for mail scopes (Google
    /// answers `invalid_scope` for `https://mail.google.com/` there).
    pub fn offers_device_flow(&self) -> bool {
        !matches!(self, OAuth2Provider::Google)
    }
}

/// A validated `[oauth2.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Spec {
    pub name: String,
    pub provider: OAuth2Provider,
    pub client_id: String,
    /// The environment variable (or keyring entry) holding a client secret, for providers
    /// that insist on one (Google's desktop clients carry a "secret" that is not secret).
    pub client_secret_env: Option<String>,
    /// Scopes as written; `None`: the provider's defaults for what uses the grant.
    pub scopes: Option<Vec<String>>,
    /// An extra CA certificate (PEM) to trust for the provider's endpoints.
    pub ca_file: Option<PathBuf>,
}

/// What a grant is used for: the scopes differ (Microsoft has one per protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Sending,
    Mailbox,
}

impl OAuth2Spec {
    /// The scopes to ask for when the grant serves `uses` (joined when one grant serves both
    /// the relay and the mailbox).
    pub fn scopes_for(&self, uses: &[Use]) -> Vec<String> {
        if let Some(scopes) = &self.scopes {
            return scopes.clone();
        }
        let mut scopes: Vec<String> = Vec::new();
        let mut add = |scope: &str| {
            if !scopes.iter().any(|known| known == scope) {
                scopes.push(scope.to_string());
            }
        };
        match &self.provider {
            OAuth2Provider::Microsoft { .. } => {
                for use_ in uses {
                    add(match use_ {
                        Use::Sending => "https://outlook.office.com/SMTP.Send",
                        Use::Mailbox => "https://outlook.office.com/IMAP.AccessAsUser.All",
                    });
                }
                // A refresh token only comes with offline_access; openid + email name the user.
                for scope in ["offline_access", "openid", "email"] {
                    add(scope);
                }
            }
            // One scope covers SMTP and IMAP; Google gives desktop clients a refresh token
            // without offline_access (it uses access_type=offline instead).
            OAuth2Provider::Google => {
                for scope in ["https://mail.google.com/", "openid", "email"] {
                    add(scope);
                }
            }
            OAuth2Provider::Oidc { .. } => {
                for scope in ["openid", "email", "offline_access"] {
                    add(scope);
                }
            }
        }
        scopes
    }
}

/// Whether `url` is an http(s) URL that may carry tokens: https anywhere, plain http only to a
/// loopback address (a test, a local trial), as for unsubscribe links.
fn acceptable_issuer(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn build(
    raw: &BTreeMap<String, RawOAuth2>,
    base: &Path,
    c: &mut Collector,
) -> Vec<OAuth2Spec> {
    raw.iter()
        .map(|(name, section)| build_one(name, section, base, c))
        .collect()
}

fn build_one(name: &str, raw: &RawOAuth2, base: &Path, c: &mut Collector) -> OAuth2Spec {
    let key = |field: &str| format!("oauth2.{name}.{field}");
    let text = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    };
    let provider = match text(&raw.provider).as_deref() {
        Some("microsoft") => OAuth2Provider::Microsoft {
            tenant: text(&raw.tenant).unwrap_or_else(|| "organizations".into()),
        },
        Some("google") => OAuth2Provider::Google,
        Some("oidc") => match text(&raw.issuer) {
            Some(issuer) if acceptable_issuer(&issuer) => OAuth2Provider::Oidc {
                issuer: issuer.trim_end_matches('/').to_string(),
            },
            Some(issuer) => {
                c.add(
                    key("issuer"),
                    format!(
                        "\"{issuer}\" must start with https:// (plain http:// only to this computer, 127.0.0.1 or localhost)"
                    ),
                );
                OAuth2Provider::Google
            }
            None => {
                c.add(
                    key("issuer"),
                    "is missing; an oidc provider needs the issuer URL its /.well-known/openid-configuration lives under",
                );
                OAuth2Provider::Google
            }
        },
        Some(other) => {
            c.add(
                key("provider"),
                format!("\"{other}\" is not a choice; use microsoft, google or oidc"),
            );
            OAuth2Provider::Google
        }
        None => {
            c.add(key("provider"), "is missing; use microsoft, google or oidc");
            OAuth2Provider::Google
        }
    };
    if raw.tenant.is_some() && !matches!(provider, OAuth2Provider::Microsoft { .. }) {
        c.add(key("tenant"), "is for provider = \"microsoft\" only");
    }
    if raw.issuer.is_some() && !matches!(provider, OAuth2Provider::Oidc { .. }) {
        c.add(
            key("issuer"),
            "is for provider = \"oidc\" only (Microsoft's and Google's endpoints are known)",
        );
    }
    let client_id = text(&raw.client_id).unwrap_or_else(|| {
        c.add(
            key("client_id"),
            "is missing; give the client id of your own app registration (the README says how to make one)",
        );
        String::new()
    });
    if let Some(scopes) = &raw.scopes
        && (scopes.is_empty() || scopes.iter().any(|scope| scope.trim().is_empty()))
    {
        c.add(
            key("scopes"),
            "lists an empty scope; leave the key out for the provider's defaults",
        );
    }
    OAuth2Spec {
        name: name.to_string(),
        provider,
        client_id,
        client_secret_env: text(&raw.client_secret_env),
        scopes: raw.scopes.clone(),
        ca_file: raw
            .ca_file
            .as_deref()
            .map(|file| c.file(&key("ca_file"), base, file)),
    }
}

/// Checks one `oauth2 = "NAME"` reference at `key` (`relay[1]`, `bounces`).
pub(super) fn check_reference(
    c: &mut Collector,
    key: &str,
    name: &str,
    password_env: Option<&str>,
    username: Option<&str>,
    grants: &BTreeMap<String, RawOAuth2>,
) {
    if password_env.is_some() {
        c.add(
            format!("{key}.oauth2"),
            "is set beside password_env; keep one (oauth2 signs in without a password)",
        );
    }
    if !grants.contains_key(name) {
        c.add(
            format!("{key}.oauth2"),
            format!(
                "names [oauth2.{name}], which the file does not have; add that section (provider, client_id)"
            ),
        );
    }
    if username.is_none() {
        c.add(
            format!("{key}.username"),
            "is missing; XOAUTH2 signs in as the mailbox's address (news@acme.example)",
        );
    }
}

/// Hosts whose providers no longer take passwords, with what to say about them.
const PASSWORDLESS_HOSTS: &[(&str, &str)] = &[
    (
        "smtp.office365.com",
        "Microsoft 365 turns off password sign-in for SMTP (Basic authentication) by default for existing tenants at the end of December 2026 and for good in the second half of 2027 (date to be announced); new tenants never have it",
    ),
    (
        "outlook.office365.com",
        "Microsoft 365 has refused password sign-in for IMAP (Basic authentication) since October 2022",
    ),
    (
        "smtp.gmail.com",
        "Google no longer accepts account passwords (\"less secure apps\" are gone); app passwords work only with 2-Step Verification and die when the account's password changes",
    ),
    (
        "imap.gmail.com",
        "Google no longer accepts account passwords (\"less secure apps\" are gone); app passwords work only with 2-Step Verification and die when the account's password changes",
    ),
];

/// The warning for a known provider's `host` signed in with a password, if any.
pub fn password_host_warning(what: &str, host: &str) -> Option<String> {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    PASSWORDLESS_HOSTS
        .iter()
        .find(|(known, _)| *known == host)
        .map(|(known, why)| {
            format!(
                "{what} signs in to {known} with a password: {why}. Use oauth2 = \"NAME\" with an [oauth2.NAME] section and `herald signin` instead"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_issuers_only_on_loopback() {
        for (url, ok) in [
            ("https://idp.example", true),
            ("http://127.0.0.1:8080", true),
            ("http://localhost/x", true),
            ("http://[::1]:9/", true),
            ("http://idp.example", false),
            ("http://127.0.0.1.evil.example/", false),
            ("ftp://127.0.0.1", false),
        ] {
            assert_eq!(acceptable_issuer(url), ok, "{url}");
        }
    }

    #[test]
    fn default_scopes_join_the_uses() {
        let spec = |provider| OAuth2Spec {
            name: "g".into(),
            provider,
            client_id: "c".into(),
            client_secret_env: None,
            scopes: None,
            ca_file: None,
        };
        let microsoft = spec(OAuth2Provider::Microsoft {
            tenant: "organizations".into(),
        });
        assert_eq!(
            microsoft.scopes_for(&[Use::Sending, Use::Mailbox]),
            [
                "https://outlook.office.com/SMTP.Send",
                "https://outlook.office.com/IMAP.AccessAsUser.All",
                "offline_access",
                "openid",
                "email"
            ]
        );
        assert_eq!(
            spec(OAuth2Provider::Google).scopes_for(&[Use::Mailbox]),
            ["https://mail.google.com/", "openid", "email"]
        );
    }

    fn parse(relay: &str, rest: &str) -> Result<crate::campaign::Campaign, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        for file in ["body.html", "list.csv"] {
            std::fs::write(dir.path().join(file), "x").unwrap();
        }
        let text = format!(
            "[message]\nfrom = \"a@acme.example\"\nsubject = \"s\"\nhtml = \"body.html\"\n\
             [recipients]\ncsv = \"list.csv\"\n[[relay]]\nname = \"m365\"\nhost = \"smtp.office365.com\"\n{relay}\n{rest}"
        );
        super::super::validate::parse(&text, &dir.path().join("c.toml"), &|name| name == "PW")
            .map_err(|problems| problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn the_campaign_keys_are_read_as_the_issue_fixes_them() {
        let campaign = parse(
            "username = \"news@acme.example\"\noauth2 = \"acme-m365\"",
            "[bounces]\nhost = \"outlook.office365.com\"\nusername = \"news@acme.example\"\noauth2 = \"acme-m365\"\n\
             [oauth2.acme-m365]\nprovider = \"microsoft\"\nclient_id = \"abc\"\n",
        )
        .unwrap();
        let grant = campaign.grant("acme-m365").unwrap();
        assert_eq!(
            grant.provider,
            OAuth2Provider::Microsoft {
                tenant: "organizations".into()
            }
        );
        assert_eq!(campaign.relays[0].oauth2.as_deref(), Some("acme-m365"));
        assert_eq!(
            campaign.grant_uses("acme-m365"),
            [Use::Sending, Use::Mailbox]
        );
        assert!(
            grant
                .scopes_for(&campaign.grant_uses("acme-m365"))
                .contains(&"https://outlook.office.com/IMAP.AccessAsUser.All".to_string())
        );
    }

    #[test]
    fn wrong_grants_are_named_with_their_keys() {
        for (relay, rest, expected) in [
            (
                "username = \"u\"\npassword_env = \"PW\"\noauth2 = \"g\"",
                "[oauth2.g]\nprovider = \"google\"\nclient_id = \"c\"",
                "relay[1].oauth2: is set beside password_env; keep one",
            ),
            (
                "username = \"u\"\noauth2 = \"missing\"",
                "",
                "relay[1].oauth2: names [oauth2.missing], which the file does not have",
            ),
            (
                "oauth2 = \"g\"",
                "[oauth2.g]\nprovider = \"google\"\nclient_id = \"c\"",
                "relay[1].username: is missing; XOAUTH2 signs in as",
            ),
            (
                "username = \"u\"\noauth2 = \"g\"",
                "[oauth2.g]\nprovider = \"oidc\"\nclient_id = \"c\"\nissuer = \"http://idp.example\"",
                "oauth2.g.issuer: \"http://idp.example\" must start with https://",
            ),
            (
                "username = \"u\"\noauth2 = \"g\"",
                "[oauth2.g]\nprovider = \"yahoo\"\nclient_id = \"c\"",
                "oauth2.g.provider: \"yahoo\" is not a choice",
            ),
            (
                "username = \"u\"\noauth2 = \"g\"",
                "[oauth2.g]\nprovider = \"google\"\nclient_id = \"c\"\nsecret = \"x\"",
                "oauth2.g.secret: unknown key",
            ),
        ] {
            let problems = parse(relay, rest).unwrap_err();
            assert!(
                problems.iter().any(|problem| problem.starts_with(expected)),
                "{expected:?} not in {problems:?}"
            );
        }
    }

    #[test]
    fn known_hosts_with_a_password_are_named_with_the_dates() {
        let warning = password_host_warning("relay \"m365\"", "SMTP.Office365.com").unwrap();
        assert!(warning.contains("end of December 2026"), "{warning}");
        assert!(warning.contains("herald signin"), "{warning}");
        let imap = password_host_warning("[bounces]", "outlook.office365.com").unwrap();
        assert!(imap.contains("October 2022"), "{imap}");
        assert!(password_host_warning("relay", "smtp.acme.example").is_none());
    }
}
