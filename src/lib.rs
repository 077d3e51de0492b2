//! replog: a segmented, memory-mapped, crash-safe append-only log.
//!
//! The storage core of an always-on, replicated timeline store: records
//! (a value, an optional key, a millisecond timestamp) are appended to a
//! log in one directory and read back by offset, by timestamp, or in order.
//!
//! ```
//! use replog::{Log, NewRecord, Options, SyncPolicy};
//! # fn main() -> replog::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let log = Log::open(dir.path(), Options::default().sync(SyncPolicy::Always))?;
//! let offset = log.append_record(NewRecord::new(b"hello").key(b"alice").timestamp_ms(1_000))?;
//! let record = log.read(offset)?;
//! assert_eq!(record.key(), Some(&b"alice"[..]));
//! assert_eq!(log.offset_for_timestamp(500)?, Some(offset));
//! # Ok(()) }
//! ```
//!
//! # Defaults and platform
//!
//! `Options::default()` syncs every append (`SyncPolicy::Always`, with group
//! commit), uses 256 MiB segment files (allocated in steps of 1 to 64 MiB
//! ahead of the writer, so a log of ten records takes about a megabyte of
//! disk), and pre-faults pages ahead of the writer in the background; see
//! [`Options`] for every default. Background work (pre-faulting,
//! write-back, interval syncs) of every open log runs on one pool per
//! process, of as many threads as CPUs, between 2 and 8: a thousand open
//! logs cost no more threads than one. One handle
//! opens a directory at a time, across processes. Linux only (`fallocate`,
//! `madvise`, `fcntl` locks); the minimum Rust version is 1.89.
//!
//! # Guarantees
//!
//! - **Acknowledged means durable.** With [`SyncPolicy::Always`], a record
//!   whose append returned survives a crash of the process or the machine
//!   (given a storage device that honours flushes). `Log::sync` gives the
//!   same for everything appended before it under any policy.
//! - **Batches are atomic.** After any crash, a batch is wholly present or
//!   wholly absent; offsets stay contiguous.
//! - **Nothing wrong is ever returned.** Every batch carries a CRC-32 over
//!   its offset, epoch and records, checked before any of its records is
//!   returned from data not written by this process. A torn tail (only the
//!   last segment can have one) is cut at recovery (see [`RecoveryReport`]);
//!   damage anywhere else is reported as [`Error::Corrupt`] when read, never
//!   skipped, cut or dropped, and the healthy records after it stay. A
//!   damaged or missing checkpoint costs a scan, never data.
//! - **Readers never block the writer** and never see a partial batch.
//!   They see a batch as soon as it is written, before it is durable: under
//!   [`SyncPolicy::Always`] a crash can remove a record a reader saw whose
//!   append had not returned yet (never one whose append returned).
//!
//! Records are read by offset ([`Log::read`]), in order ([`Log::iter`]: an
//! owned [`Record`] per record), or a whole stored batch at a time
//! ([`Log::batches`]: records borrowed from each [`Batch`], the fastest
//! scan).
//! - **A failed sync poisons the handle**: writes fail with
//!   [`Error::Poisoned`] until the log is reopened.
//!
//! # For replication, tools and simulation
//!
//! - [`Log::append_encoded`] writes a leader's batches byte for byte, after
//!   validating each; [`Log::end_offset_for_epoch`] answers from the epoch
//!   history; [`Log::reset`] empties a log and continues it at an offset;
//!   [`Log::durable_offset`] says how far a crash loses nothing.
//! - [`Options::clock`] injects the time, [`Options::listener`] hooks every
//!   change ([`LogListener`]), [`Log::open_read_only`] inspects a directory
//!   without changing it, and [`Options::mapped_segments_max`] bounds the
//!   mappings and descriptors a long log holds.
//! - Errors are one [`Error`] enum; [`Error::Corrupt`] carries a [`Damage`]
//!   to branch on. The `test-util` cargo feature adds `Log::simulate_crash`
//!   and `Log::poison_for_testing` for crash tests.
//!
//! # Layout of the code
//!
//! `format` (the byte layout, pure; exported as [`codec`]) is at the bottom;
//! `storage` (segments, mappings, indexes, checkpoint, epoch history,
//! recovery, group commit, lock) builds on it; `read` ([`Iter`],
//! [`Batches`]) and `log` (the [`Log`] handle) build on `storage`. Nothing
//! below imports anything above it.
//!
//! The byte layout is in `docs/FORMAT.md`; the soundness argument for the
//! memory mapping is in the `storage::mmap` module (the only one with
//! `unsafe`).

#![warn(missing_docs)]
#![deny(unsafe_code)]

mod clock;
mod error;
mod format;
mod listener;
mod log;
mod notifier;
mod options;
mod read;
mod record;
mod replica_id;
pub mod replication;
mod storage;

pub use bytes::Bytes;
pub use clock::{Clock, SystemClock};
pub use error::{Damage, Error, Result};
pub use format::NewRecord;
pub use listener::{LogListener, NoListener};
pub use log::{Log, Tail, TailStop};
pub use options::{
    INDEX_INTERVAL_BYTES_MIN, MAPPED_SEGMENTS_MAX_DEFAULT, Options, RECORD_BYTES_MAX_DEFAULT, Retention,
    SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, SyncPolicy,
};
pub use read::{Batch, BatchRecords, Batches, EncodedRun, Iter, RecordRef, RevBatches, RevIter};
pub use record::Record;
pub use storage::recovery::RecoveryReport;

/// Encoding and decoding of the on-disk batch format, for tools, fuzzing and
/// replication. The log itself encodes straight into its mapping. Every
/// decoding error is a [`Damage`].
pub mod codec {
    pub use crate::format::{
        BATCH_HEADER_BYTES, BatchHeader, ByteSink, FORMAT_VERSION, RECORD_HEADER_BYTES, RecordFields,
        SEGMENT_HEADER_BYTES, SegmentHeader, batch_checksum, decode_record, decode_segment_header, encode_batch,
        encode_batch_to_vec, encode_segment_header, validate_batch,
    };
}
