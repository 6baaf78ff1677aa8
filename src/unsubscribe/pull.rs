//! Herald pulling an endpoint's records before a send: `GET {endpoint}/pull?since=CURSOR` with
//! the bearer secret, page after page, each page applied to the store (global suppressions and
//! the endpoint's cursor in one transaction). An endpoint that cannot be reached or answers
//! wrongly is an error the caller shows: the CLI refuses to send without `--no-pull`, the
//! window asks, because mailing people who left is what gets a sender junked.

use std::time::Duration;

use super::{PULL_PAGE, PullPage};
use crate::campaign::UnsubscribeSpec;
use crate::http::{self, HttpError};
use crate::store::{AppliedUnsubscribes, PulledUnsubscribe, Store, StoreError};

/// How long one request may take, connection and TLS included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest page body accepted (a full page is about 100 KB).
const MAX_REPLY: usize = 4 * 1024 * 1024;
/// Most pages one pull reads (a million records): a misbehaving endpoint cannot keep it forever.
const MAX_PAGES: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("the unsubscribe endpoint {endpoint} cannot be reached: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("the unsubscribe endpoint {endpoint} refused the pull's secret (HTTP 401): {hint}")]
    Refused { endpoint: String, hint: String },
    #[error("the unsubscribe endpoint {endpoint} answered HTTP {status}")]
    Status { endpoint: String, status: u16 },
    #[error("the unsubscribe endpoint {endpoint} sent a reply Herald cannot read: {reason}")]
    BadReply { endpoint: String, reason: String },
    #[error(
        "the unsubscribe endpoint's certificate is not trusted: {reason}; if a CA of your own issued it, name that CA's PEM file in [unsubscribe] ca_file ({endpoint})"
    )]
    Untrusted { endpoint: String, reason: String },
    #[error("the CA file cannot be used: {reason} ({})", path.display())]
    CaFile {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("the pull's secret: the environment variable {0} is not set")]
    NoToken(String),
    #[error(
        "the pull's secret: the environment variable {0} holds fewer than {min} characters, which the endpoint refuses",
        min = crate::token::MIN_PULL_BEARER
    )]
    ShortToken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PullError {
    /// Whether the endpoint could not be asked at all (the case the user may choose to send
    /// anyway), rather than answering wrongly.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, PullError::Unreachable { .. })
    }
}

/// What a pull did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullReport {
    pub endpoint: String,
    /// Records read from the endpoint.
    pub records: usize,
    pub applied: AppliedUnsubscribes,
}

/// Pulls new records from the campaign's endpoint into `store`. `Ok(None)` when the campaign
/// names no endpoint.
pub fn pull(
    spec: Option<&UnsubscribeSpec>,
    store: &mut Store,
) -> Result<Option<PullReport>, PullError> {
    let Some(spec) = spec else {
        return Ok(None);
    };
    let Some(endpoint) = spec.endpoint.as_deref() else {
        return Ok(None);
    };
    let bearer = match &spec.token_env {
        Some(name) => {
            let value = std::env::var(name).map_err(|_| PullError::NoToken(name.clone()))?;
            if value.trim().chars().count() < crate::token::MIN_PULL_BEARER {
                return Err(PullError::ShortToken(name.clone()));
            }
            value
        }
        None => crate::token::pull_bearer(&store.secret(crate::token::UNSUBSCRIBE_KEY)?),
    };
    // What to check when the endpoint says no: the two ways of agreeing on the secret.
    let hint = match &spec.token_env {
        Some(name) => format!(
            "does {name} hold the same value as the variable the server's --token-env names?"
        ),
        None => "is its key the one `herald unsubscribes secret` prints for this database (and is it started without --token-env)?".to_string(),
    };
    let ca_pem = match &spec.ca_file {
        Some(path) => {
            let ca_error = |reason: String| PullError::CaFile {
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|error| ca_error(error.to_string()))?;
            // Refused here, with the file's name, rather than as a failed request.
            crate::tls::verified(Some(&pem)).map_err(ca_error)?;
            Some(pem)
        }
        None => None,
    };
    let unreachable = |reason: String| PullError::Unreachable {
        endpoint: endpoint.to_string(),
        reason,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| unreachable(error.to_string()))?;
    let mut report = PullReport {
        endpoint: endpoint.to_string(),
        ..PullReport::default()
    };
    for _ in 0..MAX_PAGES {
        let since = store.unsubscribe_cursor(endpoint)?;
        let url = format!("{endpoint}/pull?since={since}&limit={PULL_PAGE}");
        let page = runtime.block_on(async {
            get_page(endpoint, &url, bearer.trim(), ca_pem.as_deref(), &hint).await
        })?;
        let records: Vec<PulledUnsubscribe> = page
            .records
            .iter()
            .map(|record| PulledUnsubscribe {
                cursor: record.cursor,
                campaign: record.campaign,
                recipient: record.recipient,
                at_ms: record.at_ms,
            })
            .collect();
        // The cursor only moves forward: a reply that goes back would re-read forever.
        let cursor = page.cursor.max(since);
        let applied = store.apply_unsubscribes(endpoint, &records, cursor)?;
        report.records += records.len();
        report.applied.suppressed += applied.suppressed;
        report.applied.already += applied.already;
        report.applied.unknown += applied.unknown;
        if records.len() < PULL_PAGE as usize || cursor == since {
            break;
        }
    }
    tracing::info!(
        records = report.records,
        suppressed = report.applied.suppressed,
        "pulled unsubscribes"
    );
    Ok(Some(report))
}

/// One GET of `url` (on `endpoint`), its JSON body read into a page. Over https the server is
/// authenticated against the public roots and `ca_pem` (the `http` module).
async fn get_page(
    endpoint: &str,
    url: &str,
    bearer: &str,
    ca_pem: Option<&[u8]>,
    hint: &str,
) -> Result<PullPage, PullError> {
    let request = http::Request::get(url)
        .header("authorization", format!("Bearer {bearer}"))
        .header("accept", "application/json");
    let limits = http::Limits {
        total: REQUEST_TIMEOUT,
        max_body: MAX_REPLY,
    };
    let answer = http::send(request, ca_pem, limits)
        .await
        .map_err(|error| match error {
            HttpError::Untrusted(reason) => PullError::Untrusted {
                endpoint: endpoint.to_string(),
                reason,
            },
            HttpError::TooLarge(_) | HttpError::Protocol(_) => PullError::BadReply {
                endpoint: endpoint.to_string(),
                reason: error.to_string(),
            },
            other => PullError::Unreachable {
                endpoint: endpoint.to_string(),
                reason: other.to_string(),
            },
        })?;
    match answer.status {
        200 => {}
        401 | 403 => {
            return Err(PullError::Refused {
                endpoint: endpoint.to_string(),
                hint: hint.to_string(),
            });
        }
        status => {
            return Err(PullError::Status {
                endpoint: endpoint.to_string(),
                status,
            });
        }
    }
    serde_json::from_slice(&answer.body).map_err(|error| PullError::BadReply {
        endpoint: endpoint.to_string(),
        reason: error.to_string(),
    })
}
