//! The delivery vocabulary every layer shares: where a recipient's delivery stands, a server's
//! reply, counts per state, and the clock. Plain types with no I/O, so `store`, `engine`,
//! `inbox` and `ui` can speak of deliveries without depending on the SQL module.

use std::time::{SystemTime, UNIX_EPOCH};

/// Where one recipient's delivery stands (see the state machine in ARCHITECTURE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Pending,
    Sending,
    Deferred,
    Sent,
    Failed,
    Uncertain,
    Skipped,
    /// A hard bounce came back after the message was accepted (from `sent` or `uncertain`).
    Bounced,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Pending,
        State::Sending,
        State::Deferred,
        State::Sent,
        State::Failed,
        State::Uncertain,
        State::Skipped,
        State::Bounced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Sending => "sending",
            State::Deferred => "deferred",
            State::Sent => "sent",
            State::Failed => "failed",
            State::Uncertain => "uncertain",
            State::Skipped => "skipped",
            State::Bounced => "bounced",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// Final states: the run is done with a recipient once it is in one of them.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Sent | State::Failed | State::Skipped | State::Bounced
        )
    }
}

/// A server's answer, kept on the row for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub code: Option<u16>,
    /// RFC 3463 enhanced status code, like "5.1.1".
    pub enhanced: Option<String>,
    pub text: String,
}

/// Counts of recipients per state for one campaign.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub pending: u64,
    pub sending: u64,
    pub deferred: u64,
    pub sent: u64,
    pub failed: u64,
    pub uncertain: u64,
    pub skipped: u64,
    pub bounced: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        State::ALL.into_iter().map(|state| self.get(state)).sum()
    }

    pub fn get(&self, state: State) -> u64 {
        match state {
            State::Pending => self.pending,
            State::Sending => self.sending,
            State::Deferred => self.deferred,
            State::Sent => self.sent,
            State::Failed => self.failed,
            State::Uncertain => self.uncertain,
            State::Skipped => self.skipped,
            State::Bounced => self.bounced,
        }
    }

    pub fn slot(&mut self, state: State) -> &mut u64 {
        match state {
            State::Pending => &mut self.pending,
            State::Sending => &mut self.sending,
            State::Deferred => &mut self.deferred,
            State::Sent => &mut self.sent,
            State::Failed => &mut self.failed,
            State::Uncertain => &mut self.uncertain,
            State::Skipped => &mut self.skipped,
            State::Bounced => &mut self.bounced,
        }
    }

    /// Nothing left for a run to do: every recipient is sent, failed or skipped (uncertain rows
    /// held for the user also end a run).
    pub fn is_done(&self) -> bool {
        self.pending == 0 && self.sending == 0 && self.deferred == 0
    }
}

/// The wall clock in unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}
