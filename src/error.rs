//! The crate's one error type.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Result alias used throughout strata-kv.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error strata-kv returns.
///
/// `Error` is `Clone` so that one failure (say, a failed `fdatasync` in group
/// commit) can be handed to every writer that shared it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error from the file system, with the path it concerned in its message.
    Io(Arc<io::Error>),
    /// Bytes read from disk failed a check: a checksum, a magic number, a length.
    Corruption {
        /// The file holding the damaged bytes (or a description when not a file).
        file: PathBuf,
        /// Byte offset in that file where the damage was found.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A caller passed something strata-kv does not accept: an oversize key, bad options.
    InvalidArgument {
        /// What was wrong with the argument.
        reason: String,
    },
    /// The database directory is locked by another open handle (this process or another).
    Locked {
        /// The lock file that could not be taken.
        path: PathBuf,
    },
    /// The database was closed; the handle can no longer be used.
    Closed,
    /// A limit configured by the user (such as a namespace's `max_keys`) would be exceeded.
    LimitExceeded {
        /// Which limit.
        reason: String,
    },
    /// A conditional operation required a key that does not exist.
    NotFound,
    /// An optimistic transaction lost a race: a key it read or wrote changed after it began.
    Conflict,
    /// The database was opened with [`Db::open_read_only`](crate::Db::open_read_only):
    /// writes, flushes, compactions and namespace changes are refused.
    ReadOnly,
}

impl Error {
    pub(crate) fn corruption(
        file: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corruption {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            reason: reason.into(),
        }
    }

    /// Wraps an I/O error, naming the path it concerned.
    pub(crate) fn io_at(err: io::Error, path: &std::path::Path) -> Error {
        Error::Io(Arc::new(io::Error::new(
            err.kind(),
            format!("{}: {err}", path.display()),
        )))
    }

    /// True if this error reports damaged on-disk bytes.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Corruption {
                file,
                offset,
                reason,
            } => write!(
                f,
                "corruption in {} at offset {offset}: {reason}",
                file.display()
            ),
            Error::InvalidArgument { reason } => write!(f, "invalid argument: {reason}"),
            Error::Locked { path } => write!(
                f,
                "database is locked by another handle: {}",
                path.display()
            ),
            Error::Closed => write!(f, "database is closed"),
            Error::LimitExceeded { reason } => write!(f, "limit exceeded: {reason}"),
            Error::NotFound => write!(f, "key not found"),
            Error::Conflict => write!(f, "transaction conflict"),
            Error::ReadOnly => write!(f, "database is open read-only"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(Arc::new(e))
    }
}
