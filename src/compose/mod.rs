//! Composing one recipient's message: templates rendered with the recipient's fields, then a
//! MIME message built with lettre (multipart/alternative text + HTML, attachments, a
//! deterministic Message-ID, List-Unsubscribe). Owns message building; never sends, never
//! touches the database. A value that lands in a header can never start a new header line.

mod html_text;
mod template;

use std::path::{Path, PathBuf};

use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};

use crate::campaign::Campaign;

pub use html_text::html_to_text;
pub use template::{
    Template, TemplateEngine, TemplateError, TemplateErrorKind, Variables, escape_html, url_encode,
};

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("could not read {what}: {source} ({})", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} is not valid UTF-8 text ({})", path.display())]
    NotText { what: &'static str, path: PathBuf },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{what} \"{value}\" is not a usable address: {reason}")]
    Address {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("the recipient's fields are damaged in the database: {0}")]
    Fields(String),
    #[error("could not build the message: {0}")]
    Build(String),
}

/// One recipient as composing needs it.
#[derive(Debug, Clone, Copy)]
pub struct RecipientData<'a> {
    pub id: i64,
    /// The address for the To header and the envelope (domain in ASCII form).
    pub email: &'a str,
    /// The personalization fields as a JSON object of strings.
    pub fields_json: &'a str,
}

/// A message ready to send.
#[derive(Debug, Clone)]
pub struct Composed {
    pub message_id: String,
    pub envelope_from: String,
    pub envelope_to: String,
    pub subject: String,
    pub bytes: Vec<u8>,
}

/// The rendered parts of a message, for previews.
#[derive(Debug, Clone, Default)]
pub struct RenderedParts {
    pub subject: String,
    pub html: Option<String>,
    pub text: String,
    pub unsubscribe: Option<String>,
    pub headers: Vec<(String, String)>,
}

struct LoadedAttachment {
    name: String,
    content_type: ContentType,
    bytes: Vec<u8>,
}

/// Everything needed to compose a campaign's messages, compiled once.
pub struct Composer {
    engine: TemplateEngine,
    subject: Template,
    html: Option<Template>,
    text: Option<Template>,
    unsubscribe: Option<Template>,
    headers: Vec<(HeaderName, Template)>,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    attachments: Vec<LoadedAttachment>,
    id_domain: String,
    campaign_tag: String,
}

impl Composer {
    /// Reads and compiles the campaign's templates and attachments. Returns every problem found.
    pub fn new(campaign: &Campaign) -> Result<Composer, Vec<ComposeError>> {
        let mut problems = Vec::new();
        let engine = TemplateEngine::new();
        let message = &campaign.message;
        let compile = |problems: &mut Vec<ComposeError>, name: &str, source: &str, html: bool| {
            engine
                .compile(name, source, html)
                .map_err(|error| problems.push(ComposeError::Template(error)))
                .ok()
        };
        let subject = compile(&mut problems, "subject", &message.subject, false);
        let html = read_template(message.html.as_deref(), "the HTML template").map(|loaded| {
            loaded.and_then(|(name, source)| compile(&mut problems, &name, &source, true))
        });
        let text = read_template(message.text.as_deref(), "the text template").map(|loaded| {
            loaded.and_then(|(name, source)| compile(&mut problems, &name, &source, false))
        });
        let unsubscribe = message
            .unsubscribe
            .as_deref()
            .map(|source| compile(&mut problems, "unsubscribe", source, false));
        let mut headers = Vec::new();
        for (name, value) in &message.headers {
            if let Some(template) = compile(&mut problems, &format!("header {name}"), value, false)
            {
                match HeaderName::new_from_ascii(name.clone()) {
                    Ok(header) => headers.push((header, template)),
                    Err(_) => problems.push(ComposeError::Build(format!(
                        "\"{name}\" is not a valid header name"
                    ))),
                }
            }
        }
        let (html, text) = match (html, text) {
            (Ok(html), Ok(text)) => (html, text),
            (html, text) => {
                for error in [html.err(), text.err()].into_iter().flatten() {
                    problems.push(error);
                }
                (None, None)
            }
        };
        let from = parse_mailbox("the sender (message.from)", &message.from)
            .map_err(|error| problems.push(error))
            .ok();
        let reply_to = match message.reply_to.as_deref() {
            Some(value) => parse_mailbox("the reply-to address (message.reply_to)", value)
                .map_err(|error| problems.push(error))
                .ok(),
            None => None,
        };
        let mut attachments = Vec::new();
        for path in &message.attachments {
            match std::fs::read(path) {
                Ok(bytes) => attachments.push(LoadedAttachment {
                    name: path
                        .file_name()
                        .map(|name| name.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "attachment".to_string()),
                    content_type: content_type_for(path),
                    bytes,
                }),
                Err(source) => problems.push(ComposeError::Io {
                    what: "an attachment",
                    path: path.clone(),
                    source,
                }),
            }
        }
        match (subject, from) {
            (Some(subject), Some(from)) if problems.is_empty() => {
                let id_domain = from.email.domain().to_ascii_lowercase();
                Ok(Composer {
                    engine,
                    subject,
                    html,
                    text,
                    unsubscribe: unsubscribe.flatten(),
                    headers,
                    from,
                    reply_to,
                    attachments,
                    id_domain,
                    campaign_tag: format!(
                        "{:016x}",
                        fnv1a(campaign.path.to_string_lossy().as_bytes())
                    ),
                })
            }
            _ => Err(problems),
        }
    }

    /// The Message-ID of a recipient's message: the same on every attempt, so a duplicate that
    /// reaches an inbox is recognizable.
    pub fn message_id(&self, recipient_id: i64) -> String {
        format!(
            "<{recipient_id}.{}.herald@{}>",
            self.campaign_tag, self.id_domain
        )
    }

    /// Renders subject, bodies and headers for one recipient.
    pub fn render(&self, recipient: &RecipientData<'_>) -> Result<RenderedParts, ComposeError> {
        let mut variables = variables_for(recipient)?;
        let who = recipient.email;
        let subject = header_safe(&self.engine.render(&self.subject, &mut variables, who)?);
        let html = match &self.html {
            Some(template) => Some(self.engine.render(template, &mut variables, who)?),
            None => None,
        };
        let text = match (&self.text, &html) {
            (Some(template), _) => self.engine.render(template, &mut variables, who)?,
            (None, Some(html)) => html_to_text(html),
            (None, None) => String::new(),
        };
        let unsubscribe = match &self.unsubscribe {
            Some(template) => Some(header_safe(&self.engine.render(
                template,
                &mut variables,
                who,
            )?)),
            None => None,
        };
        let mut headers = Vec::new();
        for (name, template) in &self.headers {
            let value = header_safe(&self.engine.render(template, &mut variables, who)?);
            headers.push((name.to_string(), value));
        }
        Ok(RenderedParts {
            subject,
            html,
            text,
            unsubscribe,
            headers,
        })
    }

    /// Composes the complete message for one recipient.
    pub fn compose(&self, recipient: &RecipientData<'_>) -> Result<Composed, ComposeError> {
        let parts = self.render(recipient)?;
        let to = parse_mailbox("the recipient", recipient.email)?;
        let message_id = self.message_id(recipient.id);
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .to(to.clone())
            .subject(parts.subject.clone())
            .message_id(Some(message_id.clone()))
            .date_now();
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        if let Some(target) = &parts.unsubscribe {
            // RFC 8058: one-click unsubscribe needs both headers; the target goes in <>.
            builder = builder
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    format!("<{}>", target.trim()),
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".to_string(),
                ));
        }
        for ((name, _), (_, value)) in self.headers.iter().zip(&parts.headers) {
            builder = builder.raw_header(HeaderValue::new(name.clone(), value.clone()));
        }
        let message = if self.attachments.is_empty() {
            match parts.html {
                Some(html) => {
                    builder.multipart(MultiPart::alternative_plain_html(parts.text, html))
                }
                None => builder.singlepart(SinglePart::plain(parts.text)),
            }
        } else {
            let mut mixed = match parts.html {
                Some(html) => MultiPart::mixed()
                    .multipart(MultiPart::alternative_plain_html(parts.text, html)),
                None => MultiPart::mixed().singlepart(SinglePart::plain(parts.text)),
            };
            for attachment in &self.attachments {
                // Always base64: lettre sends an ASCII-only byte body as 7bit without making
                // its line ends CRLF, so the file would not arrive byte for byte (issue #7).
                let body = Body::new_with_encoding(
                    attachment.bytes.clone(),
                    ContentTransferEncoding::Base64,
                )
                .unwrap_or_else(Body::new);
                mixed = mixed.singlepart(
                    Attachment::new(attachment.name.clone())
                        .body(body, attachment.content_type.clone()),
                );
            }
            builder.multipart(mixed)
        }
        .map_err(|error| ComposeError::Build(error.to_string()))?;
        Ok(Composed {
            message_id,
            envelope_from: self.from.email.to_string(),
            envelope_to: to.email.to_string(),
            subject: parts.subject,
            bytes: message.formatted(),
        })
    }
}

fn variables_for(recipient: &RecipientData<'_>) -> Result<Variables, ComposeError> {
    let fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(recipient.fields_json)
            .map_err(|error| ComposeError::Fields(error.to_string()))?;
    let mut variables = Variables::new(
        fields
            .iter()
            .filter_map(|(name, value)| value.as_str().map(|value| (name.as_str(), value))),
    );
    variables.set("email", recipient.email);
    Ok(variables)
}

/// Header values are one line: CR, LF and other control characters become spaces, so no value a
/// recipient's CSV row carries can add a header (lettre encodes what remains, RFC 2047).
pub fn header_safe(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

fn parse_mailbox(what: &'static str, value: &str) -> Result<Mailbox, ComposeError> {
    let clean = header_safe(value);
    clean
        .parse::<Mailbox>()
        .map_err(|error| ComposeError::Address {
            what,
            value: clean.clone(),
            reason: error.to_string(),
        })
}

fn read_template(
    path: Option<&Path>,
    what: &'static str,
) -> Result<Option<(String, String)>, ComposeError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let bytes = std::fs::read(path).map_err(|source| ComposeError::Io {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| ComposeError::NotText {
        what,
        path: path.to_path_buf(),
    })?;
    let text = text
        .strip_prefix('\u{feff}')
        .map(str::to_string)
        .unwrap_or(text);
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| what.to_string());
    Ok(Some((name, text)))
}

fn content_type_for(path: &Path) -> ContentType {
    let extension = path
        .extension()
        .map(|ext| ext.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mime = match extension.as_str() {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "txt" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "ics" => "text/calendar; charset=utf-8",
        "zip" => "application/zip",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    };
    ContentType::parse(mime).unwrap_or(ContentType::TEXT_PLAIN)
}

/// FNV-1a: a stable hash (unlike std's, which may change between Rust releases) for the
/// campaign part of Message-IDs.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;
