//! What SECURITY.md promises, tested through the real binary and real sockets: relay passwords
//! never reach the logs (even at `HERALD_LOG=trace`) nor the database; the database is private
//! to its owner (0600); a relay that must use STARTTLS is never used in plain text; no field a
//! campaign or a recipient list controls can add a header (subject, sender name, attachment
//! name, custom header names and values, unsubscribe link); the template sandbox stops runaway
//! scripts and cannot read files. Issue #7.

use std::time::{Duration, Instant};

use crate::support::campaign::{RelayConf, addresses, campaign};
use crate::support::cli_run::{herald, row, status};
use crate::support::mail::headers;
use crate::support::smtp_server::{Reply, SmtpServer};

const LIMIT: Duration = Duration::from_secs(120);

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every form in which a password could show up in a log or a file.
fn password_forms(user: &str, password: &str) -> Vec<String> {
    vec![
        password.to_string(),
        base64(password.as_bytes()),
        base64(format!("\0{user}\0{password}").as_bytes()),
    ]
}

#[test]
fn relay_passwords_never_reach_the_logs_or_the_database() {
    let password = "Sup3r-s3cret-passw0rd";
    // Some refusals, so that the run has something to log.
    let server = SmtpServer::builder()
        .auth("news", password)
        .rule(|rcpt| {
            if rcpt.starts_with("user1@") {
                Reply::PermFail
            } else {
                Reply::Accept
            }
        })
        .start();
    let dir = campaign(
        &addresses(5),
        &[RelayConf::new("auth", server.port())
            .extra("username = \"news\"\npassword_env = \"HERALD_SECURITY_PASSWORD\"")],
        "connections = 1",
    );
    let ran = herald(
        &["send"],
        &dir.campaign,
        &dir.db,
        &[
            ("HERALD_SECURITY_PASSWORD", password),
            ("HERALD_LOG", "trace"),
        ],
        LIMIT,
    );
    ran.assert_code(0);
    assert_eq!(server.received_count(), 4);
    assert!(
        ran.stderr.contains("did not succeed"),
        "trace logging wrote almost nothing, so this test proves nothing:\n{}",
        ran.stderr
    );
    let database = std::fs::read(&dir.db).unwrap();
    let wal = std::fs::read(dir.db.with_extension("db-wal")).unwrap_or_default();
    for form in password_forms("news", password) {
        assert!(!ran.all().contains(&form), "{form:?} is in the output");
        for bytes in [&database, &wal] {
            assert!(
                !bytes.windows(form.len()).any(|w| w == form.as_bytes()),
                "{form:?} is in the database"
            );
        }
    }
}

#[test]
fn a_rejected_password_is_not_echoed_either() {
    let wrong = "Wr0ng-but-still-s3cret";
    let server = SmtpServer::builder().auth("news", "right").start();
    let dir = campaign(
        &addresses(2),
        &[RelayConf::new("auth", server.port())
            .extra("username = \"news\"\npassword_env = \"HERALD_SECURITY_WRONG\"")],
        "connections = 1",
    );
    let ran = herald(
        &["send"],
        &dir.campaign,
        &dir.db,
        &[("HERALD_SECURITY_WRONG", wrong), ("HERALD_LOG", "trace")],
        LIMIT,
    );
    ran.assert_code(1);
    assert!(ran.all().contains("authentication failed"), "{}", ran.all());
    for form in password_forms("news", wrong) {
        assert!(!ran.all().contains(&form), "{form:?} is in the output");
    }
}

#[cfg(unix)]
#[test]
fn the_database_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let server = SmtpServer::start();
    let dir = campaign(
        &addresses(3),
        &[RelayConf::new("main", server.port())],
        "connections = 1",
    );
    herald(&["send"], &dir.campaign, &dir.db, &[], LIMIT).assert_code(0);
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", dir.db.display()));
        let Ok(meta) = std::fs::metadata(&path) else {
            assert!(!suffix.is_empty(), "no database at {}", path.display());
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
    }
}

#[test]
fn a_relay_that_requires_starttls_is_never_used_in_plain_text() {
    // The scriptable server offers no STARTTLS: a downgrade would mean sending in the clear.
    let server = SmtpServer::builder().auth("news", "pw").start();
    let dir = campaign(
        &addresses(3),
        &[RelayConf::new("tls", server.port())
            .extra("username = \"news\"\npassword_env = \"HERALD_SECURITY_STARTTLS\"")],
        "connections = 1",
    );
    let text = std::fs::read_to_string(&dir.campaign)
        .unwrap()
        .replace("security = \"none\"", "security = \"starttls\"");
    std::fs::write(&dir.campaign, text).unwrap();
    let ran = herald(
        &["send"],
        &dir.campaign,
        &dir.db,
        &[("HERALD_SECURITY_STARTTLS", "pw")],
        LIMIT,
    );
    ran.assert_code(1);
    assert!(
        ran.all().contains("does not offer STARTTLS"),
        "{}",
        ran.all()
    );
    assert_eq!(server.received_count(), 0);
    assert!(server.rcpt_counts().is_empty(), "a recipient was offered");
    let json = status(&dir.campaign, &dir.db);
    assert_eq!(
        (json["pending"].as_u64(), json["failed"].as_u64()),
        (Some(3), Some(0))
    );
}

/// Header names an injection would add.
const INJECTED: &[&str] = &["bcc", "x-injected", "cc"];

#[test]
fn no_field_can_add_a_header() {
    let server = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let evil = "a\r\nBcc: victim@evil.example\r\nX-Injected: yes";
    // Every field a recipient list controls.
    std::fs::write(
        path.join("list.csv"),
        format!(
            "email,name,tag\nada@ok.example,\"{evil}\",\"{evil}\"\nbob@ok.example,\"Bob\nX-Injected: 1\",\"\rX-Injected: 2\"\n"
        ),
    )
    .unwrap();
    std::fs::write(path.join("body.txt"), "Hello {{ name }}\n").unwrap();
    // An attachment whose file name carries a header (legal on Unix).
    let attachment = "notes\r\nX-Injected: yes.txt";
    std::fs::write(path.join(attachment), "notes\n").unwrap();
    let text = format!(
        r#"[message]
from = "Acme News <news@acme.example>"
subject = "{{{{ name }}}}"
text = "body.txt"
attachments = ["notes\r\nX-Injected: yes.txt"]
unsubscribe = "https://acme.example/u?t={{{{ tag }}}}"
headers = {{ "X-Tag" = "{{{{ tag }}}}", "X-Plain" = "v\r\nX-Injected: header" }}

[recipients]
csv = "list.csv"

[delivery]
connections = 1
retry_delays = ["1s"]

[[relay]]
name = "main"
host = "127.0.0.1"
port = {}
security = "none"
"#,
        server.port()
    );
    let campaign_path = path.join("campaign.toml");
    std::fs::write(&campaign_path, text).unwrap();
    let db = path.join("herald.db");
    let ran = herald(&["send"], &campaign_path, &db, &[], LIMIT);
    ran.assert_code(0);
    let received = server.received();
    assert_eq!(received.len(), 2, "{}", ran.all());
    for message in &received {
        assert_eq!(message.rcpt_to.len(), 1, "{:?}", message.rcpt_to);
        let data = message.data_str();
        let names: Vec<String> = headers(&data)
            .into_iter()
            .map(|(name, _)| name.to_ascii_lowercase())
            .collect();
        for injected in INJECTED {
            assert!(
                !names.iter().any(|n| n == injected),
                "header {injected} was injected:\n{data}"
            );
        }
        // Nor in any MIME part's header block (body text may say anything: it is not a
        // header).
        let mut in_headers = true;
        for line in data.lines() {
            if line.is_empty() {
                in_headers = false;
                continue;
            }
            if line.starts_with("--") {
                in_headers = true;
                continue;
            }
            let lower = line.to_ascii_lowercase();
            assert!(
                !in_headers || !(lower.starts_with("x-injected") || lower.starts_with("bcc")),
                "injected header line {line:?} in:\n{data}"
            );
        }
    }
    assert_eq!(
        row(&campaign_path, &db, "ada@ok.example").state.as_str(),
        "sent"
    );
}

#[test]
fn a_header_name_with_a_line_break_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    std::fs::write(path.join("list.csv"), "email\nada@ok.example\n").unwrap();
    std::fs::write(path.join("body.txt"), "Hello\n").unwrap();
    std::fs::write(
        path.join("campaign.toml"),
        "[message]\nfrom = \"news@acme.example\"\nsubject = \"s\"\ntext = \"body.txt\"\n\
         headers = { \"X-A\\r\\nBcc\" = \"victim@evil.example\" }\n\n\
         [recipients]\ncsv = \"list.csv\"\n\n[[relay]]\nname = \"m\"\nhost = \"127.0.0.1\"\nport = 1\nsecurity = \"none\"\n",
    )
    .unwrap();
    let ran = herald(
        &["check"],
        &path.join("campaign.toml"),
        &path.join("herald.db"),
        &[],
        LIMIT,
    );
    ran.assert_code(1);
    assert!(ran.all().contains("header"), "{}", ran.all());
}

#[test]
fn runaway_and_file_reading_templates_fail_their_recipients_fast_and_send_nothing() {
    let server = SmtpServer::start();
    for (subject, expect) in [
        ("{{ loop { } }}", "runs too long"),
        ("{{ let s = \"xxxxxxxx\"; loop { s += s; } }}", "too large"),
        ("{{ import \"/etc/passwd\" as p; p }}", "Module not found"),
        ("{{ eval(\"1\") }}", "eval"),
    ] {
        let dir = campaign(
            &addresses(2),
            &[RelayConf::new("main", server.port())],
            "connections = 1",
        );
        let text = std::fs::read_to_string(&dir.campaign).unwrap().replace(
            "subject = \"Hi {{ first_name }}\"",
            &format!("subject = {subject:?}"),
        );
        assert!(
            text.contains(&format!("{subject:?}")),
            "fixture changed: {text}"
        );
        std::fs::write(&dir.campaign, text).unwrap();
        let started = Instant::now();
        let ran = herald(&["send"], &dir.campaign, &dir.db, &[], LIMIT);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(30), "{subject}: took {took:?}");
        assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
        assert!(!ran.all().contains("root:x:0:0"), "{subject} read a file");
        // Either the campaign is refused before sending, or each recipient fails with the
        // sandbox's reason; never is anything sent.
        if ran.code == Some(0) {
            let row = row(&dir.campaign, &dir.db, "user0@d0.example");
            assert_eq!(row.state.as_str(), "failed", "{subject}");
            let reason = row.reply.map(|r| r.text).unwrap_or_default();
            assert!(reason.contains(expect), "{subject}: {reason}");
        } else {
            assert_eq!(ran.code, Some(1), "{subject}: {}", ran.all());
        }
    }
    assert_eq!(server.received_count(), 0);
}

#[test]
fn a_sender_name_carrying_a_header_is_refused_before_anything_is_sent() {
    let server = SmtpServer::start();
    for from in [
        "Acme\\r\\nX-Injected: yes <news@acme.example>",
        "Acme\\nBcc: victim@evil.example <news@acme.example>",
        "\\\"Acme\\r\\nBcc: victim@evil.example\\\" <news@acme.example>",
    ] {
        let dir = campaign(
            &addresses(2),
            &[RelayConf::new("main", server.port())],
            "connections = 1",
        );
        let text = std::fs::read_to_string(&dir.campaign).unwrap().replace(
            "from = \"Test Sender <sender@herald.example>\"",
            &format!("from = \"{from}\""),
        );
        assert!(text.contains(from), "fixture changed");
        std::fs::write(&dir.campaign, text).unwrap();
        let ran = herald(&["send"], &dir.campaign, &dir.db, &[], LIMIT);
        if ran.code == Some(0) {
            // Accepted only if the name was flattened to one line.
            for message in server.received() {
                let data = message.data_str();
                assert!(
                    !data.lines().any(|l| {
                        let l = l.to_ascii_lowercase();
                        l.starts_with("bcc") || l.starts_with("x-injected")
                    }),
                    "{from}: {data}"
                );
            }
        } else {
            assert_eq!(ran.code, Some(1), "{from}: {}", ran.all());
            assert!(ran.all().contains("message.from"), "{from}: {}", ran.all());
        }
    }
    assert!(
        server.received().iter().all(|m| m.rcpt_to.len() == 1),
        "an extra recipient was added"
    );
}
