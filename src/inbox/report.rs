//! What came back, as data before it is action: one message from the bounce mailbox read into a
//! closed type (a delivery report, a complaint, an auto-reply, an unsubscribe request, or none of
//! these), with the clues that name the recipient it is about. Pure functions over bytes: no I/O,
//! no store, never a panic, bounded work on hostile input. Matching and applying come after, in
//! their own modules.

/// One message read from the mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub report: Report,
    /// What names the mailing it answers, for matching (issue #13, item 4).
    pub clues: Clues,
}

/// What a message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A delivery report: RFC 3464 or a bounce recognized from its text. One entry per
    /// recipient it reports on.
    Delivery(Vec<RecipientStatus>),
    /// An RFC 5965 (ARF) feedback report: the recipient marked the mail as spam.
    Complaint(Complaint),
    /// An RFC 3834 automatic reply (vacation, out of office): never a bounce.
    AutoReply,
    /// A mail sent to the mailto of List-Unsubscribe; `tag` is the token after `u-` in the
    /// address it was sent to (see `crate::token`).
    Unsubscribe { tag: String },
    /// Looks like a bounce or report but could not be read (broken MIME, no recipient, too big):
    /// counted as unrecognized and left unread in the mailbox.
    Unrecognized { why: String },
    /// None of the kinds above: left exactly as it was, not even marked read.
    NotAReport,
}

/// The fate of one recipient in a delivery report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    /// The failed address (Final-Recipient, else Original-Recipient, else from the text),
    /// without the `rfc822;` type.
    pub address: Option<String>,
    pub action: Action,
    /// RFC 3463 enhanced status code, like "5.1.1".
    pub status: Option<String>,
    /// The SMTP reply code, when the report gives one (from Diagnostic-Code or the text).
    pub smtp_code: Option<u16>,
    /// Diagnostic-Code or the relevant text, trimmed and bounded.
    pub diagnostic: String,
}

/// RFC 3464 §2.3.3 Action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    /// An event, not a bounce.
    Delayed,
    Delivered,
    Relayed,
    Expanded,
}

/// An ARF feedback report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complaint {
    /// The complaining address, if the report names it (Original-Rcpt-To, or the To of the
    /// returned message; many providers redact it).
    pub address: Option<String>,
    /// Feedback-Type: "abuse", "fraud", "not-spam"….
    pub feedback_type: String,
}

/// What names the mailing a report answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clues {
    /// Addresses the report was delivered to (Delivered-To, X-Original-To, To), in that order:
    /// a VERP return path `bounces+TAG@…` names the recipient.
    pub envelope_to: Vec<String>,
    /// Message-IDs of the returned message (from its headers or the report's
    /// In-Reply-To/References), without angle brackets.
    pub message_ids: Vec<String>,
}

/// How a failed or delayed recipient's report counts (issue #13, item 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// No such user or domain, moved, disabled: the address is dead.
    Hard,
    /// Mailbox full, too big, expired in a queue, temporary trouble: counted toward
    /// `soft_limit`.
    Soft,
    /// Policy, spam, block lists, authentication: the sender's problem, never suppresses.
    Blocked,
}

/// Reads one raw message (RFC 5322 bytes as fetched from the mailbox).
pub fn read(raw: &[u8]) -> Reading {
    // Filled in by the report parser (issue #13); until then nothing is recognized.
    let _ = raw;
    Reading {
        report: Report::NotAReport,
        clues: Clues::default(),
    }
}

/// The class of one recipient's report, from its status code, SMTP code and diagnostic text.
pub fn classify(status: &RecipientStatus) -> Class {
    // Filled in by the report parser (issue #13).
    let _ = status;
    Class::Soft
}
