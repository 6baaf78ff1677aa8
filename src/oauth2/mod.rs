//! OAuth2 sign-in for relays and the bounce mailbox (issue #22): the one owner of token
//! requests (a small client over hyper, `http.rs`), the provider endpoints (Microsoft, Google,
//! or any OpenID provider's discovery document), signing in (`signin.rs`: the authorization
//! code flow with PKCE S256 and `state` on a 127.0.0.1 loopback listener, RFC 8252; and the
//! device authorization grant, RFC 8628), refresh tokens in the keyring (`vault.rs`, in pieces
//! Windows can hold) and the SASL strings (`sasl.rs`). [`Grant`] is the one token cell a run
//! shares per grant: every SMTP session and mailbox check asks it for an access token valid at
//! least five more minutes, and it refreshes once for all of them.
//!
//! Never writes a token to a log, the database or the campaign file; access tokens live only in
//! memory, refresh tokens only in the keyring. Rotated refresh tokens are saved before the new
//! access token is handed out. Why not the `oauth2` crate: it wants base64 < 0.23 (a second
//! copy beside ours) and an HTTP client adapter; what Herald needs of it — PKCE, two grant
//! types and refresh — is a few hundred lines over the hyper client the program already has.

mod http;
pub mod sasl;
mod signin;
pub mod vault;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;

use crate::campaign::{Campaign, OAuth2Provider, OAuth2Spec};

pub use signin::{BROWSER_LIMIT, DeviceCode, DeviceSignIn, LoopbackSignIn, SignedIn, open_browser};

/// Runs `work` on a runtime of its own, for callers outside one (the CLI, the window's service
/// thread), as the mailbox reader does.
pub fn block_on<T>(
    work: impl std::future::Future<Output = Result<T, OAuth2Error>>,
) -> Result<T, OAuth2Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| OAuth2Error::Aborted(format!("could not start: {error}")))?
        .block_on(work)
}
pub use vault::entry_name;

/// An access token must stay valid this much longer to be handed to a new session: a session
/// that authenticates now may carry messages for a while, and a mailbox check must finish.
pub const MIN_LIFE: Duration = Duration::from_secs(5 * 60);

/// How long a refresh waits for another process's refresh of the same grant: longer than one
/// refresh can take (discovery and the token request, 30 s each at most).
const REFRESH_LOCK_LIMIT: Duration = Duration::from_secs(75);

/// Why an OAuth2 step failed, as data: the window offers "Sign in again" only for
/// [`OAuth2Error::SignInAgain`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuth2Error {
    /// Nobody has signed in to this grant on this computer yet. The step to take is the
    /// front end's to word ([`OAuth2Error::worded`]).
    #[error("nobody is signed in to \"{grant}\" yet")]
    NotSignedIn { grant: String },
    /// The provider refused the refresh token (`invalid_grant`: revoked, password changed,
    /// consent withdrawn, expired).
    #[error("Sign in again to \"{grant}\": the provider no longer accepts its sign-in ({reason})")]
    SignInAgain { grant: String, reason: String },
    /// The provider could not be reached or answered something unreadable; waiting may fix it.
    #[error("could not reach the sign-in provider of \"{grant}\": {reason}")]
    Unreachable { grant: String, reason: String },
    /// The provider refused the request for a reason the settings must fix (wrong client id,
    /// scope refused, client secret missing).
    #[error("the sign-in provider of \"{grant}\" refused: {reason}")]
    Refused { grant: String, reason: String },
    /// Signing in was stopped: refused by the user, a forged or wrong redirect, timed out.
    #[error("{0}")]
    Aborted(String),
    /// The keyring could not keep the new refresh token.
    #[error("could not keep the sign-in of \"{grant}\" in the keyring: {reason}")]
    Keyring { grant: String, reason: String },
}

impl OAuth2Error {
    /// Failures waiting will not fix: the user must sign in again or change the settings.
    pub fn needs_user(&self) -> bool {
        !matches!(self, OAuth2Error::Unreachable { .. })
    }

    /// The grant the user must sign in to (again) before it can be used, if that is the fix.
    pub fn sign_in_needed(&self) -> Option<&str> {
        match self {
            OAuth2Error::NotSignedIn { grant } | OAuth2Error::SignInAgain { grant, .. } => {
                Some(grant)
            }
            _ => None,
        }
    }

    /// The sentence for `front`: a failure a sign-in fixes ends with the step to take there.
    pub fn worded(&self, front: Front, campaign: &std::path::Path) -> String {
        match self.sign_in_needed() {
            Some(grant) => format!("{self}; {}", front.sign_in_step(grant, campaign)),
            None => self.to_string(),
        }
    }
}

/// Who reads a sentence that asks the user to sign in: the finding is one (nobody is signed in,
/// the provider refused the sign-in kept), the step differs. The CLI names `herald signin`; the
/// window points at its Sign in button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Front {
    #[default]
    Cli,
    Window,
}

impl Front {
    /// How to sign in to `grant` of the campaign file `campaign` from this front end.
    pub fn sign_in_step(self, grant: &str, campaign: &std::path::Path) -> String {
        match self {
            Front::Cli => format!(
                "run `herald signin {} --oauth2 {grant}`",
                if campaign.as_os_str().is_empty() {
                    "CAMPAIGN.toml".into()
                } else {
                    campaign.display().to_string()
                }
            ),
            Front::Window => format!(
                "press Sign in beside the relay or bounce mailbox that signs in with {grant} (Publish)"
            ),
        }
    }
}

/// A provider's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
    pub device: Option<String>,
}

/// `/.well-known/openid-configuration`, the fields Herald reads (OpenID Discovery §3).
#[derive(Deserialize)]
struct Discovery {
    authorization_endpoint: String,
    token_endpoint: String,
    device_authorization_endpoint: Option<String>,
}

/// RFC 6749 §5.1.
#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
    scope: Option<String>,
    id_token: Option<String>,
}

/// RFC 6749 §5.2.
#[derive(Deserialize)]
struct ErrorReply {
    error: String,
    error_description: Option<String>,
}

/// What a token request returned, after the refresh token (if any) was saved.
pub(crate) struct Tokens {
    pub access: String,
    pub expires_at: Instant,
    pub refresh: Option<String>,
    pub scope: Option<String>,
    pub id_token: Option<String>,
}

/// The client side of one `[oauth2.NAME]`: who we are to the provider and where it is.
#[derive(Debug, Clone)]
pub struct Client {
    pub grant: String,
    pub provider: OAuth2Provider,
    pub client_id: String,
    client_secret: Option<String>,
    pub scopes: Vec<String>,
    ca_pem: Option<Vec<u8>>,
    /// The keyring entry of the refresh token.
    pub entry: String,
}

impl Client {
    /// The client for grant `name` of `campaign`, with the scopes every use in the campaign
    /// needs. Reads the CA file and the client secret (environment, then keyring).
    pub fn for_campaign(campaign: &Campaign, name: &str) -> Result<Client, OAuth2Error> {
        let refused = |reason: String| OAuth2Error::Refused {
            grant: name.to_string(),
            reason,
        };
        let spec: &OAuth2Spec = campaign
            .grant(name)
            .ok_or_else(|| refused(format!("the campaign has no [oauth2.{name}] section")))?;
        let mut uses = campaign.grant_uses(name);
        if uses.is_empty() {
            uses = vec![crate::campaign::OAuth2Use::Sending];
        }
        let ca_pem = match &spec.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|error| {
                refused(format!(
                    "could not read ca_file {}: {error}",
                    path.display()
                ))
            })?),
            None => None,
        };
        let client_secret = match &spec.client_secret_env {
            Some(var) => Some(crate::credentials::lookup(var).ok_or_else(|| {
                refused(format!(
                    "the client secret is not set (environment variable {var})"
                ))
            })?),
            None => None,
        };
        Ok(Client {
            grant: name.to_string(),
            provider: spec.provider.clone(),
            client_id: spec.client_id.clone(),
            client_secret,
            scopes: spec.scopes_for(&uses),
            ca_pem,
            entry: vault::entry_name(name, &spec.client_id),
        })
    }

    fn unreachable(&self, reason: impl Into<String>) -> OAuth2Error {
        OAuth2Error::Unreachable {
            grant: self.grant.clone(),
            reason: reason.into(),
        }
    }

    /// The provider's endpoints: known for Microsoft and Google, discovered for oidc.
    pub async fn endpoints(&self) -> Result<Endpoints, OAuth2Error> {
        match &self.provider {
            OAuth2Provider::Microsoft { tenant } => {
                let base = format!(
                    "https://login.microsoftonline.com/{}/oauth2/v2.0",
                    http::percent_encode(tenant)
                );
                Ok(Endpoints {
                    authorization: format!("{base}/authorize"),
                    token: format!("{base}/token"),
                    device: Some(format!("{base}/devicecode")),
                })
            }
            OAuth2Provider::Google => Ok(Endpoints {
                authorization: "https://accounts.google.com/o/oauth2/v2/auth".into(),
                token: "https://oauth2.googleapis.com/token".into(),
                // Google refuses mail scopes in the device flow (invalid_scope).
                device: None,
            }),
            OAuth2Provider::Oidc { issuer } => {
                let url = format!("{issuer}/.well-known/openid-configuration");
                let reply = http::get(&url, self.ca_pem.as_deref())
                    .await
                    .map_err(|reason| self.unreachable(reason))?;
                if reply.status != 200 {
                    return Err(self.unreachable(format!("{url} answered HTTP {}", reply.status)));
                }
                let found: Discovery = serde_json::from_slice(&reply.body).map_err(|error| {
                    self.unreachable(format!("{url} is not a discovery document: {error}"))
                })?;
                Ok(Endpoints {
                    authorization: found.authorization_endpoint,
                    token: found.token_endpoint,
                    device: found.device_authorization_endpoint,
                })
            }
        }
    }

    /// POSTs a token request (RFC 6749 §4.1.3, §6; RFC 8628 §3.4) and reads the answer. An
    /// error reply comes back as `Err(Ok((error, description)))`, for the caller to judge.
    async fn token_request(
        &self,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> Result<Tokens, Result<(String, String), OAuth2Error>> {
        let mut form: Vec<(&str, &str)> = form.to_vec();
        form.push(("client_id", &self.client_id));
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret));
        }
        let reply = http::post_form(endpoint, &form, self.ca_pem.as_deref())
            .await
            .map_err(|reason| Err(self.unreachable(reason)))?;
        if reply.status == 200 {
            let tokens: TokenReply = serde_json::from_slice(&reply.body).map_err(|error| {
                Err(self.unreachable(format!("the token answer is unreadable: {error}")))
            })?;
            return Ok(Tokens {
                access: tokens.access_token,
                // RFC 6749 §5.1 leaves expires_in optional; an hour is what providers give.
                expires_at: Instant::now()
                    + Duration::from_secs(tokens.expires_in.unwrap_or(3_600)),
                refresh: tokens.refresh_token,
                scope: tokens.scope,
                id_token: tokens.id_token,
            });
        }
        match serde_json::from_slice::<ErrorReply>(&reply.body) {
            Ok(error) => Err(Ok((
                error.error,
                error.error_description.unwrap_or_default(),
            ))),
            Err(_) => Err(Err(self.unreachable(format!(
                "the token endpoint answered HTTP {}",
                reply.status
            )))),
        }
    }

    /// Uses the refresh token (RFC 6749 §6). A rotated refresh token is saved in the keyring
    /// before this returns, so the old one is never the only copy.
    async fn refresh(&self, refresh_token: &str) -> Result<Tokens, OAuth2Error> {
        let endpoints = self.endpoints().await?;
        // No scope: RFC 6749 §6 then grants what the user consented to, which may be less
        // than was asked (a provider may drop offline_access), and asking again would fail.
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        let tokens =
            self.token_request(&endpoints.token, &form)
                .await
                .map_err(|error| match error {
                    Ok((code, description)) if code == "invalid_grant" => {
                        OAuth2Error::SignInAgain {
                            grant: self.grant.clone(),
                            reason: describe(&code, &description),
                        }
                    }
                    Ok((code, description)) => OAuth2Error::Refused {
                        grant: self.grant.clone(),
                        reason: describe(&code, &description),
                    },
                    Err(error) => error,
                })?;
        if let Some(rotated) = &tokens.refresh
            && rotated != refresh_token
        {
            self.save(rotated.clone()).await?;
        }
        Ok(tokens)
    }

    /// Saves a refresh token in the keyring (off the async threads).
    pub(crate) async fn save(
        &self,
        refresh: String,
    ) -> Result<crate::credentials::KeyringStore, OAuth2Error> {
        let entry = self.entry.clone();
        let saved = tokio::task::spawn_blocking(move || vault::save(&entry, &refresh))
            .await
            .map_err(|error| error.to_string())
            .and_then(|saved| saved);
        saved.map_err(|reason| OAuth2Error::Keyring {
            grant: self.grant.clone(),
            reason,
        })
    }

    /// Waits for the other processes (and cells) refreshing this grant to finish, and keeps
    /// them waiting until the lock is dropped.
    async fn lock_for_refresh(&self) -> vault::RefreshLock {
        let entry = self.entry.clone();
        tokio::task::spawn_blocking(move || vault::lock_for_refresh(&entry, REFRESH_LOCK_LIMIT))
            .await
            .unwrap_or_default()
    }

    /// The refresh token in the keyring, if someone signed in.
    pub async fn stored_refresh(&self) -> Option<String> {
        let entry = self.entry.clone();
        tokio::task::spawn_blocking(move || vault::load(&entry))
            .await
            .ok()
            .flatten()
    }

    /// Whether someone signed in to this grant on this computer (blocking): the one answer
    /// `herald check`, the window's Problems box and sign-in row, and a run's token cell all
    /// use, read from the keyring each time (a sign-in made by another process, `herald
    /// signin` in a terminal, has no other way to be seen).
    pub fn is_signed_in(&self) -> bool {
        vault::load(&self.entry).is_some()
    }

    /// Who signed in, as the provider named them at the last sign-in (blocking).
    pub fn account(&self) -> Option<String> {
        vault::account(&self.entry)
    }

    /// Why the provider refused this grant's refresh token in this process, when it did
    /// (`invalid_grant`): the user must sign in again. Cleared by a sign-in or a sign-out.
    pub fn refusal(&self) -> Option<String> {
        REFUSALS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(entry, _)| *entry == self.entry)
            .map(|(_, reason)| reason.clone())
    }

    /// Forgets the refresh token (`herald signout`); says whether there was one (blocking).
    pub fn sign_out(&self) -> bool {
        forget_refusal(&self.entry);
        Grant::forget_in_cells(self);
        vault::forget(&self.entry)
    }
}

/// The grants whose refresh token the provider refused in this process (keyring entry, the
/// provider's reason), so the window can say "Sign in again" after the run that met it paused
/// or ended and its token cell is gone.
static REFUSALS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

fn remember_refusal(entry: &str, reason: &str) {
    let mut refusals = REFUSALS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    refusals.retain(|(known, _)| known != entry);
    refusals.push((entry.to_string(), reason.to_string()));
}

fn forget_refusal(entry: &str) {
    REFUSALS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retain(|(known, _)| known != entry);
}

/// Stops a sign-in that waits for the browser (the window's Cancel, or a new sign-in).
#[derive(Clone, Debug)]
pub struct Cancel(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Cancel {
    fn default() -> Self {
        Cancel(Arc::new(tokio::sync::watch::Sender::new(false)))
    }
}

impl Cancel {
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once [`Cancel::cancel`] was called.
    async fn cancelled(&self) {
        let mut watching = self.0.subscribe();
        let _ = watching.wait_for(|cancelled| *cancelled).await;
    }
}

/// `invalid_grant (AADSTS70008: the refresh token has expired)`.
fn describe(code: &str, description: &str) -> String {
    let description = description.lines().next().unwrap_or("").trim();
    if description.is_empty() {
        code.to_string()
    } else {
        format!("{code}: {description}")
    }
}

/// Who signed in, from the ID token's claims (OpenID Core §2). The token came straight from
/// the token endpoint over the connection we opened, which OpenID Core §3.1.3.7 accepts in
/// place of checking its signature; it is only shown to the user, never trusted for access.
pub(crate) fn who(id_token: Option<&str>) -> Option<String> {
    let payload = id_token?.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    ["email", "preferred_username", "upn", "sub"]
        .iter()
        .find_map(|claim| claims.get(claim)?.as_str().map(str::to_string))
}

/// What `herald check` and the window's Problems box say about signing in (issue #22): grants
/// used by the campaign that nobody has signed in to on this computer (problems, with the step
/// worded for `front`), and the hosts of providers that no longer take passwords used with one
/// (warnings). Reads the keyring (blocking).
pub fn check(campaign: &Campaign, front: Front) -> (Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for grant in &campaign.oauth2 {
        if campaign.grant_uses(&grant.name).is_empty() {
            continue;
        }
        match Client::for_campaign(campaign, &grant.name) {
            Ok(client) if client.is_signed_in() => {}
            Ok(_) => problems.push(format!(
                "oauth2.{name}: nobody has signed in yet; {step}",
                name = grant.name,
                step = front.sign_in_step(&grant.name, &campaign.path)
            )),
            Err(error) => problems.push(format!("oauth2.{}: {error}", grant.name)),
        }
    }
    for relay in &campaign.relays {
        if relay.password_env.is_some()
            && let Some(warning) = crate::campaign::password_host_warning(
                &format!("relay \"{}\"", relay.name),
                &relay.host,
            )
        {
            warnings.push(warning);
        }
    }
    if let Some(bounces) = &campaign.bounces
        && bounces.oauth2.is_none()
        && let Some(warning) =
            crate::campaign::password_host_warning("the bounce mailbox", &bounces.host)
    {
        warnings.push(warning);
    }
    (problems, warnings)
}

/// An access token in memory.
struct Access {
    token: String,
    expires_at: Instant,
}

/// The state behind a [`Grant`]'s lock.
#[derive(Default)]
struct Cell {
    access: Option<Access>,
    /// The refresh token this cell last used or saved; the keyring is read again before each
    /// refresh, since another process may have rotated it since.
    refresh: Option<String>,
    /// A refusal that needs the user: every later ask gets it at once, without asking the
    /// provider again, while the keyring holds the refresh token refused (`refresh`).
    /// "Nobody signed in" is never kept here: the keyring is asked again each time.
    refused: Option<OAuth2Error>,
    /// The [`Grant::generation`] this state was read at.
    generation: u64,
}

/// The one token cell a run shares for one grant: sessions ask it for a token, and only one of
/// them at a time refreshes (the lock), so a hundred sessions opening at once cost one refresh.
pub struct Grant {
    client: Client,
    cell: tokio::sync::Mutex<Cell>,
    refreshes: AtomicU64,
    /// Bumped by a sign-in or sign-out in this process: the state behind the lock is then
    /// stale and is dropped by the next ask, even if a session held the lock at the time.
    generation: AtomicU64,
}

impl std::fmt::Debug for Grant {
    // Hand-written: the cell holds tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("grant", &self.client.grant)
            .finish_non_exhaustive()
    }
}

/// The token cells alive in this process, by keyring entry and scopes: a run's relays, its
/// mailbox checks and a test send in the same process share one cell per grant, so they
/// refresh once between them. Weak: a cell lives as long as someone uses it.
static CELLS: std::sync::Mutex<Vec<(String, std::sync::Weak<Grant>)>> =
    std::sync::Mutex::new(Vec::new());

fn cell_key(client: &Client) -> String {
    format!("{} {}", client.entry, client.scopes.join(" "))
}

impl Grant {
    /// The process's token cell for `client`'s grant, made on first use.
    pub fn shared(client: Client) -> Arc<Grant> {
        let key = cell_key(&client);
        let mut cells = CELLS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cells.retain(|(_, cell)| cell.strong_count() > 0);
        if let Some(cell) = cells
            .iter()
            .find(|(known, _)| *known == key)
            .and_then(|(_, cell)| cell.upgrade())
        {
            return cell;
        }
        let cell = Arc::new(Grant {
            client,
            cell: tokio::sync::Mutex::new(Cell::default()),
            refreshes: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        });
        cells.push((key, Arc::downgrade(&cell)));
        cell
    }

    /// After someone signed in to (or out of) `client`'s grant: cells in use forget their
    /// refusal and read the refresh token again.
    pub(crate) fn forget_in_cells(client: &Client) {
        forget_refusal(&client.entry);
        let cells: Vec<Arc<Grant>> = CELLS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(key, _)| key.starts_with(&format!("{} ", client.entry)))
            .filter_map(|(_, cell)| cell.upgrade())
            .collect();
        for cell in cells {
            cell.generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Locks the state, dropping it when a sign-in or sign-out made it stale.
    async fn state(&self) -> tokio::sync::MutexGuard<'_, Cell> {
        let mut cell = self.cell.lock().await;
        let generation = self.generation.load(Ordering::SeqCst);
        if cell.generation != generation {
            *cell = Cell {
                generation,
                ..Cell::default()
            };
        }
        cell
    }

    /// The grant's name in the campaign.
    pub fn name(&self) -> &str {
        &self.client.grant
    }

    /// How many refreshes this cell made (for tests and the log).
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::SeqCst)
    }

    /// An access token valid for at least [`MIN_LIFE`] more, refreshed when needed.
    pub async fn access_token(&self) -> Result<String, OAuth2Error> {
        let mut cell = self.state().await;
        if let Some(access) = &cell.access
            && access.expires_at > Instant::now() + MIN_LIFE
        {
            return Ok(access.token.clone());
        }
        self.refresh_locked(&mut cell).await
    }

    /// A server refused `token`, which we believed valid (revoked early, keys rotated): refresh
    /// once and return the new token. When another session already replaced it, that one is
    /// returned without asking the provider again.
    pub async fn rejected(&self, token: &str) -> Result<String, OAuth2Error> {
        let mut cell = self.state().await;
        match &cell.access {
            Some(access)
                if access.token != token && access.expires_at > Instant::now() + MIN_LIFE =>
            {
                Ok(access.token.clone())
            }
            _ => {
                cell.access = None;
                self.refresh_locked(&mut cell).await
            }
        }
    }

    /// Refreshes with the refresh token the keyring holds now. The window, a `herald send` and
    /// the cells of this process may share the grant, and a provider that rotates refresh
    /// tokens refuses one already used (and may then revoke the grant, RFC 9700 §4.14.2): so
    /// refreshes take turns (the lock, across processes) and each reads the token under it,
    /// using the keyring's when it differs from the one this cell last saw.
    async fn refresh_locked(&self, cell: &mut Cell) -> Result<String, OAuth2Error> {
        // A task of its own: a session dropped mid-refresh (a run pausing or ending) must not
        // drop the turn between the provider rotating the refresh token and the keyring
        // keeping the new one, or the next turn would read the spent one.
        let client = self.client.clone();
        let kept = cell.refresh.clone();
        let refused = cell.refused.is_some().then(|| kept.clone()).flatten();
        let turn = tokio::spawn(async move { client.refresh_in_turn(kept, refused).await });
        let outcome = turn.await.unwrap_or_else(|error| Turn::Failed {
            used: cell.refresh.clone().unwrap_or_default(),
            error: OAuth2Error::Unreachable {
                grant: self.client.grant.clone(),
                reason: format!("the refresh stopped: {error}"),
            },
        });
        match outcome {
            Turn::StillRefused => {
                Err(cell
                    .refused
                    .clone()
                    .unwrap_or_else(|| OAuth2Error::NotSignedIn {
                        grant: self.client.grant.clone(),
                    }))
            }
            Turn::NotSignedIn => Err(OAuth2Error::NotSignedIn {
                grant: self.client.grant.clone(),
            }),
            Turn::Refreshed { used, tokens } => {
                self.refreshes.fetch_add(1, Ordering::SeqCst);
                tracing::info!(grant = %self.client.grant, "access token refreshed");
                *cell = Cell {
                    generation: cell.generation,
                    refresh: Some(tokens.refresh.unwrap_or(used)),
                    access: Some(Access {
                        token: tokens.access.clone(),
                        expires_at: tokens.expires_at,
                    }),
                    refused: None,
                };
                Ok(tokens.access)
            }
            Turn::Failed { used, error } => {
                if error.needs_user() {
                    cell.refused = Some(error.clone());
                    cell.refresh = Some(used);
                }
                if let OAuth2Error::SignInAgain { reason, .. } = &error {
                    remember_refusal(&self.client.entry, reason);
                }
                Err(error)
            }
        }
    }
}

/// What one turn at refreshing a grant found and did.
enum Turn {
    /// The keyring still holds the refresh token the provider refused before.
    StillRefused,
    NotSignedIn,
    Refreshed {
        used: String,
        tokens: Tokens,
    },
    Failed {
        used: String,
        error: OAuth2Error,
    },
}

impl Client {
    /// One turn at refreshing: waits for the other processes and cells refreshing this grant,
    /// reads the refresh token the keyring holds now (else `kept`, the one last used here, if
    /// the keyring cannot be read for a moment) and uses it; the rotated one is saved before
    /// the turn ends. `refused`: the token the provider refused last time, not to be sent again.
    async fn refresh_in_turn(&self, kept: Option<String>, refused: Option<String>) -> Turn {
        let _turn = self.lock_for_refresh().await;
        let stored = self.stored_refresh().await;
        if refused.is_some() && (stored.is_none() || stored == refused) {
            return Turn::StillRefused;
        }
        let kept = kept.filter(|_| refused.is_none());
        if stored.is_some() && kept.is_some() && stored != kept {
            tracing::debug!(grant = %self.grant, "the keyring holds a newer refresh token; using it");
        }
        let Some(used) = stored.or(kept) else {
            return Turn::NotSignedIn;
        };
        match self.refresh(&used).await {
            Ok(tokens) => Turn::Refreshed { used, tokens },
            Err(error) => Turn::Failed { used, error },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_token_names_who_signed_in() {
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"sub":"123","email":"news@acme.example"}"#);
        assert_eq!(
            who(Some(&format!("h.{claims}.s"))).as_deref(),
            Some("news@acme.example")
        );
        assert_eq!(who(Some("not a jwt")), None);
        assert_eq!(who(None), None);
    }

    #[test]
    fn refusals_say_what_the_user_must_do() {
        let again = OAuth2Error::SignInAgain {
            grant: "m365".into(),
            reason: describe("invalid_grant", "AADSTS70008: expired\r\nTrace ID: x"),
        };
        assert_eq!(
            again.to_string(),
            "Sign in again to \"m365\": the provider no longer accepts its sign-in (invalid_grant: AADSTS70008: expired)"
        );
        assert!(again.needs_user());
        assert!(
            !OAuth2Error::Unreachable {
                grant: "g".into(),
                reason: "timeout".into()
            }
            .needs_user()
        );
    }
}
