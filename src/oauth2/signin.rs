//! Signing in to a grant. The authorization code flow with PKCE (RFC 7636, S256) and `state`
//! (RFC 6749 §10.12) through the system browser and a listener on 127.0.0.1 with an ephemeral
//! port (RFC 8252 §7.3): the listener takes one redirect that carries the right `state` and
//! closes; anything else stops the sign-in with a sentence. And the device authorization grant
//! (RFC 8628): a code the user types on any device, polled as §3.4–3.5 say. Both end with the
//! refresh token saved in the keyring and who signed in. Opening the browser is the caller's.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use sha2::Digest;

use super::{Client, Endpoints, OAuth2Error, Tokens, http, who};
use crate::credentials::KeyringStore;

/// How long a sign-in through the browser may take before the listener gives up.
pub const BROWSER_LIMIT: Duration = Duration::from_secs(10 * 60);

/// The page the browser lands on after a good sign-in. Nothing else: no token, no address.
const CLOSE_PAGE: &str = "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Herald</title></head><body><p>You can close this window.</p></body></html>";

/// The outcome of signing in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The account, from the ID token (email, preferred_username or sub), when it says.
    pub who: Option<String>,
    /// The scopes granted (the token answer's `scope`, else those asked for).
    pub scopes: Vec<String>,
    /// Where the refresh token was kept.
    pub store: KeyringStore,
}

fn random_url_safe(bytes: usize) -> Result<String, OAuth2Error> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer)
        .map_err(|error| OAuth2Error::Aborted(format!("no randomness available: {error}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer))
}

/// RFC 7636 §4.2: `BASE64URL(SHA256(verifier))`.
fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

/// Opens `url` in the system browser.
pub fn open_browser(url: &str) -> Result<(), String> {
    webbrowser::open(url).map_err(|error| error.to_string())
}

/// Saves the refresh token a sign-in brought and says who signed in.
async fn finish_tokens(client: &Client, tokens: Tokens) -> Result<SignedIn, OAuth2Error> {
    let Some(refresh) = tokens.refresh else {
        return Err(OAuth2Error::Refused {
            grant: client.grant.clone(),
            reason: "the provider gave no refresh token, so Herald could not stay signed in; \
                     ask for offline_access (Microsoft, oidc) in scopes"
                .into(),
        });
    };
    let store = client.save(refresh).await?;
    super::Grant::forget_in_cells(client);
    let account = who(tokens.id_token.as_deref());
    let entry = client.entry.clone();
    let named = account.clone();
    // Who signed in is only shown; a keyring that took the token but not the name costs the
    // window the name, not the sign-in.
    match tokio::task::spawn_blocking(move || super::vault::save_account(&entry, named.as_deref()))
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => tracing::warn!(%reason, "could not keep who signed in"),
        Err(error) => tracing::warn!(%error, "could not keep who signed in"),
    }
    let scopes = tokens.scope.as_deref().map_or_else(
        || client.scopes.clone(),
        |granted| granted.split_whitespace().map(str::to_string).collect(),
    );
    Ok(SignedIn {
        who: account,
        scopes,
        store,
    })
}

/// A sign-in through the browser, waiting for its one redirect.
pub struct LoopbackSignIn {
    client: Client,
    endpoints: Endpoints,
    listener: tokio::net::TcpListener,
    verifier: String,
    state: String,
    redirect_uri: String,
    url: String,
}

/// What the listener decided about one redirect.
type Decision = Result<String, OAuth2Error>;

impl LoopbackSignIn {
    /// Binds the listener and builds the authorization URL. `login_hint` pre-fills the
    /// account at the provider (the relay's username).
    pub async fn start(
        client: Client,
        login_hint: Option<&str>,
    ) -> Result<LoopbackSignIn, OAuth2Error> {
        let endpoints = client.endpoints().await?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|error| {
                OAuth2Error::Aborted(format!("could not listen on 127.0.0.1: {error}"))
            })?;
        let port = listener
            .local_addr()
            .map_err(|error| OAuth2Error::Aborted(error.to_string()))?
            .port();
        let redirect_uri = format!("http://127.0.0.1:{port}/");
        // RFC 7636 §4.1: 32 random octets make a 43-character verifier.
        let verifier = random_url_safe(32)?;
        let state = random_url_safe(16)?;
        let scope = client.scopes.join(" ");
        let code_challenge = challenge(&verifier);
        let mut query = vec![
            ("response_type", "code"),
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("scope", scope.as_str()),
            ("state", state.as_str()),
            ("code_challenge", code_challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        if let Some(hint) = login_hint {
            query.push(("login_hint", hint));
        }
        if matches!(client.provider, crate::campaign::OAuth2Provider::Google) {
            // Google gives a refresh token only for offline access, and again only on consent.
            query.push(("access_type", "offline"));
            query.push(("prompt", "consent"));
        }
        let separator = if endpoints.authorization.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!(
            "{}{separator}{}",
            endpoints.authorization,
            http::encode_form(&query)
        );
        Ok(LoopbackSignIn {
            client,
            endpoints,
            listener,
            verifier,
            state,
            redirect_uri,
            url,
        })
    }

    /// The URL to open in the browser.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Waits (at most `limit`) for the browser to come back, then trades the code for tokens
    /// and keeps the refresh token. The listener is closed when this returns.
    pub async fn finish(self, limit: Duration) -> Result<SignedIn, OAuth2Error> {
        self.finish_unless(limit, &super::Cancel::default()).await
    }

    /// [`LoopbackSignIn::finish`], stopped early by `cancel` (nothing is saved then).
    pub async fn finish_unless(
        self,
        limit: Duration,
        cancel: &super::Cancel,
    ) -> Result<SignedIn, OAuth2Error> {
        let waited = tokio::select! {
            waited = tokio::time::timeout(limit, self.redirect()) => waited,
            () = cancel.cancelled() => {
                return Err(OAuth2Error::Aborted(format!(
                    "The sign-in to \"{}\" was cancelled. Nothing was saved.",
                    self.client.grant
                )));
            }
        };
        let code = match waited {
            Ok(decision) => decision?,
            Err(_) => {
                return Err(OAuth2Error::Aborted(format!(
                    "nobody finished signing in to \"{}\" within {} minutes; sign in again",
                    self.client.grant,
                    limit.as_secs() / 60
                )));
            }
        };
        drop(self.listener);
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", self.verifier.as_str()),
        ];
        let tokens = self
            .client
            .token_request(&self.endpoints.token, &form)
            .await
            .map_err(|error| match error {
                Ok((code, description)) => OAuth2Error::Aborted(format!(
                    "the provider refused the sign-in code ({}); nothing was saved; sign in again",
                    super::describe(&code, &description)
                )),
                Err(error) => error,
            })?;
        finish_tokens(&self.client, tokens).await
    }

    /// Serves connections until one carries a decision: a good code, or a refusal.
    async fn redirect(&self) -> Decision {
        loop {
            let (stream, _) = self.listener.accept().await.map_err(|error| {
                OAuth2Error::Aborted(format!("the sign-in listener failed: {error}"))
            })?;
            let decided: Arc<Mutex<Option<Decision>>> = Arc::new(Mutex::new(None));
            let slot = Arc::clone(&decided);
            let state = self.state.clone();
            let grant = self.client.grant.clone();
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let (status, page, decision) = judge(&request, &state, &grant);
                    if let Some(decision) = decision {
                        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(decision);
                    }
                    let response = hyper::Response::builder()
                        .status(status)
                        .header(hyper::header::CONTENT_TYPE, "text/html; charset=utf-8")
                        .header(hyper::header::CACHE_CONTROL, "no-store")
                        .body(Full::new(Bytes::from(page)))
                        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())));
                    async move { Ok::<_, Infallible>(response) }
                },
            );
            let serve = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .header_read_timeout(Duration::from_secs(10))
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            // One request per connection; a connection that says nothing is dropped.
            let _ = tokio::time::timeout(Duration::from_secs(15), serve).await;
            let decision = decided
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(decision) = decision {
                return decision;
            }
        }
    }
}

/// Judges one request to the listener: the page to answer and, for a redirect, the decision.
/// RFC 6749 §4.1.2: the redirect carries `code` and `state`, or `error` (§4.1.2.1) and `state`.
fn judge(
    request: &hyper::Request<hyper::body::Incoming>,
    state: &str,
    grant: &str,
) -> (u16, String, Option<Decision>) {
    let page = |text: &str| {
        format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Herald</title></head><body><p>{text}</p></body></html>"
        )
    };
    if request.method() != hyper::Method::GET || request.uri().path() != "/" {
        return (404, page("Not found."), None);
    }
    let pairs = http::parse_query(request.uri().query().unwrap_or(""));
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    // The state is compared before anything else is read: a redirect Herald did not start
    // (a forged link, an old tab) must not be able to refuse or complete this sign-in's grant.
    if get("state") != Some(state) {
        return (
            400,
            page(
                "This sign-in was not started by Herald, so it was refused. You can close this window.",
            ),
            Some(Err(OAuth2Error::Aborted(format!(
                "The sign-in to \"{grant}\" was refused: the browser came back from a sign-in Herald did not start (its state did not match). Nothing was saved; sign in again."
            )))),
        );
    }
    if let Some(error) = get("error") {
        let description = get("error_description").unwrap_or("");
        let why = if error == "access_denied" {
            "the sign-in was declined at the provider".to_string()
        } else {
            super::describe(error, description)
        };
        return (
            200,
            page("The sign-in did not finish. You can close this window."),
            Some(Err(OAuth2Error::Aborted(format!(
                "The sign-in to \"{grant}\" did not finish: {why} ({error}). Nothing was saved."
            )))),
        );
    }
    match get("code") {
        Some(code) if !code.is_empty() => (200, CLOSE_PAGE.to_string(), Some(Ok(code.to_string()))),
        _ => (
            400,
            page("The provider sent no sign-in code. You can close this window."),
            Some(Err(OAuth2Error::Aborted(format!(
                "The sign-in to \"{grant}\" did not finish: the provider sent no code. Nothing was saved."
            )))),
        ),
    }
}

/// RFC 8628 §3.2. Google says `verification_url`.
#[derive(Deserialize)]
struct DeviceReply {
    device_code: String,
    user_code: String,
    #[serde(alias = "verification_url")]
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: u64,
    interval: Option<u64>,
}

/// What the user must see: where to go and which code to type.
#[derive(Debug, Clone)]
pub struct DeviceCode {
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub user_code: String,
    pub expires_in_secs: u64,
}

/// A device sign-in, polling for its user.
pub struct DeviceSignIn {
    client: Client,
    token_endpoint: String,
    device_code: String,
    interval: Duration,
    deadline: Instant,
    pub code: DeviceCode,
}

impl DeviceSignIn {
    /// Asks the provider for a device code (RFC 8628 §3.1).
    pub async fn start(client: Client) -> Result<DeviceSignIn, OAuth2Error> {
        let endpoints = client.endpoints().await?;
        let Some(device) = endpoints.device.clone() else {
            return Err(OAuth2Error::Refused {
                grant: client.grant.clone(),
                reason: format!(
                    "{} does not offer sign-in with a code for mail; sign in through the browser (leave out --device)",
                    client.provider.label()
                ),
            });
        };
        let scope = client.scopes.join(" ");
        let mut form = vec![
            ("client_id", client.client_id.as_str()),
            ("scope", scope.as_str()),
        ];
        if let Some(secret) = &client.client_secret {
            form.push(("client_secret", secret));
        }
        let reply = http::post_form(&device, &form, client.ca_pem.as_deref())
            .await
            .map_err(|reason| client.unreachable(reason))?;
        if reply.status != 200 {
            let reason = serde_json::from_slice::<super::ErrorReply>(&reply.body).map_or_else(
                |_| format!("HTTP {}", reply.status),
                |error| super::describe(&error.error, &error.error_description.unwrap_or_default()),
            );
            return Err(OAuth2Error::Refused {
                grant: client.grant.clone(),
                reason,
            });
        }
        let answer: DeviceReply = serde_json::from_slice(&reply.body).map_err(|error| {
            client.unreachable(format!("the device code answer is unreadable: {error}"))
        })?;
        Ok(DeviceSignIn {
            token_endpoint: endpoints.token,
            device_code: answer.device_code,
            // RFC 8628 §3.2: 5 seconds when the provider does not say.
            interval: Duration::from_secs(answer.interval.unwrap_or(5).max(1)),
            deadline: Instant::now() + Duration::from_secs(answer.expires_in),
            code: DeviceCode {
                verification_uri: answer.verification_uri,
                verification_uri_complete: answer.verification_uri_complete,
                user_code: answer.user_code,
                expires_in_secs: answer.expires_in,
            },
            client,
        })
    }

    /// Polls until the user signed in, refused, or the code expired (RFC 8628 §3.4, §3.5).
    pub async fn finish(mut self) -> Result<SignedIn, OAuth2Error> {
        loop {
            tokio::time::sleep(self.interval).await;
            if Instant::now() >= self.deadline {
                return Err(self.expired());
            }
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", self.device_code.as_str()),
            ];
            match self.client.token_request(&self.token_endpoint, &form).await {
                Ok(tokens) => return finish_tokens(&self.client, tokens).await,
                Err(Ok((code, _))) if code == "authorization_pending" => {}
                // §3.5: slow down by 5 seconds, for this and every later request.
                Err(Ok((code, _))) if code == "slow_down" => {
                    self.interval += Duration::from_secs(5)
                }
                Err(Ok((code, _))) if code == "expired_token" => return Err(self.expired()),
                Err(Ok((code, _))) if code == "access_denied" => {
                    return Err(OAuth2Error::Aborted(format!(
                        "The sign-in to \"{}\" did not finish: it was declined at the provider (access_denied). Nothing was saved.",
                        self.client.grant
                    )));
                }
                Err(Ok((code, description))) => {
                    return Err(OAuth2Error::Refused {
                        grant: self.client.grant.clone(),
                        reason: super::describe(&code, &description),
                    });
                }
                // A network hiccup while polling: keep polling until the code expires.
                Err(Err(error)) => tracing::warn!(%error, "polling for the device sign-in failed"),
            }
        }
    }

    fn expired(&self) -> OAuth2Error {
        OAuth2Error::Aborted(format!(
            "The code for \"{}\" expired before anyone signed in with it; sign in again.",
            self.client.grant
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_rfc_7636s_s256() {
        // RFC 7636 Appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let verifier = random_url_safe(32).unwrap();
        assert_eq!(verifier.len(), 43);
        assert_ne!(verifier, random_url_safe(32).unwrap());
    }
}
