//! The headless commands (`check`, `import`, `status`, `send`, `resend`, `preview`,
//! `test-send`, `password`, `signin`, `signout`, `unsubscribe-server`, `unsubscribes`) and their terminal
//! output. The only module that prints to stdout. Never holds logic the window also needs: that
//! lives in the engine, and both call it.
#![allow(clippy::print_stdout)]

mod bounces;
mod deliverability;
mod password;
mod signin;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::app;
use crate::app::{Counts, Database, RecipientRef, ResendFilter};
use crate::campaign::Campaign;
use crate::engine::{Engine, RunOptions, RunState};

mod unsubscribe;

/// Exit codes of the contract in ARCHITECTURE.md.
pub mod exit {
    /// Done: every recipient sent, failed or skipped (or the command succeeded).
    pub const DONE: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const USAGE: i32 = 2;
    /// Stopped by SIGINT/SIGTERM after a graceful stop; `send` again resumes.
    pub const INTERRUPTED: i32 = 3;
}

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "A bulk mailer that never loses track of who got what.",
    long_about = "A bulk mailer that never loses track of who got what.\n\n\
                  Without a command, opens the window (on CAMPAIGN.toml if given)."
)]
pub struct Cli {
    /// The state database (default: herald.db in your data directory).
    #[arg(long, global = true, env = "HERALD_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// A campaign file to open in the window.
    #[arg(value_name = "CAMPAIGN.toml")]
    pub campaign: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the campaign, render every message and check its DNS (SPF, DKIM, DMARC,
    /// reverse DNS); sends nothing. Exit 1 listing every problem.
    Check {
        #[arg(value_name = "CAMPAIGN.toml")]
        campaign: PathBuf,
        /// Print one JSON object: the problems, warnings, counts and DNS findings.
        #[arg(long)]
        json: bool,
        /// Report DNS problems without counting them as problems (exit 0 if nothing else is wrong).
        #[arg(long)]
        ignore_dns: bool,
    },
    /// Import (or re-import) the recipient list into the state database.
    Import {
        #[arg(value_name = "CAMPAIGN.toml")]
        campaign: PathBuf,
    },
    /// Counts of recipients per state.
    Status {
        #[arg(value_name = "CAMPAIGN.toml")]
        campaign: PathBuf,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Import on first run, then send or resume until nothing is pending.
    Send {
        #[arg(value_name = "CAMPAIGN.toml")]
        campaign: PathBuf,
        /// Send without first reading the [bounces] mailbox or pulling unsubscribes from the
        /// [unsubscribe] endpoint.
        #[arg(long)]
        no_pull: bool,
        /// Send even when the DNS check finds SPF, DKIM, DMARC or reverse DNS problems.
        #[arg(long)]
        ignore_dns: bool,
    },
    /// Put failed (and uncertain) recipients back to pending, then send.
    Resend {
        #[arg(value_name = "CAMPAIGN.toml")]
        campaign: PathBuf,
        /// Only rows whose reply matches, like 550, 4.*, 5.7.* (repeatable).
        #[arg(long = "code", value_name = "PATTERN")]
        codes: Vec<String>,
        /// Only rows last tried through this route (relay name or MX host).
        #[arg(long)]
        route: Option<String>,
        /// Only recipients of this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Leave uncertain rows alone (by default they are resent too).
        #[arg(long)]
        failed_only: bool,
        /// Also resend rows whose address was refused as dead ("no such user", 5.1.x) and put
        /// on the suppression list for it; takes those addresses off the list (issue #21).
        #[arg(long)]
        include_hard: bool,
        /// Send without first reading the [bounces] mailbox or pulling unsubscribes from the
        /// [unsubscribe] endpoint.
        #[arg(long)]
        no_pull: bool,
        /// Send even when the DNS check finds SPF, DKIM, DMARC or reverse DNS problems.
        #[arg(long)]
        ignore_dns: bool,
    },
    /// Print one recipient's message exactly as it will be sent, with a summary.
    Preview {
        #[arg(value_name = "CAMPAIGN.toml")]
        campaign: PathBuf,
        /// Which recipient: its number in the list (1 = first) or its address.
        #[arg(long, value_name = "N|EMAIL", default_value = "1")]
        recipient: String,
        /// Print only the summary and the text part, not the raw message.
        #[arg(long)]
        summary: bool,
    },
    /// Read the campaign's bounce mailbox ([bounces]) and apply what came back.
    Bounces {
        #[arg(value_name = "CAMPAIGN.toml")]
        campaign: PathBuf,
        /// Print one JSON object of counts.
        #[arg(long)]
        json: bool,
        /// Apply the unverified reports held from earlier checks (listed by `herald bounces`),
        /// without reading the mailbox again.
        #[arg(long)]
        apply_unverified: bool,
    },
    /// The suppression list every campaign honors.
    Suppression {
        #[command(subcommand)]
        action: bounces::SuppressionAction,
    },
    /// Keep a relay password in the keyring under NAME (the relay's password_env), read from
    /// standard input. Says where it went: the Secret Service (kept), or until reboot.
    Password {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Sign in to the campaign's [oauth2.NAME] grant (Microsoft, Google or an OpenID
    /// provider) so its relays and mailbox can sign in without a password. Opens the browser.
    Signin {
        #[arg(value_name = "CAMPAIGN.toml")]
        campaign: PathBuf,
        /// The [oauth2.NAME] section to sign in to.
        #[arg(long = "oauth2", value_name = "NAME")]
        grant: String,
        /// Sign in with a code typed on any device (RFC 8628), for machines without a browser.
        #[arg(long)]
        device: bool,
        /// Print the sign-in address instead of opening the browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// Forget the sign-in of the campaign's [oauth2.NAME] grant on this computer.
    Signout {
        #[arg(value_name = "CAMPAIGN.toml")]
        campaign: PathBuf,
        #[arg(long = "oauth2", value_name = "NAME")]
        grant: String,
    },
    /// Send one recipient's message to ADDRESS through the campaign's first reachable relay.
    TestSend {
        #[arg(value_name = "CAMPAIGN.toml")]
        campaign: PathBuf,
        /// Where the test message goes (the headers stay as the recipient will get them).
        #[arg(long, value_name = "ADDRESS")]
        to: String,
        /// Which recipient's message: its number in the list (1 = first) or its address.
        #[arg(long, value_name = "N|EMAIL", default_value = "1")]
        recipient: String,
    },
    /// Serve one-click unsubscribe links (RFC 8058) and the records Herald pulls.
    UnsubscribeServer {
        /// Where to listen, e.g. 127.0.0.1:8025 behind a reverse proxy.
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// The folder holding unsubscribe.key and the endpoint's database.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Serve HTTPS with this certificate chain (PEM, e.g. fullchain.pem) instead of plain
        /// HTTP behind a reverse proxy; needs --key.
        #[arg(long, value_name = "FILE", requires = "key")]
        cert: Option<PathBuf>,
        /// The certificate's private key (PEM); needs --cert.
        #[arg(long, value_name = "FILE", requires = "cert")]
        key: Option<PathBuf>,
        /// Take the pull's bearer secret from this environment variable (at least 24
        /// characters; Herald names the same value with [unsubscribe] token_env) instead of
        /// deriving it from the key.
        #[arg(long, value_name = "NAME")]
        token_env: Option<String>,
        /// Open connections before each new one closes the oldest idle one (slow or silent
        /// clients lose their place; the server never stops accepting).
        #[arg(long, value_name = "N", default_value_t = crate::unsubscribe::server::MAX_CONNECTIONS)]
        max_connections: usize,
        /// Seconds a connection has to deliver a whole request head (after its TLS handshake or
        /// its previous answer) before it is closed.
        #[arg(long, value_name = "SECS", default_value_t = crate::unsubscribe::server::HEAD_TIMEOUT.as_secs())]
        head_timeout_secs: u64,
    },
    /// The unsubscribe endpoint's key, and pulling its records.
    Unsubscribes {
        #[command(subcommand)]
        command: unsubscribe::UnsubscribesCommand,
    },
}

/// Runs a parsed command line; returns the process exit code.
// Long because it is the table of commands: one arm per command, each calling its function.
pub fn run(cli: Cli) -> i32 {
    let Some(command) = cli.command else {
        return exit::USAGE;
    };
    let result = match command {
        Command::Check {
            campaign,
            json,
            ignore_dns,
        } => check(&campaign, json, ignore_dns),
        Command::Import { campaign } => import(cli.db.as_deref(), &campaign),
        Command::Password { name } => password::password(&name),
        Command::Signin {
            campaign,
            grant,
            device,
            no_browser,
        } => signin::signin(&campaign, &grant, device, no_browser),
        Command::Signout { campaign, grant } => signin::signout(&campaign, &grant),
        Command::Status { campaign, json } => status(cli.db.as_deref(), &campaign, json),
        Command::Send {
            campaign,
            no_pull,
            ignore_dns,
        } => send(cli.db.as_deref(), &campaign, None, no_pull, ignore_dns),
        Command::Resend {
            campaign,
            codes,
            route,
            domain,
            failed_only,
            include_hard,
            no_pull,
            ignore_dns,
        } => {
            let filter = ResendFilter {
                include_failed: true,
                include_uncertain: !failed_only,
                include_hard,
                reply_patterns: codes,
                route,
                domain: domain.map(|domain| domain.to_ascii_lowercase()),
            };
            send(
                cli.db.as_deref(),
                &campaign,
                Some(filter),
                no_pull,
                ignore_dns,
            )
        }
        Command::Bounces {
            campaign,
            json,
            apply_unverified,
        } => bounces::bounces(cli.db.as_deref(), &campaign, json, apply_unverified),
        Command::Suppression { action } => bounces::suppression(cli.db.as_deref(), action),
        Command::Preview {
            campaign,
            recipient,
            summary,
        } => match recipient_ref(&recipient) {
            Some(which) => preview(cli.db.as_deref(), &campaign, &which, summary),
            None => return usage_error(&recipient),
        },
        Command::TestSend {
            campaign,
            to,
            recipient,
        } => match recipient_ref(&recipient) {
            Some(which) => test_send(cli.db.as_deref(), &campaign, which, &to),
            None => return usage_error(&recipient),
        },
        Command::UnsubscribeServer {
            listen,
            data,
            cert,
            key,
            token_env,
            max_connections,
            head_timeout_secs,
        } => unsubscribe::serve(
            &listen,
            &data,
            cert.as_deref().zip(key.as_deref()),
            token_env.as_deref(),
            unsubscribe::Bounds {
                max_connections,
                head_timeout: std::time::Duration::from_secs(head_timeout_secs),
            },
        ),
        Command::Unsubscribes { command } => unsubscribe::unsubscribes(cli.db.as_deref(), command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("herald: {error:#}");
            exit::ERROR
        }
    }
}

/// `--recipient`: a 1-based number or an address.
fn recipient_ref(text: &str) -> Option<RecipientRef> {
    let text = text.trim();
    if text.contains('@') {
        return Some(RecipientRef::Email(text.to_string()));
    }
    match text.parse::<u64>() {
        Ok(number) if number >= 1 => Some(RecipientRef::Index(number - 1)),
        _ => None,
    }
}

fn usage_error(recipient: &str) -> i32 {
    eprintln!("herald: --recipient takes a number from 1 or an address, not \"{recipient}\"");
    exit::USAGE
}

fn preview(db: Option<&Path>, path: &Path, which: &RecipientRef, summary: bool) -> Result<i32> {
    let campaign = load(path)?;
    let preview = open_database(db)?.preview(&campaign, which)?;
    let mut out = std::io::stdout().lock();
    if let Some(reason) = &preview.skipped {
        writeln!(
            out,
            "recipient {} ({}) is skipped by the personalization script: {reason}",
            preview.index + 1,
            preview.email
        )?;
        return Ok(exit::DONE);
    }
    if !summary {
        out.write_all(&preview.raw)?;
        writeln!(out)?;
        writeln!(out, "----")?;
    }
    if preview.sample {
        writeln!(
            out,
            "sample recipient ({}): no list is imported yet, so each field shows its name; {} bytes",
            preview.email, preview.size_bytes
        )?;
    } else {
        writeln!(
            out,
            "recipient {} ({}): {} bytes",
            preview.index + 1,
            preview.email,
            preview.size_bytes
        )?;
    }
    writeln!(out, "subject: {}", preview.subject)?;
    writeln!(
        out,
        "envelope: {} -> {}",
        preview.envelope_from, preview.envelope_to
    )?;
    let parts = match &preview.html {
        Some(_) => "text + HTML",
        None => "text only",
    };
    writeln!(out, "parts: {parts}")?;
    for file in &preview.attachments {
        writeln!(
            out,
            "{}: {} ({}, {} bytes)",
            if file.inline { "inline" } else { "attachment" },
            file.name,
            file.content_type,
            file.size_bytes
        )?;
    }
    if summary {
        writeln!(out, "----\n{}", preview.text)?;
    }
    Ok(exit::DONE)
}

fn test_send(db: Option<&Path>, path: &Path, which: RecipientRef, to: &str) -> Result<i32> {
    let campaign = load(path)?;
    let db_path = database_path(db)?;
    let engine = Engine::new()?;
    let options = RunOptions::default();
    let sent = app::test_send::test_send(
        &engine,
        &campaign,
        &db_path,
        &which,
        to,
        options.passwords,
        options.front,
    )?;
    println!(
        "sent {} ({} bytes) to {} through {}: {} {}",
        sent.message_id,
        sent.size_bytes,
        sent.to,
        sent.route,
        sent.reply
            .code
            .map(|code| code.to_string())
            .unwrap_or_default(),
        sent.reply.text
    );
    Ok(exit::DONE)
}

fn load(path: &Path) -> Result<Campaign> {
    Ok(Campaign::load_with(
        path,
        &crate::credentials::is_available,
    )?)
}

fn load_for_reading(path: &Path) -> Result<Campaign> {
    Ok(Campaign::load_for_reading(path)?)
}

/// The database path: `--db`/`HERALD_DB`, else herald.db in the user's data directory.
pub fn database_path(db: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = db {
        return Ok(path.to_path_buf());
    }
    app::default_path().context("could not find your data directory; pass --db PATH")
}

fn open_database(db: Option<&Path>) -> Result<Database> {
    let path = database_path(db)?;
    Database::open(&path).with_context(|| format!("opening the state database {}", path.display()))
}

fn check(path: &Path, json: bool, ignore_dns: bool) -> Result<i32> {
    let campaign = load(path)?;
    let report = app::check(&campaign);
    let findings = app::deliverability::findings(&campaign);
    let dns_problems = app::deliverability::stopping(&findings, ignore_dns);
    let problems = report.problems.len() + dns_problems;
    let mut out = std::io::stdout().lock();
    if json {
        let object = serde_json::json!({
            "ok": problems == 0,
            "problems": report.problems,
            "warnings": report.warnings,
            "recipients": report.recipients,
            "rendered": report.rendered,
            "skipped": report.skipped,
            "largest_bytes": report.largest_bytes,
            "email_column": report.email_column,
            "format": report.format,
            "dns": deliverability::findings_json(&findings),
        });
        writeln!(out, "{object}")?;
        return Ok(if problems == 0 {
            exit::DONE
        } else {
            exit::ERROR
        });
    }
    if let (Some(format), Some(column)) = (&report.format, &report.email_column) {
        writeln!(out, "list: {format}; email column: {column}")?;
    }
    for warning in &report.warnings {
        writeln!(out, "warning: {warning}")?;
    }
    for problem in &report.problems {
        writeln!(out, "problem: {problem}")?;
    }
    deliverability::write_findings(&mut out, &findings)?;
    if problems == 0 {
        writeln!(
            out,
            "ok: {} recipient(s), {} message(s) rendered, {} skipped; largest message {} KB",
            report.recipients,
            report.rendered,
            report.skipped,
            report.largest_bytes.div_ceil(1024)
        )?;
        Ok(exit::DONE)
    } else {
        writeln!(out, "{problems} problem(s) found; nothing was sent")?;
        Ok(exit::ERROR)
    }
}

fn import(db: Option<&Path>, path: &Path) -> Result<i32> {
    let campaign = load_for_reading(path)?;
    let (report, counts) = open_database(db)?.import(&campaign)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "list: {}; email column: {}",
        report.format, report.email_column
    )?;
    writeln!(
        out,
        "imported {} row(s): {} new, {} invalid, {} duplicate(s), {} malformed; fields: {}",
        report.rows,
        report.added,
        report.invalid,
        report.duplicates,
        report.malformed,
        if report.columns.is_empty() {
            "none".to_string()
        } else {
            report.columns.join(", ")
        }
    )?;
    for warning in report.warnings() {
        writeln!(out, "warning: {warning}")?;
    }
    if report.suppression_entries > 0 || report.suppressed > 0 {
        writeln!(
            out,
            "suppression list: {} entr(ies); {} recipient(s) skipped as suppressed",
            report.suppression_entries, report.suppressed
        )?;
    }
    writeln!(out, "{}", counts_line(&counts))?;
    Ok(exit::DONE)
}

fn status(db: Option<&Path>, path: &Path, json: bool) -> Result<i32> {
    let campaign = load_for_reading(path)?;
    let db_path = database_path(db)?;
    // No database yet means nothing imported: say so without creating one.
    let (counts, feedback) = if db_path.exists() {
        open_database(Some(&db_path))?.status(&campaign)?
    } else {
        Default::default()
    };
    let mut out = std::io::stdout().lock();
    if json {
        // Issue #13: what came back, after the contract's keys.
        let mut object = counts_json(&counts);
        object.pop();
        writeln!(
            out,
            "{object},\"bounced\":{},\"complained\":{},\"unsubscribed\":{}}}",
            counts.bounced, feedback.complained, feedback.unsubscribed
        )?;
    } else {
        for state in app::State::ALL {
            writeln!(out, "{:<10} {:>9}", state.as_str(), counts.get(state))?;
        }
        writeln!(out, "{:<10} {:>9}", "total", counts.total())?;
        writeln!(out, "{:<10} {:>9}", "complained", feedback.complained)?;
        writeln!(out, "{:<10} {:>9}", "unsubscribed", feedback.unsubscribed)?;
        if feedback.unverified > 0 {
            writeln!(out, "{:<10} {:>9}", "unverified", feedback.unverified)?;
        }
    }
    Ok(exit::DONE)
}

/// The `status --json` object, keys in the contract's order.
pub fn counts_json(counts: &Counts) -> String {
    format!(
        "{{\"total\":{},\"pending\":{},\"sending\":{},\"deferred\":{},\"sent\":{},\"failed\":{},\"uncertain\":{},\"skipped\":{}}}",
        counts.total(),
        counts.pending,
        counts.sending,
        counts.deferred,
        counts.sent,
        counts.failed,
        counts.uncertain,
        counts.skipped
    )
}

pub fn counts_line(counts: &Counts) -> String {
    format!(
        "{} total: {} sent, {} failed, {} pending, {} deferred, {} uncertain, {} skipped",
        counts.total(),
        counts.sent,
        counts.failed,
        counts.pending,
        counts.deferred,
        counts.uncertain,
        counts.skipped
    )
}

// Long because it prints one run from start to end: the checks before it, the resend, the
// progress bar while it goes, the summary and the exit code the contract names.
fn send(
    db: Option<&Path>,
    path: &Path,
    resend: Option<ResendFilter>,
    no_pull: bool,
    ignore_dns: bool,
) -> Result<i32> {
    let campaign = load(path)?;
    let db_path = database_path(db)?;
    // Issue #23: what receivers will make of this mail, before any of it leaves.
    if let Some(code) = deliverability::before_send(&campaign, ignore_dns)? {
        return Ok(code);
    }
    // Yesterday's bounces and unsubscribes first, so this run skips them.
    if let Some(code) = before_send(&db_path, &campaign, no_pull)? {
        return Ok(code);
    }
    if let Some(filter) = resend {
        let mut database = open_database(Some(&db_path))?;
        let count = database.resend(&campaign, &filter)?;
        println!("{count} recipient(s) put back to pending");
        let hard = if filter.include_hard {
            0
        } else {
            database.hard_failed(&campaign)?
        };
        if hard > 0 {
            println!(
                "{hard} recipient(s) refused as dead addresses (no such user or domain) left out; --include-hard resends them"
            );
        }
    }
    let engine = Engine::new()?;
    let mut run = engine.start(campaign, &db_path, app::run_options());
    engine.stop_on_signals(&run);
    let bar = std::io::stdout().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40.cyan/blue} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut asked_to_stop = false;
    let last = loop {
        let progress = run.progress();
        if let Some(bar) = &bar {
            let counts = progress.counts;
            let done = counts.sent + counts.failed + counts.skipped + counts.uncertain;
            bar.set_length(counts.total());
            bar.set_position(done);
            let eta = progress
                .eta_secs()
                .map(|secs| format!(", ETA {}", human_secs(secs)))
                .unwrap_or_default();
            bar.set_message(format!(
                "{:.0} msg/s{eta} — {}",
                progress.rate_per_sec,
                progress.state.label()
            ));
        }
        if progress.state.is_over() {
            break run.wait();
        }
        if let RunState::Paused {
            reason: Some(reason),
            needs_user: true,
        } = &progress.state
            && !asked_to_stop
        {
            // Nobody can fix a password from here: stop cleanly and say what is wrong.
            eprintln!("herald: {reason}");
            run.stop();
            asked_to_stop = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if last.recovered_in_flight > 0 {
        println!(
            "note: {} recipient(s) were being sent when the previous run ended; their delivery is uncertain ({})",
            last.recovered_in_flight,
            if last.counts.uncertain > 0 {
                "held for you to resend or mark sent"
            } else {
                "sent again"
            }
        );
    }
    println!("{}: {}", last.state.label(), counts_line(&last.counts));
    Ok(match last.state {
        RunState::Finished => exit::DONE,
        RunState::Stopped if run.interrupted() => exit::INTERRUPTED,
        RunState::Stopped if asked_to_stop => exit::ERROR,
        RunState::Stopped => exit::INTERRUPTED,
        _ => exit::ERROR,
    })
}

/// The checks before a send (`app::presend`), printed. `Ok(None)` means go on; `Ok(Some(code))`
/// means stop with that code. `--no-pull` skips them, with a warning for each.
fn before_send(db_path: &Path, campaign: &Campaign, no_pull: bool) -> Result<Option<i32>> {
    let endpoint = campaign
        .unsubscribe
        .as_ref()
        .and_then(|spec| spec.endpoint.as_deref());
    if no_pull {
        if campaign.bounces.is_some() {
            eprintln!("herald: warning: not reading the bounce mailbox (--no-pull)");
        }
        if let Some(endpoint) = endpoint {
            eprintln!("herald: warning: not pulling unsubscribes from {endpoint} (--no-pull)");
        }
        return Ok(None);
    }
    if campaign.bounces.is_none() && endpoint.is_none() {
        return Ok(None);
    }
    let found = open_database(Some(db_path))?.before_send(campaign);
    match &found.mailbox {
        Some(Ok(summary)) => {
            println!("bounce mailbox: {}", bounces::summary_line(summary));
            if summary.unverified > 0 {
                println!(
                    "note: {} report(s) do not prove they concern your mail and were not applied; see herald bounces",
                    summary.unverified
                );
            }
            for warning in &summary.warnings {
                println!("warning: {warning}");
            }
            for passed in &summary.passed {
                println!("passed: {passed}");
            }
        }
        Some(Err(error)) => {
            eprintln!("herald: the bounce mailbox cannot be read: {error}");
            eprintln!(
                "herald: not sending, since people whose unsubscribes, complaints or bounces wait there would be mailed; fix [bounces], or send anyway with --no-pull"
            );
        }
        None => {}
    }
    match &found.pulled {
        Some(Ok(report)) => println!("{}", unsubscribe::report_line(report)),
        Some(Err(error)) => {
            eprintln!("herald: warning: {error}");
            eprintln!(
                "herald: not sending, since people who unsubscribed there would be mailed; fix the endpoint, or send anyway with --no-pull"
            );
        }
        None => {}
    }
    Ok(found.failed().then_some(exit::ERROR))
}

fn human_secs(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3_600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3_600, (secs % 3_600) / 60),
    }
}
