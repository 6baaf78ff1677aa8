//! The application layer's error: the sentence a marketer reads, and a kind the front ends can
//! act on without reading text (the window offers "free some space" for a full disk and the
//! password field for a credential; the CLI picks its exit code). Every lower error (store,
//! campaign file, import, mailbox, endpoint, test send) converts into it in one place, here, so
//! the kinds mean the same everywhere.

use crate::campaign::CampaignError;
use crate::import::ImportFailed;
use crate::inbox::InboxError;
use crate::store::StoreError;
use crate::unsubscribe::pull::PullError;

use super::preview::PreviewError;
use super::suppression::SuppressionError;
use super::test_send::TestSendFailure;

/// What a front end can do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The campaign file (or a file it names) is missing or has problems: open it and fix them.
    Campaign,
    /// The disk is full: free some space, then go on; nothing was lost.
    DiskFull,
    /// Another program (or another Herald run) holds the database.
    Busy,
    /// The database cannot be used (damaged, from a newer Herald, unreadable).
    Database,
    /// A password or sign-in is missing or was refused: enter it again.
    Credentials,
    /// A server could not be reached or answered wrongly (mailbox, endpoint, relay).
    Network,
    /// A file the user chose cannot be read or written.
    File,
    /// Anything else; the sentence says what.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{sentence}")]
pub struct AppError {
    pub kind: ErrorKind,
    pub sentence: String,
}

impl AppError {
    pub fn new(kind: ErrorKind, sentence: impl Into<String>) -> AppError {
        AppError {
            kind,
            sentence: sentence.into(),
        }
    }

    pub fn other(sentence: impl Into<String>) -> AppError {
        AppError::new(ErrorKind::Other, sentence)
    }
}

impl From<String> for AppError {
    fn from(sentence: String) -> AppError {
        AppError::other(sentence)
    }
}

impl From<&str> for AppError {
    fn from(sentence: &str) -> AppError {
        AppError::other(sentence)
    }
}

impl From<std::io::Error> for AppError {
    fn from(error: std::io::Error) -> AppError {
        let kind = if error.kind() == std::io::ErrorKind::StorageFull {
            ErrorKind::DiskFull
        } else {
            ErrorKind::File
        };
        AppError::new(kind, error.to_string())
    }
}

fn store_kind(error: &StoreError) -> ErrorKind {
    match error {
        StoreError::DiskFull => ErrorKind::DiskFull,
        StoreError::Locked => ErrorKind::Busy,
        StoreError::NewerSchema { .. }
        | StoreError::NotADatabase { .. }
        | StoreError::Open { .. }
        | StoreError::Sql(_) => ErrorKind::Database,
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> AppError {
        AppError::new(store_kind(&error), error.to_string())
    }
}

impl From<CampaignError> for AppError {
    fn from(error: CampaignError) -> AppError {
        AppError::new(ErrorKind::Campaign, error.to_string())
    }
}

impl From<ImportFailed> for AppError {
    fn from(error: ImportFailed) -> AppError {
        let kind = match &error {
            ImportFailed::Store(store) => store_kind(store),
            _ => ErrorKind::Campaign,
        };
        AppError::new(kind, error.to_string())
    }
}

impl From<PreviewError> for AppError {
    fn from(error: PreviewError) -> AppError {
        AppError::from_preview_ref(&error)
    }
}

impl From<SuppressionError> for AppError {
    fn from(error: SuppressionError) -> AppError {
        let kind = match &error {
            SuppressionError::Store(store) => store_kind(store),
            SuppressionError::Read { .. } | SuppressionError::Write { .. } => ErrorKind::File,
            SuppressionError::NotAnAddress { .. } => ErrorKind::Other,
        };
        AppError::new(kind, error.to_string())
    }
}

impl From<InboxError> for AppError {
    fn from(error: InboxError) -> AppError {
        let kind = match &error {
            InboxError::Store(store) => store_kind(store),
            InboxError::NoPassword { .. } | InboxError::Login { .. } => ErrorKind::Credentials,
            InboxError::NotConfigured | InboxError::CaFile { .. } => ErrorKind::Campaign,
            _ => ErrorKind::Network,
        };
        AppError::new(kind, error.to_string())
    }
}

impl From<PullError> for AppError {
    fn from(error: PullError) -> AppError {
        let kind = match &error {
            PullError::Store(store) => store_kind(store),
            PullError::NoToken(_) | PullError::ShortToken(_) | PullError::Refused { .. } => {
                ErrorKind::Credentials
            }
            PullError::CaFile { .. } => ErrorKind::Campaign,
            _ => ErrorKind::Network,
        };
        AppError::new(kind, error.to_string())
    }
}

impl From<TestSendFailure> for AppError {
    fn from(error: TestSendFailure) -> AppError {
        let kind = match &error {
            TestSendFailure::Preview(preview) => return AppError::from_preview_ref(preview),
            TestSendFailure::Skipped { .. } => ErrorKind::Other,
            TestSendFailure::Send(_) => ErrorKind::Network,
        };
        AppError::new(kind, error.to_string())
    }
}

impl AppError {
    fn from_preview_ref(error: &PreviewError) -> AppError {
        let kind = match error {
            PreviewError::Store(store) | PreviewError::Keys(store) => store_kind(store),
            PreviewError::Import(ImportFailed::Store(store)) => store_kind(store),
            _ => ErrorKind::Campaign,
        };
        AppError::new(kind, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_apart_from_a_locked_database() {
        assert_eq!(
            AppError::from(StoreError::DiskFull).kind,
            ErrorKind::DiskFull
        );
        assert_eq!(AppError::from(StoreError::Locked).kind, ErrorKind::Busy);
        let refused = AppError::from(InboxError::Login {
            username: "bounces".into(),
            reason: "AUTHENTICATIONFAILED".into(),
        });
        assert_eq!(refused.kind, ErrorKind::Credentials);
        assert!(refused.to_string().contains("AUTHENTICATIONFAILED"));
    }
}
