//! The campaign file: its TOML model, its defaults, and validation that reports every problem
//! at once with the key and a plain-language reason. Owns `toml` parsing of campaigns. Must never
//! read recipients, render templates or talk to servers: it only says what the campaign asks for.

mod bounces;
mod duration;
mod edit;
mod oauth2;
mod raw;
mod unsubscribe;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use bounces::{BouncesSpec, RawBounces, ReturnPath};
pub use duration::{format_duration, parse_duration};
pub use oauth2::{OAuth2Provider, OAuth2Spec, RawOAuth2, Use as OAuth2Use, password_host_warning};
pub use raw::{
    RawCampaign, RawDelivery, RawDirect, RawDirectDomain, RawDkim, RawMessage, RawRecipients,
    RawRelay,
};
pub use unsubscribe::{RawUnsubscribe, TOKEN_PLACEHOLDER, UnsubscribeSpec};

/// A validated campaign. Paths are absolute (resolved against the campaign file's folder).
#[derive(Debug, Clone)]
pub struct Campaign {
    /// The campaign file, absolute; its text identifies the campaign's state in the database.
    pub path: PathBuf,
    /// A short name for people: the file name without extension.
    pub name: String,
    pub message: MessageSpec,
    pub recipients: RecipientsSpec,
    pub delivery: DeliverySpec,
    pub direct: DirectSpec,
    pub relays: Vec<RelaySpec>,
    pub dkim: Option<DkimSpec>,
    /// `[bounces]`: the mailbox bounces come back to, and the VERP return path.
    pub bounces: Option<BouncesSpec>,
    /// `[unsubscribe]`: signed one-click links and the endpoint pulled before each send.
    pub unsubscribe: Option<UnsubscribeSpec>,
    /// `[oauth2.NAME]`: the OAuth2 grants relays and the mailbox sign in with (issue #22).
    pub oauth2: Vec<OAuth2Spec>,
}

impl Campaign {
    /// The `[oauth2.NAME]` section called `name`.
    pub fn grant(&self, name: &str) -> Option<&OAuth2Spec> {
        self.oauth2.iter().find(|grant| grant.name == name)
    }

    /// What the grant `name` serves in this campaign (sending, the mailbox, or both).
    pub fn grant_uses(&self, name: &str) -> Vec<OAuth2Use> {
        let mut uses = Vec::new();
        if self
            .relays
            .iter()
            .any(|relay| relay.oauth2.as_deref() == Some(name))
        {
            uses.push(OAuth2Use::Sending);
        }
        if self
            .bounces
            .as_ref()
            .is_some_and(|bounces| bounces.oauth2.as_deref() == Some(name))
        {
            uses.push(OAuth2Use::Mailbox);
        }
        uses
    }
}

#[derive(Debug, Clone)]
pub struct MessageSpec {
    pub from: String,
    pub reply_to: Option<String>,
    /// A template: `{{ expr }}` parts are rhai expressions.
    pub subject: String,
    pub html: Option<PathBuf>,
    pub text: Option<PathBuf>,
    pub attachments: Vec<PathBuf>,
    /// A template for the List-Unsubscribe target (URL or mailto).
    pub unsubscribe: Option<String>,
    /// Extra headers; values are templates.
    pub headers: Vec<(String, String)>,
    pub script: Option<PathBuf>,
    /// Images shown in the HTML by `cid:FILE-NAME` (multipart/related).
    pub inline: Vec<PathBuf>,
    /// A template for a `mailto:` List-Unsubscribe target, offered beside the URL.
    pub unsubscribe_mailto: Option<String>,
    /// The List-Id header's value (RFC 2919), e.g. `Acme News <news.acme.example>`.
    pub list_id: Option<String>,
    /// Gmail's Feedback-ID header (`campaign:customer:mailtype:sender`), when given.
    pub feedback_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RecipientsSpec {
    /// The list file (`list` or `csv` in the file): a CSV or a sheet, told apart by extension.
    pub csv: PathBuf,
    /// The column the file names; None: found by its header or its values when the list is read.
    pub email_column: Option<String>,
    pub suppression: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Relay,
    Direct,
    Mixed,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Relay => "relay",
            Mode::Direct => "direct",
            Mode::Mixed => "mixed",
        }
    }
}

/// What to do with rows whose delivery cannot be known (see the design's `uncertain` state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UncertainPolicy {
    /// Send them again: at-least-once.
    Resend,
    /// Keep them aside until the user resends them or marks them sent.
    Hold,
}

#[derive(Debug, Clone)]
pub struct DeliverySpec {
    pub mode: Mode,
    pub connections: u16,
    pub max_attempts: u32,
    pub uncertain: UncertainPolicy,
    pub retry_delays: Vec<Duration>,
    pub rate_per_hour: u32,
    pub sleep_every: u32,
    pub sleep_seconds: u32,
    /// 0 means no limit: a session carries messages until an error or the end of the run.
    pub messages_per_connection: u32,
    pub connect_timeout_secs: u32,
    pub command_timeout_secs: u32,
    /// How long to wait for the reply to the final "." (RFC 5321 §4.5.3.2.6 asks for 10 min;
    /// cutting it short manufactures duplicates).
    pub data_timeout_secs: u32,
    pub relay_cooldown_secs: u32,
}

impl DeliverySpec {
    /// The delay before attempt `attempt + 1` after attempt `attempt` (1-based) failed temporarily.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let index = attempt.saturating_sub(1) as usize;
        self.retry_delays
            .get(index)
            .or(self.retry_delays.last())
            .copied()
            .unwrap_or(Duration::from_secs(60))
    }
}

#[derive(Debug, Clone)]
pub struct DirectSpec {
    pub helo: String,
    pub port: u16,
    pub nameservers: Vec<std::net::SocketAddr>,
    /// Whether a failed STARTTLS handshake may be retried in plain text. Off by default: a
    /// broken handshake can be an attacker stripping TLS.
    pub tls_fallback: bool,
    /// How long one DNS query may take before the domain is deferred.
    pub dns_timeout_secs: u32,
    /// The first pause of a domain that answered 421 or a run of 4xx; doubles per level.
    pub backoff_pause_secs: u32,
    /// The user's limits per destination domain, over the shipped presets.
    pub domains: Vec<DomainLimitsSpec>,
    /// The address mail leaves from, as receivers see it (`[direct] public_ip`); None: learned
    /// from the outgoing interface when that address is public.
    pub public_ip: Option<std::net::IpAddr>,
}

/// `[[direct.domain]]`: limits for one recipient domain (ASCII or Unicode form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainLimitsSpec {
    pub name: String,
    pub connections: Option<u32>,
    pub messages_per_connection: Option<u32>,
    pub rate_per_hour: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain text (test servers and trusted networks only).
    None,
    /// STARTTLS required (port 587).
    StartTls,
    /// Implicit TLS from the first byte (port 465).
    Tls,
}

impl Security {
    /// The `security` key's value (absent means STARTTLS); None for an unknown word. The one
    /// place that reads it, for the campaign file and the window's "Test connection" alike.
    pub fn parse(value: Option<&str>) -> Option<Security> {
        match value.map(str::trim) {
            None | Some("starttls") => Some(Security::StartTls),
            Some("tls") => Some(Security::Tls),
            Some("none") => Some(Security::None),
            Some(_) => None,
        }
    }

    /// The port a relay listens on by default for this security (RFC 6409, RFC 8314).
    pub fn default_port(self) -> u16 {
        match self {
            Security::None => 25,
            Security::StartTls => 587,
            Security::Tls => 465,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Security::None => "none",
            Security::StartTls => "starttls",
            Security::Tls => "tls",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RelaySpec {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    /// The name of the environment variable holding the password; the password itself is
    /// never stored in the campaign.
    pub password_env: Option<String>,
    /// The `[oauth2.NAME]` grant it signs in with instead (SASL XOAUTH2), by name.
    pub oauth2: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub weight: u32,
    pub max_connections: u32,
    pub rate_per_hour: u32,
}

#[derive(Debug, Clone)]
pub struct DkimSpec {
    pub domain: String,
    pub selector: String,
    pub private_key: PathBuf,
}

/// One thing wrong with a campaign file: the key it concerns and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.key, self.reason)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("could not read the campaign file: {source} ({})", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the campaign file has {} problem(s) ({}):\n{}", problems.len(), path.display(), list(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|problem| format!("  - {problem}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The campaign file's canonical path: its identity in the database, so `c.toml`,
/// `./x/../c.toml` and a path through a symlink all find the same state.
fn canonical(path: &Path) -> Result<PathBuf, CampaignError> {
    std::fs::canonicalize(path).map_err(|source| CampaignError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl Campaign {
    /// Reads and validates a campaign file, with environment variables looked up in the process
    /// environment.
    pub fn load(path: &Path) -> Result<Campaign, CampaignError> {
        let text = std::fs::read_to_string(path).map_err(|source| CampaignError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Campaign::parse(&text, &canonical(path)?, &|name| {
            std::env::var_os(name).is_some()
        })
    }

    /// Like [`Campaign::load`], with `password_available` saying whether a relay password can be
    /// found under a name (the window also looks in the keyring).
    pub fn load_with(
        path: &Path,
        password_available: &dyn Fn(&str) -> bool,
    ) -> Result<Campaign, CampaignError> {
        let text = std::fs::read_to_string(path).map_err(|source| CampaignError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Campaign::parse(&text, &canonical(path)?, password_available)
    }

    /// Like [`Campaign::load`], but without requiring relay passwords to be set: for commands
    /// that only read the campaign's state (status, import, preview).
    pub fn load_for_reading(path: &Path) -> Result<Campaign, CampaignError> {
        let text = std::fs::read_to_string(path).map_err(|source| CampaignError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Campaign::parse(&text, &canonical(path)?, &|_| true)
    }

    /// Validates campaign text as if it were the file at `path` (which need not exist);
    /// `env_is_set` answers whether an environment variable is set.
    pub fn parse(
        text: &str,
        path: &Path,
        env_is_set: &dyn Fn(&str) -> bool,
    ) -> Result<Campaign, CampaignError> {
        validate::parse(text, path, env_is_set).map_err(|problems| CampaignError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }

    /// The folder that relative paths in the file are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}
