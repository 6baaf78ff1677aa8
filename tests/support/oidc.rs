//! A real OpenID provider for the OAuth2 tests (issue #22): npm's `oidc-provider`, installed in
//! `tests/support/oidc/node_modules` by `npm ci` (`.ci/run` does it) and started per test by
//! `provider.mjs` on 127.0.0.1 with an ephemeral port. It issues tokens to the public client
//! `herald-test` (authorization code with PKCE, device grant, rotating refresh tokens) and
//! answers RFC 7662 introspection for the confidential client `dovecot`. The test plays the
//! browser with `curl` (a cookie jar, redirects followed); the provider signs the test user in
//! and consents without a form. Stopped when dropped. Test-only.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const CLIENT_ID: &str = "herald-test";
pub const USER: &str = "alice@example.test";
pub const INTROSPECT_CLIENT: &str = "dovecot";
pub const INTROSPECT_SECRET: &str = "dovecot-introspection-secret";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/oidc")
}

/// Why the provider cannot run here, or `None`.
pub fn unavailable() -> Option<String> {
    if !Path::new("/usr/bin/node").exists() {
        return Some("Node.js is not installed (/usr/bin/node)".into());
    }
    if !dir().join("node_modules/oidc-provider").exists() {
        return Some(
            "oidc-provider is not installed: run `npm ci` in tests/support/oidc (.ci/run does)"
                .into(),
        );
    }
    if !Path::new("/usr/bin/curl").exists() {
        return Some("curl is not installed".into());
    }
    None
}

/// With `CI=true` a missing tool fails the test; elsewhere the test says why and returns.
pub fn skip() -> bool {
    super::tools::skip_if_missing(unavailable())
}

/// A running provider.
pub struct Provider {
    child: Child,
    pub port: u16,
    jar: tempfile::TempDir,
}

impl Provider {
    /// Starts a provider whose access tokens live `access_ttl_secs`.
    pub fn start(access_ttl_secs: u64) -> Provider {
        Provider::start_with(access_ttl_secs, 600)
    }

    /// Starts a provider whose access tokens live `access_ttl_secs` and device codes
    /// `device_ttl_secs`.
    pub fn start_with(access_ttl_secs: u64, device_ttl_secs: u64) -> Provider {
        let jar = tempfile::tempdir().expect("jar dir");
        let log = std::fs::File::create(jar.path().join("provider.log")).expect("log");
        let mut child = Command::new("/usr/bin/node")
            .arg(dir().join("provider.mjs"))
            .current_dir(dir())
            .env("OIDC_ACCESS_TTL", access_ttl_secs.to_string())
            .env("OIDC_DEVICE_TTL", device_ttl_secs.to_string())
            .env("OIDC_INTROSPECT_SECRET", INTROSPECT_SECRET)
            .env("OIDC_USER", USER)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start node provider.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let mut reader = std::io::BufReader::new(stdout);
        reader.read_line(&mut line).expect("provider's first line");
        // The provider prints notices on stdout later; a closed pipe would kill it (EPIPE).
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let ready: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("provider said {line:?}"));
        let port = ready["port"].as_u64().expect("port") as u16;
        Provider { child, port, jar }
    }

    /// What the provider wrote on stderr (warnings, crashes).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.jar.path().join("provider.log")).unwrap_or_default()
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where Dovecot's oauth2 passdb asks whether a token is active (client id and secret in
    /// the URL, as Dovecot sends them with HTTP basic authentication).
    pub fn introspection_url(&self) -> String {
        format!(
            "http://{INTROSPECT_CLIENT}:{INTROSPECT_SECRET}@127.0.0.1:{}/token/introspection",
            self.port
        )
    }

    /// A browser (its own cookie jar) that can be moved to another thread.
    pub fn browser(&self) -> Browser {
        Browser {
            jar: self.jar.path().join("cookies"),
            issuer: self.issuer(),
        }
    }

    fn curl(&self, args: &[&str]) -> (String, String) {
        self.browser().curl(args)
    }

    /// See [`Browser::browse`].
    pub fn browse(&self, url: &str) -> (String, String) {
        self.browser().browse(url)
    }

    /// See [`Browser::approve_device`].
    pub fn approve_device(&self, verification_uri_complete: &str, user_code: &str) -> String {
        self.browser()
            .approve_device(verification_uri_complete, user_code)
    }

    fn admin(&self, path: &str, post: bool) -> serde_json::Value {
        let url = format!("{}/test/{path}", self.issuer());
        let mut args = vec![url.as_str()];
        if post {
            args.extend(["-X", "POST"]);
        }
        let (body, _) = self.curl(&args);
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("provider answered {body:?}"))
    }

    /// Every access token issued so far stops being valid.
    pub fn expire_access_tokens(&self) -> u64 {
        self.admin("expire-access", true)["expired"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Consent withdrawn: every grant, refresh token and access token is gone.
    pub fn revoke_grants(&self) {
        self.admin("revoke-grants", true);
    }

    /// The next sign-in is refused by its user (`error=access_denied`).
    pub fn deny_next(&self) {
        self.admin("deny-next", true);
    }

    /// The device grant's polls so far, as the provider answered them: milliseconds since
    /// the epoch and `authorization_pending`, `slow_down`, `issued`, …
    pub fn device_polls(&self) -> Vec<(u64, String)> {
        self.admin("device-polls", false)
            .as_array()
            .expect("a list of polls")
            .iter()
            .map(|poll| {
                (
                    poll["at"].as_u64().unwrap_or(0),
                    poll["answer"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// The next device poll the provider would answer `authorization_pending` gets
    /// `slow_down` instead (RFC 8628 §3.5).
    pub fn slow_down_next(&self) {
        self.admin("slow-down-next", true);
    }

    /// How many token requests succeeded, by grant type (`authorization_code`,
    /// `refresh_token`, `urn:ietf:params:oauth:grant-type:device_code`).
    pub fn issued(&self, grant_type: &str) -> u64 {
        self.admin("issued", false)[grant_type]
            .as_u64()
            .unwrap_or(0)
    }
}

/// curl with a cookie jar, playing the user's browser.
#[derive(Clone)]
pub struct Browser {
    jar: PathBuf,
    issuer: String,
}

impl Browser {
    fn curl(&self, args: &[&str]) -> (String, String) {
        let jar = self.jar.to_str().expect("utf-8 path");
        let output = Command::new("/usr/bin/curl")
            .args(["-s", "-c", jar, "-b", jar, "-w", "\n%{url_effective}"])
            .args(args)
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let (body, url) = text.rsplit_once('\n').unwrap_or((&text, ""));
        (body.to_string(), url.to_string())
    }

    /// Plays the browser on an authorization URL: follows the provider's redirects (sign-in and
    /// consent happen there) up to and including the redirect to the app's loopback listener.
    /// Returns the page the listener answered and the last URL.
    pub fn browse(&self, url: &str) -> (String, String) {
        self.curl(&["-L", "--max-redirs", "10", url])
    }

    /// Approves a device code as its user would at `verification_uri_complete`: the provider's
    /// own pages (enter the code, confirm) then the sign-in. Returns the final page.
    pub fn approve_device(&self, verification_uri_complete: &str, user_code: &str) -> String {
        let xsrf = |page: &str| {
            let start = page.find("name=\"xsrf\" value=\"").expect("xsrf field") + 19;
            page[start..].split('"').next().expect("xsrf").to_string()
        };
        let (page, _) = self.curl(&[verification_uri_complete]);
        let device = format!("{}/device", self.issuer);
        let (page, _) = self.curl(&[
            &device,
            "-d",
            &format!("xsrf={}", xsrf(&page)),
            "-d",
            &format!("user_code={user_code}"),
        ]);
        let (page, _) = self.curl(&[
            "-L",
            &device,
            "-d",
            &format!("xsrf={}", xsrf(&page)),
            "-d",
            &format!("user_code={user_code}"),
            "-d",
            "confirm=yes",
        ]);
        page
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The keyring the refresh tokens go to: a real Secret Service on a private bus, one per test.
/// The tests that use it run one at a time (they share this process's environment, which names the bus).
pub struct Keyring {
    _serial: std::sync::MutexGuard<'static, ()>,
    _service: super::secret_service::SecretService,
}

pub fn keyring() -> Keyring {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let service = super::secret_service::SecretService::start();
    for (name, value) in service.env() {
        // SAFETY: the tests of this binary hold SERIAL while they use the environment.
        unsafe { std::env::set_var(name, value) };
    }
    Keyring {
        _serial: serial,
        _service: service,
    }
}
