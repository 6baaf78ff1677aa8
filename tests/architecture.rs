//! Keeps the module borders of ARCHITECTURE.md true: each external crate is used only by the
//! module that owns it, SQL lives only in `store`, every module imports only what is below it
//! (the leaves nothing above them, no feature module the engine or the application layer, no
//! core module the front ends), and every source file opens with a `//!` paragraph saying what
//! it owns.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

fn all_sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(files.len() > 10, "found only {} source files", files.len());
    files
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(&root)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            (relative, text)
        })
        .collect()
}

/// Code lines only: comments would otherwise trip the checks when they mention a crate.
fn code_of(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each external crate and its owners: (needle in code, the path prefixes allowed to contain
/// it). ARCHITECTURE.md names every crate and owner listed here (`tidy.rs` checks it).
pub const CRATE_OWNERS: &[(&str, &[&str])] = &[
    ("rusqlite", &["store/"]),
    ("egui", &["ui/"]),
    ("eframe", &["ui/"]),
    ("rfd::", &["ui/dialogs"]),
    ("rhai", &["compose/template.rs"]),
    ("lettre", &["compose/", "engine/smtp"]),
    ("hostname::", &["engine/smtp/session"]),
    ("hickory", &["engine/dns"]),
    // The deliverability check (issue #23): SPF and DMARC evaluation and organizational domains.
    ("mail_auth", &["dnsauth/"]),
    ("psl::", &["dnsauth/"]),
    // Lists are read by `recipients` (delimiters, encodings); files Herald writes and reads
    // back by `csvfile`.
    ("csv::", &["recipients/", "csvfile.rs"]),
    ("encoding_rs", &["recipients/"]),
    ("idna::", &["recipients/"]),
    ("toml::", &["campaign/"]),
    ("toml_edit::", &["campaign/edit.rs"]),
    ("keyring::", &["credentials/"]),
    ("calamine", &["recipients/sheet"]),
    ("zbus::", &["credentials/"]),
    // One crypto provider: DKIM signs with it, and TLS names it for rustls. Catches
    // `rustls::crypto::aws_lc_rs` anywhere else too.
    ("aws_lc_rs", &["compose/dkim", "tls.rs"]),
    ("hmac::", &["token.rs"]),
    ("sha2::", &["token.rs", "oauth2/signin.rs"]),
    // OAuth2 (issue #22): PKCE's verifier and state come from the OS's randomness; the system
    // browser opens the provider's sign-in page.
    ("getrandom::", &["oauth2/signin.rs"]),
    ("mail_parser", &["inbox/report"]),
    // Async code: the engine's runtime, the mailbox reader's and the unsubscribe endpoint's
    // own, and the HTTP client's (its blocking entry makes one for the call). `tls.rs` names
    // tokio-rustls. The deliverability check (dnsauth/) runs on a small runtime of its own;
    // MTA-STS (mtasts/) runs on the engine's, with its cache's SQL off the async threads.
    (
        "tokio",
        &[
            "engine/",
            "inbox/",
            "unsubscribe/",
            "http.rs",
            "tls.rs",
            "dnsauth/",
            "oauth2/",
            "mtasts/",
        ],
    ),
    ("async_imap", &["inbox/imap"]),
    ("axum", &["unsubscribe/"]),
    // hyper serves the unsubscribe endpoint and OAuth2's loopback redirect (issue #22), and
    // is the one HTTP client.
    ("hyper::", &["unsubscribe/", "http.rs", "oauth2/signin.rs"]),
    (
        "hyper_util",
        &["unsubscribe/", "http.rs", "oauth2/signin.rs"],
    ),
    (
        "http_body_util",
        &["unsubscribe/", "http.rs", "oauth2/signin.rs"],
    ),
    ("rustls", &["tls.rs"]),
    ("smtp_proto", &["engine/smtp/wire.rs"]),
    ("webpki_roots", &["tls.rs"]),
    // The rendered preview (issue #14): litehtml and image draw it, webbrowser opens it.
    ("litehtml", &["render/"]),
    ("image::", &["render/"]),
    ("webbrowser", &["render/browser.rs", "oauth2/signin.rs"]),
];

/// SQL stays in `store`.
const SQL: &[&str] = &[
    "\"SELECT ",
    "INSERT INTO",
    "UPDATE recipient",
    "CREATE TABLE",
    "PRAGMA",
];

#[test]
fn external_crates_and_sql_stay_in_their_modules() {
    let mut violations = Vec::new();
    for (path, text) in all_sources() {
        let code = code_of(&text);
        for (needle, allowed) in CRATE_OWNERS {
            if code.contains(needle) && !allowed.iter().any(|prefix| path.starts_with(prefix)) {
                violations.push(format!("{path} uses {needle}"));
            }
        }
        for needle in SQL {
            if code.contains(needle) && !path.starts_with("store/") {
                violations.push(format!("{path} has SQL ({needle})"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "module borders crossed:\n{}",
        violations.join("\n")
    );
}

/// Who each module may import (`crate::NAME`), bottom up: the leaves import nothing above
/// them, the feature modules never reach up into the engine or the application layer, and only
/// the front ends sit on top.
const MAY_USE: &[(&str, &[&str])] = &[
    ("delivery.rs", &[]),
    ("tls.rs", &[]),
    ("csvfile.rs", &[]),
    ("credentials/", &[]),
    ("http.rs", &["tls"]),
    ("oauth2/", &["campaign", "credentials", "http"]),
    ("token.rs", &["delivery"]),
    ("campaign/", &["delivery"]),
    ("recipients/", &["campaign", "delivery"]),
    ("store/", &["campaign", "delivery", "recipients", "token"]),
    (
        "compose/",
        &["campaign", "delivery", "recipients", "store", "token"],
    ),
    ("identity.rs", &["campaign", "compose", "store", "token"]),
    (
        "import.rs",
        &["campaign", "delivery", "identity", "recipients", "store"],
    ),
    (
        "engine/",
        &[
            "campaign",
            "compose",
            "credentials",
            "delivery",
            "oauth2",
            "identity",
            "import",
            "mtasts",
            "recipients",
            "store",
            "tls",
            "token",
        ],
    ),
    (
        "inbox/",
        &[
            "campaign",
            "compose",
            "credentials",
            "oauth2",
            "delivery",
            "identity",
            "recipients",
            "store",
            "tls",
            "token",
        ],
    ),
    (
        "unsubscribe/",
        &["campaign", "delivery", "http", "store", "tls", "token"],
    ),
    ("render/", &["http"]),
    // MTA-STS policies (issue #23): fetched through the one HTTP client, cached in the store;
    // its DNS is handed in by the engine (`mtasts::Resolve`), so it never imports the engine.
    ("mtasts/", &["delivery", "http", "store", "tls"]),
    // The deliverability check asks through direct mode's resolver (engine::dns).
    ("dnsauth/", &["campaign", "compose", "recipients", "engine"]),
];

#[test]
fn front_ends_never_touch_the_store() {
    // The window and the CLI go through the application layer (`app`), which re-exports the
    // plain types they show; only `app` and the engine open a `Store`.
    let violations: Vec<String> = all_sources()
        .into_iter()
        .filter(|(path, _)| path.starts_with("ui/") || path.starts_with("cli/"))
        .filter(|(_, text)| code_of(text).contains("crate::store"))
        .map(|(path, _)| path)
        .collect();
    assert!(
        violations.is_empty(),
        "front ends using store: {violations:?}"
    );
}

#[test]
fn front_ends_reach_the_dns_check_through_the_application_layer() {
    // Issue #23: what stops a send is decided once, in `app::deliverability`, which the CLI
    // and the window both call; neither front end names `dnsauth`.
    let violations: Vec<String> = all_sources()
        .into_iter()
        .filter(|(path, _)| path.starts_with("ui/") || path.starts_with("cli/"))
        .filter(|(_, text)| code_of(text).contains("dnsauth"))
        .map(|(path, _)| path)
        .collect();
    assert!(
        violations.is_empty(),
        "front ends using dnsauth: {violations:?}"
    );
}

#[test]
fn modules_only_use_what_is_below_them() {
    let mut violations = Vec::new();
    for (path, text) in all_sources() {
        let Some((_, allowed)) = MAY_USE.iter().find(|(prefix, _)| path.starts_with(prefix)) else {
            continue;
        };
        let own = path.split(['/', '.']).next().unwrap_or_default();
        let code = code_of(&text);
        for (at, _) in code.match_indices("crate::") {
            let used: String = code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if used.is_empty() || used == own || allowed.contains(&used.as_str()) {
                continue;
            }
            violations.push(format!("{path} uses crate::{used}"));
        }
    }
    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "arrows that run up (see MAY_USE and ARCHITECTURE.md):\n{}",
        violations.join("\n")
    );
}

#[test]
fn every_file_says_what_it_owns() {
    let missing: Vec<String> = all_sources()
        .into_iter()
        .filter(|(_, text)| !text.trim_start().starts_with("//!"))
        .map(|(path, _)| path)
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! header: {missing:?}"
    );
}
