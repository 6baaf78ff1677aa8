//! Remote images for the rendered preview, fetched only when the user asks ("Load remote
//! images"): a bounded GET through the program's one HTTP client (`http`: a deadline for the
//! whole fetch, a size cap, no redirects followed, no cookies; `https` verified as a relay is).
//! Runs on the render worker's thread, never the window's.

use std::time::Duration;

use crate::http::{self, HttpError};

/// An image larger than this is not a newsletter image; it stays a placeholder.
pub const MAX_IMAGE_BYTES: usize = 8 * 1024 * 1024;
/// The whole of one image's fetch: a server trickling a byte every few seconds would otherwise
/// hold the render worker for as long as it likes.
const TOTAL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("only http:// and https:// images are fetched for the preview, not {0}")]
    Scheme(String),
    #[error("the image address has no host: {0}")]
    Host(String),
    #[error("could not fetch the image: {0}")]
    Unreachable(String),
    #[error("the server answered {0}")]
    Status(String),
    #[error("the image is larger than {MAX_IMAGE_BYTES} bytes")]
    TooLarge,
    #[error("TLS: {0}")]
    Tls(String),
}

/// GETs `url` and returns the body of a 200 answer.
pub fn get(url: &str) -> Result<Vec<u8>, FetchError> {
    get_trusting(url, None)
}

/// As `get`, also trusting the PEM certificate authority `ca_pem` for `https`.
pub fn get_trusting(url: &str, ca_pem: Option<&[u8]>) -> Result<Vec<u8>, FetchError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(FetchError::Scheme(url.to_string()));
    }
    let request = http::Request::get(url).header("accept", "image/*");
    let limits = http::Limits {
        total: TOTAL,
        max_body: MAX_IMAGE_BYTES,
    };
    let answer = http::send_blocking(request, ca_pem, limits).map_err(|error| match error {
        HttpError::Url(_) => FetchError::Host(url.to_string()),
        HttpError::TooLarge(_) => FetchError::TooLarge,
        HttpError::Untrusted(reason) => FetchError::Tls(reason),
        HttpError::Tls(reason) => FetchError::Tls(reason),
        other => FetchError::Unreachable(other.to_string()),
    })?;
    if answer.status != 200 {
        return Err(FetchError::Status(answer.status.to_string()));
    }
    Ok(answer.body)
}
