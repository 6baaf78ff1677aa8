//! `herald signin CAMPAIGN.toml --oauth2 NAME [--device] [--no-browser]` and `herald signout`
//! (issue #22): signs in to a campaign's `[oauth2.NAME]` grant through the browser (or prints
//! the URL) or with a device code, and says who signed in and what was granted; signing out
//! forgets the refresh token. What happens is decided in `app::signin` (the window's sign-in
//! calls the same functions); this file only talks.

use std::path::Path;

use anyhow::Result;

use super::exit;
use crate::app::signin::{self, BROWSER_LIMIT, Cancel, SignedIn};
use crate::campaign::Campaign;

pub fn signin(campaign_path: &Path, grant: &str, device: bool, no_browser: bool) -> Result<i32> {
    let campaign = Campaign::load_for_reading(campaign_path)?;
    let signed_in = if device {
        signin::sign_in_with_code(&campaign, grant, |code| {
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
        })?
    } else {
        let show = |url: &str| {
            if !no_browser && signin::open_browser(url) {
                println!("Your browser opened the sign-in page of {grant}. If it did not, open:");
            } else {
                println!("To sign in to {grant}, open this address in a browser on this computer:");
            }
            println!("{url}");
        };
        signin::sign_in_with_browser(&campaign, grant, show, &Cancel::default(), BROWSER_LIMIT)?
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
    let campaign = Campaign::load_for_reading(campaign_path)?;
    if signin::sign_out(&campaign, grant)? {
        println!("Signed out of {grant}: its sign-in is no longer kept on this computer.");
    } else {
        println!("Nobody was signed in to {grant} on this computer.");
    }
    Ok(exit::DONE)
}
