//! The integration tests, as one binary (rust-analyzer's slow-tests layout): `support/` is
//! compiled once and every scenario file below is a module of this crate. A new scenario file goes
//! in `tests/` and gets a `mod` line here; `tidy::every_test_file_is_a_module` fails when one is
//! left out (it would otherwise never run, since `autotests` is off in Cargo.toml).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod architecture;
mod bounce_corpus;
mod bounce_samples;
mod bounces;
mod cli;
mod compose;
mod direct;
mod dnsauth;
mod feedback_e2e;
mod forged_reports;
mod fuzz;
mod interop;
mod keyring;
mod lists;
mod mta_sts;
mod oauth2;
mod pipelining;
mod power_loss;
mod render;
mod runs;
mod security;
mod send;
mod smtp_session;
mod suppression_cli;
mod tidy;
mod tls_auth;
mod ui;
mod ui_deliverability;
mod ui_feedback;
mod ui_glyphs;
mod ui_review;
mod ui_setup;
mod ui_signin;
mod ui_starter;
mod ui_status;
mod ui_trust;
mod unsubscribe;
