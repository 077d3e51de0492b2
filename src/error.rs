//! The one error type of the crate.

use std::io;
use std::path::PathBuf;

/// Shorthand for `std::result::Result<T, replog::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in replog.
///
/// Variants carry structured fields rather than formatted strings, so callers
/// can match on them (for example, a follower that receives
/// [`Error::OffsetOutOfRange`] knows where the leader's log starts and ends).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The directory is already open, by this process or another one.
    #[error("log directory {dir} is already open (locked by this or another process)")]
    Locked {
        /// The directory that is locked.
        dir: PathBuf,
    },

    /// One record is larger than `Options::max_record_bytes`. Nothing was written.
    #[error("record of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// Key plus value length of the offending record, in bytes.
        size: u64,
        /// The configured limit, in bytes.
        max: u64,
    },

    /// A batch does not fit in one segment. Nothing was written.
    #[error("batch of {size} encoded bytes does not fit in a segment of at most {max} bytes of data")]
    BatchTooLarge {
        /// Encoded size of the batch, in bytes.
        size: u64,
        /// Largest batch a segment can hold, in bytes.
        max: u64,
    },

    /// A batch with no records was given. Nothing was written.
    #[error("a batch must hold at least one record")]
    EmptyBatch,

    /// An offset outside the readable range `[start, end)` (or outside the
    /// range an operation accepts) was given.
    #[error("offset {offset} is out of range: the log holds offsets {start}..{end}")]
    OffsetOutOfRange {
        /// The offset that was asked for.
        offset: u64,
        /// First readable offset (`Log::start_offset`).
        start: u64,
        /// One past the last offset (`Log::next_offset`).
        end: u64,
    },

    /// Stored bytes failed validation. They are never returned as data.
    #[error("corrupt data in segment {segment} at byte {position}: {reason}")]
    Corrupt {
        /// Path of the file that holds the bad bytes.
        segment: PathBuf,
        /// Byte position within that file.
        position: u64,
        /// What check failed.
        reason: &'static str,
    },

    /// A sync failed earlier; this handle refuses writes. Close and reopen the
    /// log: recovery will establish what is really on disk.
    #[error("an earlier sync failed; the log refuses writes until it is reopened")]
    Poisoned,

    /// The options given to `Log::open` are inconsistent.
    #[error("invalid options: {reason}")]
    InvalidOptions {
        /// Which rule the options break.
        reason: &'static str,
    },

    /// The leader epoch given is lower than the one already in the log.
    #[error("leader epoch {given} is lower than the current epoch {current}")]
    StaleEpoch {
        /// The epoch that was given.
        given: u64,
        /// The epoch the log is at.
        current: u64,
    },

    /// An operating-system call failed.
    #[error("{op} failed on {path}: {source}")]
    Io {
        /// The operation that failed (`"fallocate"`, `"msync"`, ...).
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl Error {
    /// Builds an `Io` error; used with `map_err(|e| Error::io("op", path, e))`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds a `Corrupt` error.
    pub(crate) fn corrupt(segment: impl Into<PathBuf>, position: u64, reason: &'static str) -> Error {
        Error::Corrupt {
            segment: segment.into(),
            position,
            reason,
        }
    }
}
