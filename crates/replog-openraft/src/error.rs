//! The crate's error type, and its mapping to openraft's [`StorageError`].

use std::io;
use std::path::PathBuf;

use openraft::{AnyError, ErrorSubject, ErrorVerb, LogId, NodeId, StorageError, StorageIOError};

/// What can go wrong opening or using a [`LogStore`](crate::LogStore).
///
/// At openraft's boundary every error becomes a [`StorageError`] naming the
/// operation and the log id or vote concerned (see [`Error::into_storage`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The underlying replog [`Log`](replog::Log) failed.
    #[error("log: {0}")]
    Log(#[from] replog::Error),
    /// Reading or writing the metadata file failed.
    #[error("{op} {path}: {source}")]
    MetaIo {
        /// What was being done (`"write"`, `"fsync"`, `"rename"`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The metadata file exists but fails its checks (magic, version,
    /// length or checksum): the vote and log pointers in it cannot be
    /// trusted, so the store refuses to open rather than start from a
    /// default vote.
    #[error("metadata file {path} is damaged: {reason}")]
    MetaCorrupt {
        /// The metadata file.
        path: PathBuf,
        /// Which check failed.
        reason: String,
    },
    /// The metadata file is missing although the log holds entries (it was
    /// deleted, or the log was copied without it).
    #[error("metadata file {path} is missing but the log holds entries")]
    MetaMissing {
        /// Where the metadata file should be.
        path: PathBuf,
    },
    /// The metadata file belongs to another log (its recorded replog log id
    /// differs from the log's).
    #[error("metadata file {path} belongs to log {meta_log_id:#x}, not to log {log_id:#x}")]
    MetaForeign {
        /// The metadata file.
        path: PathBuf,
        /// The log id recorded in it.
        meta_log_id: u64,
        /// The id of the log found beside it.
        log_id: u64,
    },
    /// The log and the metadata disagree in a way no crash can produce
    /// (entries missing between the last purged id and the log's start).
    #[error("log and metadata disagree: {0}")]
    Inconsistent(String),
    /// An entry could not be encoded or decoded.
    #[error("entry at index {index}: {source}")]
    Codec {
        /// The Raft log index (= replog offset).
        index: u64,
        /// The codec's error.
        source: postcard::Error,
    },
    /// An append would leave a hole in the log, or overwrite purged entries.
    #[error("append at index {index} but the log's next index is {expected}")]
    NotContiguous {
        /// The index of the offending entry.
        index: u64,
        /// The index the log expected.
        expected: u64,
    },
    /// A sync failed earlier: writes are refused until the store is reopened.
    #[error("store poisoned by a failed sync: {0}")]
    Poisoned(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Converts to openraft's error, naming the `subject` (a log id, the
    /// vote, the logs) and the `verb` (read, write, delete) concerned. The
    /// operation's name and the value concerned go in the message.
    pub fn into_storage<NID: NodeId>(
        self,
        subject: ErrorSubject<NID>,
        verb: ErrorVerb,
        operation: impl std::fmt::Display,
    ) -> StorageError<NID> {
        let source = AnyError::new(&self).add_context(|| operation.to_string());
        StorageIOError::new(subject, verb, source).into()
    }
}

/// Shorthand for an error about one log entry.
pub(crate) fn log_error<NID: NodeId>(
    e: Error,
    log_id: LogId<NID>,
    verb: ErrorVerb,
    operation: &str,
) -> StorageError<NID> {
    let what = format!("{operation} {log_id}");
    e.into_storage(ErrorSubject::Log(log_id), verb, what)
}
