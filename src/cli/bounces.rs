//! `herald bounces` (read the campaign's bounce mailbox and apply what came back) and
//! `herald suppression list | add | remove | export | import` (the list every campaign
//! honors). Terminal output only; the reading lives in `inbox`, the list in `store`.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use crate::inbox::{self, Summary};
use crate::recipients::EmailAddress;
use crate::store::{Applied, HeldRow, Suppression, SuppressionReason, now_ms};

use super::{database_path, exit, load, open_store};

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

/// `herald bounces CAMPAIGN.toml [--json] [--apply-unverified]`.
pub fn bounces(db: Option<&Path>, path: &Path, json: bool, apply_unverified: bool) -> Result<i32> {
    let campaign = load(path)?;
    let Some(spec) = &campaign.bounces else {
        bail!("the campaign has no [bounces] section: add one naming the bounce mailbox");
    };
    let db_path = database_path(db)?;
    if apply_unverified {
        // Only what the user was shown: the mailbox is not read again, so nothing new is
        // applied unseen.
        let mut store = open_store(Some(&db_path))?;
        let done = store.apply_held(spec.soft_limit)?;
        return print_applied(&done, json);
    }
    let summary = inbox::check(&campaign, &db_path)?;
    let held = open_store(Some(&db_path))?.held_feedback()?;
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
        for row in &held {
            writeln!(out, "unverified: {}", held_line(row))?;
        }
        if !held.is_empty() {
            writeln!(
                out,
                "{} unverified report(s) wait: they do not prove they concern your mail (anyone can write one); apply them with herald bounces --apply-unverified",
                held.len()
            )?;
        }
    }
    Ok(exit::DONE)
}

fn print_applied(done: &[(HeldRow, Applied)], json: bool) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    let bounced = done.iter().filter(|(_, a)| a.bounced).count();
    let suppressed = done.iter().filter(|(_, a)| a.suppressed).count();
    if json {
        let object = serde_json::json!({
            "applied": done.len(),
            "bounced": bounced,
            "suppressed": suppressed,
            "reports": done.iter().map(|(row, _)| held_json(row)).collect::<Vec<_>>(),
        });
        writeln!(out, "{object}")?;
    } else {
        for (row, _) in done {
            writeln!(out, "applied: {}", held_line(row))?;
        }
        writeln!(
            out,
            "{} unverified report(s) applied; {bounced} bounced, {suppressed} suppressed",
            done.len()
        )?;
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
        row.kind.as_str(),
        row.email,
        row.campaign_name,
        row.diagnostic,
        row.evidence
    )
}

fn held_json(row: &HeldRow) -> serde_json::Value {
    serde_json::json!({
        "address": row.email,
        "campaign": row.campaign_name,
        "kind": row.kind.as_str(),
        "status": row.status,
        "diagnostic": row.diagnostic,
        "evidence": row.evidence,
        "at_ms": row.at_ms,
    })
}

/// Reads the mailbox before a send, so the run honors yesterday's bounces and unsubscribes.
/// `Ok(None)` means go on; `Ok(Some(code))` means stop with that code. A mailbox that cannot be
/// read stops the send, as an unreachable unsubscribe endpoint does: sending anyway would mail
/// the people whose unsubscribes and complaints are waiting there. `--no-pull` sends anyway.
pub fn before_send(
    db_path: &Path,
    campaign: &crate::campaign::Campaign,
    no_pull: bool,
) -> Result<Option<i32>> {
    if campaign.bounces.is_none() {
        return Ok(None);
    }
    if no_pull {
        eprintln!("herald: warning: not reading the bounce mailbox (--no-pull)");
        return Ok(None);
    }
    match inbox::check(campaign, db_path) {
        Ok(summary) => {
            println!("bounce mailbox: {}", summary_line(&summary));
            if summary.unverified > 0 {
                println!(
                    "note: {} report(s) do not prove they concern your mail and were not applied; see herald bounces",
                    summary.unverified
                );
            }
            for warning in &summary.warnings {
                println!("warning: {warning}");
            }
            Ok(None)
        }
        Err(error) => {
            eprintln!("herald: the bounce mailbox cannot be read: {error}");
            eprintln!(
                "herald: not sending, since people whose unsubscribes, complaints or bounces wait there would be mailed; fix [bounces], or send anyway with --no-pull"
            );
            Ok(Some(exit::ERROR))
        }
    }
}

pub fn summary_line(summary: &Summary) -> String {
    format!(
        "{} read: {} hard, {} soft, {} blocked, {} delayed, {} complaint(s), {} unsubscribe(s), \
         {} auto-repl(ies), {} unmatched ({} forged), {} unrecognized, {} unverified (held); \
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
        "bounced": summary.bounced,
        "suppressed": summary.suppressed,
        "warnings": summary.warnings,
    })
}

fn key_of(address: &str) -> Result<String> {
    let parsed = EmailAddress::parse(address.trim())
        .map_err(|error| anyhow::anyhow!("\"{address}\" is not an address: {error}"))?;
    Ok(parsed.key())
}

/// `herald suppression …`.
pub fn suppression(db: Option<&Path>, action: SuppressionAction) -> Result<i32> {
    let mut store = open_store(db)?;
    let mut out = std::io::stdout().lock();
    match action {
        SuppressionAction::List { json } => {
            let list = store.suppressions()?;
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
            let entry = Suppression {
                address: key_of(&address)?,
                reason: SuppressionReason::Manual,
                at_ms: now_ms(),
                campaign: None,
                evidence: reason.unwrap_or_else(|| "added by hand".into()),
            };
            if store.suppress(&entry)? {
                writeln!(out, "suppressed {}", entry.address)?;
            } else {
                writeln!(out, "{} was already suppressed", entry.address)?;
            }
        }
        SuppressionAction::Remove { address } => {
            let key = key_of(&address)?;
            if store.unsuppress(&key)? {
                writeln!(out, "removed {key}")?;
            } else {
                writeln!(out, "{key} was not on the list")?;
            }
        }
        SuppressionAction::Export { file } => {
            let list = store.suppressions()?;
            let text = crate::engine::suppression_file::to_csv(&list);
            std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
            writeln!(
                out,
                "{} address(es) written to {}",
                list.len(),
                file.display()
            )?;
        }
        SuppressionAction::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let text = text.trim_start_matches('\u{feff}');
            // (line number, fields), blank lines left out.
            let mut lines = text
                .lines()
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .map(|(index, line)| (index + 1, csv_line(line)));
            let (header_line, header) = lines.next().unwrap_or_default();
            let column = |names: &[&str]| {
                header
                    .iter()
                    .position(|name| names.contains(&name.trim().to_ascii_lowercase().as_str()))
            };
            // A file without a header names addresses in its first line too.
            let (address_column, reason_column, evidence_column, first) =
                match column(&["address", "email", "email address", "e-mail"]) {
                    Some(index) => (index, column(&["reason"]), column(&["evidence"]), None),
                    None => (0, None, None, Some((header_line, header.clone()))),
                };
            let (mut added, mut invalid) = (0u64, 0u64);
            let now = now_ms();
            for (line, fields) in first.into_iter().chain(lines) {
                let address = match fields.get(address_column).map(|field| key_of(field)) {
                    Some(Ok(address)) => address,
                    Some(Err(error)) => {
                        eprintln!(
                            "herald: {}, line {line}: {error}; not added",
                            file.display()
                        );
                        invalid += 1;
                        continue;
                    }
                    None => {
                        eprintln!(
                            "herald: {}, line {line}: no address column; not added",
                            file.display()
                        );
                        invalid += 1;
                        continue;
                    }
                };
                let reason = reason_column
                    .and_then(|index| fields.get(index))
                    .and_then(|reason| SuppressionReason::parse(reason.trim()))
                    .unwrap_or(SuppressionReason::Manual);
                let evidence = evidence_column
                    .and_then(|index| fields.get(index).cloned())
                    .unwrap_or_else(|| format!("imported from {}", file.display()));
                let entry = Suppression {
                    address,
                    reason,
                    at_ms: now,
                    campaign: None,
                    evidence,
                };
                added += u64::from(store.suppress(&entry)?);
            }
            writeln!(
                out,
                "{added} address(es) added, {invalid} line(s) without a valid address"
            )?;
        }
    }
    Ok(exit::DONE)
}

/// One RFC 4180 line (fields may be quoted; no line breaks inside fields).
fn csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_round_trip() {
        let fields = ["a@b.example", "say \"hi\", then", ""];
        let line: Vec<String> = fields
            .iter()
            .map(|f| crate::engine::suppression_file::field_of(f))
            .collect();
        assert_eq!(super::csv_line(&line.join(",")), fields);
    }
}
