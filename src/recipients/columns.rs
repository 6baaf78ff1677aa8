//! Which column of a list holds the addresses, and what the others are called in templates.
//!
//! Pure functions over a header row (and, when the header says nothing, a sample of the first
//! rows), shared by the CSV and the sheet readers so both answer the same way. Lists arrive as
//! their tools export them: Mailchimp writes "Email Address", Google Contacts "E-mail 1 - Value",
//! Outlook "E-mail Address", others "Email", "E-mail" or "Mail", in the user's language. Never
//! reads a file and never decides anything about a row.

use std::collections::HashSet;

use super::EmailAddress;

/// Header names that mean "the email address", in the form [`normalize_header`] gives them,
/// best first: when two columns match, the one whose name comes first here wins (a list with
/// "Email" and "Email 2" takes "Email"). English first, then a few languages whose exports
/// marketers send us; names with accents are listed with and without them.
const KNOWN_HEADERS: &[&str] = &[
    // English, and the tools' own exports.
    "email",
    "emailaddress",
    "email1value",
    "primaryemail",
    "emailaddr",
    "mail",
    "mailaddress",
    "emails",
    "contactemail",
    "email1",
    // French, German, Spanish, Italian, Portuguese, Dutch, Nordic, Polish.
    "courriel",
    "adressecourriel",
    "adresseemail",
    "adressemail",
    "adresseélectronique",
    "adresseelectronique",
    "emailadresse",
    "mailadresse",
    "correo",
    "correoelectrónico",
    "correoelectronico",
    "direccióndecorreo",
    "direcciondecorreo",
    "direccióndecorreoelectrónico",
    "direcciondecorreoelectronico",
    "indirizzoemail",
    "postaelettronica",
    "enderecodeemail",
    "endereçodeemail",
    "emailadres",
    "epost",
    "epostadress",
    "epostadresse",
    "sähköposti",
    "sahkoposti",
    "adresemail",
    // Russian, Japanese, Chinese.
    "почта",
    "электроннаяпочта",
    "элпочта",
    "メールアドレス",
    "メール",
    "电子邮件",
    "邮箱",
    "電子メール",
];

/// How many data rows are read to judge columns by their values.
pub const SAMPLE_ROWS: usize = 100;

/// The email column of a list, and how it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailColumn {
    /// 0-based position in the header row.
    pub index: usize,
    /// The header as written in the file.
    pub header: String,
    pub found_by: FoundBy,
}

/// How the email column was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FoundBy {
    /// The campaign named it (`email_column`).
    Named,
    /// Its header is a name lists are exported with ("Email Address", "E-mail 1 - Value"…).
    KnownHeader,
    /// No header said so, but most of its first values are addresses.
    Values { addresses: usize, sampled: usize },
}

impl EmailColumn {
    /// A sentence for people: `"Email Address" (recognized by its name)`.
    pub fn describe(&self) -> String {
        let how = match self.found_by {
            FoundBy::Named => "named by email_column".to_string(),
            FoundBy::KnownHeader => "recognized by its name".to_string(),
            FoundBy::Values { addresses, sampled } => {
                format!("{addresses} of the first {sampled} values in it are addresses")
            }
        };
        format!("\"{}\" ({how})", self.header)
    }
}

/// Why no email column could be chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnProblem {
    /// The campaign named a column the header does not have.
    NotNamed { column: String },
    /// Two columns carry the same name once case, spaces and punctuation are ignored.
    Duplicate { column: String },
    /// Nothing in the header or the values says where the addresses are.
    NotFound,
}

/// Lower-case letters and digits only, so "E-mail 1 - Value", "e_mail1value" and " EMAIL1VALUE"
/// all read `email1value`. Letters outside ASCII are kept (lower-cased): "Correo electrónico"
/// reads `correoelectrónico`.
pub fn normalize_header(header: &str) -> String {
    header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The column the campaign named: matched ignoring case and surrounding spaces, as the file's
/// own spelling may differ from the campaign's ("Email" for `email`).
pub fn named(headers: &[String], wanted: &str) -> Result<EmailColumn, ColumnProblem> {
    let wanted = wanted.trim().to_lowercase();
    let mut found: Option<usize> = None;
    for (index, header) in headers.iter().enumerate() {
        if header.trim().to_lowercase() == wanted {
            if found.is_some() {
                return Err(ColumnProblem::Duplicate {
                    column: header.clone(),
                });
            }
            found = Some(index);
        }
    }
    match found {
        Some(index) => Ok(column(headers, index, FoundBy::Named)),
        None => Err(ColumnProblem::NotNamed { column: wanted }),
    }
}

/// The column whose header is a known email header, the best-ranked one when several are;
/// None when no header is.
pub fn by_header(headers: &[String]) -> Option<EmailColumn> {
    let mut best: Option<(usize, usize)> = None;
    for (index, header) in headers.iter().enumerate() {
        let name = normalize_header(header);
        let Some(rank) = KNOWN_HEADERS.iter().position(|known| *known == name) else {
            continue;
        };
        if best.is_none_or(|(best_rank, _)| rank < best_rank) {
            best = Some((rank, index));
        }
    }
    best.map(|(_, index)| column(headers, index, FoundBy::KnownHeader))
}

/// The column most of whose non-empty sampled values are addresses (more than half, and at
/// least one) that holds the most addresses; then the larger share, then the leftmost column. `rows` holds the first rows' cells in header
/// order.
pub fn by_values<R: AsRef<[String]>>(headers: &[String], rows: &[R]) -> Option<EmailColumn> {
    let mut best: Option<(usize, usize, usize)> = None;
    for index in 0..headers.len() {
        let mut sampled = 0;
        let mut addresses = 0;
        for row in rows {
            let cell = row.as_ref().get(index).map_or("", |cell| cell.trim());
            if cell.is_empty() {
                continue;
            }
            sampled += 1;
            if cell.contains('@') && EmailAddress::parse(cell).is_ok() {
                addresses += 1;
            }
        }
        if addresses == 0 || addresses * 2 <= sampled {
            continue;
        }
        // More addresses first: a sparse column with 1 address in 1 filled cell must not beat
        // the list's real column with 99 in 100 (review). Then the larger share, compared
        // without division: a/b > c/d  ⇔  a·d > c·b.
        let better = best.is_none_or(|(_, best_addresses, best_sampled)| {
            addresses > best_addresses
                || (addresses == best_addresses
                    && addresses * best_sampled > best_addresses * sampled)
        });
        if better {
            best = Some((index, addresses, sampled));
        }
    }
    best.map(|(index, addresses, sampled)| {
        column(headers, index, FoundBy::Values { addresses, sampled })
    })
}

fn column(headers: &[String], index: usize, found_by: FoundBy) -> EmailColumn {
    EmailColumn {
        index,
        header: headers.get(index).cloned().unwrap_or_default(),
        found_by,
    }
}

/// Template field names for every column but the email column, in file order; Err names a
/// header whose field name another column already has.
pub fn field_names(headers: &[String], email_index: usize) -> Result<Vec<String>, String> {
    let mut columns: Vec<String> = Vec::with_capacity(headers.len().saturating_sub(1));
    // A 64 KiB header line can hold tens of thousands of columns; a set keeps the duplicate
    // check linear.
    let mut seen = HashSet::with_capacity(columns.capacity());
    for (index, header) in headers.iter().enumerate() {
        if index == email_index {
            continue;
        }
        let name = field_name(header, index + 1);
        if !seen.insert(name.clone()) {
            return Err(header.clone());
        }
        columns.push(name);
    }
    Ok(columns)
}

/// Turns a header into a template field name: lower-case ASCII letters,
/// digits and `_`, with every other character replaced by `_`, runs of `_`
/// collapsed, a leading digit prefixed by `_`, and `column_N` (N counted
/// from 1) for an empty header. So "First Name" becomes `first_name` and
/// "Zip-Code" becomes `zip_code`.
pub fn field_name(header: &str, position: usize) -> String {
    let mut name = String::with_capacity(header.len());
    for c in header.trim().chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if c == '_' && name.ends_with('_') {
            continue;
        }
        name.push(c);
    }
    if name.is_empty() {
        return format!("column_{position}");
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(line: &str) -> Vec<String> {
        line.split('|').map(str::to_owned).collect()
    }

    /// `header_line` split on `|`; `expected` is the header chosen, or None.
    fn check_header(header_line: &str, expected: Option<&str>) {
        let found = by_header(&headers(header_line));
        assert_eq!(
            found.as_ref().map(|column| column.header.as_str()),
            expected,
            "{header_line}"
        );
        if let Some(found) = found {
            assert_eq!(found.found_by, FoundBy::KnownHeader);
        }
    }

    #[test]
    fn export_headers_are_recognized() {
        // Mailchimp's audience export.
        check_header(
            "Email Address|First Name|Last Name|Address|Phone Number|MEMBER_RATING",
            Some("Email Address"),
        );
        // Google Contacts: the first address, not the label nor the second one.
        check_header(
            "Name|Given Name|E-mail 1 - Type|E-mail 1 - Value|E-mail 2 - Value",
            Some("E-mail 1 - Value"),
        );
        // Outlook.
        check_header(
            "First Name|Last Name|E-mail Address|E-mail 2 Address|E-mail Display Name",
            Some("E-mail Address"),
        );
        check_header("name|Email", Some("Email"));
        check_header("name|E-MAIL", Some("E-MAIL"));
        check_header("name| e_mail ", Some(" e_mail "));
        check_header("Mail|name", Some("Mail"));
        check_header("Nom|Courriel", Some("Courriel"));
        check_header("Vorname|E-Mail-Adresse", Some("E-Mail-Adresse"));
        check_header("Nombre|Correo electrónico", Some("Correo electrónico"));
        check_header("名前|メールアドレス", Some("メールアドレス"));
        check_header("Имя|Электронная почта", Some("Электронная почта"));
        // The better-ranked name wins wherever it stands.
        check_header("Mail|Email Address|Email", Some("Email"));
        check_header("Email 1|Email", Some("Email"));
        // Names that are not the address.
        check_header("name|city", None);
        check_header("Email Opt-In|Email Format|Name", None);
        check_header("", None);
    }

    /// `rows` are lines of `|`-separated cells; `expected` is the header chosen.
    fn check_values(header_line: &str, rows: &[&str], expected: Option<(&str, usize, usize)>) {
        let rows: Vec<Vec<String>> = rows.iter().map(|row| headers(row)).collect();
        let found = by_values(&headers(header_line), &rows);
        let found = found.map(|column| match column.found_by {
            FoundBy::Values { addresses, sampled } => (column.header, addresses, sampled),
            other => panic!("{other:?}"),
        });
        assert_eq!(
            found.as_ref().map(|(h, a, s)| (h.as_str(), *a, *s)),
            expected,
            "{header_line}"
        );
    }

    #[test]
    fn addresses_are_found_by_their_values() {
        check_values(
            "who|contact|city",
            &["Ann|ann@example.org|Rome", "Bob|bob@example.org|Oslo"],
            Some(("contact", 2, 2)),
        );
        // Empty cells do not count against a column; a few bad values do not hide it.
        check_values(
            "a|b",
            &[
                "x|ann@example.org",
                "y|",
                "z|not an address",
                "w|cy@example.org",
            ],
            Some(("b", 2, 3)),
        );
        // Half is not most.
        check_values("a|b", &["x|ann@example.org", "y|nope"], None);
        // The column with the larger share wins; ties go left.
        check_values(
            "notes|addr",
            &[
                "ann@example.org|ann@example.org",
                "call back|bob@example.org",
                "dee@example.org|dee@example.org",
            ],
            Some(("addr", 3, 3)),
        );
        check_values(
            "first|second",
            &["a@example.org|b@example.org"],
            Some(("first", 1, 1)),
        );
        // A sparse column whose one filled cell is an address loses to the full column.
        check_values(
            "referrer|contact",
            &[
                "ref@example.org|ann@example.org",
                "|bob@example.org",
                "|not an address",
                "|cy@example.org",
            ],
            Some(("contact", 3, 4)),
        );
        check_values("a|b", &[], None);
        check_values("a|b", &["|", "1|2"], None);
        // Short rows are read as empty cells.
        check_values("a|b|c", &["x", "y|z"], None);
    }

    #[test]
    fn named_columns_match_loosely_and_once() {
        let h = headers("Name|  E-Mail |city");
        let found = named(&h, " e-mail").unwrap();
        assert_eq!((found.index, found.found_by), (1, FoundBy::Named));
        assert_eq!(found.header, "  E-Mail ");
        assert_eq!(
            named(&h, "email"),
            Err(ColumnProblem::NotNamed {
                column: "email".into()
            })
        );
        assert_eq!(
            named(&headers("Email|name|EMAIL"), "email"),
            Err(ColumnProblem::Duplicate {
                column: "EMAIL".into()
            })
        );
    }

    #[test]
    fn descriptions_say_how() {
        let h = headers("Email Address|x");
        assert_eq!(
            by_header(&h).unwrap().describe(),
            "\"Email Address\" (recognized by its name)"
        );
        assert_eq!(
            named(&h, "email address").unwrap().describe(),
            "\"Email Address\" (named by email_column)"
        );
        let rows = vec![headers("x|a@example.org")];
        assert_eq!(
            by_values(&headers("x|y"), &rows).unwrap().describe(),
            "\"y\" (1 of the first 1 values in it are addresses)"
        );
    }

    #[test]
    fn field_names() {
        let cases = [
            ("First Name", "first_name"),
            ("Zip-Code", "zip_code"),
            ("  city ", "city"),
            ("already_ok", "already_ok"),
            ("a -- b", "a_b"),
            ("2nd line", "_2nd_line"),
            ("Prénom", "pr_nom"),
            ("(Phone)", "_phone_"),
            ("", "column_4"),
            ("   ", "column_4"),
        ];
        for (header, expected) in cases {
            assert_eq!(field_name(header, 4), expected, "{header:?}");
        }
    }

    #[test]
    fn normalization() {
        let cases = [
            ("E-mail 1 - Value", "email1value"),
            ("Email Address", "emailaddress"),
            (" EMAIL ", "email"),
            ("e_mail", "email"),
            ("Correo Electrónico", "correoelectrónico"),
            ("", ""),
        ];
        for (header, expected) in cases {
            assert_eq!(normalize_header(header), expected, "{header:?}");
        }
    }
}
