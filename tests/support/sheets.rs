//! Writes spreadsheets for tests and benchmarks, so no opaque binary is committed: .xlsx through
//! `rust_xlsxwriter` (the files Excel itself would open, shared strings and date formats
//! included) and .ods by hand (a zip of `mimetype`, a manifest and `content.xml`, as
//! LibreOffice writes them; no Rust ODS writer is as well kept, and the format is small enough
//! to write in full sight). Test-only.

use std::io::Write;
use std::path::Path;

/// One cell of a written sheet.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Text(String),
    Number(f64),
    /// A calendar date, stored as a date (a serial number with a date format in .xlsx, a
    /// `date` value in .ods), not as text.
    Date(u16, u8, u8),
    Empty,
}

pub fn text(value: &str) -> Cell {
    Cell::Text(value.to_owned())
}

/// Rows of cells, the first being the header.
pub type Rows = Vec<Vec<Cell>>;

/// Writes `rows` as the first sheet (named `sheet`) of an .xlsx workbook at `path`.
pub fn write_xlsx(path: &Path, sheet: &str, rows: &Rows) {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let date_format = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    let worksheet = workbook.add_worksheet();
    worksheet.set_name(sheet).expect("sheet name");
    for (r, row) in rows.iter().enumerate() {
        let r = u32::try_from(r).expect("row");
        for (c, cell) in row.iter().enumerate() {
            let c = u16::try_from(c).expect("column");
            match cell {
                Cell::Text(value) => {
                    worksheet.write_string(r, c, value).expect("cell");
                }
                Cell::Number(value) => {
                    worksheet.write_number(r, c, *value).expect("cell");
                }
                Cell::Date(y, m, d) => {
                    let date = rust_xlsxwriter::ExcelDateTime::from_ymd(*y, *m, *d).expect("date");
                    worksheet
                        .write_datetime_with_format(r, c, &date, &date_format)
                        .expect("cell");
                }
                Cell::Empty => {}
            }
        }
    }
    workbook.save(path).expect("save xlsx");
}

/// Writes `rows` as the first sheet (named `sheet`) of an OpenDocument spreadsheet at `path`.
pub fn write_ods(path: &Path, sheet: &str, rows: &Rows) {
    let mut content = String::with_capacity(rows.len() * 200 + 1024);
    content.push_str(concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        r#"<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0""#,
        r#" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0""#,
        r#" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.3">"#,
        r#"<office:body><office:spreadsheet>"#,
    ));
    content.push_str(&format!(r#"<table:table table:name="{}">"#, escape(sheet)));
    for row in rows {
        content.push_str("<table:table-row>");
        if row.is_empty() {
            content.push_str("<table:table-cell/>");
        }
        for cell in row {
            match cell {
                Cell::Text(value) => content.push_str(&format!(
                    r#"<table:table-cell office:value-type="string"><text:p>{}</text:p></table:table-cell>"#,
                    escape(value)
                )),
                Cell::Number(value) => content.push_str(&format!(
                    r#"<table:table-cell office:value-type="float" office:value="{value}"><text:p>{value}</text:p></table:table-cell>"#
                )),
                Cell::Date(y, m, d) => content.push_str(&format!(
                    r#"<table:table-cell office:value-type="date" office:date-value="{y:04}-{m:02}-{d:02}"><text:p>{d:02}/{m:02}/{y:04}</text:p></table:table-cell>"#
                )),
                Cell::Empty => content.push_str("<table:table-cell/>"),
            }
        }
        content.push_str("</table:table-row>");
    }
    content.push_str("</table:table></office:spreadsheet></office:body></office:document-content>");

    let manifest = concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        r#"<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3">"#,
        r#"<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>"#,
        r#"<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>"#,
        r#"</manifest:manifest>"#,
    );
    let file = std::fs::File::create(path).expect("create ods");
    let mut zip = zip::ZipWriter::new(file);
    // OpenDocument §3.3: `mimetype` comes first and is stored uncompressed.
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in [
        (
            "mimetype",
            "application/vnd.oasis.opendocument.spreadsheet".as_bytes(),
        ),
        ("META-INF/manifest.xml", manifest.as_bytes()),
        ("content.xml", content.as_bytes()),
    ] {
        zip.start_file(name, stored).expect("zip entry");
        zip.write_all(bytes).expect("zip write");
    }
    zip.finish().expect("zip finish");
}

fn escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
