//! The bounce mailbox over real IMAP (issue #13): Herald sends through the scriptable SMTP
//! server with a VERP return path, the test writes the bounces a server would send back to that
//! return path into the Maildir of a real Dovecot, and `herald bounces` reads them over TLS.
//! Each test proves one outcome: a hard bounce bounces and suppresses (and a later campaign
//! skips the address); mail that is not a report is left unread; forged and unknown reports
//! name nobody; a second check handles nothing twice; a wrong password or a dead server
//! changes nothing; handled mail moves to the processed folder; big mail is read in part (a
//! report whose status part was read whole applies); a message crawling on a slow link is
//! passed after its own deadline.

// Test helpers (outside `#[test]` functions) fail the test loudly on a broken fixture.

use std::path::Path;
use std::time::Duration;

use crate::support::campaign::{CampaignDir, RelayConf, campaign_with, closed_port};
use crate::support::cli_run::{Ran, herald, herald_command, status};
use crate::support::dovecot::{self, Dovecot};
use crate::support::smtp_server::SmtpServer;

const PASSWORD_ENV: &str = "HERALD_TEST_IMAP_PASSWORD";
const LIMIT: Duration = Duration::from_secs(120);

fn bounces_section(dovecot: &Dovecot, port: u16, security: &str, extra: &str) -> String {
    format!(
        "[bounces]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"{security}\"\n\
         username = \"{}\"\npassword_env = \"{PASSWORD_ENV}\"\nca_file = \"{}\"\n\
         return_path = \"bounces@acme.example\"\n{extra}\n",
        dovecot::USER,
        dovecot.ca_file().display()
    )
}

fn setup(
    emails: &[&str],
    bounces: impl Fn(&Dovecot) -> String,
) -> (Dovecot, SmtpServer, CampaignDir) {
    let dovecot = Dovecot::start();
    let smtp = SmtpServer::start();
    let emails: Vec<String> = emails.iter().map(|e| e.to_string()).collect();
    let dir = campaign_with(
        &emails,
        &[RelayConf::new("relay", smtp.port())],
        "",
        &bounces(&dovecot),
    );
    (dovecot, smtp, dir)
}

fn run(args: &[&str], campaign: &Path, db: &Path, password: &str) -> Ran {
    herald(args, campaign, db, &[(PASSWORD_ENV, password)], LIMIT)
}

fn bounces_json(dir: &CampaignDir) -> serde_json::Value {
    let ran = run(
        &["bounces", "--json"],
        &dir.campaign,
        &dir.db,
        dovecot::PASSWORD,
    );
    ran.assert_code(0);
    serde_json::from_str(ran.stdout.trim())
        .unwrap_or_else(|error| panic!("bounces --json printed no JSON ({error}):\n{}", ran.all()))
}

/// The envelope sender Herald used for `email`.
fn return_path_of(smtp: &SmtpServer, email: &str) -> String {
    smtp.received()
        .into_iter()
        .find(|message| message.rcpt_to.iter().any(|to| to == email))
        .map(|message| message.mail_from)
        .unwrap_or_else(|| panic!("nothing was sent to {email}"))
}

/// An RFC 3464 report as an MTA writes it, delivered to `return_path`.
pub(crate) fn dsn(return_path: &str, failed: &str, status: &str, diagnostic: &str) -> Vec<u8> {
    format!(
        "Return-Path: <>\r\n\
         Delivered-To: {return_path}\r\n\
         From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n\
         To: {return_path}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <20261201.ABC@mx.example.org>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"RB\"\r\n\
         \r\n\
         --RB\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         I'm sorry to have to inform you that your message could not be delivered.\r\n\
         \r\n\
         --RB\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.org\r\n\
         \r\n\
         Final-Recipient: rfc822; {failed}\r\n\
         Action: failed\r\n\
         Status: {status}\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\
         \r\n\
         --RB\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         From: Test Sender <sender@herald.example>\r\n\
         To: {failed}\r\n\
         Subject: Hi\r\n\
         \r\n\
         --RB--\r\n"
    )
    .into_bytes()
}

const FRIENDLY: &[u8] = b"From: Cy <cy@example.net>\r\nTo: bounces@acme.example\r\n\
Subject: lunch?\r\nMessage-ID: <lunch@example.net>\r\n\r\nAre you free on Friday?\r\n";

fn suppressed(dir: &CampaignDir) -> Vec<(String, String)> {
    let mut command = herald_command();
    command
        .args(["suppression", "list", "--json", "--db"])
        .arg(&dir.db);
    let ran = crate::support::cli_run::run(command, LIMIT);
    ran.assert_code(0);
    let list: serde_json::Value = serde_json::from_str(ran.stdout.trim()).expect("json");
    list.as_array()
        .expect("array")
        .iter()
        .map(|entry| {
            (
                entry["address"].as_str().unwrap_or_default().to_string(),
                entry["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_hard_bounce_bounces_suppresses_and_a_later_campaign_skips_the_address() {
    if dovecot::skip() {
        return;
    }
    let (dovecot, smtp, dir) = setup(&["ada@example.org", "bob@example.org"], |d| {
        bounces_section(d, d.imaps_port, "tls", "")
    });
    run(&["send"], &dir.campaign, &dir.db, dovecot::PASSWORD).assert_code(0);
    let return_path = return_path_of(&smtp, "ada@example.org");
    assert!(
        return_path.starts_with("bounces+") && return_path.ends_with("@acme.example"),
        "{return_path}"
    );
    assert_ne!(return_path, return_path_of(&smtp, "bob@example.org"));
    let sent = smtp
        .received()
        .into_iter()
        .find(|message| message.rcpt_to.iter().any(|to| to == "ada@example.org"))
        .map(|message| message.data_str())
        .unwrap_or_default();
    assert!(sent.contains("<mailto:bounces+u-"), "{sent}");

    dovecot.deliver(
        "INBOX",
        &dsn(
            &return_path,
            "ada@example.org",
            "5.1.1",
            "550 5.1.1 <ada@example.org>: user unknown",
        ),
    );
    dovecot.deliver("INBOX", FRIENDLY);
    let summary = bounces_json(&dir);
    assert_eq!(summary["read"], 2, "{summary}");
    assert_eq!(summary["hard"], 1, "{summary}");
    assert_eq!(summary["bounced"], 1, "{summary}");
    assert_eq!(summary["unmatched"], 0, "{summary}");

    let counts = status(&dir.campaign, &dir.db);
    assert_eq!(
        (counts["bounced"].as_u64(), counts["sent"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        suppressed(&dir),
        [("ada@example.org".to_string(), "bounced".to_string())]
    );
    // The report is marked read; the friend's mail is untouched (not even \Seen).
    let messages = dovecot.messages("INBOX");
    for (body, flags) in &messages {
        if body.contains("lunch?") {
            assert!(
                !flags.contains('S'),
                "the unrelated mail was marked read: {flags}"
            );
        } else {
            assert!(
                flags.contains('S'),
                "the handled report is not marked read: {flags}"
            );
        }
    }
    assert_eq!(messages.len(), 2, "mail was deleted");

    // The UID cursor: a second check handles nothing again.
    let again = bounces_json(&dir);
    assert_eq!(
        (again["read"].as_u64(), again["hard"].as_u64()),
        (Some(0), Some(0))
    );

    // A later campaign over the same list skips the dead address.
    let later = dir.path().join("later.toml");
    std::fs::copy(&dir.campaign, &later).expect("copy campaign");
    let before = smtp.received_count();
    run(&["send"], &later, &dir.db, dovecot::PASSWORD).assert_code(0);
    let later_counts = status(&later, &dir.db);
    assert_eq!(
        (
            later_counts["sent"].as_u64(),
            later_counts["skipped"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let new: Vec<_> = smtp.received().into_iter().skip(before).collect();
    assert!(
        new.iter().all(|m| m.rcpt_to == ["bob@example.org"]),
        "{new:?}"
    );
}

#[test]
fn forged_tags_and_addresses_never_mailed_suppress_nobody() {
    if dovecot::skip() {
        return;
    }
    let (dovecot, smtp, dir) = setup(&["ada@example.org"], |d| {
        bounces_section(d, d.imaps_port, "tls", "")
    });
    run(&["send"], &dir.campaign, &dir.db, dovecot::PASSWORD).assert_code(0);
    let real = return_path_of(&smtp, "ada@example.org");
    // The same shape of tag with its MAC changed: not made by this database.
    let tag = real
        .strip_prefix("bounces+")
        .and_then(|rest| rest.strip_suffix("@acme.example"))
        .expect("tag");
    let (ids, mac) = tag.rsplit_once('.').expect("mac");
    let flipped: String = mac
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    let forged = format!("bounces+{ids}.{flipped}@acme.example");
    dovecot.deliver(
        "INBOX",
        &dsn(
            &forged,
            "ada@example.org",
            "5.1.1",
            "550 5.1.1 user unknown",
        ),
    );
    dovecot.deliver(
        "INBOX",
        &dsn(
            "bounces@acme.example",
            "never@example.org",
            "5.1.1",
            "550 5.1.1 user unknown",
        ),
    );
    let summary = bounces_json(&dir);
    assert_eq!(summary["unmatched"], 2, "{summary}");
    assert_eq!(summary["hard"], 0, "{summary}");
    assert_eq!(status(&dir.campaign, &dir.db)["bounced"], 0);
    assert!(suppressed(&dir).is_empty());
}

#[test]
fn a_wrong_password_or_a_dead_server_changes_nothing() {
    if dovecot::skip() {
        return;
    }
    let (dovecot, smtp, dir) = setup(&["ada@example.org"], |d| {
        bounces_section(d, d.imaps_port, "tls", "")
    });
    run(&["send"], &dir.campaign, &dir.db, dovecot::PASSWORD).assert_code(0);
    let return_path = return_path_of(&smtp, "ada@example.org");
    dovecot.deliver(
        "INBOX",
        &dsn(
            &return_path,
            "ada@example.org",
            "5.1.1",
            "550 5.1.1 unknown",
        ),
    );
    let wrong = run(
        &["bounces", "--json"],
        &dir.campaign,
        &dir.db,
        "not-the-password",
    );
    wrong.assert_code(1);
    assert!(
        wrong.stderr.contains("refused the login"),
        "{}",
        wrong.all()
    );
    assert!(
        !wrong.stderr.contains("not-the-password"),
        "{}",
        wrong.all()
    );

    let text = std::fs::read_to_string(&dir.campaign).expect("campaign");
    let dead = text.replace(
        &format!("port = {}\nsecurity = \"tls\"", dovecot.imaps_port),
        &format!("port = {}\nsecurity = \"tls\"", closed_port()),
    );
    std::fs::write(&dir.campaign, dead).expect("campaign");
    let unreachable = run(&["bounces"], &dir.campaign, &dir.db, dovecot::PASSWORD);
    unreachable.assert_code(1);
    assert!(
        unreachable
            .stderr
            .contains("could not reach the IMAP server"),
        "{}",
        unreachable.all()
    );

    assert_eq!(status(&dir.campaign, &dir.db)["bounced"], 0);
    assert!(suppressed(&dir).is_empty());
    let messages = dovecot.messages("INBOX");
    assert_eq!(messages.len(), 1);
    assert!(!messages[0].1.contains('S'), "{messages:?}");
}

#[test]
fn handled_mail_moves_to_the_processed_folder_over_starttls() {
    if dovecot::skip() {
        return;
    }
    let (dovecot, smtp, dir) = setup(&["ada@example.org"], |d| {
        bounces_section(
            d,
            d.imap_port,
            "starttls",
            "processed_folder = \"Processed\"",
        )
    });
    dovecot.create_folder("Processed");
    run(&["send"], &dir.campaign, &dir.db, dovecot::PASSWORD).assert_code(0);
    let return_path = return_path_of(&smtp, "ada@example.org");
    dovecot.deliver(
        "INBOX",
        &dsn(
            &return_path,
            "ada@example.org",
            "4.2.2",
            "452 4.2.2 mailbox full",
        ),
    );
    dovecot.deliver("INBOX", FRIENDLY);
    let summary = bounces_json(&dir);
    assert_eq!(summary["soft"], 1, "{summary}");
    let inbox = dovecot.messages("INBOX");
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(inbox[0].0.contains("lunch?"));
    let processed = dovecot.messages("Processed");
    assert_eq!(processed.len(), 1, "{processed:?}");
    assert!(processed[0].0.contains("mailbox full"));
    assert!(processed[0].1.contains('S'), "{processed:?}");
    // One soft bounce is below the limit of 3: nobody is suppressed, the recipient stays sent.
    assert!(suppressed(&dir).is_empty());
    assert_eq!(status(&dir.campaign, &dir.db)["sent"], 1);
}

/// `herald preview` of a campaign with a return path: the envelope it shows is the VERP one
/// `send` uses, and when the database's return-path key cannot be read it says so and shows
/// nothing, rather than a plain envelope `send` would never use (issue #13). Needs the
/// `sqlite3` shell to damage the key.
#[test]
fn a_damaged_return_path_key_stops_the_preview_with_a_clear_message() {
    if crate::support::tools::skip_if_missing(
        (!Path::new("/usr/bin/sqlite3").exists())
            .then(|| "the sqlite3 shell is not installed (Debian package `sqlite3`)".to_string()),
    ) {
        return;
    }
    let dir = crate::support::campaign::campaign_with(
        &["ada@example.org".to_string()],
        &[RelayConf::new("relay", closed_port())],
        "",
        &format!(
            "[bounces]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"tls\"\nusername = \"bounces\"\n\
             password_env = \"{PASSWORD_ENV}\"\nreturn_path = \"bounces@acme.example\"\n",
            closed_port()
        ),
    );
    let preview = || run(&["preview", "--summary"], &dir.campaign, &dir.db, "pw");
    let first = preview();
    first.assert_code(0);
    assert!(
        first.stdout.contains("envelope: bounces+")
            && first.stdout.contains("@acme.example -> ada@example.org"),
        "{}",
        first.stdout
    );
    let damaged = std::process::Command::new("sqlite3")
        .arg(&dir.db)
        .arg("UPDATE secret SET value = x'00' WHERE name = 'return-path';")
        .status()
        .expect("sqlite3");
    assert!(damaged.success());
    let second = preview();
    second.assert_code(1);
    assert!(
        second.stderr.contains("signing keys") && second.stderr.contains("cannot be read"),
        "{}",
        second.all()
    );
    assert!(!second.stdout.contains("envelope:"), "{}", second.stdout);
}

/// The round trip through a real Postfix (issue #13, "Real parts"): Herald sends through it,
/// with a VERP return path, to a local user Postfix does not know; Postfix accepts the message,
/// fails to deliver it and sends its own delivery report (its DSN, not one written here) to the
/// return path, which it delivers into the Maildir Dovecot serves; `herald bounces` reads it over
/// IMAP, names the recipient by the tag of the address the report came back to, and marks them
/// bounced and suppressed. The recipient Postfix does know stays `sent`.
#[test]
fn postfixs_own_bounce_of_an_unknown_user_comes_back_through_dovecot_and_bounces_the_recipient() {
    if dovecot::skip() || crate::support::postfix::skip(false) {
        return;
    }
    let dovecot = Dovecot::start();
    let postfix =
        crate::support::postfix::Postfix::start(&crate::support::postfix::PostfixOptions {
            mailboxes: vec!["ada".into()],
            bounce_unknown: true,
            maildirs: vec![("bounces@acme.example".into(), dovecot.maildir())],
            ..Default::default()
        });
    let domain = crate::support::postfix::DOMAIN;
    let ada = format!("ada@{domain}");
    let ghost = format!("ghost@{domain}");
    let dir = campaign_with(
        &[ada.clone(), ghost.clone()],
        &[RelayConf::new("postfix", postfix.smtp_port)],
        "",
        &bounces_section(&dovecot, dovecot.imaps_port, "tls", ""),
    );
    run(&["send"], &dir.campaign, &dir.db, dovecot::PASSWORD).assert_code(0);
    // Postfix said 250 to both: in relay mode that is all Herald learns at first.
    let counts = status(&dir.campaign, &dir.db);
    assert_eq!(counts["sent"], 2, "{counts}");
    postfix.wait_for_mail("ada", 1, Duration::from_secs(30));

    // Postfix's report arrives in Dovecot's Maildir, addressed to ghost's VERP return path.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let report = loop {
        let messages = dovecot.messages("INBOX");
        if let Some((body, _)) = messages.into_iter().next() {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no bounce reached the Maildir\n--- maillog:\n{}",
            postfix.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        report.contains("report-type=delivery-status") && report.contains("MAILER-DAEMON"),
        "{report}"
    );
    let delivered_to = report
        .lines()
        .find_map(|line| line.strip_prefix("Delivered-To: "))
        .unwrap_or_else(|| panic!("Postfix wrote no Delivered-To:\n{report}"))
        .trim()
        .to_string();
    let tag = delivered_to
        .strip_prefix("bounces+")
        .and_then(|rest| rest.strip_suffix("@acme.example"))
        .unwrap_or_else(|| panic!("not a VERP return path: {delivered_to}"));
    // The tag Postfix returned the report to is the one Herald signed for ghost.
    let ghost_row = crate::support::cli_run::row(&dir.campaign, &dir.db, &ghost);
    let secret = herald::store::Store::open(&dir.db)
        .expect("db")
        .secret(herald::identity::RETURN_PATH_SECRET)
        .expect("secret");
    let named = herald::token::decode(&secret, herald::token::Purpose::ReturnPath, tag)
        .expect("a tag this database signed");
    assert_eq!(named.recipient, ghost_row.id);
    // Matching trusts that tag first (before the returned Message-ID and the failed address).
    let mut store = herald::store::Store::open(&dir.db).expect("db");
    let keys = herald::inbox::matching::Keys {
        return_path: Some(herald::campaign::ReturnPath {
            local: "bounces".into(),
            domain: "acme.example".into(),
        }),
        return_secret: secret,
        unsubscribe_secret: store
            .secret(herald::identity::UNSUBSCRIBE_SECRET)
            .expect("secret"),
    };
    drop(store);
    let reading = herald::inbox::report::read(report.as_bytes());
    let herald::inbox::matching::Plan::Report { wanted, forged } =
        herald::inbox::matching::plan(&keys, &reading)
    else {
        panic!("Postfix's DSN was not read as a report: {reading:?}");
    };
    assert!(!forged);
    assert_eq!(wanted.len(), 1, "{wanted:?}");
    assert_eq!(wanted[0].kind, herald::store::FeedbackKind::Hard);
    assert_eq!(
        wanted[0].proof,
        herald::inbox::matching::Proof::Verified {
            recipient: ghost_row.id,
            campaign: named.campaign,
            by: "VERP tag",
        }
    );

    let summary = bounces_json(&dir);
    assert_eq!(summary["read"], 1, "{summary}");
    assert_eq!(summary["hard"], 1, "{summary}");
    assert_eq!(summary["bounced"], 1, "{summary}");
    assert_eq!(summary["unmatched"], 0, "{summary}");
    let counts = status(&dir.campaign, &dir.db);
    assert_eq!(
        (counts["bounced"].as_u64(), counts["sent"].as_u64()),
        (Some(1), Some(1)),
        "{counts}"
    );
    let ghost_row = crate::support::cli_run::row(&dir.campaign, &dir.db, &ghost);
    assert_eq!(ghost_row.state, herald::store::State::Bounced);
    assert_eq!(suppressed(&dir), [(ghost, "bounced".to_string())]);
    let messages = dovecot.messages("INBOX");
    assert_eq!(messages.len(), 1, "mail was deleted");
    assert!(messages[0].1.contains('S'), "the report is not marked read");
}

/// RFC 3501 §2.3.1.1: a new UIDVALIDITY means the old UIDs name other messages, so the folder is
/// read again from the start; reports already applied change nothing the second time, and the
/// new one is applied. Over plain IMAP (`security = "none"`), which the other tests do not use.
#[test]
fn a_new_uidvalidity_reads_the_folder_again_without_applying_anything_twice() {
    if dovecot::skip() {
        return;
    }
    let (dovecot, smtp, dir) = setup(&["ada@example.org", "bob@example.org"], |d| {
        bounces_section(d, d.imap_port, "none", "")
    });
    run(&["send"], &dir.campaign, &dir.db, dovecot::PASSWORD).assert_code(0);
    let ada = return_path_of(&smtp, "ada@example.org");
    let bob = return_path_of(&smtp, "bob@example.org");
    dovecot.deliver(
        "INBOX",
        &dsn(&ada, "ada@example.org", "5.1.1", "550 5.1.1 no such user"),
    );
    let first = bounces_json(&dir);
    assert_eq!(
        (first["read"].clone(), first["hard"].clone()),
        (1.into(), 1.into()),
        "{first}"
    );
    // Dovecot gives the folder a new UIDVALIDITY when its UID list is gone.
    let maildir = dovecot.maildir();
    for entry in std::fs::read_dir(&maildir).expect("maildir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("dovecot-uidlist") || name.starts_with("dovecot.index") {
            std::fs::remove_file(&path).expect("remove the uid list");
        }
    }
    dovecot.deliver(
        "INBOX",
        &dsn(&bob, "bob@example.org", "5.1.1", "550 5.1.1 no such user"),
    );
    let second = bounces_json(&dir);
    assert_eq!(
        second["read"], 2,
        "both read again under the new UIDVALIDITY: {second}"
    );
    let status = status(&dir.campaign, &dir.db);
    assert_eq!(status["bounced"], 2, "{status}");
    let mut list = suppressed(&dir);
    list.sort();
    assert_eq!(
        list,
        [
            ("ada@example.org".to_string(), "bounced".to_string()),
            ("bob@example.org".to_string(), "bounced".to_string())
        ]
    );
    // Nothing new: a third check reads nothing.
    assert_eq!(bounces_json(&dir)["read"], 0);
}

/// A bounce Herald cannot read (no address, no code in it) is counted as unrecognized and left
/// on the server exactly as it was, for a person to look at; it changes no recipient.
#[test]
fn an_unreadable_bounce_is_counted_unrecognized_and_left_unread() {
    if dovecot::skip() {
        return;
    }
    let (dovecot, _smtp, dir) = setup(&["ada@example.org"], |d| {
        bounces_section(d, d.imaps_port, "tls", "")
    });
    run(&["send"], &dir.campaign, &dir.db, dovecot::PASSWORD).assert_code(0);
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/samples/bounces/unreadable_bounce.eml");
    dovecot.deliver("INBOX", &std::fs::read(sample).expect("sample"));
    let summary = bounces_json(&dir);
    assert_eq!(summary["read"], 1, "{summary}");
    assert_eq!(summary["unrecognized"], 1, "{summary}");
    assert_eq!(summary["hard"], 0, "{summary}");
    let messages = dovecot.messages("INBOX");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].1, "", "the unreadable bounce was flagged");
    assert_eq!(status(&dir.campaign, &dir.db)["sent"], 1);
    assert!(suppressed(&dir).is_empty());
}

/// A stranger's message of `bytes`: a photo attached as base64 lines.
fn big_message(bytes: usize, subject: &str) -> Vec<u8> {
    let mut raw = format!(
        "From: Stranger <someone@example.net>\r\nTo: bounces@acme.example\r\nSubject: {subject}\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
         --B\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    let line = format!("{}\r\n", "QUJD".repeat(19));
    while raw.len() + line.len() < bytes {
        raw.extend_from_slice(line.as_bytes());
    }
    raw.extend_from_slice(b"--B--\r\n");
    raw
}

/// Issue #21: big messages in the bounce folder (here three of 6 MB, between real reports) neither stop the check nor cost their size: each is read only in part, counted
/// `too_large`, named, and left exactly as it was (not flagged, not moved), while the reports
/// around them are applied; the next check fetches none of them again.
#[test]
fn big_messages_are_counted_too_large_and_left_alone_while_the_reports_apply() {
    if dovecot::skip() {
        return;
    }
    let (dovecot, smtp, dir) = setup(&["ada@example.org", "bob@example.org"], |d| {
        bounces_section(d, d.imaps_port, "tls", "processed_folder = \"Processed\"")
    });
    dovecot.create_folder("Processed");
    run(&["send"], &dir.campaign, &dir.db, dovecot::PASSWORD).assert_code(0);
    let ada = return_path_of(&smtp, "ada@example.org");
    let bob = return_path_of(&smtp, "bob@example.org");
    const SIX_MB: usize = 6 * 1024 * 1024;
    dovecot.deliver("INBOX", &big_message(SIX_MB, "pictures one"));
    dovecot.deliver(
        "INBOX",
        &dsn(&ada, "ada@example.org", "5.1.1", "550 5.1.1 no such user"),
    );
    // Two copies of one, as hard links of one file (as the benchmark's thousand are).
    dovecot.deliver_links("INBOX", &big_message(SIX_MB, "pictures two"), 2);
    dovecot.deliver(
        "INBOX",
        &dsn(&bob, "bob@example.org", "5.1.1", "550 5.1.1 no such user"),
    );
    let summary = bounces_json(&dir);
    assert_eq!(summary["read"], 2, "{summary}");
    assert_eq!(summary["hard"], 2, "{summary}");
    assert_eq!(summary["bounced"], 2, "{summary}");
    assert_eq!(summary["too_large"], 3, "{summary}");
    assert_eq!(summary["not_fetched"], 0, "{summary}");
    let passed = summary["passed"].as_array().expect("passed");
    assert_eq!(passed.len(), 3, "{summary}");
    for (line, subject) in passed
        .iter()
        .zip(["pictures one", "pictures two", "pictures two"])
    {
        let line = line.as_str().unwrap_or_default();
        assert!(
            line.contains(subject) && line.contains("over the 2 MB bound"),
            "{line}"
        );
    }
    assert_eq!(status(&dir.campaign, &dir.db)["bounced"], 2);
    // The big ones stay in the inbox as they were; the reports moved, marked read.
    let inbox = dovecot.messages("INBOX");
    assert_eq!(
        inbox.len(),
        3,
        "{:?}",
        inbox.iter().map(|m| &m.1).collect::<Vec<_>>()
    );
    for (body, flags) in &inbox {
        assert!(
            body.contains("Subject: pictures"),
            "a report was left behind"
        );
        assert_eq!(flags, "", "a big message was flagged");
    }
    let processed = dovecot.messages("Processed");
    assert_eq!(processed.len(), 2);
    // The cursor passed them: nothing is fetched again.
    let again = bounces_json(&dir);
    assert_eq!(
        (again["read"].clone(), again["too_large"].clone()),
        (0.into(), 0.into()),
        "{again}"
    );
}

/// Issue #21: a message the server cannot give (here a Maildir file Dovecot may not read, so
/// its FETCH fails) is tried once more alone, then passed and named; the reports on both sides
/// of it are applied, and the next check goes on after it instead of failing on it again.
#[test]
fn a_message_the_server_cannot_give_is_passed_and_named_and_blocks_nothing() {
    if dovecot::skip() {
        return;
    }
    let (dovecot, smtp, dir) = setup(&["ada@example.org", "bob@example.org"], |d| {
        bounces_section(d, d.imaps_port, "tls", "")
    });
    run(&["send"], &dir.campaign, &dir.db, dovecot::PASSWORD).assert_code(0);
    let ada = return_path_of(&smtp, "ada@example.org");
    let bob = return_path_of(&smtp, "bob@example.org");
    dovecot.deliver(
        "INBOX",
        &dsn(&ada, "ada@example.org", "5.1.1", "550 5.1.1 no such user"),
    );
    dovecot.deliver("INBOX", FRIENDLY);
    dovecot.deliver(
        "INBOX",
        &dsn(&bob, "bob@example.org", "5.1.1", "550 5.1.1 no such user"),
    );
    dovecot.make_unreadable("INBOX", "lunch?");
    let summary = bounces_json(&dir);
    assert_eq!(summary["hard"], 2, "{summary}\n{}", dovecot.log());
    assert_eq!(summary["bounced"], 2, "{summary}");
    assert_eq!(summary["not_fetched"], 1, "{summary}");
    let passed = summary["passed"].as_array().expect("passed");
    assert_eq!(passed.len(), 1, "{summary}");
    assert!(
        passed[0].as_str().unwrap_or_default().starts_with("UID 2:"),
        "{summary}"
    );
    let again = bounces_json(&dir);
    assert_eq!(
        (again["read"].clone(), again["not_fetched"].clone()),
        (0.into(), 0.into()),
        "{again}"
    );
}

/// A report of `bytes` as a provider writes one that returns a newsletter with its pictures:
/// delivered to `to`, the human text and the status part for `failed` first, then the whole
/// returned message (RFC 3464 §2).
fn big_dsn(to: &str, failed: &str, bytes: usize) -> Vec<u8> {
    let mut raw = format!(
        "Return-Path: <>\r\nDelivered-To: {to}\r\n\
         From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\nTo: {to}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"RB\"\r\n\r\n\
         --RB\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n\
         --RB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\
         Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <{failed}>: user unknown\r\n\r\n\
         --RB\r\nContent-Type: message/rfc822\r\n\r\n\
         From: Test Sender <sender@herald.example>\r\nTo: {failed}\r\nSubject: Hi\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"N\"\r\n\r\n\
         --N\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    let line = format!("{}\r\n", "QUJD".repeat(19));
    while raw.len() + line.len() < bytes {
        raw.extend_from_slice(line.as_bytes());
    }
    raw.extend_from_slice(b"--N--\r\n\r\n--RB--\r\n");
    raw
}

/// Issue #21: a report over the 2 MB bound is read only in part, and applied when that part
/// holds its whole status part. A 3 MB DSN to ada's VERP return path bounces and suppresses
/// her and is marked read; a 3 MB DSN naming bob, sent to the plain address with no proof, is
/// held unverified as a small one would be (a partial read proves no more than a whole one);
/// a 3 MB message with no report part stays `too_large`, named and left unread. (Before, all
/// three were `too_large` and ada was mailed again.)
#[test]
fn a_big_report_whose_status_part_was_read_applies_and_other_big_mail_stays_too_large() {
    if dovecot::skip() {
        return;
    }
    let (dovecot, smtp, dir) = setup(&["ada@example.org", "bob@example.org"], |d| {
        bounces_section(d, d.imaps_port, "tls", "")
    });
    run(&["send"], &dir.campaign, &dir.db, dovecot::PASSWORD).assert_code(0);
    let ada = return_path_of(&smtp, "ada@example.org");
    const THREE_MB: usize = 3 * 1024 * 1024;
    dovecot.deliver("INBOX", &big_dsn(&ada, "ada@example.org", THREE_MB));
    dovecot.deliver(
        "INBOX",
        &big_dsn("bounces@acme.example", "bob@example.org", THREE_MB),
    );
    dovecot.deliver("INBOX", &big_message(THREE_MB, "pictures"));
    let summary = bounces_json(&dir);
    for (key, expected) in [
        ("read", 2),
        ("hard", 1),
        ("bounced", 1),
        ("suppressed", 1),
        ("unverified", 1),
        ("too_large", 1),
        ("not_fetched", 0),
    ] {
        assert_eq!(summary[key], expected, "{key}: {summary}");
    }
    let passed = summary["passed"].as_array().expect("passed");
    assert_eq!(passed.len(), 1, "{summary}");
    assert!(
        passed[0].as_str().unwrap_or_default().contains("pictures"),
        "{summary}"
    );
    assert_eq!(
        suppressed(&dir),
        vec![("ada@example.org".to_string(), "bounced".to_string())]
    );
    let counts = status(&dir.campaign, &dir.db);
    assert_eq!(
        (counts["bounced"].as_u64(), counts["sent"].as_u64()),
        (Some(1), Some(1))
    );
    let waiting = summary["unverified_waiting"].as_array().expect("held");
    assert_eq!(waiting.len(), 1, "{summary}");
    assert_eq!(waiting[0]["address"], "bob@example.org");
    // Both reports were handled (marked read, as a small one is, held or applied); the big
    // message that is none is left exactly as it was.
    let inbox = dovecot.messages("INBOX");
    assert_eq!(inbox.len(), 3);
    for (body, flags) in &inbox {
        let is_report = body.contains("Subject: Undelivered Mail");
        assert_eq!(flags.contains('S'), is_report, "{flags:?} {:.200}", body);
    }
}

/// Issue #21, the per-message deadline: on a link that slows to a crawl in the middle of one
/// message (a proxy between Herald and Dovecot that, once bob's report starts to come, passes
/// 10 bytes a second), that message is given up after its own deadline (20 s for a small one),
/// tried once more alone on a fresh connection, then passed and named; the reports before and
/// after it in the same batch are applied, and the next check does not fetch it again. One
/// slow message costs its own deadline twice, not the check.
#[test]
fn a_message_that_crawls_on_a_slow_link_is_passed_after_its_own_deadline() {
    if dovecot::skip() {
        return;
    }
    let dovecot = Dovecot::start();
    let link = crate::support::slow_link::SlowLink::start(dovecot.imap_port, b"X-Crawl: yes", 10);
    let smtp = SmtpServer::start();
    let emails: Vec<String> = ["ada@example.org", "bob@example.org", "cy@example.org"]
        .iter()
        .map(|e| e.to_string())
        .collect();
    let dir = campaign_with(
        &emails,
        &[RelayConf::new("relay", smtp.port())],
        "",
        &bounces_section(&dovecot, link.port, "none", ""),
    );
    run(&["send"], &dir.campaign, &dir.db, dovecot::PASSWORD).assert_code(0);
    let report_for = |email: &str| {
        dsn(
            &return_path_of(&smtp, email),
            email,
            "5.1.1",
            "550 5.1.1 no such user",
        )
    };
    dovecot.deliver("INBOX", &report_for("ada@example.org"));
    let mut slow = b"X-Crawl: yes\r\n".to_vec();
    slow.extend_from_slice(&report_for("bob@example.org"));
    dovecot.deliver("INBOX", &slow);
    dovecot.deliver("INBOX", &report_for("cy@example.org"));
    let summary = bounces_json(&dir);
    for (key, expected) in [("read", 2), ("bounced", 2), ("not_fetched", 1)] {
        assert_eq!(summary[key], expected, "{key}: {summary}");
    }
    let passed = summary["passed"].as_array().expect("passed");
    assert_eq!(passed.len(), 1, "{summary}");
    let named = passed[0].as_str().unwrap_or_default();
    assert!(
        named.starts_with("UID 2:") && named.contains("did not arrive within"),
        "{named}"
    );
    assert!(link.slowed() >= 2, "slowed {} times", link.slowed());
    let mut suppressed: Vec<String> = suppressed(&dir).into_iter().map(|(a, _)| a).collect();
    suppressed.sort();
    assert_eq!(suppressed, ["ada@example.org", "cy@example.org"]);
    let slowed_before = link.slowed();
    let again = bounces_json(&dir);
    assert_eq!(
        (again["read"].clone(), again["not_fetched"].clone()),
        (0.into(), 0.into()),
        "{again}"
    );
    assert_eq!(
        link.slowed(),
        slowed_before,
        "the slow message was fetched again"
    );
}
