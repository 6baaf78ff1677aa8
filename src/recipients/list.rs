//! A recipient list whatever its file: a CSV or a spreadsheet (.xlsx, .xlsm, .xlsb, .xls,
//! .ods), chosen by the file's extension, read into the same rows so the import, the check and
//! the window's peek run one pipeline for both. Owns that choice and the borrowed [`Record`];
//! never validates addresses or deduplicates (that is `super::dedupe`'s job).

use std::borrow::Cow;
use std::path::Path;

use super::columns::EmailColumn;
use super::csv_import::{self, CsvRecipients, CsvRow, ImportError};
use super::sheet::{self, SheetRecipients};

/// What kind of file a list is, with what was found out while opening it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListFormat {
    /// `delimiter` is `,`, `;` or tab; `encoding` e.g. "UTF-8", "windows-1252".
    Csv {
        delimiter: u8,
        encoding: &'static str,
    },
    /// `kind` names the file format ("Excel workbook", "OpenDocument spreadsheet"); `sheet` is
    /// the name of the sheet read (the first).
    Sheet { kind: &'static str, sheet: String },
}

impl ListFormat {
    /// For people: `CSV (UTF-8, comma-separated)`, `Excel workbook, sheet "Contacts"`.
    pub fn describe(&self) -> String {
        match self {
            ListFormat::Csv {
                delimiter,
                encoding,
            } => {
                let separator = match delimiter {
                    b';' => "semicolon",
                    b'\t' => "tab",
                    _ => "comma",
                };
                format!("CSV ({encoding}, {separator}-separated)")
            }
            ListFormat::Sheet { kind, sheet } => format!("{kind}, sheet \"{sheet}\""),
        }
    }
}

/// A recipient list opened for streaming; iterate it (or call [`Self::next_record`]) for rows.
#[derive(Debug)]
pub struct RecipientList {
    source: Source,
}

#[derive(Debug)]
enum Source {
    Csv(Box<CsvRecipients>),
    Sheet(Box<SheetRecipients>),
}

/// Whether `path` names a spreadsheet (by its extension, case ignored) rather than a CSV.
pub fn is_sheet(path: &Path) -> bool {
    sheet::kind_of(path).is_some()
}

/// Opens the list at `path` and finds its email column: the one `email_column` names (case and
/// surrounding spaces ignored), or, when None, the one [`super::columns`] recognizes.
pub fn open(path: &Path, email_column: Option<&str>) -> Result<RecipientList, ImportError> {
    let source = if is_sheet(path) {
        Source::Sheet(Box::new(sheet::open(path, email_column)?))
    } else {
        Source::Csv(Box::new(csv_import::open(path, email_column)?))
    };
    Ok(RecipientList { source })
}

impl RecipientList {
    /// The header row as written in the file (trimmed), email column included.
    pub fn headers(&self) -> &[String] {
        match &self.source {
            Source::Csv(csv) => csv.headers(),
            Source::Sheet(sheet) => sheet.headers(),
        }
    }

    /// Template field names for every column except the email column, in file order.
    pub fn columns(&self) -> &[String] {
        match &self.source {
            Source::Csv(csv) => csv.columns(),
            Source::Sheet(sheet) => sheet.columns(),
        }
    }

    /// The email column and how it was found.
    pub fn email_column(&self) -> &EmailColumn {
        match &self.source {
            Source::Csv(csv) => csv.email_column(),
            Source::Sheet(sheet) => sheet.email_column(),
        }
    }

    /// The email column's header as written in the file.
    pub fn email_header(&self) -> &str {
        &self.email_column().header
    }

    pub fn format(&self) -> ListFormat {
        match &self.source {
            Source::Csv(csv) => ListFormat::Csv {
                delimiter: csv.delimiter(),
                encoding: csv.encoding_name(),
            },
            Source::Sheet(sheet) => ListFormat::Sheet {
                kind: sheet.kind(),
                sheet: sheet.sheet_name().to_owned(),
            },
        }
    }

    /// About how many records the whole list holds, judged from the `read` records read so
    /// far; None when it cannot tell yet.
    pub fn estimated_records(&self, read: u64) -> Option<u64> {
        match &self.source {
            Source::Csv(csv) => csv.estimated_records(read),
            Source::Sheet(sheet) => Some(sheet.records()),
        }
    }

    /// The next record, borrowed from the reader. Blank records are skipped; a record with
    /// more values than the header is an error of that row, and reading goes on after it.
    pub fn next_record(&mut self) -> Option<Result<Record<'_>, ImportError>> {
        match &mut self.source {
            Source::Csv(csv) => csv.next_record(),
            Source::Sheet(sheet) => sheet.next_record(),
        }
    }
}

impl Iterator for RecipientList {
    type Item = Result<CsvRow, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
            .map(|record| record.map(|record| record.to_row()))
    }
}

impl std::iter::FusedIterator for RecipientList {}

/// The cells of one record, as the reader holds them.
#[derive(Clone, Copy, Debug)]
pub(super) enum Cells<'a> {
    Csv(&'a csv::ByteRecord),
    /// A sheet's row, already turned into text.
    Sheet(&'a [String]),
}

impl<'a> Cells<'a> {
    /// A cell as text: a CSV's decoded stream is UTF-8 unless the file lied, in which case the
    /// broken sequences become U+FFFD. A missing cell is empty.
    fn text(self, index: usize) -> Cow<'a, str> {
        match self {
            Cells::Csv(record) => {
                let bytes = record.get(index).unwrap_or_default();
                match std::str::from_utf8(bytes) {
                    Ok(text) => Cow::Borrowed(text),
                    Err(_) => String::from_utf8_lossy(bytes),
                }
            }
            Cells::Sheet(cells) => Cow::Borrowed(cells.get(index).map_or("", String::as_str)),
        }
    }
}

/// One record of the list, borrowed from the reader until the next one is read.
#[derive(Debug)]
pub struct Record<'a> {
    line: u64,
    cells: Cells<'a>,
    email_index: usize,
    columns: usize,
}

impl<'a> Record<'a> {
    pub(super) fn new(line: u64, cells: Cells<'a>, email_index: usize, columns: usize) -> Self {
        Record {
            line,
            cells,
            email_index,
            columns,
        }
    }

    /// 1-based line of the file (a sheet's row number) on which the record starts.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The email cell, trimmed but not validated.
    pub fn email(&self) -> Cow<'a, str> {
        match self.cells.text(self.email_index) {
            Cow::Borrowed(email) => Cow::Borrowed(email.trim()),
            Cow::Owned(email) => Cow::Owned(email.trim().to_owned()),
        }
    }

    /// The other cells, in the order of [`RecipientList::columns`]; a short record's missing
    /// cells are empty.
    pub fn fields(&self) -> impl Iterator<Item = Cow<'a, str>> + use<'a> {
        let (cells, email_index) = (self.cells, self.email_index);
        (0..self.columns)
            .filter(move |&index| index != email_index)
            .map(move |index| match cells.text(index) {
                Cow::Borrowed(field) => Cow::Borrowed(field.trim_matches('\r')),
                Cow::Owned(field) => Cow::Owned(field.trim_matches('\r').to_owned()),
            })
    }

    /// The record as an owned row.
    pub fn to_row(&self) -> CsvRow {
        CsvRow {
            line: self.line,
            email: self.email().into_owned(),
            fields: self.fields().map(Cow::into_owned).collect(),
        }
    }
}
