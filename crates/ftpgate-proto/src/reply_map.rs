//! The one place where an error becomes an FTP reply.
//!
//! Storage backends and the engine's transfers report a [`StorageErrorKind`]; [`reply_for`] turns
//! every kind into a reply with an exhaustive match, so no handler ever spells an error code of
//! its own, and a table test pins each kind to its code. Transient kinds give 4xx (the client may
//! retry), permanent ones 5xx. (Authenticators do not use it: every failed login gets the same
//! reply, decided in `session/login.rs`.)

use crate::backend::StorageErrorKind;
use crate::reply::{Reply, ReplyCode};

/// The reply for an error, with `subject` (usually the path) in the text.
pub fn reply_for(kind: StorageErrorKind, subject: &str) -> Reply {
    let code = match kind {
        StorageErrorKind::NotFound
        | StorageErrorKind::PermissionDenied
        | StorageErrorKind::AlreadyExists
        | StorageErrorKind::NotADirectory
        | StorageErrorKind::IsADirectory
        | StorageErrorKind::DirectoryNotEmpty => ReplyCode::FileUnavailable,
        StorageErrorKind::InvalidName => ReplyCode::FileNameNotAllowed,
        StorageErrorKind::InsufficientStorage => ReplyCode::InsufficientStorage,
        StorageErrorKind::ExceededStorage => ReplyCode::ExceededStorage,
        StorageErrorKind::InvalidOffset => ReplyCode::InvalidRestParameter,
        StorageErrorKind::Busy | StorageErrorKind::Transient => ReplyCode::FileBusy,
        StorageErrorKind::Unsupported => ReplyCode::NotImplemented,
        StorageErrorKind::Local => ReplyCode::LocalError,
    };
    let text = kind.as_str();
    if subject.is_empty() {
        Reply::new(code, text)
    } else {
        Reply::new(
            code,
            format!("{}: {text}", crate::listing::display_name(subject)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_code() {
        let table = [
            (StorageErrorKind::NotFound, 550),
            (StorageErrorKind::PermissionDenied, 550),
            (StorageErrorKind::AlreadyExists, 550),
            (StorageErrorKind::NotADirectory, 550),
            (StorageErrorKind::IsADirectory, 550),
            (StorageErrorKind::DirectoryNotEmpty, 550),
            (StorageErrorKind::InvalidName, 553),
            (StorageErrorKind::InsufficientStorage, 452),
            (StorageErrorKind::ExceededStorage, 552),
            (StorageErrorKind::InvalidOffset, 554),
            (StorageErrorKind::Busy, 450),
            (StorageErrorKind::Transient, 450),
            (StorageErrorKind::Unsupported, 502),
            (StorageErrorKind::Local, 451),
        ];
        for (kind, code) in table {
            let reply = reply_for(kind, "/x");
            assert_eq!(reply.code.number(), code, "{kind:?}");
            assert_eq!(kind.is_transient(), code < 500, "{kind:?}");
        }
    }

    #[test]
    fn subject_is_named_and_sanitised() {
        assert_eq!(
            reply_for(StorageErrorKind::NotFound, "/a\x1bb").lines[0],
            "/a?b: No such file or directory"
        );
    }
}
