//! A real Dovecot IMAP server for the bounce-mailbox tests: one private instance per test,
//! configured in a temporary folder (dovecot.conf, passwd file, Maildir, run/state/log dirs),
//! listening on 127.0.0.1 on two free ports: IMAP with STARTTLS offered (plain login allowed,
//! for `security = "none"` tests) and implicit TLS ("imaps"), with a certificate for 127.0.0.1
//! issued by a CA made for the test (`postfix::make_certificates`). It runs unprivileged the way
//! notes.md records: internal and login users `nobody`, no chroot on the login services, every
//! folder on the way searchable by nobody. Tests drop messages into the Maildir and read the
//! flags Dovecot wrote into file names. Stopped (SIGTERM, then SIGKILL) when dropped.
//! Test-only; needs Debian's `dovecot-imapd` and `openssl`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "bounces";
pub const PASSWORD: &str = "imap-secret";

/// Why Dovecot-based tests cannot run here, or `None`.
pub fn unavailable() -> Option<String> {
    if !Path::new("/usr/sbin/dovecot").exists() {
        return Some(
            "Dovecot is not installed (Debian package `dovecot-imapd`; .ci/run installs it)".into(),
        );
    }
    if !Path::new("/usr/bin/openssl").exists() {
        return Some("openssl is not installed".into());
    }
    None
}

/// With `CI=true` a missing tool fails the test; elsewhere the test says why and returns
/// (`tools::skip_if_missing`).
pub fn skip() -> bool {
    super::tools::skip_if_missing(unavailable())
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn current_user() -> (u32, String) {
    let out = |arg: &str| {
        let output = Command::new("id").arg(arg).output().expect("id");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    (out("-u").parse().unwrap_or(0), out("-un"))
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A running Dovecot.
pub struct Dovecot {
    dir: tempfile::TempDir,
    /// IMAP (STARTTLS offered).
    pub imap_port: u16,
    /// IMAP over implicit TLS.
    pub imaps_port: u16,
    child: Option<Child>,
    /// uid/gid owning the mail (nobody when run as root).
    owner: (u32, u32),
    serial: std::cell::Cell<u64>,
}

impl Dovecot {
    pub fn start() -> Dovecot {
        Dovecot::start_with(None, "")
    }

    /// A Dovecot whose `USER` also signs in with SASL XOAUTH2 or OAUTHBEARER: its `oauth2`
    /// passdb asks `introspection_url` (RFC 7662, POST, the URL carrying the resource server's
    /// client id and secret) whether the bearer token is active and whose it is (`sub`).
    pub fn start_oauth2(introspection_url: &str) -> Dovecot {
        Dovecot::start_with(Some(introspection_url), "xoauth2 oauthbearer")
    }

    /// [`Dovecot::start_oauth2`] offering only these bearer mechanisms (`"oauthbearer"`), in
    /// IMAP and, through its auth socket, in a Postfix's SMTP AUTH.
    pub fn start_oauth2_offering(introspection_url: &str, mechanisms: &str) -> Dovecot {
        Dovecot::start_with(Some(introspection_url), mechanisms)
    }

    fn start_with(introspection_url: Option<&str>, bearer_mechanisms: &str) -> Dovecot {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        // Dovecot's processes run as nobody and must reach the passwd file and the Maildir.
        chmod(&root, 0o755);
        for sub in ["run", "state", "tls", "home", "home/Maildir"] {
            std::fs::create_dir_all(root.join(sub)).expect("mkdir");
        }
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(root.join("home/Maildir").join(sub)).expect("mkdir");
        }
        super::postfix::make_certificates(&root.join("tls"));
        let (uid, name) = current_user();
        let (internal, owner, group) = if uid == 0 {
            (
                "nobody".to_string(),
                (65_534, 65_534),
                "nogroup".to_string(),
            )
        } else {
            let gid = Command::new("id").arg("-g").output().expect("id");
            let gid = String::from_utf8_lossy(&gid.stdout)
                .trim()
                .parse()
                .unwrap_or(uid);
            (name.clone(), (uid, gid), name.clone())
        };
        let home = root.join("home");
        std::fs::write(
            root.join("passwd"),
            format!("{USER}:{{PLAIN}}{PASSWORD}::::{}::\n", home.display()),
        )
        .expect("passwd");
        chmod(&root.join("passwd"), 0o644);
        let imap_port = free_port();
        let imaps_port = free_port();
        let (mechanisms, oauth2_passdb): (String, String) = match introspection_url {
            None => ("plain login".into(), String::new()),
            Some(url) => {
                let ext = root.join("oauth2.conf.ext");
                std::fs::write(
                    &ext,
                    format!(
                        "introspection_mode = post\nintrospection_url = {url}\n\
                         username_attribute = sub\nactive_attribute = active\n\
                         active_value = true\n"
                    ),
                )
                .expect("oauth2 conf");
                chmod(&ext, 0o644);
                (
                    format!("plain login {bearer_mechanisms}"),
                    // The auth socket lets a Postfix smtpd hand SMTP AUTH to this Dovecot.
                    format!(
                        "passdb {{\n  driver = oauth2\n  mechanisms = {bearer_mechanisms}\n  args = {}\n}}\n\
                         service auth {{\n  unix_listener {}/auth-client {{\n    mode = 0666\n  }}\n}}\n",
                        ext.display(),
                        root.display()
                    ),
                )
            }
        };
        let conf = format!(
            r#"
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/log
info_log_path = {root}/log
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {internal}
first_valid_uid = 0
first_valid_gid = 0
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
{oauth2_passdb}ssl = yes
ssl_cert = <{root}/tls/server.pem
ssl_key = <{root}/tls/server.key
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = {root}/passwd
}}
userdb {{
  driver = static
  args = uid={owner_uid} gid={owner_gid} home={home}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"#,
            root = root.display(),
            home = home.display(),
            owner_uid = owner.0,
            owner_gid = owner.1,
        );
        std::fs::write(root.join("dovecot.conf"), conf).expect("conf");
        let mut dovecot = Dovecot {
            dir,
            imap_port,
            imaps_port,
            child: None,
            owner,
            serial: std::cell::Cell::new(0),
        };
        dovecot.own_mail();
        let child = Command::new("/usr/sbin/dovecot")
            .arg("-F")
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dovecot");
        dovecot.child = Some(child);
        dovecot.wait_for_port(imap_port);
        dovecot.wait_for_port(imaps_port);
        dovecot
    }

    fn wait_for_port(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("Dovecot did not listen on {port}:\n{}", self.log());
    }

    /// The auth socket a Postfix smtpd can use for SASL (Dovecots started with
    /// [`Dovecot::start_oauth2`] only).
    pub fn auth_socket(&self) -> PathBuf {
        self.root().join("auth-client")
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn ca_file(&self) -> PathBuf {
        self.root().join("tls/ca.pem")
    }

    pub fn maildir(&self) -> PathBuf {
        self.root().join("home/Maildir")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root().join("log")).unwrap_or_default()
    }

    /// The Maildir folder of `folder` ("INBOX" or a name; Maildir++ puts others in `.NAME`).
    fn folder_dir(&self, folder: &str) -> PathBuf {
        if folder == "INBOX" {
            self.maildir()
        } else {
            self.maildir().join(format!(".{folder}"))
        }
    }

    /// Creates an empty folder.
    pub fn create_folder(&self, folder: &str) {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(self.folder_dir(folder).join(sub)).expect("mkdir");
        }
        self.own_mail();
    }

    /// Gives the mail to the user Dovecot serves it as.
    fn own_mail(&self) {
        fn walk(path: &Path, owner: (u32, u32)) {
            let _ = std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1));
            if path.is_dir() {
                for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                    walk(&entry.path(), owner);
                }
            }
        }
        walk(&self.root().join("home"), self.owner);
    }

    /// Drops a message into `folder`'s `new/`, as a delivery agent would.
    pub fn deliver(&self, folder: &str, raw: &[u8]) {
        let n = self.serial.get() + 1;
        self.serial.set(n);
        let name = format!(
            "{}.M{n}P{}.herald-test",
            1_700_000_000 + n,
            std::process::id()
        );
        let dir = self.folder_dir(folder);
        std::fs::write(dir.join("tmp").join(&name), raw).expect("write mail");
        let path = dir.join("new").join(&name);
        std::fs::rename(dir.join("tmp").join(&name), &path).expect("move mail");
        let _ = std::os::unix::fs::chown(&path, Some(self.owner.0), Some(self.owner.1));
    }

    /// Drops `count` copies of one message into `folder`'s `new/` as hard links of a single
    /// file, so that a thousand 10 MB messages cost 10 MB of disk (Dovecot reads each by its
    /// own name).
    pub fn deliver_links(&self, folder: &str, raw: &[u8], count: usize) {
        let dir = self.folder_dir(folder);
        let original = self.root().join("original.eml");
        std::fs::write(&original, raw).expect("write mail");
        let _ = std::os::unix::fs::chown(&original, Some(self.owner.0), Some(self.owner.1));
        for _ in 0..count {
            let n = self.serial.get() + 1;
            self.serial.set(n);
            let name = format!(
                "{}.M{n}P{}.herald-test",
                1_700_000_000 + n,
                std::process::id()
            );
            std::fs::hard_link(&original, dir.join("new").join(name)).expect("link mail");
        }
    }

    /// Makes the message of `folder` containing `text` unreadable to Dovecot (mode 000; the
    /// test runs as root, Dovecot's mail processes as nobody), as a damaged file would be.
    pub fn make_unreadable(&self, folder: &str, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        for sub in ["new", "cur"] {
            let dir = self.folder_dir(folder).join(sub);
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let body = std::fs::read_to_string(entry.path()).unwrap_or_default();
                if body.contains(text) {
                    std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o000))
                        .expect("chmod");
                    return;
                }
            }
        }
        panic!("no message with {text:?} in {folder}");
    }

    /// Each message of `folder` with its Maildir flags (the letters after ":2,"; "" for none),
    /// sorted by content.
    pub fn messages(&self, folder: &str) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.folder_dir(folder).join(sub);
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let flags = name
                    .rsplit_once(":2,")
                    .map(|(_, flags)| flags.to_string())
                    .unwrap_or_default();
                let body = std::fs::read_to_string(entry.path()).unwrap_or_default();
                found.push((body, flags));
            }
        }
        found.sort();
        found
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A minimal RFC 3464 report as an MTA writes it, delivered to `return_path` (its own
/// Message-ID differs per failed address and status).
pub fn dsn(return_path: &str, failed: &str, status: &str, diagnostic: &str) -> Vec<u8> {
    format!(
        "Return-Path: <>\r\nDelivered-To: {return_path}\r\n\
         From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\nTo: {return_path}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <{status}.{failed}>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"RB\"\r\n\r\n\
         --RB\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n\
         --RB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\
         Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: {status}\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\r\n--RB--\r\n"
    )
    .into_bytes()
}
