//! `herald unsubscribe-server`, `herald unsubscribes secret|pull`, and the pull that `send`
//! runs first (issue #15): terminal output only; the work is in `crate::unsubscribe`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;

use super::{exit, load_for_reading, open_store};
use crate::campaign::Campaign;
use crate::unsubscribe::{self, pull::PullReport, server::Server};

#[derive(Debug, Subcommand)]
pub enum UnsubscribesCommand {
    /// Print the key to install on the unsubscribe endpoint (as DIR/unsubscribe.key).
    Secret,
    /// Pull new unsubscribes from the campaign's endpoint into the suppression list.
    Pull {
        #[arg(value_name = "CAMPAIGN.toml")]
        campaign: PathBuf,
    },
}

/// How many connections the endpoint keeps and how long each has for its request head.
pub struct Bounds {
    pub max_connections: usize,
    pub head_timeout: std::time::Duration,
}

/// `herald unsubscribe-server --listen ADDR --data DIR [--cert FILE --key FILE]
/// [--token-env NAME] [--max-connections N] [--head-timeout-secs SECS]`.
pub fn serve(
    listen: &str,
    data: &Path,
    tls: Option<(&Path, &Path)>,
    token_env: Option<&str>,
    bounds: Bounds,
) -> Result<i32> {
    let mut server = Server::bind(listen, data)?
        .with_max_connections(bounds.max_connections)
        .with_head_timeout(bounds.head_timeout);
    if let Some(name) = token_env {
        server = server.with_bearer_from_env(name)?;
    }
    if let Some((cert, key)) = tls {
        server = server.with_certificate(cert, key)?;
    }
    let addr = server.local_addr()?;
    // The one line a supervisor or a test reads to learn the port (with --listen …:0).
    println!("listening on {}://{addr}", server.scheme());
    std::io::stdout().flush()?;
    server.run_until_signal()?;
    Ok(exit::DONE)
}

pub fn unsubscribes(db: Option<&Path>, command: UnsubscribesCommand) -> Result<i32> {
    match command {
        UnsubscribesCommand::Secret => {
            let mut store = open_store(db)?;
            let key = store.secret(crate::token::UNSUBSCRIBE_KEY)?;
            println!("{}", unsubscribe::key_to_hex(&key));
            Ok(exit::DONE)
        }
        UnsubscribesCommand::Pull { campaign } => {
            let campaign = load_for_reading(&campaign)?;
            if campaign
                .unsubscribe
                .as_ref()
                .and_then(|spec| spec.endpoint.as_ref())
                .is_none()
            {
                anyhow::bail!("the campaign names no endpoint to pull from (unsubscribe.endpoint)");
            }
            let mut store = open_store(db)?;
            let report = unsubscribe::pull::pull(campaign.unsubscribe.as_ref(), &mut store)?;
            if let Some(report) = report {
                println!("{}", report_line(&report));
            }
            Ok(exit::DONE)
        }
    }
}

fn report_line(report: &PullReport) -> String {
    format!(
        "pulled {} unsubscribe(s) from {}: {} newly suppressed, {} already, {} unknown here",
        report.records,
        report.endpoint,
        report.applied.suppressed,
        report.applied.already,
        report.applied.unknown
    )
}

/// The pull before a send. `Ok(None)` means go on; `Ok(Some(code))` means stop with that code.
pub fn before_send(db: &Path, campaign: &Campaign, no_pull: bool) -> Result<Option<i32>> {
    let Some(endpoint) = campaign
        .unsubscribe
        .as_ref()
        .and_then(|spec| spec.endpoint.as_deref())
    else {
        return Ok(None);
    };
    if no_pull {
        eprintln!("herald: warning: not pulling unsubscribes from {endpoint} (--no-pull)");
        return Ok(None);
    }
    let mut store = crate::store::Store::open(db)
        .with_context(|| format!("opening the state database {}", db.display()))?;
    match unsubscribe::pull::pull(campaign.unsubscribe.as_ref(), &mut store) {
        Ok(Some(report)) => {
            println!("{}", report_line(&report));
            Ok(None)
        }
        Ok(None) => Ok(None),
        Err(error) => {
            eprintln!("herald: warning: {error}");
            eprintln!(
                "herald: not sending, since people who unsubscribed there would be mailed; fix the endpoint, or send anyway with --no-pull"
            );
            Ok(Some(exit::ERROR))
        }
    }
}
