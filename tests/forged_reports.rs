//! Reports a stranger can write change nobody (issue #21, section 1), and addresses a server
//! refused as dead during the send are suppressed (section 5). Over real sockets: Herald sends
//! through the scriptable SMTP server with VERP return paths and keyed Message-IDs; the test
//! drops forged and genuine reports into a real Dovecot's Maildir, and the real `herald
//! bounces` reads them over IMAP. Forged ones (a DSN to the plain bounce address, an ARF
//! complaint naming an address, a Postfix-style text bounce, Message-IDs one above and below
//! the attacker's own, a DSN naming a real address among 998 made-up ones) change no
//! recipient; those that name someone are held until the user applies them by id. Genuine ones (a
//! valid tag in the envelope or in the returned Return-Path, a keyed Message-ID) apply at once.

use std::path::Path;
use std::time::Duration;

use crate::support::campaign::{CampaignDir, RelayConf, campaign_with};
use crate::support::cli_run::{Ran, herald, herald_command, row, status};
use crate::support::dovecot::{self, Dovecot};
use crate::support::smtp_server::{Reply, SmtpServer};

const PASSWORD_ENV: &str = "HERALD_TEST_IMAP_PASSWORD";
const LIMIT: Duration = Duration::from_secs(120);
const PLAIN: &str = "bounces@acme.example";

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const CAROL: &str = "carol@example.org";
const DAVE: &str = "dave@example.org";
const ERIN: &str = "erin@example.org";
const FRANK: &str = "frank@example.org";
/// The attacker: a subscriber who reads their own copy.
const MALLORY: &str = "mallory@example.net";
const ALL: [&str; 7] = [ALICE, BOB, CAROL, DAVE, ERIN, FRANK, MALLORY];

fn run(args: &[&str], campaign: &Path, db: &Path) -> Ran {
    herald(
        args,
        campaign,
        db,
        &[(PASSWORD_ENV, dovecot::PASSWORD)],
        LIMIT,
    )
}

fn json_of(ran: &Ran) -> serde_json::Value {
    ran.assert_code(0);
    serde_json::from_str(ran.stdout.trim())
        .unwrap_or_else(|error| panic!("no JSON ({error}):\n{}", ran.all()))
}

fn suppressed(db: &Path) -> Vec<(String, String)> {
    let mut command = herald_command();
    command
        .args(["suppression", "list", "--json", "--db"])
        .arg(db);
    let list = json_of(&crate::support::cli_run::run(command, LIMIT));
    let mut pairs: Vec<(String, String)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|entry| {
            (
                entry["address"].as_str().unwrap_or_default().to_string(),
                entry["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = list
        .iter()
        .map(|(a, r)| (a.to_string(), r.to_string()))
        .collect();
    pairs.sort();
    pairs
}

/// What Herald put on the wire for `email`: its envelope sender and Message-ID (no brackets).
fn sent_to(smtp: &SmtpServer, email: &str) -> (String, String) {
    let message = smtp
        .received()
        .into_iter()
        .find(|message| message.rcpt_to.iter().any(|to| to == email))
        .unwrap_or_else(|| panic!("nothing was sent to {email}"));
    let data = message.data_str();
    let id = data
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("message-id")
                .then(|| value.trim().trim_matches(['<', '>']).to_string())
        })
        .unwrap_or_else(|| panic!("no Message-ID:\n{data}"));
    (message.mail_from, id)
}

/// An RFC 3464 report delivered to `to`, one group per failed address, returning the headers
/// given (Message-ID, Return-Path…).
fn report(to: &str, failed: &[String], returned: &str) -> Vec<u8> {
    let groups: String = failed
        .iter()
        .map(|address| {
            format!(
                "Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
                 Diagnostic-Code: smtp; 550 5.1.1 <{address}>: user unknown\r\n\r\n"
            )
        })
        .collect();
    format!(
        "Return-Path: <>\r\nDelivered-To: {to}\r\n\
         From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\nTo: {to}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"RB\"\r\n\r\n\
         --RB\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n\
         --RB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\
         {groups}--RB\r\nContent-Type: text/rfc822-headers\r\n\r\n\
         From: Acme News <news@acme.example>\r\nSubject: News\r\n{returned}\r\n--RB--\r\n"
    )
    .into_bytes()
}

/// An ARF complaint (RFC 5965) sent to the plain address, naming `address`, no tag, no id.
fn complaint(address: &str) -> Vec<u8> {
    format!(
        "Return-Path: <>\r\nDelivered-To: {PLAIN}\r\nFrom: Feedback <fbl@isp.example>\r\n\
         To: {PLAIN}\r\nSubject: FW: News\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n\
         --F\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n\r\n\
         --F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n\
         User-Agent: Forger/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: <{address}>\r\n\r\n\
         --F\r\nContent-Type: message/rfc822\r\n\r\nFrom: Acme News <news@acme.example>\r\n\
         To: {address}\r\nSubject: News\r\n\r\nHello.\r\n\r\n--F--\r\n"
    )
    .into_bytes()
}

/// A Postfix-style plain-text bounce to the plain address, naming `address`.
fn text_bounce(address: &str) -> Vec<u8> {
    format!(
        "Return-Path: <>\r\nDelivered-To: {PLAIN}\r\n\
         From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nTo: {PLAIN}\r\n\r\n\
         This is the Postfix program at host mx.example.com.\r\n\r\n\
         I'm sorry to have to inform you that the message returned\r\n\
         below could not be delivered to one or more destinations.\r\n\r\n\
         <{address}>: host mx.example.com[203.0.113.5] said: 550 5.1.1\r\n    \
         <{address}>: Recipient address rejected: User unknown in\r\n    \
         local recipient table (in reply to RCPT TO command)\r\n"
    )
    .into_bytes()
}

/// `id` (a keyed Message-ID `c.r.mac.herald@domain`) with its recipient part moved by `step`
/// and its MAC kept: what an attacker makes from their own copy.
fn neighbour(id: &str, step: i64) -> String {
    let mut parts: Vec<String> = id.splitn(3, '.').map(str::to_string).collect();
    let recipient = i64::from_str_radix(&parts[1], 36).expect("base 36 recipient") + step;
    let mut digits = Vec::new();
    let mut value = recipient as u64;
    loop {
        digits.push(std::char::from_digit((value % 36) as u32, 36).expect("digit"));
        value /= 36;
        if value == 0 {
            break;
        }
    }
    parts[1] = digits.into_iter().rev().collect();
    parts.join(".")
}

fn start(emails: &[&str], bounces: bool) -> (Option<Dovecot>, SmtpServer, CampaignDir) {
    let dovecot = bounces.then(Dovecot::start);
    let smtp = SmtpServer::builder()
        .attempt_rule(|rcpt, attempt| match rcpt {
            "gone@example.org" if attempt == 1 => Reply::PermFail,
            "policy@example.org" if attempt == 1 => Reply::PolicyReject,
            "full@example.org" if attempt == 1 => Reply::Custom {
                code: 552,
                text: "5.2.2 mailbox full".into(),
            },
            _ => Reply::Accept,
        })
        .start();
    let section = dovecot
        .as_ref()
        .map(|dovecot| {
            format!(
                "[bounces]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"tls\"\n\
                 username = \"{}\"\npassword_env = \"{PASSWORD_ENV}\"\nca_file = \"{}\"\n\
                 return_path = \"{PLAIN}\"\n",
                dovecot.imaps_port,
                dovecot::USER,
                dovecot.ca_file().display()
            )
        })
        .unwrap_or_default();
    let emails: Vec<String> = emails.iter().map(|e| e.to_string()).collect();
    let dir = campaign_with(
        &emails,
        &[RelayConf::new("relay", smtp.port())],
        "",
        &section,
    );
    (dovecot, smtp, dir)
}

#[test]
fn forged_reports_change_nobody_until_the_user_applies_them() {
    if dovecot::skip() {
        return;
    }
    let (dovecot, smtp, dir) = start(&ALL, true);
    let dovecot = dovecot.expect("dovecot");
    run(&["send"], &dir.campaign, &dir.db).assert_code(0);
    let (_, mallory_id) = sent_to(&smtp, MALLORY);
    let (mallory_path, _) = sent_to(&smtp, MALLORY);
    assert!(mallory_id.contains(".herald@"), "{mallory_id}");
    let made_up: Vec<String> = std::iter::once(FRANK.to_string())
        .chain((0..998).map(|n| format!("nobody{n}@made-up.example")))
        .collect();
    let forged = [
        // An RFC 3464 report to the plain address naming alice.
        report(PLAIN, &[ALICE.into()], ""),
        // An ARF complaint with Original-Rcpt-To: bob.
        complaint(BOB),
        // A Postfix-style text bounce naming carol.
        text_bounce(CAROL),
        // Message-IDs one above and one below the attacker's own.
        report(
            PLAIN,
            &["who@example.net".into()],
            &format!("Message-ID: <{}>\r\n", neighbour(&mallory_id, 1)),
        ),
        report(
            PLAIN,
            &["who@example.net".into()],
            &format!("Message-ID: <{}>\r\n", neighbour(&mallory_id, -1)),
        ),
        // Frank among 998 made-up addresses.
        report(PLAIN, &made_up, ""),
        // Two people Herald mailed in one report: one message has one recipient.
        report(PLAIN, &[ALICE.into(), DAVE.into()], ""),
    ];
    for message in &forged {
        dovecot.deliver("INBOX", message);
    }
    let before = dovecot.messages("INBOX").len();
    assert_eq!(before, forged.len());
    // Genuine reports: a tag in the envelope, a tag in the returned Return-Path of a report
    // sent to the plain address, the attacker's own keyed Message-ID.
    let (erin_path, _) = sent_to(&smtp, ERIN);
    dovecot.deliver("INBOX", &report(&erin_path, &[ERIN.into()], ""));
    let (dave_path, _) = sent_to(&smtp, DAVE);
    dovecot.deliver(
        "INBOX",
        &report(
            PLAIN,
            &[DAVE.into()],
            &format!("Return-Path: <{dave_path}>\r\nTo: {DAVE}\r\n"),
        ),
    );
    dovecot.deliver(
        "INBOX",
        &report(
            PLAIN,
            &["mallory@forwarded.example".into()],
            &format!("Message-ID: <{mallory_id}>\r\n"),
        ),
    );
    assert_ne!(mallory_path, PLAIN);

    let summary = json_of(&run(&["bounces", "--json"], &dir.campaign, &dir.db));
    for (key, expected) in [
        ("read", 10),
        ("hard", 3),
        ("bounced", 3),
        ("suppressed", 3),
        ("complaints", 0),
        ("unverified", 4),
        ("forged", 2),
        // The two forged ids and the report naming two people.
        ("unmatched", 3),
    ] {
        assert_eq!(summary[key], expected, "{key}: {summary}");
    }
    let state = |email| {
        row(&dir.campaign, &dir.db, email)
            .state
            .as_str()
            .to_string()
    };
    for email in [ALICE, BOB, CAROL, FRANK] {
        assert_eq!(
            state(email),
            "sent",
            "{email} was changed by a forged report"
        );
    }
    for email in [DAVE, ERIN, MALLORY] {
        assert_eq!(state(email), "bounced", "{email}'s genuine bounce");
    }
    assert_eq!(
        suppressed(&dir.db),
        pairs(&[(DAVE, "bounced"), (ERIN, "bounced"), (MALLORY, "bounced")])
    );
    let waiting = summary["unverified_waiting"].as_array().expect("list");
    let mut held: Vec<(String, String)> = waiting
        .iter()
        .map(|entry| {
            let evidence = entry["evidence"].as_str().unwrap_or_default();
            assert!(
                evidence.contains("no VERP tag or keyed Message-ID"),
                "{evidence}"
            );
            (
                entry["address"].as_str().unwrap_or_default().to_string(),
                entry["kind"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    held.sort();
    assert_eq!(
        held,
        pairs(&[
            (ALICE, "hard"),
            (BOB, "complaint"),
            (CAROL, "hard"),
            (FRANK, "hard")
        ])
    );
    let frank = waiting
        .iter()
        .find(|entry| entry["address"] == FRANK)
        .expect("frank");
    assert!(
        frank["evidence"]
            .as_str()
            .unwrap_or_default()
            .contains("it lists 999 addresses"),
        "{frank}"
    );
    let text = run(&["status"], &dir.campaign, &dir.db);
    assert!(
        text.stdout
            .lines()
            .any(|line| line.split_whitespace().collect::<Vec<_>>() == ["unverified", "4"]),
        "{}",
        text.all()
    );

    // The plain output says what waits and how to apply it; nothing new is read.
    let text = run(&["bounces"], &dir.campaign, &dir.db);
    text.assert_code(0);
    let ids: Vec<String> = waiting
        .iter()
        .map(|entry| entry["id"].as_str().expect("id").to_string())
        .collect();
    let carol_id = &ids[held_index(waiting, CAROL)];
    assert!(
        text.stdout
            .contains(&format!("unverified: {carol_id} {CAROL}"))
            && text.stdout.contains(&format!("only the address {CAROL}"))
            && text.stdout.contains(" --apply ID,…")
            && text.stdout.contains(&format!("--apply {}", ids.join(","))),
        "{}",
        text.all()
    );

    // The user looked and says apply, naming what they saw.
    let applied = json_of(&run(
        &["bounces", "--apply", &ids.join(","), "--json"],
        &dir.campaign,
        &dir.db,
    ));
    assert_eq!(
        (
            applied["applied"].as_u64(),
            applied["bounced"].as_u64(),
            applied["suppressed"].as_u64()
        ),
        (Some(4), Some(3), Some(4)),
        "{applied}"
    );
    for email in [ALICE, CAROL, FRANK] {
        assert_eq!(state(email), "bounced", "{email}");
    }
    assert_eq!(state(BOB), "sent");
    assert_eq!(
        suppressed(&dir.db),
        pairs(&[
            (ALICE, "bounced"),
            (BOB, "complained"),
            (CAROL, "bounced"),
            (DAVE, "bounced"),
            (ERIN, "bounced"),
            (FRANK, "bounced"),
            (MALLORY, "bounced"),
        ])
    );
    assert!(
        !run(&["status"], &dir.campaign, &dir.db)
            .stdout
            .contains("unverified"),
        "nothing is held any more"
    );
    // Applied once: the same ids again name nothing held, and change nothing.
    let again = run(
        &["bounces", "--apply", &ids.join(",")],
        &dir.campaign,
        &dir.db,
    );
    again.assert_code(1);
    assert!(again.stderr.contains("is held"), "{}", again.all());
}

/// The index in `waiting` (the `unverified_waiting` list) of the report naming `email`.
fn held_index(waiting: &[serde_json::Value], email: &str) -> usize {
    waiting
        .iter()
        .position(|entry| entry["address"] == email)
        .unwrap_or_else(|| panic!("{email} is not held: {waiting:?}"))
}

/// Without `[bounces] return_path`, `check` says reports can then only be matched unverified.
#[test]
fn check_says_reports_are_unverified_without_a_return_path() {
    let dir = campaign_with(
        &[ALICE.to_string()],
        &[RelayConf::new(
            "relay",
            crate::support::campaign::closed_port(),
        )],
        "",
        &format!(
            "[bounces]\nhost = \"127.0.0.1\"\nusername = \"bounces\"\n\
             password_env = \"{PASSWORD_ENV}\"\n"
        ),
    );
    let checked = run(&["check"], &dir.campaign, &dir.db);
    assert!(
        checked.stdout.contains("no [bounces] return_path")
            && checked.stdout.contains("matched unverified"),
        "{}",
        checked.all()
    );
}

/// Section 5: a `550 5.1.1` at send time puts the address on the global suppression list with
/// the reply as evidence; a policy block and a full mailbox do not. Resend leaves the dead
/// address out (a later campaign skips it too) unless `--include-hard`, which takes it off the
/// list and sends.
#[test]
fn a_send_time_no_such_user_is_suppressed_and_resend_skips_it_unless_asked() {
    let emails = [
        "ok@example.org",
        "gone@example.org",
        "policy@example.org",
        "full@example.org",
    ];
    let (_, smtp, dir) = start(&emails, false);
    let sent = run(&["send"], &dir.campaign, &dir.db);
    sent.assert_code(0);
    let counts = status(&dir.campaign, &dir.db);
    assert_eq!(
        (counts["sent"].as_u64(), counts["failed"].as_u64()),
        (Some(1), Some(3))
    );
    let mut command = herald_command();
    command
        .args(["suppression", "list", "--json", "--db"])
        .arg(&dir.db);
    let list = json_of(&crate::support::cli_run::run(command, LIMIT));
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["address"], "gone@example.org");
    assert_eq!(list[0]["reason"], "bounced");
    let evidence = list[0]["evidence"].as_str().unwrap_or_default();
    assert!(
        evidence.contains("550") && evidence.contains("5.1.1"),
        "{evidence}"
    );

    let resent = run(&["resend"], &dir.campaign, &dir.db);
    resent.assert_code(0);
    assert!(
        resent.stdout.contains("2 recipient(s) put back to pending")
            && resent.stdout.contains("--include-hard"),
        "{}",
        resent.all()
    );
    assert_eq!(
        row(&dir.campaign, &dir.db, "gone@example.org")
            .state
            .as_str(),
        "failed"
    );
    assert_eq!(smtp.rcpt_attempts().get("gone@example.org"), Some(&1));
    let counts = status(&dir.campaign, &dir.db);
    assert_eq!(
        (counts["sent"].as_u64(), counts["failed"].as_u64()),
        (Some(3), Some(1))
    );

    // A later campaign over the same list does not mail it either.
    let later = dir.path().join("later.toml");
    std::fs::copy(&dir.campaign, &later).expect("copy campaign");
    run(&["send"], &later, &dir.db).assert_code(0);
    let skipped = row(&later, &dir.db, "gone@example.org");
    assert_eq!(skipped.state.as_str(), "skipped");
    assert_eq!(skipped.skip_reason.as_deref(), Some("suppressed: bounced"));
    assert_eq!(smtp.rcpt_attempts().get("gone@example.org"), Some(&1));

    // Asked for: resent, and off the list.
    let forced = run(&["resend", "--include-hard"], &dir.campaign, &dir.db);
    forced.assert_code(0);
    assert!(
        forced.stdout.contains("1 recipient(s) put back to pending"),
        "{}",
        forced.all()
    );
    assert_eq!(
        row(&dir.campaign, &dir.db, "gone@example.org")
            .state
            .as_str(),
        "sent"
    );
    assert_eq!(smtp.rcpt_attempts().get("gone@example.org"), Some(&2));
    let mut command = herald_command();
    command
        .args(["suppression", "list", "--json", "--db"])
        .arg(&dir.db);
    let list = json_of(&crate::support::cli_run::run(command, LIMIT));
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
}

/// Issue #21: applying unverified reports takes only those the user names. The user lists
/// what is held (alice's text bounce, carol's complaint); then a stranger's bounce naming bob
/// arrives and a later check (the one `herald send` runs first) holds it. `--apply ALICE_ID`
/// applies alice's alone, so bob, never seen, stays mailed and off the list; `--dismiss` forgets
/// carol's; an id no longer held, or one that is not an id, changes nothing. Last,
/// `--apply-unverified` (the flag) applies what is still held, bob's, and names it.
#[test]
fn only_the_unverified_reports_the_user_names_are_applied() {
    if dovecot::skip() {
        return;
    }
    let (dovecot, _smtp, dir) = start(&[ALICE, BOB, CAROL], true);
    let dovecot = dovecot.expect("dovecot");
    run(&["send"], &dir.campaign, &dir.db).assert_code(0);
    dovecot.deliver("INBOX", &text_bounce(ALICE));
    dovecot.deliver("INBOX", &complaint(CAROL));
    let listed = json_of(&run(&["bounces", "--json"], &dir.campaign, &dir.db));
    let waiting = listed["unverified_waiting"].as_array().expect("list");
    assert_eq!(waiting.len(), 2, "{listed}");
    let id_of = |email| {
        waiting[held_index(waiting, email)]["id"]
            .as_str()
            .expect("id")
            .to_string()
    };
    let (alice_id, carol_id) = (id_of(ALICE), id_of(CAROL));
    assert!(alice_id.ends_with(":hard") && carol_id.ends_with(":complaint"));

    // After the user looked: a stranger's bounce naming bob, held by the check a send runs.
    dovecot.deliver("INBOX", &text_bounce(BOB));
    run(&["send"], &dir.campaign, &dir.db).assert_code(0);
    let state = |email| {
        row(&dir.campaign, &dir.db, email)
            .state
            .as_str()
            .to_string()
    };
    let held = |ran: &Ran| {
        ran.stdout
            .lines()
            .filter(|line| line.starts_with("unverified: "))
            .count()
    };

    let applied = json_of(&run(
        &["bounces", "--apply", &alice_id, "--json"],
        &dir.campaign,
        &dir.db,
    ));
    assert_eq!(
        (applied["applied"].as_u64(), applied["bounced"].as_u64()),
        (Some(1), Some(1)),
        "{applied}"
    );
    assert_eq!(state(ALICE), "bounced");
    assert_eq!(
        state(BOB),
        "sent",
        "bob's report was never shown, never named"
    );
    assert_eq!(state(CAROL), "sent");
    assert_eq!(suppressed(&dir.db), pairs(&[(ALICE, "bounced")]));

    let dismissed = json_of(&run(
        &["bounces", "--dismiss", &carol_id, "--json"],
        &dir.campaign,
        &dir.db,
    ));
    assert_eq!(dismissed["dismissed"], 1, "{dismissed}");
    assert_eq!(dismissed["applied"], 0, "{dismissed}");
    assert_eq!(state(CAROL), "sent");

    // An id no longer held (alice's was applied) refuses the whole command; so does a word
    // that is not an id. Bob's report, named beside it, stays held.
    let bob_id = {
        let left = run(&["bounces"], &dir.campaign, &dir.db);
        assert_eq!(held(&left), 1, "{}", left.all());
        let line = left
            .stdout
            .lines()
            .find(|line| line.starts_with("unverified: ") && line.contains(BOB))
            .unwrap_or_else(|| panic!("bob is not held:\n{}", left.all()));
        line["unverified: ".len()..]
            .split_whitespace()
            .next()
            .expect("id")
            .to_string()
    };
    let stale = run(
        &["bounces", "--apply", &format!("{alice_id},{bob_id}")],
        &dir.campaign,
        &dir.db,
    );
    stale.assert_code(1);
    assert!(
        stale
            .stderr
            .contains(&format!("no unverified report {alice_id} is held"))
            && stale.stderr.contains("nothing was changed"),
        "{}",
        stale.all()
    );
    // Whole means whole: a dismissal named beside a stale id is not done either.
    let mixed = run(
        &["bounces", "--dismiss", &bob_id, "--apply", &alice_id],
        &dir.campaign,
        &dir.db,
    );
    mixed.assert_code(1);
    let left = run(&["bounces"], &dir.campaign, &dir.db);
    assert_eq!(held(&left), 1, "bob's report was dismissed: {}", left.all());
    let typo = run(&["bounces", "--apply", "alice"], &dir.campaign, &dir.db);
    typo.assert_code(1);
    assert!(
        typo.stderr.contains("\"alice\" is not a report id"),
        "{}",
        typo.all()
    );
    assert_eq!(state(BOB), "sent");
    assert_eq!(suppressed(&dir.db), pairs(&[(ALICE, "bounced")]));

    // The flag: every report held now, each named as it is applied.
    let all = run(&["bounces", "--apply-unverified"], &dir.campaign, &dir.db);
    all.assert_code(0);
    assert!(
        all.stdout
            .lines()
            .any(|line| line.starts_with("applied: ") && line.contains(BOB)),
        "{}",
        all.all()
    );
    assert_eq!(state(BOB), "bounced");
    assert_eq!(
        suppressed(&dir.db),
        pairs(&[(ALICE, "bounced"), (BOB, "bounced")])
    );
    let again = run(&["bounces", "--apply-unverified"], &dir.campaign, &dir.db);
    again.assert_code(0);
    assert!(
        again.stdout.contains("no unverified report is held"),
        "{}",
        again.all()
    );
}
