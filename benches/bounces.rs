//! Bounce-mailbox benchmark (issue #13): 10,000 RFC 3464 reports, each to the VERP return path
//! of one sent recipient, read over IMAPS from a real Dovecot on loopback, matched and applied
//! (`herald::inbox::check`: batched fetches, one store transaction per batch, flags set).
//! Reference in the same run: a second Dovecot folder of the same 10,000 messages fetched by
//! the same IMAP client without reading or applying them, so the ratio is the cost of
//! parsing, matching and the store. Target: ≥ 1,000 messages/s.
//! Run: `cargo bench --bench bounces`.
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

const REPORTS: usize = 10_000;
const PASSWORD_ENV: &str = "HERALD_BENCH_IMAP_PASSWORD";

fn dsn(return_path: &str, failed: &str) -> String {
    format!(
        "Delivered-To: {return_path}\r\nFrom: MAILER-DAEMON@mx.example.org\r\nTo: {return_path}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"RB\"\r\n\r\n\
         --RB\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n\
         --RB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\
         Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <{failed}>: user unknown\r\n\r\n--RB--\r\n"
    )
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    if let Some(reason) = dovecot::unavailable() {
        println!("bounces bench skipped: {reason}");
        return;
    }
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
    for n in 0..REPORTS {
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
    let claimed = store.claim(id, i64::MAX, REPORTS as u32).unwrap();
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
        let mut count = 0;
        for chunk in uids.chunks(herald::inbox::BATCH) {
            count += mailbox.fetch(chunk).await.unwrap().len();
        }
        mailbox.logout().await;
        count
    });
    let reference = started.elapsed();

    let started = Instant::now();
    let summary = herald::inbox::check(&campaign, &dir.db).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(summary.read as usize, REPORTS, "{summary:?}");
    assert_eq!(summary.hard as usize, REPORTS, "{summary:?}");
    let rate = REPORTS as f64 / elapsed.as_secs_f64();
    let reference_rate = fetched as f64 / reference.as_secs_f64();
    println!(
        "bounces: {REPORTS} reports read, matched and applied in {:.2} s = {rate:.0} msg/s \
         (target ≥ 1,000); fetch alone (reference, same client and server) {:.2} s = \
         {reference_rate:.0} msg/s; ratio {:.2}",
        elapsed.as_secs_f64(),
        reference.as_secs_f64(),
        elapsed.as_secs_f64() / reference.as_secs_f64()
    );
}
