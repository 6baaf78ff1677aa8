//! MTA-STS as text, with no I/O: the `_mta-sts` TXT record (RFC 8461 §3.1), the policy file
//! (§3.2) and the MX pattern match (§4.1). Everything here is a plain function of its input, so
//! a hostile record or policy can only ever be refused, never crash or stall anything.

/// The largest `max_age` RFC 8461 §3.2 allows: about one year.
pub const MAX_AGE_LIMIT_SECS: u64 = 31_557_600;

/// What a domain asks of senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only to listed MX hosts over verified TLS.
    Enforce,
    /// Deliver as usual, and report what enforcement would refuse.
    Testing,
    /// The domain withdrew its policy (RFC 8461 §8.3).
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// A parsed policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// MX patterns, lower case without a trailing dot (`mx.example.org`, `*.example.net`).
    pub mx: Vec<String>,
    /// How long the policy may be cached, already bounded by [`MAX_AGE_LIMIT_SECS`].
    pub max_age_secs: u64,
}

impl Policy {
    /// Whether `host` (an MX host name) is one the policy lists.
    pub fn allows(&self, host: &str) -> bool {
        self.mx.iter().any(|pattern| mx_matches(pattern, host))
    }

    /// The patterns as a reader sees them: "mx1.example.org or *.example.net".
    pub fn patterns(&self) -> String {
        self.mx.join(" or ")
    }
}

/// Why a policy file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy has no \"version: STSv1\" line")]
    Version,
    #[error("the policy's mode is missing or not enforce, testing or none")]
    Mode,
    #[error("the policy's max_age is missing or not a number of seconds")]
    MaxAge,
    #[error("the policy lists no mx pattern")]
    NoMx,
    #[error("the policy is not text")]
    NotText,
}

/// The policy id of a domain's `_mta-sts` TXT records, or None when the records do not make
/// exactly one valid STSv1 record. RFC 8461 §3.1: records that do not begin with `v=STSv1;`
/// are discarded; if the number left is not one, or it does not parse, the domain has no
/// available policy.
pub fn txt_id(records: &[String]) -> Option<String> {
    let mut candidates = records.iter().filter(|record| starts_sts(record));
    let record = candidates.next()?;
    if candidates.next().is_some() {
        return None;
    }
    parse_txt(record)
}

/// `v=STSv1` followed by the field delimiter (`*WSP ";" *WSP`).
fn starts_sts(record: &str) -> bool {
    record
        .strip_prefix("v=STSv1")
        .is_some_and(|rest| rest.trim_start_matches([' ', '\t']).starts_with(';'))
}

/// `v=STSv1; id=ALNUM{1,32}; [ext fields]`; extension fields are ignored.
fn parse_txt(record: &str) -> Option<String> {
    let mut fields = record
        .split(';')
        .map(|field| field.trim_matches([' ', '\t']));
    if fields.next()? != "v=STSv1" {
        return None;
    }
    let mut id = None;
    for field in fields {
        if field.is_empty() {
            continue;
        }
        let (name, value) = field.split_once('=')?;
        if name == "id" && id.is_none() {
            let valid = (1..=32).contains(&value.len())
                && value.bytes().all(|byte| byte.is_ascii_alphanumeric());
            if !valid {
                return None;
            }
            id = Some(value.to_string());
        }
    }
    id
}

/// Parses a policy file (RFC 8461 §3.2): `key: value` lines ending in CRLF or LF. Unknown keys
/// are ignored; of a key other than `mx` given twice the first counts. `max_age` above the
/// RFC's one-year limit is cut to it.
pub fn parse_policy(body: &[u8]) -> Result<Policy, PolicyError> {
    let text = std::str::from_utf8(body).map_err(|_| PolicyError::NotText)?;
    let (mut version, mut mode, mut max_age) = (None, None, None);
    let mut mx = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim_matches([' ', '\t', '\r']);
        match key {
            "version" => version = version.or(Some(value)),
            "mode" => mode = mode.or(Some(value)),
            "max_age" => max_age = max_age.or(Some(value)),
            "mx" => mx.push(value.trim_end_matches('.').to_ascii_lowercase()),
            _ => {}
        }
    }
    if version != Some("STSv1") {
        return Err(PolicyError::Version);
    }
    let mode = match mode {
        Some("enforce") => Mode::Enforce,
        Some("testing") => Mode::Testing,
        Some("none") => Mode::None,
        _ => return Err(PolicyError::Mode),
    };
    let max_age_secs = max_age
        .filter(|digits| (1..=10).contains(&digits.len()))
        .filter(|digits| digits.bytes().all(|byte| byte.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u64>().ok())
        .ok_or(PolicyError::MaxAge)?
        .min(MAX_AGE_LIMIT_SECS);
    mx.retain(|pattern| !pattern.is_empty());
    if mx.is_empty() && mode != Mode::None {
        return Err(PolicyError::NoMx);
    }
    Ok(Policy {
        mode,
        mx,
        max_age_secs,
    })
}

/// RFC 8461 §4.1: an MX host matches a pattern when they are equal (ignoring case and a
/// trailing dot), or the pattern is `*.` and a suffix that the host has after exactly one
/// more label (`*.example.com` matches `mx1.example.com`, not `a.b.example.com` nor
/// `example.com`).
pub fn mx_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => !pattern.is_empty() && pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(list: &[&str]) -> Vec<String> {
        list.iter().map(|record| record.to_string()).collect()
    }

    #[test]
    fn txt_records_give_one_id_or_none() {
        let check = |list: &[&str], expected: Option<&str>| {
            assert_eq!(txt_id(&records(list)).as_deref(), expected, "{list:?}");
        };
        check(&["v=STSv1; id=20160831085700Z;"], Some("20160831085700Z"));
        check(&["v=STSv1;id=abc"], Some("abc"));
        check(&["v=STSv1 ; id=abc ; ext=1"], Some("abc"));
        check(&["v=spf1 -all", "v=STSv1; id=a1"], Some("a1"));
        // Two STS records, or none: no policy (RFC 8461 §3.1).
        check(&["v=STSv1; id=a1", "v=STSv1; id=a2"], None);
        check(&["v=spf1 -all"], None);
        check(&[], None);
        // Malformed ids and records.
        check(&["v=STSv1; id="], None);
        check(&["v=STSv1; id=has-dash"], None);
        check(&[&format!("v=STSv1; id={}", "a".repeat(33))], None);
        check(&["v=STSv1;"], None);
        check(&["v=STSv10; id=a"], None);
        check(&["v=stsv1; id=a"], None);
        check(&["v=STSv1; garbage"], None);
    }

    #[test]
    fn policies_parse_and_bad_ones_are_refused() {
        let policy = parse_policy(
            b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET.\r\nmax_age: 604800\r\n",
        );
        assert_eq!(
            policy,
            Ok(Policy {
                mode: Mode::Enforce,
                mx: vec!["mail.example.com".into(), "*.example.net".into()],
                max_age_secs: 604_800,
            })
        );
        let check = |body: &str, expected: Result<Mode, PolicyError>| {
            assert_eq!(
                parse_policy(body.as_bytes()).map(|policy| policy.mode),
                expected,
                "{body:?}"
            );
        };
        check(
            "version: STSv1\nmode: testing\nmx: a.b\nmax_age: 1\nextra: yes\n",
            Ok(Mode::Testing),
        );
        check("version: STSv1\nmode: none\nmax_age: 1", Ok(Mode::None));
        check(
            "version:STSv1\nmode:enforce\nmx:a.b\nmax_age:0",
            Ok(Mode::Enforce),
        );
        check(
            "mode: enforce\nmx: a.b\nmax_age: 1",
            Err(PolicyError::Version),
        );
        check(
            "version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1",
            Err(PolicyError::Version),
        );
        check(
            "version: STSv1\nmode: Enforce\nmx: a.b\nmax_age: 1",
            Err(PolicyError::Mode),
        );
        check(
            "version: STSv1\nmx: a.b\nmax_age: 1",
            Err(PolicyError::Mode),
        );
        check(
            "version: STSv1\nmode: enforce\nmax_age: 1",
            Err(PolicyError::NoMx),
        );
        check(
            "version: STSv1\nmode: enforce\nmx: a.b",
            Err(PolicyError::MaxAge),
        );
        check(
            "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1",
            Err(PolicyError::MaxAge),
        );
        check(
            "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 12345678901",
            Err(PolicyError::MaxAge),
        );
        assert_eq!(parse_policy(&[0xff, 0xfe]), Err(PolicyError::NotText));
    }

    #[test]
    fn max_age_is_bounded_by_a_year() {
        let policy = parse_policy(b"version: STSv1\nmode: testing\nmx: a.b\nmax_age: 9999999999")
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(policy.max_age_secs, MAX_AGE_LIMIT_SECS);
    }

    #[test]
    fn mx_patterns_match_one_label_for_a_wildcard() {
        let check = |pattern: &str, host: &str, expected: bool| {
            assert_eq!(mx_matches(pattern, host), expected, "{pattern} vs {host}");
        };
        check("mail.example.com", "mail.example.com", true);
        check("mail.example.com", "MAIL.Example.com.", true);
        check("mail.example.com.", "mail.example.com", true);
        check("mail.example.com", "mail2.example.com", false);
        check("*.example.com", "mx1.example.com", true);
        check("*.example.com", "MX1.EXAMPLE.COM", true);
        check("*.example.com", "a.b.example.com", false);
        check("*.example.com", "example.com", false);
        check("*.example.com", ".example.com", false);
        check("*.example.com", "mx1.example.com.evil", false);
        check("", "mx1.example.com", false);
        check("*example.com", "mx.example.com", false);
    }
}
