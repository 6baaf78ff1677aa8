//! CSV files Herald writes and reads back (RFC 4180), a capability with one owner (a leaf):
//! results and failure exports, the suppression list's export and import. Fields with a comma,
//! quote or line break are quoted with quotes doubled, and lines end in CRLF as the RFC says, in
//! every file Herald writes. Recipient lists are read by `recipients`, whose reader also finds
//! delimiters and encodings; this module reads only what a person or Herald wrote as plain CSV.

/// One line: the fields quoted where needed, ending in CRLF.
pub fn line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut out = fields
        .iter()
        .map(|field| quote(field.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    out
}

/// RFC 4180 §2: a field with a comma, quote or line break is quoted, its quotes doubled.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// The records of `text` with the line each starts on (1-based), blank lines left out; a
/// leading byte-order mark is ignored. Records may have different lengths.
pub fn records(text: &str) -> Result<Vec<(u64, Vec<String>)>, String> {
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        // Where the next record starts (blank lines before it are skipped by the reader and
        // counted below from the text itself).
        let start = reader.position().byte() as usize;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) if record.iter().all(|field| field.trim().is_empty()) => {}
            Ok(true) => {
                // The line a person sees the record start on, from its byte offset.
                let before = text.as_bytes().get(..start).unwrap_or_default();
                let blank = text.as_bytes().get(start..).unwrap_or_default();
                let skipped = blank
                    .iter()
                    .take_while(|byte| matches!(byte, b'\r' | b'\n'))
                    .filter(|byte| **byte == b'\n')
                    .count();
                let newlines = before.iter().filter(|byte| **byte == b'\n').count() + skipped;
                let line = 1 + newlines as u64;
                out.push((line, record.iter().map(str::to_string).collect()));
            }
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_quote_what_needs_quoting() {
        assert_eq!(line(&["a", "b c"]), "a,b c\r\n");
        assert_eq!(
            line(&["5.1.1 \"no\", really", "x\ny"]),
            "\"5.1.1 \"\"no\"\", really\",\"x\ny\"\r\n"
        );
    }

    #[test]
    fn records_round_trip_what_lines_write() {
        let fields = [
            "ada@example.org",
            "a \"quoted\", field",
            "",
            "multi\r\nline",
        ];
        let text = format!("\u{feff}{}\r\n{}", line(&["h1", "h2"]), line(&fields));
        let read = records(&text).unwrap_or_default();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0], (1, vec!["h1".to_string(), "h2".to_string()]));
        // Line 2 is blank.
        assert_eq!(read[1].0, 3);
        assert_eq!(read[1].1, fields.map(String::from).to_vec());
    }
}
