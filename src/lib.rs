//! Herald: a bulk mailer that delivers one personalized message per recipient and never loses
//! track of who got what. The library holds everything; `main.rs` only chooses between the window
//! (`ui`) and the headless commands (`cli`). See ARCHITECTURE.md for the map.

pub mod app;
pub mod campaign;
pub mod cli;
pub mod compose;
pub mod credentials;
pub mod csvfile;
pub mod delivery;
pub mod dnsauth;
pub mod engine;
pub mod http;
pub mod identity;
pub mod import;
pub mod inbox;
pub mod mtasts;
pub mod oauth2;
pub mod recipients;
pub mod render;
pub mod store;
pub mod tls;
pub mod token;
pub mod ui;
pub mod unsubscribe;
