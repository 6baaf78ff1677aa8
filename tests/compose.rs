//! Composing for real (issue #5), end to end: campaigns sent through the scriptable SMTP server
//! over TCP, and what it received parsed by an independent MIME parser (Python's `email`
//! package) and DKIM verifier (dkimpy, Debian's python3-dkim): headers, parts, attachments,
//! inline images, List-Unsubscribe, signatures. Also suppression at import and before sending,
//! script skips, the field check, deliverability warnings, bad input, preview and test send.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::support::dkim::{dkim_verifies, make_key};
use crate::support::run::finish;
use crate::support::smtp_server::{Received, SmtpServer};
use herald::campaign::Campaign;
use herald::engine::{Engine, Progress, RunOptions, RunState};
use herald::store::{Counts, RecipientRef, RecipientRow, State, Store};
use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";

/// A campaign folder: files, then the campaign text with `PORT` replaced by the server's port.
struct Fixture {
    dir: tempfile::TempDir,
    campaign: PathBuf,
    db: PathBuf,
}

fn fixture(files: &[(&str, &[u8])], campaign_text: &str, port: u16) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let text = campaign_text.replace("PORT", &port.to_string());
    let text = format!(
        "{text}\n[delivery]\nconnections = 2\nretry_delays = [\"1s\"]\nconnect_timeout_secs = 2\n\
         command_timeout_secs = 5\ndata_timeout_secs = 5\nrelay_cooldown_secs = 1\n\n\
         [[relay]]\nname = \"main\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n"
    );
    let campaign = dir.path().join("campaign.toml");
    std::fs::write(&campaign, text).unwrap();
    let db = dir.path().join("herald.db");
    Fixture { dir, campaign, db }
}

fn send(fixture: &Fixture) -> Progress {
    let engine = Engine::new().unwrap();
    let campaign = Campaign::load(&fixture.campaign).unwrap();
    let mut run = engine.start(campaign, &fixture.db, RunOptions::default());
    finish(&mut run)
}

fn store_of(fixture: &Fixture) -> (Store, i64) {
    let mut store = Store::open(&fixture.db).unwrap();
    let campaign = Campaign::load(&fixture.campaign).unwrap();
    let id = herald::identity::campaign_id(&mut store, &campaign).unwrap();
    (store, id)
}

fn counts(fixture: &Fixture) -> Counts {
    let (store, id) = store_of(fixture);
    store.counts(id).unwrap()
}

fn row(fixture: &Fixture, email: &str) -> RecipientRow {
    let (store, id) = store_of(fixture);
    store
        .find_recipient(id, &RecipientRef::Email(email.to_string()))
        .unwrap()
        .unwrap()
}

fn herald(fixture: &Fixture, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--db")
        .arg(&fixture.db)
        .args(args)
        .output()
        .unwrap()
}

fn received_by(server: &SmtpServer, rcpt: &str) -> Received {
    server
        .received()
        .into_iter()
        .find(|message| message.rcpt_to.iter().any(|to| to == rcpt))
        .unwrap_or_else(|| panic!("nothing received for {rcpt}"))
}

/// Parses a message with Python's `email` package (policy.default decodes RFC 2047/2231) and
/// returns its structure as JSON.
fn parse_mime(message: &[u8]) -> Value {
    const PARSE: &str = r#"
import email, email.policy, json, sys
raw = sys.stdin.buffer.read()
msg = email.message_from_bytes(raw, policy=email.policy.default)
def part(p):
    out = {"type": p.get_content_type(), "disposition": p.get_content_disposition(),
           "filename": p.get_filename(), "cid": p.get("Content-ID"),
           "cte": p.get("Content-Transfer-Encoding"), "children": []}
    if p.is_multipart():
        out["children"] = [part(c) for c in p.iter_parts()]
    else:
        payload = p.get_payload(decode=True) or b""
        out["size"] = len(payload)
        if p.get_content_maintype() == "text":
            out["text"] = payload.decode(p.get_content_charset() or "utf-8")
    return out
headers = [[k, str(v)] for k, v in msg.items()]
lines = raw.split(b"\r\n")
print(json.dumps({"headers": headers, "root": part(msg),
                  "longest_line": max(len(l) for l in lines),
                  "bare_lf": raw.replace(b"\r\n", b"").count(b"\n"),
                  "nul": raw.count(b"\0"), "ascii": all(b < 128 for b in raw)}))
"#;
    let mut child = Command::new(PYTHON)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn header<'a>(parsed: &'a Value, name: &str) -> Vec<&'a str> {
    parsed["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|pair| pair[1].as_str().unwrap())
        .collect()
}

fn one_header<'a>(parsed: &'a Value, name: &str) -> &'a str {
    let found = header(parsed, name);
    assert_eq!(found.len(), 1, "{name}: {found:?}");
    found[0]
}

const FULL_MESSAGE: &str = r#"[message]
from = "Équipe Acme <news@acme.example>"
reply_to = "Service client <help@acme.example>"
subject = "{{ first_name }}, nos sélections d'été ☀"
html = "body.html"
attachments = ["prix été.pdf", "notes.txt"]
inline = ["logo.png"]
unsubscribe = "https://acme.example/u?e={{ url(email) }}"
unsubscribe_mailto = "mailto:unsub@acme.example?subject=unsub-{{ url(email) }}"
headers = { "X-Campaign" = "summer-{{ lower(city) }}" }

[recipients]
csv = "list.csv"

[dkim]
domain = "acme.example"
selector = "s1"
private_key = "dkim.pem"
"#;

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

fn full_fixture(port: u16, key_pem: &[u8]) -> Fixture {
    fixture(
        &[
            (
                "body.html",
                "<html><body><img src=\"cid:logo.png\" alt=\"Acme\"><p>Bonjour <b>{{ first_name }}</b> de {{ city }},</p>\
                 <p>Voir <a href=\"https://acme.example/shop\">la boutique</a>.</p></body></html>"
                    .as_bytes(),
            ),
            ("prix été.pdf", b"%PDF-1.4\n% fake pdf for tests\n"),
            ("notes.txt", "Notes d'été\n".as_bytes()),
            ("logo.png", PNG),
            ("dkim.pem", key_pem),
            (
                "list.csv",
                "email,first_name,city\nada@example.org,Zoë,Paris\nbob@example.net,Bob <script>,Lyon\n"
                    .as_bytes(),
            ),
        ],
        FULL_MESSAGE,
        port,
    )
}

fn flatten(part: &Value, out: &mut Vec<Value>) {
    out.push(part.clone());
    for child in part["children"].as_array().unwrap() {
        flatten(child, out);
    }
}

#[test]
fn received_message_has_every_header_and_part() {
    let server = SmtpServer::start();
    let keys = tempfile::tempdir().unwrap();
    let (pem, key_type, public) = make_key(keys.path(), "pkcs8");
    let fixture = full_fixture(server.port(), &pem);
    let last = send(&fixture);
    assert_eq!(last.state, RunState::Finished, "{last:?}");
    assert_eq!(counts(&fixture).sent, 2);

    let received = received_by(&server, "ada@example.org");
    assert_eq!(received.mail_from, "news@acme.example");
    let parsed = parse_mime(&received.data);
    assert_eq!(
        one_header(&parsed, "Subject"),
        "Zoë, nos sélections d'été ☀"
    );
    assert_eq!(
        one_header(&parsed, "From"),
        "Équipe Acme <news@acme.example>"
    );
    assert_eq!(one_header(&parsed, "To"), "ada@example.org");
    assert_eq!(
        one_header(&parsed, "Reply-To"),
        "Service client <help@acme.example>"
    );
    assert_eq!(one_header(&parsed, "X-Campaign"), "summer-paris");
    assert_eq!(one_header(&parsed, "MIME-Version"), "1.0");
    assert!(!one_header(&parsed, "Date").is_empty());
    let message_id = one_header(&parsed, "Message-ID");
    assert!(message_id.starts_with('<') && message_id.ends_with("@acme.example>"));
    assert_eq!(
        one_header(&parsed, "List-Unsubscribe"),
        "<https://acme.example/u?e=ada%40example.org>, <mailto:unsub@acme.example?subject=unsub-ada%40example.org>"
    );
    assert_eq!(
        one_header(&parsed, "List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    assert_eq!(header(&parsed, "DKIM-Signature").len(), 1);
    // RFC 5322 §2.1.1 and 2.3: CRLF only, lines within 998, headers 7-bit.
    assert!(parsed["longest_line"].as_u64().unwrap() <= 998, "{parsed}");
    assert_eq!(parsed["bare_lf"], 0);
    assert_eq!(parsed["nul"], 0);
    let raw = received.data_str();
    let head = &raw[..raw.find("\r\n\r\n").unwrap()];
    assert!(head.is_ascii(), "{head}");

    // mixed [ alternative [ text, related [ html, logo ] ], pdf, txt ]
    let root = &parsed["root"];
    assert_eq!(root["type"], "multipart/mixed");
    let children = root["children"].as_array().unwrap();
    assert_eq!(children.len(), 3, "{root}");
    let alternative = &children[0];
    assert_eq!(alternative["type"], "multipart/alternative");
    let text = &alternative["children"][0];
    assert_eq!(text["type"], "text/plain");
    let text_body = text["text"].as_str().unwrap();
    assert!(text_body.contains("Bonjour Zoë de Paris,"), "{text_body}");
    assert!(
        text_body.contains("la boutique (https://acme.example/shop)"),
        "{text_body}"
    );
    assert!(!text_body.contains('<'), "{text_body}");
    let related = &alternative["children"][1];
    assert_eq!(related["type"], "multipart/related");
    let html = &related["children"][0];
    assert_eq!(html["type"], "text/html");
    assert!(html["text"].as_str().unwrap().contains("<b>Zoë</b>"));
    let logo = &related["children"][1];
    assert_eq!(logo["type"], "image/png");
    assert_eq!(logo["cid"], "<logo.png>");
    assert_eq!(logo["disposition"], "inline");
    assert_eq!(logo["size"].as_u64().unwrap() as usize, PNG.len());
    let pdf = &children[1];
    assert_eq!(pdf["type"], "application/pdf");
    assert_eq!(pdf["disposition"], "attachment");
    assert_eq!(pdf["filename"], "prix été.pdf");
    assert_eq!(pdf["size"], 30);
    let notes = &children[2];
    assert_eq!(notes["type"], "text/plain");
    assert_eq!(notes["filename"], "notes.txt");
    assert_eq!(notes["text"], "Notes d'été\n");

    // HTML escapes fields by default.
    let bob = parse_mime(&received_by(&server, "bob@example.net").data);
    let mut parts = Vec::new();
    flatten(&bob["root"], &mut parts);
    let html = parts
        .iter()
        .find(|part| part["type"] == "text/html")
        .unwrap();
    assert!(
        html["text"]
            .as_str()
            .unwrap()
            .contains("Bob &lt;script&gt;"),
        "{html}"
    );

    for message in server.received() {
        let (ok, log) = dkim_verifies(&message.data, key_type, &public);
        assert!(ok, "dkimpy rejected:\n{log}\n{}", message.data_str());
    }
}

#[test]
fn dkim_verifies_for_pkcs1_pkcs8_and_ed25519_keys() {
    for kind in ["pkcs1", "pkcs8", "ed25519"] {
        let server = SmtpServer::start();
        let keys = tempfile::tempdir().unwrap();
        let (pem, key_type, public) = make_key(keys.path(), kind);
        let fixture = full_fixture(server.port(), &pem);
        assert_eq!(send(&fixture).state, RunState::Finished);
        let received = server.received();
        assert_eq!(received.len(), 2);
        for message in received {
            let text = message.data_str();
            let algorithm = if kind == "ed25519" {
                "a=ed25519-sha256"
            } else {
                "a=rsa-sha256"
            };
            assert!(
                text.starts_with("DKIM-Signature: v=1; ") && text.contains(algorithm),
                "{text}"
            );
            assert!(text.contains("c=relaxed/relaxed"), "{text}");
            let (ok, log) = dkim_verifies(&message.data, key_type, &public);
            assert!(ok, "{kind}: dkimpy rejected:\n{log}\n{text}");
            // A changed List-Unsubscribe breaks the signature: it is signed (RFC 8058 §4).
            let forged = text.replacen("https://acme.example/u?", "https://evil.example/u?", 1);
            assert!(
                !dkim_verifies(forged.as_bytes(), key_type, &public).0,
                "{kind}"
            );
        }
    }
}

#[test]
fn suppressed_recipients_are_skipped_at_import_and_before_send() {
    let server = SmtpServer::start();
    let csv = "email,first_name\nada@example.org,Ada\nbob@blocked.example,Bob\ncy@example.org,Cy\n\
               dee@example.org,Dee\neve@other.example,Eve\n";
    let fixture = fixture(
        &[
            ("body.txt", b"Hi {{ first_name }}"),
            ("list.csv", csv.as_bytes()),
            (
                "suppressed.csv",
                b"email\nCY@Example.org\n@blocked.example\n# a comment\n",
            ),
        ],
        "[message]\nfrom = \"news@acme.example\"\nsubject = \"Hi\"\ntext = \"body.txt\"\n\
         [recipients]\ncsv = \"list.csv\"\nsuppression = \"suppressed.csv\"\n",
        server.port(),
    );
    let out = herald(&fixture, &["import", fixture.campaign.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 recipient(s) skipped as suppressed"),
        "{stdout}"
    );
    // The counts printed after a first import are worked out, not queried: they must agree.
    let imported = counts(&fixture);
    assert!(
        stdout.contains(&format!(
            "{} total: 0 sent, 0 failed, {} pending, 0 deferred, 0 uncertain, {} skipped",
            imported.total(),
            imported.pending,
            imported.skipped
        )),
        "{stdout}\n{imported:?}"
    );
    assert_eq!((imported.pending, imported.skipped), (3, 2));
    for email in ["cy@example.org", "bob@blocked.example"] {
        let row = row(&fixture, email);
        assert_eq!(row.state, State::Skipped, "{email}");
        assert_eq!(row.skip_reason.as_deref(), Some("suppressed"));
    }
    // Dee unsubscribes after the import: the claim that would send her sees the stored list.
    {
        let (mut store, id) = store_of(&fixture);
        let entries =
            herald::import::parse_suppression("cy@example.org\nblocked.example\ndee@example.org\n");
        assert_eq!(
            entries,
            vec!["cy@example.org", "@blocked.example", "dee@example.org"]
        );
        store.replace_suppression(id, &entries).unwrap();
        assert_eq!(row(&fixture, "dee@example.org").state, State::Pending);
    }
    let last = send(&fixture);
    assert_eq!(last.state, RunState::Finished);
    let dee = row(&fixture, "dee@example.org");
    assert_eq!(
        (dee.state, dee.skip_reason.as_deref()),
        (State::Skipped, Some("suppressed"))
    );
    let mut got: Vec<String> = server
        .received()
        .iter()
        .map(|m| m.rcpt_to[0].clone())
        .collect();
    got.sort();
    assert_eq!(got, vec!["ada@example.org", "eve@other.example"]);
    let counts = counts(&fixture);
    assert_eq!((counts.sent, counts.skipped), (2, 3));
}

#[test]
fn script_fields_and_skips_are_recorded() {
    let server = SmtpServer::start();
    let script = r#"
// Personalization: new fields, and VIPs only.
if tier != "vip" { skip("not a VIP (tier " + tier + ")"); }
let greeting = "Dear " + title(first_name);
let since = format_date(joined, "%e %B %Y");
city = upper(or(city, "your town"));
"#;
    let fixture = fixture(
        &[
            ("personalize.rhai", script.as_bytes()),
            ("body.txt", b"{{ greeting }}, member since {{ since }}, in {{ city }}."),
            (
                "list.csv",
                b"email,first_name,tier,joined,city\nada@example.org,ada lovelace,vip,2021-03-05,\n\
                  bob@example.org,bob,basic,2022-01-01,Lyon\n",
            ),
        ],
        "[message]\nfrom = \"news@acme.example\"\nsubject = \"{{ greeting }}\"\ntext = \"body.txt\"\n\
         script = \"personalize.rhai\"\n[recipients]\ncsv = \"list.csv\"\n",
        server.port(),
    );
    let check = herald(&fixture, &["check", fixture.campaign.to_str().unwrap()]);
    assert!(check.status.success(), "{check:?}");
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("skipped by the personalization script")
    );
    assert_eq!(send(&fixture).state, RunState::Finished);
    let bob = row(&fixture, "bob@example.org");
    assert_eq!(bob.state, State::Skipped);
    assert_eq!(bob.skip_reason.as_deref(), Some("not a VIP (tier basic)"));
    let received = server.received();
    assert_eq!(received.len(), 1);
    let parsed = parse_mime(&received[0].data);
    assert_eq!(one_header(&parsed, "Subject"), "Dear Ada Lovelace");
    assert_eq!(
        parsed["root"]["text"].as_str().unwrap().trim_end(),
        "Dear Ada Lovelace, member since 5 March 2021, in YOUR TOWN."
    );
}

#[test]
fn check_names_a_missing_field_even_in_an_untaken_branch() {
    let fixture = fixture(
        &[
            ("body.html", b"<p>Hi {{ first_name }}</p>\n<p>{{ if first_name == \"nobody\" { nickame } else { \"\" } }}</p>"),
            ("list.csv", b"email,first_name,city\nada@example.org,Ada,Paris\n"),
        ],
        "[message]\nfrom = \"news@acme.example\"\nsubject = \"Hi\"\nhtml = \"body.html\"\n[recipients]\ncsv = \"list.csv\"\n",
        1,
    );
    let out = herald(&fixture, &["check", fixture.campaign.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("body.html, line 2")
            && stdout.contains("\"nickame\"")
            && stdout.contains("the fields are: email, first_name, city"),
        "{stdout}"
    );
}

#[test]
fn check_warns_about_deliverability() {
    let keys = tempfile::tempdir().unwrap();
    let (pem, _, _) = make_key(keys.path(), "ed25519");
    let fixture = fixture(
        &[
            ("body.html", b"<img src=\"https://cdn.acme.example/a.png\"><a href=\"http://192.0.2.10/offer\"><img src=\"b.png\"></a>"),
            ("list.csv", b"email\nada@example.org\n"),
            ("dkim.pem", &pem),
        ],
        "[message]\nfrom = \"news@acme.example\"\nsubject = \"Hi\"\nhtml = \"body.html\"\n[recipients]\ncsv = \"list.csv\"\n\
         [dkim]\ndomain = \"mailer.example\"\nselector = \"s1\"\nprivate_key = \"dkim.pem\"\n",
        1,
    );
    // acme.example's DNS is not this test's: its findings (issue #23) must not fail the check.
    let out = herald(
        &fixture,
        &["check", "--ignore-dns", fixture.campaign.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for expected in [
        "no unsubscribe link",
        "differs from the DKIM domain",
        "no text part",
        "mostly images",
        "192.0.2.10",
    ] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }
    let plain = fixture_without_dkim();
    let out = herald(&plain, &["check", plain.campaign.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no DKIM signature"));
}

fn fixture_without_dkim() -> Fixture {
    fixture(
        &[
            ("body.txt", b"Hi"),
            ("list.csv", b"email\nada@example.org\n"),
        ],
        "[message]\nfrom = \"news@acme.example\"\nsubject = \"Hi\"\ntext = \"body.txt\"\n[recipients]\ncsv = \"list.csv\"\n",
        1,
    )
}

/// (what, extra files, extra `[message]` lines or "DKIM")
type BadCase = (&'static str, Vec<(&'static str, Vec<u8>)>, &'static str);

#[test]
fn bad_input_is_refused_before_anything_is_sent() {
    let server = SmtpServer::start();
    let cases: Vec<BadCase> = vec![
        ("missing attachment", vec![], "attachments = [\"gone.pdf\"]"),
        (
            "huge attachment",
            vec![("huge.bin", Vec::new())],
            "attachments = [\"huge.bin\"]",
        ),
        (
            "key that is not a key",
            vec![("dkim.pem", b"hello".to_vec())],
            "DKIM",
        ),
        (
            "looping script",
            vec![("loop.rhai", b"let x = 0; loop { x += 1; }".to_vec())],
            "script = \"loop.rhai\"",
        ),
        (
            "recursing script",
            vec![("deep.rhai", b"fn f(n) { f(n + 1) } f(0);".to_vec())],
            "script = \"deep.rhai\"",
        ),
        (
            "string bomb",
            vec![("big.rhai", b"let s = \"xx\"; loop { s += s; }".to_vec())],
            "script = \"big.rhai\"",
        ),
    ];
    for (what, files, extra) in cases {
        let mut all: Vec<(&str, &[u8])> = vec![
            ("body.txt", b"Hi {{ first_name }}"),
            ("list.csv", b"email,first_name\nada@example.org,Ada\n"),
        ];
        for (name, content) in &files {
            all.push((name, content));
        }
        let (message_extra, dkim) = if extra == "DKIM" {
            (
                "",
                "[dkim]\ndomain = \"acme.example\"\nselector = \"s1\"\nprivate_key = \"dkim.pem\"\n",
            )
        } else {
            (extra, "")
        };
        let fixture = fixture(
            &all,
            &format!(
                "[message]\nfrom = \"news@acme.example\"\nsubject = \"Hi\"\ntext = \"body.txt\"\n{message_extra}\n\
                 [recipients]\ncsv = \"list.csv\"\n{dkim}"
            ),
            server.port(),
        );
        if what == "huge attachment" {
            // 100 MB, sparse: the size check must refuse it without reading it.
            let file = std::fs::File::create(fixture.dir.path().join("huge.bin")).unwrap();
            file.set_len(100 * 1024 * 1024).unwrap();
        }
        let out = herald(&fixture, &["check", fixture.campaign.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{what}: {stdout}{stderr}");
        let expected = match what {
            "missing attachment" => "gone.pdf",
            "huge attachment" => "the limit is 25 MB",
            "key that is not a key" => "DKIM private key is not usable",
            "looping script" => "loop.rhai",
            "recursing script" => "deep.rhai",
            _ => "big.rhai",
        };
        assert!(
            stdout.contains(expected) || stderr.contains(expected),
            "{what}: {stdout}{stderr}"
        );
        assert!(
            !stdout.contains("panicked") && !stderr.contains("panicked"),
            "{what}"
        );
        if what != "missing attachment" {
            let last = send(&fixture);
            let sent_nothing = server.received().is_empty();
            assert!(sent_nothing, "{what}: {last:?}");
            // Scripts fail per recipient (recorded failed); everything else stops the run.
            if what.contains("script") || what == "string bomb" {
                let ada = row(&fixture, "ada@example.org");
                assert_eq!(ada.state, State::Failed, "{what}");
                assert!(ada.reply.unwrap().text.contains(".rhai"), "{what}");
            } else {
                assert!(
                    matches!(last.state, RunState::Failed { .. }),
                    "{what}: {last:?}"
                );
            }
        }
    }
}

#[test]
fn hostile_csv_fields_never_break_the_message() {
    let server = SmtpServer::start();
    let long = "x".repeat(100 * 1024);
    let csv = format!(
        "email,first_name,note\nada@example.org,\"Eve\r\nBcc: victim@evil.example\",\"a\tb\"\nbob@example.org,Bob,{long}\n"
    );
    let fixture = fixture(
        &[
            ("body.html", b"<p>Hi {{ first_name }}: {{ note }}</p>"),
            ("list.csv", csv.as_bytes()),
        ],
        "[message]\nfrom = \"news@acme.example\"\nsubject = \"Hi {{ first_name }} {{ note }}\"\nhtml = \"body.html\"\n\
         headers = { \"X-Note\" = \"{{ first_name }}\" }\n[recipients]\ncsv = \"list.csv\"\n",
        server.port(),
    );
    assert_eq!(send(&fixture).state, RunState::Finished);
    assert_eq!(counts(&fixture).sent, 2);
    for message in server.received() {
        let parsed = parse_mime(&message.data);
        assert!(header(&parsed, "Bcc").is_empty(), "{parsed}");
        assert!(
            parsed["longest_line"].as_u64().unwrap() <= 998,
            "lines too long"
        );
        assert_eq!(parsed["nul"], 0);
        assert_eq!(parsed["bare_lf"], 0);
        assert_eq!(message.rcpt_to.len(), 1);
    }
    let ada = parse_mime(&received_by(&server, "ada@example.org").data);
    assert_eq!(
        one_header(&ada, "Subject"),
        "Hi Eve  Bcc: victim@evil.example a b"
    );
    let bob = parse_mime(&received_by(&server, "bob@example.org").data);
    assert_eq!(
        one_header(&bob, "Subject").len(),
        "Hi Bob ".len() + long.len()
    );
}

#[test]
fn preview_and_test_send_through_the_binary() {
    let server = SmtpServer::start();
    let keys = tempfile::tempdir().unwrap();
    let (pem, key_type, public) = make_key(keys.path(), "ed25519");
    let fixture = full_fixture(server.port(), &pem);
    let campaign = fixture.campaign.to_str().unwrap();

    let out = herald(&fixture, &["preview", campaign, "--recipient", "2"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.starts_with("DKIM-Signature:"), "{stdout}");
    assert!(stdout.contains("To: bob@example.net"), "{stdout}");
    assert!(stdout.contains("recipient 2 (bob@example.net)"), "{stdout}");
    assert!(
        stdout.contains("attachment: prix été.pdf (application/pdf, 30 bytes)"),
        "{stdout}"
    );
    assert!(stdout.contains("inline: logo.png (image/png"), "{stdout}");
    let preview_id = stdout
        .lines()
        .find_map(|line| line.strip_prefix("Message-ID: "))
        .unwrap()
        .to_string();

    let out = herald(&fixture, &["preview", campaign, "--recipient", "9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no recipient number 9"));
    let out = herald(&fixture, &["preview", campaign, "--recipient", "0"]);
    assert_eq!(out.status.code(), Some(2));

    let out = herald(
        &fixture,
        &[
            "test-send",
            campaign,
            "--to",
            "tester@qa.example",
            "--recipient",
            "bob@example.net",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("through main: 250"), "{stdout}");
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_to, vec!["tester@qa.example"]);
    let parsed = parse_mime(&received[0].data);
    assert_eq!(one_header(&parsed, "To"), "bob@example.net");
    assert_eq!(one_header(&parsed, "Message-ID"), preview_id);
    assert!(dkim_verifies(&received[0].data, key_type, &public).0);
    // A test send changes no recipient's state.
    let counts = counts(&fixture);
    assert_eq!((counts.pending, counts.sent), (2, 0));

    let down = fixture_without_dkim_on(crate::support::campaign::closed_port());
    let out = herald(
        &down,
        &[
            "test-send",
            down.campaign.to_str().unwrap(),
            "--to",
            "t@qa.example",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no relay could be reached"),
        "{out:?}"
    );
}

fn fixture_without_dkim_on(port: u16) -> Fixture {
    fixture(
        &[
            ("body.txt", b"Hi"),
            ("list.csv", b"email\nada@example.org\n"),
        ],
        "[message]\nfrom = \"news@acme.example\"\nsubject = \"Hi\"\ntext = \"body.txt\"\n[recipients]\ncsv = \"list.csv\"\n",
        port,
    )
}
