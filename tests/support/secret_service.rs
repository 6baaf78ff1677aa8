//! A real Secret Service for tests: a private D-Bus session bus (`dbus-daemon` with a
//! configuration of our own in a temporary folder, so nothing of the machine's session is
//! touched and no other service can be started on it) and GNOME Keyring on that bus
//! (`gnome-keyring-daemon --foreground --components=secrets --unlock`, its login keyring
//! created and unlocked with a password given on stdin, as keyring-rs's CI does under
//! `dbus-run-session`). Both are children of the test and are killed by pid when dropped.
//! [`SecretService::restart`] stops both and starts them again on the same keyring files: what
//! a reboot does to a desktop session. Test-only; needs Debian's `dbus-daemon` and
//! `gnome-keyring` (`.ci/run` installs them).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEYRING_PASSWORD: &str = "herald-test-login";

/// Why these tests cannot run here, or None. With `CI=true` the caller must fail, not skip.
pub fn unavailable() -> Option<String> {
    for (tool, package) in [
        ("dbus-daemon", "dbus-daemon"),
        ("gnome-keyring-daemon", "gnome-keyring"),
    ] {
        let found = ["/usr/bin", "/bin", "/usr/local/bin"]
            .iter()
            .any(|dir| Path::new(dir).join(tool).exists());
        if !found {
            return Some(format!(
                "{tool} is not installed (Debian package `{package}`; .ci/run installs it)"
            ));
        }
    }
    None
}

/// True when the test should stop here: prints why, and panics instead under `CI=true`.
pub fn skip() -> bool {
    let Some(reason) = unavailable() else {
        return false;
    };
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("CI must run the Secret Service tests: {reason}");
    }
    eprintln!("skipped: {reason}");
    true
}

/// A session bus with GNOME Keyring on it.
pub struct SecretService {
    dir: tempfile::TempDir,
    bus: Option<Child>,
    keyring: Option<Child>,
    address: String,
}

impl SecretService {
    pub fn start() -> SecretService {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
        std::fs::create_dir_all(dir.path().join("run")).expect("runtime dir");
        // The runtime folder holds the keyring's control socket: private, as a real one is.
        set_mode(&dir.path().join("run"), 0o700);
        let mut service = SecretService {
            dir,
            bus: None,
            keyring: None,
            address: String::new(),
        };
        service.launch();
        service
    }

    /// Environment for a process that should use this session (and nothing of the machine's).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DBUS_SESSION_BUS_ADDRESS", self.address.clone()),
            ("XDG_RUNTIME_DIR", self.path("run").display().to_string()),
        ]
    }

    /// Stops the keyring and the bus, then starts both again on the same keyring files.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn launch(&mut self) {
        let (bus, address) = start_bus(self.dir.path());
        self.address = address;
        self.bus = Some(bus);

        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--components=secrets", "--unlock"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.path("data"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gnome-keyring-daemon");
        {
            let mut stdin = keyring.stdin.take().expect("keyring stdin");
            stdin
                .write_all(KEYRING_PASSWORD.as_bytes())
                .expect("unlock password");
        }
        self.keyring = Some(keyring);
        self.wait_for_secrets();
    }

    /// Waits until the keyring owns `org.freedesktop.secrets` on the bus.
    fn wait_for_secrets(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let listed = Command::new("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.ListNames",
                ])
                .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
                .output();
            if let Ok(out) = listed
                && String::from_utf8_lossy(&out.stdout).contains("org.freedesktop.secrets")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gnome-keyring-daemon did not appear on the bus"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        for child in [self.keyring.take(), self.bus.take()].into_iter().flatten() {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        self.stop();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Starts `dbus-daemon` as a session bus listening in `dir`, with no service files (so it
/// starts nothing on demand); returns it and its address.
fn start_bus(dir: &Path) -> (Child, String) {
    let config = dir.join("bus.conf");
    std::fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            dir.display()
        ),
    )
    .expect("bus config");
    let mut bus = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .args(["--nofork", "--print-address=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dbus-daemon");
    let mut address = String::new();
    BufReader::new(bus.stdout.take().expect("bus stdout"))
        .read_line(&mut address)
        .expect("read the bus address");
    let address = address.trim().to_string();
    assert!(
        address.starts_with("unix:"),
        "dbus-daemon gave no address: {address:?}"
    );
    (bus, address)
}

/// A session bus with no Secret Service on it (nor any service it could start).
pub struct BareBus {
    _dir: tempfile::TempDir,
    bus: Child,
    pub address: String,
}

impl BareBus {
    pub fn start() -> BareBus {
        let dir = tempfile::tempdir().expect("temp dir");
        let (bus, address) = start_bus(dir.path());
        BareBus {
            _dir: dir,
            bus,
            address,
        }
    }
}

impl Drop for BareBus {
    fn drop(&mut self) {
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}
