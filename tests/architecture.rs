//! Keeps the module borders of ARCHITECTURE.md true: each external crate is used only by the
//! module that owns it, SQL lives only in `store`, no core module reaches up into `ui` or `cli`,
//! and every source file opens with a `//!` paragraph saying what it owns.

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

/// (needle in code, the path prefixes allowed to contain it)
const BORDERS: &[(&str, &[&str])] = &[
    ("rusqlite", &["store/"]),
    ("egui", &["ui/"]),
    ("eframe", &["ui/"]),
    ("rfd::", &["ui/dialogs"]),
    ("rhai", &["compose/template.rs"]),
    ("lettre", &["compose/", "engine/smtp"]),
    ("hostname::", &["engine/smtp/session"]),
    ("hickory", &["engine/dns"]),
    ("csv::", &["recipients/"]),
    ("encoding_rs", &["recipients/"]),
    ("idna::", &["recipients/"]),
    ("toml::", &["campaign/"]),
    ("keyring::", &["engine/secrets"]),
    ("calamine", &["recipients/sheet"]),
    ("zbus::", &["engine/secrets"]),
    ("use aws_lc_rs", &["compose/dkim"]),
    ("hmac::", &["token.rs"]),
    ("sha2::", &["token.rs", "oauth2/signin.rs"]),
    // OAuth2 (issue #22): PKCE's verifier and state come from the OS's randomness; the system
    // browser opens the provider's sign-in page.
    ("getrandom::", &["oauth2/signin.rs"]),
    ("mail_parser", &["inbox/report"]),
    // The mailbox reader (inbox/) is async too: IMAP over tokio, on a runtime of its own; so is
    // the unsubscribe endpoint, which runs without the engine, and the pull, which finishes
    // before a run starts (issue #15).
    ("tokio", &["engine/", "inbox/", "unsubscribe/", "oauth2/"]),
    ("async_imap", &["inbox/imap"]),
    ("axum", &["unsubscribe/"]),
    ("hyper::", &["unsubscribe/", "oauth2/"]),
    ("hyper_util", &["unsubscribe/", "oauth2/"]),
    ("http_body_util", &["unsubscribe/", "oauth2/"]),
    ("\"SELECT ", &["store/"]),
    ("INSERT INTO", &["store/"]),
    ("UPDATE recipient", &["store/"]),
    ("CREATE TABLE", &["store/"]),
    ("PRAGMA", &["store/"]),
    // The bounce mailbox's IMAP client has its own TLS: reading mail shares nothing with the
    // SMTP sessions (design.md, "Reading mail back").
    ("tokio_rustls", &["engine/smtp/tls.rs", "inbox/imap.rs"]),
    ("smtp_proto", &["engine/smtp/wire.rs"]),
    ("webpki_roots", &["engine/smtp/tls.rs", "inbox/imap.rs"]),
    // The rendered preview (issue #14): litehtml and image draw it, webbrowser opens it.
    ("litehtml", &["render/"]),
    ("image::", &["render/"]),
    ("webbrowser", &["render/browser.rs", "oauth2/signin.rs"]),
];

#[test]
fn external_crates_and_sql_stay_in_their_modules() {
    let mut violations = Vec::new();
    for (path, text) in all_sources() {
        let code = code_of(&text);
        for (needle, allowed) in BORDERS {
            if code.contains(needle) && !allowed.iter().any(|prefix| path.starts_with(prefix)) {
                violations.push(format!("{path} uses {needle}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "module borders crossed:\n{}",
        violations.join("\n")
    );
}

#[test]
fn core_modules_never_reach_into_the_edges() {
    let mut violations = Vec::new();
    for (path, text) in all_sources() {
        let core = [
            "campaign/",
            "recipients/",
            "store/",
            "compose/",
            "engine/",
            "inbox/",
            "unsubscribe/",
            "delivery.rs",
            "token.rs",
        ]
        .iter()
        .any(|prefix| path.starts_with(prefix));
        if core {
            for edge in ["crate::ui", "crate::cli"] {
                if code_of(&text).contains(edge) {
                    violations.push(format!("{path} uses {edge}"));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
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
