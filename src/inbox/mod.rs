//! Reading mail back (issue #13): bounces, complaints, auto-replies and unsubscribe requests from
//! the campaign's mailbox. `report` reads a message into data (pure, fuzzed); matching names the
//! recipient through the store; the IMAP client only fetches and flags, and never deletes. Reading
//! mail is not sending mail: nothing here uses the engine's sessions.

pub mod report;
