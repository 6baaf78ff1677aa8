//! `herald bounces` (read the campaign's bounce mailbox and apply what came back) and
//! `herald suppression list | add | remove | export | import` (the list every campaign
//! honors). Terminal output only; the reading lives in `inbox`, the list in `store`.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Subcommand;

use crate::app::held::HeldId;
use crate::app::{Applied, HeldRow};
use crate::inbox::{self, Summary};

use super::{database_path, exit, load, open_database};

#[derive(Debug, Subcommand)]
pub enum SuppressionAction {
    /// Every suppressed address, newest first.
    List {
        /// Print one JSON array of objects.
        #[arg(long)]
        json: bool,
    },
    /// Suppress an address in every campaign.
    Add {
        #[arg(value_name = "ADDRESS")]
        address: String,
        /// Why (kept as the evidence).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Take an address off the list (recipients already skipped stay skipped).
    Remove {
        #[arg(value_name = "ADDRESS")]
        address: String,
    },
    /// Write the list as CSV: address, reason, at (RFC 3339 UTC), campaign, evidence.
    Export {
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
    },
    /// Add the addresses of a CSV file (an `address` or `email` column, else the first one;
    /// a `reason` column is kept when it names a known reason).
    Import {
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
    },
}

/// What `herald bounces` was told to do with held reports: the ids of `--apply` and
/// `--dismiss`, or `--apply-unverified` (every report held now, each named as it is applied).
pub struct Held {
    pub apply: Vec<String>,
    pub dismiss: Vec<String>,
    pub apply_all: bool,
}

/// `herald bounces CAMPAIGN.toml [--json] [--apply ID,…] [--dismiss ID,…] [--apply-unverified]`.
pub fn bounces(db: Option<&Path>, path: &Path, json: bool, held: Held) -> Result<i32> {
    let campaign = load(path)?;
    let Some(spec) = &campaign.bounces else {
        bail!("the campaign has no [bounces] section: add one naming the bounce mailbox");
    };
    let db_path = database_path(db)?;
    let apply = ids(&held.apply)?;
    let dismiss = ids(&held.dismiss)?;
    if !apply.is_empty() || !dismiss.is_empty() {
        // Only the reports the user names: the mailbox is not read again, and a report held
        // since the user last looked cannot be among them (issue #21).
        let (done, gone) =
            open_database(Some(&db_path))?.settle_held(&apply, &dismiss, spec.soft_limit)?;
        return print_applied(&done, gone, json);
    }
    if held.apply_all {
        // Issue #21 names this flag as the user saying so: every report held now is applied,
        // and each is printed with its evidence, so nothing is applied unnamed. Whoever wants
        // only the reports they reviewed names them with --apply.
        let mut database = open_database(Some(&db_path))?;
        let every: Vec<HeldId> = database.held_reports()?.iter().map(HeldId::of).collect();
        let (done, gone) = database.settle_held(&every, &[], spec.soft_limit)?;
        if done.is_empty() && !json {
            writeln!(std::io::stdout().lock(), "no unverified report is held")?;
        }
        return print_applied(&done, gone, json);
    }
    let summary = inbox::check(&campaign, &db_path)?;
    let held = open_database(Some(&db_path))?.held_reports()?;
    let mut out = std::io::stdout().lock();
    if json {
        let mut object = summary_json(&summary);
        object["unverified_waiting"] =
            serde_json::Value::Array(held.iter().map(held_json).collect());
        writeln!(out, "{object}")?;
    } else {
        writeln!(out, "{}", summary_line(&summary))?;
        for warning in &summary.warnings {
            writeln!(out, "warning: {warning}")?;
        }
        for passed in &summary.passed {
            writeln!(out, "passed: {passed}")?;
        }
        print_held(&mut out, path, &held)?;
    }
    Ok(exit::DONE)
}

/// The ids the user typed; a sentence naming the first that is not one.
fn ids(texts: &[String]) -> Result<Vec<HeldId>> {
    texts
        .iter()
        .filter(|text| !text.trim().is_empty())
        .map(|text| text.parse::<HeldId>().map_err(anyhow::Error::msg))
        .collect()
}

/// Each held report with its id, then the commands that apply or dismiss them.
fn print_held(out: &mut impl Write, path: &Path, held: &[HeldRow]) -> Result<()> {
    for row in held {
        writeln!(out, "unverified: {}", held_line(row))?;
    }
    if !held.is_empty() {
        let listed: Vec<String> = held.iter().map(|row| HeldId::of(row).to_string()).collect();
        writeln!(
            out,
            "{} unverified report(s) wait: they do not prove they concern your mail (anyone can write one); apply those you believe with herald bounces {} --apply ID,… and forget the others with --dismiss ID,…; all of the above: --apply {}",
            held.len(),
            shell_word(path),
            listed.join(",")
        )?;
    }
    Ok(())
}

/// `path` as one word a shell reads back.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@".contains(c));
    if plain && !text.is_empty() {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

fn print_applied(done: &[(HeldRow, Applied)], dismissed: usize, json: bool) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    let bounced = done.iter().filter(|(_, a)| a.bounced).count();
    let suppressed = done.iter().filter(|(_, a)| a.suppressed).count();
    if json {
        let object = serde_json::json!({
            "applied": done.len(),
            "bounced": bounced,
            "suppressed": suppressed,
            "dismissed": dismissed,
            "reports": done.iter().map(|(row, _)| held_json(row)).collect::<Vec<_>>(),
        });
        writeln!(out, "{object}")?;
    } else {
        for (row, _) in done {
            writeln!(out, "applied: {}", held_line(row))?;
        }
        if !done.is_empty() {
            writeln!(out, "{}", crate::app::held::applied_sentence(done))?;
        }
        if dismissed > 0 {
            writeln!(
                out,
                "{dismissed} unverified report(s) dismissed: they change nobody"
            )?;
        }
    }
    Ok(exit::DONE)
}

fn held_line(row: &HeldRow) -> String {
    let status = row
        .status
        .as_deref()
        .map(|status| format!("{status} "))
        .unwrap_or_default();
    format!(
        "{} {} ({}): {status}{} [{}]",
        HeldId::of(row),
        row.email,
        row.campaign_name,
        row.diagnostic,
        row.evidence
    )
}

fn held_json(row: &HeldRow) -> serde_json::Value {
    serde_json::json!({
        "id": HeldId::of(row).to_string(),
        "address": row.email,
        "campaign": row.campaign_name,
        "kind": row.kind.as_str(),
        "status": row.status,
        "diagnostic": row.diagnostic,
        "evidence": row.evidence,
        "at_ms": row.at_ms,
    })
}

pub fn summary_line(summary: &Summary) -> String {
    format!(
        "{} read: {} hard, {} soft, {} blocked, {} delayed, {} complaint(s), {} unsubscribe(s), \
         {} auto-repl(ies), {} unmatched ({} forged), {} unrecognized, {} unverified (held), {} too large, {} not fetched; \
         {} bounced, {} suppressed",
        summary.read,
        summary.hard,
        summary.soft,
        summary.blocked,
        summary.delayed,
        summary.complaints,
        summary.unsubscribes,
        summary.auto_replies,
        summary.unmatched,
        summary.forged,
        summary.unrecognized,
        summary.unverified,
        summary.too_large,
        summary.not_fetched,
        summary.bounced,
        summary.suppressed
    )
}

/// The `--json` object of one check.
pub fn summary_json(summary: &Summary) -> serde_json::Value {
    serde_json::json!({
        "read": summary.read,
        "hard": summary.hard,
        "soft": summary.soft,
        "blocked": summary.blocked,
        "delayed": summary.delayed,
        "complaints": summary.complaints,
        "unsubscribes": summary.unsubscribes,
        "auto_replies": summary.auto_replies,
        "unmatched": summary.unmatched,
        "forged": summary.forged,
        "unverified": summary.unverified,
        "unrecognized": summary.unrecognized,
        "not_reports": summary.not_reports,
        "too_large": summary.too_large,
        "not_fetched": summary.not_fetched,
        "passed": summary.passed,
        "bounced": summary.bounced,
        "suppressed": summary.suppressed,
        "warnings": summary.warnings,
    })
}

/// `herald suppression …`.
pub fn suppression(db: Option<&Path>, action: SuppressionAction) -> Result<i32> {
    let mut database = open_database(db)?;
    let mut out = std::io::stdout().lock();
    match action {
        SuppressionAction::List { json } => {
            let list = database.suppressions()?;
            if json {
                let items: Vec<serde_json::Value> = list
                    .iter()
                    .map(|entry| {
                        serde_json::json!({
                            "address": entry.address,
                            "reason": entry.reason.as_str(),
                            "at_ms": entry.at_ms,
                            "campaign": entry.campaign,
                            "evidence": entry.evidence,
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::Value::Array(items))?;
            } else {
                for entry in &list {
                    writeln!(
                        out,
                        "{:<40} {:<13} {}",
                        entry.address,
                        entry.reason.as_str(),
                        entry.evidence
                    )?;
                }
                writeln!(out, "{} suppressed address(es)", list.len())?;
            }
        }
        SuppressionAction::Add { address, reason } => {
            let note = reason.unwrap_or_default();
            let edited = database.suppress(&address, &note, "added by hand")?;
            if edited.changed {
                writeln!(out, "suppressed {}", edited.key)?;
            } else {
                writeln!(out, "{} was already suppressed", edited.key)?;
            }
        }
        SuppressionAction::Remove { address } => {
            let edited = database.unsuppress(&address)?;
            if edited.changed {
                writeln!(out, "removed {}", edited.key)?;
            } else {
                writeln!(out, "{} was not on the list", edited.key)?;
            }
        }
        SuppressionAction::Export { file } => {
            let count = database.export_suppressions(&file)?;
            writeln!(out, "{count} address(es) written to {}", file.display())?;
        }
        SuppressionAction::Import { file } => {
            let imported = database.import_suppressions(&file)?;
            for (line, why) in &imported.invalid {
                eprintln!("herald: {}, line {line}: {why}; not added", file.display());
            }
            writeln!(
                out,
                "{} address(es) added, {} line(s) without a valid address",
                imported.added,
                imported.invalid.len()
            )?;
        }
    }
    Ok(exit::DONE)
}
