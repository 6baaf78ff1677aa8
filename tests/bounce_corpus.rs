//! Scores the report reader over the whole bounce corpus (issue #21 §4): every sample named in
//! `tests/samples/bounces/expected.csv` (file, expected class, recipient) — the bounces real
//! Postfix, Exim and OpenSMTPD sent here (`tools/bounce-corpus/make.sh`), the hand-written
//! ones of the kinds the issue found misread, and the older samples — is read by
//! `inbox::report::read` and classified as the mailbox check would. Hard-bounce recall must
//! be at least 0.90, transient failures wrongly taken for dead addresses at most 0.10, policy
//! blocks never taken for dead addresses, and every complaint recognized. The figures are
//! printed (`cargo test --test main bounce_corpus:: -- --nocapture`).

use std::path::{Path, PathBuf};

use herald::inbox::report::{Action, Class, Report, classify, read};

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples/bounces")
}

/// One line of the manifest.
struct Expected {
    file: String,
    class: String,
    recipient: String,
}

fn manifest() -> Vec<Expected> {
    let text = std::fs::read_to_string(samples_dir().join("expected.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            assert_eq!(fields.len(), 3, "expected.csv: {line:?}");
            Expected {
                file: fields[0].to_string(),
                class: fields[1].to_string(),
                recipient: fields[2].to_string(),
            }
        })
        .collect()
}

/// What the reader made of one sample for one recipient: "hard" only when the mailbox check
/// would suppress it as dead (a failed action classified hard), "complaint" for a complaint,
/// the class otherwise, "missed" when the recipient was not found.
fn verdict(raw: &[u8], recipient: &str) -> String {
    match read(raw).report {
        Report::Delivery(found) => found
            .iter()
            .find(|r| {
                r.address
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(recipient))
            })
            .map_or("missed".to_string(), |r| match (r.action, classify(r)) {
                (Action::Failed, Class::Hard) => "hard".into(),
                (_, Class::Blocked) => "blocked".into(),
                _ => "soft".into(),
            }),
        Report::Complaint(_) => "complaint".into(),
        Report::Unrecognized { .. } => "unrecognized".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[test]
fn the_corpus_is_read_right_enough() {
    let expected = manifest();
    let mut wrong = Vec::new();
    let (mut hard, mut hard_found) = (0, 0);
    let (mut soft, mut soft_suppressed) = (0, 0);
    let (mut blocked, mut blocked_suppressed) = (0, 0);
    let (mut complaints, mut complaints_found) = (0, 0);
    for sample in &expected {
        let raw = std::fs::read(samples_dir().join(&sample.file))
            .unwrap_or_else(|e| panic!("{}: {e}", sample.file));
        let got = verdict(&raw, &sample.recipient);
        match sample.class.as_str() {
            "hard" => {
                hard += 1;
                hard_found += usize::from(got == "hard");
            }
            "soft" => {
                soft += 1;
                soft_suppressed += usize::from(got == "hard");
            }
            "blocked" => {
                blocked += 1;
                blocked_suppressed += usize::from(got == "hard");
            }
            "complaint" => {
                complaints += 1;
                complaints_found += usize::from(got == "complaint");
            }
            other => panic!("expected.csv: unknown class {other:?}"),
        }
        if got != sample.class {
            wrong.push(format!(
                "  {} {}: expected {}, got {got}",
                sample.file, sample.recipient, sample.class
            ));
        }
    }
    let recall = ratio(hard_found, hard);
    let soft_wrong = ratio(soft_suppressed, soft);
    println!(
        "bounce corpus: {} samples; hard-bounce recall {recall:.2} ({hard_found} of {hard}); \
         transient suppressed as hard {soft_wrong:.2} ({soft_suppressed} of {soft}); \
         policy blocks suppressed as hard {blocked_suppressed} of {blocked}; \
         complaints recognized {complaints_found} of {complaints}",
        expected.len()
    );
    if !wrong.is_empty() {
        println!("read otherwise than expected:\n{}", wrong.join("\n"));
    }
    assert!(recall >= 0.90, "hard-bounce recall {recall:.2} < 0.90");
    assert!(
        soft_wrong <= 0.10,
        "transient suppressed {soft_wrong:.2} > 0.10"
    );
    assert_eq!(
        blocked_suppressed, 0,
        "a policy block was taken for a dead address"
    );
    assert_eq!(
        complaints_found, complaints,
        "a complaint was not recognized"
    );
}

#[test]
fn every_corpus_sample_is_in_the_manifest() {
    let listed: Vec<String> = manifest().into_iter().map(|e| e.file).collect();
    for sub in ["postfix", "exim", "opensmtpd", "written"] {
        for entry in std::fs::read_dir(samples_dir().join(sub)).unwrap() {
            let name = format!("{sub}/{}", entry.unwrap().file_name().to_string_lossy());
            assert!(listed.contains(&name), "{name} is not in expected.csv");
        }
    }
}
