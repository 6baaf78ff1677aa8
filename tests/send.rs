//! The relay engine against real SMTP servers over TCP: every recipient delivered once, replies
//! mapped to states, weights, failover, timeouts, pause/resume/stop, throttling, uncertain
//! deliveries, kill -9 and SIGTERM, resend. Issue #3.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::campaign::{RelayConf, addresses, campaign, closed_port};
use crate::support::run::{LIMIT, counts, finish, row, start, wait_for};
use crate::support::smtp_server::{Reply, SmtpServer};
use herald::engine::{Engine, RunState};
use herald::store::{State, Store};

#[test]
fn every_recipient_gets_exactly_one_personalized_message() {
    let server = SmtpServer::start();
    let emails = addresses(120);
    let dir = campaign(
        &emails,
        &[RelayConf::new("main", server.port())],
        "connections = 8",
    );
    let engine = Engine::new().unwrap();
    let mut run = start(&engine, &dir);
    let last = finish(&mut run);
    assert_eq!(last.state, RunState::Finished);
    assert_eq!(last.counts.sent, 120);
    let received = server.rcpt_counts();
    assert_eq!(received.len(), 120);
    assert!(
        received.values().all(|count| *count == 1),
        "duplicates: {received:?}"
    );
    let message = server
        .received()
        .into_iter()
        .find(|m| m.rcpt_to == vec!["user5@d5.example".to_string()])
        .expect("user5's message");
    let text = message.data_str();
    assert!(text.contains("Subject: Hi Name5"), "{text}");
    assert!(text.contains("Hello Name5"), "{text}");
    assert_eq!(message.mail_from, "sender@herald.example");
    let counts = counts(&dir);
    assert_eq!((counts.sent, counts.sending, counts.pending), (120, 0, 0));
    // Sessions carry many messages: far fewer connections than messages.
    assert!(server.sessions() <= 16, "{} sessions", server.sessions());
    assert!(server.max_concurrent_sessions() <= 8);
    let sent_row = row(&dir, "user5@d5.example");
    assert_eq!(sent_row.route.as_deref(), Some("main"));
    assert_eq!(sent_row.reply.and_then(|r| r.code), Some(250));
}

#[test]
fn weights_share_recipients_between_relays() {
    let a = SmtpServer::start();
    let b = SmtpServer::start();
    let c = SmtpServer::start();
    let dir = campaign(
        &addresses(400),
        &[
            RelayConf::new("a", a.port()),
            RelayConf::new("b", b.port()),
            RelayConf::new("c", c.port()).weight(2),
        ],
        "connections = 6",
    );
    let engine = Engine::new().unwrap();
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.counts.sent, 400);
    let shares = [a.received_count(), b.received_count(), c.received_count()];
    assert_eq!(shares.iter().sum::<usize>(), 400);
    assert!((80..=120).contains(&shares[0]), "{shares:?}");
    assert!((80..=120).contains(&shares[1]), "{shares:?}");
    assert!((160..=240).contains(&shares[2]), "{shares:?}");
    let routes: Vec<u64> = last.routes.iter().map(|route| route.sent).collect();
    assert_eq!(routes, shares.iter().map(|n| *n as u64).collect::<Vec<_>>());
}

#[test]
fn replies_decide_each_recipients_state() {
    let server = SmtpServer::builder()
        .attempt_rule(|rcpt, attempt| match rcpt {
            "user1@d1.example" => Reply::PermFail,
            "user2@d2.example" => Reply::TempFail,
            "user3@d3.example" if attempt == 1 => Reply::TempFail,
            "user4@d4.example" => Reply::DataPermFail,
            "user5@d5.example" => Reply::PolicyReject,
            _ => Reply::Accept,
        })
        .start();
    let dir = campaign(
        &addresses(10),
        &[RelayConf::new("main", server.port())],
        "connections = 2\nmax_attempts = 2",
    );
    let engine = Engine::new().unwrap();
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.state, RunState::Finished);
    assert_eq!(
        (last.counts.sent, last.counts.failed),
        (6, 4),
        "{:?}",
        last.counts
    );

    let unknown = row(&dir, "user1@d1.example");
    assert_eq!(unknown.state, State::Failed);
    let reply = unknown.reply.unwrap();
    assert_eq!(
        (reply.code, reply.enhanced.as_deref()),
        (Some(550), Some("5.1.1"))
    );
    assert_eq!(unknown.attempts, 1);

    let always_later = row(&dir, "user2@d2.example");
    assert_eq!(
        (always_later.state, always_later.attempts),
        (State::Failed, 2)
    );
    assert_eq!(always_later.reply.unwrap().code, Some(451));

    let later_once = row(&dir, "user3@d3.example");
    assert_eq!((later_once.state, later_once.attempts), (State::Sent, 2));

    assert_eq!(row(&dir, "user4@d4.example").reply.unwrap().code, Some(554));
    assert_eq!(
        row(&dir, "user5@d5.example")
            .reply
            .unwrap()
            .enhanced
            .as_deref(),
        Some("5.7.1")
    );
    // The session survived the negative replies (RSET, not reconnect).
    assert!(server.sessions() <= 4, "{} sessions", server.sessions());
    assert!(
        last.recent_errors
            .iter()
            .any(|e| e.email == "user1@d1.example")
    );
}

#[test]
fn a_dead_relay_gives_its_share_to_the_others_without_spending_attempts() {
    let alive = SmtpServer::start();
    let dir = campaign(
        &addresses(60),
        &[
            RelayConf::new("dead", closed_port()).weight(3),
            RelayConf::new("alive", alive.port()),
        ],
        "connections = 4\nmax_attempts = 1",
    );
    let engine = Engine::new().unwrap();
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.state, RunState::Finished);
    assert_eq!(last.counts.sent, 60, "{:?}", last.counts);
    assert_eq!(alive.received_count(), 60);
    assert_eq!(last.counts.failed, 0);
    let dead = &last.routes[0];
    assert_eq!(dead.sent, 0);
    assert!(
        dead.down
            .as_deref()
            .unwrap_or("")
            .contains("could not connect"),
        "{dead:?}"
    );
}

#[test]
fn when_every_relay_is_down_the_run_waits_and_resumes_by_itself() {
    let port = closed_port();
    let dir = campaign(
        &addresses(20),
        &[RelayConf::new("only", port)],
        "connections = 2",
    );
    let engine = Engine::new().unwrap();
    let mut run = start(&engine, &dir);
    wait_for(
        &run,
        "waiting for relays",
        |p| matches!(&p.state, RunState::Waiting { reason, .. } if reason.contains("no relay is reachable")),
    );
    assert_eq!(counts(&dir).failed, 0);
    let server = SmtpServer::builder().port(port).start();
    let last = finish(&mut run);
    assert_eq!(last.state, RunState::Finished);
    assert_eq!((last.counts.sent, last.counts.failed), (20, 0));
    assert_eq!(server.received_count(), 20);
}

#[test]
fn a_wrong_password_pauses_for_the_user_and_fails_nobody() {
    let server = SmtpServer::builder().auth("news", "right").start();
    // SAFETY: the variable name is unique to this test; nothing else reads it concurrently.
    unsafe { std::env::set_var("HERALD_TEST_WRONG_PASSWORD", "wrong") };
    let dir = campaign(
        &addresses(5),
        &[RelayConf::new("auth", server.port())
            .extra("username = \"news\"\npassword_env = \"HERALD_TEST_WRONG_PASSWORD\"")],
        "connections = 1",
    );
    let engine = Engine::new().unwrap();
    let mut run = start(&engine, &dir);
    let paused = wait_for(&run, "a pause for the user", |p| {
        matches!(
            p.state,
            RunState::Paused {
                needs_user: true,
                ..
            }
        )
    });
    let RunState::Paused {
        reason: Some(reason),
        ..
    } = paused.state
    else {
        panic!("no reason given");
    };
    assert!(
        reason.contains("authentication failed") && reason.contains("535"),
        "{reason}"
    );
    assert!(
        !reason.contains("wrong"),
        "the password leaked into: {reason}"
    );
    run.stop();
    let last = finish(&mut run);
    assert_eq!(last.state, RunState::Stopped);
    let counts = counts(&dir);
    assert_eq!(
        (counts.pending, counts.failed, counts.sending),
        (5, 0, 0),
        "{counts:?}"
    );
    assert_eq!(server.received_count(), 0);
}

#[test]
fn authentication_with_the_right_password_sends() {
    let server = SmtpServer::builder().auth("news", "s3cret").start();
    // SAFETY: unique variable name, set once.
    unsafe { std::env::set_var("HERALD_TEST_RIGHT_PASSWORD", "s3cret") };
    let dir = campaign(
        &addresses(5),
        &[RelayConf::new("auth", server.port())
            .extra("username = \"news\"\npassword_env = \"HERALD_TEST_RIGHT_PASSWORD\"")],
        "connections = 1",
    );
    let engine = Engine::new().unwrap();
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.counts.sent, 5);
    assert!(
        server
            .received()
            .iter()
            .all(|m| m.auth_user.as_deref() == Some("news"))
    );
}

#[test]
fn a_lost_reply_after_data_is_uncertain_and_held() {
    let server = SmtpServer::builder()
        .rule(|rcpt| {
            if rcpt == "user3@d3.example" {
                Reply::DropAfterData
            } else {
                Reply::Accept
            }
        })
        .start();
    let dir = campaign(
        &addresses(8),
        &[RelayConf::new("main", server.port())],
        "connections = 2\nuncertain = \"hold\"",
    );
    let engine = Engine::new().unwrap();
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.state, RunState::Finished);
    assert_eq!(
        (last.counts.sent, last.counts.uncertain),
        (7, 1),
        "{:?}",
        last.counts
    );
    let held = row(&dir, "user3@d3.example");
    assert_eq!(held.state, State::Uncertain);
    assert!(held.reply.unwrap().text.contains("may have it"));
    assert_eq!(server.dropped_after_data().len(), 1);
}

#[test]
fn a_lost_reply_is_resent_under_the_resend_policy_within_the_attempts() {
    let server = SmtpServer::builder()
        .attempt_rule(|rcpt, attempt| {
            if rcpt == "user3@d3.example" && attempt == 1 {
                Reply::DropAfterData
            } else {
                Reply::Accept
            }
        })
        .start();
    let dir = campaign(
        &addresses(8),
        &[RelayConf::new("main", server.port())],
        "connections = 2",
    );
    let engine = Engine::new().unwrap();
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.counts.sent, 8, "{:?}", last.counts);
    assert_eq!(last.uncertain_resent, 1);
    assert_eq!(row(&dir, "user3@d3.example").attempts, 2);
}

#[test]
fn a_server_that_hangs_times_out_instead_of_hanging_the_run() {
    let server = SmtpServer::builder()
        .attempt_rule(|rcpt, attempt| {
            if rcpt == "user2@d2.example" && attempt == 1 {
                Reply::Hang
            } else {
                Reply::Accept
            }
        })
        .start();
    let dir = campaign(
        &addresses(6),
        &[RelayConf::new("main", server.port())],
        "connections = 1\ncommand_timeout_secs = 1",
    );
    let started = Instant::now();
    let engine = Engine::new().unwrap();
    let last = finish(&mut start(&engine, &dir));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(last.counts.sent, 6, "{:?}", last.counts);
    let hung = row(&dir, "user2@d2.example");
    assert_eq!(hung.attempts, 2);
    let history = {
        let store = Store::open(&dir.db).unwrap();
        store.history(hung.id).unwrap()
    };
    assert!(
        history[0]
            .reply
            .text
            .contains("no reply to RCPT within 1 s"),
        "{history:?}"
    );
}

#[test]
fn a_421_closes_the_session_and_defers_only_that_recipient() {
    let server = SmtpServer::builder()
        .attempt_rule(|rcpt, attempt| {
            if rcpt == "user4@d4.example" && attempt == 1 {
                Reply::CloseWith421
            } else {
                Reply::Accept
            }
        })
        .start();
    let dir = campaign(
        &addresses(10),
        &[RelayConf::new("main", server.port())],
        "connections = 1",
    );
    let engine = Engine::new().unwrap();
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.counts.sent, 10);
    assert!(server.sessions() >= 2);
    let row = row(&dir, "user4@d4.example");
    assert_eq!(row.attempts, 2);
}

#[test]
fn pause_holds_sending_and_resume_finishes_it() {
    let server = SmtpServer::builder()
        .rule(|_| Reply::SlowData(Duration::from_millis(50)))
        .start();
    let dir = campaign(
        &addresses(40),
        &[RelayConf::new("main", server.port())],
        "connections = 2",
    );
    let engine = Engine::new().unwrap();
    let mut run = start(&engine, &dir);
    wait_for(&run, "some messages", |p| p.counts.sent >= 5);
    run.pause();
    wait_for(&run, "the pause", |p| {
        matches!(p.state, RunState::Paused { .. }) && p.counts.sending == 0
    });
    let during = server.received_count();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        server.received_count(),
        during,
        "messages went out while paused"
    );
    let paused_counts = counts(&dir);
    assert_eq!(paused_counts.sending, 0, "{paused_counts:?}");
    run.resume();
    let last = finish(&mut run);
    assert_eq!(last.counts.sent, 40);
    assert!(server.rcpt_counts().values().all(|count| *count == 1));
}

#[test]
fn stop_keeps_every_row_and_the_next_run_resumes() {
    let server = SmtpServer::builder()
        .rule(|_| Reply::SlowData(Duration::from_millis(30)))
        .start();
    let dir = campaign(
        &addresses(60),
        &[RelayConf::new("main", server.port())],
        "connections = 2",
    );
    let engine = Engine::new().unwrap();
    let mut run = start(&engine, &dir);
    wait_for(&run, "some messages", |p| p.counts.sent >= 10);
    run.stop();
    let stopped = finish(&mut run);
    assert_eq!(stopped.state, RunState::Stopped);
    let counts_after_stop = counts(&dir);
    assert_eq!(counts_after_stop.sending, 0, "{counts_after_stop:?}");
    assert!(counts_after_stop.pending > 0);
    assert_eq!(counts_after_stop.sent as usize, server.received_count());
    let last = finish(&mut start(&engine, &dir));
    assert_eq!(last.state, RunState::Finished);
    assert_eq!(last.counts.sent, 60);
    let received = server.rcpt_counts();
    assert_eq!(received.len(), 60);
    assert!(
        received.values().all(|count| *count == 1),
        "a stop made duplicates"
    );
}

#[test]
fn rate_limits_pace_the_campaign_and_each_relay() {
    // (case, the relay's extra keys, the campaign's [delivery] keys): 10 a second either way,
    // so twelve messages cannot all go out in under one second.
    let cases = [
        ("campaign", "", "connections = 4\nrate_per_hour = 36000"),
        ("relay", "rate_per_hour = 36000", "connections = 4"),
    ];
    for (case, relay_extra, delivery) in cases {
        let server = SmtpServer::start();
        let dir = campaign(
            &addresses(12),
            &[RelayConf::new("main", server.port()).extra(relay_extra)],
            delivery,
        );
        let started = Instant::now();
        let engine = Engine::new().unwrap();
        let last = finish(&mut start(&engine, &dir));
        assert_eq!(last.counts.sent, 12, "{case}");
        assert!(
            started.elapsed() >= Duration::from_millis(1_000),
            "{case}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn periodic_sleep_rests_all_sending() {
    let server = SmtpServer::start();
    let dir = campaign(
        &addresses(10),
        &[RelayConf::new("main", server.port())],
        "connections = 2\nsleep_every = 5\nsleep_seconds = 1",
    );
    let engine = Engine::new().unwrap();
    let mut run = start(&engine, &dir);
    let resting = wait_for(&run, "a rest", |p| {
        matches!(p.state, RunState::Resting { .. })
    });
    assert!(resting.state.label().starts_with("resting, resumes in"));
    assert!(server.received_count() <= 5);
    let last = finish(&mut run);
    assert_eq!(last.counts.sent, 10);
}

fn herald() -> Command {
    Command::new(env!("CARGO_BIN_EXE_herald"))
}

#[test]
fn send_and_resend_through_the_command_line() {
    let server = SmtpServer::builder()
        .attempt_rule(|rcpt, attempt| match rcpt {
            "user1@d1.example" | "user2@d2.example" if attempt == 1 => Reply::PolicyReject,
            "user3@d3.example" if attempt == 1 => Reply::PermFail,
            _ => Reply::Accept,
        })
        .start();
    let dir = campaign(
        &addresses(9),
        &[RelayConf::new("main", server.port())],
        "connections = 2",
    );
    let output = herald()
        .arg("send")
        .arg(&dir.campaign)
        .arg("--db")
        .arg(&dir.db)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("finished: 9 total: 6 sent, 3 failed"),
        "{stdout}"
    );

    // Only the policy rejections: the unknown user stays failed.
    let output = herald()
        .args(["resend", "--code", "5.7.*"])
        .arg(&dir.campaign)
        .arg("--db")
        .arg(&dir.db)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("2 recipient(s) put back to pending"),
        "{stdout}"
    );
    let status = herald()
        .args(["status", "--json"])
        .arg(&dir.campaign)
        .arg("--db")
        .arg(&dir.db)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["sent"], 8);
    assert_eq!(json["failed"], 1);
    assert_eq!(json["total"], 9);
}

#[cfg(unix)]
fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[cfg(unix)]
#[test]
fn sigterm_stops_gracefully_with_exit_code_3() {
    let server = SmtpServer::builder()
        .rule(|_| Reply::SlowData(Duration::from_millis(40)))
        .start();
    let dir = campaign(
        &addresses(100),
        &[RelayConf::new("main", server.port())],
        "connections = 2",
    );
    let mut child = herald()
        .arg("send")
        .arg(&dir.campaign)
        .arg("--db")
        .arg(&dir.db)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(server.wait_for_messages(5, LIMIT));
    signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    let counts = counts(&dir);
    assert_eq!(counts.sending, 0, "{counts:?}");
    assert_eq!(counts.sent as usize, server.received_count());
    assert!(counts.pending > 0);
}

#[cfg(unix)]
#[test]
fn kill_during_send_loses_nobody_and_bounds_duplicates() {
    let server = SmtpServer::builder()
        .rule(|_| Reply::SlowData(Duration::from_millis(20)))
        .start();
    let total = 300;
    let connections = 4;
    let dir = campaign(
        &addresses(total),
        &[RelayConf::new("main", server.port())],
        &format!("connections = {connections}"),
    );
    for round in 0..2 {
        let mut child = herald()
            .arg("send")
            .arg(&dir.campaign)
            .arg("--db")
            .arg(&dir.db)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        assert!(server.wait_for_messages(40 + round * 80, LIMIT));
        signal(child.id(), "KILL");
        let _ = child.wait();
    }
    let output = herald()
        .arg("send")
        .arg(&dir.campaign)
        .arg("--db")
        .arg(&dir.db)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("previous run ended"), "{stdout}");
    let received: HashMap<String, usize> = server.rcpt_counts();
    assert_eq!(received.len(), total, "somebody was lost");
    let duplicates: usize = received.values().map(|count| count - 1).sum();
    // Per kill: at most the claimed batch plus one flush batch of sent-but-unrecorded rows.
    let claim_batch = (connections * 2).max(16);
    let bound = 2 * (claim_batch + connections * 2);
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates (bound {bound})"
    );
    let counts = counts(&dir);
    assert_eq!(
        (counts.sent, counts.sending, counts.pending),
        (total as u64, 0, 0)
    );
}
