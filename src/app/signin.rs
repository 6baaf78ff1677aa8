//! Signing in to a campaign's OAuth2 grants (issue #22), the one place both front ends ask:
//! who is signed in to each `[oauth2.NAME]` (from the keyring, and whether the provider refused
//! the grant during this session: "Sign in again to NAME"), signing in through the browser (the
//! loopback flow, cancellable) or with a device code, and signing out. `herald signin` and the
//! window's "Sign in with Microsoft" call the same functions; the flows live in `oauth2`, this
//! file only decides which grant, which account to suggest and what to tell the user.
//! Blocking calls (the keyring, the sign-in itself): the window runs them on the service's
//! threads, never on its own.

use std::time::Duration;

use super::{AppError, ErrorKind};
use crate::campaign::{Campaign, OAuth2Provider};
use crate::oauth2::{self, Client, DeviceCode, DeviceSignIn, LoopbackSignIn, OAuth2Error};

pub use crate::oauth2::{BROWSER_LIMIT, Cancel, Front, SignedIn};

/// Whose sign-in page a grant opens: the button says "Sign in with Microsoft".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Microsoft,
    Google,
    /// Any OpenID provider (`issuer`).
    Other,
}

/// One grant of a campaign as the front ends show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantStatus {
    /// The `[oauth2.NAME]` section's name.
    pub grant: String,
    pub provider: Provider,
    /// A refresh token is kept on this computer.
    pub signed_in: bool,
    /// Who signed in, as the provider named them at the last sign-in.
    pub account: Option<String>,
    /// The provider refused the kept sign-in during this session (`invalid_grant`: revoked,
    /// password changed, consent withdrawn): why, in the provider's words.
    pub refused: Option<String>,
    /// Why signing in cannot start at all (a client secret or CA file missing).
    pub problem: Option<String>,
}

impl GrantStatus {
    /// The sign-in button's words.
    pub fn button(&self) -> &'static str {
        match self.provider {
            Provider::Microsoft => "Sign in with Microsoft",
            Provider::Google => "Sign in with Google",
            Provider::Other => "Sign in",
        }
    }

    /// Whether the grant needs the user before it can be used: nobody signed in, or the
    /// provider refused the sign-in kept.
    pub fn needs_sign_in(&self) -> bool {
        !self.signed_in || self.refused.is_some()
    }

    /// The sentence beside the button: who is signed in, or what the user must do.
    pub fn sentence(&self) -> String {
        let grant = &self.grant;
        if let Some(problem) = &self.problem {
            return problem.clone();
        }
        match (&self.refused, self.signed_in, &self.account) {
            (Some(reason), _, _) => format!(
                "Sign in again to {grant}: the provider no longer accepts its sign-in ({reason})."
            ),
            (None, false, _) => format!("Nobody is signed in to {grant} on this computer yet."),
            (None, true, Some(account)) => format!("Signed in to {grant} as {account}."),
            (None, true, None) => format!("Signed in to {grant}."),
        }
    }
}

/// An OAuth2 failure as the application's error: the provider out of reach is the network's,
/// the rest (nobody signed in, sign in again, refused settings) the user's.
pub fn error(failure: OAuth2Error) -> AppError {
    error_for(failure, Front::Cli)
}

/// [`error`], with the step a sign-in needs worded for `front` (the window's Sign in button,
/// or `herald signin`).
pub fn error_for(failure: OAuth2Error, front: Front) -> AppError {
    let kind = match failure {
        OAuth2Error::Unreachable { .. } => ErrorKind::Network,
        _ => ErrorKind::Credentials,
    };
    AppError::new(kind, failure.worded(front, std::path::Path::new("")))
}

/// The client of grant `grant`, or a sentence naming the grants the campaign has.
pub fn client(campaign: &Campaign, grant: &str) -> Result<Client, AppError> {
    if campaign.grant(grant).is_none() {
        let known: Vec<&str> = campaign.oauth2.iter().map(|g| g.name.as_str()).collect();
        return Err(AppError::new(
            ErrorKind::Campaign,
            format!(
                "the campaign has no [oauth2.{grant}] section (it has: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
    Client::for_campaign(campaign, grant).map_err(error)
}

/// The username the grant signs in as (a relay's or the mailbox's), to pre-fill the account
/// at the provider.
pub fn login_hint(campaign: &Campaign, grant: &str) -> Option<String> {
    campaign
        .relays
        .iter()
        .find(|relay| relay.oauth2.as_deref() == Some(grant))
        .and_then(|relay| relay.username.clone())
        .or_else(|| {
            campaign
                .bounces
                .as_ref()
                .filter(|bounces| bounces.oauth2.as_deref() == Some(grant))
                .map(|bounces| bounces.username.clone())
        })
}

/// Where each of the campaign's grants stands on this computer (reads the keyring).
pub fn statuses(campaign: &Campaign) -> Vec<GrantStatus> {
    campaign
        .oauth2
        .iter()
        .map(|spec| {
            let provider = match spec.provider {
                OAuth2Provider::Microsoft { .. } => Provider::Microsoft,
                OAuth2Provider::Google => Provider::Google,
                OAuth2Provider::Oidc { .. } => Provider::Other,
            };
            let mut status = GrantStatus {
                grant: spec.name.clone(),
                provider,
                signed_in: false,
                account: None,
                refused: None,
                problem: None,
            };
            match Client::for_campaign(campaign, &spec.name) {
                Ok(client) => {
                    status.signed_in = client.is_signed_in();
                    if status.signed_in {
                        status.account = client.account();
                        status.refused = client.refusal();
                    }
                }
                Err(error) => status.problem = Some(error.to_string()),
            }
            status
        })
        .collect()
}

/// The status of one grant, after a sign-in or sign-out.
pub fn status(campaign: &Campaign, grant: &str) -> Option<GrantStatus> {
    statuses(campaign)
        .into_iter()
        .find(|status| status.grant == grant)
}

/// Opens `url` in the system browser; false when none could be opened (the front end then
/// shows the address to open by hand).
pub fn open_browser(url: &str) -> bool {
    match oauth2::open_browser(url) {
        Ok(()) => true,
        Err(reason) => {
            tracing::info!(%reason, "no browser could be opened for the sign-in");
            false
        }
    }
}

/// Signs in to `grant` through the browser: binds the loopback listener, hands the address to
/// `show` (which opens the browser or prints it), then waits at most `limit` for the one
/// redirect, unless `cancel` stops it first. The refresh token is kept in the keyring.
pub fn sign_in_with_browser(
    campaign: &Campaign,
    grant: &str,
    show: impl FnOnce(&str),
    cancel: &Cancel,
    limit: Duration,
) -> Result<SignedIn, AppError> {
    let client = client(campaign, grant)?;
    let hint = login_hint(campaign, grant);
    oauth2::block_on(async {
        let signin = LoopbackSignIn::start(client, hint.as_deref()).await?;
        show(signin.url());
        signin.finish_unless(limit, cancel).await
    })
    .map_err(error)
}

/// Signs in to `grant` with a device code (RFC 8628): `show` tells the user where to go and
/// what to type; this polls until they did, refused, or the code expired.
pub fn sign_in_with_code(
    campaign: &Campaign,
    grant: &str,
    show: impl FnOnce(&DeviceCode),
) -> Result<SignedIn, AppError> {
    let client = client(campaign, grant)?;
    oauth2::block_on(async {
        let signin = DeviceSignIn::start(client).await?;
        show(&signin.code);
        signin.finish().await
    })
    .map_err(error)
}

/// Forgets `grant`'s refresh token on this computer; says whether one was kept.
pub fn sign_out(campaign: &Campaign, grant: &str) -> Result<bool, AppError> {
    Ok(client(campaign, grant)?.sign_out())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(signed_in: bool, account: Option<&str>, refused: Option<&str>) -> GrantStatus {
        GrantStatus {
            grant: "acme-m365".into(),
            provider: Provider::Microsoft,
            signed_in,
            account: account.map(str::to_string),
            refused: refused.map(str::to_string),
            problem: None,
        }
    }

    #[test]
    fn the_sentence_says_who_or_what_to_do() {
        let check = |status: GrantStatus, sentence: &str, needs: bool| {
            assert_eq!(status.sentence(), sentence);
            assert_eq!(status.needs_sign_in(), needs);
        };
        check(
            status(false, None, None),
            "Nobody is signed in to acme-m365 on this computer yet.",
            true,
        );
        check(
            status(true, Some("news@acme.example"), None),
            "Signed in to acme-m365 as news@acme.example.",
            false,
        );
        check(status(true, None, None), "Signed in to acme-m365.", false);
        check(
            status(true, Some("news@acme.example"), Some("invalid_grant")),
            "Sign in again to acme-m365: the provider no longer accepts its sign-in (invalid_grant).",
            true,
        );
        assert_eq!(status(true, None, None).button(), "Sign in with Microsoft");
    }
}
