//! Shared helpers of the integration tests: the scriptable SMTP server, the test DNS server and campaign
//! fixtures.

pub mod campaign;
pub mod cli_run;
pub mod dkim;
pub mod dns_server;
pub mod dovecot;
pub mod mail;
pub mod mta_sts_server;
pub mod oidc;
pub mod postfix;
pub mod powercut;
pub mod run;
pub mod secret_service;
pub mod sheets;
pub mod slow_clients;
pub mod slow_link;
pub mod smtp_server;
pub mod tools;
pub mod window;
