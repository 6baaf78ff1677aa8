//! Bounce-mailbox benchmark (issues #13 and #21): 10,000 RFC 3464 reports of a real size (each
//! returns the headers and the start of the message it reports on, ~6 KB), each to the VERP
//! return path of one sent recipient, plus 1,000 messages of 10 MB that a stranger mailed, read
//! over IMAPS from a real Dovecot on loopback, matched and applied (`herald::inbox::check`: sizes
//! first, batches bounded in count and bytes, the big ones read only in part, one store
//! transaction per batch, flags set). Reference in the same run: a second Dovecot folder of the
//! same 10,000 reports fetched by the same IMAP client without reading or applying them, so the
//! ratio is the cost of parsing, matching and the store. Targets: ≥ 1,000 reports/s, and the
//! check's peak RSS under 100 MB whatever the folder holds (issue #21).
//! Run: `cargo bench --bench bounces` (HERALD_BENCH_REPORTS, default 10000;
//! HERALD_BENCH_BIG, default 1000: the 10 MB messages are hard links of one file, so they cost
//! 10 MB of disk, not 10 GB).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
#[allow(dead_code)] // each bench uses a part of the tests' helpers
mod support;

use std::time::Instant;

use herald::campaign::Campaign;
use herald::compose::Feedback;
use herald::identity::{RETURN_PATH_SECRET, UNSUBSCRIBE_SECRET, campaign_id};
use herald::store::{ImportRow, State, Store, Transition};
use support::campaign::{RelayConf, campaign_with};
use support::dovecot::{self, Dovecot};

const BIG_BYTES: usize = 10 * 1024 * 1024;
const PASSWORD_ENV: &str = "HERALD_BENCH_IMAP_PASSWORD";

/// A report as a real MTA writes it: the human part, the delivery status, and the returned
/// message's headers and first lines (RET=HDRS plus a little, ~6 KB in all).
fn dsn(return_path: &str, failed: &str) -> String {
    let returned_body = "Hello, here is our news of the month.\r\n".repeat(100);
    format!(
        "Delivered-To: {return_path}\r\nFrom: MAILER-DAEMON@mx.example.org\r\nTo: {return_path}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"RB\"\r\n\r\n\
         --RB\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n\
         --RB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\
         Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <{failed}>: user unknown\r\n\r\n\
         --RB\r\nContent-Type: message/rfc822\r\n\r\n\
         From: News <news@acme.example>\r\nTo: {failed}\r\nSubject: Our news\r\n\
         Message-ID: <{failed}.news@acme.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{returned_body}\r\n--RB--\r\n"
    )
}

/// A stranger's message of `BIG_BYTES`: a photo attached, base64 lines.
fn big_message() -> Vec<u8> {
    let mut raw = b"From: Stranger <someone@example.net>\r\nTo: bounces@acme.example\r\n\
Subject: holiday pictures\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n\
See attached.\r\n--B\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    let line = format!("{}\r\n", "QUJD".repeat(19));
    while raw.len() + line.len() < BIG_BYTES {
        raw.extend_from_slice(line.as_bytes());
    }
    raw.extend_from_slice(b"--B--\r\n");
    raw
}

fn count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// This process's peak resident memory in MB since the last `reset_peak` (Linux: VmHWM).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Linux ≥ 4.0: writing 5 to clear_refs resets the peak to the current resident size.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    if let Some(reason) = dovecot::unavailable() {
        println!("bounces bench skipped: {reason}");
        return;
    }
    let reports = count("HERALD_BENCH_REPORTS", 10_000);
    let big = count("HERALD_BENCH_BIG", 1_000);
    // SAFETY: set before any thread starts.
    unsafe { std::env::set_var(PASSWORD_ENV, dovecot::PASSWORD) };
    let dovecot = Dovecot::start();
    let section = format!(
        "[bounces]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"tls\"\nusername = \"{}\"\n\
         password_env = \"{PASSWORD_ENV}\"\nca_file = \"{}\"\nreturn_path = \"bounces@acme.example\"\n",
        dovecot.imaps_port,
        dovecot::USER,
        dovecot.ca_file().display()
    );
    // A relay that is never used: the bench only reads the mailbox.
    let dir = campaign_with(&[], &[RelayConf::new("unused", 2525)], "", &section);
    let campaign = Campaign::load(&dir.campaign).unwrap();
    let spec = campaign.bounces.clone().unwrap();

    // 10,000 recipients, sent.
    let mut store = Store::open(&dir.db).unwrap();
    let id = campaign_id(&mut store, &campaign).unwrap();
    let mut importer = store.importer(id, &[]).unwrap();
    for n in 0..reports {
        let email = format!("user{n}@d{}.example", n % 7);
        importer
            .push(ImportRow::new(
                n as u64 + 2,
                email.clone(),
                email,
                [""; 0],
                None,
            ))
            .unwrap();
    }
    importer.finish().unwrap();
    let claimed = store.claim(id, i64::MAX, reports as u32).unwrap();
    let sent: Vec<Transition> = claimed
        .iter()
        .map(|row| Transition {
            id: row.id,
            to: State::Sent,
            attempts: 1,
            next_attempt_at_ms: 0,
            route: None,
            reply: None,
            dead_address: false,
        })
        .collect();
    store.apply(&sent).unwrap();
    let feedback = Feedback {
        campaign: id,
        return_path: spec.return_path.clone().unwrap(),
        return_secret: store.secret(RETURN_PATH_SECRET).unwrap(),
        unsubscribe_secret: store.secret(UNSUBSCRIBE_SECRET).unwrap(),
    };
    drop(store);
    dovecot.create_folder("Reference");
    for row in &claimed {
        let report = dsn(&feedback.envelope_from(row.id), &row.email);
        dovecot.deliver("INBOX", report.as_bytes());
        dovecot.deliver("Reference", report.as_bytes());
    }
    if big > 0 {
        dovecot.deliver_links("INBOX", &big_message(), big);
    }

    // Reference: the same client fetching the other folder's copies, nothing applied.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let fetched = runtime.block_on(async {
        let mut mailbox = herald::inbox::imap::Mailbox::connect(
            &spec,
            &herald::inbox::imap::Login::Password(dovecot::PASSWORD.into()),
        )
        .await
        .unwrap();
        mailbox.select("Reference").await.unwrap();
        let uids = mailbox.uids_after(0).await.unwrap();
        let (sizes, failure) = mailbox.sizes(&uids).await;
        assert!(failure.is_none(), "{failure:?}");
        let mut count = 0;
        for batch in herald::inbox::imap::batches(&sizes) {
            let (fetched, failure) = mailbox.fetch(&batch.messages, batch.part).await;
            assert!(failure.is_none(), "{failure:?}");
            count += fetched.len();
        }
        mailbox.logout().await;
        count
    });
    let reference = started.elapsed();

    let reference_peak = peak_rss_mb();
    reset_peak();
    let before = peak_rss_mb();
    let started = Instant::now();
    let summary = herald::inbox::check(&campaign, &dir.db).unwrap();
    let elapsed = started.elapsed();
    let peak = peak_rss_mb();
    assert_eq!(summary.read as usize, reports, "{summary:?}");
    assert_eq!(summary.hard as usize, reports, "{summary:?}");
    assert_eq!(summary.too_large as usize, big, "{summary:?}");
    let rate = reports as f64 / elapsed.as_secs_f64();
    let reference_rate = fetched as f64 / reference.as_secs_f64();
    println!(
        "bounces: {reports} reports read, matched and applied, and {big} messages of 10 MB \
         counted too large, in {:.2} s = {rate:.0} reports/s (target ≥ 1,000); fetch of the \
         reports alone (reference, same client and server) {:.2} s = {reference_rate:.0} msg/s; \
         ratio {:.2}",
        elapsed.as_secs_f64(),
        reference.as_secs_f64(),
        elapsed.as_secs_f64() / reference.as_secs_f64()
    );
    println!(
        "bounces: peak RSS during the check {peak:.0} MB (target < 100 MB; {before:.0} MB when \
         it began; the setup and reference fetch peaked at {reference_peak:.0} MB)"
    );
}
