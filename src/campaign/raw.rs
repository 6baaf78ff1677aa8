//! The campaign file exactly as written: serde structs mirroring the TOML, every value optional
//! so that validation (in `validate.rs`) can report every missing or wrong key at once. Also the
//! table of known keys, so that a typo is reported instead of silently changing a campaign.
//! Nothing here checks meaning or touches the file system.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
pub struct RawCampaign {
    #[serde(default)]
    pub message: RawMessage,
    #[serde(default)]
    pub recipients: RawRecipients,
    #[serde(default)]
    pub delivery: RawDelivery,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<RawDirect>,
    #[serde(default, rename = "relay", skip_serializing_if = "Vec::is_empty")]
    pub relays: Vec<RawRelay>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkim: Option<RawDkim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounces: Option<super::bounces::RawBounces>,
    pub unsubscribe: Option<super::unsubscribe::RawUnsubscribe>,
    /// `[oauth2.NAME]` sections (issue #22), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub oauth2: BTreeMap<String, super::oauth2::RawOAuth2>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
pub struct RawMessage {
    pub from: Option<String>,
    pub reply_to: Option<String>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
    pub unsubscribe: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    pub script: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inline: Vec<String>,
    pub unsubscribe_mailto: Option<String>,
    pub list_id: Option<String>,
    pub feedback_id: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
pub struct RawRecipients {
    pub csv: Option<String>,
    /// When absent, the column is found by its header or values (`recipients::open`).
    pub email_column: Option<String>,
    pub suppression: Option<String>,
    /// The same as `csv`, named for what it also takes: a sheet (.xlsx, .ods…) or a CSV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
pub struct RawDelivery {
    pub mode: Option<String>,
    pub connections: Option<i64>,
    pub max_attempts: Option<i64>,
    pub uncertain: Option<String>,
    pub retry_delays: Option<Vec<String>>,
    pub rate_per_hour: Option<i64>,
    pub sleep_every: Option<i64>,
    pub sleep_seconds: Option<i64>,
    pub messages_per_connection: Option<i64>,
    pub connect_timeout_secs: Option<i64>,
    pub command_timeout_secs: Option<i64>,
    pub data_timeout_secs: Option<i64>,
    pub relay_cooldown_secs: Option<i64>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
pub struct RawDirect {
    pub helo: Option<String>,
    pub port: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    pub tls_fallback: Option<bool>,
    pub dns_timeout_secs: Option<i64>,
    pub backoff_pause_secs: Option<i64>,
    /// This machine's public address, for the SPF and reverse-DNS checks (issue #23) when the
    /// outgoing interface's address is a private one behind NAT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
    #[serde(default, rename = "domain", skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<RawDirectDomain>,
}

/// `[[direct.domain]]`: the user's limits for one destination domain.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
pub struct RawDirectDomain {
    pub name: Option<String>,
    pub connections: Option<i64>,
    pub messages_per_connection: Option<i64>,
    pub rate_per_hour: Option<i64>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
pub struct RawRelay {
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<i64>,
    pub security: Option<String>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    /// Names an `[oauth2.NAME]` section to sign in with instead of a password.
    pub oauth2: Option<String>,
    pub ca_file: Option<String>,
    pub weight: Option<i64>,
    pub max_connections: Option<i64>,
    pub rate_per_hour: Option<i64>,
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
pub struct RawDkim {
    pub domain: Option<String>,
    pub selector: Option<String>,
    pub private_key: Option<String>,
}

const TOP_KEYS: &[&str] = &[
    "message",
    "recipients",
    "delivery",
    "direct",
    "relay",
    "dkim",
    "bounces",
    "unsubscribe",
];
const MESSAGE_KEYS: &[&str] = &[
    "from",
    "reply_to",
    "subject",
    "html",
    "text",
    "attachments",
    "unsubscribe",
    "headers",
    "script",
    "inline",
    "unsubscribe_mailto",
    "list_id",
    "feedback_id",
];
const RECIPIENTS_KEYS: &[&str] = &["csv", "email_column", "suppression", "list"];
const DELIVERY_KEYS: &[&str] = &[
    "mode",
    "connections",
    "max_attempts",
    "uncertain",
    "retry_delays",
    "rate_per_hour",
    "sleep_every",
    "sleep_seconds",
    "messages_per_connection",
    "connect_timeout_secs",
    "command_timeout_secs",
    "data_timeout_secs",
    "relay_cooldown_secs",
];
const DIRECT_KEYS: &[&str] = &[
    "helo",
    "port",
    "nameservers",
    "tls_fallback",
    "dns_timeout_secs",
    "backoff_pause_secs",
    "public_ip",
    "domain",
];
const DIRECT_DOMAIN_KEYS: &[&str] = &[
    "name",
    "connections",
    "messages_per_connection",
    "rate_per_hour",
];
const RELAY_KEYS: &[&str] = &[
    "name",
    "host",
    "port",
    "security",
    "username",
    "password_env",
    "oauth2",
    "ca_file",
    "weight",
    "max_connections",
    "rate_per_hour",
];
const DKIM_KEYS: &[&str] = &["domain", "selector", "private_key"];

/// Every key in `table` that the campaign format does not know, as dotted paths
/// (`delivery.conections`, `relay[2].hots`), each with the keys that section accepts.
pub fn unknown_keys(table: &toml::Table) -> Vec<(String, &'static [&'static str])> {
    let mut found = Vec::new();
    for (key, value) in table {
        let known: &'static [&'static str] = match key.as_str() {
            "message" => MESSAGE_KEYS,
            "recipients" => RECIPIENTS_KEYS,
            "delivery" => DELIVERY_KEYS,
            "direct" => DIRECT_KEYS,
            "relay" => RELAY_KEYS,
            "dkim" => DKIM_KEYS,
            "bounces" => super::bounces::BOUNCES_KEYS,
            "unsubscribe" => super::unsubscribe::UNSUBSCRIBE_KEYS,
            // `[oauth2.NAME]`: one table per grant, each with the grant's keys.
            "oauth2" => {
                if let toml::Value::Table(grants) = value {
                    for (name, grant) in grants {
                        if let toml::Value::Table(grant) = grant {
                            let path = format!("oauth2.{name}");
                            collect_unknown(&path, grant, super::oauth2::OAUTH2_KEYS, &mut found);
                        }
                    }
                }
                continue;
            }
            _ => {
                found.push((key.clone(), TOP_KEYS));
                continue;
            }
        };
        match value {
            toml::Value::Table(section) => {
                collect_unknown(key, section, known, &mut found);
                // `[[direct.domain]]` is the one nested table array.
                if key == "direct"
                    && let Some(toml::Value::Array(items)) = section.get("domain")
                {
                    for (index, item) in items.iter().enumerate() {
                        if let toml::Value::Table(domain) = item {
                            let path = format!("direct.domain[{}]", index + 1);
                            collect_unknown(&path, domain, DIRECT_DOMAIN_KEYS, &mut found);
                        }
                    }
                }
            }
            toml::Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    if let toml::Value::Table(section) = item {
                        let path = format!("{key}[{}]", index + 1);
                        collect_unknown(&path, section, known, &mut found);
                    }
                }
            }
            _ => {}
        }
    }
    found
}

fn collect_unknown(
    path: &str,
    section: &toml::Table,
    known: &'static [&'static str],
    found: &mut Vec<(String, &'static [&'static str])>,
) {
    for key in section.keys() {
        if !known.contains(&key.as_str()) {
            found.push((format!("{path}.{key}"), known));
        }
    }
}

impl RawCampaign {
    /// The campaign as TOML, for saving what the window edited.
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string_pretty(self).map_err(|error| error.to_string())
    }

    /// The campaign as TOML written over `existing` (the campaign file as a person wrote it):
    /// only the keys that changed are edited, so comments, order and unknown keys stay.
    pub fn to_toml_over(&self, existing: &str) -> Result<String, String> {
        super::edit::write_over(self, existing)
    }

    /// Reads campaign text leniently (no validation), for editing a file that may be
    /// incomplete.
    pub fn from_toml(text: &str) -> Result<RawCampaign, String> {
        toml::from_str(text).map_err(|error| error.message().to_string())
    }
}
