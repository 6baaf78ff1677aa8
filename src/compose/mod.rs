//! Composing one recipient's message: the personalization script and templates run with the
//! recipient's fields, then a MIME message built with lettre (multipart/alternative text + HTML,
//! inline images in multipart/related, attachments in multipart/mixed, a deterministic
//! Message-ID, List-Unsubscribe), then DKIM-signed. Owns message building; never sends, never
//! touches the database. A value that lands in a header can never start a new header line.

mod dates;
mod dkim;
mod feedback;
mod html_text;
mod lint;
mod mime;
mod template;

use std::path::{Path, PathBuf};

use lettre::message::header::{self, ContentType, HeaderName, HeaderValue, Headers};
use lettre::message::{Attachment, Mailbox, Mailboxes};

use crate::campaign::Campaign;

pub use dates::iso8601_utc;
pub use dkim::{DkimError, DkimSigner, PublicKey, SIGNED_HEADERS, read_published_key};
pub use feedback::{
    Feedback, HeraldId, UNSUBSCRIBE_PREFIX, campaign_tag, message_id, parse_message_id,
};
pub use html_text::html_to_text;
pub use lint::{bare_ip_links, mostly_images};
pub use template::{
    DerivedText, Layout, RenderedBody, Script, ScriptOutcome, Template, TemplateEngine,
    TemplateError, TemplateErrorKind, Variables, escape_html, field_expression, url_encode,
};

/// The most that attachments and inline images may add up to. Providers refuse messages over
/// 25 MB (Gmail, Outlook) and base64 adds a third on the wire.
pub const MAX_ATTACHMENT_BYTES: u64 = 25 * 1024 * 1024;

/// A header line may not exceed 998 characters (RFC 5322 §2.1.1); a value with no space to fold
/// at must stay well below that.
const MAX_UNFOLDABLE_HEADER: usize = 900;

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
    #[error(
        "the attachments and inline images add up to {} MB; the limit is {} MB (largest: {})",
        total_bytes.div_ceil(1024 * 1024),
        MAX_ATTACHMENT_BYTES / (1024 * 1024),
        largest.display()
    )]
    TooLarge { total_bytes: u64, largest: PathBuf },
    #[error(transparent)]
    Dkim(#[from] DkimError),
    /// Not a failure: the personalization script asked for this recipient not to get the
    /// message. Record the recipient as `skipped` with this reason.
    #[error("skipped by the personalization script: {reason}")]
    Skipped { reason: String },
}

impl ComposeError {
    /// The script's reason when the recipient is to be skipped rather than failed.
    pub fn skip_reason(&self) -> Option<&str> {
        match self {
            ComposeError::Skipped { reason } => Some(reason),
            _ => None,
        }
    }
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
    /// The List-Unsubscribe targets: a URL and/or a mailto.
    pub unsubscribe: Vec<String>,
    pub headers: Vec<(String, String)>,
    /// How the bodies were pieced together, for encoding them from their templates' text.
    html_layout: Option<Layout>,
    text_layout: Option<Layout>,
}

/// An attached or inline file as a preview lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentInfo {
    pub name: String,
    pub content_type: String,
    pub size_bytes: u64,
    /// Shown in the HTML through `cid:NAME` rather than offered as a download.
    pub inline: bool,
}

struct LoadedAttachment {
    name: String,
    mime: String,
    size_bytes: u64,
    /// The complete MIME part (headers, base64 body in lines of 76 whatever the type), built
    /// once at load and copied into every message.
    part: Vec<u8>,
}

/// The signed unsubscribe link: the campaign's pattern, and the key and campaign id the tokens
/// are made with. Until `sign_links` gives them, tokens are made with a zero key for campaign 0:
/// `check` renders without a database, and such links verify nowhere.
struct SignedLink {
    pattern: crate::campaign::UnsubscribeSpec,
    secret: [u8; 32],
    campaign: i64,
}

/// The template variable holding the recipient's signed unsubscribe link.
pub const UNSUBSCRIBE_URL_VARIABLE: &str = "unsubscribe_url";

/// Everything needed to compose a campaign's messages, compiled once.
pub struct Composer {
    engine: TemplateEngine,
    script: Option<Script>,
    subject: Template,
    html: Option<Template>,
    text: Option<Template>,
    /// The text part made from the HTML template when there is no text template.
    derived_text: Option<DerivedText>,
    /// The HTML template's own text and the text template's (given or derived), encoded once.
    html_literals: Option<mime::Literals>,
    text_literals: Option<mime::Literals>,
    unsubscribe: Option<Template>,
    unsubscribe_mailto: Option<Template>,
    /// `[unsubscribe] url`: the signed one-click link's pattern, with its key once known.
    signed_link: Option<SignedLink>,
    /// List-Id (RFC 2919) and Feedback-ID, fixed per campaign.
    list_id: Option<String>,
    feedback_id: Option<String>,
    headers: Vec<(HeaderName, Template)>,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    attachments: Vec<LoadedAttachment>,
    inline: Vec<LoadedAttachment>,
    boundaries: mime::Boundaries,
    dkim: Option<DkimSigner>,
    id_domain: String,
    /// The key and campaign id of Message-IDs (`key_message_ids`); zeros until then, as for
    /// `check`, which renders without a database: such ids verify nowhere.
    message_key: [u8; 32],
    message_campaign: i64,
    /// VERP return path and mailto unsubscribe, when `[bounces] return_path` is set.
    feedback: Option<Feedback>,
}

impl Composer {
    /// Reads and compiles the campaign's templates, script, attachments and DKIM key. Returns
    /// every problem found.
    // Long because it collects every problem of the campaign in one pass (each template, the
    // script, files, addresses, the DKIM key), so `check` lists them all at once; each step is a
    // few lines and they share the one `problems` list.
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
        let script = match read_template(message.script.as_deref(), "the personalization script") {
            Ok(Some((name, source))) => engine
                .compile_script(&name, &source)
                .map_err(|error| problems.push(ComposeError::Template(error)))
                .ok(),
            Ok(None) => None,
            Err(error) => {
                problems.push(error);
                None
            }
        };
        let unsubscribe = message
            .unsubscribe
            .as_deref()
            .and_then(|source| compile(&mut problems, "unsubscribe", source, false));
        let unsubscribe_mailto = message
            .unsubscribe_mailto
            .as_deref()
            .and_then(|source| compile(&mut problems, "unsubscribe_mailto", source, false));
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
        let (attachments, inline) = match load_files(&message.attachments, &message.inline) {
            Ok(loaded) => loaded,
            Err(mut errors) => {
                problems.append(&mut errors);
                (Vec::new(), Vec::new())
            }
        };
        let dkim = match &campaign.dkim {
            Some(spec) => DkimSigner::load(&spec.domain, &spec.selector, &spec.private_key)
                .map_err(|error| problems.push(ComposeError::Dkim(error)))
                .ok(),
            None => None,
        };
        match (subject, from) {
            (Some(subject), Some(from)) if problems.is_empty() => {
                let id_domain = from.email.domain().to_ascii_lowercase();
                let derived_text = match (&html, &text) {
                    (Some(html), None) => html.derive_text(html_to_text, html_text::tidy),
                    _ => None,
                };
                let html_literals = html
                    .as_ref()
                    .map(|template| mime::Literals::new(template.literals()));
                let text_literals = match (&text, &derived_text) {
                    (Some(template), _) => Some(mime::Literals::new(template.literals())),
                    (None, Some(derived)) => Some(mime::Literals::new(derived.literals())),
                    (None, None) => None,
                };
                Ok(Composer {
                    engine,
                    script,
                    subject,
                    html,
                    text,
                    derived_text,
                    html_literals,
                    text_literals,
                    unsubscribe,
                    unsubscribe_mailto,
                    signed_link: campaign
                        .unsubscribe
                        .as_ref()
                        .filter(|spec| spec.url.is_some())
                        .map(|spec| SignedLink {
                            pattern: spec.clone(),
                            secret: [0; 32],
                            campaign: 0,
                        }),
                    list_id: message
                        .list_id
                        .clone()
                        .or_else(|| default_list_id(campaign, &id_domain)),
                    feedback_id: message.feedback_id.clone(),
                    headers,
                    from,
                    reply_to,
                    attachments,
                    inline,
                    boundaries: mime::Boundaries::new(),
                    dkim,
                    id_domain,
                    message_key: [0; 32],
                    message_campaign: 0,
                    feedback: None,
                })
            }
            _ => Err(problems),
        }
    }

    /// Gives every message a VERP envelope sender and, when the campaign has no
    /// `unsubscribe_mailto` of its own, a List-Unsubscribe mailto to the bounce mailbox.
    pub fn set_feedback(&mut self, feedback: Feedback) {
        self.feedback = Some(feedback);
    }

    /// Whether messages carry a VERP envelope sender (`set_feedback`).
    pub fn has_feedback(&self) -> bool {
        self.feedback.is_some()
    }

    /// Makes the unsubscribe links' tokens with `secret` (the database's, shared with the
    /// endpoint) for the campaign `campaign` (its id in the database).
    pub fn sign_links(&mut self, secret: [u8; 32], campaign: i64) {
        if let Some(link) = &mut self.signed_link {
            link.secret = secret;
            link.campaign = campaign;
        }
    }

    /// The signed unsubscribe link of recipient `recipient_id`, when the campaign has one.
    pub fn unsubscribe_link(&self, recipient_id: i64) -> Option<String> {
        let link = self.signed_link.as_ref()?;
        let token = crate::token::encode(
            &link.secret,
            crate::token::Purpose::Unsubscribe,
            crate::token::Named {
                campaign: link.campaign,
                recipient: recipient_id,
            },
        );
        link.pattern.link(&token)
    }

    /// Makes Message-IDs with the database's return-path `secret` for the campaign `campaign`
    /// (its id in the database), so a report that returns one proves which message it is about.
    pub fn key_message_ids(&mut self, secret: [u8; 32], campaign: i64) {
        self.message_key = secret;
        self.message_campaign = campaign;
    }

    /// The Message-ID of a recipient's message: the same on every attempt, so a duplicate that
    /// reaches an inbox is recognizable, and keyed, so nobody can make another's (issue #21).
    pub fn message_id(&self, recipient_id: i64) -> String {
        feedback::message_id(
            &self.message_key,
            self.message_campaign,
            recipient_id,
            &self.id_domain,
        )
    }

    /// The files the message carries, attachments first, then inline images.
    pub fn attachments(&self) -> Vec<AttachmentInfo> {
        let info = |file: &LoadedAttachment, inline: bool| AttachmentInfo {
            name: file.name.clone(),
            content_type: file.mime.clone(),
            size_bytes: file.size_bytes,
            inline,
        };
        self.attachments
            .iter()
            .map(|file| info(file, false))
            .chain(self.inline.iter().map(|file| info(file, true)))
            .collect()
    }

    pub fn has_text_template(&self) -> bool {
        self.text.is_some()
    }

    pub fn has_html(&self) -> bool {
        self.html.is_some()
    }

    pub fn dkim(&self) -> Option<&DkimSigner> {
        self.dkim.as_ref()
    }

    /// Checks that every name the templates and the script use is a field of the list (or
    /// `email`, or a field the script declares): run by `check` with the CSV's columns, so a
    /// misspelt field is found even inside a branch no recipient takes.
    pub fn check_fields(&self, columns: &[String]) -> Vec<TemplateError> {
        let mut known: Vec<String> = columns.to_vec();
        known.push("email".to_string());
        if self.signed_link.is_some() {
            known.push(UNSUBSCRIBE_URL_VARIABLE.to_string());
        }
        let mut errors = Vec::new();
        if let Some(script) = &self.script {
            errors.extend(self.engine.check_script_names(script, &known));
            known.extend(script.defines().iter().cloned());
        }
        let templates = [Some(&self.subject), self.html.as_ref(), self.text.as_ref()]
            .into_iter()
            .chain([self.unsubscribe.as_ref(), self.unsubscribe_mailto.as_ref()])
            .flatten()
            .chain(self.headers.iter().map(|(_, template)| template));
        for template in templates {
            errors.extend(self.engine.check_names(template, &known));
        }
        errors
    }

    /// Runs the script and renders subject, bodies and headers for one recipient. A script that
    /// skips the recipient gives `ComposeError::Skipped`.
    pub fn render(&self, recipient: &RecipientData<'_>) -> Result<RenderedParts, ComposeError> {
        let mut variables = variables_for(recipient)?;
        let signed = self.unsubscribe_link(recipient.id);
        if let Some(link) = &signed {
            variables.set(UNSUBSCRIBE_URL_VARIABLE, link);
        }
        let who = recipient.email;
        if let Some(script) = &self.script
            && let ScriptOutcome::Skip(reason) =
                self.engine.run_script(script, &mut variables, who)?
        {
            return Err(ComposeError::Skipped {
                reason: header_safe(&reason),
            });
        }
        let subject = header_safe(&self.engine.render(&self.subject, &mut variables, who)?);
        let (html, html_layout, text, text_layout) =
            match (&self.html, &self.text, &self.derived_text) {
                (Some(html), None, Some(derived)) => {
                    let body = self
                        .engine
                        .render_with_text(html, derived, &mut variables, who)?;
                    (
                        Some(body.html),
                        Some(body.html_layout),
                        body.text,
                        body.text_layout,
                    )
                }
                (html, text, _) => {
                    let (html, html_layout) = match html {
                        Some(template) => {
                            let (html, layout) =
                                self.engine.render_laid_out(template, &mut variables, who)?;
                            (Some(html), Some(layout))
                        }
                        None => (None, None),
                    };
                    let (text, text_layout) = match (text, &html) {
                        (Some(template), _) => {
                            let (text, layout) =
                                self.engine.render_laid_out(template, &mut variables, who)?;
                            (text, Some(layout))
                        }
                        (None, Some(html)) => (html_to_text(html), None),
                        (None, None) => (String::new(), None),
                    };
                    (html, html_layout, text, text_layout)
                }
            };
        // The signed link goes first: the one a provider's one-click POST uses, the same URL as
        // the body's `{{ unsubscribe_url }}`.
        let mut unsubscribe: Vec<String> = signed.into_iter().collect();
        for template in [&self.unsubscribe, &self.unsubscribe_mailto]
            .into_iter()
            .flatten()
        {
            let target = header_safe(&self.engine.render(template, &mut variables, who)?);
            if !target.is_empty() {
                unsubscribe.push(target);
            }
        }
        if self.unsubscribe_mailto.is_none()
            && let Some(feedback) = &self.feedback
        {
            unsubscribe.push(feedback.unsubscribe_mailto(recipient.id));
        }
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
            html_layout,
            text_layout,
        })
    }

    /// Composes and signs the complete message for one recipient.
    pub fn compose(&self, recipient: &RecipientData<'_>) -> Result<Composed, ComposeError> {
        self.compose_parts(recipient, true)
            .map(|(_, composed)| composed)
    }

    /// Composes without the DKIM signature (for `check`, which only needs to know it builds).
    pub fn compose_unsigned(
        &self,
        recipient: &RecipientData<'_>,
    ) -> Result<Composed, ComposeError> {
        self.compose_parts(recipient, false)
            .map(|(_, composed)| composed)
    }

    /// The rendered parts and the complete message, as a preview shows them.
    pub fn compose_parts(
        &self,
        recipient: &RecipientData<'_>,
        sign: bool,
    ) -> Result<(RenderedParts, Composed), ComposeError> {
        let parts = self.render(recipient)?;
        let composed = self.build(recipient, &parts, sign)?;
        Ok((parts, composed))
    }

    // Long because it writes one message's header section in order (RFC 5322 fields, the
    // list headers of RFC 2369/2919/8058, Message-ID, MIME), each field a few lines with its
    // RFC; splitting it would scatter the order the message is written in.
    fn build(
        &self,
        recipient: &RecipientData<'_>,
        parts: &RenderedParts,
        sign: bool,
    ) -> Result<Composed, ComposeError> {
        let to = parse_mailbox("the recipient", recipient.email)?;
        let message_id = self.message_id(recipient.id);
        let mut headers = Headers::new();
        headers.set(header::From::from(Mailboxes::from(self.from.clone())));
        headers.set(header::To::from(Mailboxes::from(to.clone())));
        headers.set(header::MessageId::from(message_id.clone()));
        headers.set(header::Date::now());
        if has_long_word(&parts.subject) {
            headers.insert_raw(HeaderValue::dangerous_new_pre_encoded(
                HeaderName::new_from_ascii_str("Subject"),
                parts.subject.clone(),
                encoded_words(&parts.subject),
            ));
        } else {
            headers.set(header::Subject::from(parts.subject.clone()));
        }
        if let Some(reply_to) = &self.reply_to {
            headers.set(header::ReplyTo::from(Mailboxes::from(reply_to.clone())));
        }
        if !parts.unsubscribe.is_empty() {
            let targets: Vec<String> = parts
                .unsubscribe
                .iter()
                .map(|target| format!("<{}>", ascii_uri(target.trim())))
                .collect();
            for target in &targets {
                if target.len() > MAX_UNFOLDABLE_HEADER {
                    return Err(ComposeError::Build(format!(
                        "the unsubscribe target is {} characters long; the limit is {MAX_UNFOLDABLE_HEADER}",
                        target.len()
                    )));
                }
            }
            // Each target may sit on its own folded line (RFC 2369 §2 allows whitespace).
            headers.insert_raw(HeaderValue::dangerous_new_pre_encoded(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                targets.join(", "),
                targets.join(",\r\n "),
            ));
            // RFC 8058 §3.1: one-click needs an HTTPS target; a mailto alone gets no Post header.
            let one_click = parts
                .unsubscribe
                .iter()
                .any(|target| target.to_ascii_lowercase().starts_with("https://"));
            if one_click {
                headers.insert_raw(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".to_string(),
                ));
            }
        }
        for ((name, _), (_, value)) in self.headers.iter().zip(&parts.headers) {
            headers.insert_raw(if has_long_word(value) {
                HeaderValue::dangerous_new_pre_encoded(
                    name.clone(),
                    value.clone(),
                    encoded_words(value),
                )
            } else {
                HeaderValue::new(name.clone(), value.clone())
            });
        }
        // RFC 2919 §3: a list identifier; Gmail's feedback loop groups complaints by Feedback-ID.
        // Both are fixed per campaign and checked as one line of ASCII when the file was read.
        for (name, value) in [
            ("List-Id", &self.list_id),
            ("Feedback-ID", &self.feedback_id),
        ] {
            if let Some(value) = value {
                headers.insert_raw(HeaderValue::new(
                    HeaderName::new_from_ascii_str(name),
                    header_safe(value),
                ));
            }
        }
        headers.set(header::MIME_VERSION_1_0);
        let head = headers.to_string();
        let body_size = parts.text.len() + parts.html.as_ref().map_or(0, String::len);
        let mut bytes = Vec::with_capacity(head.len() + body_size + body_size / 4 + 512);
        bytes.extend_from_slice(head.as_bytes());
        fn pieces<'a>(
            layout: Option<&'a Layout>,
            literals: Option<&'a mime::Literals>,
        ) -> Option<mime::Pieces<'a>> {
            Some(mime::Pieces {
                layout: layout?,
                literals: literals?,
            })
        }
        fn shared(files: &[LoadedAttachment]) -> Vec<&[u8]> {
            files.iter().map(|file| file.part.as_slice()).collect()
        }
        mime::write_body(
            &mut bytes,
            &mime::BodyParts {
                text: &parts.text,
                text_pieces: pieces(parts.text_layout.as_ref(), self.text_literals.as_ref()),
                html: parts.html.as_deref(),
                html_pieces: pieces(parts.html_layout.as_ref(), self.html_literals.as_ref()),
                inline: &shared(&self.inline),
                attachments: &shared(&self.attachments),
            },
            &self.boundaries,
        );
        if sign && let Some(dkim) = &self.dkim {
            let header = dkim.sign(&bytes, crate::store::now_ms() / 1_000)?;
            let mut signed = Vec::with_capacity(header.len() + bytes.len());
            signed.extend_from_slice(header.as_bytes());
            signed.append(&mut bytes);
            bytes = signed;
        }
        Ok(Composed {
            message_id,
            envelope_from: match &self.feedback {
                Some(feedback) => feedback.envelope_from(recipient.id),
                None => self.from.email.to_string(),
            },
            envelope_to: to.email.to_string(),
            subject: parts.subject.clone(),
            bytes,
        })
    }
}

/// Reads attachments and inline images, checking their total size before reading any (a
/// 100 MB file is refused without being loaded).
fn load_files(
    attachments: &[PathBuf],
    inline: &[PathBuf],
) -> Result<(Vec<LoadedAttachment>, Vec<LoadedAttachment>), Vec<ComposeError>> {
    let mut problems = Vec::new();
    let mut total = 0u64;
    let mut largest: Option<(u64, PathBuf)> = None;
    for (path, what) in attachments
        .iter()
        .map(|path| (path, "an attachment"))
        .chain(inline.iter().map(|path| (path, "an inline image")))
    {
        match std::fs::metadata(path) {
            Ok(meta) => {
                total += meta.len();
                if largest.as_ref().is_none_or(|(size, _)| meta.len() > *size) {
                    largest = Some((meta.len(), path.clone()));
                }
            }
            Err(source) => problems.push(ComposeError::Io {
                what,
                path: path.clone(),
                source,
            }),
        }
    }
    if total > MAX_ATTACHMENT_BYTES {
        problems.push(ComposeError::TooLarge {
            total_bytes: total,
            largest: largest.map(|(_, path)| path).unwrap_or_default(),
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let read = |paths: &[PathBuf], inline: bool, problems: &mut Vec<ComposeError>| {
        let what = if inline {
            "an inline image"
        } else {
            "an attachment"
        };
        let mut loaded = Vec::new();
        for path in paths {
            match std::fs::read(path) {
                Ok(bytes) => {
                    let size_bytes = bytes.len() as u64;
                    let Ok(body) = lettre::message::Body::new_with_encoding(
                        bytes,
                        lettre::message::header::ContentTransferEncoding::Base64,
                    ) else {
                        problems.push(ComposeError::Build(format!(
                            "could not encode {}",
                            path.display()
                        )));
                        continue;
                    };
                    let mime = mime_guess::from_path(path).first_or_octet_stream();
                    let mime = if mime.type_() == mime_guess::mime::TEXT
                        && mime.get_param("charset").is_none()
                    {
                        format!("{mime}; charset=utf-8")
                    } else {
                        mime.to_string()
                    };
                    let name = path
                        .file_name()
                        .map(|name| header_safe(&name.to_string_lossy()))
                        .unwrap_or_else(|| "attachment".to_string());
                    let content_type = ContentType::parse(&mime).unwrap_or(ContentType::TEXT_PLAIN);
                    let attachment = if inline {
                        Attachment::new_inline_with_name(name.clone(), name.clone())
                    } else {
                        Attachment::new(name.clone())
                    };
                    loaded.push(LoadedAttachment {
                        name,
                        mime,
                        size_bytes,
                        part: attachment.body(body, content_type).formatted(),
                    });
                }
                Err(source) => problems.push(ComposeError::Io {
                    what,
                    path: path.clone(),
                    source,
                }),
            }
        }
        loaded
    };
    let attachments = read(attachments, false, &mut problems);
    let inline = read(inline, true, &mut problems);
    if problems.is_empty() {
        Ok((attachments, inline))
    } else {
        Err(problems)
    }
}

/// The List-Id of a campaign that offers unsubscribing and names none: the campaign file's
/// name as the label under the sender's domain (`november.acme.example`), RFC 2919 §2.
fn default_list_id(campaign: &Campaign, domain: &str) -> Option<String> {
    let offers_unsubscribe = campaign.message.unsubscribe.is_some()
        || campaign.message.unsubscribe_mailto.is_some()
        || campaign
            .unsubscribe
            .as_ref()
            .is_some_and(|spec| spec.url.is_some());
    if !offers_unsubscribe {
        return None;
    }
    let label: String = campaign
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let label = label.trim_matches('-');
    let label = if label.is_empty() { "list" } else { label };
    Some(format!("<{label}.{domain}>"))
}

fn variables_for(recipient: &RecipientData<'_>) -> Result<Variables, ComposeError> {
    let fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(recipient.fields_json)
            .map_err(|error| ComposeError::Fields(error.to_string()))?;
    // NUL has no place in mail (RFC 5322 §2.3); it goes before any template sees it.
    let cleaned: Vec<(&str, std::borrow::Cow<'_, str>)> = fields
        .iter()
        .filter_map(|(name, value)| {
            value.as_str().map(|value| {
                let value = if value.contains('\0') {
                    std::borrow::Cow::Owned(value.replace('\0', ""))
                } else {
                    std::borrow::Cow::Borrowed(value)
                };
                (name.as_str(), value)
            })
        })
        .collect();
    let mut variables = Variables::new(cleaned.iter().map(|(name, value)| (*name, value.as_ref())));
    variables.set("email", recipient.email);
    Ok(variables)
}

/// Whether a header value has a word lettre could not fold (it folds only at spaces).
fn has_long_word(value: &str) -> bool {
    value
        .split(' ')
        .any(|word| word.len() > MAX_UNFOLDABLE_HEADER)
}

/// The whole value as RFC 2047 encoded words of at most 45 bytes each, one per folded line:
/// decoders join adjacent encoded words without the space between them (RFC 2047 §6.2), so a
/// 100 KB field stays intact and no line passes 998 characters.
fn encoded_words(value: &str) -> String {
    use base64::Engine as _;
    let mut words = Vec::new();
    let mut chunk_start = 0;
    let mut chunk_end = 0;
    for (at, c) in value.char_indices() {
        if at + c.len_utf8() - chunk_start > 45 {
            words.push(&value[chunk_start..chunk_end]);
            chunk_start = chunk_end;
        }
        chunk_end = at + c.len_utf8();
    }
    if chunk_end > chunk_start {
        words.push(&value[chunk_start..chunk_end]);
    }
    words
        .iter()
        .map(|word| {
            format!(
                "=?utf-8?b?{}?=",
                base64::engine::general_purpose::STANDARD.encode(word)
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// Percent-encodes the non-ASCII bytes of a URI (RFC 3987 §3.1), so it can sit in a header as
/// it is.
fn ascii_uri(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    for c in uri.chars() {
        if c.is_ascii() && !c.is_ascii_whitespace() && c != '<' && c != '>' {
            out.push(c);
        } else {
            let mut buffer = [0u8; 4];
            for byte in c.encode_utf8(&mut buffer).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    out
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

#[cfg(test)]
mod tests;
