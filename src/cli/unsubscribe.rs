//! `herald unsubscribe-server`, `herald unsubscribes secret|pull`, and the pull that `send`
//! runs first (issue #15): terminal output only; the work is in `crate::unsubscribe`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Subcommand;

use super::{exit, load_for_reading, open_database};
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

/// `herald unsubscribe-server --listen ADDR --data DIR [--cert FILE --key FILE]
/// [--token-env NAME]`.
pub fn serve(
    listen: &str,
    data: &Path,
    tls: Option<(&Path, &Path)>,
    token_env: Option<&str>,
) -> Result<i32> {
    let mut server = Server::bind(listen, data)?;
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
            let key = open_database(db)?.unsubscribe_key()?;
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
            let report = open_database(db)?.pull_unsubscribes(&campaign)?;
            if let Some(report) = report {
                println!("{}", report_line(&report));
            }
            Ok(exit::DONE)
        }
    }
}

pub(super) fn report_line(report: &PullReport) -> String {
    format!(
        "pulled {} unsubscribe(s) from {}: {} newly suppressed, {} already, {} unknown here",
        report.records,
        report.endpoint,
        report.applied.suppressed,
        report.applied.already,
        report.applied.unknown
    )
}
