//! Runs of a campaign against each other and against the state they leave, through the real
//! binary and a real SMTP server over TCP (issue #12): a second run of a campaign that is being
//! sent refuses and names the first, a `kill -9`'d run's lock goes with its process so the next
//! run recovers its rows, and rows are not held in `sending` while no relay is reachable.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::campaign::{RelayConf, addresses, campaign, closed_port};
use crate::support::cli_run::{Ran, run};
use crate::support::run::{LIMIT, counts, finish, start, wait_for};
use crate::support::smtp_server::{Reply, SmtpServer};
use herald::engine::{Engine, RunState};

fn send_command(dir: &crate::support::campaign::CampaignDir) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .env_remove("HERALD_DB")
        .arg("send")
        .arg(&dir.campaign)
        .arg("--db")
        .arg(&dir.db);
    command
}

#[cfg(unix)]
fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Issue #12: the second run used to take the first's in-flight rows for a crashed run's and
/// send them again.
#[test]
fn a_second_send_of_a_campaign_being_sent_refuses_and_names_the_first() {
    let server = SmtpServer::builder()
        .rule(|_| Reply::SlowData(Duration::from_millis(25)))
        .start();
    let total = 150;
    let dir = campaign(
        &addresses(total),
        &[RelayConf::new("main", server.port())],
        "connections = 2",
    );
    let first = send_command(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(server.wait_for_messages(10, LIMIT));
    let second: Ran = run(send_command(&dir), LIMIT);
    second.assert_code(1);
    let said = second.all();
    assert!(
        said.contains("already being sent by another run")
            && said.contains(&format!("pid {}", first.id())),
        "{said}"
    );
    let mut first = first;
    let status = first.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let received = server.rcpt_counts();
    assert_eq!(received.len(), total, "somebody was not sent");
    let twice: Vec<_> = received.iter().filter(|(_, count)| **count > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    let counts = counts(&dir);
    assert_eq!((counts.sent, counts.sending, counts.uncertain), (150, 0, 0));
}

/// The lock lives in the process: `kill -9` releases it, and the next run recovers the rows
/// the dead one left in `sending`.
#[cfg(unix)]
#[test]
fn a_killed_runs_lock_is_released_and_the_next_run_recovers_its_rows() {
    let server = SmtpServer::builder()
        .rule(|_| Reply::SlowData(Duration::from_millis(25)))
        .start();
    let total = 120;
    let dir = campaign(
        &addresses(total),
        &[RelayConf::new("main", server.port())],
        "connections = 2\nuncertain = \"hold\"",
    );
    let mut first = send_command(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(server.wait_for_messages(10, LIMIT));
    kill(first.id(), "KILL");
    let _ = first.wait();
    assert!(
        counts(&dir).sending > 0,
        "the killed run should leave rows in sending"
    );
    let next = run(send_command(&dir), LIMIT);
    next.assert_code(0);
    assert!(next.stdout.contains("previous run ended"), "{}", next.all());
    let counts = counts(&dir);
    assert_eq!(counts.sending, 0, "{counts:?}");
    assert!(counts.uncertain > 0, "{counts:?}");
    assert_eq!(counts.sent + counts.uncertain, total as u64, "{counts:?}");
}

/// Issue #12: while every relay was down the claimed rows stayed in `sending` for the whole
/// wait (the window showed "16 sending"), and a `kill -9` then turned them into `uncertain`
/// although nothing had been sent.
#[cfg(unix)]
#[test]
fn while_no_relay_is_reachable_claimed_rows_go_back_to_pending() {
    let port = closed_port();
    let total = 20;
    let dir = campaign(
        &addresses(total),
        &[RelayConf::new("only", port)],
        // A long rest: no probe of the relay falls inside the test's samples.
        "connections = 2\nrelay_cooldown_secs = 60\nuncertain = \"hold\"",
    );

    // The window's view: the run's progress.
    let engine = Engine::new().unwrap();
    let mut window_run = start(&engine, &dir);
    wait_for(
        &window_run,
        "waiting for relays",
        |p| matches!(&p.state, RunState::Waiting { reason, .. } if reason.contains("no relay is reachable")),
    );
    let shown = wait_for(&window_run, "nobody shown in sending", |p| {
        p.counts.sending == 0
    });
    assert_eq!(shown.counts.pending, total as u64, "{:?}", shown.counts);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(window_run.progress().counts.sending, 0);
    window_run.stop();
    let stopped = finish(&mut window_run);
    assert_eq!(stopped.state, RunState::Stopped);

    // The database's view, and kill -9 in the middle of the wait.
    let mut child = send_command(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_500));
    for _ in 0..5 {
        let now = counts(&dir);
        assert_eq!(
            (now.sending, now.pending),
            (0, total as u64),
            "rows held while waiting for a relay"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    kill(child.id(), "KILL");
    let _ = child.wait();

    let server = SmtpServer::builder().port(port).start();
    let next = run(send_command(&dir), LIMIT);
    next.assert_code(0);
    assert!(
        !next.stdout.contains("previous run ended"),
        "{}",
        next.all()
    );
    let counts = counts(&dir);
    assert_eq!(
        (counts.sent, counts.uncertain, counts.failed),
        (total as u64, 0, 0)
    );
    assert_eq!(server.received_count(), total);
}
