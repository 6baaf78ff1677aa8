//! Passwords that survive a reboot (issue #14, item 7): `herald password` keeps a relay
//! password in a real Secret Service (GNOME Keyring on a private D-Bus session the test starts
//! itself), the session is torn down and started again on the same keyring files, and a fresh
//! `herald send` authenticates to the test SMTP server with the password read back from it.
//! Without a Secret Service the password goes to the kernel's store, and the output says it is
//! kept only until reboot.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::campaign::{RelayConf, addresses, campaign, campaign_with};
use crate::support::cli_run::{self, Ran};
use crate::support::dovecot::{self, Dovecot};
use crate::support::secret_service::{self, BareBus, SecretService};
use crate::support::smtp_server::SmtpServer;

const LIMIT: Duration = Duration::from_secs(90);

/// A name no other run (nor a password left in the kernel's store by one) shares.
fn unique_name(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("HERALD_TEST_{what}_{}_{nanos}", std::process::id())
}

/// `herald password NAME` with `password` on stdin and `env` set.
fn store_password(name: &str, password: &str, env: &[(&str, String)]) -> Ran {
    let mut command = cli_run::herald_command();
    command
        .args(["password", name])
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let deadline = Instant::now() + LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("herald password did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_password_kept_in_gnome_keyring_is_there_after_the_session_restarts() {
    if secret_service::skip() {
        return;
    }
    let mut keyring = SecretService::start();
    let name = unique_name("KEYRING");
    let password = "relay-Pa55word kept";

    let ran = store_password(&name, password, &keyring.env());
    ran.assert_code(0);
    assert_eq!(ran.stdout.trim(), format!("{name}: Saved in GNOME Keyring"));
    assert!(!ran.all().contains(password), "the password was printed");

    // A reboot: the bus and the keyring daemon go away and come back over the same files.
    keyring.restart();

    let server = SmtpServer::builder().auth("news", password).start();
    let dir = campaign(
        &addresses(3),
        &[RelayConf::new("auth", server.port())
            .extra(&format!("username = \"news\"\npassword_env = \"{name}\""))],
        "connections = 1",
    );
    let owned = keyring.env();
    let env: Vec<(&str, &str)> = owned
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect();
    let ran = cli_run::herald(&["send"], &dir.campaign, &dir.db, &env, LIMIT);
    ran.assert_code(0);
    let received = server.received();
    assert_eq!(received.len(), 3, "{}", ran.all());
    assert!(
        received
            .iter()
            .all(|message| message.auth_user.as_deref() == Some("news")),
        "{received:?}"
    );
}

#[test]
fn without_a_secret_service_the_password_is_kept_until_reboot_and_said_so() {
    if secret_service::skip() {
        return;
    }
    let bus = BareBus::start();
    let name = unique_name("KERNEL");
    let env = [("DBUS_SESSION_BUS_ADDRESS", bus.address.clone())];
    let ran = store_password(&name, "kernel-kept", &env);
    // Never "Saved in …" a store that is not there, and never silent about a reboot.
    if ran.code == Some(1) {
        // Containers often give a process no kernel session keyring: then there is no store at
        // all, and the error says why and what to do instead.
        assert!(
            ran.stderr
                .contains("no Secret Service running, and the kernel keyring failed")
                && ran
                    .stderr
                    .contains(&format!("set the environment variable {name}")),
            "{}",
            ran.all()
        );
        eprintln!(
            "this machine has no kernel session keyring: {}",
            ran.stderr.trim()
        );
        return;
    }
    ran.assert_code(0);
    assert_eq!(
        ran.stdout.trim(),
        format!("{name}: Saved until reboot (no Secret Service running)")
    );
    assert!(ran.stderr.contains("a reboot forgets it"), "{}", ran.all());

    // It is there for the next process all the same (the kernel's store outlives the process).
    let server = SmtpServer::builder().auth("news", "kernel-kept").start();
    let dir = campaign(
        &addresses(1),
        &[RelayConf::new("auth", server.port())
            .extra(&format!("username = \"news\"\npassword_env = \"{name}\""))],
        "connections = 1",
    );
    let ran = cli_run::herald(
        &["send"],
        &dir.campaign,
        &dir.db,
        &[("DBUS_SESSION_BUS_ADDRESS", bus.address.as_str())],
        LIMIT,
    );
    ran.assert_code(0);
    assert_eq!(server.received_count(), 1, "{}", ran.all());
}

#[test]
fn an_empty_password_stores_nothing() {
    let bus_less = [(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent".to_string(),
    )];
    let ran = store_password(&unique_name("EMPTY"), "", &bus_less);
    ran.assert_code(1);
    assert!(ran.stderr.contains("no password given"), "{}", ran.all());
}

/// The bounce mailbox's password is looked up as a relay's is (issue #13, item 2): with no
/// environment variable set, from the Secret Service. `herald send` reads the mailbox first and
/// stops when it cannot, so a send that goes through has read it; `herald bounces` then applies
/// a DSN delivered into the Dovecot that checks the password.
#[test]
fn the_bounce_mailbox_password_is_read_from_the_keyring() {
    if secret_service::skip() || dovecot::skip() {
        return;
    }
    let keyring = SecretService::start();
    let name = unique_name("MAILBOX");
    store_password(&name, dovecot::PASSWORD, &keyring.env()).assert_code(0);
    let dovecot = Dovecot::start();
    let server = SmtpServer::start();
    let emails = vec!["ada@example.org".to_string()];
    let bounces = format!(
        "[bounces]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"tls\"\nusername = \"{}\"\n\
         password_env = \"{name}\"\nca_file = \"{}\"\nreturn_path = \"bounces@acme.example\"\n",
        dovecot.imaps_port,
        dovecot::USER,
        dovecot.ca_file().display()
    );
    let dir = campaign_with(
        &emails,
        &[RelayConf::new("relay", server.port())],
        "",
        &bounces,
    );
    let owned = keyring.env();
    let env: Vec<(&str, &str)> = owned
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect();
    let sent = cli_run::herald(&["send"], &dir.campaign, &dir.db, &env, LIMIT);
    sent.assert_code(0);
    let return_path = server
        .received()
        .first()
        .map(|message| message.mail_from.clone())
        .expect("the message was sent");
    dovecot.deliver(
        "INBOX",
        &dovecot::dsn(
            &return_path,
            "ada@example.org",
            "5.1.1",
            "550 5.1.1 no such user",
        ),
    );
    let ran = cli_run::herald(&["bounces", "--json"], &dir.campaign, &dir.db, &env, LIMIT);
    ran.assert_code(0);
    let summary: serde_json::Value = serde_json::from_str(ran.stdout.trim()).expect("json");
    assert_eq!(summary["read"], 1, "{summary}");
    assert_eq!(summary["hard"], 1, "{summary}");
}
