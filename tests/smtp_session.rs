//! The SMTP session layer alone against the scriptable server over real TCP (issue #12): one
//! round trip a message with PIPELINING, replies charged to the right command and message
//! when some RCPTs are refused mid-group, a lone "." after a 354 for a refused recipient, the
//! durability rule when the server drops the connection after a final "." with the next
//! message already written, 421 after N messages, slow replies, servers without PIPELINING, and
//! CHUNKING's `BDAT n LAST`.

use std::time::Duration;

use crate::support::smtp_server::{Reply, SmtpServer};
use herald::campaign::Security;
use herald::engine::smtp::{Attempt, EnvelopeAddress, Message, Outcome, Session, Target, Timeouts};

fn target(port: u16) -> Target {
    Target {
        route: "test".into(),
        host: "127.0.0.1".into(),
        port,
        security: Security::None,
        helo: "herald.test".into(),
        credentials: None,
        ca_pem: None,
        address: None,
        opportunistic_tls: None,
    }
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        command: Duration::from_secs(5),
        data: Duration::from_secs(5),
    }
}

fn address(text: &str) -> EnvelopeAddress {
    text.parse().unwrap()
}

fn message(n: usize) -> Message {
    Message {
        from: address("news@acme.example"),
        to: address(&format!("r{n}@example.com")),
        data: format!(
            "Subject: message {n}\r\n\r\nHello {n}\r\n.a line that starts with a dot\r\n"
        )
        .into_bytes(),
    }
}

/// Sends messages `0..count` on one session, handing each over as soon as the session can
/// write it; returns the outcomes in the order they were reported, with their message numbers.
async fn send_all(session: &mut Session, count: usize) -> Vec<(usize, Outcome)> {
    send_made(session, count, message).await
}

/// As [`send_all`], with messages made by `make`.
async fn send_made(
    session: &mut Session,
    count: usize,
    make: impl Fn(usize) -> Message,
) -> Vec<(usize, Outcome)> {
    let mut outcomes = Vec::new();
    let mut handed = 1;
    session
        .send_many(
            0,
            make(0),
            || {
                (handed < count).then(|| {
                    handed += 1;
                    (handed - 1, make(handed - 1))
                })
            },
            |n, outcome| outcomes.push((n, outcome)),
        )
        .await;
    outcomes
}

fn code(outcome: &Outcome) -> Option<u16> {
    match outcome {
        Outcome::Attempted(
            Attempt::Accepted(reply)
            | Attempt::Temporary(reply)
            | Attempt::Permanent(reply)
            | Attempt::Uncertain(reply),
        ) => reply.code,
        Outcome::NotAttempted(reply) => reply.code,
    }
}

#[tokio::test]
async fn pipelined_refusals_are_charged_to_their_own_messages() {
    let server = SmtpServer::builder()
        .rule(|rcpt| match rcpt {
            "r3@example.com" | "r9@example.com" => Reply::PermFail,
            "r4@example.com" => Reply::TempFail,
            "r12@example.com" => Reply::DataPermFail,
            _ => Reply::Accept,
        })
        .start();
    let mut session = Session::connect(&target(server.port()), timeouts())
        .await
        .unwrap();
    assert!(session.capabilities().pipelining);
    let outcomes = send_all(&mut session, 20).await;
    assert!(session.usable());
    session.quit().await;
    let order: Vec<usize> = outcomes.iter().map(|(n, _)| *n).collect();
    assert_eq!(order, (0..20).collect::<Vec<_>>(), "reported out of order");
    for (n, outcome) in &outcomes {
        let expected = match n {
            3 | 9 => Some(550),
            4 => Some(451),
            12 => Some(554),
            _ => Some(250),
        };
        assert_eq!(code(outcome), expected, "message {n}: {outcome:?}");
        match n {
            3 | 9 | 12 => assert!(matches!(outcome, Outcome::Attempted(Attempt::Permanent(_)))),
            4 => assert!(matches!(outcome, Outcome::Attempted(Attempt::Temporary(_)))),
            _ => assert!(matches!(outcome, Outcome::Attempted(Attempt::Accepted(_)))),
        }
    }
    let received = server.received();
    assert_eq!(received.len(), 16);
    assert!(received.iter().all(|m| m.session == 1));
    // The dot-stuffed line arrives as the message had it.
    assert!(
        received[0]
            .data_str()
            .contains("\r\n.a line that starts with a dot\r\n")
    );
    // RSET only where a transaction had to be abandoned: the three refused RCPTs left MAIL's
    // transaction open (DATA got 503); never after a success or after a "." reply.
    let verbs = server.verbs(1);
    assert_eq!(
        verbs.iter().filter(|v| *v == "RSET").count(),
        3,
        "{verbs:?}"
    );
    // About one round trip a message: command by command it would be four.
    let flushes = server.flushes();
    assert!(flushes <= 20 + 6, "{flushes} round trips for 20 messages");
}

#[tokio::test]
async fn a_354_after_every_rcpt_was_refused_gets_a_lone_dot_and_no_delivery() {
    let server = SmtpServer::builder()
        .data_without_recipients()
        .rule(|rcpt| match rcpt {
            "r1@example.com" => Reply::PermFail,
            "r2@example.com" => Reply::TempFail,
            _ => Reply::Accept,
        })
        .start();
    let mut session = Session::connect(&target(server.port()), timeouts())
        .await
        .unwrap();
    let outcomes = send_all(&mut session, 4).await;
    let codes: Vec<_> = outcomes.iter().map(|(_, o)| code(o)).collect();
    // The recipient's RCPT reply decides, not the 554 that ends the lone ".".
    assert_eq!(codes, [Some(250), Some(550), Some(451), Some(250)]);
    assert_eq!(server.lone_dots(), 2);
    let received = server.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].rcpt_to, ["r0@example.com"]);
    assert_eq!(received[1].rcpt_to, ["r3@example.com"]);
    assert!(session.usable());
}

#[tokio::test]
async fn a_drop_after_the_final_dot_leaves_the_next_message_not_attempted() {
    let server = SmtpServer::builder()
        .rule(|rcpt| match rcpt {
            "r1@example.com" => Reply::DropAfterData,
            _ => Reply::Accept,
        })
        .start();
    let mut session = Session::connect(&target(server.port()), timeouts())
        .await
        .unwrap();
    let outcomes = send_all(&mut session, 5).await;
    assert!(!session.usable());
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert!(matches!(
        outcomes[0].1,
        Outcome::Attempted(Attempt::Accepted(_))
    ));
    assert!(
        matches!(outcomes[1].1, Outcome::Attempted(Attempt::Uncertain(_))),
        "{:?}",
        outcomes[1]
    );
    assert!(
        matches!(outcomes[2].1, Outcome::NotAttempted(_)),
        "{:?}",
        outcomes[2]
    );
    assert_eq!(outcomes[2].0, 2);
    // The next message's commands really had gone out behind the ".", and the server never
    // read them: its recipient was never offered.
    assert_eq!(server.dropped_with_commands_behind(), 1);
    assert_eq!(server.rcpt_attempts().get("r2@example.com"), None);
}

#[tokio::test]
async fn a_421_after_n_messages_costs_the_next_one_nothing() {
    let server = SmtpServer::builder().max_messages_per_session(3).start();
    let mut session = Session::connect(&target(server.port()), timeouts())
        .await
        .unwrap();
    let outcomes = send_all(&mut session, 6).await;
    assert!(!session.usable());
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    for (_, outcome) in &outcomes[..3] {
        assert!(matches!(outcome, Outcome::Attempted(Attempt::Accepted(_))));
    }
    assert!(
        matches!(&outcomes[3].1, Outcome::NotAttempted(reply) if reply.code == Some(421)),
        "{:?}",
        outcomes[3]
    );
    // A fresh session carries on with what was left.
    let mut fresh = Session::connect(&target(server.port()), timeouts())
        .await
        .unwrap();
    let offer = fresh
        .send(
            &address("news@acme.example"),
            &address("r3@example.com"),
            b"Subject: again\r\n\r\nhi\r\n",
        )
        .await;
    assert!(matches!(offer.attempt, Attempt::Accepted(_)), "{offer:?}");
    assert_eq!(server.received_count(), 4);
}

#[tokio::test]
async fn slow_replies_to_a_pipelining_client_stay_in_order() {
    let server = SmtpServer::builder()
        .reply_delay(Duration::from_millis(15))
        .rule(|rcpt| match rcpt {
            "r2@example.com" => Reply::PermFail,
            "r5@example.com" => Reply::DataTempFail,
            _ => Reply::Accept,
        })
        .start();
    let mut session = Session::connect(&target(server.port()), timeouts())
        .await
        .unwrap();
    let outcomes = send_all(&mut session, 8).await;
    let codes: Vec<_> = outcomes.iter().map(|(_, o)| code(o)).collect();
    assert_eq!(
        codes,
        [
            Some(250),
            Some(250),
            Some(550),
            Some(250),
            Some(250),
            Some(451),
            Some(250),
            Some(250)
        ]
    );
    assert_eq!(server.received_count(), 6);
    assert!(session.usable());
}

#[tokio::test]
async fn a_slow_server_past_the_deadline_makes_the_message_uncertain_only_after_its_dot() {
    let server = SmtpServer::builder()
        .rule(|rcpt| match rcpt {
            "r1@example.com" => Reply::SlowData(Duration::from_secs(3)),
            _ => Reply::Accept,
        })
        .start();
    let mut session = Session::connect(
        &target(server.port()),
        Timeouts {
            data: Duration::from_secs(1),
            ..timeouts()
        },
    )
    .await
    .unwrap();
    let outcomes = send_all(&mut session, 4).await;
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert!(matches!(
        outcomes[0].1,
        Outcome::Attempted(Attempt::Accepted(_))
    ));
    assert!(matches!(
        outcomes[1].1,
        Outcome::Attempted(Attempt::Uncertain(_))
    ));
    assert!(matches!(outcomes[2].1, Outcome::NotAttempted(_)));
}

#[tokio::test]
async fn without_pipelining_commands_go_one_at_a_time() {
    let server = SmtpServer::builder()
        .no_pipelining()
        .rule(|rcpt| match rcpt {
            "r1@example.com" => Reply::PermFail,
            _ => Reply::Accept,
        })
        .start();
    let mut session = Session::connect(&target(server.port()), timeouts())
        .await
        .unwrap();
    assert!(!session.capabilities().pipelining);
    let outcomes = send_all(&mut session, 4).await;
    let codes: Vec<_> = outcomes.iter().map(|(_, o)| code(o)).collect();
    assert_eq!(codes, [Some(250), Some(550), Some(250), Some(250)]);
    assert_eq!(server.received_count(), 3);
    // MAIL, RCPT, DATA and the content each waited for: four round trips a delivered message.
    assert!(server.flushes() >= 3 * 4, "{}", server.flushes());
    let verbs = server.verbs(1);
    assert_eq!(
        verbs.iter().filter(|v| *v == "RSET").count(),
        1,
        "{verbs:?}"
    );
}

#[tokio::test]
async fn chunking_sends_one_bdat_last_without_dot_stuffing() {
    let server = SmtpServer::builder()
        .chunking()
        .rule(|rcpt| match rcpt {
            "r2@example.com" => Reply::PermFail,
            "r4@example.com" => Reply::DataTempFail,
            _ => Reply::Accept,
        })
        .start();
    let mut session = Session::connect(&target(server.port()), timeouts())
        .await
        .unwrap();
    assert!(session.capabilities().chunking);
    let outcomes = send_all(&mut session, 8).await;
    let codes: Vec<_> = outcomes.iter().map(|(_, o)| code(o)).collect();
    assert_eq!(
        codes,
        [
            Some(250),
            Some(250),
            Some(550),
            Some(250),
            Some(451),
            Some(250),
            Some(250),
            Some(250)
        ]
    );
    let received = server.received();
    assert_eq!(received.len(), 6);
    assert_eq!(
        received[0].data,
        message(0).data,
        "BDAT content is sent as it is"
    );
    let verbs = server.verbs(1);
    assert!(!verbs.iter().any(|v| v == "DATA"), "{verbs:?}");
    assert_eq!(verbs.iter().filter(|v| *v == "BDAT").count(), 8);
    // The refused RCPT and the refused chunk each left a transaction to reset.
    assert_eq!(
        verbs.iter().filter(|v| *v == "RSET").count(),
        2,
        "{verbs:?}"
    );
    assert!(server.flushes() <= 8 + 6, "{}", server.flushes());
}

/// What one message of a 421 scenario must come to.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Accepted,
    Refused(u16),
    /// Back to the dispatcher unspent: the server closed before reading any of it.
    Unspent,
}

#[tokio::test]
async fn a_421_on_a_reused_chunking_session_costs_the_message_nothing() {
    // (case, the server, messages offered, what each came to, messages the server kept, a
    // recipient the server never even read).
    // "mail": MAIL, RCPT and the whole chunk went out in one flight; the 421 to MAIL means the
    // server read none of the rest. "rset": the refused RCPT left MAIL's transaction open, so
    // the next flight began with RSET, and the server closed there, before the message.
    let cases = [
        (
            "mail",
            SmtpServer::builder().chunking().max_messages_per_session(2),
            5,
            vec![Expect::Accepted, Expect::Accepted, Expect::Unspent],
            2,
            Some("r2@example.com"),
        ),
        (
            "rset",
            SmtpServer::builder()
                .chunking()
                .close_at_rset()
                .rule(|rcpt| match rcpt {
                    "r0@example.com" => Reply::PermFail,
                    _ => Reply::Accept,
                }),
            3,
            vec![Expect::Refused(550), Expect::Unspent],
            0,
            None,
        ),
    ];
    for (case, builder, offered, expected, kept, unread) in cases {
        let server = builder.start();
        let mut session = Session::connect(&target(server.port()), timeouts())
            .await
            .unwrap();
        let outcomes = send_all(&mut session, offered).await;
        assert!(!session.usable(), "{case}");
        assert_eq!(outcomes.len(), expected.len(), "{case}: {outcomes:?}");
        for ((_, outcome), expect) in outcomes.iter().zip(&expected) {
            let met = match expect {
                Expect::Accepted => matches!(outcome, Outcome::Attempted(Attempt::Accepted(_))),
                Expect::Refused(wanted) => code(outcome) == Some(*wanted),
                Expect::Unspent => {
                    matches!(outcome, Outcome::NotAttempted(reply) if reply.code == Some(421))
                }
            };
            assert!(met, "{case}: {outcome:?} is not {expect:?}");
        }
        assert_eq!(server.received_count(), kept, "{case}");
        if let Some(unread) = unread {
            assert_eq!(server.rcpt_attempts().get(unread), None, "{case}");
        }
    }
}

#[tokio::test]
async fn a_drop_after_bdat_last_is_uncertain() {
    let server = SmtpServer::builder()
        .chunking()
        .rule(|rcpt| match rcpt {
            "r1@example.com" => Reply::DropAfterData,
            _ => Reply::Accept,
        })
        .start();
    let mut session = Session::connect(&target(server.port()), timeouts())
        .await
        .unwrap();
    let outcomes = send_all(&mut session, 3).await;
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(matches!(
        outcomes[0].1,
        Outcome::Attempted(Attempt::Accepted(_))
    ));
    assert!(matches!(
        outcomes[1].1,
        Outcome::Attempted(Attempt::Uncertain(_))
    ));
    assert!(!session.usable());
}

/// Messages 0..3 with message 1 addressed to a non-ASCII local part.
async fn send_with_unicode_recipient(session: &mut Session) -> Vec<(usize, Outcome)> {
    send_made(session, 3, |n| {
        let mut m = message(n);
        if n == 1 {
            m.to = address("jürgen@example.com");
        }
        m
    })
    .await
}

#[tokio::test]
async fn a_non_ascii_local_part_is_sent_with_smtputf8_where_offered() {
    let server = SmtpServer::start();
    let mut session = Session::connect(&target(server.port()), timeouts())
        .await
        .unwrap();
    assert!(session.capabilities().smtputf8);
    let outcomes = send_with_unicode_recipient(&mut session).await;
    let codes: Vec<_> = outcomes.iter().map(|(_, o)| code(o)).collect();
    assert_eq!(codes, [Some(250), Some(250), Some(250)], "{outcomes:?}");
    let received = server.received();
    assert_eq!(received[1].rcpt_to, ["jürgen@example.com"]);
}

#[tokio::test]
async fn a_non_ascii_local_part_fails_clearly_where_smtputf8_is_not_offered() {
    let server = SmtpServer::builder().no_smtputf8().start();
    let mut session = Session::connect(&target(server.port()), timeouts())
        .await
        .unwrap();
    let outcomes = send_with_unicode_recipient(&mut session).await;
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert!(
        matches!(
            &outcomes[1].1,
            Outcome::Attempted(Attempt::Permanent(reply))
            if reply.code.is_none() && reply.text.contains("SMTPUTF8")
        ),
        "{outcomes:?}"
    );
    assert_eq!(code(&outcomes[0].1), Some(250));
    assert_eq!(code(&outcomes[2].1), Some(250));
    assert!(session.usable());
    // Never offered: RFC 6531 forbids the address without the extension.
    let verbs = server.verbs(1);
    assert_eq!(
        verbs.iter().filter(|v| *v == "RCPT").count(),
        2,
        "{verbs:?}"
    );
    assert_eq!(server.received_count(), 2);
}

#[tokio::test]
async fn a_non_ascii_local_part_goes_in_the_chunking_flight_with_smtputf8() {
    let server = SmtpServer::builder().chunking().start();
    let mut session = Session::connect(&target(server.port()), timeouts())
        .await
        .unwrap();
    let outcomes = send_with_unicode_recipient(&mut session).await;
    let codes: Vec<_> = outcomes.iter().map(|(_, o)| code(o)).collect();
    assert_eq!(codes, [Some(250), Some(250), Some(250)], "{outcomes:?}");
    assert_eq!(server.received()[1].rcpt_to, ["jürgen@example.com"]);
    assert!(server.verbs(1).iter().all(|verb| verb != "DATA"));
}
