//! A real Postfix for interop tests: one private instance per test, configured in a temporary
//! folder (main.cf, master.cf, queue, data, Maildirs, log), listening on 127.0.0.1 on three free
//! ports (plain SMTP with optional STARTTLS, submission with STARTTLS + AUTH required, and
//! implicit TLS "smtps"), with a certificate for `relay.herald.test` and 127.0.0.1 (not
//! `localhost`, so a test can reach it under a name the certificate does not list)
//! issued by a CA made for the test with `openssl`, SMTP AUTH through Cyrus SASL's sasldb, and
//! virtual delivery of `herald.test` mail into Maildirs. It delivers nowhere else: every other
//! destination goes to the `error` transport. Stopped (`postfix stop`, then killed by pid if it
//! lingers) when dropped, so a failing test leaves no daemon behind. Test-only; needs root and
//! Debian's `postfix` (plus `openssl`, and `sasl2-bin` for AUTH).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The only domain this Postfix accepts mail for.
pub const DOMAIN: &str = "herald.test";

/// Why Postfix-based tests cannot run here, or `None` when they can.
pub fn unavailable() -> Option<String> {
    if !Path::new("/usr/sbin/postfix").exists() {
        return Some(
            "Postfix is not installed (Debian package `postfix`; .ci/run installs it)".into(),
        );
    }
    if !is_root() {
        return Some("Postfix test instances need root (CI runs as root)".into());
    }
    if which("openssl").is_none() {
        return Some("openssl is not installed".into());
    }
    None
}

/// Why SASL (AUTH) tests cannot run here, or `None` when they can.
pub fn sasl_unavailable() -> Option<String> {
    if let Some(reason) = unavailable() {
        return Some(reason);
    }
    if which("saslpasswd2").is_none() {
        return Some(
            "saslpasswd2 is not installed (Debian package `sasl2-bin`; .ci/run installs it)".into(),
        );
    }
    None
}

/// Returns true (printing why) when Postfix cannot run here; under `CI=true` that fails the
/// test instead (`tools::skip_if_missing`).
pub fn skip(needs_sasl: bool) -> bool {
    super::tools::skip_if_missing(if needs_sasl {
        sasl_unavailable()
    } else {
        unavailable()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

fn which(tool: &str) -> Option<PathBuf> {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(tool))
        .find(|path| path.exists())
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("postfix test: {what}: {e}"));
    assert!(
        output.status.success(),
        "postfix test: {what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// How the instance is set up.
#[derive(Clone, Debug, Default)]
pub struct PostfixOptions {
    /// Local parts at [`DOMAIN`] that have a Maildir; any other recipient there gets
    /// `550 5.1.1`.
    pub mailboxes: Vec<String>,
    /// A SASL user (`name@herald.test`) and password; AUTH is offered on the submission and
    /// smtps ports only.
    pub sasl: Option<(String, String)>,
    /// EHLO keywords the server leaves out (`smtpd_discard_ehlo_keywords`), e.g.
    /// `"pipelining, chunking"` for a server that offers neither.
    pub discard_ehlo: Option<String>,
    /// Accept mail for unknown local parts at [`DOMAIN`] and bounce it afterwards (Postfix's
    /// own DSN to the envelope sender) instead of refusing it with 550 at RCPT.
    pub bounce_unknown: bool,
    /// Other addresses (`local@domain`) delivered into an existing Maildir (e.g. the one a test
    /// Dovecot serves), extensions included: with `recipient_delimiter = +`,
    /// `local+TAG@domain` lands there too, as a VERP return path does.
    pub maildirs: Vec<(String, PathBuf)>,
    /// SMTP AUTH through a Dovecot's auth socket (`smtpd_sasl_type = dovecot`) instead of
    /// Cyrus: whatever mechanisms that Dovecot offers (XOAUTH2 and OAUTHBEARER with its oauth2
    /// passdb), verified by Dovecot.
    pub dovecot_sasl: Option<PathBuf>,
}

/// A running Postfix instance.
pub struct Postfix {
    dir: tempfile::TempDir,
    /// Plain SMTP; STARTTLS offered, never required; no AUTH.
    pub smtp_port: u16,
    /// Submission: STARTTLS required, AUTH required to send.
    pub submission_port: u16,
    /// Implicit TLS (port 465 style), AUTH required to send.
    pub smtps_port: u16,
    running: bool,
}

impl Postfix {
    pub fn start(options: &PostfixOptions) -> Postfix {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        chmod(&root, 0o755);
        for sub in ["conf", "conf/sasl", "queue", "data", "mail", "tls"] {
            std::fs::create_dir_all(root.join(sub)).expect("mkdir");
        }
        // Postfix's own processes run as `postfix`; virtual delivery writes as `nobody`.
        run(
            Command::new("chown").arg("postfix").arg(root.join("data")),
            "chown data",
        );
        run(
            Command::new("chown")
                .arg("nobody:nogroup")
                .arg(root.join("mail")),
            "chown mail",
        );
        make_certificates(&root.join("tls"));
        let sasl_lines = match &options.sasl {
            Some((user, password)) => {
                make_sasldb(&root, user, password);
                format!(
                    "smtpd_sasl_type = cyrus\nsmtpd_sasl_path = smtpd\nsmtpd_sasl_local_domain = {DOMAIN}\n"
                )
            }
            None => match &options.dovecot_sasl {
                Some(socket) => format!(
                    "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = {}\n",
                    socket.display()
                ),
                None => String::new(),
            },
        };
        let mut vmailbox = String::new();
        for local in &options.mailboxes {
            vmailbox.push_str(&format!("{local}@{DOMAIN} {DOMAIN}/{local}/\n"));
        }
        if vmailbox.is_empty() {
            vmailbox.push_str(&format!("postmaster@{DOMAIN} {DOMAIN}/postmaster/\n"));
        }
        let mut domains = vec![DOMAIN.to_string()];
        for (address, maildir) in &options.maildirs {
            let (local, domain) = address.split_once('@').expect("local@domain");
            // virtual(8) takes paths under virtual_mailbox_base; a link there reaches the
            // Maildir wherever it is.
            let parent = root.join("mail").join(domain);
            std::fs::create_dir_all(&parent).expect("mkdir");
            std::os::unix::fs::symlink(maildir, parent.join(local)).expect("symlink");
            vmailbox.push_str(&format!("{address} {domain}/{local}/\n"));
            if !domains.iter().any(|known| known == domain) {
                domains.push(domain.to_string());
            }
        }
        let domains = domains.join(", ");
        let reject_unlisted = if options.bounce_unknown { "no" } else { "yes" };
        std::fs::write(root.join("conf/vmailbox"), vmailbox).expect("vmailbox");
        let r = root.display();
        let discard = options.discard_ehlo.clone().unwrap_or_default();
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {r}/queue
data_directory = {r}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.{DOMAIN}
mydomain = {DOMAIN}
myorigin = {DOMAIN}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
relay_domains =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = {domains}
smtpd_reject_unlisted_recipient = {reject_unlisted}
recipient_delimiter = +
virtual_mailbox_base = {r}/mail
virtual_mailbox_maps = texthash:{r}/conf/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
default_transport = error:5.7.1 the test Postfix delivers nowhere else
relay_transport = error:5.7.1 the test Postfix delivers nowhere else
local_header_rewrite_clients =
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtputf8_enable = yes
biff = no
maillog_file = {r}/maillog
maillog_file_prefixes = {r}
smtpd_tls_cert_file = {r}/tls/server.pem
smtpd_tls_key_file = {r}/tls/server.key
smtpd_tls_security_level = may
smtpd_tls_received_header = yes
smtpd_discard_ehlo_keywords = {discard}
{sasl_lines}"
        );
        std::fs::write(root.join("conf/main.cf"), main_cf).expect("main.cf");
        let smtp_port = free_port();
        let submission_port = free_port();
        let smtps_port = free_port();
        let auth = if options.sasl.is_some() || options.dovecot_sasl.is_some() {
            "-o smtpd_sasl_auth_enable=yes -o smtpd_client_restrictions=permit_sasl_authenticated,reject"
        } else {
            ""
        };
        let master_cf = format!(
            "127.0.0.1:{smtp_port} inet n - n - - smtpd
127.0.0.1:{submission_port} inet n - n - - smtpd -o smtpd_tls_security_level=encrypt -o smtpd_tls_auth_only=yes {auth}
127.0.0.1:{smtps_port} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes {auth}
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"
        );
        std::fs::write(root.join("conf/master.cf"), master_cf).expect("master.cf");
        let mut postfix = Postfix {
            dir,
            smtp_port,
            submission_port,
            smtps_port,
            running: false,
        };
        let output = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(root.join("conf"))
            .arg("start")
            .output()
            .expect("run postfix");
        if !output.status.success() {
            panic!(
                "postfix did not start: {}{}\n--- maillog:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                postfix.log()
            );
        }
        postfix.running = true;
        for port in [smtp_port, submission_port, smtps_port] {
            postfix.wait_for_port(port);
        }
        postfix
    }

    fn wait_for_port(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "postfix never listened on {port}\n--- maillog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The instance's folder.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The PEM file of the CA that issued the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.root().join("tls/ca.pem")
    }

    /// Postfix's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root().join("maillog")).unwrap_or_default()
    }

    /// The messages delivered to `local@herald.test`, oldest first, as Postfix stored them.
    pub fn mailbox(&self, local: &str) -> Vec<String> {
        let folder = self
            .root()
            .join("mail")
            .join(DOMAIN)
            .join(local)
            .join("new");
        let Ok(entries) = std::fs::read_dir(&folder) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        files
            .iter()
            .filter_map(|path| std::fs::read(path).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .collect()
    }

    /// Waits until `local` has at least `count` messages (Postfix delivers asynchronously).
    pub fn wait_for_mail(&self, local: &str, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.mailbox(local);
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{local}@{DOMAIN} got {} of {count} message(s)\n--- maillog:\n{}",
                messages.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every message delivered to any mailbox.
    pub fn all_mail(&self) -> Vec<String> {
        let base = self.root().join("mail").join(DOMAIN);
        let Ok(entries) = std::fs::read_dir(&base) else {
            return Vec::new();
        };
        let mut all = Vec::new();
        for entry in entries.flatten() {
            if let Some(local) = entry.file_name().to_str() {
                all.extend(self.mailbox(local));
            }
        }
        all
    }

    fn master_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.root().join("queue/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops the instance (also done on drop).
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let pid = self.master_pid();
        let _ = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.root().join("conf"))
            .arg("stop")
            .output();
        let Some(pid) = pid else {
            return;
        };
        let alive = || Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid);
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive() {
            // Our own master process, by its pid: it did not stop in time.
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A test CA and a server certificate it signs, for `relay.herald.test` and 127.0.0.1.
pub fn make_certificates(tls: &Path) {
    let openssl = |args: &[&str], what: &str| {
        run(
            Command::new("openssl").current_dir(tls).args(args),
            &format!("openssl: {what}"),
        );
    };
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Herald Test CA",
        ],
        "CA",
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            &format!("/CN=relay.{DOMAIN}"),
        ],
        "server key",
    );
    std::fs::write(
        tls.join("ext.cnf"),
        format!("subjectAltName=DNS:relay.{DOMAIN},IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
    )
    .expect("ext.cnf");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
        "server certificate",
    );
}

/// A sasldb holding one user, and the Cyrus configuration pointing smtpd at it. Debian's
/// Postfix reads `smtpd.conf` from `$config_directory/sasl/`.
fn make_sasldb(root: &Path, user: &str, password: &str) {
    use std::io::Write;
    let db = root.join("sasldb2");
    let (name, realm) = user.split_once('@').unwrap_or((user, DOMAIN));
    let mut child = Command::new("saslpasswd2")
        .arg("-p")
        .arg("-c")
        .arg("-f")
        .arg(&db)
        .arg("-u")
        .arg(realm)
        .arg(name)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("saslpasswd2");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(password.as_bytes())
        .expect("password");
    assert!(
        child.wait().expect("saslpasswd2").success(),
        "saslpasswd2 failed"
    );
    // smtpd reads the database after dropping to the postfix user.
    run(
        Command::new("chown").arg("root:postfix").arg(&db),
        "chown sasldb",
    );
    chmod(&db, 0o640);
    std::fs::write(
        root.join("conf/sasl/smtpd.conf"),
        format!(
            "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\nsasldb_path: {}\n",
            db.display()
        ),
    )
    .expect("smtpd.conf");
}
