//! Turns the raw campaign text into a validated [`Campaign`], collecting every problem instead of
//! stopping at the first: a marketer fixes a file once, not ten times. Reads nothing but the
//! existence of the files the campaign names.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawCampaign, unknown_keys};
use super::{
    Campaign, DeliverySpec, DirectSpec, DkimSpec, DomainLimitsSpec, MessageSpec, Mode, Problem,
    RecipientsSpec, RelaySpec, Security, UncertainPolicy, parse_duration,
};

/// Headers Herald writes itself; letting the campaign set them would break the message or its
/// signature.
const MANAGED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-id",
    "feedback-id",
    "dkim-signature",
    "return-path",
    "received",
];

pub(super) struct Collector {
    problems: Vec<Problem>,
}

impl Collector {
    pub(super) fn add(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            reason: reason.into(),
        });
    }

    /// An integer within `range`, or the default when absent.
    pub(super) fn int<T: TryFrom<i64> + Copy>(
        &mut self,
        key: &str,
        value: Option<i64>,
        range: std::ops::RangeInclusive<i64>,
        default: T,
    ) -> T {
        let Some(value) = value else {
            return default;
        };
        if !range.contains(&value) {
            self.add(
                key,
                format!(
                    "must be between {} and {}, not {value}",
                    range.start(),
                    range.end()
                ),
            );
            return default;
        }
        T::try_from(value).unwrap_or(default)
    }

    /// A file the campaign names, resolved against the campaign's folder, that must exist.
    pub(super) fn file(&mut self, key: &str, base: &Path, value: &str) -> PathBuf {
        let path = base.join(value);
        if value.trim().is_empty() {
            self.add(key, "is empty; give a file name");
        } else if !path.is_file() {
            self.add(key, format!("the file does not exist ({})", path.display()));
        }
        path
    }
}

pub(super) fn parse(
    text: &str,
    path: &Path,
    env_is_set: &dyn Fn(&str) -> bool,
) -> Result<Campaign, Vec<Problem>> {
    let mut c = Collector {
        problems: Vec::new(),
    };
    let table: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(error) => {
            c.add(
                "",
                format!("the file is not valid TOML: {}", one_line(&error)),
            );
            return Err(c.problems);
        }
    };
    for (key, known) in unknown_keys(&table) {
        c.add(
            key,
            format!("unknown key (known keys here: {})", known.join(", ")),
        );
    }
    let raw: RawCampaign = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(error) => {
            c.add("", one_line(&error));
            return Err(c.problems);
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let campaign = build(raw, path, base, env_is_set, &mut c);
    if c.problems.is_empty() {
        Ok(campaign)
    } else {
        Err(c.problems)
    }
}

fn one_line(error: &toml::de::Error) -> String {
    let message = error.message().trim();
    match error.span() {
        Some(span) => format!("{message} (at byte {})", span.start),
        None => message.to_string(),
    }
}

// Long because it turns the raw file into the campaign key by key, in the file's order,
// collecting every problem with its key; each key is a line or two.
fn build(
    raw: RawCampaign,
    path: &Path,
    base: &Path,
    env_is_set: &dyn Fn(&str) -> bool,
    c: &mut Collector,
) -> Campaign {
    let name = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "campaign".to_string());

    let message = build_message(&raw, base, c);

    let recipients = RecipientsSpec {
        csv: match (
            raw.recipients.list.as_deref(),
            raw.recipients.csv.as_deref(),
        ) {
            (Some(_), Some(_)) => {
                c.add(
                    "recipients.list",
                    "and recipients.csv are both given; keep one (they mean the same)",
                );
                PathBuf::new()
            }
            (Some(list), None) => c.file("recipients.list", base, list),
            (None, Some(csv)) => c.file("recipients.csv", base, csv),
            (None, None) => {
                c.add(
                    "recipients.list",
                    "is missing; name the recipient list: a CSV, .xlsx or .ods file (list = \"contacts.xlsx\")",
                );
                PathBuf::new()
            }
        },
        email_column: raw.recipients.email_column.clone(),
        suppression: raw
            .recipients
            .suppression
            .as_deref()
            .map(|file| c.file("recipients.suppression", base, file)),
    };
    if recipients
        .email_column
        .as_deref()
        .is_some_and(|column| column.trim().is_empty())
    {
        c.add(
            "recipients.email_column",
            "is empty; name the column holding addresses, or leave the key out to have it found",
        );
    }

    let delivery = build_delivery(&raw, c);
    let direct = build_direct(&raw, delivery.mode, base, c);
    let relays = build_relays(&raw, base, env_is_set, c);
    let oauth2 = super::oauth2::build(&raw.oauth2, base, c);
    match delivery.mode {
        Mode::Relay if relays.is_empty() => c.add(
            "relay",
            "relay mode needs at least one [[relay]] section with a host",
        ),
        Mode::Mixed if relays.is_empty() => c.add(
            "relay",
            "mixed mode needs at least one [[relay]] section as the backup route",
        ),
        _ => {}
    }

    let dkim = raw.dkim.as_ref().map(|dkim| {
        let domain = required(
            c,
            "dkim.domain",
            dkim.domain.as_deref(),
            "the signing domain",
        );
        let selector = required(
            c,
            "dkim.selector",
            dkim.selector.as_deref(),
            "the DNS selector",
        );
        let private_key = match dkim.private_key.as_deref() {
            Some(file) => c.file("dkim.private_key", base, file),
            None => {
                c.add(
                    "dkim.private_key",
                    "is missing; name the PEM file of the private key",
                );
                PathBuf::new()
            }
        };
        DkimSpec {
            domain: domain.to_ascii_lowercase(),
            selector,
            private_key,
        }
    });

    let bounces = super::bounces::build(raw.bounces.as_ref(), &raw.oauth2, base, env_is_set, c);
    let unsubscribe = raw.unsubscribe.as_ref().map(|section| {
        let (spec, problems) = super::unsubscribe::build(section, base, env_is_set);
        for (key, reason) in problems {
            c.add(key, reason);
        }
        if spec.url.is_some() && message.unsubscribe.is_some() {
            c.add(
                "message.unsubscribe",
                "is set beside unsubscribe.url; keep one (unsubscribe.url makes signed links)",
            );
        }
        spec
    });

    Campaign {
        path: path.to_path_buf(),
        name,
        message,
        recipients,
        delivery,
        direct,
        relays,
        dkim,
        bounces,
        unsubscribe,
        oauth2,
    }
}

fn required(c: &mut Collector, key: &str, value: Option<&str>, what: &str) -> String {
    match value.map(str::trim) {
        Some(value) if !value.is_empty() => value.to_string(),
        Some(_) => {
            c.add(key, format!("is empty; give {what}"));
            String::new()
        }
        None => {
            c.add(key, format!("is missing; give {what}"));
            String::new()
        }
    }
}

fn build_message(raw: &RawCampaign, base: &Path, c: &mut Collector) -> MessageSpec {
    let m = &raw.message;
    let from = required(
        c,
        "message.from",
        m.from.as_deref(),
        "the sender, like \"Acme <news@acme.example>\"",
    );
    if !from.is_empty() && !from.contains('@') {
        c.add("message.from", format!("\"{from}\" has no address in it"));
    }
    let subject = match m.subject.as_deref() {
        Some(subject) => subject.to_string(),
        None => {
            c.add("message.subject", "is missing; give the subject line");
            String::new()
        }
    };
    if m.html.is_none() && m.text.is_none() {
        c.add("message", "needs an html or a text template (or both)");
    }
    let headers = m
        .headers
        .iter()
        .map(|(name, value)| {
            let key = format!("message.headers.{name}");
            let valid_name =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            if !valid_name {
                c.add(
                    &key,
                    "is not a valid header name (letters, digits and dashes)",
                );
            } else if MANAGED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                c.add(&key, "is written by Herald itself and cannot be set here");
            }
            (name.clone(), value.clone())
        })
        .collect();
    MessageSpec {
        from,
        reply_to: m.reply_to.clone().filter(|value| !value.trim().is_empty()),
        subject,
        html: m
            .html
            .as_deref()
            .map(|file| c.file("message.html", base, file)),
        text: m
            .text
            .as_deref()
            .map(|file| c.file("message.text", base, file)),
        attachments: m
            .attachments
            .iter()
            .enumerate()
            .map(|(index, file)| c.file(&format!("message.attachments[{}]", index + 1), base, file))
            .collect(),
        unsubscribe: m
            .unsubscribe
            .clone()
            .filter(|value| !value.trim().is_empty()),
        headers,
        script: m
            .script
            .as_deref()
            .map(|file| c.file("message.script", base, file)),
        inline: m
            .inline
            .iter()
            .enumerate()
            .map(|(index, file)| c.file(&format!("message.inline[{}]", index + 1), base, file))
            .collect(),
        unsubscribe_mailto: m
            .unsubscribe_mailto
            .clone()
            .filter(|value| !value.trim().is_empty()),
        list_id: list_header(c, "message.list_id", m.list_id.as_deref()),
        feedback_id: list_header(c, "message.feedback_id", m.feedback_id.as_deref()),
    }
}

/// A fixed header value (List-Id, Feedback-ID): one line, printable ASCII (RFC 2919 §3).
fn list_header(c: &mut Collector, key: &str, value: Option<&str>) -> Option<String> {
    let value = value.map(str::trim).filter(|value| !value.is_empty())?;
    if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        c.add(key, "must be one line of printable ASCII");
    }
    Some(value.to_string())
}

fn build_delivery(raw: &RawCampaign, c: &mut Collector) -> DeliverySpec {
    let d = &raw.delivery;
    let mode = match d.mode.as_deref().map(str::trim) {
        None | Some("relay") => Mode::Relay,
        Some("direct") => Mode::Direct,
        Some("mixed") => Mode::Mixed,
        Some(other) => {
            c.add(
                "delivery.mode",
                format!("\"{other}\" is not a delivery mode; use relay, direct or mixed"),
            );
            Mode::Relay
        }
    };
    let uncertain = match d.uncertain.as_deref().map(str::trim) {
        None | Some("resend") => UncertainPolicy::Resend,
        Some("hold") => UncertainPolicy::Hold,
        Some(other) => {
            c.add(
                "delivery.uncertain",
                format!("\"{other}\" is not a choice; use resend or hold"),
            );
            UncertainPolicy::Resend
        }
    };
    let retry_delays = match &d.retry_delays {
        None => vec![
            Duration::from_secs(60),
            Duration::from_secs(300),
            Duration::from_secs(1_800),
        ],
        Some(list) if list.is_empty() => {
            c.add(
                "delivery.retry_delays",
                "is empty; give at least one delay like \"5m\"",
            );
            Vec::new()
        }
        Some(list) => list
            .iter()
            .filter_map(|text| match parse_duration(text) {
                Ok(delay) => Some(delay),
                Err(reason) => {
                    c.add("delivery.retry_delays", reason);
                    None
                }
            })
            .collect(),
    };
    DeliverySpec {
        mode,
        connections: c.int("delivery.connections", d.connections, 1..=512, 32),
        max_attempts: c.int("delivery.max_attempts", d.max_attempts, 1..=100, 3),
        uncertain,
        retry_delays,
        rate_per_hour: c.int(
            "delivery.rate_per_hour",
            d.rate_per_hour,
            0..=100_000_000,
            0,
        ),
        sleep_every: c.int("delivery.sleep_every", d.sleep_every, 0..=100_000_000, 0),
        sleep_seconds: c.int("delivery.sleep_seconds", d.sleep_seconds, 0..=86_400, 0),
        messages_per_connection: c.int(
            "delivery.messages_per_connection",
            d.messages_per_connection,
            0..=1_000_000,
            0,
        ),
        connect_timeout_secs: c.int(
            "delivery.connect_timeout_secs",
            d.connect_timeout_secs,
            1..=600,
            30,
        ),
        command_timeout_secs: c.int(
            "delivery.command_timeout_secs",
            d.command_timeout_secs,
            1..=3_600,
            300,
        ),
        data_timeout_secs: c.int(
            "delivery.data_timeout_secs",
            d.data_timeout_secs,
            1..=3_600,
            600,
        ),
        relay_cooldown_secs: c.int(
            "delivery.relay_cooldown_secs",
            d.relay_cooldown_secs,
            0..=86_400,
            60,
        ),
    }
}

fn build_direct(raw: &RawCampaign, mode: Mode, base: &Path, c: &mut Collector) -> DirectSpec {
    let direct = raw.direct.clone().unwrap_or_default();
    let needs_direct = mode != Mode::Relay;
    let helo = direct
        .helo
        .clone()
        .map(|helo| helo.trim().to_string())
        .unwrap_or_default();
    if needs_direct && helo.is_empty() {
        c.add(
            "direct.helo",
            "is missing; direct delivery needs this server's public host name, like \"mail.acme.example\"",
        );
    }
    let nameservers = direct
        .nameservers
        .iter()
        .filter_map(|text| match parse_nameserver(text) {
            Some(addr) => Some(addr),
            None => {
                c.add(
                    "direct.nameservers",
                    format!("\"{text}\" is not an IP address (optionally with :port)"),
                );
                None
            }
        })
        .collect();
    let public_ip = direct.public_ip.as_deref().and_then(|text| {
        let parsed = text.trim().parse::<IpAddr>().ok();
        if parsed.is_none() {
            c.add(
                "direct.public_ip",
                format!(
                    "\"{text}\" is not an IP address; give the address receivers see mail come from"
                ),
            );
        }
        parsed
    });
    let mut seen = std::collections::HashSet::new();
    let domains = direct
        .domains
        .iter()
        .enumerate()
        .map(|(index, domain)| {
            let key = format!("direct.domain[{}]", index + 1);
            let name = required(
                c,
                &format!("{key}.name"),
                domain.name.as_deref(),
                "the recipient domain, like \"gmail.com\"",
            )
            .trim_end_matches('.')
            .to_lowercase();
            if !name.is_empty() && !seen.insert(name.clone()) {
                c.add(
                    format!("{key}.name"),
                    format!("\"{name}\" is listed twice; keep one section per domain"),
                );
            }
            let mut optional = |field: &str, value: Option<i64>, range| {
                value.map(|value| c.int(&format!("{key}.{field}"), Some(value), range, 1))
            };
            DomainLimitsSpec {
                name,
                connections: optional("connections", domain.connections, 1..=512),
                messages_per_connection: optional(
                    "messages_per_connection",
                    domain.messages_per_connection,
                    0..=1_000_000,
                ),
                rate_per_hour: optional("rate_per_hour", domain.rate_per_hour, 0..=100_000_000),
            }
        })
        .collect();
    DirectSpec {
        helo,
        port: c.int("direct.port", direct.port, 1..=65_535, 25),
        nameservers,
        tls_fallback: direct.tls_fallback.unwrap_or(false),
        dns_timeout_secs: c.int(
            "direct.dns_timeout_secs",
            direct.dns_timeout_secs,
            1..=60,
            5,
        ),
        backoff_pause_secs: c.int(
            "direct.backoff_pause_secs",
            direct.backoff_pause_secs,
            1..=86_400,
            60,
        ),
        domains,
        public_ip,
        ca_file: direct
            .ca_file
            .as_deref()
            .map(|file| c.file("direct.ca_file", base, file)),
        mta_sts_port: c.int("direct.mta_sts_port", direct.mta_sts_port, 1..=65_535, 443),
        mta_sts_timeout_secs: c.int(
            "direct.mta_sts_timeout_secs",
            direct.mta_sts_timeout_secs,
            1..=60,
            20,
        ),
    }
}

fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

fn build_relays(
    raw: &RawCampaign,
    base: &Path,
    env_is_set: &dyn Fn(&str) -> bool,
    c: &mut Collector,
) -> Vec<RelaySpec> {
    let mut names = std::collections::HashSet::new();
    raw.relays
        .iter()
        .enumerate()
        .map(|(index, relay)| {
            let key = format!("relay[{}]", index + 1);
            let name = relay
                .name
                .clone()
                .filter(|name| !name.trim().is_empty())
                .unwrap_or_else(|| format!("relay {}", index + 1));
            if !names.insert(name.clone()) {
                c.add(format!("{key}.name"), format!("\"{name}\" is used by two relays; names must differ"));
            }
            let host = required(c, &format!("{key}.host"), relay.host.as_deref(), "the relay's host name");
            let security = Security::parse(relay.security.as_deref()).unwrap_or_else(|| {
                let other = relay.security.as_deref().unwrap_or_default().trim();
                c.add(
                    format!("{key}.security"),
                    format!("\"{other}\" is not a choice; use none, starttls or tls"),
                );
                Security::StartTls
            });
            let default_port = security.default_port();
            if let Some(grant) = &relay.oauth2 {
                super::oauth2::check_reference(
                    c,
                    &key,
                    grant,
                    relay.password_env.as_deref(),
                    relay.username.as_deref(),
                    &raw.oauth2,
                );
            } else if let Some(var) = &relay.password_env {
                if relay.username.is_none() {
                    c.add(format!("{key}.password_env"), "is set but username is missing");
                }
                if !env_is_set(var) {
                    c.add(
                        format!("{key}.password_env"),
                        format!("the environment variable {var} is not set; set it to the relay's password before sending"),
                    );
                }
            } else if relay.username.is_some() {
                c.add(
                    format!("{key}.password_env"),
                    "is missing; name the environment variable that holds the password for username",
                );
            }
            RelaySpec {
                name,
                host,
                port: c.int(&format!("{key}.port"), relay.port, 1..=65_535, default_port),
                security,
                username: relay.username.clone(),
                password_env: relay.password_env.clone(),
                oauth2: relay.oauth2.clone(),
                ca_file: relay
                    .ca_file
                    .as_deref()
                    .map(|file| c.file(&format!("{key}.ca_file"), base, file)),
                weight: c.int(&format!("{key}.weight"), relay.weight, 1..=1_000, 1),
                max_connections: c.int(&format!("{key}.max_connections"), relay.max_connections, 1..=512, 512),
                rate_per_hour: c.int(&format!("{key}.rate_per_hour"), relay.rate_per_hour, 0..=100_000_000, 0),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in ["body.html", "body.txt", "list.csv"] {
            std::fs::write(dir.path().join(file), "x").unwrap();
        }
        dir
    }

    const MINIMAL: &str = r#"
[message]
from = "Acme <news@acme.example>"
subject = "Hello {{ first_name }}"
html = "body.html"

[recipients]
csv = "list.csv"

[[relay]]
host = "smtp.acme.example"
"#;

    fn parse_in(dir: &Path, text: &str) -> Result<Campaign, Vec<Problem>> {
        parse(text, &dir.join("c.toml"), &|name| name == "SET_VAR")
    }

    fn problem_keys(result: Result<Campaign, Vec<Problem>>) -> Vec<String> {
        match result {
            Ok(_) => Vec::new(),
            Err(problems) => problems.into_iter().map(|p| p.key).collect(),
        }
    }

    #[test]
    fn minimal_campaign_gets_defaults() {
        let dir = fixture_dir();
        let campaign = parse_in(dir.path(), MINIMAL).unwrap();
        assert_eq!(campaign.name, "c");
        assert_eq!(campaign.delivery.mode, Mode::Relay);
        assert_eq!(campaign.delivery.connections, 32);
        assert_eq!(campaign.delivery.max_attempts, 3);
        assert_eq!(campaign.delivery.uncertain, UncertainPolicy::Resend);
        assert_eq!(campaign.recipients.email_column, None);
        assert_eq!(campaign.relays[0].port, 587);
        assert_eq!(campaign.relays[0].security, Security::StartTls);
        assert_eq!(campaign.relays[0].name, "relay 1");
        assert_eq!(campaign.message.html, Some(dir.path().join("body.html")));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let dir = fixture_dir();
        let text = r#"
[message]
from = "nobody"
subject = "x"
html = "missing.html"
[recipients]
csv = "list.csv"
[delivery]
mode = "carrier-pigeon"
connections = 0
conections = 5
[[relay]]
port = 99999
username = "u"
password_env = "UNSET_VAR"
"#;
        let keys = problem_keys(parse_in(dir.path(), text));
        for expected in [
            "message.from",
            "message.html",
            "delivery.mode",
            "delivery.connections",
            "delivery.conections",
            "relay[1].host",
            "relay[1].port",
            "relay[1].password_env",
        ] {
            assert!(
                keys.contains(&expected.to_string()),
                "{expected} missing in {keys:?}"
            );
        }
    }

    #[test]
    fn the_list_key_is_csv_by_a_clearer_name() {
        let dir = fixture_dir();
        std::fs::write(dir.path().join("people.xlsx"), "x").unwrap();
        let listed = MINIMAL.replace("csv = \"list.csv\"", "list = \"people.xlsx\"");
        let campaign = parse_in(dir.path(), &listed).unwrap();
        assert_eq!(campaign.recipients.csv, dir.path().join("people.xlsx"));
        let both = MINIMAL.replace(
            "csv = \"list.csv\"",
            "csv = \"list.csv\"\nlist = \"people.xlsx\"",
        );
        assert_eq!(
            problem_keys(parse_in(dir.path(), &both)),
            vec!["recipients.list"]
        );
        let neither = MINIMAL.replace("csv = \"list.csv\"", "");
        assert_eq!(
            problem_keys(parse_in(dir.path(), &neither)),
            vec!["recipients.list"]
        );
        let missing = MINIMAL.replace("csv = \"list.csv\"", "list = \"gone.ods\"");
        assert_eq!(
            problem_keys(parse_in(dir.path(), &missing)),
            vec!["recipients.list"]
        );
        let named = MINIMAL.replace(
            "csv = \"list.csv\"",
            "csv = \"list.csv\"\nemail_column = \"Mail\"",
        );
        let campaign = parse_in(dir.path(), &named).unwrap();
        assert_eq!(campaign.recipients.email_column.as_deref(), Some("Mail"));
        let empty = MINIMAL.replace(
            "csv = \"list.csv\"",
            "csv = \"list.csv\"\nemail_column = \" \"",
        );
        assert_eq!(
            problem_keys(parse_in(dir.path(), &empty)),
            vec!["recipients.email_column"]
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = fixture_dir();
        let text = format!("{MINIMAL}\n[[relay]]\nhost = \"b\"\nhots = \"c\"\n[extra]\n");
        let keys = problem_keys(parse_in(dir.path(), &text));
        assert_eq!(keys, vec!["extra".to_string(), "relay[2].hots".to_string()]);
    }

    #[test]
    fn modes_need_their_routes() {
        let dir = fixture_dir();
        let relayless = MINIMAL.replace("[[relay]]\nhost = \"smtp.acme.example\"\n", "");
        assert_eq!(
            problem_keys(parse_in(dir.path(), &relayless)),
            vec!["relay"]
        );
        let direct = format!("{relayless}[delivery]\nmode = \"direct\"\n");
        assert_eq!(
            problem_keys(parse_in(dir.path(), &direct)),
            vec!["direct.helo"]
        );
        let direct_ok = format!(
            "{direct}[direct]\nhelo = \"mail.acme.example\"\nnameservers = [\"127.0.0.1:5353\", \"::1\"]\n"
        );
        let campaign = parse_in(dir.path(), &direct_ok).unwrap();
        assert_eq!(campaign.direct.nameservers.len(), 2);
        assert_eq!(campaign.direct.public_ip, None);
        let with_ip = format!("{direct_ok}public_ip = \"192.0.2.7\"\n");
        let campaign = parse_in(dir.path(), &with_ip).unwrap();
        assert_eq!(campaign.direct.public_ip, "192.0.2.7".parse().ok());
        let bad_ip = format!("{direct_ok}public_ip = \"mail.acme.example\"\n");
        assert_eq!(
            problem_keys(parse_in(dir.path(), &bad_ip)),
            vec!["direct.public_ip"]
        );
        assert_eq!(campaign.direct.nameservers[1].port(), 53);
        assert!(!campaign.direct.tls_fallback);
        assert_eq!(campaign.direct.port, 25);
    }

    #[test]
    fn per_domain_limits_are_read_and_checked() {
        let dir = fixture_dir();
        let text = format!(
            "{MINIMAL}[direct]\nhelo = \"mail.acme.example\"\ntls_fallback = true\n\
             [[direct.domain]]\nname = \"Gmail.com\"\nconnections = 2\nmessages_per_connection = 20\nrate_per_hour = 1000\n\
             [[direct.domain]]\nname = \"yahoo.com\"\nconections = 3\n"
        );
        assert_eq!(
            problem_keys(parse_in(dir.path(), &text)),
            vec!["direct.domain[2].conections"]
        );
        let good = text.replace("conections = 3", "connections = 0");
        assert_eq!(
            problem_keys(parse_in(dir.path(), &good)),
            vec!["direct.domain[2].connections"]
        );
        let fixed = text.replace("conections = 3", "connections = 3");
        let campaign = parse_in(dir.path(), &fixed).unwrap();
        assert!(campaign.direct.tls_fallback);
        assert_eq!(
            campaign.direct.domains[0],
            DomainLimitsSpec {
                name: "gmail.com".into(),
                connections: Some(2),
                messages_per_connection: Some(20),
                rate_per_hour: Some(1000),
            }
        );
        assert_eq!(campaign.direct.domains[1].messages_per_connection, None);
    }

    #[test]
    fn password_env_must_be_set() {
        let dir = fixture_dir();
        let with_set = MINIMAL.replace(
            "host = \"smtp.acme.example\"",
            "host = \"h\"\nusername = \"u\"\npassword_env = \"SET_VAR\"",
        );
        assert!(parse_in(dir.path(), &with_set).is_ok());
    }

    #[test]
    fn managed_headers_cannot_be_overridden() {
        let dir = fixture_dir();
        let text = MINIMAL.replace(
            "html = \"body.html\"",
            "html = \"body.html\"\nheaders = { \"X-Campaign\" = \"nov\", \"Bcc\" = \"spy@x.example\" }",
        );
        assert_eq!(
            problem_keys(parse_in(dir.path(), &text)),
            vec!["message.headers.Bcc"]
        );
    }

    #[test]
    fn syntax_errors_are_one_clear_problem() {
        let dir = fixture_dir();
        let problems = parse_in(dir.path(), "[message\nfrom=").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].reason.contains("not valid TOML"));
    }

    #[test]
    fn retry_delay_uses_last_for_later_attempts() {
        let dir = fixture_dir();
        let text = format!("{MINIMAL}[delivery]\nretry_delays = [\"1m\", \"1h\"]\n");
        let campaign = parse_in(dir.path(), &text).unwrap();
        assert_eq!(campaign.delivery.retry_delay(1), Duration::from_secs(60));
        assert_eq!(campaign.delivery.retry_delay(2), Duration::from_secs(3_600));
        assert_eq!(campaign.delivery.retry_delay(7), Duration::from_secs(3_600));
    }
}
