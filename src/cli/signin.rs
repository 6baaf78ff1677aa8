//! `herald signin CAMPAIGN.toml --oauth2 NAME [--device] [--no-browser]` and `herald signout`
//! (issue #22): signs in to a campaign's `[oauth2.NAME]` grant through the browser (or prints
//! the URL) or with a device code, and says who signed in and what was granted; signing out
//! forgets the refresh token. The flows themselves live in `oauth2`; this file only talks.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};

use super::exit;
use crate::campaign::Campaign;
use crate::oauth2::{self, Client, DeviceSignIn, LoopbackSignIn, SignedIn};

/// How long the browser sign-in may take before the listener gives up.
const BROWSER_LIMIT: Duration = Duration::from_secs(10 * 60);

fn client(campaign_path: &Path, grant: &str) -> Result<(Campaign, Client)> {
    let campaign = Campaign::load_for_reading(campaign_path)?;
    if campaign.grant(grant).is_none() {
        let known: Vec<&str> = campaign.oauth2.iter().map(|g| g.name.as_str()).collect();
        bail!(
            "the campaign has no [oauth2.{grant}] section (it has: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    let client = Client::for_campaign(&campaign, grant)?;
    Ok((campaign, client))
}

/// The username the grant signs in as (a relay's or the mailbox's), to pre-fill the account.
fn login_hint(campaign: &Campaign, grant: &str) -> Option<String> {
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

pub fn signin(campaign_path: &Path, grant: &str, device: bool, no_browser: bool) -> Result<i32> {
    let (campaign, client) = client(campaign_path, grant)?;
    let hint = login_hint(&campaign, grant);
    let signed_in = if device {
        oauth2::block_on(async {
            let signin = DeviceSignIn::start(client).await?;
            let code = &signin.code;
            println!(
                "To sign in to {grant}, open {} and enter the code {}",
                code.verification_uri, code.user_code
            );
            if let Some(complete) = &code.verification_uri_complete {
                println!("(or open {complete})");
            }
            println!(
                "Waiting for the sign-in (the code expires in {} minutes)…",
                code.expires_in_secs.div_ceil(60)
            );
            signin.finish().await
        })?
    } else {
        oauth2::block_on(async {
            let signin = LoopbackSignIn::start(client, hint.as_deref()).await?;
            let opened = !no_browser && oauth2::open_browser(signin.url()).is_ok();
            if opened {
                println!("Your browser opened the sign-in page of {grant}. If it did not, open:");
            } else {
                println!("To sign in to {grant}, open this address in a browser on this computer:");
            }
            println!("{}", signin.url());
            signin.finish(BROWSER_LIMIT).await
        })?
    };
    report(grant, &signed_in);
    Ok(exit::DONE)
}

fn report(grant: &str, signed_in: &SignedIn) {
    match &signed_in.who {
        Some(who) => println!("Signed in to {grant} as {who}."),
        None => println!("Signed in to {grant}."),
    }
    println!("Granted: {}", signed_in.scopes.join(" "));
    println!("The sign-in is kept: {}", signed_in.store.saved_text());
    if !signed_in.store.survives_reboot() {
        eprintln!(
            "herald: a reboot forgets this sign-in; start GNOME Keyring or KWallet (a Secret Service) and sign in again to keep it"
        );
    }
}

pub fn signout(campaign_path: &Path, grant: &str) -> Result<i32> {
    let (_, client) = client(campaign_path, grant)?;
    if client.sign_out() {
        println!("Signed out of {grant}: its sign-in is no longer kept on this computer.");
    } else {
        println!("Nobody was signed in to {grant} on this computer.");
    }
    Ok(exit::DONE)
}
