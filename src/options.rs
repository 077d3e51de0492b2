//! Configuration of a [`Log`](crate::Log): sizes, durability, retention.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{BATCH_HEADER_BYTES, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};

/// Smallest allowed segment: room for the header and a few small batches.
pub const SEGMENT_BYTES_MIN: u64 = 4096;
/// Largest allowed segment: positions inside a segment are stored as `u32`.
pub const SEGMENT_BYTES_MAX: u64 = u32::MAX as u64;
/// Smallest allowed sparse-index interval.
pub const INDEX_INTERVAL_BYTES_MIN: u32 = 64;
/// Default limit on one record's key plus value.
pub const DEFAULT_MAX_RECORD_BYTES: u32 = 1 << 20;

/// When appended data is made durable (flushed to the storage device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Never sync on the append path: the operating system writes pages back
    /// when it chooses. `Log::sync`, segment rolls and `Log::close` still sync.
    /// A crash of the machine (not just the process) can lose recent appends.
    Never,
    /// Every append is durable when it returns. Concurrent appenders share
    /// one sync (group commit).
    Always,
    /// A background thread syncs at this interval; appends do not wait.
    Interval(Duration),
}

/// Which closed segments retention deletes. Only whole closed segments are
/// ever deleted; the active segment is never deleted by retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Delete the oldest closed segments while the log's total size exceeds this.
    pub max_bytes: Option<u64>,
    /// Delete closed segments whose newest record timestamp is older than this.
    pub max_age: Option<Duration>,
}

/// Options for [`Log::open`](crate::Log::open). Builder methods take and return
/// `Options` by value:
///
/// ```
/// use replog::{Options, SyncPolicy};
/// let options = Options::default().segment_bytes(1 << 20).sync(SyncPolicy::Always);
/// assert_eq!(options.segment_bytes_value(), 1 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) segment_bytes: u64,
    pub(crate) index_interval_bytes: u32,
    /// `None`: the default, 1 MiB or what fits in a segment if less.
    pub(crate) max_record_bytes: Option<u32>,
    pub(crate) sync: SyncPolicy,
    pub(crate) retention: Retention,
    pub(crate) prefault_bytes: u64,
}

impl Default for Options {
    /// Production defaults: 256 MiB segments, an index entry every 4 KiB,
    /// records up to 1 MiB (or the most a segment holds, if less), `SyncPolicy::Always`, no retention, 8 MiB of
    /// pages pre-faulted ahead of the writer.
    fn default() -> Self {
        Options {
            segment_bytes: 256 << 20,
            index_interval_bytes: 4096,
            max_record_bytes: None,
            sync: SyncPolicy::Always,
            retention: Retention::default(),
            prefault_bytes: 8 << 20,
        }
    }
}

impl Options {
    /// Size of each segment file, in bytes (preallocated up front).
    /// Between [`SEGMENT_BYTES_MIN`] and [`SEGMENT_BYTES_MAX`].
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Bytes of data between two entries of the sparse offset and time index.
    #[must_use]
    pub fn index_interval_bytes(mut self, bytes: u32) -> Self {
        self.index_interval_bytes = bytes;
        self
    }

    /// Largest record (key plus value), in bytes. It must fit, with its
    /// headers, in one segment. Default: 1 MiB, or less if segments are small.
    #[must_use]
    pub fn max_record_bytes(mut self, bytes: u32) -> Self {
        self.max_record_bytes = Some(bytes);
        self
    }

    /// The record size limit in force (see [`Options::max_record_bytes`]).
    pub fn max_record_bytes_value(&self) -> u32 {
        let fits = self
            .batch_bytes_max()
            .saturating_sub((BATCH_HEADER_BYTES + RECORD_HEADER_BYTES) as u64);
        self.max_record_bytes
            .unwrap_or_else(|| fits.min(DEFAULT_MAX_RECORD_BYTES as u64) as u32)
    }

    /// When appends become durable. See [`SyncPolicy`].
    #[must_use]
    pub fn sync(mut self, policy: SyncPolicy) -> Self {
        self.sync = policy;
        self
    }

    /// Which closed segments to delete. Applied when a segment is rolled and
    /// by [`Log::enforce_retention`](crate::Log::enforce_retention).
    #[must_use]
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// How far ahead of the writer a background thread pre-faults pages of
    /// the active segment (0 turns pre-faulting off).
    #[must_use]
    pub fn prefault_bytes(mut self, bytes: u64) -> Self {
        self.prefault_bytes = bytes;
        self
    }

    /// The configured segment size, in bytes.
    pub fn segment_bytes_value(&self) -> u64 {
        self.segment_bytes
    }

    /// The configured sync policy.
    pub fn sync_value(&self) -> SyncPolicy {
        self.sync
    }

    /// Largest encoded batch a segment can hold.
    pub(crate) fn batch_bytes_max(&self) -> u64 {
        self.segment_bytes - SEGMENT_HEADER_BYTES as u64
    }

    /// Checks the rules the rest of the code relies on.
    pub(crate) fn validate(&self) -> Result<()> {
        let fail = |reason| Err(Error::InvalidOptions { reason });
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return fail("segment_bytes must be between 4096 and u32::MAX");
        }
        if self.index_interval_bytes < INDEX_INTERVAL_BYTES_MIN {
            return fail("index_interval_bytes must be at least 64");
        }
        if self.max_record_bytes_value() == 0 {
            return fail("max_record_bytes must be at least 1");
        }
        let one_record_batch = (BATCH_HEADER_BYTES + RECORD_HEADER_BYTES) as u64 + self.max_record_bytes_value() as u64;
        if one_record_batch > self.batch_bytes_max() {
            return fail("max_record_bytes must leave a record of that size room in one segment");
        }
        if let SyncPolicy::Interval(d) = self.sync
            && d.is_zero()
        {
            return fail("SyncPolicy::Interval needs a non-zero duration");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Options::default().validate().unwrap();
    }

    #[test]
    fn rejects_segments_out_of_bounds() {
        assert!(Options::default().segment_bytes(100).validate().is_err());
        assert!(Options::default().segment_bytes(1 << 33).validate().is_err());
    }

    #[test]
    fn rejects_records_that_cannot_fit_a_segment() {
        let options = Options::default().segment_bytes(4096).max_record_bytes(4096);
        assert!(matches!(options.validate(), Err(Error::InvalidOptions { .. })));
    }

    #[test]
    fn default_record_limit_shrinks_to_fit_small_segments() {
        let options = Options::default().segment_bytes(4096);
        options.validate().unwrap();
        assert_eq!(options.max_record_bytes_value(), 4096 - 64 - 48 - 16);
        assert_eq!(Options::default().max_record_bytes_value(), 1 << 20);
    }

    #[test]
    fn rejects_zero_interval() {
        let options = Options::default().sync(SyncPolicy::Interval(Duration::ZERO));
        assert!(options.validate().is_err());
    }
}
