//! How a failed or delayed recipient counts (issue #13, item 5): hard (the address is dead),
//! soft (try again, count toward `soft_limit`) or blocked (the sender's problem: policy, spam,
//! block lists, authentication — never the recipient's fault, never suppresses). The RFC 3463
//! enhanced code decides where it is specific; the SMTP code and the diagnostic text decide
//! the rest. Where nothing decides, the answer is soft: a wrong soft costs a few more tries, a
//! wrong hard loses a live address for good.

use super::{Action, Class, RecipientStatus};

/// What a server's words say happened, read from the phrase table below (issue #21): the
/// wording MTAs and providers use for each kind of failure, matched in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wording {
    /// No such mailbox at that domain.
    UserUnknown,
    /// No such domain, or no way to reach it.
    HostUnknown,
    /// The mailbox exists but takes no more mail now.
    MailboxFull,
    /// Block lists, spam, authentication: the sender's problem.
    Policy,
}

/// Block lists, spam and authentication: the sender's problem whatever code came with it.
const POLICY: &[&str] = &[
    "spamhaus",
    "spamcop",
    "barracuda",
    "sorbs",
    "blocklist",
    "block list",
    "blacklist",
    "black list",
    "denylist",
    "blocked using",
    "listed at",
    "listed in",
    "dnsbl",
    " rbl",
    "spf",
    "dkim",
    "dmarc",
    "authentication level",
    "not authenticated",
    "unauthenticated",
    "reputation",
    "spam",
    "junk mail",
    "bulk mail",
];

/// The mailbox does not exist: Postfix, Exim, sendmail, qmail, Exchange, Gmail, Yahoo, and
/// Japanese carriers' notices (宛先不明 "unknown destination", 存在しません "does not exist").
const USER_UNKNOWN: &[&str] = &[
    "user unknown",
    "unknown user",
    "unknown recipient",
    "recipient unknown",
    "account is unknown",
    "unknown account",
    "unknown local part",
    "no such user",
    "no such mailbox",
    "no such recipient",
    "no such person",
    "no mailbox",
    "mailbox not found",
    "mailbox unavailable",
    "mailbox does not exist",
    "user not found",
    "recipient not found",
    "recipnotfound",
    "recipientnotfound",
    "address not found",
    "address couldn't be found",
    "address could not be found",
    "invalid recipient",
    "not a valid recipient",
    "invalid mailbox",
    "宛先不明",
    "存在しません",
    "存在しない",
];

/// The domain does not exist or cannot be routed to: Postfix's "Host or domain name not
/// found", sendmail's "Host unknown", Exim's "Unrouteable address", OpenSMTPD's "Domain does
/// not exist".
const HOST_UNKNOWN: &[&str] = &[
    "host unknown",
    "unknown host",
    "no such domain",
    "domain not found",
    "domain does not exist",
    "host not found",
    "host or domain name not found",
    "name service error",
    "unrouteable address",
    "unroutable address",
    "bad destination",
];

/// Other words of a dead address, weaker than the two lists above: they decide only where no
/// code does.
const GONE: &[&str] = &[
    "does not exist",
    "doesn't exist",
    "not exist",
    "doesn't have a",
    "invalid address",
    "account disabled",
    "account is disabled",
    "account has been disabled",
    "account is inactive",
    "no longer active",
    "user disabled",
    "not our customer",
    "no longer available",
    "user doesn't",
];

/// The mailbox is full (Japanese carriers: 容量 "capacity", 満杯 "full").
const MAILBOX_FULL: &[&str] = &[
    "mailbox full",
    "mailbox is full",
    "over quota",
    "overquota",
    "quota exceeded",
    "exceeded storage",
    "insufficient storage",
    "insufficient system storage",
    "容量",
    "満杯",
];

/// Other words of a failure worth another try.
const TRANSIENT: &[&str] = &[
    "recipsizelimit",
    "too big",
    "too large",
    "size limit",
    "exceeds the maximum",
    "temporar",
    "try again",
    "timed out",
    "timeout",
    "connection refused",
    "expired",
    "retry time",
];

/// Policy words weaker than the list above: they decide only when nothing else did.
const POLICY_WEAK: &[&str] = &[
    "policy",
    "blocked",
    "rejected for",
    "not authorized",
    "not permitted",
    "access denied",
    "refused",
    "content rejected",
];

impl Wording {
    /// The kind of failure `text` (lower case) words, strongest first: a block list named
    /// beside "user unknown" is still a block.
    pub fn of(text: &str) -> Option<Wording> {
        if contains_any(text, POLICY) {
            Some(Wording::Policy)
        } else if contains_any(text, USER_UNKNOWN) {
            Some(Wording::UserUnknown)
        } else if contains_any(text, HOST_UNKNOWN) {
            Some(Wording::HostUnknown)
        } else if contains_any(text, MAILBOX_FULL) {
            Some(Wording::MailboxFull)
        } else {
            None
        }
    }

    fn says_dead(self) -> bool {
        matches!(self, Wording::UserUnknown | Wording::HostUnknown)
    }
}

/// The class of one recipient's report.
pub fn classify(status: &RecipientStatus) -> Class {
    let text = status.diagnostic.to_lowercase();
    let wording = Wording::of(&text);
    let code = effective_code(status.status.as_deref(), &text);
    let temporary = status.action == Action::Delayed
        || code.is_some_and(|c| c.0 == 4)
        || (code.is_none() && status.smtp_code.is_some_and(|c| (400..500).contains(&c)));

    if let Some((class, subject, detail)) = code
        && let Some(decided) = by_code(class, subject, detail, &text, wording)
    {
        return decided;
    }
    if wording == Some(Wording::Policy) {
        return Class::Blocked;
    }
    if temporary {
        return Class::Soft;
    }
    if wording.is_some_and(Wording::says_dead) || contains_any(&text, GONE) {
        return Class::Hard;
    }
    if wording == Some(Wording::MailboxFull) || contains_any(&text, TRANSIENT) {
        return Class::Soft;
    }
    if contains_any(&text, POLICY_WEAK) {
        return Class::Blocked;
    }
    // Nothing decided: see the module comment.
    Class::Soft
}

/// How a server's refusal of a recipient at send time counts (issue #21): by the same rules
/// as a report's, since a `550 5.1.1 no such user` during the session is the same fact as a
/// delivery report saying so later.
pub fn classify_reply(smtp_code: Option<u16>, enhanced: Option<&str>, text: &str) -> Class {
    classify(&RecipientStatus {
        address: None,
        action: Action::Failed,
        status: enhanced.map(str::to_string),
        smtp_code,
        diagnostic: text.to_string(),
    })
}

/// Whether a server's permanent refusal at send time says the address is dead (issue #21):
/// a server's own 5xx reply that [`classify_reply`] calls hard. A local failure (DNS, TLS, the
/// message) carries no code and names no mailbox. The engine is given this as
/// `RunOptions::dead_address`.
pub fn refused_as_dead(reply: &crate::delivery::Reply) -> bool {
    reply.code.is_some_and(|code| (500..600).contains(&code))
        && classify_reply(reply.code, reply.enhanced.as_deref(), &reply.text) == Class::Hard
}

/// What a specific enhanced code decides on its own; `None` leaves it to the text.
fn by_code(
    class: u8,
    subject: u16,
    detail: u16,
    text: &str,
    wording: Option<Wording>,
) -> Option<Class> {
    if class == 4 {
        // RFC 3463: a persistent transient failure. A 4.7.x deferral that names a block list
        // or spam is the sender's problem; any other 4.x.x is worth another try.
        if subject == 7 && wording == Some(Wording::Policy) {
            return Some(Class::Blocked);
        }
        return Some(Class::Soft);
    }
    if class != 5 {
        return None;
    }
    match (subject, detail) {
        // Addressing: bad mailbox (1), bad system (2), bad syntax (3), ambiguous (4),
        // moved (6), RFC 3886-era 5.1.10 "null MX / recipient not found" (10).
        (1, 0..=4 | 6 | 10) => Some(Class::Hard),
        // Bad sender address or sender system: our own problem.
        (1, 7 | 8) => Some(Class::Blocked),
        // Mailbox disabled.
        (2, 1) => Some(Class::Hard),
        // Mailbox full, message too long for the mailbox.
        (2, 2 | 3) => Some(Class::Soft),
        // System full, not accepting, too big.
        (3, _) => Some(Class::Soft),
        // Unable to route (no such domain).
        (4, 4) => Some(Class::Hard),
        // Microsoft's directory-based edge blocking answers an unknown recipient this way.
        (4, 1) if text.contains("recipient address rejected") => Some(Class::Hard),
        (4, _) => Some(Class::Soft),
        // Content the receiver will not take: the message's fault, not the address's.
        (6, _) => Some(Class::Blocked),
        // Some servers refuse every recipient with 5.7.1 (Exim's default ACL denial, gateways
        // that check a directory): when the words say the mailbox or domain does not exist
        // and name no block, the address is dead whatever the code.
        (7, _) if wording.is_some_and(Wording::says_dead) => Some(Class::Hard),
        // Security and policy: SPF/DKIM/DMARC (5.7.26, Outlook's 5.7.515), block lists,
        // relaying denied.
        (7, _) => Some(Class::Blocked),
        _ => None,
    }
}

/// The enhanced code to judge by: the report's, or a more specific one from the diagnostic
/// when the report's is generic (`5.0.0` beside `550 5.1.1 user unknown`).
fn effective_code(status: Option<&str>, text: &str) -> Option<(u8, u16, u16)> {
    let reported = status.and_then(parse_enhanced);
    let generic = reported.is_none_or(|(_, subject, detail)| subject == 0 && detail == 0);
    if generic
        && let Some(found) = find_enhanced(text)
        && reported.is_none_or(|(class, _, _)| class == found.0)
    {
        return Some(found);
    }
    reported
}

/// `"5.1.1"` → (5, 1, 1); RFC 3463 §2: class 2, 4 or 5, subject and detail up to three digits.
pub fn parse_enhanced(text: &str) -> Option<(u8, u16, u16)> {
    let mut parts = text.trim().splitn(3, '.');
    let class = parts.next()?.parse::<u8>().ok()?;
    let subject = digits(parts.next()?)?;
    let detail = digits(parts.next()?)?;
    matches!(class, 2 | 4 | 5).then_some((class, subject, detail))
}

fn digits(part: &str) -> Option<u16> {
    if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// The first failure enhanced code (4.x.x or 5.x.x) in free text, not part of a longer
/// dotted number such as an IP address or a version.
pub fn find_enhanced(text: &str) -> Option<(u8, u16, u16)> {
    find_enhanced_str(text).and_then(parse_enhanced)
}

/// Like `find_enhanced`, returning the code as written.
pub fn find_enhanced_str(text: &str) -> Option<&str> {
    find_enhanced_at(text).map(|(_, code)| code)
}

/// Like `find_enhanced_str`, with the byte offset where the code starts.
pub fn find_enhanced_at(text: &str) -> Option<(usize, &str)> {
    let bytes = text.as_bytes();
    for (start, &first) in bytes.iter().enumerate() {
        if !matches!(first, b'4' | b'5') {
            continue;
        }
        if start > 0 && matches!(bytes[start - 1], b'0'..=b'9' | b'.') {
            continue;
        }
        let mut end = start + 1;
        let mut dots = 0;
        let mut run = 0;
        while end < bytes.len() {
            match bytes[end] {
                b'0'..=b'9' if run < 3 => run += 1,
                b'.' if run > 0 || end == start + 1 => {
                    if dots == 2 {
                        break;
                    }
                    dots += 1;
                    run = 0;
                }
                _ => break,
            }
            end += 1;
        }
        // A trailing ".digit" or digit means a longer dotted number (an IP address).
        let longer = end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_digit();
        let longer = longer || bytes.get(end).is_some_and(u8::is_ascii_digit);
        if dots == 2
            && run > 0
            && !longer
            && let Some(found) = text.get(start..end)
            && parse_enhanced(found).is_some()
        {
            return Some((start, found));
        }
    }
    None
}

fn contains_any(text: &str, needles: &[&str]) -> bool {
    needles.iter().any(|needle| text.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: Option<&str>, smtp: Option<u16>, diagnostic: &str, expected: Class) {
        let input = RecipientStatus {
            address: Some("a@b.example".into()),
            action: Action::Failed,
            status: status.map(str::to_string),
            smtp_code: smtp,
            diagnostic: diagnostic.to_string(),
        };
        assert_eq!(
            classify(&input),
            expected,
            "{status:?} {smtp:?} {diagnostic:?}"
        );
    }

    #[test]
    fn codes_and_texts_are_classified() {
        use Class::*;
        check(
            Some("5.1.1"),
            Some(550),
            "smtp; 550 5.1.1 user unknown",
            Hard,
        );
        check(Some("5.1.0"), None, "", Hard);
        check(
            Some("5.1.10"),
            Some(550),
            "RESOLVER.ADR.RecipientNotFound",
            Hard,
        );
        check(Some("5.1.2"), None, "Host or domain name not found", Hard);
        check(Some("5.1.6"), None, "mailbox has moved", Hard);
        check(Some("5.2.1"), None, "account disabled", Hard);
        check(Some("5.4.4"), None, "unable to route", Hard);
        check(
            Some("5.0.0"),
            None,
            "550 5.1.1 <a@b.example>: User unknown",
            Hard,
        );
        check(
            Some("5.0.0"),
            None,
            "Host or domain name not found. Name service error",
            Hard,
        );
        check(
            None,
            Some(550),
            "Requested action not taken: mailbox unavailable",
            Hard,
        );
        check(None, Some(550), "No such user here", Hard);
        check(
            None,
            Some(554),
            "delivery error: dd This user doesn't have a yahoo.com account",
            Hard,
        );
        check(
            None,
            None,
            "Sorry, no mailbox here by that name. (#5.1.1)",
            Hard,
        );
        check(
            None,
            Some(550),
            "The email account that you tried to reach does not exist",
            Hard,
        );
        check(
            Some("5.4.1"),
            Some(550),
            "Recipient address rejected: Access denied",
            Hard,
        );

        check(Some("4.2.2"), Some(452), "mailbox full", Soft);
        check(Some("5.2.2"), Some(552), "Mailbox full", Soft);
        check(Some("5.3.4"), Some(552), "message too big", Soft);
        check(Some("4.4.7"), None, "delivery time expired", Soft);
        check(Some("5.4.7"), None, "retry timeout exceeded", Soft);
        check(Some("4.4.1"), None, "connection timed out", Soft);
        check(Some("4.0.0"), Some(451), "temporary local problem", Soft);
        check(None, Some(421), "try again later", Soft);
        check(Some("5.0.0"), None, "", Soft);
        check(None, None, "something went wrong", Soft);
        check(None, Some(552), "", Soft);
        check(
            Some("4.7.0"),
            Some(421),
            "Try again later, closing connection",
            Soft,
        );

        check(
            Some("5.7.1"),
            Some(550),
            "rejected for policy reasons",
            Blocked,
        );
        check(
            Some("5.7.26"),
            Some(550),
            "unauthenticated email from x is not accepted due to domain's DMARC policy",
            Blocked,
        );
        check(
            Some("5.7.515"),
            Some(550),
            "Access denied, sending domain doesn't meet the required authentication level",
            Blocked,
        );
        check(
            Some("5.7.1"),
            Some(554),
            "Service unavailable; client host blocked using zen.spamhaus.org",
            Blocked,
        );
        check(None, Some(554), "IP listed at Spamhaus", Blocked);
        check(Some("5.0.0"), Some(550), "Message rejected: spam", Blocked);
        check(None, Some(550), "blocked", Blocked);
        check(
            Some("4.7.28"),
            Some(421),
            "unusual rate of unsolicited mail (spam)",
            Blocked,
        );
        check(Some("5.6.0"), Some(554), "content rejected", Blocked);
        check(
            Some("5.1.8"),
            Some(553),
            "sender domain does not exist",
            Blocked,
        );
    }

    #[test]
    fn the_phrase_table_names_each_kind() {
        use Wording::*;
        let cases = [
            (
                "550 5.1.1 <a@b.example>: user unknown in virtual mailbox table",
                Some(UserUnknown),
            ),
            ("unknown user: \"olduser\"", Some(UserUnknown)),
            ("reason: the user(s) account is unknown", Some(UserUnknown)),
            ("理由: 宛先不明", Some(UserUnknown)),
            ("このアドレスは存在しません", Some(UserUnknown)),
            (
                "host unknown (name server: x.example: host not found)",
                Some(HostUnknown),
            ),
            ("unrouteable address", Some(HostUnknown)),
            ("domain does not exist", Some(HostUnknown)),
            (
                "host or domain name not found. name service error",
                Some(HostUnknown),
            ),
            ("552 5.2.2 mailbox full, quota exceeded", Some(MailboxFull)),
            ("reason: the user's mailbox is full", Some(MailboxFull)),
            ("メールボックスの容量を超えています", Some(MailboxFull)),
            ("blocked using zen.spamhaus.org", Some(Policy)),
            ("user unknown; also listed in a dnsbl", Some(Policy)),
            ("message refused by local policy", None),
            ("all is well", None),
        ];
        for (text, expected) in cases {
            assert_eq!(Wording::of(text), expected, "{text:?}");
        }
    }

    #[test]
    fn words_of_a_dead_address_outweigh_a_blanket_policy_code() {
        use Class::*;
        check(
            Some("5.7.1"),
            Some(550),
            "550 5.7.1 <a@b.example>: user unknown",
            Hard,
        );
        check(Some("5.7.1"), Some(550), "5.7.1 Unrouteable address", Hard);
        check(
            Some("5.7.1"),
            Some(550),
            "5.7.1 user unknown; blocked using zen.spamhaus.org",
            Blocked,
        );
        check(
            Some("5.7.1"),
            Some(550),
            "Recipient address rejected: Message refused by local policy",
            Blocked,
        );
        check(
            Some("5.7.1"),
            Some(550),
            "sender address does not exist",
            Blocked,
        );
        // Carriers' private 5.0.9xx statuses decide nothing: the reason beside them does.
        check(
            Some("5.0.911"),
            None,
            "Status: 5.0.911 Reason: The user(s) account is unknown",
            Hard,
        );
        check(
            Some("5.0.922"),
            None,
            "Status: 5.0.922 Reason: The user's mailbox is full",
            Soft,
        );
        check(Some("5.0.0"), None, "Domain does not exist", Hard);
        check(
            Some("5.0.0"),
            None,
            "Host unknown (Name server: x.example: host not found)",
            Hard,
        );
    }

    #[test]
    fn a_delayed_report_is_soft_whatever_its_text() {
        let input = RecipientStatus {
            address: None,
            action: Action::Delayed,
            status: None,
            smtp_code: None,
            diagnostic: "user unknown".into(),
        };
        assert_eq!(classify(&input), Class::Soft);
    }

    #[test]
    fn enhanced_codes_are_found_in_text_but_not_in_addresses() {
        let cases = [
            ("550-5.1.1 The email account", Some("5.1.1")),
            ("#5.1.10 RESOLVER", Some("5.1.10")),
            ("(#5.7.1)", Some("5.7.1")),
            ("host 192.168.5.1.4 said", None),
            ("[10.5.1.1]", None),
            ("Postfix 2.10.1", None),
            ("5.1", None),
            ("55.1.1", None),
            ("5.1.1234", None),
            ("status 4.4.7.", Some("4.4.7")),
            ("5..1", None),
        ];
        for (text, expected) in cases {
            assert_eq!(find_enhanced_str(text), expected, "{text:?}");
        }
    }
}
