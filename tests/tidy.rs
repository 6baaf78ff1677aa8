//! Keeps the documents and the test layout honest (rust-analyzer's `tidy.rs`): ARCHITECTURE.md
//! names every command of the CLI in its picture and every crate owner that
//! `architecture::CRATE_OWNERS` enforces, no document cites a file the repository does not
//! have, every scenario file in `tests/` is a module of the one test binary, and no test is
//! switched off with an ignore attribute.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|error| panic!("{relative}: {error}"))
}

/// The CLI's commands as a user types them: the variants of `cli::Command`, in kebab case.
fn cli_commands() -> Vec<String> {
    let source = read("src/cli/mod.rs");
    let start = source
        .find("pub enum Command {")
        .expect("cli/mod.rs has the Command enum");
    let body = &source[start..];
    let end = body.find("\n}\n").expect("the enum ends");
    body[..end]
        .lines()
        .filter_map(|line| {
            // A variant sits at one indent: `    Name {`, `    Name,` or `    Name(..)`.
            let rest = line.strip_prefix("    ")?;
            let first = rest.chars().next()?;
            if !first.is_ascii_uppercase() {
                return None;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            Some(kebab(&name))
        })
        .collect()
}

fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (index, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && index > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The first code block after "## The picture".
fn picture(document: &str) -> &str {
    let start = document.find("## The picture").expect("a picture section");
    let rest = &document[start..];
    let open = rest.find("```").expect("the picture is a code block") + 3;
    let close = rest[open..].find("```").expect("the block ends") + open;
    &rest[open..close]
}

fn missing_commands(document: &str, commands: &[String]) -> Vec<String> {
    let picture = picture(document);
    commands
        .iter()
        .filter(|command| {
            !picture
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .any(|word| word == command.as_str())
        })
        .cloned()
        .collect()
}

#[test]
fn architecture_pictures_every_command() {
    let commands = cli_commands();
    assert!(commands.len() >= 10, "found only {commands:?}");
    let missing = missing_commands(&read("ARCHITECTURE.md"), &commands);
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's picture does not name these commands: {missing:?}"
    );
}

/// The crate a border needle stands for (`"keyring::"` → `keyring`).
fn crate_of(needle: &str) -> String {
    needle
        .trim_start_matches("use ")
        .trim_end_matches("::")
        .to_string()
}

fn missing_owners(document: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for (needle, owners) in crate::architecture::CRATE_OWNERS {
        let name = format!("`{}`", crate_of(needle));
        let Some(line) = document.lines().find(|line| {
            line.trim_start().starts_with("- ") && line.contains(&name) && line.contains('→')
        }) else {
            missing.push(format!("{name}: no line \"- {name} → …\""));
            continue;
        };
        for owner in *owners {
            let owner = owner.trim_end_matches('/');
            if !line.contains(owner) {
                missing.push(format!("{name}: owner {owner} not named"));
            }
        }
    }
    missing
}

#[test]
fn architecture_names_every_crate_owner() {
    let missing = missing_owners(&read("ARCHITECTURE.md"));
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's crate owners have drifted from tests/architecture.rs:\n{}",
        missing.join("\n")
    );
}

/// Markdown files a document cites (`design.md`, `docs/x.md`) that the repository lacks.
fn cited_but_absent(document: &str) -> Vec<String> {
    let mut absent = Vec::new();
    for word in document.split(|c: char| !(c.is_ascii_alphanumeric() || "._/-".contains(c))) {
        let Some(stem) = word.strip_suffix(".md") else {
            continue;
        };
        if stem.is_empty() || word.starts_with("http") {
            continue;
        }
        if !root().join(word).exists() {
            absent.push(word.to_string());
        }
    }
    absent.sort();
    absent.dedup();
    absent
}

#[test]
fn documents_cite_only_files_that_exist() {
    for document in ["ARCHITECTURE.md", "README.md", "SECURITY.md"] {
        let absent = cited_but_absent(&read(document));
        assert!(absent.is_empty(), "{document} cites {absent:?}");
    }
}

#[test]
fn the_checks_catch_drift() {
    // Shown failing once on purpose: each check finds what a drifted document lacks.
    let document = "## The picture\n```\n cli::run() check | send\n```\n";
    assert_eq!(
        missing_commands(document, &["check".into(), "test-send".into()]),
        ["test-send"]
    );
    assert!(!missing_owners("- `rusqlite` → nowhere").is_empty());
    assert_eq!(
        cited_but_absent("see design.md and README.md"),
        ["design.md"]
    );
}

#[test]
fn every_test_file_is_a_module() {
    let main = read("tests/main.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root().join("tests"))
        .expect("tests/")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(module) = name.strip_suffix(".rs") else {
            continue;
        };
        if module != "main" && !main.contains(&format!("mod {module};")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "never compiled (autotests is off): add `mod …;` to tests/main.rs for {missing:?}"
    );
}

#[test]
fn no_test_is_ignored() {
    let needle = concat!("#[", "ignore");
    let mut found = Vec::new();
    for dir in ["src", "tests", "benches"] {
        let mut stack = vec![root().join(dir)];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                    stack.push(entry.path());
                }
            } else if path.extension().is_some_and(|ext| ext == "rs")
                && std::fs::read_to_string(&path).is_ok_and(|text| text.contains(needle))
            {
                found.push(path.display().to_string());
            }
        }
    }
    assert!(found.is_empty(), "ignored tests in {found:?}");
}
