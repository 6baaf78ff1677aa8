//! `herald password NAME`: keeps a relay password in the keyring under the name the campaign's
//! `password_env` gives, as the window's "Keep in keyring" does, for machines without a window.
//! Reads the password from standard input (hidden when typed at a terminal) and says which
//! store took it; never prints the password.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};

use super::exit;
use crate::credentials as secrets;

pub fn password(name: &str) -> Result<i32> {
    let name = name.trim();
    if name.is_empty() {
        bail!("give the name the campaign's password_env uses, e.g. PRIMARY_SMTP_PASSWORD");
    }
    let stdin = std::io::stdin();
    let typed = stdin.is_terminal();
    if typed {
        eprint!("Password for {name}: ");
        let _ = std::io::stderr().flush();
        set_echo(false);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if typed {
        set_echo(true);
        eprintln!();
    }
    read.context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("no password given on standard input; nothing was stored");
    }
    let store = secrets::store(name, password).map_err(anyhow::Error::msg)?;
    println!("{name}: {}", store.saved_text());
    if !store.survives_reboot() {
        eprintln!(
            "herald: a reboot forgets it; start GNOME Keyring or KWallet (a Secret Service) and store it again to keep it"
        );
    }
    Ok(exit::DONE)
}

/// Turns the terminal's echo off or on with stty, so a typed password is not shown.
fn set_echo(on: bool) {
    let _ = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status();
}
