//! Bounded fuzzing in CI: random and mutated inputs, from a small deterministic generator
//! (SplitMix64, so a failure is reproducible from the printed seed), thrown for a few seconds
//! each at the CSV importer, the template compiler and renderer, campaign-file parsing and the
//! SMTP reply classifier (pure, and through a real socket with random reply codes), and the
//! reader of returned mail (RFC 3464 reports, ARF complaints, plain-text bounces) and the
//! matching of a report to a recipient (VERP tags, Message-IDs, addresses). The
//! property is always the same: no panic, no hang, and answers that agree with the rules.
//! `HERALD_FUZZ_SECS` sets the time per target (default 3), `HERALD_FUZZ_SEED` the seed.
//! Crashing inputs found are kept below as regression cases. Issue #7.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use herald::campaign::Campaign;
use herald::compose::{TemplateEngine, Variables};

/// SplitMix64: tiny, fast and good enough to pick bytes and tokens.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

fn budget() -> Duration {
    let secs = std::env::var("HERALD_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

fn seed(salt: u64) -> u64 {
    std::env::var("HERALD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x4845_5241_4C44)
        ^ salt
}

/// Inputs every fuzz case tries at the least, however loaded the machine: the time budget
/// adds more on a fast one, and a slow shared runner still covers this many.
const MIN_INPUTS: usize = 1_001;

/// Runs `case` on generated inputs until the time budget is spent and at least [`MIN_INPUTS`]
/// were tried; a panic is reported with the input that caused it. Returns how many inputs were
/// tried.
fn fuzz<I: std::fmt::Debug>(
    name: &str,
    salt: u64,
    mut generate: impl FnMut(&mut Rng) -> I,
    mut case: impl FnMut(&I),
) -> usize {
    let seed = seed(salt);
    let mut rng = Rng(seed);
    let deadline = Instant::now() + budget();
    let mut runs = 0;
    while Instant::now() < deadline || runs < MIN_INPUTS {
        let input = generate(&mut rng);
        if catch_unwind(AssertUnwindSafe(|| case(&input))).is_err() {
            panic!("{name}: crash after {runs} inputs (seed {seed}) on input:\n{input:?}");
        }
        runs += 1;
    }
    eprintln!("{name}: {runs} inputs in {:?} (seed {seed})", budget());
    runs
}

// ---------------------------------------------------------------------------------------------
// CSV importer

const CSV_TOKENS: &[&[u8]] = &[
    b"email",
    b"Email ",
    b"first_name",
    b"a@b.example",
    b"x@",
    b"@y",
    b",",
    b";",
    b"\t",
    b"|",
    b"\"",
    b"\"\"",
    b"\n",
    b"\r\n",
    b"\r",
    b"\xEF\xBB\xBF",
    b"\xFF\xFE",
    b"\xFE\xFF",
    b"\x00",
    b"\xE9",
    b"\xC3\xA9",
    b"\xF0\x9F\x92\x8C",
    b"\x80\x81",
    b" ",
    b"=cmd|' /C calc'!A0",
    b"\xC3",
];

fn csv_input(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = Vec::new();
    if rng.below(2) == 0 {
        bytes.extend_from_slice(b"email,first_name\n");
    }
    for _ in 0..rng.below(60) {
        if rng.below(5) == 0 {
            bytes.push(rng.next() as u8);
        } else {
            bytes.extend_from_slice(rng.pick(CSV_TOKENS));
        }
    }
    bytes
}

fn import_all(path: &Path) {
    if let Ok(rows) = herald::recipients::open(path, Some("email")) {
        for row in rows.take(10_000) {
            let _ = row;
        }
    }
}

#[test]
fn the_csv_importer_survives_random_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("list.csv");
    let runs = fuzz("csv", 1, csv_input, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        import_all(&path);
    });
    assert!(runs > 100, "only {runs} inputs tried");
}

// ---------------------------------------------------------------------------------------------
// Templates

const TEMPLATE_TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{{{",
    "}}}",
    "{{ ",
    " }}",
    "first_name",
    "email",
    "city",
    "missing",
    "if",
    "else",
    "loop",
    "while",
    "for",
    "in",
    "let",
    "x",
    "=",
    "==",
    ";",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    "+",
    "*",
    "-",
    "/",
    "%",
    "1",
    "0",
    "99999999999",
    "1e308",
    "upper(",
    "lower(",
    "title(",
    "url(",
    "html(",
    "or(",
    ",",
    ".len()",
    "\"a\"",
    "é",
    "💌",
    "\n",
    "\\",
    "`",
    "#",
    "//",
    "/*",
    "*/",
    "fn f() {}",
    "import \"x\"",
    "eval(\"1\")",
    "print(1)",
    "s += s",
    "[1,2,3]",
    "#{a: 1}",
    "return",
    "throw",
    "true",
    "false",
    "()",
    "..",
    "0..10",
    "sleep(1)",
    " ",
];

fn template_input(rng: &mut Rng) -> (String, bool) {
    let mut text = String::new();
    for _ in 0..rng.below(40) {
        text.push_str(rng.pick(TEMPLATE_TOKENS));
    }
    (text, rng.below(2) == 0)
}

#[test]
fn templates_compile_and_render_random_text_without_panic_or_hang() {
    let engine = TemplateEngine::new();
    let mut slowest = Duration::ZERO;
    let runs = fuzz("template", 2, template_input, |(source, html)| {
        if let Ok(template) = engine.compile("fuzz", source, *html) {
            let mut variables = Variables::new([
                ("first_name", "Zoë <b>&"),
                ("city", "{{ email }}"),
                ("email", "a@b.example"),
            ]);
            let started = Instant::now();
            let _ = engine.render(&template, &mut variables, "a@b.example");
            slowest = slowest.max(started.elapsed());
        }
    });
    assert!(runs > 100, "only {runs} inputs tried");
    // The sandbox's time limit holds for whatever the generator wrote.
    assert!(
        slowest < Duration::from_secs(3),
        "a render took {slowest:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Campaign files

const CAMPAIGN: &str = r#"[message]
from = "Acme News <news@acme.example>"
reply_to = "help@acme.example"
subject = "{{ first_name }}, our picks"
html = "body.html"
text = "body.txt"
attachments = ["prices.pdf"]
unsubscribe = "https://acme.example/u?e={{ url(email) }}"
headers = { "X-Campaign" = "nov" }

[recipients]
csv = "list.csv"
email_column = "email"

[delivery]
mode = "mixed"
connections = 64
max_attempts = 3
uncertain = "resend"
retry_delays = ["1m", "5m", "30m"]
rate_per_hour = 0
sleep_every = 0
sleep_seconds = 0

[direct]
helo = "mail.acme.example"
port = 25
nameservers = ["127.0.0.1:5353"]

[[direct.domain]]
name = "gmail.com"
connections = 5

[[relay]]
name = "primary"
host = "smtp.acme.example"
port = 587
security = "starttls"
username = "news@acme.example"
password_env = "PRIMARY_SMTP_PASSWORD"
weight = 1
max_connections = 32

[dkim]
domain = "acme.example"
selector = "s1"
private_key = "dkim.pem"
"#;

const TOML_TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "\n",
    "#",
    ",",
    "{",
    "}",
    "0",
    "-1",
    "65536",
    "4294967296",
    "9223372036854775808",
    "1.5",
    "nan",
    "inf",
    "true",
    "1979-05-27",
    "\\u0000",
    "\\",
    "é",
    "message",
    "relay",
    "delivery",
    "direct",
    "dkim",
    "domain",
    "mode",
    "connections",
    "port",
    "security",
    "retry_delays",
    "\"0s\"",
    "\"99999999d\"",
    "\"1x\"",
    "\"\"",
    "from",
    "\"<>\"",
    "\"a@b\"",
    " ",
];

fn campaign_input(rng: &mut Rng) -> String {
    let mut bytes = CAMPAIGN.as_bytes().to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(4) {
            0 => {
                let end = (at + rng.below(20)).min(bytes.len());
                bytes.drain(at..end);
            }
            1 => {
                let token = rng.pick(TOML_TOKENS).as_bytes();
                bytes.splice(at..at, token.iter().copied());
            }
            2 if !bytes.is_empty() => {
                let at = at.min(bytes.len() - 1);
                bytes[at] = rng.next() as u8;
            }
            _ => {
                let start = rng.below(bytes.len());
                let end = (start + rng.below(80)).min(bytes.len());
                let copy = bytes[start..end].to_vec();
                bytes.splice(at..at, copy);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn campaign_parsing_survives_mutated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("campaign.toml");
    let mut accepted = 0;
    let runs = fuzz("campaign", 3, campaign_input, |text| {
        if Campaign::parse(text, &path, &|_| true).is_ok() {
            accepted += 1;
        }
        let Ok(raw) = herald::campaign::RawCampaign::from_toml(text) else {
            return;
        };
        let _ = raw.to_toml();
        // The window's save over the file as written (issue #20): with nothing edited, what it
        // writes reads back as the same campaign.
        let over = raw
            .to_toml_over(text)
            .expect("a campaign that was read can be written");
        assert_eq!(
            herald::campaign::RawCampaign::from_toml(&over).as_ref(),
            Ok(&raw),
            "{text:?} saved as {over:?}"
        );
    });
    assert!(runs > 100, "only {runs} inputs tried");
    let _ = accepted;
}

// ---------------------------------------------------------------------------------------------
// SMTP replies

fn reply_text(rng: &mut Rng) -> String {
    const PARTS: &[&str] = &[
        "5.1.1",
        "4.7.28",
        "2.0.0",
        "5.7.",
        "5..1",
        "6.1.1",
        "5.1.1.1",
        "4.4.1000",
        "x.y.z",
        "5.1.1\u{0}",
        "٥.١.١",
        "5.１.1",
        " ",
        "\t",
        "ok",
        "queued",
        "<a@b>",
        "é",
        "",
        "-",
        "5",
        ".",
        "550",
    ];
    let mut text = String::new();
    for _ in 0..rng.below(6) {
        text.push_str(rng.pick(PARTS));
        if rng.below(3) == 0 {
            text.push(' ');
        }
    }
    text
}

#[test]
fn the_enhanced_status_reader_only_returns_what_the_text_starts_with() {
    let runs = fuzz("enhanced_status", 4, reply_text, |text| {
        if let Some(code) = herald::engine::enhanced_status(text) {
            assert_eq!(text.split_whitespace().next(), Some(code.as_str()));
            let parts: Vec<&str> = code.split('.').collect();
            assert_eq!(parts.len(), 3, "{code}");
            assert!(["2", "4", "5"].contains(&parts[0]), "{code}");
            assert!(
                parts[1..]
                    .iter()
                    .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())),
                "{code}"
            );
        }
    });
    assert!(runs > 100);
}

/// Random reply codes and texts from a real server over TCP: 2xx is sent, 4xx deferred (here,
/// with one attempt allowed, failed after a temporary reply), 5xx failed, and the recorded reply
/// is the one the server gave.
#[test]
fn random_server_replies_land_in_the_right_state() {
    use crate::support::campaign::{RelayConf, campaign};
    use crate::support::smtp_server::{Reply, SmtpServer};
    let mut rng = Rng(seed(5));
    let count = 60;
    let emails: Vec<String> = (0..count).map(|n| format!("r{n}@fuzz.example")).collect();
    let mut plan = std::collections::HashMap::new();
    for email in &emails {
        let code = rng.pick(&[
            250u16, 251, 421, 450, 451, 452, 550, 551, 552, 553, 554, 500,
        ]);
        let text = format!(
            "{} {}",
            rng.pick(&["5.1.1", "4.2.2", "2.1.5", "x"]),
            reply_text(&mut rng)
        )
        .replace(['\r', '\n'], " ");
        plan.insert(email.clone(), (code, text));
    }
    let rules = plan.clone();
    let server = SmtpServer::builder()
        .rule(move |rcpt| {
            let (code, text) = rules[rcpt].clone();
            Reply::Custom { code, text }
        })
        .start();
    let dir = campaign(
        &emails,
        &[RelayConf::new("fuzz", server.port())],
        "connections = 2\nmax_attempts = 1",
    );
    let ran = crate::support::cli_run::herald(
        &["send"],
        &dir.campaign,
        &dir.db,
        &[],
        Duration::from_secs(120),
    );
    ran.assert_code(0);
    for email in &emails {
        let (code, text) = &plan[email];
        let row = crate::support::cli_run::row(&dir.campaign, &dir.db, email);
        let expected = if (200..300).contains(code) {
            "sent"
        } else {
            "failed"
        };
        assert_eq!(row.state.as_str(), expected, "{email}: {code} {text:?}");
        if *code != 421 && !(200..300).contains(code) {
            let reply = row.reply.expect("reply recorded");
            assert_eq!(reply.code, Some(*code), "{email}: {reply:?}");
            assert_eq!(
                reply.enhanced,
                herald::engine::enhanced_status(&reply.text),
                "{email}: {reply:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Returned mail: delivery reports, ARF complaints and plain-text bounces (issue #13)

use herald::inbox::report::{self as report, Report};

/// Pieces of reports, bounces and MIME that the mutators splice in.
const REPORT_TOKENS: &[&str] = &[
    "\r\n",
    "\n",
    "\r\n\r\n",
    "\r\n ",
    "\t",
    ":",
    ";",
    "<",
    ">",
    "@",
    "--b\r\n",
    "--b--\r\n",
    "--",
    "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n",
    "Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n",
    "Content-Type: multipart/report; boundary=\"",
    "Content-Type: message/delivery-status\r\n\r\n",
    "Content-Type: message/feedback-report\r\n\r\n",
    "Content-Type: message/rfc822\r\n\r\n",
    "Content-Type: text/rfc822-headers\r\n\r\n",
    "Content-Type: text/html\r\n\r\n",
    "Content-Transfer-Encoding: base64\r\n",
    "Content-Transfer-Encoding: quoted-printable\r\n",
    "charset=utf-16",
    "charset=iso-2022-jp",
    "=?utf-8?B?w6k=?=",
    "=?x?Q?=ZZ?=",
    "=\r\n",
    "=C3",
    "Final-Recipient: rfc822; a@b.example\r\n",
    "Original-Recipient: rfc822;\r\n",
    "Action: failed\r\n",
    "Action: delayed\r\n",
    "Status: 5.1.1\r\n",
    "Status: 4.",
    "Diagnostic-Code: smtp; 550-5.7.26 x\r\n",
    "Feedback-Type: abuse\r\n",
    "Original-Rcpt-To: ",
    "From: MAILER-DAEMON@x.example\r\n",
    "Subject: Undeliverable: x\r\n",
    "Subject: Fwd: Undelivered Mail Returned to Sender\r\n",
    "Auto-Submitted: auto-replied\r\n",
    "To: bounces+u-",
    "Delivered-To: bounces+1.2.",
    "Message-ID: <",
    "<a@b.example>: ",
    "  c@d.example\r\n",
    "wasn't delivered to ",
    "550 5.1.1",
    "#5.",
    "5.7.515",
    "------ This is a copy of the message, including all the headers. ------\r\n",
    "Original message headers:\r\n",
    "<br>",
    "<style>",
    "&lt;",
    "\u{e9}",
    "\u{1F48C}",
    "\u{FFFD}",
    " ",
];

fn samples() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples/bounces");
    // The samples and the corpus folders' (tests/bounce_corpus.rs) alike.
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut folders = vec![dir];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "eml") {
                found.push(std::fs::read(path).unwrap());
            }
        }
    }
    found.sort();
    assert!(found.len() >= 10, "only {} samples", found.len());
    found
}

/// A sample with a few bytes deleted, replaced, spliced in or copied about.
fn mutated(rng: &mut Rng, samples: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = samples[rng.below(samples.len())].clone();
    for _ in 0..1 + rng.below(12) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 => {
                let end = (at + rng.below(40)).min(bytes.len());
                bytes.drain(at..end);
            }
            1 | 2 => {
                let token = rng.pick(REPORT_TOKENS).as_bytes();
                bytes.splice(at..at, token.iter().copied());
            }
            3 if !bytes.is_empty() => {
                let at = at.min(bytes.len() - 1);
                bytes[at] = rng.next() as u8;
            }
            _ => {
                let start = rng.below(bytes.len());
                let end = (start + rng.below(200)).min(bytes.len());
                let copy = bytes[start..end].to_vec();
                bytes.splice(at..at, copy);
            }
        }
    }
    bytes
}

/// What every reading must satisfy, whatever the input.
fn check_reading(bytes: &[u8], slowest: &mut Duration) {
    let started = Instant::now();
    let reading = report::read(bytes);
    *slowest = (*slowest).max(started.elapsed());
    // Pure: the same bytes read the same way.
    assert_eq!(reading, report::read(bytes), "not deterministic");
    if let Report::Delivery(recipients) = &reading.report {
        assert!(!recipients.is_empty(), "an empty delivery report");
        assert!(recipients.len() <= 1_000, "{} recipients", recipients.len());
        for recipient in recipients {
            assert!(recipient.diagnostic.len() <= 1_000, "unbounded diagnostic");
            let _ = report::classify(recipient);
        }
    }
    if let Report::Unsubscribe { tag } = &reading.report {
        assert!(!tag.is_empty() && tag.len() <= 64, "{tag:?}");
    }
    assert!(reading.clues.envelope_to.len() <= 64);
    assert!(reading.clues.message_ids.len() <= 64);
    // Issue #21: the same bytes as a partial fetch, whole and cut in half, read as a report
    // (a delivery report or a complaint) or not at all, the same way each time.
    for cut in [bytes, &bytes[..bytes.len() / 2]] {
        let started = Instant::now();
        let partial = report::read_partial(cut);
        *slowest = (*slowest).max(started.elapsed());
        assert_eq!(partial, report::read_partial(cut), "not deterministic");
        if let Some(partial) = partial {
            assert!(
                matches!(partial.report, Report::Delivery(_) | Report::Complaint(_)),
                "{:?}",
                partial.report
            );
        }
    }
}

#[test]
fn mutated_bounce_samples_read_without_panic_or_hang() {
    let samples = samples();
    let mut slowest = Duration::ZERO;
    let runs = fuzz(
        "report-samples",
        20,
        |rng| mutated(rng, &samples),
        |bytes| check_reading(bytes, &mut slowest),
    );
    assert!(runs > 100, "only {runs} inputs tried");
    assert!(slowest < Duration::from_secs(2), "a read took {slowest:?}");
}

/// A multipart/report (DSN or ARF) built from random fields, sometimes with many recipients.
fn generated_report(rng: &mut Rng) -> Vec<u8> {
    let kind = rng.pick(&["delivery-status", "feedback-report", "", "x"]);
    let mut text = format!(
        "From: {}\r\nTo: bounces+{}@acme.example\r\nContent-Type: multipart/report; \
         report-type={kind}; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n",
        rng.pick(&[
            "MAILER-DAEMON@x.example",
            "a@b.example",
            "postmaster@y.example"
        ]),
        rng.pick(&["1.2.abc", "u-1.2.abc", "u-", "u-\u{e9}"]),
    );
    for _ in 0..rng.below(20) {
        text.push_str(rng.pick(REPORT_TOKENS));
    }
    text.push_str("\r\n--b\r\nContent-Type: ");
    text.push_str(rng.pick(&[
        "message/delivery-status",
        "message/feedback-report",
        "message/global-delivery-status",
        "text/plain",
    ]));
    text.push_str("\r\n\r\n");
    // Up to ~1,500 groups: the reader must cap them, not drown in them.
    let groups = if rng.below(10) == 0 {
        900 + rng.below(600)
    } else {
        rng.below(5)
    };
    for _ in 0..groups {
        for _ in 0..1 + rng.below(6) {
            text.push_str(rng.pick(REPORT_TOKENS));
        }
        text.push_str("\r\n\r\n");
    }
    text.push_str(
        "--b\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <1.2.herald@acme.example>\r\n",
    );
    for _ in 0..rng.below(10) {
        text.push_str(rng.pick(REPORT_TOKENS));
    }
    text.push_str("\r\n--b--\r\n");
    text.into_bytes()
}

#[test]
fn generated_delivery_and_feedback_reports_read_without_panic_or_hang() {
    let mut slowest = Duration::ZERO;
    let runs = fuzz("report-dsn-arf", 21, generated_report, |bytes| {
        check_reading(bytes, &mut slowest)
    });
    assert!(runs > 50, "only {runs} inputs tried");
    assert!(slowest < Duration::from_secs(2), "a read took {slowest:?}");
}

/// A plain-text bounce: a bounce's headers over random lines of bounce-like text and bytes.
fn generated_text_bounce(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = b"From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\n\
                      Subject: Mail delivery failed: returning message to sender\r\n\r\n"
        .to_vec();
    for _ in 0..rng.below(200) {
        if rng.below(6) == 0 {
            bytes.push(rng.next() as u8);
        } else {
            bytes.extend_from_slice(rng.pick(REPORT_TOKENS).as_bytes());
        }
    }
    bytes
}

#[test]
fn generated_text_bounces_read_without_panic_or_hang() {
    let mut slowest = Duration::ZERO;
    let runs = fuzz("report-text", 22, generated_text_bounce, |bytes| {
        check_reading(bytes, &mut slowest)
    });
    assert!(runs > 100, "only {runs} inputs tried");
    assert!(slowest < Duration::from_secs(2), "a read took {slowest:?}");
}

// ---------------------------------------------------------------------------------------------
// Unsubscribe tokens (issue #15): what an endpoint decodes from any URL a stranger sends.

fn token_input(rng: &mut Rng, valid: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEF.-_%/\x00\xff";
    let mut bytes: Vec<u8> = valid.as_bytes().to_vec();
    match rng.below(4) {
        // A valid token with a few bytes changed, cut or added.
        0 | 1 => {
            for _ in 0..=rng.below(3) {
                let at = rng.below(bytes.len() + 1);
                match rng.below(3) {
                    0 if at < bytes.len() => bytes[at] = rng.pick(ALPHABET),
                    1 if at < bytes.len() => {
                        bytes.truncate(at);
                    }
                    _ => bytes.insert(at.min(bytes.len()), rng.pick(ALPHABET)),
                }
            }
        }
        // Random text of any length.
        _ => {
            bytes = (0..rng.below(100)).map(|_| rng.pick(ALPHABET)).collect();
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn the_token_parser_accepts_only_what_was_signed() {
    use herald::token::{Named, Purpose, decode, encode};
    let secret = [0x5a; 32];
    let named = Named {
        campaign: 77,
        recipient: 123_456,
    };
    let valid = encode(&secret, Purpose::Unsubscribe, named);
    let mut decoded = 0;
    let runs = fuzz(
        "tokens",
        0x70_6b,
        |rng| token_input(rng, &valid),
        |text| {
            // Whatever decodes names what was signed: a decoded token re-encodes to itself
            // (case aside), so an edit can never name someone else.
            if let Ok(found) = decode(&secret, Purpose::Unsubscribe, text) {
                assert_eq!(found, named);
                assert_eq!(
                    encode(&secret, Purpose::Unsubscribe, found),
                    text.to_ascii_lowercase()
                );
                decoded += 1;
            }
            // The other purpose never accepts it.
            if let Ok(found) = decode(&secret, Purpose::ReturnPath, text) {
                panic!("an unsubscribe-shaped input decoded as a return path: {found:?}");
            }
        },
    );
    assert!(runs > 1_000, "only {runs} inputs");
    assert!(decoded < runs, "every input decoded");
}

// ---------------------------------------------------------------------------------------------
// Matching a report to a recipient (issues #13 and #21): the VERP tag in the address a report
// came back to or in the returned Return-Path, Herald's keyed Message-ID, the failed address.
// Whatever a stranger writes there, only a tag or keyed Message-ID this database signed names a
// recipient (verified, one per report), a bad one names nobody, and unkeyed Message-IDs and
// addresses are only ever unverified candidates.

use herald::compose::HeraldId;
use herald::inbox::matching::{self, Keys, Plan, Proof, Target};
use herald::inbox::report::{Action, Clues, Complaint, Reading, RecipientStatus};
use herald::token::{Named, Purpose};

const RETURN_SECRET: [u8; 32] = [0x31; 32];
const LINK_SECRET: [u8; 32] = [0x32; 32];
/// Whom the valid tags of these inputs name.
const SIGNED: Named = Named {
    campaign: 41,
    recipient: 90_210,
};

fn matching_keys() -> Keys {
    Keys {
        return_path: Some(herald::campaign::ReturnPath {
            local: "bounces".into(),
            domain: "acme.example".into(),
        }),
        return_secret: RETURN_SECRET,
        unsubscribe_secret: LINK_SECRET,
    }
}

/// Tags as a report may carry them: valid ones (return path, unsubscribe, another database's,
/// another purpose's), then edited, cut, re-cased, or random text.
fn tag_input(rng: &mut Rng) -> String {
    use herald::token::encode;
    let base = match rng.below(5) {
        0 => encode(&RETURN_SECRET, Purpose::ReturnPath, SIGNED),
        1 => format!("u-{}", encode(&LINK_SECRET, Purpose::Unsubscribe, SIGNED)),
        2 => encode(&LINK_SECRET, Purpose::ReturnPath, SIGNED),
        3 => encode(&RETURN_SECRET, Purpose::Unsubscribe, SIGNED),
        _ => encode(
            &RETURN_SECRET,
            Purpose::ReturnPath,
            Named {
                campaign: rng.below(1_000) as i64,
                recipient: rng.below(1_000_000) as i64,
            },
        ),
    };
    let forged_other = rng.below(5) == 4;
    let mut text = token_input(rng, &base);
    if rng.below(4) == 0 {
        text = text.to_ascii_uppercase();
    }
    // A valid tag for someone other than SIGNED is kept as is, so it may name them: the
    // property below allows exactly what was signed with this database's key.
    if forged_other && rng.below(2) == 0 {
        text = base;
    }
    text
}

fn envelope_input(rng: &mut Rng) -> String {
    let tag = tag_input(rng);
    let local = rng.pick(&["bounces", "BOUNCES", "bounce", "bounces+x", "", "b\u{e9}"]);
    let domain = rng.pick(&[
        "acme.example",
        "ACME.Example",
        "other.example",
        "",
        "acme.example>",
    ]);
    let separator = rng.pick(&["+", "+", "+", "-", "++", ""]);
    let address = format!("{local}{separator}{tag}@{domain}");
    match rng.below(5) {
        0 => format!("<{address}>"),
        1 => format!("  {address}\t"),
        2 => address.replace('@', ""),
        3 => format!("{address}@{domain}"),
        _ => address,
    }
}

fn message_id_input(rng: &mut Rng) -> String {
    // Keyed ids (issue #21): this database's, another's, for SIGNED or someone else, mutated.
    if rng.below(3) == 0 {
        let secret = if rng.below(2) == 0 {
            RETURN_SECRET
        } else {
            LINK_SECRET
        };
        let recipient = if rng.below(2) == 0 {
            SIGNED.recipient
        } else {
            rng.below(1_000_000) as i64
        };
        let id = herald::compose::message_id(&secret, SIGNED.campaign, recipient, "acme.example");
        return token_input(rng, &id);
    }
    let tag = herald::compose::campaign_tag(rng.pick(&["/a.toml", "/b.toml"]));
    let id = rng.pick(&[
        "90210",
        "+90210",
        "-1",
        "0",
        "99999999999999999999",
        "x",
        "",
    ]);
    let text = format!("{id}.{tag}.herald@acme.example");
    token_input(rng, &text)
}

fn status_input(rng: &mut Rng) -> RecipientStatus {
    let address = [
        "Ada@Example.org",
        "ada@EXAMPLE.org",
        "<ada@example.org>",
        "x@b\u{fc}cher.example",
        "not an address",
        "",
        "\u{130}@example.org",
    ];
    RecipientStatus {
        address: (rng.below(5) != 0).then(|| rng.pick(&address).to_string()),
        action: rng.pick(&[
            Action::Failed,
            Action::Failed,
            Action::Delayed,
            Action::Delivered,
            Action::Relayed,
            Action::Expanded,
        ]),
        status: (rng.below(4) != 0).then(|| {
            rng.pick(&[
                "5.1.1", "4.2.2", "5.7.26", "5.7.515", "2.0.0", "9.9.9", "5..1",
            ])
            .to_string()
        }),
        smtp_code: (rng.below(2) == 0).then(|| rng.pick(&[550u16, 452, 554, 250, 0, 999])),
        diagnostic: reply_text(rng).repeat(1 + rng.below(200)),
    }
}

fn reading_input(rng: &mut Rng) -> Reading {
    let report = match rng.below(8) {
        0..=2 => Report::Delivery((0..1 + rng.below(4)).map(|_| status_input(rng)).collect()),
        3 => Report::Complaint(Complaint {
            address: (rng.below(3) != 0).then(|| status_input(rng).address.unwrap_or_default()),
            feedback_type: rng.pick(&["abuse", "fraud", "", "x\u{0}"]).to_string(),
        }),
        4 => Report::Unsubscribe {
            tag: tag_input(rng),
        },
        5 => Report::AutoReply,
        6 => Report::Unrecognized { why: "x".into() },
        _ => Report::NotAReport,
    };
    Reading {
        report,
        clues: Clues {
            envelope_to: (0..rng.below(4)).map(|_| envelope_input(rng)).collect(),
            message_ids: (0..rng.below(3)).map(|_| message_id_input(rng)).collect(),
            return_paths: (0..rng.below(2)).map(|_| envelope_input(rng)).collect(),
        },
    }
}

/// What every plan must satisfy: a signed name only from a tag that verifies with this
/// database's key, nobody when a tag is forged, bounded evidence, lower-case address keys.
/// Checks the plan of `reading` and returns it (the callers count what it names).
fn check_plan(keys: &Keys, reading: &Reading) -> Plan {
    let plan = matching::plan(keys, reading);
    assert_eq!(plan, matching::plan(keys, reading), "not deterministic");
    let expected_kind = match &reading.report {
        Report::NotAReport => Plan::NotAReport,
        Report::AutoReply => Plan::AutoReply,
        Report::Unrecognized { .. } => Plan::Unrecognized,
        _ => {
            let Plan::Report { wanted, forged } = &plan else {
                panic!("a report planned as {plan:?}");
            };
            if *forged {
                assert!(
                    wanted.is_empty(),
                    "a forged report names someone: {wanted:?}"
                );
            }
            if let Report::Delivery(statuses) = &reading.report {
                assert!(wanted.len() <= statuses.len());
            }
            let first = wanted.first().map(|item| item.proof.clone());
            for item in wanted {
                // No target at all (no tag, no Message-ID, no address) is fine: the store
                // confirms nobody and the report is counted unmatched.
                assert!(item.diagnostic.chars().count() <= 301, "unbounded evidence");
                match &item.proof {
                    Proof::Verified {
                        campaign,
                        recipient,
                        ..
                    } => {
                        // Only a tag or keyed Message-ID this database signed names a
                        // recipient, and a report names one recipient only (issue #21).
                        let named = Named {
                            campaign: *campaign,
                            recipient: *recipient,
                        };
                        let clues = &reading.clues;
                        let signed = clues
                            .envelope_to
                            .iter()
                            .chain(&clues.return_paths)
                            .chain(match &reading.report {
                                Report::Unsubscribe { tag } => Some(tag),
                                _ => None,
                            })
                            .any(|text| verifies(text, named))
                            || clues.message_ids.iter().any(|id| id_verifies(id, named));
                        assert!(
                            signed,
                            "{named:?} named by no valid tag or id in {reading:?}"
                        );
                        assert_eq!(Some(&item.proof), first.as_ref(), "two people named");
                    }
                    Proof::Unverified(targets) => {
                        for target in targets {
                            match target {
                                Target::UnkeyedId { id, campaign_tag } => {
                                    assert!(
                                        reading.clues.message_ids.iter().any(|text| {
                                            herald::compose::parse_message_id(text)
                                                == Some(HeraldId::Unkeyed {
                                                    recipient: *id,
                                                    campaign_tag: campaign_tag.as_str(),
                                                })
                                        }),
                                        "recipient {id} named by no Message-ID in {reading:?}"
                                    );
                                }
                                Target::Address(address) => {
                                    assert!(
                                        !address.bytes().any(|b| b.is_ascii_uppercase()),
                                        "{address:?}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
            return plan;
        }
    };
    assert_eq!(plan, expected_kind);
    plan
}

/// Whether `text` is a keyed Message-ID this database made for `named`.
fn id_verifies(text: &str, named: Named) -> bool {
    match herald::compose::parse_message_id(text) {
        Some(HeraldId::Keyed(token)) => {
            herald::token::decode(&RETURN_SECRET, Purpose::MessageId, token) == Ok(named)
        }
        _ => false,
    }
}

/// Whether some token inside `text` (an address's tag or a bare tag) verifies as `named`.
fn verifies(text: &str, named: Named) -> bool {
    let pieces = text.split(['+', '@', '<', '>', ' ', '\t']);
    pieces.into_iter().any(|piece| {
        let piece = piece.strip_prefix("u-").unwrap_or(piece);
        herald::token::decode(&RETURN_SECRET, Purpose::ReturnPath, piece) == Ok(named)
            || herald::token::decode(&LINK_SECRET, Purpose::Unsubscribe, piece) == Ok(named)
    })
}

#[test]
fn matching_names_a_recipient_only_through_a_tag_this_database_signed() {
    let keys = matching_keys();
    let mut named = 0;
    let runs = fuzz("matching", 23, reading_input, |reading| {
        if let Plan::Report { wanted, .. } = check_plan(&keys, reading)
            && wanted
                .iter()
                .any(|item| matches!(item.proof, Proof::Verified { .. }))
        {
            named += 1;
        }
    });
    assert!(runs > 1_000, "only {runs} inputs");
    // The generator does make valid tags, so the property above is not vacuous.
    assert!(named > 0, "no input was named by a tag");
}

/// The same through the reader: whole reports with a mutated VERP address in Delivered-To,
/// X-Original-To and To, read by `report::read` and planned, so the tag's way from the
/// message's header to a name is fuzzed end to end.
#[test]
fn tags_read_from_reports_name_only_what_was_signed() {
    let keys = matching_keys();
    let mut named = 0;
    let runs = fuzz(
        "matching-read",
        24,
        |rng| {
            let mut text = String::new();
            for header in ["Delivered-To", "X-Original-To", "To"] {
                if rng.below(3) != 0 {
                    text.push_str(&format!("{header}: {}\r\n", envelope_input(rng)));
                }
            }
            let failed = status_input(rng).address.unwrap_or_default();
            text.push_str(&format!(
                "From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail Returned to Sender\r\n\
                 Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n\
                 --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n\
                 Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
                 --b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{}>\r\n\r\n--b--\r\n",
                message_id_input(rng)
            ));
            text.into_bytes()
        },
        |bytes| {
            let reading = report::read(bytes);
            if let Plan::Report { wanted, .. } = check_plan(&keys, &reading)
                && wanted
                    .iter()
                    .any(|item| matches!(item.proof, Proof::Verified { .. }))
            {
                named += 1;
            }
        },
    );
    assert!(runs > 100, "only {runs} inputs");
    assert!(named > 0, "no report was named by its tag");
}
