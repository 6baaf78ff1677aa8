//! The window's side of what comes back (issues #13, #15), driven headless through
//! egui_kittest against real servers: Start pulls the unsubscribe endpoint first (a real
//! `unsubscribe-server` on loopback) and skips who left; an unreachable endpoint asks "Send
//! anyway?" and Cancel sends nothing while Send anyway sends; "Check mailbox" reads a real
//! Dovecot and shows the result, the sender warning, the bounced count and each row's feedback;
//! the Suppression view searches, adds, removes and exports the global list. Start also checks
//! the DNS (issue #23) and asks before sending past a red finding.

// Test helpers fail the test loudly on a broken fixture, as tests/ui.rs does.

use crate::support::window::click_tab;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::support::campaign::{RelayConf, campaign_with, closed_port};
use crate::support::cli_run::herald;
use crate::support::dovecot::{self, Dovecot, dsn};
use crate::support::smtp_server::SmtpServer;
use crate::support::window::{start, wait_until, window};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use herald::store::{State, Store, Suppression, SuppressionReason};
use herald::ui::{HeraldApp, Remembered, Tab};

const LIMIT: Duration = Duration::from_secs(60);
/// The bounce mailbox's password, read by the service thread from the environment.
const PASSWORD_ENV: &str = "HERALD_UI_TEST_IMAP_PASSWORD";

/// Sets the mailbox password once, before any test of this file starts a thread that reads the
/// environment (every test calls this first).
fn environment() {
    static SET: Once = Once::new();
    SET.call_once(|| {
        // SAFETY: runs once, before this binary's tests start any thread of their own; the
        // tests that follow wait on the `Once` and only read.
        unsafe { std::env::set_var(PASSWORD_ENV, dovecot::PASSWORD) };
    });
}

fn harness(db: &Path, campaign: Option<&Path>) -> Harness<'static, HeraldApp> {
    let remembered = Remembered {
        tab: Tab::Library,
        ..Remembered::default()
    };
    window(db, campaign.map(Path::to_path_buf), remembered)
}

fn opened(harness: &mut Harness<'_, HeraldApp>) {
    wait_until(harness, "the campaign to open", |app| {
        app.status().contains("valid")
    });
}

fn emails() -> Vec<String> {
    ["ada@example.org", "grace@example.org", "linus@example.net"]
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The one-click endpoint, served in this process over real TCP with the key of `db`.
struct Endpoint {
    _server: herald::unsubscribe::server::RunningServer,
    addr: SocketAddr,
    _data: tempfile::TempDir,
}

impl Endpoint {
    fn start(db: &Path) -> Endpoint {
        let key = Store::open(db)
            .expect("store")
            .secret(herald::token::UNSUBSCRIBE_KEY)
            .expect("key");
        let data = tempfile::tempdir().expect("data dir");
        std::fs::write(
            data.path().join("unsubscribe.key"),
            herald::unsubscribe::key_to_hex(&key),
        )
        .expect("key file");
        let server = herald::unsubscribe::server::Server::bind("127.0.0.1:0", data.path())
            .expect("bind")
            .spawn()
            .expect("serve");
        let addr = server.addr;
        Endpoint {
            _server: server,
            addr,
            _data: data,
        }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// RFC 8058's POST, as Gmail sends it; returns the status line.
    fn one_click(&self, path: &str) -> String {
        let body = "List-Unsubscribe=One-Click";
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(LIMIT)).expect("timeout");
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: u.acme.example\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.lines().next().unwrap_or_default().to_string()
    }
}

/// A campaign pulling from `endpoint`, with signed links pointing at it.
fn signed_campaign(smtp_port: u16, endpoint: &str) -> crate::support::campaign::CampaignDir {
    campaign_with(
        &emails(),
        &[RelayConf::new("local", smtp_port)],
        "connections = 2",
        &format!("[unsubscribe]\nurl = \"{endpoint}/u/{{token}}\"\nendpoint = \"{endpoint}\"\n"),
    )
}

fn list_unsubscribe_url(message: &str) -> String {
    let head = message.split("\r\n\r\n").next().unwrap_or_default();
    let value = head
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case("List-Unsubscribe")
                .then(|| value.trim())
        })
        .expect("List-Unsubscribe");
    value
        .split(',')
        .map(|part| part.trim().trim_start_matches('<').trim_end_matches('>'))
        .find(|part| part.starts_with("http"))
        .expect("an http link")
        .to_string()
}

#[test]
fn start_pulls_new_unsubscribes_first_and_skips_who_left() {
    environment();
    let shared = tempfile::tempdir().expect("db dir");
    let db = shared.path().join("herald.db");
    let endpoint = Endpoint::start(&db);
    // Campaign A goes out from the command line; grace presses one-click unsubscribe.
    let smtp_a = SmtpServer::start();
    let a = signed_campaign(smtp_a.port(), &endpoint.base());
    herald(&["send"], &a.campaign, &db, &[], LIMIT).assert_code(0);
    let grace = smtp_a
        .received()
        .into_iter()
        .find(|message| message.rcpt_to == ["grace@example.org"])
        .expect("grace got campaign A")
        .data_str();
    let url = list_unsubscribe_url(&grace);
    let path = url.strip_prefix(&endpoint.base()).expect("our endpoint");
    assert!(endpoint.one_click(path).contains(" 200 "), "one-click POST");

    // Campaign B, in the window over the same database: Start pulls before sending.
    let smtp_b = SmtpServer::start();
    let b = signed_campaign(smtp_b.port(), &endpoint.base());
    let mut harness = harness(&db, Some(&b.campaign));
    opened(&mut harness);
    click_tab(&mut harness, "Publish");
    start(&mut harness);
    wait_until(&mut harness, "the run to end", |app| {
        let c = app.counts();
        !app.is_running() && c.sent + c.skipped == 3
    });
    assert!(!harness.state().is_asking_to_send_anyway());
    let pulled = harness
        .state()
        .before_start()
        .and_then(|found| found.pulled.clone())
        .expect("Start pulled")
        .expect("the pull worked");
    assert_eq!((pulled.records, pulled.applied.suppressed), (1, 1));
    assert!(
        harness
            .query_by_label_contains("1 new unsubscribe(s) pulled")
            .is_some(),
        "the pull is shown on Publish"
    );
    let to: Vec<Vec<String>> = smtp_b.received().into_iter().map(|m| m.rcpt_to).collect();
    assert_eq!(to.len(), 2, "{to:?}");
    assert!(
        !to.iter().any(|rcpt| rcpt == &["grace@example.org"]),
        "grace left and was mailed again: {to:?}"
    );
    assert_eq!(harness.state().counts().skipped, 1);
    // Campaign B's mail did not bring the unsubscribe (campaign A's did).
    assert_eq!(harness.state().feedback().unsubscribed, 0);
}

#[test]
fn an_unreachable_endpoint_asks_and_cancel_sends_nothing_while_send_anyway_sends() {
    environment();
    let smtp = SmtpServer::start();
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let dir = signed_campaign(smtp.port(), &endpoint);
    let mut harness = harness(&dir.db, Some(&dir.campaign));
    opened(&mut harness);
    click_tab(&mut harness, "Publish");

    harness.get_by_label("Start").click_accesskit();
    wait_until(&mut harness, "the question", |app| {
        app.is_asking_to_send_anyway()
    });
    assert!(
        harness
            .query_by_label_contains(&format!(
                "The unsubscribe endpoint {endpoint} cannot be reached"
            ))
            .is_some(),
        "the dialog names the endpoint and the reason"
    );
    harness.get_by_label("Cancel").click_accesskit();
    harness.run_steps(3);
    assert!(!harness.state().is_asking_to_send_anyway());
    for _ in 0..20 {
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!harness.state().is_running());
    assert_eq!(smtp.received_count(), 0, "Cancel sent mail");

    harness.get_by_label("Start").click_accesskit();
    wait_until(&mut harness, "the question again", |app| {
        app.is_asking_to_send_anyway()
    });
    harness.get_by_label("Send anyway").click_accesskit();
    wait_until(&mut harness, "the run to end", |app| {
        !app.is_running() && app.counts().sent == 3
    });
    assert_eq!(smtp.received_count(), 3);
}

#[test]
fn check_mailbox_shows_the_result_the_sender_warning_and_each_rows_feedback() {
    environment();
    if dovecot::skip() {
        return;
    }
    let dovecot = Dovecot::start();
    let smtp = SmtpServer::start();
    let bounces = format!(
        "[bounces]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"tls\"\nusername = \"{}\"\n\
         password_env = \"{PASSWORD_ENV}\"\nca_file = \"{}\"\nreturn_path = \"bounces@acme.example\"\n",
        dovecot.imaps_port,
        dovecot::USER,
        dovecot.ca_file().display()
    );
    let dir = campaign_with(
        &[
            "ada@example.org".to_string(),
            "bob@outlook.example".to_string(),
        ],
        &[RelayConf::new("relay", smtp.port())],
        "",
        &bounces,
    );
    let mut harness = harness(&dir.db, Some(&dir.campaign));
    opened(&mut harness);
    click_tab(&mut harness, "Publish");
    assert!(harness.query_by_label("Check mailbox").is_some());
    // Start reads the (empty) mailbox first, then sends.
    start(&mut harness);
    wait_until(&mut harness, "the run to end", |app| {
        !app.is_running() && app.counts().sent == 2
    });
    let read_first = harness
        .state()
        .before_start()
        .and_then(|found| found.mailbox.clone())
        .expect("Start read the mailbox");
    assert_eq!(read_first.expect("the mailbox was read").read, 0);

    let return_path = |email: &str| {
        smtp.received()
            .into_iter()
            .find(|message| message.rcpt_to.iter().any(|to| to == email))
            .map(|message| message.mail_from)
            .expect("sent")
    };
    dovecot.deliver(
        "INBOX",
        &dsn(
            &return_path("ada@example.org"),
            "ada@example.org",
            "5.1.1",
            "550 5.1.1 <ada@example.org>: user unknown",
        ),
    );
    dovecot.deliver(
        "INBOX",
        &dsn(
            &return_path("bob@outlook.example"),
            "bob@outlook.example",
            "5.7.515",
            "550 5.7.515 Access denied, sending domain does not meet the required \
             authentication level (outlook.com)",
        ),
    );
    // Issue #21: a report to the plain address naming bob proves nothing: held, not applied,
    // and the window counts it.
    dovecot.deliver(
        "INBOX",
        &dsn(
            "bounces@acme.example",
            "bob@outlook.example",
            "5.1.1",
            "550 5.1.1 <bob@outlook.example>: user unknown",
        ),
    );
    harness.get_by_label("Check mailbox").click_accesskit();
    wait_until(
        &mut harness,
        "the mailbox result",
        |app| matches!(app.mailbox_result(), Some(Ok(summary)) if summary.read == 3),
    );
    let summary = harness
        .state()
        .mailbox_result()
        .cloned()
        .expect("result")
        .expect("read");
    assert_eq!(
        (summary.hard, summary.blocked, summary.unverified),
        (1, 1, 1),
        "{summary:?}"
    );
    assert!(
        harness
            .query_by_label_contains("Last check, just now: 3 message(s) read.")
            .is_some()
    );
    wait_until(&mut harness, "the unverified count", |app| {
        app.feedback().unverified == 1
    });
    assert!(
        harness
            .query_by_label("1 unverified report(s) held")
            .is_some()
    );
    assert!(
        harness
            .query_by_label_contains(
                "Sender warning: Outlook rejects your mail for authentication (5.7.515)"
            )
            .is_some(),
        "the sender warning is shown"
    );
    wait_until(&mut harness, "the bounced count", |app| {
        app.counts().bounced == 1
    });
    assert!(harness.query_by_label("1 bounced").is_some());

    // Each recipient's row says what came back.
    click_tab(&mut harness, "Recipients");
    wait_until(&mut harness, "the rows' feedback", |app| {
        app.table_note(0).is_some() && app.table_note(1).is_some()
    });
    let ada = harness
        .state()
        .table_note(0)
        .unwrap_or_default()
        .to_string();
    assert!(
        ada.contains("hard bounce 5.1.1") && ada.contains("on the suppression list: bounced"),
        "{ada}"
    );
    let bob = harness
        .state()
        .table_note(1)
        .unwrap_or_default()
        .to_string();
    assert!(
        bob.contains("blocked 5.7.515") && !bob.contains("suppression"),
        "{bob}"
    );
    assert_eq!(
        harness.state().table_row(0).map(|r| r.state),
        Some(State::Bounced)
    );

    // The bounce is on the suppression list, reachable from the window.
    click_tab(&mut harness, "Suppression list");
    wait_until(&mut harness, "the list", |app| {
        app.suppression_total() == Some(1)
    });
    assert!(harness.query_by_label("ada@example.org").is_some());
}

fn entry(address: &str, reason: SuppressionReason, at_ms: i64) -> Suppression {
    Suppression {
        address: address.into(),
        reason,
        at_ms,
        campaign: None,
        evidence: "550 5.1.1 user unknown".into(),
    }
}

#[test]
fn the_suppression_view_searches_adds_removes_and_exports() {
    environment();
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("herald.db");
    {
        let mut store = Store::open(&db).expect("store");
        store
            .suppress(&entry("ada@example.org", SuppressionReason::Bounced, 1))
            .expect("ada");
        store
            .suppress(&entry(
                "grace@example.org",
                SuppressionReason::Unsubscribed,
                2,
            ))
            .expect("grace");
    }
    let mut harness = harness(&db, None);
    harness.run_steps(3);
    // Reachable from the start page.
    // The start page's button (the tab row's comes first in the tree).
    harness
        .get_all_by_label("Suppression list")
        .last()
        .expect("the start page's button")
        .click_accesskit();
    wait_until(&mut harness, "the list", |app| {
        app.suppression_total() == Some(2)
    });
    assert_eq!(harness.state().tab(), Tab::Suppression);
    assert!(harness.query_by_label("unsubscribed").is_some());

    harness.get_by_label("Search").focus();
    harness.get_by_label("Search").type_text("grace");
    wait_until(&mut harness, "the search", |app| {
        app.suppression_total() == Some(1)
    });
    assert!(harness.query_by_label("ada@example.org").is_none());
    harness.get_by_label("Search").focus();
    for _ in 0.."grace".len() {
        harness.key_press(egui::Key::Backspace);
    }
    wait_until(&mut harness, "the whole list again", |app| {
        app.suppression_total() == Some(2)
    });

    // A bad address is refused beside the form; a good one is added.
    harness.get_by_label("Add address").focus();
    harness
        .get_by_label("Add address")
        .type_text("not an address");
    harness.get_by_label("Add to list").click_accesskit();
    wait_until(&mut harness, "the refusal", |_| true);
    let deadline = Instant::now() + LIMIT;
    while harness
        .query_by_label_contains("is not an email address")
        .is_none()
    {
        assert!(Instant::now() < deadline, "no refusal shown");
        harness.step();
        std::thread::sleep(Duration::from_millis(15));
    }
    harness.get_by_label("Add address").focus();
    harness
        .get_by_label("Add address")
        .type_text("Linus@Example.NET");
    harness.get_by_label("Add to list").click_accesskit();
    wait_until(&mut harness, "the added address", |app| {
        app.suppression_total() == Some(3)
    });
    assert!(harness.query_by_label("linus@example.net").is_some());
    assert!(harness.query_by_label("added by hand").is_some());

    // Remove: the newest entry (linus) is the first row.
    harness
        .get_all_by_label("Remove")
        .next()
        .expect("a Remove")
        .click_accesskit();
    wait_until(&mut harness, "the removal", |app| {
        app.suppression_total() == Some(2)
    });
    assert!(harness.query_by_label("linus@example.net").is_none());
    assert!(
        Store::open(&db)
            .expect("store")
            .global_suppression("linus@example.net")
            .expect("read")
            .is_none()
    );

    // An address that bounced or asked to leave is not mailed again on one click: Remove asks
    // first, and Keep leaves it on the list.
    harness
        .get_all_by_label("Remove")
        .next()
        .expect("a Remove")
        .click_accesskit();
    for _ in 0..5 {
        harness.step();
    }
    assert!(
        harness.query_by_label("Mail again").is_some(),
        "no confirmation asked"
    );
    harness.get_by_label("Keep").click_accesskit();
    for _ in 0..5 {
        harness.step();
    }
    assert!(harness.query_by_label("Mail again").is_none());
    assert_eq!(harness.state().suppression_total(), Some(2));

    let to: PathBuf = dir.path().join("suppressed.csv");
    harness.get_by_label("Export to").focus();
    harness
        .get_by_label("Export to")
        .type_text(&to.to_string_lossy());
    harness.get_by_label("Export CSV").click_accesskit();
    wait_until(&mut harness, "the export", |_| to.exists());
    let deadline = Instant::now() + LIMIT;
    while harness
        .query_by_label_contains("2 address(es) exported")
        .is_none()
    {
        assert!(Instant::now() < deadline, "the export was not confirmed");
        harness.step();
        std::thread::sleep(Duration::from_millis(15));
    }
    let csv = std::fs::read_to_string(&to).expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "address,reason,at_ms,campaign,evidence");
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1].starts_with("grace@example.org,unsubscribed,"),
        "{csv}"
    );
    assert!(lines[2].starts_with("ada@example.org,bounced,"), "{csv}");
}

#[test]
fn publish_says_what_to_do_when_nothing_is_set_up() {
    environment();
    let dir = campaign_with(&emails(), &[], "", "");
    let mut harness = harness(&dir.db, Some(&dir.campaign));
    // A campaign without a relay is not valid yet: it opens with that problem.
    wait_until(&mut harness, "the campaign to open", |app| {
        app.campaign_path().is_some()
    });
    click_tab(&mut harness, "Publish");
    assert!(
        harness
            .query_by_label_contains("No relay yet. Press Add relay")
            .is_some()
    );
    assert!(
        harness
            .query_by_label_contains("Next: add the relay your mail goes through")
            .is_some()
    );
    assert!(
        harness
            .query_by_label_contains("No bounce mailbox is set up")
            .is_some()
    );
    // Issue #20: fields to fill in, not TOML to paste.
    assert!(
        harness
            .query_by_label("Mailbox and unsubscribe settings")
            .is_some(),
        "the mailbox's fields are offered"
    );
    assert!(harness.query_by_label("Check mailbox").is_none());
}

/// Issue #23: Start checks the DNS as `herald send` does. The campaign signs for acme.test,
/// whose DNS (the test server, over real UDP) has no key record: a red finding, so the window
/// asks, names the record to publish, and sends only when told to.
#[test]
fn a_red_dns_finding_asks_before_start_and_send_anyway_sends() {
    environment();
    let smtp = SmtpServer::start();
    let dns = crate::support::dns_server::DnsServer::start(crate::support::dns_server::Zone::new());
    let keys = tempfile::tempdir().unwrap();
    let (pem, _, _) = crate::support::dkim::make_key(keys.path(), "pkcs1");
    let sections = format!(
        "[dkim]\ndomain = \"acme.test\"\nselector = \"s1\"\nprivate_key = \"{}\"\n\n\
         [direct]\nnameservers = [\"{}\"]\ndns_timeout_secs = 1\n",
        keys.path().join("dkim.pem").display(),
        dns.addr()
    );
    std::fs::write(keys.path().join("dkim.pem"), pem).unwrap();
    let dir = campaign_with(
        &emails(),
        &[RelayConf::new("primary", smtp.port())],
        "",
        &sections,
    );
    let mut harness = harness(&dir.db, Some(&dir.campaign));
    opened(&mut harness);
    click_tab(&mut harness, "Publish");
    harness.get_by_label("Start").click_accesskit();
    wait_until(&mut harness, "the question", |app| {
        app.is_asking_to_send_anyway()
    });
    // The dialog and Publish's list of findings both name it, with the record to publish.
    assert!(
        harness
            .query_all_by_label_contains("DKIM s1._domainkey.acme.test: there is no DKIM record")
            .count()
            >= 2,
        "the dialog and Publish name the finding"
    );
    assert!(
        harness
            .query_all_by_label_contains(
                "Fix: publish a TXT record at s1._domainkey.acme.test: v=DKIM1; k=rsa; p="
            )
            .count()
            >= 1,
        "the record to publish is shown"
    );
    harness.get_by_label("Cancel").click_accesskit();
    harness.run_steps(3);
    for _ in 0..20 {
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!harness.state().is_running());
    assert_eq!(smtp.received_count(), 0, "Cancel sent mail");

    harness.get_by_label("Start").click_accesskit();
    wait_until(&mut harness, "the question again", |app| {
        app.is_asking_to_send_anyway()
    });
    harness.get_by_label("Send anyway").click_accesskit();
    wait_until(&mut harness, "the mail", |_| smtp.received_count() == 3);
}

#[test]
fn resend_failed_makes_the_same_checks_and_asks_again() {
    environment();
    let smtp = SmtpServer::builder()
        .attempt_rule(|rcpt, attempt| {
            if rcpt == "grace@example.org" && attempt == 1 {
                crate::support::smtp_server::Reply::PolicyReject
            } else {
                crate::support::smtp_server::Reply::Accept
            }
        })
        .start();
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let dir = signed_campaign(smtp.port(), &endpoint);
    let mut harness = harness(&dir.db, Some(&dir.campaign));
    opened(&mut harness);
    click_tab(&mut harness, "Publish");
    harness.get_by_label("Start").click_accesskit();
    wait_until(&mut harness, "the question", |app| {
        app.is_asking_to_send_anyway()
    });
    harness.get_by_label("Send anyway").click_accesskit();
    wait_until(&mut harness, "the first run to end", |app| {
        let c = app.counts();
        !app.is_running() && c.sent == 2 && c.failed == 1
    });
    harness.get_by_label("Resend failed (1)").click_accesskit();
    wait_until(&mut harness, "the question before the resend", |app| {
        app.is_asking_to_send_anyway()
    });
    harness.get_by_label("Cancel").click_accesskit();
    for _ in 0..20 {
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!harness.state().is_running());
    assert_eq!(smtp.received_count(), 2, "the resend went out after Cancel");
    assert_eq!(
        harness.state().counts().pending,
        1,
        "grace waits to be sent"
    );
}
