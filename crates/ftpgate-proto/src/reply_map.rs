//! The one place where an error becomes an FTP reply.
//!
//! Backends and authenticators report an [`ErrorKind`]; [`reply_for`] turns every kind into a
//! reply with an exhaustive match, so no handler ever spells an error code of its own, and a
//! table test pins each kind to its code. Transient kinds give 4xx (the client may retry),
//! permanent ones 5xx.

use crate::reply::{Reply, ReplyCode};

/// What went wrong, in the terms FTP replies can express.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file or directory does not exist.
    NotFound,
    /// Access is denied (by the backend, or by a path leading outside the root).
    PermissionDenied,
    /// The target already exists.
    AlreadyExists,
    /// A directory was expected.
    NotADirectory,
    /// A file was expected but this is a directory.
    IsADirectory,
    /// RMD of a directory that still has entries.
    DirectoryNotEmpty,
    /// The name is not acceptable to the backend.
    InvalidName,
    /// The storage is out of space for now.
    InsufficientStorage,
    /// A quota or size limit was exceeded.
    ExceededStorage,
    /// A REST offset does not fit the file.
    InvalidOffset,
    /// The file is busy or locked; try again later.
    Busy,
    /// A temporary failure of the backend; try again later.
    Transient,
    /// The backend cannot do this.
    Unsupported,
    /// An unexpected local error.
    Local,
}

impl ErrorKind {
    /// What went wrong, as the reply (and the log) says it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "No such file or directory",
            ErrorKind::PermissionDenied => "Permission denied",
            ErrorKind::AlreadyExists => "File exists",
            ErrorKind::NotADirectory => "Not a directory",
            ErrorKind::IsADirectory => "Is a directory",
            ErrorKind::DirectoryNotEmpty => "Directory not empty",
            ErrorKind::InvalidName => "File name not allowed",
            ErrorKind::InsufficientStorage => "Insufficient storage space",
            ErrorKind::ExceededStorage => "Exceeded storage allocation",
            ErrorKind::InvalidOffset => "Invalid REST parameter",
            ErrorKind::Busy => "File busy, try again later",
            ErrorKind::Transient => "Temporary storage failure, try again later",
            ErrorKind::Unsupported => "Not supported by this storage",
            ErrorKind::Local => "Local error in processing",
        }
    }

    /// Whether a retry may succeed (4xx) rather than not (5xx).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::InsufficientStorage
                | ErrorKind::Busy
                | ErrorKind::Transient
                | ErrorKind::Local
        )
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reply for an error, with `subject` (usually the path) in the text.
pub fn reply_for(kind: ErrorKind, subject: &str) -> Reply {
    let code = match kind {
        ErrorKind::NotFound
        | ErrorKind::PermissionDenied
        | ErrorKind::AlreadyExists
        | ErrorKind::NotADirectory
        | ErrorKind::IsADirectory
        | ErrorKind::DirectoryNotEmpty => ReplyCode::FileUnavailable,
        ErrorKind::InvalidName => ReplyCode::FileNameNotAllowed,
        ErrorKind::InsufficientStorage => ReplyCode::InsufficientStorage,
        ErrorKind::ExceededStorage => ReplyCode::ExceededStorage,
        ErrorKind::InvalidOffset => ReplyCode::InvalidRestParameter,
        ErrorKind::Busy | ErrorKind::Transient => ReplyCode::FileBusy,
        ErrorKind::Unsupported => ReplyCode::NotImplemented,
        ErrorKind::Local => ReplyCode::LocalError,
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
            (ErrorKind::NotFound, 550),
            (ErrorKind::PermissionDenied, 550),
            (ErrorKind::AlreadyExists, 550),
            (ErrorKind::NotADirectory, 550),
            (ErrorKind::IsADirectory, 550),
            (ErrorKind::DirectoryNotEmpty, 550),
            (ErrorKind::InvalidName, 553),
            (ErrorKind::InsufficientStorage, 452),
            (ErrorKind::ExceededStorage, 552),
            (ErrorKind::InvalidOffset, 554),
            (ErrorKind::Busy, 450),
            (ErrorKind::Transient, 450),
            (ErrorKind::Unsupported, 502),
            (ErrorKind::Local, 451),
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
            reply_for(ErrorKind::NotFound, "/a\x1bb").lines[0],
            "/a?b: No such file or directory"
        );
    }
}
