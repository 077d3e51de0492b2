//! The one error type of the crate, and [`Damage`]: what a check of stored
//! or received bytes found wrong.

use std::io;
use std::path::PathBuf;

use crate::replica_id::ReplicaId;

/// Shorthand for `std::result::Result<T, replog::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in replog.
///
/// Variants carry structured fields rather than formatted strings, so callers
/// can match on them (for example, a follower that receives
/// [`Error::OffsetOutOfRange`] knows where the leader's log starts and ends,
/// and one that receives [`Error::Corrupt`] branches on its [`Damage`]).
/// No caller should need to match on the message text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The directory is already open, by this process or another one.
    #[error("log directory {dir} is already open (locked by this or another process)")]
    Locked {
        /// The directory that is locked.
        dir: PathBuf,
    },

    /// One record is larger than `Options::record_bytes_max`. Nothing was written.
    #[error("record of {size_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    RecordTooLarge {
        /// Key plus value length of the offending record, in bytes.
        size_bytes: u64,
        /// The configured limit, in bytes.
        limit_bytes: u64,
    },

    /// A batch does not fit in one segment. Nothing was written.
    #[error("batch of {size_bytes} encoded bytes does not fit in a segment of at most {limit_bytes} bytes of data")]
    BatchTooLarge {
        /// Encoded size of the batch, in bytes.
        size_bytes: u64,
        /// Largest batch a segment can hold, in bytes.
        limit_bytes: u64,
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
    ///
    /// For damage met while reading records, `resume_at` is the first offset
    /// past it that can be read again (the next intact batch the segment's
    /// index points to, or the next segment's first offset): reading or
    /// iterating from there goes on, so damage costs the records of the
    /// damaged batches, not the rest of the log.
    #[error("{}", describe_corrupt(path, *position, damage, *resume_at))]
    Corrupt {
        /// Path of the file that holds the bad bytes.
        path: PathBuf,
        /// Byte position within that file.
        position: u64,
        /// What check failed.
        damage: Damage,
        /// Where reading can resume past the damage, when it is known.
        resume_at: Option<u64>,
    },

    /// Encoded batches given to [`Log::append_encoded`](crate::Log::append_encoded)
    /// failed validation. Nothing was written.
    #[error("encoded batch at byte {position} of the input is invalid: {damage}")]
    InvalidBatch {
        /// Byte position of the offending batch within the input.
        position: u64,
        /// What check failed.
        damage: Damage,
    },

    /// A sync failed earlier; this handle refuses writes. Close and reopen the
    /// log: recovery will establish what is really on disk.
    #[error("an earlier sync failed; the log refuses writes until it is reopened")]
    Poisoned,

    /// The log was closed (`Log::close`, possibly through another clone of
    /// an `Arc` that shares it): it refuses every call.
    #[error("the log was closed")]
    Closed,

    /// The log was opened read-only; it refuses every change.
    #[error("the log was opened read-only")]
    ReadOnly,

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

    /// This replica does not lead the log (replication): it refuses
    /// appends. Nothing was written.
    #[error("not the leader{}", leader.map(|l| format!(" (the leader is {l})")).unwrap_or_default())]
    NotLeader {
        /// The leader this replica follows, when it knows one.
        leader: Option<ReplicaId>,
    },

    /// An append with `Acks::All` was refused because the confirmed in-sync
    /// set is smaller than `min_insync_replicas` (replication). Checked
    /// before anything is written: nothing was.
    #[error("{in_sync} replicas in sync, {required} required: append refused, nothing written")]
    NotEnoughReplicas {
        /// Size of the confirmed in-sync set.
        in_sync: usize,
        /// `ReplicaOptions::min_insync_replicas`.
        required: usize,
    },

    /// Records were appended on the leader but the high watermark did not
    /// cover them within the acknowledgement timeout (replication). They
    /// may still commit, or be truncated by a later leader: retry with the
    /// knowledge that they may be duplicated.
    #[error("records {first_offset}..{next_offset} were appended but not committed in time; they may still commit")]
    CommitTimeout {
        /// Offset of the first record appended.
        first_offset: u64,
        /// One past the last record appended.
        next_offset: u64,
    },

    /// The replica stopped leading while it waited for records it had
    /// appended to commit (replication). They may still commit (a new
    /// leader may hold them) or be truncated.
    #[error("leadership was lost before records {first_offset}..{next_offset} committed; they may still commit")]
    LeadershipLost {
        /// Offset of the first record appended.
        first_offset: u64,
        /// One past the last record appended.
        next_offset: u64,
    },

    /// A follower was told to cut its log below its high watermark
    /// (replication): committed records are never removed, so it refused
    /// and changed nothing. It means the leader's log lacks committed
    /// records (an unclean election) or the response was forged.
    #[error("refused to truncate to offset {offset}, below the high watermark {high_watermark}")]
    BelowHighWatermark {
        /// Where the cut was asked for.
        offset: u64,
        /// The replica's high watermark.
        high_watermark: u64,
    },

    /// A fetch response does not fit this follower's state (replication):
    /// it answers another epoch, another position, or a request this
    /// replica did not make. Nothing changed; fetch again.
    #[error("fetch response does not fit this replica's state: {reason}")]
    UnexpectedResponse {
        /// What does not fit.
        reason: &'static str,
    },

    /// Received bytes are not a valid replication message (replication).
    #[error("invalid replication message at byte {position}: {damage}")]
    InvalidMessage {
        /// Byte position of the problem within the message.
        position: u64,
        /// What check failed.
        damage: Damage,
    },

    /// The directory holds a replica with another id (replication).
    #[error("the directory holds {stored}, not {given}")]
    ReplicaMismatch {
        /// The id stored in the directory.
        stored: ReplicaId,
        /// The id given to `Replica::open`.
        given: ReplicaId,
    },

    /// A replica could not be reached by the transport (replication).
    #[error("{replica} is unreachable")]
    Unreachable {
        /// The replica that could not be reached.
        replica: ReplicaId,
    },

    /// An argument breaks a documented rule (for example an in-sync set
    /// that does not hold the leader). Nothing changed.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// Which rule it breaks.
        reason: &'static str,
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

/// What a check of stored (or received) bytes found wrong: the payload of
/// [`Error::Corrupt`] and [`Error::InvalidBatch`], and the error type of the
/// [`codec`](crate::codec) functions.
///
/// Replication branches on it: for example a torn tail shows up as
/// [`Damage::Truncated`] or [`Damage::ChecksumMismatch`], bytes from the
/// wrong place as [`Damage::UnexpectedOffset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Damage {
    /// The stored CRC-32 differs from the one computed over the bytes.
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    ChecksumMismatch {
        /// The checksum found in the bytes.
        stored: u32,
        /// The checksum of the bytes as they are.
        computed: u32,
    },
    /// A batch (or file) starts at another offset than the one expected there.
    #[error("expected offset {expected}, found {found}")]
    UnexpectedOffset {
        /// The offset that belongs at this place.
        expected: u64,
        /// The offset the bytes claim.
        found: u64,
    },
    /// The bytes end before the structure they should hold does.
    #[error("the data ends inside a structure (truncated)")]
    Truncated,
    /// A length or count field disagrees with the bytes it describes (too
    /// small for its record count, records that do not fill the batch, a
    /// file larger than any the log writes, offsets that overflow `u64`).
    #[error("a length or count field disagrees with the data")]
    BadLength,
    /// The magic number is not the one of the structure expected here
    /// (not a replog file, or not a batch header at this position).
    #[error("bad magic number: not the structure expected here")]
    BadMagic,
    /// The structure was written by a format version this build does not
    /// read (see `docs/FORMAT.md`, "Version history").
    #[error("format version {version} is not supported by this build")]
    UnknownVersion {
        /// The version found.
        version: u32,
    },
    /// The timestamps of a batch's records disagree with its header.
    #[error("record timestamps disagree with the batch header")]
    BadTimestamp,
    /// A batch's leader epoch is below the one before it.
    #[error("leader epoch {found} follows the higher epoch {previous}")]
    EpochRegression {
        /// Epoch of the batch before.
        previous: u64,
        /// Epoch of this batch.
        found: u64,
    },
    /// A segment file belongs to another log (its log id differs).
    #[error("belongs to another log (log id {found:#018x}, expected {expected:#018x})")]
    ForeignLog {
        /// The log id of this log.
        expected: u64,
        /// The log id in the file.
        found: u64,
    },
    /// Records the log's metadata says exist are missing from its files.
    #[error("records from offset {offset} on are missing")]
    MissingRecords {
        /// The first offset that should be there and is not.
        offset: u64,
    },
    /// A position or offset in a metadata file (checkpoint, epoch history)
    /// points outside the data it describes.
    #[error("metadata points outside the data it describes")]
    OutOfBounds,
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
    pub(crate) fn corrupt(path: impl Into<PathBuf>, position: u64, damage: Damage) -> Error {
        Error::Corrupt {
            path: path.into(),
            position,
            damage,
            resume_at: None,
        }
    }

    /// For [`Error::Corrupt`]: where reading can resume past the damage,
    /// when it is known (see the variant).
    pub fn resume_at(&self) -> Option<u64> {
        match self {
            Error::Corrupt { resume_at, .. } => *resume_at,
            _ => None,
        }
    }

    /// A `Corrupt` error that says reading resumes at `offset`.
    pub(crate) fn resuming_at(self, offset: u64) -> Error {
        match self {
            Error::Corrupt {
                path, position, damage, ..
            } => Error::Corrupt {
                path,
                position,
                damage,
                resume_at: Some(offset),
            },
            other => other,
        }
    }

    /// The damage found, for [`Error::Corrupt`], [`Error::InvalidBatch`] and
    /// [`Error::InvalidMessage`].
    pub fn damage(&self) -> Option<Damage> {
        match self {
            Error::Corrupt { damage, .. }
            | Error::InvalidBatch { damage, .. }
            | Error::InvalidMessage { damage, .. } => Some(*damage),
            _ => None,
        }
    }
}

/// The message of [`Error::Corrupt`]: the file by its role, what is wrong,
/// and what to do about it.
fn describe_corrupt(path: &std::path::Path, position: u64, damage: &Damage, resume_at: Option<u64>) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let (role, action) = match name {
        "checkpoint" => (
            "checkpoint",
            "delete it to have the next open check every segment instead",
        ),
        "epochs" => (
            "epoch history",
            "delete it to have the next open rebuild it from the segments",
        ),
        "replica" => (
            "replica state",
            "restore it from a backup, or rebuild this replica from its leader",
        ),
        _ if name.ends_with(".index") || name.ends_with(".timeindex") => {
            ("index file", "delete it to have it rebuilt from its segment")
        }
        _ if name.ends_with(".log") => ("segment", ""),
        _ => ("file", ""),
    };
    let mut text = format!("corrupt data in {role} {} at byte {position}: {damage}", path.display());
    if let Some(offset) = resume_at {
        text.push_str(&format!("; records from offset {offset} on read again"));
    }
    if !action.is_empty() {
        text.push_str(&format!(" ({action})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_names_the_file_by_its_role_and_the_way_forward() {
        let message = |name: &str, resume| {
            Error::Corrupt {
                path: PathBuf::from("/logs/a").join(name),
                position: 16,
                damage: Damage::BadMagic,
                resume_at: resume,
            }
            .to_string()
        };
        assert!(message("checkpoint", None).starts_with("corrupt data in checkpoint /logs/a/checkpoint at byte 16"));
        assert!(message("checkpoint", None).contains("delete it"));
        assert!(message("epochs", None).contains("epoch history"));
        assert!(message("00000000000000000007.index", None).contains("index file"));
        assert!(message("00000000000000000007.timeindex", None).contains("rebuilt"));
        let segment = message("00000000000000000007.log", Some(42));
        assert!(segment.starts_with("corrupt data in segment"), "{segment}");
        assert!(segment.contains("from offset 42 on read again"), "{segment}");
        assert!(message("replica", None).contains("replica state"));
    }
}
