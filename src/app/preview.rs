//! One recipient's message exactly as it will be sent, for the window's preview, `herald
//! preview` and `herald test-send`, with links signed by the database's key as a run signs them.

use crate::campaign::Campaign;
use crate::compose::{AttachmentInfo, ComposeError, Composer, RecipientData};
use crate::identity::{campaign_id, key_composer};
use crate::import::{ImportFailed, import_if_empty};
use crate::recipients::EmailAddress;
use crate::store::{RecipientRef, Store, StoreError};

/// One recipient's message exactly as it will be sent (same Message-ID, same signature; only
/// the Date differs), for the window's preview and `herald preview`.
#[derive(Debug, Clone, Default)]
pub struct Preview {
    /// The recipient's position in import order (0-based) and address.
    pub index: u64,
    pub email: String,
    /// Some: the personalization script skips this recipient, with its reason; no message.
    pub skipped: Option<String>,
    /// True when no list is imported yet: the message is a sample recipient's, whose fields
    /// show their own names (issue #20), and nobody of the list.
    pub sample: bool,
    /// The header fields as in the message, unfolded (encoded words left as they are).
    pub headers: Vec<(String, String)>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<AttachmentInfo>,
    pub size_bytes: usize,
    pub envelope_from: String,
    pub envelope_to: String,
    /// The complete message.
    pub raw: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("the message cannot be built:\n  {}", .0.join("\n  "))]
    Campaign(Vec<String>),
    #[error(transparent)]
    Import(#[from] ImportFailed),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the campaign has no recipient {0}")]
    NoSuchRecipient(String),
    #[error(
        "the database's signing keys (return path, unsubscribe links) cannot be read, so the preview cannot show the message as it will be sent: {0}"
    )]
    Keys(StoreError),
    #[error("recipient {email}: {error}")]
    Compose {
        email: String,
        error: Box<ComposeError>,
    },
}

/// Renders recipient `which` as it will be sent. Imports the list first when the campaign has
/// none yet (as `send` would), since the Message-ID comes from the recipient's row.
pub fn preview(
    campaign: &Campaign,
    store: &mut Store,
    which: &RecipientRef,
) -> Result<Preview, PreviewError> {
    let mut composer = Composer::new(campaign).map_err(|problems| {
        PreviewError::Campaign(problems.iter().map(ToString::to_string).collect())
    })?;
    preview_with(&mut composer, campaign, store, which)
}

/// [`preview`] with a composer the caller keeps (built once per edit, not per recipient shown).
/// The composer is given the database's keys here, as a run gives them, so the preview's
/// unsubscribe link, VERP envelope sender and mailto are the ones `send` will write, never the
/// unsigned placeholders an unkeyed composer makes (issue #15).
pub fn preview_with(
    composer: &mut Composer,
    campaign: &Campaign,
    store: &mut Store,
    which: &RecipientRef,
) -> Result<Preview, PreviewError> {
    let id = campaign_id(store, campaign)?;
    // The preview shows the envelope and List-Unsubscribe as they will be sent; a key that
    // cannot be read stops it rather than showing an envelope `send` would not use (issue #13).
    key_composer(composer, store, campaign, id).map_err(PreviewError::Keys)?;
    let imported = import_if_empty(store, campaign);
    if store.counts(id)?.total() == 0 {
        // Nobody to show yet (an empty list, or one that cannot be read): a sample recipient,
        // so the message can be written and looked at before the list exists.
        return sample_preview(composer, campaign);
    }
    imported?;
    let describe = || match which {
        RecipientRef::Index(index) => format!("number {}", index + 1),
        RecipientRef::Email(email) => email.clone(),
    };
    let Some(row) = store.find_recipient(id, which)? else {
        return Err(PreviewError::NoSuchRecipient(describe()));
    };
    let index = match which {
        RecipientRef::Index(index) => *index,
        RecipientRef::Email(_) => store.position(id, row.id)?,
    };
    let compose_error = |error| PreviewError::Compose {
        email: row.email.clone(),
        error: Box::new(error),
    };
    let address = EmailAddress::parse(&row.email).map_err(|error| {
        compose_error(ComposeError::Address {
            what: "the recipient",
            value: row.email.clone(),
            reason: error.to_string(),
        })
    })?;
    let envelope = address.to_ascii();
    let data = RecipientData {
        id: row.id,
        email: &envelope,
        fields_json: &row.fields_json,
    };
    let mut preview = Preview {
        index,
        email: row.email.clone(),
        attachments: composer.attachments(),
        ..Preview::default()
    };
    compose_into(&mut preview, composer, &data).map_err(compose_error)?;
    Ok(preview)
}

/// Fills `preview` with the message `composer` makes for `data`, exactly as a run would send
/// it; a recipient the script skips is a preview that says why, not an error.
fn compose_into(
    preview: &mut Preview,
    composer: &mut Composer,
    data: &RecipientData,
) -> Result<(), ComposeError> {
    match composer.compose_parts(data, true) {
        Ok((parts, composed)) => {
            preview.headers = header_fields(&composed.bytes);
            preview.subject = parts.subject;
            preview.text = parts.text;
            preview.html = parts.html;
            preview.size_bytes = composed.bytes.len();
            preview.envelope_from = composed.envelope_from;
            preview.envelope_to = composed.envelope_to;
            preview.raw = composed.bytes;
            Ok(())
        }
        Err(ComposeError::Skipped { reason }) => {
            preview.skipped = Some(reason);
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// The address the sample recipient gets (RFC 2606 reserves example.com).
pub const SAMPLE_ADDRESS: &str = "sample@example.com";

/// The message a sample recipient would get: each column of the list (when its header can be
/// read) holds its own name in brackets, `[first_name]`, so the merge fields show where they go.
fn sample_preview(composer: &mut Composer, campaign: &Campaign) -> Result<Preview, PreviewError> {
    let columns = crate::import::open_list(campaign)
        .map(|list| list.columns().to_vec())
        .unwrap_or_default();
    let fields: serde_json::Map<String, serde_json::Value> = columns
        .into_iter()
        .map(|column| {
            let value = format!("[{column}]");
            (column, serde_json::Value::String(value))
        })
        .collect();
    let fields_json = serde_json::Value::Object(fields).to_string();
    let data = RecipientData {
        id: 0,
        email: SAMPLE_ADDRESS,
        fields_json: &fields_json,
    };
    let mut preview = Preview {
        email: SAMPLE_ADDRESS.to_string(),
        sample: true,
        attachments: composer.attachments(),
        ..Preview::default()
    };
    compose_into(&mut preview, composer, &data).map_err(|error| PreviewError::Compose {
        email: SAMPLE_ADDRESS.to_string(),
        error: Box::new(error),
    })?;
    Ok(preview)
}

/// The header fields of a message, unfolded.
fn header_fields(message: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    fields
}
