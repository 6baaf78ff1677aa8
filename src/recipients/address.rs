//! One recipient's email address: parsing, validation and the derived forms
//! the rest of Herald needs (the text for the `To:` header, the ASCII form for
//! the SMTP envelope and MX lookups, and the key used to spot duplicates).
//!
//! This module owns the syntax rules only. It must never touch the network
//! (no DNS or MX checks), never print, and never panic on any input: every
//! problem comes back as an [`AddressError`] whose message a marketer can
//! read. The grammar is RFC 5321 §4.1.2 `Mailbox` (which is the RFC 5322
//! `addr-spec` without comments or folding whitespace), extended by
//! RFC 6531 §3.3 for UTF-8 local parts and internationalized domains.

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// RFC 5321 §4.5.3.1.1: a local part is at most 64 octets.
const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2: a domain is at most 255 octets; in practice DNS
/// limits a name to 253 characters without the trailing root dot
/// (RFC 1035 §2.3.4 counts length bytes, which adds two).
const MAX_DOMAIN: usize = 253;
/// RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the angle
/// brackets, which leaves 254 for the address itself.
const MAX_ADDRESS: usize = 254;
/// RFC 1035 §2.3.4: a DNS label is at most 63 octets.
const MAX_LABEL: usize = 63;

/// A syntactically valid mailbox address.
///
/// Equality compares the address exactly as given; use [`EmailAddress::key`]
/// to decide whether two addresses reach the same mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailAddress {
    /// The trimmed input, kept verbatim because the `To:` header should show
    /// what the marketer typed (including an internationalized domain).
    original: String,
    /// Byte offset of the separating '@' in `original`.
    at: usize,
    /// The domain as the DNS sees it: lower-case A-labels, or a normalized
    /// address literal including its brackets.
    ascii_domain: String,
}

/// Why an address was refused. Each message is a sentence meant for the
/// person who supplied the recipient list; the caller adds the address and
/// the line number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("the address is empty")]
    Empty,
    #[error("the address has no @ sign")]
    MissingAt,
    #[error("the address has more than one @ sign")]
    MultipleAt,
    #[error("the cell contains more than one address; put each address on its own row")]
    MultipleAddresses,
    #[error("the address contains a line break, which is not allowed in an address")]
    LineBreak,
    #[error("the address contains an invisible character, often left over from copy and paste")]
    ControlCharacter,
    #[error("the address contains a space or another blank character")]
    Whitespace,
    #[error(
        "the address contains < or >; enter only the address itself, without a name in front of it"
    )]
    AngleBrackets,
    #[error("the part before the @ is empty")]
    EmptyLocalPart,
    #[error("the part before the @ is {length} bytes long, but at most 64 are allowed")]
    LocalPartTooLong { length: usize },
    #[error("the part before the @ is not valid: {reason}")]
    BadLocalPart { reason: String },
    #[error("the part after the @ (the domain) is empty")]
    EmptyDomain,
    #[error("the domain is not valid: {reason}")]
    BadDomain { reason: String },
    #[error("the domain has no dot in it, so it cannot be a public mail domain")]
    DomainWithoutDot,
    #[error("the domain is {length} characters long, but at most 253 are allowed")]
    DomainTooLong { length: usize },
    #[error("the address is {length} bytes long, but at most 254 are allowed")]
    TooLong { length: usize },
}

impl EmailAddress {
    /// Parses and validates one address. Surrounding whitespace is ignored,
    /// because spreadsheet cells often carry stray spaces.
    pub fn parse(input: &str) -> Result<EmailAddress, AddressError> {
        let trimmed = input.trim();
        parse_plain(trimmed).map_or_else(|| parse_general(trimmed), Ok)
    }

    /// The address as given (trimmed), for the `To:` header.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// The part before the '@', exactly as given (quotes included).
    pub fn local_part(&self) -> &str {
        self.original.get(..self.at).unwrap_or_default()
    }

    /// The domain in its DNS form (lower-case, punycode), for MX lookups. For
    /// an address literal this is the normalized literal with its brackets,
    /// e.g. `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
    pub fn domain(&self) -> &str {
        &self.ascii_domain
    }

    /// `local@ascii-domain`, for the SMTP envelope (`MAIL FROM` / `RCPT TO`).
    /// A non-ASCII local part has no ASCII form, so it is kept as is and the
    /// message needs SMTPUTF8 (see [`EmailAddress::requires_smtputf8`]).
    pub fn to_ascii(&self) -> String {
        format!("{}@{}", self.local_part(), self.ascii_domain)
    }

    /// Whether delivering to this address needs the SMTPUTF8 extension
    /// (RFC 6531 §3.4): only a non-ASCII local part does, because the domain
    /// can always be sent as A-labels.
    pub fn requires_smtputf8(&self) -> bool {
        !self.local_part().is_ascii()
    }

    /// The duplicate-detection key: lower-cased local part, '@', ASCII
    /// domain. RFC 5321 §2.4 lets a server treat local parts as
    /// case-sensitive, but virtually none do, and mailing `Ann@x` and `ann@x`
    /// twice is the worse mistake for a bulk mailer. A quoted local part that
    /// does not need its quotes is unquoted first, since RFC 5321 §4.1.2 makes
    /// `"ann"@x` and `ann@x` the same mailbox.
    pub fn key(&self) -> String {
        let local = canonical_local_part(self.local_part());
        // Built in place: an import computes a million of these. ASCII lower-casing is what
        // `to_lowercase` does to ASCII text.
        let mut key = if local.is_ascii() {
            let mut key = String::with_capacity(local.len() + 1 + self.ascii_domain.len());
            key.push_str(&local);
            key.make_ascii_lowercase();
            key
        } else {
            local.to_lowercase()
        };
        key.push('@');
        key.push_str(&self.ascii_domain);
        key
    }

    /// The address as given (trimmed), without copying it.
    pub fn into_string(self) -> String {
        self.original
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl FromStr for EmailAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EmailAddress::parse(s)
    }
}

/// The full grammar: for every address [`parse_plain`] leaves to it, and to explain each refusal.
fn parse_general(trimmed: &str) -> Result<EmailAddress, AddressError> {
    if trimmed.is_empty() {
        return Err(AddressError::Empty);
    }
    // Checked before anything else: a CR or LF inside an address is the
    // classic header-injection vector (RFC 5322 §2.2 ends a header field
    // at CRLF), so it gets its own, unambiguous refusal.
    if trimmed.contains(['\r', '\n']) {
        return Err(AddressError::LineBreak);
    }
    if trimmed.chars().any(is_invisible) {
        return Err(AddressError::ControlCharacter);
    }

    let at = find_separator(trimmed)?;
    let (Some(local), Some(domain)) = (trimmed.get(..at), trimmed.get(at + 1..)) else {
        return Err(AddressError::MissingAt);
    };

    check_local_part(local)?;
    if domain.is_empty() {
        return Err(AddressError::EmptyDomain);
    }
    let ascii_domain = normalize_domain(domain)?;

    // Both forms travel on the wire: the given one in headers and, when
    // the server lacks SMTPUTF8, the ASCII one in the envelope.
    let length = trimmed.len().max(local.len() + 1 + ascii_domain.len());
    if length > MAX_ADDRESS {
        return Err(AddressError::TooLong { length });
    }

    Ok(EmailAddress {
        original: trimmed.to_owned(),
        at,
        ascii_domain,
    })
}

/// Bytes a plain address may hold before its '@': RFC 5322 `atext` in ASCII, and the dot.
const PLAIN_LOCAL: [bool; 128] =
    byte_set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~.");
/// Bytes a plain domain may hold: letters, digits, hyphens and dots.
const PLAIN_DOMAIN: [bool; 128] =
    byte_set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.");

const fn byte_set(bytes: &[u8]) -> [bool; 128] {
    let mut set = [false; 128];
    let mut index = 0;
    while index < bytes.len() {
        set[bytes[index] as usize] = true;
        index += 1;
    }
    set
}

fn in_set(set: &[bool; 128], byte: u8) -> bool {
    set.get(usize::from(byte)).copied().unwrap_or(false)
}

/// The address as almost every list writes it, accepted in one pass over its bytes: an ASCII
/// dot-atom, one '@', and a domain of letters, digits and hyphens that needs no IDNA mapping
/// beyond lower-casing. Anything else, valid or not, is `None` and goes to [`parse_general`],
/// which accepts every address this accepts, with the same result (a test holds the two
/// together); this only spares an import of a million rows the general grammar's cost.
fn parse_plain(trimmed: &str) -> Option<EmailAddress> {
    let bytes = trimmed.as_bytes();
    let at = bytes.iter().position(|&byte| byte == b'@')?;
    let (local, domain) = (bytes.get(..at)?, bytes.get(at + 1..)?);
    let plain_local = !local.is_empty()
        && local.len() <= MAX_LOCAL_PART
        && local.iter().all(|&byte| in_set(&PLAIN_LOCAL, byte))
        && local.first() != Some(&b'.')
        && local.last() != Some(&b'.')
        && !local.windows(2).any(|pair| pair == b"..");
    if !plain_local || domain.is_empty() || domain.len() > MAX_DOMAIN || bytes.len() > MAX_ADDRESS {
        return None;
    }
    let mut labels = 0;
    let mut last_all_digits = false;
    for label in domain.split(|&byte| byte == b'.') {
        let well_formed = !label.is_empty()
            && label.len() <= MAX_LABEL
            && label.first() != Some(&b'-')
            && label.last() != Some(&b'-')
            && label
                .iter()
                .all(|&byte| in_set(&PLAIN_DOMAIN, byte) && byte != b'.');
        // A-labels are left to UTS #46, which checks them.
        let a_label = label
            .get(..4)
            .is_some_and(|head| head.eq_ignore_ascii_case(b"xn--"));
        if !well_formed || a_label {
            return None;
        }
        labels += 1;
        last_all_digits = label.iter().all(u8::is_ascii_digit);
    }
    if labels < 2 || last_all_digits {
        return None;
    }
    Some(EmailAddress {
        original: trimmed.to_owned(),
        at,
        ascii_domain: trimmed.get(at + 1..)?.to_ascii_lowercase(),
    })
}

/// Finds the '@' that separates local part from domain, refusing inputs that
/// hold several addresses or display-name syntax. Quotes matter: inside a
/// quoted local part '@', ',' and spaces are ordinary characters
/// (RFC 5321 §4.1.2 `Quoted-string`).
fn find_separator(s: &str) -> Result<usize, AddressError> {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut last_at = None;
    let mut at_count = 0usize;
    let mut separator = false;
    let mut whitespace = false;
    let mut angle = false;

    for (i, c) in s.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '@' => {
                at_count += 1;
                last_at = Some(i);
            }
            ',' | ';' => separator = true,
            '<' | '>' => angle = true,
            c if c.is_whitespace() => whitespace = true,
            _ => {}
        }
    }

    if in_quotes {
        return Err(AddressError::BadLocalPart {
            reason: "an opening quote mark is never closed".into(),
        });
    }
    if at_count > 1 && (separator || whitespace) {
        return Err(AddressError::MultipleAddresses);
    }
    if angle {
        return Err(AddressError::AngleBrackets);
    }
    if whitespace {
        return Err(AddressError::Whitespace);
    }
    match (at_count, last_at) {
        (0, _) | (_, None) => Err(AddressError::MissingAt),
        (1, Some(at)) => Ok(at),
        _ => Err(AddressError::MultipleAt),
    }
}

/// Control characters, which no part of an address may hold (RFC 5321
/// §4.1.2, RFC 6531 §3.3), plus the zero-width and direction marks that
/// copy and paste from web pages and word processors leaves behind: valid
/// UTF-8, but never intended, and invisible in the marketer's spreadsheet.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{FEFF}'
        )
}

/// RFC 5322 §3.2.3 `atext`, widened by RFC 6531 §3.3 to any non-ASCII
/// character (control characters were already refused by the caller).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn check_local_part(local: &str) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(AddressError::EmptyLocalPart);
    }
    if local.len() > MAX_LOCAL_PART {
        return Err(AddressError::LocalPartTooLong {
            length: local.len(),
        });
    }
    match local.strip_prefix('"') {
        Some(rest) => check_quoted(rest),
        None => check_dot_atom(local).map_err(|reason| AddressError::BadLocalPart {
            reason: reason.into(),
        }),
    }
}

/// RFC 5322 §3.2.3 `dot-atom-text`: atoms joined by single dots.
fn check_dot_atom(local: &str) -> Result<(), &'static str> {
    if local.starts_with('.') {
        return Err("it starts with a dot");
    }
    if local.ends_with('.') {
        return Err("it ends with a dot");
    }
    if local.contains("..") {
        return Err("it contains two dots in a row");
    }
    if local.contains('"') {
        return Err("quote marks must surround the whole part before the @");
    }
    if local.chars().any(|c| c != '.' && !is_atext(c)) {
        return Err(
            "it contains a character that is only allowed inside quotes, such as ( ) [ ] : \\ or ,",
        );
    }
    Ok(())
}

/// RFC 5321 §4.1.2 `Quoted-string`: printable ASCII (space included) with
/// backslash quoted-pairs; RFC 6531 §3.3 adds non-ASCII characters.
/// `rest` is the local part after its opening quote.
fn check_quoted(rest: &str) -> Result<(), AddressError> {
    let bad = |reason: &str| AddressError::BadLocalPart {
        reason: reason.into(),
    };
    let Some(inner) = rest.strip_suffix('"') else {
        return Err(bad("quote marks must surround the whole part before the @"));
    };
    // RFC 5321 allows `""@example.com`, but no real mailbox has an empty
    // name and such a recipient is always a data-entry mistake.
    if inner.is_empty() {
        return Err(AddressError::EmptyLocalPart);
    }
    let mut escaped = false;
    for c in inner.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Err(bad("quote marks must surround the whole part before the @"));
        }
    }
    // A trailing lone backslash would escape the closing quote.
    if escaped {
        return Err(bad("it ends with a backslash inside the quotes"));
    }
    Ok(())
}

/// The shortest equivalent spelling of a local part: quotes and needless
/// backslashes removed when the content is a plain dot-atom, otherwise the
/// content re-quoted with only the escapes RFC 5321 requires.
fn canonical_local_part(local: &str) -> Cow<'_, str> {
    let Some(inner) = local
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return Cow::Borrowed(local);
    };
    let mut content = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if !escaped && c == '\\' {
            escaped = true;
        } else {
            escaped = false;
            content.push(c);
        }
    }
    if check_dot_atom(&content).is_ok() {
        return Cow::Owned(content);
    }
    let mut quoted = String::with_capacity(content.len() + 2);
    quoted.push('"');
    for c in content.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    Cow::Owned(quoted)
}

/// Returns the DNS form of the domain, or an error explaining why no mail
/// server could be found for it.
fn normalize_domain(domain: &str) -> Result<String, AddressError> {
    if let Some(inner) = domain.strip_prefix('[') {
        return normalize_literal(inner);
    }
    let bad = |reason: &str| AddressError::BadDomain {
        reason: reason.into(),
    };
    if domain.contains(['[', ']']) {
        return Err(bad(
            "square brackets may only surround a whole IP address, such as [192.0.2.1]",
        ));
    }
    // UTS #46 processing (the IDNA2008 profile browsers use) lower-cases and
    // maps the name, then turns each non-ASCII label into an A-label
    // (RFC 5890 §2.3.2.1), which is what DNS and the SMTP envelope need.
    // Letters, digits, hyphens and dots, and no A-label to check: UTS #46 would only
    // lower-case it, and the label checks below do the rest. Most lists are all like this.
    let plain = domain
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !domain.split('.').any(|label| {
            label
                .get(..4)
                .is_some_and(|head| head.eq_ignore_ascii_case("xn--"))
        });
    let ascii = if plain {
        domain.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(domain)
            .map_err(|_| bad("it is not a valid domain name (check the spelling)"))?
    };
    if ascii.is_empty() {
        return Err(AddressError::EmptyDomain);
    }
    if ascii.len() > MAX_DOMAIN {
        return Err(AddressError::DomainTooLong {
            length: ascii.len(),
        });
    }
    if ascii.ends_with('.') {
        return Err(bad("it ends with a dot"));
    }
    if !ascii.contains('.') {
        // A single-label name only resolves inside some private network;
        // RFC 5321 §2.3.5 asks for fully-qualified names.
        return Err(AddressError::DomainWithoutDot);
    }
    for label in ascii.split('.') {
        check_label(label).map_err(bad)?;
    }
    // Top-level domains are never numeric (RFC 3696 §2); an all-digit last
    // label means someone wrote an IP address without the brackets.
    let last = ascii.rsplit('.').next().unwrap_or_default();
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            "it ends in a number; an IP address must be written in square brackets, such as [192.0.2.1]",
        ));
    }
    Ok(ascii)
}

/// RFC 1035 §2.3.1 "preferred name syntax" as relaxed by RFC 1123 §2.1
/// (labels may start with a digit).
fn check_label(label: &str) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("it contains an empty part (two dots in a row, or a dot at the start)");
    }
    if label.len() > MAX_LABEL {
        return Err("one of its parts between dots is longer than 63 characters");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("a part between dots starts or ends with a hyphen");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err("it contains a character other than letters, digits, hyphens and dots");
    }
    Ok(())
}

/// RFC 5321 §4.1.3 address literals. `inner` is the text after '['. Only
/// IPv4 and IPv6 literals are accepted; the General-address-literal form has
/// no registered tags that any mail server uses.
fn normalize_literal(inner: &str) -> Result<String, AddressError> {
    let bad = |reason: &str| AddressError::BadDomain {
        reason: reason.into(),
    };
    let Some(body) = inner.strip_suffix(']') else {
        return Err(bad("an opening [ is not closed by ]"));
    };
    // ABNF literal strings such as "IPv6:" are case-insensitive (RFC 5234 §2.3).
    let ipv6 = body
        .get(..5)
        .filter(|tag| tag.eq_ignore_ascii_case("IPv6:"))
        .and_then(|_| body.get(5..));
    if let Some(v6) = ipv6 {
        return v6
            .parse::<Ipv6Addr>()
            .map(|ip| format!("[IPv6:{ip}]"))
            .map_err(|_| bad("the part in square brackets is not a valid IPv6 address"));
    }
    body.parse::<Ipv4Addr>()
        .map(|ip| format!("[{ip}]"))
        .map_err(|_| {
            bad("the part in square brackets is not an IP address such as [192.0.2.1] or [IPv6:2001:db8::1]")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected outcome of one case: `Ok(key)` or the error variant name.
    fn check(input: &str, expected: Result<&str, &str>) {
        let got = EmailAddress::parse(input);
        match (&got, expected) {
            (Ok(addr), Ok(key)) => assert_eq!(addr.key(), key, "input {input:?}"),
            (Err(err), Err(variant)) => {
                let debug = format!("{err:?}");
                assert!(
                    debug.starts_with(variant),
                    "input {input:?}: expected {variant}, got {debug}"
                );
            }
            _ => panic!("input {input:?}: expected {expected:?}, got {got:?}"),
        }
    }

    #[test]
    fn plain_domains_and_a_labels_take_their_own_paths_to_the_same_rules() {
        check("a@Sub.Example.COM", Ok("a@sub.example.com"));
        check("a@XN--BCHER-KVA.example", Ok("a@xn--bcher-kva.example"));
        check("a@xn--zz.example", Err("BadDomain"));
        check("a@bücher.example", Ok("a@xn--bcher-kva.example"));
        check("a@-lead.example", Err("BadDomain"));
        check("a@two..dots.example", Err("BadDomain"));
        check("a@localhost", Err("DomainWithoutDot"));
        check("a@example.123", Err("BadDomain"));
    }

    #[test]
    fn valid_addresses() {
        check("user@example.com", Ok("user@example.com"));
        check("  user@example.com \t", Ok("user@example.com"));
        check("User.Name@Example.COM", Ok("user.name@example.com"));
        check("user+tag@example.com", Ok("user+tag@example.com"));
        check("a.b.c@sub.example.co.uk", Ok("a.b.c@sub.example.co.uk"));
        check("o'brien@example.ie", Ok("o'brien@example.ie"));
        check(
            "x!#$%&'*+-/=?^_`{|}~@example.com",
            Ok("x!#$%&'*+-/=?^_`{|}~@example.com"),
        );
        check("1234@example.com", Ok("1234@example.com"));
        check("a@b.co", Ok("a@b.co"));
        check("a@x-y.example", Ok("a@x-y.example"));
        check("a@123.example.com", Ok("a@123.example.com"));
        check("\"john doe\"@example.com", Ok("\"john doe\"@example.com"));
        check("\"john\"@example.com", Ok("john@example.com"));
        check("\"a@b\"@example.com", Ok("\"a@b\"@example.com"));
        check("\"a,b\"@example.com", Ok("\"a,b\"@example.com"));
        check(
            "\"quote\\\"d\"@example.com",
            Ok("\"quote\\\"d\"@example.com"),
        );
        check(
            "\"back\\\\slash\"@example.com",
            Ok("\"back\\\\slash\"@example.com"),
        );
        check(
            "\"needless\\escape\"@example.com",
            Ok("needlessescape@example.com"),
        );
        check("user@bücher.example", Ok("user@xn--bcher-kva.example"));
        check("user@BÜCHER.example", Ok("user@xn--bcher-kva.example"));
        check(
            "user@xn--bcher-kva.example",
            Ok("user@xn--bcher-kva.example"),
        );
        check("用户@例子.测试", Ok("用户@xn--fsqu00a.xn--0zwm56d"));
        check("JOSÉ@example.com", Ok("josé@example.com"));
        check("user@[192.0.2.1]", Ok("user@[192.0.2.1]"));
        check("user@[IPv6:2001:db8::1]", Ok("user@[IPv6:2001:db8::1]"));
        check("user@[ipv6:2001:DB8:0::1]", Ok("user@[IPv6:2001:db8::1]"));
    }

    #[test]
    fn invalid_addresses() {
        check("", Err("Empty"));
        check("   ", Err("Empty"));
        check("userexample.com", Err("MissingAt"));
        check("a@b@example.com", Err("MultipleAt"));
        check("a@b.com, c@d.com", Err("MultipleAddresses"));
        check("a@b.com;c@d.com", Err("MultipleAddresses"));
        check("a@b.com c@d.com", Err("MultipleAddresses"));
        check("a@b.com\r\nBcc: x@y.com", Err("LineBreak"));
        check("a@b.com\nx", Err("LineBreak"));
        check("a\u{0}b@example.com", Err("ControlCharacter"));
        check("a\tb@example.com", Err("ControlCharacter"));
        check("\u{FEFF}a@example.com", Err("ControlCharacter"));
        check("a\u{200B}@example.com", Err("ControlCharacter"));
        check("a@exam\u{200E}ple.com", Err("ControlCharacter"));
        check("john doe@example.com", Err("Whitespace"));
        check("a@exa mple.com", Err("Whitespace"));
        check("a\u{a0}b@example.com", Err("Whitespace"));
        check("John <john@example.com>", Err("AngleBrackets"));
        check("<john@example.com>", Err("AngleBrackets"));
        check("@example.com", Err("EmptyLocalPart"));
        check("\"\"@example.com", Err("EmptyLocalPart"));
        check(
            &format!("{}@example.com", "a".repeat(65)),
            Err("LocalPartTooLong"),
        );
        check(".user@example.com", Err("BadLocalPart"));
        check("user.@example.com", Err("BadLocalPart"));
        check("us..er@example.com", Err("BadLocalPart"));
        check("a,b@example.com", Err("BadLocalPart"));
        check("a(b)@example.com", Err("BadLocalPart"));
        check("a\"b\"@example.com", Err("BadLocalPart"));
        check("\"open@example.com", Err("BadLocalPart"));
        check("\"a\"b@example.com", Err("BadLocalPart"));
        check("\"a\\\"@example.com", Err("BadLocalPart"));
        check("user@", Err("EmptyDomain"));
        check("a@b", Err("DomainWithoutDot"));
        check("a@localhost", Err("DomainWithoutDot"));
        check("a@example.com.", Err("BadDomain"));
        check("a@.example.com", Err("BadDomain"));
        check("a@exa..mple.com", Err("BadDomain"));
        check("a@-b.com", Err("BadDomain"));
        check("a@b-.com", Err("BadDomain"));
        check("a@b_c.com", Err("BadDomain"));
        check("a@1.2.3.4", Err("BadDomain"));
        check("a@example.123", Err("BadDomain"));
        check("a@[1.2.3]", Err("BadDomain"));
        check("a@[1.2.3.4", Err("BadDomain"));
        check("a@[IPv6:zz::1]", Err("BadDomain"));
        check("a@[x:y]", Err("BadDomain"));
        check("a@b[1].com", Err("BadDomain"));
        check(&format!("a@{}.com", "l".repeat(64)), Err("BadDomain"));
        check(
            &format!("a@{}com", "abcdefghi.".repeat(26)),
            Err("DomainTooLong"),
        );
        check(
            &format!("{}@{}com", "a".repeat(64), "abcdefghi.".repeat(19)),
            Err("TooLong"),
        );
    }

    #[test]
    fn accessors() {
        let a = EmailAddress::parse(" Ann.Lee+news@Bücher.Example ").unwrap();
        assert_eq!(a.as_str(), "Ann.Lee+news@Bücher.Example");
        assert_eq!(a.to_string(), "Ann.Lee+news@Bücher.Example");
        assert_eq!(a.local_part(), "Ann.Lee+news");
        assert_eq!(a.domain(), "xn--bcher-kva.example");
        assert_eq!(a.to_ascii(), "Ann.Lee+news@xn--bcher-kva.example");
        assert_eq!(a.key(), "ann.lee+news@xn--bcher-kva.example");
        assert!(!a.requires_smtputf8());

        let q: EmailAddress = "\"a@b\"@example.com".parse().unwrap();
        assert_eq!(q.local_part(), "\"a@b\"");
        assert_eq!(q.domain(), "example.com");

        let lit = EmailAddress::parse("x@[192.0.2.1]").unwrap();
        assert_eq!(lit.domain(), "[192.0.2.1]");

        assert!(
            EmailAddress::parse("josé@example.com")
                .unwrap()
                .requires_smtputf8()
        );
    }

    #[test]
    fn messages_are_sentences() {
        let err = EmailAddress::parse("a@b.com, c@d.com").unwrap_err();
        assert!(err.to_string().contains("more than one address"));
        let err = EmailAddress::parse("a@-b.com").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the domain is not valid: a part between dots starts or ends with a hyphen"
        );
    }

    /// The one-pass parser agrees with the full grammar on every address it accepts, and
    /// accepts the plain ones. Inputs are drawn from an alphabet heavy in the characters where
    /// the rules live: dots, hyphens, '@', quotes, digits, case, "xn--", brackets, non-ASCII.
    #[test]
    fn plain_parser_agrees_with_the_full_grammar() {
        const PIECES: &[&str] = &[
            "a", "Z", "x", "0", "+", "_", ".", "..", "-", "@", "\"", "!", "~", "9", "xn--", "XN--",
            "com", "example", ".org", "[", "]", " ", ",", "é", "\u{200b}", "1.2", "\\",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % bound as u64).unwrap_or(0)
        };
        let mut accepted = 0;
        for _ in 0..60_000 {
            // Shaped like an address, then bent: a piece put anywhere, often more than once.
            let mut pieces: Vec<&str> = Vec::new();
            for _ in 0..1 + next(3) {
                pieces.push(PIECES[next(6)]);
            }
            pieces.push("@");
            for label in 0..1 + next(3) {
                if label > 0 {
                    pieces.push(".");
                }
                pieces.push(["b", "Ex", "com", "9", "a-b", "xn--"][next(6)]);
            }
            for _ in 0..next(3) {
                let at = next(pieces.len() + 1);
                pieces.insert(at, PIECES[next(PIECES.len())]);
            }
            let input: String = pieces.concat();
            let trimmed = input.trim();
            if let Some(plain) = parse_plain(trimmed) {
                accepted += 1;
                assert_eq!(Ok(plain), parse_general(trimmed), "input {input:?}");
            } else if let Ok(general) = parse_general(trimmed)
                && trimmed.is_ascii()
                && !trimmed.contains(['"', '['])
                && !trimmed.to_ascii_lowercase().contains("xn--")
            {
                panic!("{input:?} is plain but was left to the full grammar: {general:?}");
            }
        }
        assert!(accepted > 5_000, "only {accepted} inputs were plain");
        let long_label = format!("a@{}.example", "b".repeat(64));
        let long_local = format!("{}@example.org", "c".repeat(65));
        for input in ["Ann.Lee+news@Example.ORG", "a@b.c0m", "x@mail.example.org"] {
            assert_eq!(parse_plain(input), Some(parse_general(input).unwrap()));
        }
        for input in [
            "a@b.123",
            "a@xn--bcher-kva.example",
            "a@-b.com",
            "a@b-.com",
            ".a@b.com",
            "a.@b.com",
            "a..b@c.com",
            "a@b..com",
            "a@b.com.",
            "a@localhost",
            "a@b@c.com",
            "\"a\"@b.com",
            long_label.as_str(),
            long_local.as_str(),
        ] {
            assert_eq!(parse_plain(input), None, "input {input:?}");
        }
    }
}
