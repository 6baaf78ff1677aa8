//! End-to-end tests of the `herald` binary's headless commands (`check`, `import`, `status`):
//! each test builds a campaign (campaign file, CSV, templates, state database) in its own
//! temporary folder, runs the real executable and asserts on its exit code and output.
//! Nothing here sends mail.
// Test helpers (outside `#[test]` functions, where clippy.toml already allows them) fail the
// test by panicking, like the tests themselves.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest any single command may run before the test gives up on it (and kills it).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

const BODY_HTML: &str = "<p>Hello {{ first_name }},</p>\n<p>News for {{ city }}.</p>\n";
const BODY_TEXT: &str = "Hello {{ first_name }},\nNews for {{ city }}.\n";

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    /// stdout and stderr together, for "the message is somewhere in the output" assertions.
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    fn assert_code(&self, expected: i32) -> &Run {
        assert_eq!(
            self.code, expected,
            "expected exit code {expected}, got {}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self.assert_no_panic()
    }

    fn assert_no_panic(&self) -> &Run {
        assert!(
            !self.stderr.contains("panicked"),
            "herald panicked:\n{}",
            self.stderr
        );
        self
    }

    fn assert_mentions(&self, needle: &str) -> &Run {
        assert!(
            self.all().contains(needle),
            "output does not mention {needle:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A temporary folder holding one or more campaigns and a state database.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A folder with `body.html` and `body.txt` templates using `first_name` and `city`.
    fn new() -> Fixture {
        let fixture = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        fixture.write("body.html", BODY_HTML);
        fixture.write("body.txt", BODY_TEXT);
        fixture
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Writes a working campaign file `name` reading `csv`, with `subject` as its subject
    /// template.
    fn campaign_with_subject(&self, name: &str, csv: &str, subject: &str) -> PathBuf {
        self.write(
            name,
            format!(
                r#"[message]
from = "Acme News <news@acme.example>"
subject = {subject:?}
html = "body.html"
text = "body.txt"
unsubscribe = "https://acme.example/u?e={{{{ url(email) }}}}"

[recipients]
csv = "{csv}"
email_column = "email"

[delivery]
mode = "relay"
connections = 4

[[relay]]
name = "local"
host = "127.0.0.1"
port = 2525
security = "none"
"#
            ),
        )
    }

    fn campaign(&self, name: &str, csv: &str) -> PathBuf {
        self.campaign_with_subject(name, csv, "{{ first_name }}, our picks")
    }

    fn db(&self) -> PathBuf {
        self.path("state.db")
    }

    /// Runs herald with `args` and this fixture's database (`--db`).
    fn herald(&self, args: &[&str]) -> Run {
        let db = self.db();
        let mut full: Vec<&str> = vec!["--db", db.to_str().unwrap()];
        full.extend_from_slice(args);
        self.herald_raw(&full, &[])
    }

    /// Runs herald with exactly `args` (no `--db` added) and extra environment variables.
    fn herald_raw(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = herald_command(self.dir.path());
        command.args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        run(command)
    }

    fn import(&self, campaign: &Path) -> Run {
        let run = self.herald(&["import", campaign.to_str().unwrap()]);
        run.assert_code(0);
        run
    }

    fn check(&self, campaign: &Path) -> Run {
        self.herald(&["check", campaign.to_str().unwrap()])
    }

    fn status(&self, campaign: &Path) -> serde_json::Value {
        let run = self.herald(&["status", "--json", campaign.to_str().unwrap()]);
        run.assert_code(0);
        serde_json::from_str(run.stdout.trim()).unwrap_or_else(|error| {
            panic!("status --json printed no JSON ({error}):\n{}", run.stdout)
        })
    }
}

/// A `herald` command isolated from the user's environment: its own working directory, home and
/// data directory, no `HERALD_DB`, no display (so nothing can open a window).
fn herald_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .current_dir(dir)
        .env_remove("HERALD_DB")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `command` to the end (killing it after [`COMMAND_TIMEOUT`]).
fn run(mut command: Command) -> Run {
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    // Drain the pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut text).unwrap();
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut text).unwrap();
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > COMMAND_TIMEOUT {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("herald ran longer than {COMMAND_TIMEOUT:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    let output = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed,
    }
}

/// The `status --json` object with these counts (sending, deferred, sent, failed, uncertain 0).
fn counts(pending: u64, skipped: u64) -> serde_json::Value {
    serde_json::json!({
        "total": pending + skipped,
        "pending": pending,
        "sending": 0,
        "deferred": 0,
        "sent": 0,
        "failed": 0,
        "uncertain": 0,
        "skipped": skipped,
        // Issue #13: what came back from the bounce mailbox.
        "bounced": 0,
        "complained": 0,
        "unsubscribed": 0,
    })
}

/// An environment variable name no one has set.
fn unset_variable_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("HERALD_TEST_UNSET_{}_{nanos}", std::process::id());
    assert!(std::env::var_os(&name).is_none());
    name
}

const SIMPLE_CSV: &str = "email,first_name,city\n\
                          ada@example.org,Ada,Paris\n\
                          grace@example.org,Grace,New York\n\
                          linus@example.net,Linus,Helsinki\n";

// ---------------------------------------------------------------------------------------------
// check

#[test]
fn check_of_the_example_campaign_renders_four_and_skips_two() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/example/campaign.toml");
    let fixture = Fixture::new();
    let run = fixture.check(&example);
    run.assert_code(0);
    let ok = run
        .stdout
        .lines()
        .find(|line| line.starts_with("ok:"))
        .unwrap_or_else(|| panic!("no \"ok:\" line in:\n{}", run.stdout));
    assert!(
        ok.contains("6 recipient(s), 4 message(s) rendered, 2 skipped"),
        "{ok}"
    );
}

/// The example campaign's links never carry the recipient's address (issue #15: anyone could
/// act for anyone by editing such a URL); its unsubscribe link is the signed one.
#[test]
fn the_example_campaigns_links_carry_no_address() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/example/campaign.toml");
    let fixture = Fixture::new();
    let run = fixture.herald(&["preview", example.to_str().unwrap(), "--recipient", "1"]);
    run.assert_code(0);
    // Quoted-printable soft breaks and escapes undone, so a link split over lines is whole.
    let message = run
        .stdout
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let links: Vec<&str> = message
        .match_indices("https://")
        .map(|(at, _)| {
            let rest = &message[at..];
            let end = rest
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '<' | '>'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    assert!(
        links.iter().any(|link| link.contains("/picks")),
        "{message}"
    );
    assert!(links.iter().any(|link| link.contains("/u/")), "{message}");
    for link in &links {
        let lower = link.to_ascii_lowercase();
        assert!(
            !lower.contains("ada%40") && !lower.contains("ada@") && !lower.contains("%40example"),
            "a link carries the address: {link}"
        );
    }
}

/// `herald check` holds `[unsubscribe] token_env` to what `herald unsubscribe-server
/// --token-env` accepts: a variable with fewer than 24 characters is a problem named by key, a
/// long enough one passes.
#[test]
fn check_refuses_a_token_env_secret_the_endpoint_would_refuse() {
    const VAR: &str = "HERALD_CLI_TEST_PULL_BEARER";
    let fixture = Fixture::new();
    fixture.write("list.csv", SIMPLE_CSV);
    let campaign = fixture.campaign("c.toml", "list.csv");
    let mut text = std::fs::read_to_string(&campaign).unwrap();
    text.push_str(&format!(
        "\n[unsubscribe]\nendpoint = \"https://u.acme.example\"\ntoken_env = \"{VAR}\"\n"
    ));
    std::fs::write(&campaign, text).unwrap();
    let db = fixture.db();
    let check = |value: &str| {
        fixture.herald_raw(
            &[
                "--db",
                db.to_str().unwrap(),
                "check",
                campaign.to_str().unwrap(),
            ],
            &[(VAR, value)],
        )
    };
    let short = check("twenty-three-characters");
    short.assert_code(1);
    assert!(
        short.stdout.contains("unsubscribe.token_env") && short.stdout.contains(VAR),
        "{}",
        short.all()
    );
    check("twenty-four-characters!!").assert_code(0);
}

#[test]
fn check_lists_every_campaign_problem_at_once_by_key() {
    let fixture = Fixture::new();
    fixture.write("list.csv", SIMPLE_CSV);
    let unset = unset_variable_name();
    let campaign = fixture.write(
        "broken.toml",
        format!(
            r#"[message]
from = "Acme News <news@acme.example>"
subject = "Hi {{{{ first_name }}}}"
html = "no-such-body.html"

[recipients]
csv = "list.csv"

[delivery]
mode = "carrier-pigeon"
conections = 8
connections = 0

[[relay]]
name = "no-host"
port = 2525

[[relay]]
name = "secret"
host = "smtp.acme.example"
username = "news"
password_env = "{unset}"
"#
        ),
    );
    let run = fixture.check(&campaign);
    run.assert_code(1);
    for key in [
        "delivery.conections",
        "delivery.connections",
        "delivery.mode",
        "message.html",
        "relay[1].host",
        "relay[2].password_env",
    ] {
        run.assert_mentions(key);
    }
    run.assert_mentions("carrier-pigeon")
        .assert_mentions("no-such-body.html")
        .assert_mentions(&unset);
}

#[test]
fn check_names_file_line_and_column_of_a_template_syntax_error() {
    let fixture = Fixture::new();
    fixture.write("list.csv", SIMPLE_CSV);
    fixture.write(
        "body.html",
        "<p>Hello {{ first_name }},</p>\n<p>News for {{ city + }}.</p>\n",
    );
    let campaign = fixture.campaign("c.toml", "list.csv");
    let run = fixture.check(&campaign);
    run.assert_code(1);
    run.assert_mentions("body.html").assert_mentions("line 2");
    assert!(
        run.all().contains("column "),
        "no column in:\n{}",
        run.all()
    );
}

#[test]
fn check_names_an_unknown_field_and_lists_the_columns() {
    let fixture = Fixture::new();
    fixture.write("list.csv", SIMPLE_CSV);
    fixture.write(
        "body.txt",
        "Hello {{ first_name }}, your plan is {{ plan }}.\n",
    );
    let campaign = fixture.campaign("c.toml", "list.csv");
    let run = fixture.check(&campaign);
    run.assert_code(1);
    run.assert_mentions("\"plan\"")
        .assert_mentions("body.txt")
        .assert_mentions("email, first_name, city");
}

/// The unsubscribe link in a body pasted into a campaign with no unsubscribe link set is not a
/// misspelt column: `check` (and the window's Problems box, from the same function) says what
/// the field is and where to set the link, rather than listing the list's columns.
#[test]
fn check_says_where_to_set_the_link_an_unsubscribe_url_field_needs() {
    let fixture = Fixture::new();
    fixture.write("list.csv", SIMPLE_CSV);
    fixture.write(
        "body.txt",
        "Hello {{ first_name }}. Leave the list: {{ unsubscribe_url }}\n",
    );
    let campaign = fixture.campaign("c.toml", "list.csv");
    let run = fixture.check(&campaign);
    run.assert_code(1);
    run.assert_mentions("\"unsubscribe_url\"")
        .assert_mentions("signed unsubscribe link")
        .assert_mentions("[unsubscribe] url");
    assert!(!run.all().contains("the fields are"), "{}", run.all());
}

#[test]
fn check_stops_an_endless_loop_fast() {
    let fixture = Fixture::new();
    fixture.write("list.csv", SIMPLE_CSV);
    fixture.write("body.txt", "Hello {{ loop { } }}\n");
    let campaign = fixture.campaign("c.toml", "list.csv");
    let run = fixture.check(&campaign);
    run.assert_code(1);
    run.assert_mentions("body.txt");
    assert!(
        run.all().contains("endless loop") || run.all().contains("was stopped"),
        "no clear message about the loop:\n{}",
        run.all()
    );
    assert!(
        run.elapsed < Duration::from_secs(20),
        "check took {:?}",
        run.elapsed
    );
}

#[test]
fn check_reports_a_missing_csv_file() {
    let fixture = Fixture::new();
    let campaign = fixture.campaign("c.toml", "nowhere.csv");
    let run = fixture.check(&campaign);
    run.assert_code(1);
    run.assert_mentions("recipients.csv")
        .assert_mentions("nowhere.csv");
}

#[test]
fn check_reports_a_csv_without_the_email_column_and_lists_its_columns() {
    let fixture = Fixture::new();
    fixture.write(
        "list.csv",
        "mail,first_name,city\nada@example.org,Ada,Paris\n",
    );
    let campaign = fixture.campaign("c.toml", "list.csv");
    let run = fixture.check(&campaign);
    run.assert_code(1);
    run.assert_mentions("\"email\"")
        .assert_mentions("mail, first_name, city");
}

#[test]
fn check_refuses_a_binary_file_as_recipient_list() {
    let fixture = Fixture::new();
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0".to_vec();
    png.extend((0..4096u32).map(|i| (i * 7 % 256) as u8));
    fixture.write("list.csv", &png);
    let campaign = fixture.campaign("c.toml", "list.csv");
    let run = fixture.check(&campaign);
    run.assert_code(1);
    run.assert_mentions("not a CSV file");
}

#[test]
fn check_passes_when_a_field_tries_header_injection_in_the_subject() {
    let fixture = Fixture::new();
    fixture.write(
        "list.csv",
        "email,first_name,city\r\n\
         eve@example.org,\"Eve\r\nBcc: victim@evil.example\",Paris\r\n\
         ada@example.org,Ada,Paris\r\n",
    );
    let campaign = fixture.campaign_with_subject("c.toml", "list.csv", "Hi {{ first_name }}");
    let run = fixture.check(&campaign);
    run.assert_code(0);
    run.assert_mentions("ok: 2 recipient(s), 2 message(s) rendered, 0 skipped");
}

// ---------------------------------------------------------------------------------------------
// import and status

#[test]
fn import_reads_bom_crlf_semicolons_and_multiline_quoted_fields() {
    let fixture = Fixture::new();
    let mut csv = b"\xEF\xBB\xBF".to_vec();
    csv.extend_from_slice(
        b"email;first_name;city\r\n\
          ada@example.org;Ada;\"Paris,\r\nFrance\"\r\n\
          bob@example.org;Bob;Lyon\r\n\
          carol@example.net;\"Carol \"\"CJ\"\"\";\"Nice; Alpes\"\r\n\
          BOB@Example.ORG;Bobby;Lyon\r\n\
          not-an-address;Nobody;Nowhere\r\n\
          dan@example.com;Dan;Lille\r\n",
    );
    fixture.write("list.csv", &csv);
    let campaign = fixture.campaign("c.toml", "list.csv");
    fixture.check(&campaign).assert_code(0);
    let run = fixture.import(&campaign);
    run.assert_mentions("fields: first_name, city");
    assert_eq!(fixture.status(&campaign), counts(4, 2));
}

#[test]
fn import_decodes_a_windows_1252_file() {
    let fixture = Fixture::new();
    // 0xE9 = é, 0xEB = ë, 0xF6 = ö in Windows-1252 / Latin-1.
    fixture.write(
        "list.csv",
        b"email,first_name,city\r\nrene@example.org,Ren\xE9,Orl\xE9ans\r\nzoe@example.org,Zo\xEB,K\xF6ln\r\n",
    );
    // The text template fails (exit 1) unless the fields were decoded to the right characters.
    fixture.write(
        "body.txt",
        "{{ if first_name != \"Ren\u{e9}\" && first_name != \"Zo\u{eb}\" { throw \"badly decoded: \" + first_name } }}\
         {{ if city != \"Orl\u{e9}ans\" && city != \"K\u{f6}ln\" { throw \"badly decoded: \" + city } }}\
         Hello {{ first_name }} in {{ city }}\n",
    );
    let campaign = fixture.campaign_with_subject("c.toml", "list.csv", "{{ city }} news");
    fixture
        .check(&campaign)
        .assert_code(0)
        .assert_mentions("ok: 2 recipient(s), 2 message(s) rendered, 0 skipped");
    fixture.import(&campaign);
    assert_eq!(fixture.status(&campaign), counts(2, 0));
}

#[test]
fn import_skips_duplicates_in_any_case_and_invalid_addresses() {
    let fixture = Fixture::new();
    fixture.write(
        "list.csv",
        "email,first_name,city\n\
         ada@example.org,Ada,Paris\n\
         Ada@Example.Org,Ada,Paris\n\
         ADA@EXAMPLE.ORG,Ada,Paris\n\
         grace@example.org,Grace,Arlington\n\
         not-an-address,X,Y\n\
         two@@example.org,X,Y\n\
         ,Empty,Address\n",
    );
    let campaign = fixture.campaign("c.toml", "list.csv");
    let run = fixture.import(&campaign);
    run.assert_mentions("7 row(s): 7 new, 3 invalid, 2 duplicate(s)");
    assert_eq!(fixture.status(&campaign), counts(2, 5));
}

#[test]
fn importing_the_same_file_again_adds_nobody() {
    let fixture = Fixture::new();
    fixture.write(
        "list.csv",
        format!("{SIMPLE_CSV}ADA@example.org,Ada,Paris\nbroken,X,Y\n"),
    );
    let campaign = fixture.campaign("c.toml", "list.csv");
    fixture.import(&campaign);
    assert_eq!(fixture.status(&campaign), counts(3, 2));
    fixture.import(&campaign).assert_mentions("0 new");
    assert_eq!(fixture.status(&campaign), counts(3, 2));
}

#[test]
fn importing_an_edited_file_adds_only_the_new_rows() {
    let fixture = Fixture::new();
    fixture.write("list.csv", SIMPLE_CSV);
    let campaign = fixture.campaign("c.toml", "list.csv");
    fixture.import(&campaign);
    assert_eq!(fixture.status(&campaign), counts(3, 0));
    fixture.write(
        "list.csv",
        "email,first_name,city\n\
         ada@example.org,Ada,Paris\n\
         grace@example.org,Grace Hopper,Arlington\n\
         linus@example.net,Linus,Helsinki\n\
         margaret@example.com,Margaret,Boston\n\
         alan@example.co.uk,Alan,Manchester\n",
    );
    fixture.import(&campaign).assert_mentions("2 new");
    assert_eq!(fixture.status(&campaign), counts(5, 0));
}

/// Issue #2: an import is one transaction, whatever its journal; killed half-way (after the
/// first rows reached the database file), it leaves nobody behind, and the next import works.
#[test]
fn kill_during_import_leaves_nothing_half_imported() {
    const ROWS: usize = 300_000;
    let fixture = Fixture::new();
    // Wide rows, so the import's pages outgrow the page cache (32 MiB) early and spill.
    let note = "n".repeat(200);
    let mut csv = String::from("email,first_name,city,note\n");
    for index in 0..ROWS {
        csv.push_str(&format!(
            "someone.{index}@example.org,Someone {index},Paris,{note}\n"
        ));
    }
    fixture.write("list.csv", csv);
    let campaign = fixture.campaign("c.toml", "list.csv");
    let db = fixture.db();
    let mut command = herald_command(fixture.dir.path());
    command.args([
        "--db",
        db.to_str().unwrap(),
        "import",
        campaign.to_str().unwrap(),
    ]);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    // Once the file grows past a few MiB, rows of the unfinished transaction are in it and only
    // the journal can take them out again.
    let started = Instant::now();
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import finished before it could be killed; make the list longer"
        );
        assert!(
            started.elapsed() < COMMAND_TIMEOUT,
            "the import never wrote rows"
        );
        if std::fs::metadata(&db).map_or(0, |meta| meta.len()) > 4 << 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(fixture.status(&campaign), counts(0, 0));
    fixture.import(&campaign);
    assert_eq!(fixture.status(&campaign), counts(ROWS as u64, 0));
    assert!(!fixture.path("state.db-journal").exists());
}

#[test]
fn two_campaigns_in_one_database_never_share_state() {
    let fixture = Fixture::new();
    fixture.write("a.csv", SIMPLE_CSV);
    fixture.write(
        "b.csv",
        "email,first_name,city\nada@example.org,Ada,Paris\nbroken,X,Y\n",
    );
    let a = fixture.campaign("a.toml", "a.csv");
    let b = fixture.campaign("b.toml", "b.csv");
    let never = fixture.campaign("never.toml", "a.csv");
    fixture.import(&a);
    fixture.import(&b);
    assert_eq!(fixture.status(&a), counts(3, 0));
    assert_eq!(fixture.status(&b), counts(1, 1));
    assert_eq!(fixture.status(&never), counts(0, 0));
}

#[test]
fn status_of_a_campaign_never_imported_prints_zeros() {
    let fixture = Fixture::new();
    fixture.write("list.csv", SIMPLE_CSV);
    let campaign = fixture.campaign("c.toml", "list.csv");
    assert_eq!(fixture.status(&campaign), counts(0, 0));
    // Looking is not importing: no database file appears.
    assert!(!fixture.db().exists(), "status created the database");
    let table = fixture.herald(&["status", campaign.to_str().unwrap()]);
    table.assert_code(0);
    for state in [
        "pending",
        "sending",
        "deferred",
        "sent",
        "failed",
        "uncertain",
        "skipped",
        "total",
    ] {
        let line = table
            .stdout
            .lines()
            .find(|line| line.split_whitespace().next() == Some(state))
            .unwrap_or_else(|| panic!("no {state} line in:\n{}", table.stdout));
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }
}

/// Regression: the campaign's identity was its absolute but not canonical path, so the same
/// file reached through `..` or a symbolic link was a new, empty campaign (and `send` would
/// have mailed everybody a second time).
#[test]
fn the_same_campaign_file_by_another_path_finds_its_state() {
    let fixture = Fixture::new();
    fixture.write("list.csv", SIMPLE_CSV);
    let campaign = fixture.campaign("c.toml", "list.csv");
    std::fs::create_dir(fixture.path("sub")).unwrap();
    fixture.import(&campaign);
    assert_eq!(fixture.status(&campaign), counts(3, 0));
    let relative = fixture.herald(&["status", "--json", "c.toml"]);
    relative.assert_code(0);
    let json: serde_json::Value = serde_json::from_str(relative.stdout.trim()).unwrap();
    assert_eq!(json, counts(3, 0), "by a relative path");
    assert_eq!(
        fixture.status(&fixture.path("sub/../c.toml")),
        counts(3, 0),
        "by a path through .."
    );
    #[cfg(unix)]
    {
        let link = fixture.path("link");
        std::os::unix::fs::symlink(fixture.dir.path(), &link).unwrap();
        assert_eq!(
            fixture.status(&link.join("c.toml")),
            counts(3, 0),
            "through a symbolic link"
        );
    }
}

#[test]
fn import_reads_a_utf16_file_with_bom() {
    let fixture = Fixture::new();
    let text = "email,first_name,city\r\nzoe@example.org,Zo\u{eb},K\u{f6}ln\r\nrene@example.org,Ren\u{e9},Orl\u{e9}ans\r\n";
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    fixture.write("list.csv", &bytes);
    fixture.write(
        "body.txt",
        "{{ if city != \"Orl\u{e9}ans\" && city != \"K\u{f6}ln\" { throw \"badly decoded: \" + city } }}Hi\n",
    );
    let campaign = fixture.campaign("c.toml", "list.csv");
    fixture.check(&campaign).assert_code(0);
    fixture.import(&campaign);
    assert_eq!(fixture.status(&campaign), counts(2, 0));
}

#[test]
fn herald_db_variable_works_like_the_db_option() {
    let fixture = Fixture::new();
    fixture.write("list.csv", SIMPLE_CSV);
    let campaign = fixture.campaign("c.toml", "list.csv");
    let db = fixture.path("from-env.db");
    let via_env = [("HERALD_DB", db.to_str().unwrap())];
    fixture
        .herald_raw(&["import", campaign.to_str().unwrap()], &via_env)
        .assert_code(0);
    assert!(db.is_file(), "HERALD_DB was not used");
    let status = fixture.herald_raw(&["status", "--json", campaign.to_str().unwrap()], &via_env);
    status.assert_code(0);
    let json: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    assert_eq!(json, counts(3, 0));
    let status = fixture.herald_raw(
        &[
            "--db",
            db.to_str().unwrap(),
            "status",
            "--json",
            campaign.to_str().unwrap(),
        ],
        &[],
    );
    let json: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    assert_eq!(json, counts(3, 0));
    // The fixture's own database was never created: the variable, not a default, was used.
    assert!(!fixture.db().exists());
}

// ---------------------------------------------------------------------------------------------
// the database file

#[test]
fn a_database_from_a_newer_herald_is_refused() {
    let fixture = Fixture::new();
    fixture.write("list.csv", SIMPLE_CSV);
    let campaign = fixture.campaign("c.toml", "list.csv");
    fixture.import(&campaign);
    let db = fixture.db();
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", db.display()));
        assert!(
            !side.exists() || suffix == "-shm",
            "{} left behind: the import did not checkpoint",
            side.display()
        );
        let _ = std::fs::remove_file(side);
    }
    // PRAGMA user_version is the big-endian u32 at offset 60 of the SQLite header.
    let mut bytes = std::fs::read(&db).unwrap();
    assert_eq!(&bytes[..16], b"SQLite format 3\0");
    let version = u32::from_be_bytes([bytes[60], bytes[61], bytes[62], bytes[63]]);
    assert!((1..99).contains(&version), "schema version {version}");
    bytes[60..64].copy_from_slice(&99u32.to_be_bytes());
    std::fs::write(&db, &bytes).unwrap();
    fixture
        .herald(&["status", campaign.to_str().unwrap()])
        .assert_code(1)
        .assert_mentions("newer version of Herald");
}

#[test]
fn a_text_file_as_database_is_refused() {
    let fixture = Fixture::new();
    fixture.write("list.csv", SIMPLE_CSV);
    let campaign = fixture.campaign("c.toml", "list.csv");
    fixture.write(
        "state.db",
        "These are my notes, not a database.\nPlease do not overwrite them.\n",
    );
    let before = std::fs::read(fixture.db()).unwrap();
    fixture
        .herald(&["status", campaign.to_str().unwrap()])
        .assert_code(1)
        .assert_mentions("not a Herald database");
    fixture
        .herald(&["import", campaign.to_str().unwrap()])
        .assert_code(1)
        .assert_mentions("not a Herald database");
    assert_eq!(std::fs::read(fixture.db()).unwrap(), before, "file changed");
}

/// Regression: a SQLite database of another program (user_version 0, tables of its own) was
/// taken for a new Herald database and got Herald's tables added (or failed with raw SQL in the
/// whole migration SQL. Expected: "not a Herald database", exit 1, the file left untouched.
/// Needs the `sqlite3` shell to make the foreign database; skipped with a note without it, and
/// failed without it under CI=true.
#[test]
fn another_programs_sqlite_database_is_refused_untouched() {
    let fixture = Fixture::new();
    fixture.write("list.csv", SIMPLE_CSV);
    let campaign = fixture.campaign("c.toml", "list.csv");
    for (name, sql) in [
        (
            "notes.db",
            "CREATE TABLE notes(x); INSERT INTO notes VALUES ('mine');",
        ),
        (
            "shop.db",
            "CREATE TABLE campaign(x); INSERT INTO campaign VALUES ('mine');",
        ),
    ] {
        let db = fixture.path(name);
        match Command::new("sqlite3").arg(&db).arg(sql).status() {
            Ok(status) => assert!(status.success()),
            Err(error) => {
                crate::support::tools::skip_if_missing(Some(format!(
                    "the sqlite3 shell is not available ({error}); .ci/run installs it"
                )));
                return;
            }
        }
        let before = std::fs::read(&db).unwrap();
        let run = fixture.herald_raw(
            &[
                "--db",
                db.to_str().unwrap(),
                "status",
                campaign.to_str().unwrap(),
            ],
            &[],
        );
        run.assert_code(1).assert_mentions("not a Herald database");
        assert!(
            !run.all().contains("CREATE TABLE"),
            "the error dumps SQL:\n{}",
            run.all()
        );
        assert_eq!(std::fs::read(&db).unwrap(), before, "{name} was modified");
    }
}

/// Holds the write lock with the `sqlite3` shell (no Rust SQLite dependency in tests); skipped
/// with a note when `sqlite3` is not installed, failed under CI=true.
#[test]
fn a_locked_database_is_reported_as_locked() {
    let fixture = Fixture::new();
    fixture.write("list.csv", SIMPLE_CSV);
    let campaign = fixture.campaign("c.toml", "list.csv");
    fixture.import(&campaign);
    let flag = fixture.path("locked.flag");
    let mut holder = match Command::new("sqlite3")
        .arg(fixture.db())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            crate::support::tools::skip_if_missing(Some(format!(
                "the sqlite3 shell is not available ({error}); .ci/run installs it"
            )));
            return;
        }
    };
    let mut stdin = holder.stdin.take().unwrap();
    writeln!(
        stdin,
        "BEGIN EXCLUSIVE;\nUPDATE campaign SET name = name;\n.shell touch '{}'",
        flag.display()
    )
    .unwrap();
    stdin.flush().unwrap();
    let waiting = Instant::now();
    while !flag.exists() {
        assert!(
            waiting.elapsed() < Duration::from_secs(20),
            "sqlite3 never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = fixture.herald(&["import", campaign.to_str().unwrap()]);
    drop(stdin);
    holder.wait().unwrap();
    run.assert_code(1).assert_mentions("locked");
    // Once the lock is gone, the database works and nothing was lost.
    assert_eq!(fixture.status(&campaign), counts(3, 0));
}

// ---------------------------------------------------------------------------------------------
// usage

#[test]
fn help_lists_every_command() {
    let fixture = Fixture::new();
    let run = fixture.herald_raw(&["--help"], &[]);
    run.assert_code(0);
    for command in ["check", "import", "status", "send", "resend"] {
        assert!(
            run.stdout
                .lines()
                .any(|line| line.split_whitespace().next() == Some(command)),
            "--help does not list {command}:\n{}",
            run.stdout
        );
    }
}

/// Regression: `frobnicate` was taken as the window's optional CAMPAIGN.toml argument, so
/// herald tried to open the window and exited 1 instead of reporting a usage error (2).
#[test]
fn an_unknown_command_is_a_usage_error() {
    let fixture = Fixture::new();
    let run = fixture.herald_raw(&["frobnicate"], &[]);
    run.assert_code(2);
}

#[test]
fn an_unknown_option_is_a_usage_error() {
    let fixture = Fixture::new();
    let run = fixture.herald_raw(&["status", "--frobnicate", "c.toml"], &[]);
    run.assert_code(2);
}
