//! Header-like fields as RFC 3464 §2.1 and RFC 5965 §3.1 lay them out: `Name: value` lines,
//! continuation lines folded in (RFC 5322 §2.2.3), groups separated by blank lines. The
//! message parser hands `message/delivery-status` and `message/feedback-report` over as bytes,
//! so their fields are read here, and so are quoted headers in text bounces. Bounded: at most
//! `MAX_GROUPS` groups of at most `MAX_FIELDS` fields, values cut at `MAX_VALUE` bytes.

/// Groups beyond this are not read (the caller treats "too many" as unrecognized).
pub const MAX_GROUPS: usize = 1_002;
const MAX_FIELDS: usize = 64;
const MAX_VALUE: usize = 2_000;

/// One field: the name as written and its unfolded, trimmed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
}

/// The fields of one group, with lookups by case-insensitive name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group(pub Vec<Field>);

impl Group {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case(name))
            .map(|field| field.value.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |field| field.name.eq_ignore_ascii_case(name))
            .map(|field| field.value.as_str())
    }
}

/// Splits `text` into groups of fields. Lines that are neither a field nor a continuation are
/// skipped (broken reports are common; what can be read is read).
pub fn groups(text: &str) -> Vec<Group> {
    let mut groups = Vec::new();
    let mut current = Group::default();
    for line in text.lines() {
        if groups.len() >= MAX_GROUPS {
            return groups;
        }
        if line.trim().is_empty() {
            if !current.0.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // RFC 5322 §2.2.3: a continuation line belongs to the field above it.
            if let Some(last) = current.0.last_mut() {
                push_bounded(&mut last.value, " ");
                push_bounded(&mut last.value, line.trim());
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if !is_field_name(name) || current.0.len() >= MAX_FIELDS {
            continue;
        }
        let mut bounded = String::new();
        push_bounded(&mut bounded, value.trim());
        current.0.push(Field {
            name: name.to_string(),
            value: bounded,
        });
    }
    if !current.0.is_empty() && groups.len() < MAX_GROUPS {
        groups.push(current);
    }
    groups
}

/// RFC 5322 §3.6.8: printable ASCII except the colon, no spaces.
fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 76 && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

fn push_bounded(value: &mut String, more: &str) {
    for ch in more.chars() {
        if value.len() + ch.len_utf8() > MAX_VALUE {
            return;
        }
        value.push(ch);
    }
}

/// An address-typed field value (`rfc822; user@example.com`, RFC 3464 §2.3.2), without its
/// type and any angle brackets; `None` when nothing address-like is left.
pub fn address_value(value: &str) -> Option<String> {
    let bare = match value.split_once(';') {
        Some((_kind, rest)) => rest,
        None => value,
    };
    let bare = bare
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    if bare.is_empty() || !bare.contains('@') || bare.contains(char::is_whitespace) {
        return None;
    }
    Some(bare.to_string())
}

/// The Message-IDs in a header value (`<a@b> <c@d>`), without angle brackets.
pub fn message_ids(value: &str, into: &mut Vec<String>) {
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            break;
        };
        let id = after[..end].trim();
        if !id.is_empty() && id.len() <= 250 && !into.iter().any(|known| known == id) {
            into.push(id.to_string());
        }
        rest = &after[end + 1..];
        if into.len() >= 32 {
            break;
        }
    }
    // A bare id without brackets (some MTAs quote it that way).
    let bare = value.trim();
    if !value.contains('<')
        && bare.contains('@')
        && !bare.contains(char::is_whitespace)
        && bare.len() <= 250
        && !into.iter().any(|known| known == bare)
    {
        into.push(bare.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_unfold_and_split_on_blank_lines() {
        let text = "Reporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\n\
                    Diagnostic-Code: smtp; 550 5.1.1 no\r\n  such user\r\nnot a field\r\n\r\n\r\n\
                    Final-Recipient: rfc822;c@d.example\r\n";
        let groups = groups(text);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].get("reporting-mta"), Some("dns; mx.example"));
        assert_eq!(
            groups[1].get("Diagnostic-Code"),
            Some("smtp; 550 5.1.1 no such user")
        );
        assert_eq!(groups[2].get("final-recipient"), Some("rfc822;c@d.example"));
    }

    #[test]
    fn address_values_lose_their_type_and_brackets() {
        let cases = [
            ("rfc822; a@b.example", Some("a@b.example")),
            ("rfc822;<A@B.example>", Some("A@B.example")),
            ("a@b.example", Some("a@b.example")),
            ("rfc822; ", None),
            ("rfc822; not an address", None),
            ("x400; /G=a/S=b/", None),
        ];
        for (input, expected) in cases {
            assert_eq!(address_value(input).as_deref(), expected, "{input:?}");
        }
    }

    #[test]
    fn message_ids_are_collected_without_brackets() {
        let mut ids = Vec::new();
        message_ids("<a@b> <c@d>\t<a@b>", &mut ids);
        message_ids("bare@id.example", &mut ids);
        message_ids("<unclosed@x", &mut ids);
        assert_eq!(ids, ["a@b", "c@d", "bare@id.example"]);
    }
}
