//! The one place the CLI prints the deliverability check's findings (issue #23): as lines for
//! `herald check` and before `herald send`, and as JSON for `herald check --json`. The check,
//! and which findings stop a send, are `app::deliverability`'s (the window's too); a red finding
//! stops a send unless `--ignore-dns` is given.

use std::io::Write;

use crate::app::deliverability::{self, Finding, Level};
use crate::campaign::Campaign;

/// The words `check` already uses for its levels.
fn word(level: Level) -> &'static str {
    match level {
        Level::Green => "ok",
        Level::Amber => "warning",
        Level::Red => "problem",
    }
}

/// One line per finding; a finding that is not green adds the record seen and the fix.
pub fn write_findings(out: &mut dyn Write, findings: &[Finding]) -> std::io::Result<()> {
    for finding in findings {
        writeln!(
            out,
            "{}: {} {}: {}",
            word(finding.level),
            finding.mechanism.label(),
            finding.subject,
            finding.summary
        )?;
        if finding.level == Level::Green {
            continue;
        }
        if let Some(record) = &finding.record {
            writeln!(out, "    record: {record}")?;
        }
        if let Some(fix) = &finding.fix {
            writeln!(out, "    fix: {fix}")?;
        }
    }
    Ok(())
}

/// The findings as a JSON array (mechanism, level, subject, summary, record, fix).
pub fn findings_json(findings: &[Finding]) -> serde_json::Value {
    serde_json::to_value(findings).unwrap_or(serde_json::Value::Null)
}

/// Before a send: runs the check and prints what is not green. Returns the exit code when a red
/// finding stops the send (`ignore` lets it go on).
pub fn before_send(campaign: &Campaign, ignore: bool) -> std::io::Result<Option<i32>> {
    let worth_saying = deliverability::worth_saying(deliverability::findings(campaign));
    let mut out = std::io::stdout().lock();
    write_findings(&mut out, &worth_saying)?;
    let red = deliverability::stopping(&worth_saying, false);
    if red == 0 {
        return Ok(None);
    }
    if ignore {
        writeln!(
            out,
            "sending anyway (--ignore-dns): {red} DNS problem(s) above will make receivers refuse or junk some of this mail"
        )?;
        return Ok(None);
    }
    drop(out);
    eprintln!(
        "herald: {red} DNS problem(s) above would make receivers refuse or junk this mail; nothing was sent. Fix the records, or send with --ignore-dns"
    );
    Ok(Some(super::exit::ERROR))
}
