//! The bounce samples in `tests/samples/bounces/`, written in the shapes real servers produce
//! (Postfix, Exim, qmail, sendmail, Gmail, Exchange and Microsoft 365, Yahoo, Amazon SES, a
//! feedback loop, auto-replies, an unsubscribe request, a person's reply, forwarded bounces),
//! each read by `inbox::report::read` and compared with a one-line expectation: what it is,
//! the failed addresses with their codes and class, the Message-IDs and envelope addresses
//! that name the mailing. Each sample is read as written (LF) and as IMAP serves it (CRLF).
//! Every file in the folder must have an expectation, so none is silently untested. Issue #13.

use std::path::Path;

use herald::inbox::report::{Action, Reading, Report, classify, read};

/// One line saying what a reading found.
fn summary(reading: &Reading) -> String {
    let what = match &reading.report {
        Report::Delivery(recipients) => {
            let each: Vec<String> = recipients
                .iter()
                .map(|r| {
                    let action = match r.action {
                        Action::Failed => "failed",
                        Action::Delayed => "delayed",
                        Action::Delivered => "delivered",
                        Action::Relayed => "relayed",
                        Action::Expanded => "expanded",
                    };
                    format!(
                        "{action} {} {} {} {}",
                        r.address.as_deref().unwrap_or("-"),
                        r.status.as_deref().unwrap_or("-"),
                        r.smtp_code.map_or("-".to_string(), |c| c.to_string()),
                        format!("{:?}", classify(r)).to_lowercase(),
                    )
                })
                .collect();
            format!("delivery: {}", each.join("; "))
        }
        Report::Complaint(complaint) => format!(
            "complaint {} {}",
            complaint.feedback_type,
            complaint.address.as_deref().unwrap_or("-")
        ),
        Report::AutoReply => "auto-reply".to_string(),
        Report::Unsubscribe { tag } => format!("unsubscribe {tag}"),
        Report::Unrecognized { .. } => "unrecognized".to_string(),
        Report::NotAReport => "not a report".to_string(),
    };
    format!(
        "{what} | ids {} | to {}",
        reading.clues.message_ids.join(" "),
        reading.clues.envelope_to.join(" ")
    )
}

const EXPECTED: &[(&str, &str)] = &[
    (
        "postfix_dsn.eml",
        "delivery: failed nobody@example.net 5.1.1 550 hard | ids 95.c1.herald@acme.example | to bounces+17.2n.4f0c1d2e3a4b5c6d7e8f@acme.example",
    ),
    (
        "postfix_delayed_dsn.eml",
        "delivery: delayed slow@example.org 4.4.1 - soft | ids 96.c1.herald@acme.example | to bounces@acme.example bounces+17.2o.0a1b2c3d4e5f60718293@acme.example",
    ),
    (
        "postfix_plain.eml",
        "delivery: failed left.company@example.com 5.1.1 550 hard | ids 10.3.herald@acme.example | to bounces+3.a.99aa88bb77cc66dd55ee@acme.example",
    ),
    (
        "exim.eml",
        "delivery: failed gone@example.org 5.1.1 550 hard | ids 77.k.herald@acme.example | to bounces+5.k.0f1e2d3c4b5a69788796@acme.example",
    ),
    (
        "exim_delayed.eml",
        "delivery: delayed busy@example.org 4.3.0 451 soft | ids  | to bounces+5.m.1234567890abcdef1234@acme.example",
    ),
    (
        "qmail.eml",
        "delivery: failed nosuch@example.com 5.1.1 - hard; failed stuffed@example.com 5.2.2 552 soft | ids 300.z.herald@acme.example | to bounces+8.z.a1b2c3d4e5f6a7b8c9d0@acme.example",
    ),
    (
        "sendmail.eml",
        "delivery: failed nouser@example.org 5.1.1 550 hard | ids 41.b.herald@acme.example | to bounces+2.b.ffeeddccbbaa99887766@acme.example",
    ),
    (
        "gmail.eml",
        "delivery: failed lost.person@example.com 5.1.1 550 hard | ids 12.q.herald@acme.example | to bounces+9.q.00112233445566778899@acme.example",
    ),
    (
        "google_dmarc_dsn.eml",
        "delivery: failed reader@gmail.example 5.7.26 550 blocked | ids 13.r.herald@acme.example | to bounces+9.r.aabbccddeeff00112233@acme.example",
    ),
    (
        "exchange_ndr.eml",
        "delivery: failed former.employee@example.org 5.1.1 550 hard | ids 55.c.herald@acme.example | to bounces+4.c.5a5a5a5a5a5a5a5a5a5a@acme.example",
    ),
    (
        "exchange_german.eml",
        "delivery: failed kunde@example.de 5.1.10 550 hard | ids 57.e.herald@acme.example | to bounces+4.e.0123abcd0123abcd0123@acme.example",
    ),
    (
        "m365_auth.eml",
        "delivery: failed reader@outlook.example 5.7.515 550 blocked | ids 56.d.herald@acme.example | to bounces+4.d.77665544332211009988@acme.example",
    ),
    (
        "yahoo.eml",
        "delivery: failed closed.account@yahoo.example - 554 hard | ids 61.e.herald@acme.example | to bounces+6.e.13579bdf2468ace01357@acme.example",
    ),
    (
        "ses.eml",
        "delivery: failed unknown.reader@example.net 5.1.1 550 hard | ids 0100018c2f3e4c11-aaaa-bbbb-cccc-dddd-000000@email.amazonses.com | to bounces@acme.example",
    ),
    (
        "arf_feedback_loop.eml",
        "complaint abuse annoyed.reader@yahoo.example | ids 88.f.herald@acme.example | to fbl@acme.example",
    ),
    (
        "vacation.eml",
        "auto-reply | ids 19.g.herald@acme.example | to bounces+1.g.0a0b0c0d0e0f01020304@acme.example",
    ),
    (
        "outlook_automatic_reply.eml",
        "auto-reply | ids  | to bounces+1.h.1111222233334444aaaa@acme.example news@acme.example",
    ),
    (
        "read_receipt.eml",
        "auto-reply | ids  | to bounces+1.k.1212121212121212aaaa@acme.example news@acme.example",
    ),
    (
        "unsubscribe.eml",
        "unsubscribe c.lfls.0f1e2d3c4b5a69788796 | ids  | to bounces+u-c.lfls.0f1e2d3c4b5a69788796@acme.example",
    ),
    (
        "human_reply.eml",
        "not a report | ids 20.i.herald@acme.example | to bounces+1.i.9999888877776666aaaa@acme.example news@acme.example",
    ),
    (
        "newsletter_to_bounces.eml",
        "not a report | ids  | to bounces@acme.example",
    ),
    (
        "forwarded_bounce.eml",
        "delivery: failed old.address@example.com 5.1.1 550 hard | ids 33.j.herald@acme.example | to bounces+1.j.abcdefabcdefabcdefab@acme.example news@acme.example",
    ),
    (
        "forwarded_inline.eml",
        "delivery: failed retired@example.org 5.2.1 550 hard | ids 34.j.herald@acme.example | to news@acme.example",
    ),
    (
        "unreadable_bounce.eml",
        "unrecognized | ids  | to bounces+1.l.3434343434343434aaaa@acme.example",
    ),
];

fn samples_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples/bounces")
}

#[test]
fn every_sample_reads_as_expected_with_either_line_ending() {
    let mut failures = Vec::new();
    for (file, expected) in EXPECTED {
        let raw = std::fs::read(samples_dir().join(file)).unwrap();
        let crlf = String::from_utf8_lossy(&raw)
            .replace("\r\n", "\n")
            .replace('\n', "\r\n");
        for (ending, bytes) in [("LF", raw.clone()), ("CRLF", crlf.into_bytes())] {
            let got = summary(&read(&bytes));
            if got != *expected {
                failures.push(format!(
                    "{file} ({ending}):\n  expected {expected}\n  got      {got}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_sample_file_has_an_expectation() {
    // The folders of real-MTA and written samples are scored by `bounce_corpus`.
    let mut files: Vec<String> = std::fs::read_dir(samples_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".eml"))
        .collect();
    files.sort();
    for file in &files {
        assert!(
            EXPECTED.iter().any(|(name, _)| name == file),
            "{file} has no expectation"
        );
    }
    assert_eq!(files.len(), EXPECTED.len());
}
