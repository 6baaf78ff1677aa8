//! Reading a recipient list from a CSV file, one record at a time.
//!
//! This module owns everything between the bytes on disk and a row of
//! strings: picking the text encoding, finding the delimiter and the header
//! row, naming the personalization fields, and reporting malformed records
//! with their line numbers. It must never load the whole list into memory
//! (lists run to millions of rows), never validate or deduplicate addresses
//! (that is `super::dedupe`'s job), never print, and never panic on any
//! file, however broken.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Chain, Cursor, Read};
use std::path::{Path, PathBuf};

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};
use encoding_rs_io::{DecodeReaderBytes, DecodeReaderBytesBuilder};

use super::columns::{self, ColumnProblem, EmailColumn, FoundBy};
use super::list::{Cells, Record};

/// Bytes read per step of the encoding check: large enough to be fast,
/// small enough to keep memory flat.
const CHUNK: usize = 64 * 1024;
/// Text files practically never contain NUL; spreadsheets, archives and
/// images nearly always do within their first few kilobytes.
const BINARY_PROBE: usize = 8 * 1024;
/// A header line longer than this is not a header line: it is a file with no
/// line breaks, or a binary file that happened to have no NUL early on.
const MAX_HEADER_LINE: usize = 64 * 1024;

/// Why a recipient list could not be read, or one of its records could not.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("could not read the recipient list: {source} ({})", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the recipient list is not a CSV file: {reason} ({})", .path.display())]
    NotCsv { path: PathBuf, reason: String },
    #[error(
        "the recipient list is empty; it needs a first row that names its columns ({})",
        .path.display()
    )]
    Empty { path: PathBuf },
    #[error(
        "the recipient list has no column named \"{column}\"; its columns are: {} ({})",
        .found.join(", "),
        .path.display()
    )]
    NoEmailColumn {
        column: String,
        found: Vec<String>,
        path: PathBuf,
    },
    #[error(
        "the recipient list has more than one column named \"{column}\" (names that differ only in capitals, spaces or punctuation count as the same); rename or remove one of them ({})",
        .path.display()
    )]
    DuplicateColumn { column: String, path: PathBuf },
    #[error(
        "no column of the recipient list looks like the email column (by its name or by its first values); its columns are: {}; name it with email_column in [recipients] ({})",
        .found.join(", "),
        .path.display()
    )]
    EmailColumnNotFound { found: Vec<String>, path: PathBuf },
    #[error("the recipient list is not a readable spreadsheet: {reason} ({})", .path.display())]
    NotSheet { path: PathBuf, reason: String },
    #[error("line {line} of the recipient list could not be used: {message} ({})", .path.display())]
    Row {
        line: u64,
        message: String,
        path: PathBuf,
    },
}

/// One record of the list. `fields` line up with [`CsvRecipients::columns`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvRow {
    /// 1-based line of the file on which the record starts.
    pub line: u64,
    /// The email cell, trimmed but not validated.
    pub email: String,
    pub fields: Vec<String>,
}

type Decoded = BufReader<DecodeReaderBytes<File, Vec<u8>>>;

/// A recipient list opened for streaming; iterate it to get the rows.
#[derive(Debug)]
pub struct CsvRecipients {
    path: PathBuf,
    /// The header line is read ahead (to find the delimiter) and put back in
    /// front of the rest of the decoded stream.
    reader: csv::Reader<LineTracker<Chain<Cursor<Vec<u8>>, Decoded>>>,
    headers: Vec<String>,
    columns: Vec<String>,
    email: EmailColumn,
    delimiter: u8,
    encoding: &'static Encoding,
    /// Line breaks skipped before the header, which the CSV reader never saw.
    line_offset: u64,
    record: csv::ByteRecord,
    finished: bool,
    /// The file's size in bytes, to estimate how many records it holds.
    file_len: u64,
    /// Records read ahead to find the email column by its values, with their lines: handed
    /// out before the reader's next ones.
    sampled: VecDeque<(u64, csv::ByteRecord)>,
    /// An error met while sampling, handed out after the sampled records.
    sample_error: Option<ImportError>,
}

/// Opens the list at `path` and reads its header row. `email_column` names
/// the column holding addresses (matched ignoring case and surrounding
/// spaces); None finds it by its header or, failing that, by its values
/// (see [`columns`]).
// Long because opening a list is one sequence of sniffing steps, each needing the last:
// the encoding (BOM, UTF-8, else Windows-1252), blank leading lines, the delimiter, the
// header, the email column.
pub fn open(path: &Path, email_column: Option<&str>) -> Result<CsvRecipients, ImportError> {
    let io_err = |source| ImportError::Io {
        path: path.to_owned(),
        source,
    };
    let not_csv = |reason: &str| ImportError::NotCsv {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };

    let plan = sniff_encoding(path)?;
    let file = File::open(path).map_err(io_err)?;
    let file_len = file.metadata().map_or(0, |metadata| metadata.len());
    let mut builder = DecodeReaderBytesBuilder::new();
    builder.strip_bom(true);
    match plan {
        // Valid UTF-8 is handed through untouched, minus any BOM.
        Plan::Utf8 => builder.encoding(None).utf8_passthru(true),
        // The BOM picks the UTF-16 decoder.
        Plan::Utf16(_) => builder.encoding(None),
        Plan::Decode(encoding) => builder.encoding(Some(encoding)).bom_sniffing(false),
    };
    let mut decoded = BufReader::new(builder.build(file));

    // Leading blank lines (or lines of bare separators, as spreadsheets
    // export empty rows) are skipped so the first real line is the header.
    let mut line_offset = 0u64;
    let mut after_cr = false;
    let header_line = loop {
        let line = match read_logical_line(&mut decoded).map_err(io_err)? {
            LogicalLine::Eof => {
                return Err(ImportError::Empty {
                    path: path.to_owned(),
                });
            }
            LogicalLine::TooLong => {
                return Err(not_csv(
                    "its first line is longer than 64 KiB, so it has no recognizable header row",
                ));
            }
            LogicalLine::Line(line) => line,
        };
        if line.contains(&0) {
            return Err(not_csv("it contains binary data (NUL bytes)"));
        }
        if line
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b',' | b';' | b'"'))
        {
            line_offset += count_line_breaks(&line, &mut after_cr);
            continue;
        }
        break line;
    };

    let delimiter = detect_delimiter(&header_line);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(LineTracker::new(Cursor::new(header_line).chain(decoded)));

    let mut record = csv::ByteRecord::new();
    match reader.read_byte_record(&mut record) {
        Ok(true) => {
            // Accounts for the header's bytes so row lines start after it.
            let start = record.position().map_or(0, csv::Position::byte);
            reader.get_mut().record_start_line(start);
        }
        Ok(false) => {
            return Err(ImportError::Empty {
                path: path.to_owned(),
            });
        }
        Err(err) => return Err(csv_error(err, path, line_offset.saturating_add(1))),
    }
    let headers: Vec<String> = record
        .iter()
        .map(|field| String::from_utf8_lossy(field).trim().to_owned())
        .collect();

    let mut list = CsvRecipients {
        path: path.to_owned(),
        reader,
        headers,
        columns: Vec::new(),
        email: EmailColumn {
            index: 0,
            header: String::new(),
            found_by: FoundBy::Named,
        },
        delimiter,
        encoding: plan.encoding(),
        line_offset,
        record,
        finished: false,
        file_len,
        sampled: VecDeque::new(),
        sample_error: None,
    };
    list.email = list.choose_email_column(email_column)?;
    list.columns = columns::field_names(&list.headers, list.email.index).map_err(|column| {
        ImportError::DuplicateColumn {
            column,
            path: path.to_owned(),
        }
    })?;
    Ok(list)
}

/// Maps a [`ColumnProblem`] to the error a caller reports, naming the file.
pub(super) fn column_error(problem: ColumnProblem, headers: &[String], path: &Path) -> ImportError {
    match problem {
        ColumnProblem::NotNamed { column } => ImportError::NoEmailColumn {
            column,
            found: headers.to_vec(),
            path: path.to_owned(),
        },
        ColumnProblem::Duplicate { column } => ImportError::DuplicateColumn {
            column,
            path: path.to_owned(),
        },
        ColumnProblem::NotFound => ImportError::EmailColumnNotFound {
            found: headers.to_vec(),
            path: path.to_owned(),
        },
    }
}
impl CsvRecipients {
    /// The header row as written in the file (trimmed), email column included.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// Template field names for every column except the email column, in
    /// file order; see [`field_name`] for how they are derived.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The email column's header as written in the file.
    pub fn email_header(&self) -> &str {
        &self.email.header
    }

    /// The email column and how it was found.
    pub fn email_column(&self) -> &EmailColumn {
        &self.email
    }

    /// Named by the campaign, else recognized by its header, else by the first rows' values
    /// (read ahead here and handed out again by [`Self::next_record`]).
    fn choose_email_column(&mut self, wanted: Option<&str>) -> Result<EmailColumn, ImportError> {
        let found = match wanted {
            Some(wanted) => columns::named(&self.headers, wanted),
            None => match columns::by_header(&self.headers) {
                Some(found) => Ok(found),
                None => {
                    let rows = self.sample();
                    columns::by_values(&self.headers, &rows).ok_or(ColumnProblem::NotFound)
                }
            },
        };
        found.map_err(|problem| column_error(problem, &self.headers, &self.path))
    }

    /// Reads up to [`columns::SAMPLE_ROWS`] records ahead; returns their cells as text.
    fn sample(&mut self) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        while rows.len() < columns::SAMPLE_ROWS {
            match self.read_record() {
                None => break,
                Some(Err(error)) => {
                    self.sample_error = Some(error);
                    break;
                }
                Some(Ok(line)) => {
                    rows.push(
                        self.record
                            .iter()
                            .map(|cell| String::from_utf8_lossy(cell).trim().to_owned())
                            .collect(),
                    );
                    self.sampled.push_back((line, self.record.clone()));
                }
            }
        }
        rows
    }

    /// The field separator found in the header line: `,`, `;` or tab.
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// The encoding the file was read as: "UTF-8", "windows-1252",
    /// "UTF-16LE" or "UTF-16BE".
    pub fn encoding_name(&self) -> &'static str {
        self.encoding.name()
    }

    /// About how many records the whole file holds, judged from the `read` records read so far
    /// and the bytes they took; None before the first. A hint for sizing memory: a file in a
    /// 16-bit encoding makes it about twice too high.
    pub fn estimated_records(&self, read: u64) -> Option<u64> {
        let consumed = self.reader.position().byte();
        (read > 0 && consumed > 0).then(|| {
            u64::try_from(u128::from(read) * u128::from(self.file_len) / u128::from(consumed))
                .unwrap_or(u64::MAX)
        })
    }

    /// The next record, borrowed from the reader: for callers that copy only what they keep
    /// (an import of a million rows). Blank records are skipped; a record with more values
    /// than the header is an error of that row, and reading goes on after it.
    pub fn next_record(&mut self) -> Option<Result<Record<'_>, ImportError>> {
        let line = match self.sampled.pop_front() {
            Some((line, record)) => {
                self.record = record;
                line
            }
            None => match self.sample_error.take() {
                Some(error) => return Some(Err(error)),
                None => match self.read_record()? {
                    Ok(line) => line,
                    Err(error) => return Some(Err(error)),
                },
            },
        };
        if let Some(error) = self.too_many_values(line) {
            return Some(Err(error));
        }
        Some(Ok(Record::new(
            line,
            Cells::Csv(&self.record),
            self.email.index,
            self.headers.len(),
        )))
    }

    /// Reads the next record that is not blank into `self.record`; returns its line.
    fn read_record(&mut self) -> Option<Result<u64, ImportError>> {
        while !self.finished {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(true) => {}
                Ok(false) => {
                    self.finished = true;
                    break;
                }
                Err(err) => {
                    // With `flexible` and byte records the only errors left
                    // are I/O failures, after which nothing more can be read.
                    self.finished = true;
                    let line = self
                        .reader
                        .position()
                        .line()
                        .saturating_add(self.line_offset);
                    return Some(Err(csv_error(err, &self.path, line)));
                }
            }
            let start = self.record.position().map_or(0, csv::Position::byte);
            let line = self
                .reader
                .get_mut()
                .record_start_line(start)
                .saturating_add(self.line_offset);
            if self.record.iter().all(is_blank) {
                continue;
            }
            return Some(Ok(line));
        }
        None
    }

    /// Trailing empty cells are what spreadsheets export after a stray edit to the right of
    /// the table; only real extra data is an error.
    fn too_many_values(&self, line: u64) -> Option<ImportError> {
        let expected = self.headers.len();
        let extra_with_data = self
            .record
            .iter()
            .skip(expected)
            .any(|field| !is_blank(field));
        extra_with_data.then(|| ImportError::Row {
            line,
            message: format!(
                "it has {} values but the first row names only {} {}; a value may contain an unquoted {}",
                self.record.len(),
                expected,
                if expected == 1 { "column" } else { "columns" },
                delimiter_name(self.delimiter),
            ),
            path: self.path.clone(),
        })
    }
}

impl Iterator for CsvRecipients {
    type Item = Result<CsvRow, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
            .map(|record| record.map(|record| record.to_row()))
    }
}

impl std::iter::FusedIterator for CsvRecipients {}

/// How the bytes of the file will be turned into UTF-8.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Valid UTF-8 (with or without BOM): passed through.
    Utf8,
    /// A UTF-16 byte-order mark was found.
    Utf16(&'static Encoding),
    /// Decode with this encoding, replacing anything undecodable.
    Decode(&'static Encoding),
}

impl Plan {
    fn encoding(self) -> &'static Encoding {
        match self {
            Plan::Utf8 => UTF_8,
            Plan::Utf16(encoding) | Plan::Decode(encoding) => encoding,
        }
    }
}

/// The first pass: looks for a byte-order mark and binary data at the start,
/// then checks that the whole file is valid UTF-8, one chunk at a time.
/// Exports from older Excel versions are Windows-1252, which cannot be told
/// apart from other 8-bit encodings reliably; it is the most common one and
/// decodes every printable Latin-1 character the same way.
fn sniff_encoding(path: &Path) -> Result<Plan, ImportError> {
    let io_err = |source| ImportError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let mut buf = vec![0u8; CHUNK];
    let mut filled = read_full(&mut file, &mut buf).map_err(io_err)?;
    let start = buf.get(..filled).unwrap_or_default();

    if start.starts_with(&[0xFF, 0xFE]) {
        return Ok(Plan::Utf16(UTF_16LE));
    }
    if start.starts_with(&[0xFE, 0xFF]) {
        return Ok(Plan::Utf16(UTF_16BE));
    }
    let has_bom = start.starts_with(&[0xEF, 0xBB, 0xBF]);
    let probe = start.get(..BINARY_PROBE).unwrap_or(start);
    if probe.contains(&0) {
        let reason = if start.starts_with(b"PK\x03\x04") {
            "it looks like an Excel workbook or a ZIP archive; save it as CSV first"
        } else {
            "it contains binary data (NUL bytes)"
        };
        return Err(ImportError::NotCsv {
            path: path.to_owned(),
            reason: reason.to_owned(),
        });
    }

    let fallback = if has_bom {
        // A UTF-8 BOM is an explicit declaration; honour it and replace the
        // few broken sequences rather than reinterpret the whole file.
        Plan::Decode(UTF_8)
    } else {
        Plan::Decode(WINDOWS_1252)
    };
    loop {
        let at_eof = filled < buf.len();
        let data = buf.get(..filled).unwrap_or_default();
        let carry = match std::str::from_utf8(data) {
            Ok(_) => 0,
            // A multi-byte character cut by the chunk boundary: keep its
            // first bytes and finish it with the next chunk.
            Err(err) if err.error_len().is_none() && !at_eof => {
                let valid = err.valid_up_to();
                buf.copy_within(valid..filled, 0);
                filled - valid
            }
            Err(_) => return Ok(fallback),
        };
        if at_eof {
            return Ok(Plan::Utf8);
        }
        let more =
            read_full(&mut file, buf.get_mut(carry..).unwrap_or_default()).map_err(io_err)?;
        if more == 0 && carry == 0 {
            return Ok(Plan::Utf8);
        }
        filled = carry + more;
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut total = 0;
    while let Some(rest) = buf.get_mut(total..) {
        if rest.is_empty() {
            break;
        }
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(total)
}

/// Tracks whether a byte is inside a quoted field the way the CSV parser
/// does (RFC 4180 §2): a quote opens a quoted field only at the start of a
/// field, and a doubled quote inside one stands for a quote mark. The
/// delimiter is not known yet when this runs, so every candidate counts.
#[derive(Clone, Copy, Debug, Default)]
enum Quoting {
    #[default]
    FieldStart,
    Unquoted,
    Quoted,
    /// Just saw a quote inside a quoted field: either the closing quote or
    /// the first half of a doubled quote.
    QuoteInQuoted,
}

impl Quoting {
    /// Advances over `byte`; returns true if it is outside any quoted field.
    fn step(&mut self, byte: u8) -> bool {
        let separator = matches!(byte, b',' | b';' | b'\t' | b'\r' | b'\n');
        let (next, outside) = match (*self, byte) {
            (Quoting::FieldStart, b'"') => (Quoting::Quoted, false),
            (Quoting::Quoted, b'"') => (Quoting::QuoteInQuoted, false),
            (Quoting::Quoted, _) => (Quoting::Quoted, false),
            (Quoting::QuoteInQuoted, b'"') => (Quoting::Quoted, false),
            (_, _) if separator => (Quoting::FieldStart, true),
            (_, _) => (Quoting::Unquoted, true),
        };
        *self = next;
        outside
    }
}

enum LogicalLine {
    Line(Vec<u8>),
    TooLong,
    Eof,
}

/// Reads up to and including the first CR or LF outside a quoted field
/// (quoted fields may span lines), refusing to buffer more than
/// [`MAX_HEADER_LINE`] bytes. CR alone ends a line because Excel's "CSV
/// (Macintosh)" export still uses it.
fn read_logical_line(reader: &mut impl BufRead) -> io::Result<LogicalLine> {
    let mut line = Vec::new();
    let mut quoting = Quoting::default();
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if buf.is_empty() {
            break;
        }
        let mut end = None;
        for (index, &byte) in buf.iter().enumerate() {
            if quoting.step(byte) && matches!(byte, b'\r' | b'\n') {
                end = Some(index + 1);
                break;
            }
        }
        let taken = end.unwrap_or(buf.len());
        line.extend_from_slice(buf.get(..taken).unwrap_or(buf));
        reader.consume(taken);
        if line.len() > MAX_HEADER_LINE {
            return Ok(LogicalLine::TooLong);
        }
        if end.is_some() {
            break;
        }
    }
    if line.is_empty() {
        Ok(LogicalLine::Eof)
    } else {
        Ok(LogicalLine::Line(line))
    }
}

/// Counts line breaks (LF, CRLF or a lone CR) in `bytes`. `after_cr`
/// carries a trailing CR over to the next call so a CRLF split between two
/// calls counts once.
fn count_line_breaks(bytes: &[u8], after_cr: &mut bool) -> u64 {
    let mut breaks = 0;
    for &byte in bytes {
        match byte {
            b'\r' => breaks += 1,
            b'\n' if !*after_cr => breaks += 1,
            _ => {}
        }
        *after_cr = byte == b'\r';
    }
    breaks
}

/// Sits between the decoded text and the CSV parser and remembers where the
/// line breaks are, so each record can be given the line its first
/// character is on. The parser's own `csv::Position` is not enough: it
/// gives the line where the previous record's terminator ended, which is
/// one line early after a CRLF or after skipped blank lines, and it does
/// not count lone CRs.
#[derive(Debug)]
struct LineTracker<R> {
    inner: R,
    /// Bytes handed to the parser so far.
    offset: u64,
    /// Offset and byte of every CR and LF handed out that lies after the
    /// start of the last record looked up; bounded by the parser's buffer
    /// plus one record.
    breaks: VecDeque<(u64, u8)>,
    /// Line breaks before the first entry of `breaks`.
    counted: u64,
}

impl<R> LineTracker<R> {
    fn new(inner: R) -> Self {
        LineTracker {
            inner,
            offset: 0,
            breaks: VecDeque::new(),
            counted: 0,
        }
    }

    /// The 1-based line of the first character of the record whose bytes
    /// start at `start` (the parser skips CRs and LFs before a record, so
    /// the record's text begins after them). Forgets everything before it:
    /// calls must come in increasing order of `start`.
    fn record_start_line(&mut self, start: u64) -> u64 {
        let mut breaks = self.counted;
        let mut expected = start;
        let mut consumed = 0;
        while let Some(&(at, byte)) = self.breaks.get(consumed) {
            if at >= start {
                if at != expected {
                    break;
                }
                expected = at + 1;
            }
            let crlf_follows = matches!(
                self.breaks.get(consumed + 1),
                Some(&(next, b'\n')) if next == at + 1
            );
            if byte == b'\n' || !crlf_follows {
                breaks += 1;
            }
            consumed += 1;
        }
        self.breaks.drain(..consumed);
        self.counted = breaks;
        breaks + 1
    }
}

impl<R: Read> Read for LineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        let chunk = buf.get(..read).unwrap_or_default();
        for index in memchr::memchr2_iter(b'\r', b'\n', chunk) {
            let byte = chunk.get(index).copied().unwrap_or(b'\n');
            let index = u64::try_from(index).unwrap_or(u64::MAX);
            self.breaks
                .push_back((self.offset.saturating_add(index), byte));
        }
        self.offset = self
            .offset
            .saturating_add(u64::try_from(read).unwrap_or(u64::MAX));
        Ok(read)
    }
}

/// Picks the separator that occurs most often outside quotes in the header
/// line. Comma wins ties, being the RFC 4180 default; semicolon comes from
/// spreadsheets in locales that use the comma as decimal mark, tab from
/// "tab-separated" exports.
fn detect_delimiter(header: &[u8]) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoting = Quoting::default();
    for &byte in header {
        if quoting.step(byte) {
            for (delimiter, count) in &mut counts {
                if byte == *delimiter {
                    *count += 1;
                }
            }
        }
    }
    let mut best = (b',', 0usize);
    for candidate in counts {
        if candidate.1 > best.1 {
            best = candidate;
        }
    }
    best.0
}

/// Empty or only whitespace (Unicode included, as spreadsheets pad with
/// no-break spaces).
fn is_blank(field: &[u8]) -> bool {
    std::str::from_utf8(field).is_ok_and(|text| text.trim().is_empty())
}

fn delimiter_name(delimiter: u8) -> &'static str {
    match delimiter {
        b';' => "semicolon",
        b'\t' => "tab",
        _ => "comma",
    }
}

fn csv_error(err: csv::Error, path: &Path, line: u64) -> ImportError {
    let message = err.to_string();
    match err.into_kind() {
        csv::ErrorKind::Io(source) => ImportError::Io {
            path: path.to_owned(),
            source,
        },
        _ => ImportError::Row {
            line,
            message,
            path: path.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.csv");
        File::create(&path).unwrap().write_all(bytes).unwrap();
        (dir, path)
    }

    fn rows(list: CsvRecipients) -> Vec<CsvRow> {
        list.map(Result::unwrap).collect()
    }

    fn row(line: u64, email: &str, fields: &[&str]) -> CsvRow {
        CsvRow {
            line,
            email: email.to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    #[test]
    fn the_number_of_records_is_estimated_from_those_read() {
        let mut text = String::from("email,name\n");
        for n in 0..2_000 {
            text.push_str(&format!("person{n}@example.org,Person {n}\n"));
        }
        let (_dir, path) = write(text.as_bytes());
        let mut list = open(&path, Some("email")).unwrap();
        assert_eq!(list.estimated_records(0), None);
        for _ in 0..100 {
            list.next_record().unwrap().unwrap();
        }
        let estimate = list.estimated_records(100).unwrap();
        assert!((1_800..2_300).contains(&estimate), "{estimate}");
    }

    #[test]
    fn plain_utf8() {
        let (_dir, path) =
            write(b"Email,First Name,Zip-Code\n a@b.com ,Ann , 123\nc@d.com,Bob,456\n");
        let list = open(&path, Some("email")).unwrap();
        assert_eq!(list.headers(), ["Email", "First Name", "Zip-Code"]);
        assert_eq!(list.columns(), ["first_name", "zip_code"]);
        assert_eq!(list.email_header(), "Email");
        assert_eq!(list.delimiter(), b',');
        assert_eq!(list.encoding_name(), "UTF-8");
        assert_eq!(
            rows(list),
            [
                row(2, "a@b.com", &["Ann ", " 123"]),
                row(3, "c@d.com", &["Bob", "456"])
            ]
        );
    }

    #[test]
    fn email_column_in_the_middle_and_matched_loosely() {
        let (_dir, path) = write("name,  E-Mail ,city\nAnn,a@b.com,Köln".as_bytes());
        let list = open(&path, Some(" e-mail")).unwrap();
        assert_eq!(list.email_header(), "E-Mail");
        assert_eq!(list.columns(), ["name", "city"]);
        assert_eq!(rows(list), [row(2, "a@b.com", &["Ann", "Köln"])]);
    }

    #[test]
    fn utf8_bom_is_stripped() {
        let (_dir, path) = write("\u{FEFF}email,name\na@b.com,Zoë\n".as_bytes());
        let list = open(&path, Some("email")).unwrap();
        assert_eq!(list.headers(), ["email", "name"]);
        assert_eq!(list.encoding_name(), "UTF-8");
        assert_eq!(rows(list), [row(2, "a@b.com", &["Zoë"])]);
    }

    #[test]
    fn utf8_bom_with_broken_bytes_stays_utf8() {
        let (_dir, path) = write(b"\xEF\xBB\xBFemail,name\na@b.com,x\xFFy\n");
        let list = open(&path, Some("email")).unwrap();
        assert_eq!(list.encoding_name(), "UTF-8");
        assert_eq!(rows(list), [row(2, "a@b.com", &["x\u{FFFD}y"])]);
    }

    #[test]
    fn utf16_with_bom() {
        let text = "email;name\r\na@b.com;Zoë\r\n";
        let mut le = vec![0xFF, 0xFE];
        let mut be = vec![0xFE, 0xFF];
        for unit in text.encode_utf16() {
            le.extend_from_slice(&unit.to_le_bytes());
            be.extend_from_slice(&unit.to_be_bytes());
        }
        for (bytes, name) in [(le, "UTF-16LE"), (be, "UTF-16BE")] {
            let (_dir, path) = write(&bytes);
            let list = open(&path, Some("email")).unwrap();
            assert_eq!(list.encoding_name(), name);
            assert_eq!(list.delimiter(), b';');
            assert_eq!(rows(list), [row(2, "a@b.com", &["Zoë"])]);
        }
    }

    #[test]
    fn latin1_becomes_utf8() {
        let (_dir, path) = write(b"email;Pr\xE9nom\nx@y.com;Ren\xE9e\nz@y.com;\x80 \xFF\n");
        let list = open(&path, Some("email")).unwrap();
        assert_eq!(list.encoding_name(), "windows-1252");
        assert_eq!(list.headers(), ["email", "Prénom"]);
        assert_eq!(list.columns(), ["pr_nom"]);
        assert_eq!(
            rows(list),
            [row(2, "x@y.com", &["Renée"]), row(3, "z@y.com", &["€ ÿ"])]
        );
    }

    #[test]
    fn invalid_utf8_far_into_the_file_is_found() {
        let mut bytes = b"email,name\n".to_vec();
        // 'é' (two bytes in UTF-8) straddles every chunk boundary, and the
        // one broken byte sits well after the first chunk.
        while bytes.len() < 3 * CHUNK {
            bytes.extend_from_slice("a@b.com,é\n".as_bytes());
        }
        let valid = bytes.clone();
        bytes.extend_from_slice(b"c@d.com,\xE9\n");
        let (_dir, path) = write(&valid);
        assert_eq!(open(&path, Some("email")).unwrap().encoding_name(), "UTF-8");
        let (_dir, path) = write(&bytes);
        let list = open(&path, Some("email")).unwrap();
        assert_eq!(list.encoding_name(), "windows-1252");
        let last = rows(list).pop().unwrap();
        assert_eq!(last.fields, ["é"]);
    }

    #[test]
    fn crlf_and_quoted_newlines() {
        let (_dir, path) = write(
            b"email,note,\"a, \"\"quoted\"\" header\"\r\na@b.com,\"line one\r\nline two\",x\r\nc@d.com,\"say \"\"hi\"\", ok\",y\r\n",
        );
        let list = open(&path, Some("email")).unwrap();
        assert_eq!(list.headers(), ["email", "note", "a, \"quoted\" header"]);
        assert_eq!(list.columns(), ["note", "a_quoted_header"]);
        assert_eq!(
            rows(list),
            [
                row(2, "a@b.com", &["line one\r\nline two", "x"]),
                row(4, "c@d.com", &["say \"hi\", ok", "y"]),
            ]
        );
    }

    #[test]
    fn line_numbers_with_crlf_blank_lines() {
        let (_dir, path) =
            write(b"\r\n\r\nemail,note\r\n\r\na@b.com,\"x\r\n\r\ny\"\r\n\r\n\r\nc@d.com,z\r\n");
        let list = open(&path, Some("email")).unwrap();
        let lines: Vec<u64> = rows(list).iter().map(|r| r.line).collect();
        assert_eq!(lines, [5, 10]);
    }

    #[test]
    fn lone_cr_line_endings() {
        let (_dir, path) = write(b"email,name\ra@b.com,Ann\r\rc@d.com,Bob\r");
        let list = open(&path, Some("email")).unwrap();
        assert_eq!(
            rows(list),
            [row(2, "a@b.com", &["Ann"]), row(4, "c@d.com", &["Bob"])]
        );
    }

    #[test]
    fn stray_quote_in_header_does_not_swallow_the_file() {
        // A quote in the middle of a field is a literal character, as the
        // CSV parser treats it; it must not open a quoted section.
        let mut bytes = b"Nick \"name\",email\n".to_vec();
        for _ in 0..10_000 {
            bytes.extend_from_slice(b"x,a@b.com\n");
        }
        let (_dir, path) = write(&bytes);
        let list = open(&path, Some("email")).unwrap();
        assert_eq!(list.columns(), ["nick_name_"]);
        let all = rows(list);
        assert_eq!(all.len(), 10_000);
        assert_eq!(all.last().unwrap().line, 10_001);
    }

    #[test]
    fn multiline_header_is_one_row() {
        let (_dir, path) = write(b"\"e\nmail\",name\na@b.com,Ann\n");
        let list = open(&path, Some("e\nmail")).unwrap();
        assert_eq!(list.columns(), ["name"]);
        assert_eq!(rows(list), [row(3, "a@b.com", &["Ann"])]);
    }

    #[test]
    fn semicolon_and_tab_delimiters() {
        let (_dir, path) = write(b"email;\"a,b,c\";name\na@b.com;1,5;Ann\n");
        let list = open(&path, Some("email")).unwrap();
        assert_eq!(list.delimiter(), b';');
        assert_eq!(rows(list), [row(2, "a@b.com", &["1,5", "Ann"])]);

        let (_dir, path) = write(b"email\tname\tcity\na@b.com\tAnn, Lee\tRome\n");
        let list = open(&path, Some("email")).unwrap();
        assert_eq!(list.delimiter(), b'\t');
        assert_eq!(rows(list), [row(2, "a@b.com", &["Ann, Lee", "Rome"])]);

        // Ties go to the comma.
        assert_eq!(detect_delimiter(b"a,b;c\n"), b',');
        assert_eq!(detect_delimiter(b"email\n"), b',');
        assert_eq!(detect_delimiter(b"a;b\tc\td\n"), b'\t');
    }

    #[test]
    fn blank_lines_and_empty_records_are_skipped() {
        let (_dir, path) = write(b"\n  \n,,\nemail,name\n\n,\n  , \na@b.com,Ann\n\r\nc@d.com,Bob");
        let list = open(&path, Some("email")).unwrap();
        assert_eq!(list.headers(), ["email", "name"]);
        assert_eq!(
            rows(list),
            [row(8, "a@b.com", &["Ann"]), row(10, "c@d.com", &["Bob"])]
        );
    }

    #[test]
    fn short_rows_are_padded_and_long_rows_reported() {
        let (_dir, path) = write(b"email,first,last\na@b.com\nc@d.com,Cy,Dee,extra,more\ne@f.com,Ed,Fay,,\ng@h.com,Gus\n");
        let list = open(&path, Some("email")).unwrap();
        let results: Vec<_> = list.collect();
        assert_eq!(results.len(), 4);
        assert_eq!(results[0].as_ref().unwrap(), &row(2, "a@b.com", &["", ""]));
        match &results[1] {
            Err(ImportError::Row { line, message, .. }) => {
                assert_eq!(*line, 3);
                assert!(message.contains("5 values"), "{message}");
                assert!(message.contains("only 3 columns"), "{message}");
            }
            other => panic!("expected a row error, got {other:?}"),
        }
        assert_eq!(
            results[2].as_ref().unwrap(),
            &row(4, "e@f.com", &["Ed", "Fay"])
        );
        assert_eq!(
            results[3].as_ref().unwrap(),
            &row(5, "g@h.com", &["Gus", ""])
        );
    }

    #[test]
    fn header_only() {
        let (_dir, path) = write(b"email,name\r\n");
        let list = open(&path, Some("email")).unwrap();
        assert_eq!(list.columns(), ["name"]);
        assert_eq!(rows(list).len(), 0);

        let (_dir, path) = write(b"email");
        let list = open(&path, Some("EMAIL")).unwrap();
        assert!(list.columns().is_empty());
        assert_eq!(rows(list).len(), 0);
    }

    #[test]
    fn empty_files() {
        for bytes in [&b""[..], b"\xEF\xBB\xBF", b"\n\r\n   \n", b",,,\n;;\n"] {
            let (_dir, path) = write(bytes);
            let err = open(&path, Some("email")).unwrap_err();
            assert!(
                matches!(err, ImportError::Empty { .. }),
                "{bytes:?}: {err:?}"
            );
            assert!(err.to_string().starts_with("the recipient list is empty"));
        }
    }

    #[test]
    fn missing_email_column_lists_the_columns() {
        let (_dir, path) = write(b"mail;name;city\nx;y;z\n");
        let err = open(&path, Some("email")).unwrap_err();
        assert!(matches!(err, ImportError::NoEmailColumn { .. }));
        let message = err.to_string();
        assert!(
            message.starts_with(
                "the recipient list has no column named \"email\"; its columns are: mail, name, city ("
            ),
            "{message}"
        );
        assert!(message.ends_with(&format!("({})", path.display())));
    }

    #[test]
    fn duplicate_columns() {
        let (_dir, path) = write(b"email,First Name,first-name\n");
        let err = open(&path, Some("email")).unwrap_err();
        match err {
            ImportError::DuplicateColumn { column, .. } => assert_eq!(column, "first-name"),
            other => panic!("{other:?}"),
        }
        let (_dir, path) = write(b"Email,name,EMAIL\n");
        assert!(matches!(
            open(&path, Some("email")),
            Err(ImportError::DuplicateColumn { .. })
        ));
    }

    #[test]
    fn binary_files_are_refused() {
        let (_dir, path) = write(b"email,name\na@b.com,\x00\x01\x02\n");
        let err = open(&path, Some("email")).unwrap_err();
        assert!(matches!(err, ImportError::NotCsv { .. }), "{err:?}");
        assert!(err.to_string().contains("binary data"));

        let (_dir, path) = write(b"PK\x03\x04\x14\x00\x06\x00rest of a workbook");
        let err = open(&path, Some("email")).unwrap_err();
        assert!(err.to_string().contains("Excel"), "{err}");
    }

    #[test]
    fn overlong_header_is_refused() {
        let mut bytes = vec![b'x'; MAX_HEADER_LINE + 10];
        bytes.extend_from_slice(b"\na@b.com\n");
        let (_dir, path) = write(&bytes);
        assert!(matches!(
            open(&path, Some("email")),
            Err(ImportError::NotCsv { .. })
        ));
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.csv");
        let err = open(&path, Some("email")).unwrap_err();
        assert!(matches!(err, ImportError::Io { .. }));
        let message = err.to_string();
        assert!(message.starts_with("could not read the recipient list: "));
        assert!(message.ends_with(&format!("({})", path.display())));
    }

    #[test]
    fn empty_header_cells_get_numbered_names() {
        let (_dir, path) = write(b"email,,name,\na@b.com,1,Ann,2\n");
        let list = open(&path, Some("email")).unwrap();
        assert_eq!(list.columns(), ["column_2", "name", "column_4"]);
        assert_eq!(rows(list), [row(2, "a@b.com", &["1", "Ann", "2"])]);
    }

    /// xorshift64: tiny, deterministic, good enough to shuffle test input.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> usize {
            usize::try_from(self.next() % n).unwrap()
        }
    }

    #[test]
    fn random_input_never_panics() {
        const PIECES: [&[u8]; 14] = [
            b"\"",
            b",",
            b";",
            b"\t",
            b"\n",
            b"\r",
            b"\r\n",
            b"\xE9",
            b"\xFF",
            b"\xEF\xBB\xBF",
            b"\xFF\xFE",
            b"email",
            b"a@b.com",
            b" ",
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.csv");
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut opened = 0;
        for round in 0..3000 {
            let mut bytes = Vec::new();
            // Start with a plausible header often enough to reach the rows.
            if round % 3 == 0 {
                bytes.extend_from_slice(b"email,name\n");
            }
            for _ in 0..rng.below(60) {
                if rng.below(3) == 0 {
                    bytes.push(u8::try_from(rng.next() & 0xFF).unwrap());
                } else {
                    bytes.extend_from_slice(PIECES[rng.below(PIECES.len() as u64)]);
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            if let Ok(list) = open(&path, Some("email")) {
                opened += 1;
                let width = list.columns().len();
                for (count, result) in list.enumerate() {
                    assert!(count <= bytes.len(), "iteration does not end: {bytes:?}");
                    if let Ok(row) = result {
                        assert_eq!(row.fields.len(), width);
                        assert!(row.line >= 2);
                    }
                }
            }
        }
        assert!(opened > 500, "only {opened} inputs got past the header");
    }
}
