//! Shared helpers of the integration tests: the scriptable SMTP server and campaign fixtures.
#![allow(dead_code)]

pub mod campaign;
pub mod smtp_server;
