//! Reading a recipient list from a spreadsheet (.xlsx, .xlsm, .xlsb, .xls, .ods) with
//! `calamine`, the only user of that crate: the first sheet, its first non-empty row as the
//! header, each later non-empty row a record. Cells become the text a person sees in the sheet
//! (whole numbers without ".0", dates as ISO 8601 so templates' date helpers read them), then
//! go through the same [`super::list::Record`] as a CSV's. Never panics on a broken file: every
//! problem becomes an [`ImportError`] and nothing is imported.

use std::path::{Path, PathBuf};

use calamine::{Data, Ods, Range, Reader, Sheets, Xls, Xlsb, Xlsx, open_workbook};

use super::columns::{self, ColumnProblem, EmailColumn};
use super::csv_import::{ImportError, column_error};
use super::list::{Cells, Record};

/// Which reader a file's extension calls for, and the name people know the format by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Xlsx,
    Xlsb,
    Xls,
    Ods,
}

/// The spreadsheet format named by `path`'s extension (any case), None for anything else.
pub(super) fn kind_of(path: &Path) -> Option<Kind> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "xlsx" | "xlsm" => Some(Kind::Xlsx),
        "xlsb" => Some(Kind::Xlsb),
        "xls" => Some(Kind::Xls),
        "ods" => Some(Kind::Ods),
        _ => None,
    }
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Xlsx | Kind::Xlsb | Kind::Xls => "Excel workbook",
            Kind::Ods => "OpenDocument spreadsheet",
        }
    }
}

/// A sheet read into memory (calamine reads a sheet whole), handed out row by row.
#[derive(Debug)]
pub struct SheetRecipients {
    path: PathBuf,
    kind: Kind,
    sheet: String,
    range: Range<Data>,
    /// The sheet row number (1-based) of the range's first row: a sheet may start lower down.
    first_row: u64,
    headers: Vec<String>,
    columns: Vec<String>,
    email: EmailColumn,
    /// Index in `range` of the next row to read.
    next: usize,
    /// Rows after the header, blank ones included: what [`Self::records`] estimates with.
    records: u64,
    /// The current row's cells as text, reused from row to row.
    cells: Vec<String>,
}

/// Opens the first sheet of the workbook at `path` and finds its header and email column.
pub(super) fn open(
    path: &Path,
    email_column: Option<&str>,
) -> Result<SheetRecipients, ImportError> {
    let not_sheet = |reason: String| ImportError::NotSheet {
        path: path.to_owned(),
        reason,
    };
    let kind = kind_of(path).ok_or_else(|| {
        not_sheet("its name does not end in .xlsx, .xlsm, .xlsb, .xls or .ods".into())
    })?;
    if let Err(source) = std::fs::metadata(path) {
        return Err(ImportError::Io {
            path: path.to_owned(),
            source,
        });
    }
    let mut workbook: Sheets<_> = match kind {
        Kind::Xlsx => open_workbook::<Xlsx<_>, _>(path)
            .map(Sheets::Xlsx)
            .map_err(|e| e.to_string()),
        Kind::Xlsb => open_workbook::<Xlsb<_>, _>(path)
            .map(Sheets::Xlsb)
            .map_err(|e| e.to_string()),
        Kind::Xls => open_workbook::<Xls<_>, _>(path)
            .map(Sheets::Xls)
            .map_err(|e| e.to_string()),
        Kind::Ods => open_workbook::<Ods<_>, _>(path)
            .map(Sheets::Ods)
            .map_err(|e| e.to_string()),
    }
    .map_err(|reason| not_sheet(format!("{} ({reason})", what_it_is(kind))))?;
    let sheet = workbook
        .sheet_names()
        .into_iter()
        .next()
        .unwrap_or_default();
    let range = match workbook.worksheet_range_at(0) {
        None => {
            return Err(ImportError::Empty {
                path: path.to_owned(),
            });
        }
        Some(Err(error)) => {
            return Err(not_sheet(format!(
                "its first sheet \"{sheet}\" cannot be read ({error})"
            )));
        }
        Some(Ok(range)) => range,
    };
    let first_row = range.start().map_or(1, |(row, _)| u64::from(row) + 1);
    let mut list = SheetRecipients {
        path: path.to_owned(),
        kind,
        sheet,
        range,
        first_row,
        headers: Vec::new(),
        columns: Vec::new(),
        email: EmailColumn {
            index: 0,
            header: String::new(),
            found_by: columns::FoundBy::Named,
        },
        next: 0,
        records: 0,
        cells: Vec::new(),
    };
    // The first row with anything in it is the header, as in a CSV.
    let header = loop {
        let index = list.next;
        list.next += 1;
        let Some(row) = list.row(index) else {
            return Err(ImportError::Empty {
                path: path.to_owned(),
            });
        };
        if !row.iter().all(is_blank) {
            // The range is as wide as the widest row: the header ends at its last named
            // column, as a CSV's header line does.
            let named = row.len() - row.iter().rev().take_while(|cell| is_blank(cell)).count();
            break row
                .iter()
                .take(named)
                .map(|cell| cell_text(cell).trim().to_owned())
                .collect::<Vec<_>>();
        }
    };
    list.headers = header;
    list.records = u64::try_from(list.range.height().saturating_sub(list.next)).unwrap_or(0);
    list.email = list.choose_email_column(email_column)?;
    list.columns = columns::field_names(&list.headers, list.email.index).map_err(|column| {
        ImportError::DuplicateColumn {
            column,
            path: path.to_owned(),
        }
    })?;
    Ok(list)
}

/// What a file that calamine refused was expected to be.
fn what_it_is(kind: Kind) -> &'static str {
    match kind {
        Kind::Xlsx | Kind::Xlsb | Kind::Xls => {
            "it is named like an Excel workbook but is not one Excel, LibreOffice or Google Sheets would open"
        }
        Kind::Ods => {
            "it is named like an OpenDocument spreadsheet but is not one LibreOffice would open"
        }
    }
}

impl SheetRecipients {
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn email_column(&self) -> &EmailColumn {
        &self.email
    }

    pub fn kind(&self) -> &'static str {
        self.kind.name()
    }

    pub fn sheet_name(&self) -> &str {
        &self.sheet
    }

    /// Rows below the header, blank ones included: the sheet is in memory, so this is exact
    /// but for the blank rows.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Row `index` of the range (0-based), in constant time (`Range::rows().nth` walks).
    fn row(&self, index: usize) -> Option<&[Data]> {
        (index < self.range.height()).then(|| &self.range[index])
    }

    fn choose_email_column(&mut self, wanted: Option<&str>) -> Result<EmailColumn, ImportError> {
        let found = match wanted {
            Some(wanted) => columns::named(&self.headers, wanted),
            None => match columns::by_header(&self.headers) {
                Some(found) => Ok(found),
                None => {
                    let rows: Vec<Vec<String>> = (self.next..)
                        .map_while(|index| self.row(index))
                        .filter(|row| !row.iter().all(is_blank))
                        .take(columns::SAMPLE_ROWS)
                        .map(|row| {
                            row.iter()
                                .map(|cell| cell_text(cell).trim().to_owned())
                                .collect()
                        })
                        .collect();
                    columns::by_values(&self.headers, &rows).ok_or(ColumnProblem::NotFound)
                }
            },
        };
        found.map_err(|problem| column_error(problem, &self.headers, &self.path))
    }

    /// The next non-blank row. Cells to the right of the header's last column are an error of
    /// that row when they hold anything (as a CSV record with too many values is); blank ones
    /// are what a stray edit leaves and are ignored.
    pub fn next_record(&mut self) -> Option<Result<Record<'_>, ImportError>> {
        let width = self.headers.len();
        loop {
            let index = self.next;
            let row = (index < self.range.height()).then(|| &self.range[index])?;
            self.next += 1;
            if row.iter().all(is_blank) {
                continue;
            }
            let line = self
                .first_row
                .saturating_add(u64::try_from(index).unwrap_or(u64::MAX));
            if let Some(extra) = row.iter().skip(width).position(|cell| !is_blank(cell)) {
                return Some(Err(ImportError::Row {
                    line,
                    message: format!(
                        "it has a value in column {} but the first row names only {} {}",
                        column_letters(width + extra),
                        width,
                        if width == 1 { "column" } else { "columns" },
                    ),
                    path: self.path.clone(),
                }));
            }
            self.cells.clear();
            self.cells.extend(row.iter().take(width).map(cell_text));
            return Some(Ok(Record::new(
                line,
                Cells::Sheet(&self.cells),
                self.email.index,
                width,
            )));
        }
    }
}

fn is_blank(cell: &Data) -> bool {
    match cell {
        Data::Empty => true,
        Data::String(text) => text.trim().is_empty(),
        _ => false,
    }
}

/// A cell as the sheet shows it, near enough for mail merge: whole numbers without a
/// fraction (zip codes and phone numbers are often stored as numbers), other numbers in their
/// shortest exact form, dates as `2024-03-05` or `2024-03-05 14:30:00`, durations as
/// `h:mm:ss`, booleans as TRUE/FALSE, errors as Excel writes them (`#N/A`).
pub(super) fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(text) => text.clone(),
        Data::Int(number) => number.to_string(),
        Data::Float(number) => float_text(*number),
        Data::Bool(true) => "TRUE".into(),
        Data::Bool(false) => "FALSE".into(),
        Data::DateTime(date) if date.is_duration() => {
            let total = (date.as_f64() * 86_400.0).round();
            if total.is_finite() && total.abs() < 1e15 {
                let total = total as i64;
                let sign = if total < 0 { "-" } else { "" };
                let total = total.abs();
                format!(
                    "{sign}{}:{:02}:{:02}",
                    total / 3600,
                    total / 60 % 60,
                    total % 60
                )
            } else {
                float_text(date.as_f64())
            }
        }
        Data::DateTime(date) => {
            let serial = date.as_f64();
            if !serial.is_finite() || !(0.0..3_000_000.0).contains(&serial) {
                return float_text(serial);
            }
            let (year, month, day, hour, minute, second, _) = date.to_ymd_hms_milli();
            if (hour, minute, second) == (0, 0, 0) {
                format!("{year:04}-{month:02}-{day:02}")
            } else {
                format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
            }
        }
        // OpenDocument keeps dates as ISO 8601 text already: "2024-03-05T14:30:00".
        Data::DateTimeIso(text) => text.replacen('T', " ", 1),
        Data::DurationIso(text) => text.clone(),
        Data::Error(error) => error.to_string(),
    }
}

fn float_text(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        // Rust prints the shortest text that reads back as the same number.
        number.to_string()
    }
}

/// Excel's name for a 0-based column: A, B, … Z, AA, AB…
fn column_letters(index: usize) -> String {
    let mut letters = Vec::new();
    let mut n = index + 1;
    while n > 0 {
        let rest = (n - 1) % 26;
        letters.push(char::from(b'A' + u8::try_from(rest).unwrap_or(0)));
        n = (n - 1) / 26;
    }
    letters.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{CellErrorType, ExcelDateTime, ExcelDateTimeType};

    #[test]
    fn cells_read_as_the_sheet_shows_them() {
        let date = |value| {
            Data::DateTime(ExcelDateTime::new(
                value,
                ExcelDateTimeType::DateTime,
                false,
            ))
        };
        let cases = [
            (Data::Empty, ""),
            (Data::String("Zoë".into()), "Zoë"),
            (Data::Int(-42), "-42"),
            (Data::Float(75001.0), "75001"),
            (Data::Float(0.1), "0.1"),
            (Data::Float(-2.5), "-2.5"),
            (Data::Float(1e20), "100000000000000000000"),
            (Data::Bool(true), "TRUE"),
            (Data::Bool(false), "FALSE"),
            // 45356 is 2024-03-05 in Excel's 1900 date system.
            (date(45356.0), "2024-03-05"),
            (date(45356.75), "2024-03-05 18:00:00"),
            (date(f64::NAN), "NaN"),
            (
                Data::DateTime(ExcelDateTime::new(1.5, ExcelDateTimeType::TimeDelta, false)),
                "36:00:00",
            ),
            (Data::DateTimeIso("2024-03-05".into()), "2024-03-05"),
            (
                Data::DateTimeIso("2024-03-05T14:30:00".into()),
                "2024-03-05 14:30:00",
            ),
            (Data::DurationIso("PT1H".into()), "PT1H"),
            (Data::Error(CellErrorType::NA), "#N/A"),
        ];
        for (cell, expected) in cases {
            assert_eq!(cell_text(&cell), expected, "{cell:?}");
        }
    }

    #[test]
    fn kinds_come_from_the_extension() {
        let cases = [
            ("list.xlsx", Some(Kind::Xlsx)),
            ("LIST.XLSX", Some(Kind::Xlsx)),
            ("list.xlsm", Some(Kind::Xlsx)),
            ("list.xlsb", Some(Kind::Xlsb)),
            ("list.xls", Some(Kind::Xls)),
            ("list.ods", Some(Kind::Ods)),
            ("list.csv", None),
            ("list.txt", None),
            ("xlsx", None),
        ];
        for (name, expected) in cases {
            assert_eq!(kind_of(Path::new(name)), expected, "{name}");
        }
    }

    #[test]
    fn column_letters_count_like_excel() {
        for (index, expected) in [
            (0, "A"),
            (1, "B"),
            (25, "Z"),
            (26, "AA"),
            (27, "AB"),
            (701, "ZZ"),
            (702, "AAA"),
        ] {
            assert_eq!(column_letters(index), expected);
        }
    }
}
