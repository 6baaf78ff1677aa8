//! Signing in from the window (issue #22), driven headless through egui_kittest against the
//! real OpenID provider (npm `oidc-provider`) and a real Secret Service: beside a relay that
//! names an `[oauth2.NAME]` grant the window offers "Sign in", opens the system browser (here
//! `$BROWSER`, a script that writes down the address it is given; the test then plays the
//! browser with curl, as tests/oauth2.rs does), names the account once signed in, and forgets
//! it on "Sign out". When the provider refuses the kept sign-in during a run, the run pauses and
//! the row says "Sign in again to NAME"; signing in from the window clears it, and Resume
//! finishes the run through a Postfix whose SMTP AUTH a Dovecot checks against the provider.
//! In the window the Problems box and a pause point at the Sign in button, not at `herald
//! signin`. Cancelling a sign-in, or turning to another campaign, closes its loopback listener.
//! "Test connection" finds a relay password the window kept in the keyring, as a run does.

use crate::support::window::wait_for_label;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::support::dovecot::Dovecot;
use crate::support::oidc::{self, Provider, keyring};
use crate::support::postfix::{self, Postfix, PostfixOptions};
use crate::support::window::window;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use herald::campaign::Campaign;
use herald::engine::RunState;
use herald::oauth2::Client;
use herald::ui::{HeraldApp, Remembered};

fn skip() -> bool {
    oidc::skip() || crate::support::secret_service::skip()
}

fn grant_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "win{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// The system browser, as the window opens it: `$BROWSER` names a script that appends each
/// address it is asked to open to a file. Set while the test holds the keyring (which
/// serializes the tests that change the environment).
struct Browser {
    dir: tempfile::TempDir,
}

impl Browser {
    fn install() -> Browser {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("browser");
        let urls = dir.path().join("urls");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n", urls.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        // SAFETY: the tests that change the environment hold the keyring's lock.
        unsafe { std::env::set_var("BROWSER", &script) };
        Browser { dir }
    }

    /// The `n`-th address the window opened (1-based), stepping the window while waiting.
    fn nth_url(&self, harness: &mut Harness<'_, HeraldApp>, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let urls = std::fs::read_to_string(self.dir.path().join("urls")).unwrap_or_default();
            if let Some(url) = urls.lines().nth(n - 1) {
                return url.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "the window opened no browser; status: {}; problems: {:?}",
                harness.state().status(),
                harness.state().problems()
            );
            harness.step();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SAFETY: as in `install`.
        unsafe { std::env::remove_var("BROWSER") };
    }
}

struct Folder {
    _dir: tempfile::TempDir,
    campaign: PathBuf,
    db: PathBuf,
}

/// A relay that is never reached: the first test does not send.
fn closed_relay() -> String {
    "host = \"127.0.0.1\"\nport = 9\nsecurity = \"none\"\n".to_string()
}

/// A campaign of one recipient whose relay (`relay`: host, port, security…) signs in with
/// `grant` at `provider`.
fn folder(grant: &str, provider: &Provider, relay: &str) -> Folder {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("list.csv"),
        format!("email\ninbox+r0@{}\n", postfix::DOMAIN),
    )
    .unwrap();
    std::fs::write(dir.path().join("body.txt"), "Hello\n").unwrap();
    let text = format!(
        "[message]\nfrom = \"News <news@herald.test>\"\nsubject = \"Hi\"\ntext = \"body.txt\"\n\n\
         [recipients]\ncsv = \"list.csv\"\n\n\
         [delivery]\nretry_delays = [\"1s\"]\n\n\
         [[relay]]\nname = \"m365\"\n{relay}username = \"{user}\"\noauth2 = \"{grant}\"\n\n\
         [oauth2.{grant}]\nprovider = \"oidc\"\nclient_id = \"{client}\"\nissuer = \"{issuer}\"\n\
         scopes = [\"openid\", \"email\", \"mail\", \"offline_access\"]\n",
        user = oidc::USER,
        client = oidc::CLIENT_ID,
        issuer = provider.issuer(),
    );
    let campaign = dir.path().join("campaign.toml");
    std::fs::write(&campaign, text).unwrap();
    Folder {
        campaign,
        db: dir.path().join("herald.db"),
        _dir: dir,
    }
}

fn client(campaign: &Path, grant: &str) -> Client {
    Client::for_campaign(&Campaign::load_for_reading(campaign).unwrap(), grant).unwrap()
}

fn publish_window(folder: &Folder) -> Harness<'static, HeraldApp> {
    let mut harness = window(
        &folder.db,
        Some(folder.campaign.clone()),
        Remembered::default(),
    );
    crate::support::window::wait_until(&mut harness, "the campaign to open", |app| {
        app.campaign_path().is_some()
    });
    harness.get_by_label("Publish").click_accesskit();
    harness.run_steps(2);
    harness
}

/// Scrolls the Publish page to the button labelled `label` (below a run's figures it starts
/// out of view), then clicks it.
fn click_in_view(harness: &mut Harness<'_, HeraldApp>, label: &str) {
    harness.get_by_label(label).scroll_to_me();
    harness.run_steps(3);
    harness.get_by_label(label).click_accesskit();
}

/// Presses "Sign in", plays the browser on the address the window opened, and waits for the
/// window to name the account.
fn sign_in_from_the_window(
    harness: &mut Harness<'_, HeraldApp>,
    browser: &Browser,
    provider: &Provider,
    grant: &str,
    nth: usize,
) {
    click_in_view(harness, "Sign in");
    harness.run_steps(2);
    assert!(harness.query_by_label("Cancel sign-in").is_some());
    let url = browser.nth_url(harness, nth);
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    wait_for_label(harness, "Finish signing in in your browser");
    let (page, _) = provider.browse(&url);
    assert!(page.contains("You can close this window"), "{page}");
    wait_for_label(harness, &format!("Signed in to {grant} as {}.", oidc::USER));
}

#[test]
fn the_window_signs_in_through_the_browser_names_the_account_and_signs_out() {
    if skip() {
        return;
    }
    let _keyring = keyring();
    let browser = Browser::install();
    let provider = Provider::start(3600);
    let grant = grant_name();
    let folder = folder(&grant, &provider, &closed_relay());
    let mut harness = publish_window(&folder);
    wait_for_label(
        &mut harness,
        &format!("Nobody is signed in to {grant} on this computer yet."),
    );
    assert!(harness.query_by_label("Sign out").is_none());
    let nobody = |app: &HeraldApp| {
        app.problems()
            .iter()
            .any(|problem| problem.contains("nobody has signed in yet"))
    };
    crate::support::window::wait_until(&mut harness, "check's problem", nobody);
    // In the window the step is its button; `herald check` names the command (tests/oauth2.rs).
    assert!(
        harness
            .state()
            .problems()
            .iter()
            .any(|problem| problem.contains("press Sign in beside")
                && !problem.contains("herald signin")),
        "{:?}",
        harness.state().problems()
    );

    sign_in_from_the_window(&mut harness, &browser, &provider, &grant, 1);
    assert!(client(&folder.campaign, &grant).is_signed_in());
    assert_eq!(provider.issued("authorization_code"), 1);
    // Signed in: the check is made again and no longer asks for it; only Sign out is offered.
    crate::support::window::wait_until(&mut harness, "the check made again", |app| !nobody(app));
    assert!(harness.query_by_label("Sign in").is_none());

    // A window opened later names the account from the keyring, without asking the provider.
    drop(harness);
    let mut harness = publish_window(&folder);
    wait_for_label(
        &mut harness,
        &format!("Signed in to {grant} as {}.", oidc::USER),
    );

    click_in_view(&mut harness, "Sign out");
    wait_for_label(
        &mut harness,
        &format!("Nobody is signed in to {grant} on this computer yet."),
    );
    assert!(!client(&folder.campaign, &grant).is_signed_in());
    assert!(harness.query_by_label("Sign out").is_none());
}

#[test]
fn a_sign_in_refused_during_a_run_pauses_it_the_window_says_sign_in_again_and_resume_finishes() {
    if skip() || crate::support::dovecot::skip() || postfix::skip(false) {
        return;
    }
    let _keyring = keyring();
    let browser = Browser::install();
    let provider = Provider::start(3600);
    // The relay: a Postfix whose SMTP AUTH goes to a Dovecot that asks the provider whether
    // each bearer token is active (as in tests/oauth2.rs).
    let dovecot = Dovecot::start_oauth2(&provider.introspection_url());
    let postfix = Postfix::start(&PostfixOptions {
        mailboxes: vec!["inbox".into()],
        dovecot_sasl: Some(dovecot.auth_socket()),
        ..PostfixOptions::default()
    });
    let relay = format!(
        "host = \"127.0.0.1\"\nport = {}\nsecurity = \"starttls\"\nca_file = \"{}\"\n",
        postfix.submission_port,
        postfix.ca_file().display()
    );
    let grant = grant_name();
    let folder = folder(&grant, &provider, &relay);
    let mut harness = publish_window(&folder);
    wait_for_label(&mut harness, &format!("Nobody is signed in to {grant}"));
    // Test connection signs in as a run would: nobody has yet.
    click_in_view(&mut harness, "Test connection");
    wait_for_label(
        &mut harness,
        &format!("nobody is signed in to \"{grant}\" yet"),
    );
    sign_in_from_the_window(&mut harness, &browser, &provider, &grant, 1);

    // Consent withdrawn at the provider: the kept refresh token is refused (invalid_grant).
    provider.revoke_grants();
    click_in_view(&mut harness, "Start");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        harness.step();
        // The campaign has no DKIM: a first send asks first.
        if harness.state().is_asking_to_send_anyway() {
            harness.step();
            harness.get_by_label("Send anyway").click_accesskit();
            continue;
        }
        let paused = harness.state().progress().is_some_and(|progress| {
            matches!(
                progress.state,
                RunState::Paused {
                    needs_user: true,
                    ..
                }
            )
        });
        if paused {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never paused; status: {}; problems: {:?}",
            harness.state().status(),
            harness.state().problems()
        );
        std::thread::sleep(Duration::from_millis(15));
    }
    // The relay's row says what to do, in words, beside the button that does it.
    wait_for_label(
        &mut harness,
        &format!("Sign in again to {grant}: the provider no longer accepts its sign-in"),
    );
    assert!(harness.query_by_label("Sign in").is_some());
    // The pause points at the button, not at the command line.
    let reason = match harness.state().progress().map(|progress| &progress.state) {
        Some(RunState::Paused {
            reason: Some(reason),
            ..
        }) => reason.clone(),
        other => panic!("not paused with a reason: {other:?}"),
    };
    assert!(reason.contains("press Sign in beside"), "{reason}");
    assert!(!reason.contains("herald signin"), "{reason}");
    assert_eq!(
        harness
            .state()
            .progress()
            .map(|progress| progress.counts.failed),
        Some(0),
        "nobody is failed for a refused sign-in"
    );

    sign_in_from_the_window(&mut harness, &browser, &provider, &grant, 2);
    assert!(
        harness
            .query_all_by_label_contains(&format!("Sign in again to {grant}"))
            .next()
            .is_none(),
        "the sentence stays after signing in again"
    );
    wait_for_label(&mut harness, "press Resume to go on sending");
    click_in_view(&mut harness, "Resume");
    crate::support::window::wait_until(&mut harness, "the run to finish", |app| {
        app.progress()
            .is_some_and(|progress| progress.state == RunState::Finished)
    });
    let counts = harness.state().progress().map(|progress| progress.counts);
    assert_eq!(
        counts.map(|c| (c.sent, c.failed)),
        Some((1, 0)),
        "{counts:?}"
    );
    assert_eq!(
        postfix
            .wait_for_mail("inbox", 1, Duration::from_secs(60))
            .len(),
        1
    );
    // And Test connection now signs in with the grant's token (XOAUTH2, checked by Dovecot).
    click_in_view(&mut harness, "Test connection");
    wait_for_label(
        &mut harness,
        &format!(
            "connected to 127.0.0.1:{} (starttls), signed in",
            postfix.submission_port
        ),
    );
}

/// A campaign of one recipient whose relay at `port` logs in as "news" with the password kept
/// under `password_env`.
fn password_folder(port: u16, password_env: &str) -> Folder {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("list.csv"), "email\nr0@herald.test\n").unwrap();
    std::fs::write(dir.path().join("body.txt"), "Hello\n").unwrap();
    let text = format!(
        "[message]\nfrom = \"News <news@herald.test>\"\nsubject = \"Hi\"\ntext = \"body.txt\"\n\n\
         [recipients]\ncsv = \"list.csv\"\n\n\
         [[relay]]\nname = \"office\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n\
         username = \"news\"\npassword_env = \"{password_env}\"\n"
    );
    let campaign = dir.path().join("campaign.toml");
    std::fs::write(&campaign, text).unwrap();
    Folder {
        campaign,
        db: dir.path().join("herald.db"),
        _dir: dir,
    }
}

#[test]
fn test_connection_logs_in_with_the_password_the_window_kept_in_the_keyring_as_a_run_does() {
    if crate::support::secret_service::skip() {
        return;
    }
    let _keyring = keyring();
    let password = "kept-Pa55 in the keyring";
    let server = crate::support::smtp_server::SmtpServer::builder()
        .auth("news", password)
        .start();
    // Never in the environment: only the keyring (a real Secret Service) holds it.
    let name = format!(
        "HERALD_TEST_WINDOW_PW_{}_{}",
        std::process::id(),
        grant_name()
    );
    let name = name.replace('-', "_");
    let folder = password_folder(server.port(), &name);
    let mut harness = publish_window(&folder);
    // Nothing kept yet: the test says so, in the words a run would use.
    click_in_view(&mut harness, "Test connection");
    wait_for_label(&mut harness, "the password for relay \"office\" is not set");

    harness.get_by_label("Password").focus();
    harness.get_by_label("Password").type_text(password);
    harness.step();
    click_in_view(&mut harness, "Keep in keyring");
    crate::support::window::wait_until(&mut harness, "the password kept", |app| {
        app.status().contains("Saved in")
    });
    assert!(std::env::var(&name).is_err());
    // The campaign is checked again now that the keyring has the password.
    crate::support::window::wait_until(&mut harness, "the check made again", |app| {
        app.status().contains("valid")
    });

    click_in_view(&mut harness, "Test connection");
    wait_for_label(
        &mut harness,
        &format!("connected to 127.0.0.1:{} (none), signed in", server.port()),
    );
    // And a run finds the same password: the message goes out authenticated as "news".
    let campaign =
        Campaign::load_with(&folder.campaign, &herald::credentials::is_available).unwrap();
    let engine = herald::engine::Engine::new().unwrap();
    let progress = engine
        .start(campaign, &folder.db, herald::engine::RunOptions::default())
        .wait();
    assert_eq!(progress.counts.sent, 1, "{progress:?}");
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].auth_user.as_deref(), Some("news"));
    assert!(herald::credentials::forget(&name));
}

/// The loopback listener's port, from the `redirect_uri` of the sign-in page's address.
fn listener_port(url: &str) -> u16 {
    let redirect = url
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("redirect_uri="))
        .unwrap_or_else(|| panic!("no redirect_uri in {url}"))
        .replace("%3A", ":")
        .replace("%2F", "/");
    redirect
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {redirect}"))
}

/// Steps the window until nothing listens on `port` any more (connection refused).
fn wait_until_closed(harness: &mut Harness<'_, HeraldApp>, port: u16, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the loopback listener on {port} still accepts after {after}"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn cancelling_a_sign_in_or_opening_another_campaign_closes_the_loopback_listener() {
    if skip() {
        return;
    }
    let _keyring = keyring();
    let browser = Browser::install();
    let provider = Provider::start(3600);
    let grant = grant_name();
    let folder = folder(&grant, &provider, &closed_relay());
    let mut harness = publish_window(&folder);
    wait_for_label(&mut harness, &format!("Nobody is signed in to {grant}"));

    click_in_view(&mut harness, "Sign in");
    let port = listener_port(&browser.nth_url(&mut harness, 1));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "the listener waits for the browser"
    );
    // The browser can open before the window has drawn the frame after the click: the
    // accessibility tree is the last frame's, so wait for the button rather than assume it.
    wait_for_label(&mut harness, "Cancel sign-in");
    click_in_view(&mut harness, "Cancel sign-in");
    // The frame that takes the click still draws the button; the next ones do not.
    harness.run_steps(3);
    wait_until_closed(&mut harness, port, "Cancel sign-in");
    wait_for_label(&mut harness, &format!("Nobody is signed in to {grant}"));

    // A sign-in left waiting when the window turns to another campaign stops too.
    click_in_view(&mut harness, "Sign in");
    let port = listener_port(&browser.nth_url(&mut harness, 2));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    harness.state_mut().apply(herald::ui::Action::New);
    harness.run_steps(2);
    wait_until_closed(&mut harness, port, "a new campaign");
    assert!(!client(&folder.campaign, &grant).is_signed_in());
}
