//! Lists as marketers have them (issue #14, item 5): the email column found without being told,
//! and .xlsx / .ods sheets imported with the same validation, de-duplication and reasons per
//! row as the same rows in a CSV. Sheets are written by the tests themselves
//! (`crate::support::sheets`); imports go into a real SQLite store, and the CLI tests run the real
//! binary.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::cli_run;
use crate::support::sheets::{Cell, Rows, text, write_ods, write_xlsx};
use herald::campaign::Campaign;
use herald::recipients::{self, FoundBy, ImportError};
use herald::store::{RecipientRow, Store};

/// The rows every format carries: a header a Mailchimp export would have, then a valid row, an
/// invalid address, a duplicate (other capitals), an empty row, numbers and dates in cells.
fn marketer_rows() -> Rows {
    vec![
        vec![
            text("Email Address"),
            text("First Name"),
            text("Zip"),
            text("Joined"),
        ],
        vec![
            text("ada@example.org"),
            text("Ada"),
            Cell::Number(75001.0),
            Cell::Date(2024, 3, 5),
        ],
        vec![
            text("not an address"),
            text("Bob"),
            Cell::Number(10115.0),
            Cell::Date(2023, 12, 31),
        ],
        vec![],
        vec![
            text("ADA@example.org"),
            text("Ada again"),
            Cell::Number(2.5),
            Cell::Empty,
        ],
        vec![
            text("cy@example.net"),
            text("Cy"),
            Cell::Empty,
            Cell::Date(2020, 2, 29),
        ],
    ]
}

/// The same rows as a CSV shows them (what Excel's "Save as CSV" of that sheet writes).
const MARKETER_CSV: &str = "Email Address,First Name,Zip,Joined\n\
    ada@example.org,Ada,75001,2024-03-05\n\
    not an address,Bob,10115,2023-12-31\n\
    \n\
    ADA@example.org,Ada again,2.5,\n\
    cy@example.net,Cy,,2020-02-29\n";

fn campaign_file(dir: &Path, name: &str, list: &str, extra: &str) -> PathBuf {
    std::fs::write(
        dir.join("body.html"),
        "<p>Hi {{ first_name }} {{ zip }} {{ joined }}</p>",
    )
    .unwrap();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "[message]\nfrom = \"News <news@acme.example>\"\nsubject = \"Hi {{{{ first_name }}}}\"\n\
             html = \"body.html\"\n\n[recipients]\nlist = \"{list}\"\n{extra}\n\n\
             [[relay]]\nhost = \"127.0.0.1\"\nport = 2525\nsecurity = \"none\"\n"
        ),
    )
    .unwrap();
    path
}

/// Imports `list` (a file in `dir`) through a campaign of its own; returns the report and the
/// stored rows in import order.
fn import(
    dir: &Path,
    store: &mut Store,
    list: &str,
) -> (herald::import::ImportReport, Vec<RecipientRow>) {
    let file = campaign_file(dir, &format!("{list}.toml"), list, "");
    let campaign = Campaign::load_for_reading(&file).unwrap();
    let (id, report) = herald::import::import(store, &campaign).unwrap();
    let rows = store.page_at(id, None, None, 0, 1000).unwrap();
    (report, rows)
}

/// What a stored row says, minus ids and times.
fn summary(rows: &[RecipientRow]) -> Vec<(u64, String, String, String, Option<String>)> {
    rows.iter()
        .map(|row| {
            (
                row.line,
                row.email.clone(),
                row.fields_json.clone(),
                row.state.as_str().to_owned(),
                row.skip_reason.clone(),
            )
        })
        .collect()
}

#[test]
fn sheets_import_exactly_like_the_same_rows_in_a_csv() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("people.csv"), MARKETER_CSV).unwrap();
    write_xlsx(
        &dir.path().join("people.xlsx"),
        "Audience",
        &marketer_rows(),
    );
    write_ods(&dir.path().join("people.ods"), "Audience", &marketer_rows());
    let mut store = Store::open(&dir.path().join("state.db")).unwrap();

    let (csv_report, csv_rows) = import(dir.path(), &mut store, "people.csv");
    assert_eq!(
        (
            csv_report.rows,
            csv_report.added,
            csv_report.invalid,
            csv_report.duplicates
        ),
        (4, 4, 1, 1),
        "{csv_report:?}"
    );
    assert_eq!(
        csv_report.email_column,
        "\"Email Address\" (recognized by its name)"
    );
    let expected = summary(&csv_rows);
    // The reasons are the CSV path's own: spelled out here so a change to them shows.
    assert_eq!(
        expected[1].4.as_deref(),
        Some("invalid address: the address contains a space or another blank character"),
        "{expected:?}"
    );
    assert_eq!(
        expected[2].4.as_deref(),
        Some("duplicate of line 2 of people.csv"),
        "{expected:?}"
    );
    assert_eq!(
        expected[0].2,
        r#"{"first_name":"Ada","zip":"75001","joined":"2024-03-05"}"#
    );

    for list in ["people.xlsx", "people.ods"] {
        let (report, rows) = import(dir.path(), &mut store, list);
        assert_eq!(report.rows, csv_report.rows, "{list}");
        assert_eq!(report.added, csv_report.added, "{list}");
        assert_eq!(report.invalid, csv_report.invalid, "{list}");
        assert_eq!(report.duplicates, csv_report.duplicates, "{list}");
        assert_eq!(report.columns, csv_report.columns, "{list}");
        assert_eq!(report.email_column, csv_report.email_column, "{list}");
        assert!(
            report.format.contains("sheet \"Audience\""),
            "{list}: {}",
            report.format
        );
        // The same rows, but a duplicate names its own file (issue #20).
        let mut wanted = expected.clone();
        for row in &mut wanted {
            row.4 = row
                .4
                .take()
                .map(|reason| reason.replace("people.csv", list));
        }
        assert_eq!(summary(&rows), wanted, "{list}");
    }
}

#[test]
fn importing_a_sheet_again_adds_nobody() {
    let dir = tempfile::tempdir().unwrap();
    write_xlsx(&dir.path().join("people.xlsx"), "Sheet1", &marketer_rows());
    let mut store = Store::open(&dir.path().join("state.db")).unwrap();
    let (first, _) = import(dir.path(), &mut store, "people.xlsx");
    let (again, rows) = import(dir.path(), &mut store, "people.xlsx");
    assert_eq!((first.added, again.added, again.rows), (4, 0, 4));
    assert_eq!(rows.len(), 4);
}

#[test]
fn a_malformed_sheet_is_refused_with_a_clear_error_and_nothing_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.xlsx");
    write_xlsx(&good, "Sheet1", &marketer_rows());
    let bytes = std::fs::read(&good).unwrap();
    // A download cut short, a CSV renamed to .xlsx, and an .ods that is not a zip.
    std::fs::write(dir.path().join("cut.xlsx"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(dir.path().join("renamed.xlsx"), MARKETER_CSV).unwrap();
    std::fs::write(dir.path().join("junk.ods"), b"PK\x03\x04 not really a zip").unwrap();
    let mut store = Store::open(&dir.path().join("state.db")).unwrap();
    for list in ["cut.xlsx", "renamed.xlsx", "junk.ods"] {
        let file = campaign_file(dir.path(), &format!("{list}.toml"), list, "");
        let campaign = Campaign::load_for_reading(&file).unwrap();
        let error = herald::import::import(&mut store, &campaign).unwrap_err();
        let message = error.to_string();
        assert!(
            message
                .starts_with("the recipient list is not a readable spreadsheet: it is named like"),
            "{list}: {message}"
        );
        assert!(message.ends_with(&format!("{list})")), "{list}: {message}");
        let id = herald::identity::campaign_id(&mut store, &campaign).unwrap();
        assert_eq!(store.counts(id).unwrap().total(), 0, "{list}");
    }
}

#[test]
fn a_value_right_of_the_header_makes_that_row_malformed_and_the_rest_imports() {
    let dir = tempfile::tempdir().unwrap();
    let rows = vec![
        vec![text("email"), text("name")],
        vec![text("a@example.org"), text("A"), Cell::Empty],
        vec![text("b@example.org"), text("B"), text("stray")],
        vec![text("c@example.org"), text("C")],
    ];
    write_ods(&dir.path().join("wide.ods"), "S", &rows);
    let mut store = Store::open(&dir.path().join("state.db")).unwrap();
    let (report, stored) = import(dir.path(), &mut store, "wide.ods");
    assert_eq!((report.rows, report.malformed), (3, 1), "{report:?}");
    let reason = stored[1].skip_reason.as_deref().unwrap();
    assert_eq!(
        reason,
        "line 3 is not a valid row: it has a value in column C but the first row names only 2 columns"
    );
    assert_eq!(stored[2].email, "c@example.org");
}

#[test]
fn sheets_with_blank_rows_above_the_header_and_an_empty_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let rows = vec![
        vec![],
        vec![Cell::Empty, Cell::Empty],
        vec![text("Mail"), text("x")],
        vec![text("a@example.org"), Cell::Number(1.0)],
    ];
    let path = dir.path().join("low.xlsx");
    write_xlsx(&path, "S", &rows);
    let list = recipients::open(&path, None).unwrap();
    assert_eq!(list.email_header(), "Mail");
    let all: Vec<_> = list.map(Result::unwrap).collect();
    assert_eq!((all[0].line, all[0].email.as_str()), (4, "a@example.org"));

    let empty = dir.path().join("empty.ods");
    write_ods(&empty, "S", &vec![vec![], vec![]]);
    assert!(matches!(
        recipients::open(&empty, None),
        Err(ImportError::Empty { .. })
    ));
}

/// `(header line, expected header, how)`: lists as their tools export them.
#[test]
fn the_email_column_is_found_in_exports_without_being_told() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "Email Address,First Name,Last Name,MEMBER_RATING",
            "Email Address",
            "header",
        ),
        (
            "Name,Given Name,E-mail 1 - Type,E-mail 1 - Value",
            "E-mail 1 - Value",
            "header",
        ),
        (
            "First Name,Last Name,E-mail Address,E-mail 2 Address",
            "E-mail Address",
            "header",
        ),
        ("name;E-Mail;city", "E-Mail", "header"),
        ("Nom,Prénom,Courriel", "Courriel", "header"),
        ("who,contact,city", "contact", "values"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (n, (header, expected, how)) in cases.iter().enumerate() {
        let columns = header.split([',', ';']).count();
        let delimiter = if header.contains(';') { ";" } else { "," };
        let mut text = format!("{header}\n");
        for row in 0..3 {
            // The address sits in the expected column; the others hold plain words.
            let position = header
                .split([',', ';'])
                .position(|h| h == *expected)
                .unwrap();
            let cells: Vec<String> = (0..columns)
                .map(|c| {
                    if c == position {
                        format!("p{row}@example.org")
                    } else {
                        format!("w{c}")
                    }
                })
                .collect();
            text.push_str(&cells.join(delimiter));
            text.push('\n');
        }
        let path = dir.path().join(format!("{n}.csv"));
        std::fs::write(&path, text).unwrap();
        let list = recipients::open(&path, None).unwrap();
        assert_eq!(list.email_header(), *expected, "{header}");
        let found_by = list.email_column().found_by;
        match *how {
            "header" => assert_eq!(found_by, FoundBy::KnownHeader, "{header}"),
            _ => assert_eq!(
                found_by,
                FoundBy::Values {
                    addresses: 3,
                    sampled: 3
                },
                "{header}"
            ),
        }
        assert_eq!(list.count(), 3, "{header}");
    }
}

#[test]
fn rows_read_ahead_to_judge_values_are_all_imported_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("who,contact\n");
    for n in 0..250 {
        text.push_str(&format!("Person {n},person{n}@example.org\n"));
        if n == 10 {
            text.push('\n');
        }
    }
    let path = dir.path().join("plain.csv");
    std::fs::write(&path, &text).unwrap();
    let list = recipients::open(&path, None).unwrap();
    assert_eq!(
        list.email_column().found_by,
        FoundBy::Values {
            addresses: 100,
            sampled: 100
        }
    );
    let rows: Vec<_> = list.map(Result::unwrap).collect();
    assert_eq!(rows.len(), 250);
    assert_eq!(
        (rows[0].line, rows[0].email.as_str()),
        (2, "person0@example.org")
    );
    // The blank line after row 10 shifts the later lines by one, in and after the sample.
    assert_eq!(
        (rows[11].line, rows[11].email.as_str()),
        (14, "person11@example.org")
    );
    assert_eq!(
        (rows[249].line, rows[249].fields[0].as_str()),
        (252, "Person 249")
    );
}

#[test]
fn a_list_without_a_recognizable_email_column_names_its_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.csv");
    std::fs::write(&path, "who,phone\nAnn,555\n").unwrap();
    let error = recipients::open(&path, None).unwrap_err();
    assert!(
        matches!(error, ImportError::EmailColumnNotFound { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("its columns are: who, phone"), "{message}");
    assert!(message.contains("email_column"), "{message}");
    // A named column that is not there is the old, precise error.
    let error = recipients::open(&path, Some("email")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no column named \"email\"; its columns are: who, phone")
    );
}

/// The CLI says what it detected, for a sheet as for a CSV, through the real binary.
#[test]
fn cli_import_and_check_say_which_column_and_format_they_read() {
    let dir = tempfile::tempdir().unwrap();
    write_xlsx(
        &dir.path().join("people.xlsx"),
        "Audience",
        &marketer_rows(),
    );
    let campaign = campaign_file(dir.path(), "c.toml", "people.xlsx", "");
    let db = dir.path().join("state.db");
    let limit = Duration::from_secs(60);

    let ran = cli_run::herald(&["check"], &campaign, &db, &[], limit);
    ran.assert_code(0);
    assert!(
        ran.stdout.contains("list: Excel workbook, sheet \"Audience\"; email column: \"Email Address\" (recognized by its name)"),
        "{}",
        ran.all()
    );
    let ran = cli_run::herald(&["import"], &campaign, &db, &[], limit);
    ran.assert_code(0);
    assert!(
        ran.stdout
            .contains("email column: \"Email Address\" (recognized by its name)"),
        "{}",
        ran.all()
    );
    assert!(
        ran.stdout
            .contains("imported 4 row(s): 4 new, 1 invalid, 1 duplicate(s)"),
        "{}",
        ran.all()
    );
    let status = cli_run::status(&campaign, &db);
    assert_eq!(
        (status["pending"].as_u64(), status["skipped"].as_u64()),
        (Some(2), Some(2))
    );

    // Named in the file: used as named, and said so; misnamed: the columns are listed.
    std::fs::write(
        dir.path().join("plain.csv"),
        "Mail,Name\nann@example.org,Ann\n",
    )
    .unwrap();
    let named = campaign_file(
        dir.path(),
        "named.toml",
        "plain.csv",
        "email_column = \"mail\"",
    );
    let ran = cli_run::herald(&["import"], &named, &db, &[], limit);
    ran.assert_code(0);
    assert!(
        ran.stdout.contains(
            "list: CSV (UTF-8, comma-separated); email column: \"Mail\" (named by email_column)"
        ),
        "{}",
        ran.all()
    );
    let wrong = campaign_file(
        dir.path(),
        "wrong.toml",
        "plain.csv",
        "email_column = \"e-mail\"",
    );
    let ran = cli_run::herald(&["import"], &wrong, &db, &[], limit);
    ran.assert_code(1);
    assert!(
        ran.stderr
            .contains("no column named \"e-mail\"; its columns are: Mail, Name"),
        "{}",
        ran.all()
    );
}
