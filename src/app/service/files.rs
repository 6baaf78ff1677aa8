//! The service's file side: reading a campaign file (and its templates) for editing, writing
//! it back, validating it, and peeking at the first rows of a CSV for the import dialog. Plain
//! functions over paths; no store, no engine.

use crate::app::{AppError, ErrorKind};
use std::path::Path;

use super::{CsvPeek, Document};
use crate::campaign::{Campaign, RawCampaign};
use crate::recipients;

pub(super) fn open_document(path: &Path) -> Result<Document, AppError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("could not read {}: {error}", path.display()))?;
    let raw = RawCampaign::from_toml(&text)
        .map_err(|error| format!("{} is not a campaign file: {error}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let read = |name: &Option<String>| -> String {
        name.as_ref()
            .and_then(|name| std::fs::read_to_string(base.join(name)).ok())
            .unwrap_or_default()
    };
    Ok(Document {
        html: read(&raw.message.html),
        text: read(&raw.message.text),
        raw,
        source: text,
    })
}

pub(super) fn save_document(path: &Path, document: &Document) -> Result<(), AppError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut raw = document.raw.clone();
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "campaign".into());
    if !document.html.is_empty() {
        let name = raw
            .message
            .html
            .get_or_insert_with(|| format!("{stem}.html"))
            .clone();
        std::fs::write(base.join(&name), &document.html)
            .map_err(|error| format!("could not write {name}: {error}"))?;
    }
    if !document.text.is_empty() {
        let name = raw
            .message
            .text
            .get_or_insert_with(|| format!("{stem}.txt"))
            .clone();
        std::fs::write(base.join(&name), &document.text)
            .map_err(|error| format!("could not write {name}: {error}"))?;
    }
    // The file as a person wrote it is edited, not rewritten (issue #20): the one on disk, or
    // for a save under a new name the one the campaign was read from.
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| document.source.clone());
    let text = raw.to_toml_over(&existing)?;
    std::fs::write(path, text).map_err(|error| {
        AppError::new(
            ErrorKind::File,
            format!("could not write {}: {error}", path.display()),
        )
    })
}

pub(super) fn validate(path: &Path) -> Result<(), Vec<String>> {
    match Campaign::load_with(path, &crate::credentials::is_available) {
        Ok(campaign) => {
            let report = crate::app::check::check_for(&campaign, crate::oauth2::Front::Window);
            if report.problems.is_empty() {
                Ok(())
            } else {
                Err(report.problems)
            }
        }
        Err(crate::campaign::CampaignError::Invalid { problems, .. }) => {
            Err(problems.iter().map(ToString::to_string).collect())
        }
        Err(error) => Err(vec![error.to_string()]),
    }
}

pub(super) fn peek_csv(path: &Path, email_column: Option<&str>) -> Result<CsvPeek, AppError> {
    let csv = match recipients::open(path, email_column) {
        Ok(csv) => csv,
        Err(
            recipients::ImportError::NoEmailColumn { found, .. }
            | recipients::ImportError::EmailColumnNotFound { found, .. },
        ) => {
            return Ok(CsvPeek {
                headers: found,
                email_column_found: false,
                ..CsvPeek::default()
            });
        }
        Err(error) => return Err(AppError::new(ErrorKind::File, error.to_string())),
    };
    let headers = csv.headers().to_vec();
    let columns = csv.columns().to_vec();
    let format = csv.format();
    let (encoding, delimiter) = match &format {
        recipients::ListFormat::Csv {
            delimiter,
            encoding,
        } => ((*encoding).to_string(), char::from(*delimiter)),
        recipients::ListFormat::Sheet { .. } => (String::new(), ','),
    };
    let email_header = csv.email_header().to_string();
    let detected = csv.email_column().describe();
    let rows = csv
        .take(10)
        .filter_map(Result::ok)
        .map(|row| {
            let mut cells = vec![row.email];
            cells.extend(row.fields);
            cells
        })
        .collect();
    Ok(CsvPeek {
        headers,
        columns,
        rows,
        encoding,
        delimiter,
        email_column_found: true,
        email_header,
        detected,
        format: format.describe(),
    })
}
