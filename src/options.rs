//! Configuration of a [`Log`](crate::Log): sizes, durability, retention,
//! limits, and the injected clock and listener.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::format::{BATCH_HEADER_BYTES, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use crate::listener::LogListener;

/// Smallest allowed segment: room for the header and a few small batches.
pub const SEGMENT_BYTES_MIN: u64 = 4096;
/// Largest allowed segment: positions inside a segment are stored as `u32`.
pub const SEGMENT_BYTES_MAX: u64 = u32::MAX as u64;
/// Smallest allowed sparse-index interval.
pub const INDEX_INTERVAL_BYTES_MIN: u32 = 64;
/// Default limit on one record's key plus value.
pub const RECORD_BYTES_MAX_DEFAULT: u32 = 1 << 20;
/// Default limit on sealed segments kept mapped and open at once.
pub const MAPPED_SEGMENTS_MAX_DEFAULT: usize = 1024;

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
    /// The background pool syncs at this interval, measured by the log's
    /// [`Clock`] (an append that finds a sync due by the clock wakes it);
    /// appends do not wait. The pool is shared by every log of the process:
    /// with many logs syncing on short intervals, a sync may start late
    /// while the pool's threads sync other logs.
    Interval(Duration),
}

/// Which closed segments retention deletes. Only whole closed segments are
/// ever deleted; the active segment is never deleted by retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Delete the oldest closed segments while the log's total size exceeds this.
    pub bytes_max: Option<u64>,
    /// Delete closed segments whose newest record timestamp is older than
    /// this, by the log's [`Clock`].
    pub age_max: Option<Duration>,
}

/// Options for [`Log::open`](crate::Log::open). Builder methods take and return
/// `Options` by value.
///
/// The defaults (`Options::default()`) are for production:
///
/// | option | default | what it means |
/// |---|---|---|
/// | [`sync`](Options::sync) | `SyncPolicy::Always` | an append returns once durable (group commit) |
/// | [`segment_bytes`](Options::segment_bytes) | 256 MiB | size of a full segment; its file is allocated (`fallocate`) in steps of 1 to 64 MiB ahead of the writer |
/// | [`index_interval_bytes`](Options::index_interval_bytes) | 4 KiB | one sparse index entry per this many bytes of batches |
/// | [`record_bytes_max`](Options::record_bytes_max) | 1 MiB | largest key + value |
/// | [`retention`](Options::retention) | none | nothing is deleted |
/// | [`prefault_bytes`](Options::prefault_bytes) | 8 MiB | pages are faulted in up to this far ahead of the writer, in the background, as fast writers need |
/// | [`mapped_segments_max`](Options::mapped_segments_max) | 1024 | sealed segments mapped at once |
/// | [`clock`](Options::clock), [`listener`](Options::listener) | system clock, none | |
///
/// Background work (pre-faulting, write-back behind the writer under
/// `SyncPolicy::Never`, interval syncs) runs on one pool of threads shared
/// by every log of the process: as many threads as CPUs, at least 2 and at
/// most 8, started as needed. A directory is opened by one handle at a time
/// (a lock file, across processes). Linux only.
///
/// ```
/// use replog::{Options, SyncPolicy};
/// let options = Options::default().segment_bytes(1 << 20).sync(SyncPolicy::Always);
/// assert_eq!(options.segment_bytes_value(), 1 << 20);
/// ```
#[derive(Clone)]
pub struct Options {
    pub(crate) segment_bytes: u64,
    pub(crate) index_interval_bytes: u32,
    /// Which on-disk choices the caller set (the others adopt what the log
    /// stored, see `storage::stored_options`).
    pub(crate) explicit: Explicit,
    /// `None`: the default, 1 MiB or what fits in a segment if less.
    pub(crate) record_bytes_max: Option<u32>,
    pub(crate) sync: SyncPolicy,
    pub(crate) retention: Retention,
    pub(crate) prefault_bytes: u64,
    pub(crate) mapped_segments_max: usize,
    /// `None`: the system clock, called directly (no dynamic dispatch on
    /// the append path).
    clock: Option<Arc<dyn Clock>>,
    /// `None`: no listener, and no call per event.
    listener: Option<Arc<dyn LogListener>>,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("segment_bytes", &self.segment_bytes)
            .field("index_interval_bytes", &self.index_interval_bytes)
            .field("record_bytes_max", &self.record_bytes_max_value())
            .field("sync", &self.sync)
            .field("retention", &self.retention)
            .field("prefault_bytes", &self.prefault_bytes)
            .field("mapped_segments_max", &self.mapped_segments_max)
            .field(
                "clock",
                &self.clock.as_ref().map_or(&SystemClock as &dyn Clock, |c| &**c),
            )
            .finish_non_exhaustive()
    }
}

/// Which of the options stored with a log the caller set explicitly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Explicit {
    pub segment_bytes: bool,
    pub index_interval_bytes: bool,
}

impl Default for Options {
    /// Production defaults: 256 MiB segments, an index entry every 4 KiB,
    /// records up to 1 MiB (or the most a segment holds, if less),
    /// `SyncPolicy::Always`, no retention, 8 MiB of pages pre-faulted ahead
    /// of the writer, at most 1024 sealed segments mapped at once, the
    /// system clock, no listener.
    fn default() -> Self {
        Options {
            segment_bytes: 256 << 20,
            index_interval_bytes: 4096,
            explicit: Explicit::default(),
            record_bytes_max: None,
            sync: SyncPolicy::Always,
            retention: Retention::default(),
            prefault_bytes: 8 << 20,
            mapped_segments_max: MAPPED_SEGMENTS_MAX_DEFAULT,
            clock: None,
            listener: None,
        }
    }
}

impl Options {
    /// Size of a full segment, in bytes (its file is allocated in steps
    /// ahead of the writer). Stored with the log: when unset, a reopened
    /// log keeps the size it was created with.
    /// Between [`SEGMENT_BYTES_MIN`] and [`SEGMENT_BYTES_MAX`].
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self.explicit.segment_bytes = true;
        self
    }

    /// Bytes of data between two entries of the sparse offset and time index.
    #[must_use]
    pub fn index_interval_bytes(mut self, bytes: u32) -> Self {
        self.index_interval_bytes = bytes;
        self.explicit.index_interval_bytes = true;
        self
    }

    /// Largest record (key plus value), in bytes. It must fit, with its
    /// headers, in one segment. Default: 1 MiB, or less if segments are small.
    #[must_use]
    pub fn record_bytes_max(mut self, bytes: u32) -> Self {
        self.record_bytes_max = Some(bytes);
        self
    }

    /// The record size limit in force (see [`Options::record_bytes_max`]).
    pub fn record_bytes_max_value(&self) -> u32 {
        let fits = self
            .batch_bytes_max()
            .saturating_sub((BATCH_HEADER_BYTES + RECORD_HEADER_BYTES) as u64);
        self.record_bytes_max
            .unwrap_or_else(|| fits.min(RECORD_BYTES_MAX_DEFAULT as u64) as u32)
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

    /// The most pages of the active segment pre-faulted ahead of the writer
    /// in the background, in bytes (0 turns pre-faulting off). The window
    /// follows the write rate: it starts at 128 KiB (or this, if smaller),
    /// doubles while the writer uses it up within 100 ms and halves while
    /// it takes over a second, so idle logs hold few faulted pages.
    #[must_use]
    pub fn prefault_bytes(mut self, bytes: u64) -> Self {
        self.prefault_bytes = bytes;
        self
    }

    /// At most this many sealed segments are kept mapped and open at once
    /// (least recently used first out); others are mapped again when read.
    /// Bounds the log's share of `vm.max_map_count` and of the open-file
    /// limit: the log holds at most `mapped_segments_max + 1` segment
    /// mappings and descriptors (the active segment is always mapped), plus
    /// those that readers still hold. At least 1. Default: 1024.
    #[must_use]
    pub fn mapped_segments_max(mut self, count: usize) -> Self {
        self.mapped_segments_max = count;
        self
    }

    /// The clock for timestamps, retention by age, interval syncs and the
    /// recovery-point cadence (default: [`SystemClock`]). A simulation on
    /// virtual time supplies its own; see [`Clock`].
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Hooks called after appends, syncs, truncations, rolls and segment
    /// deletions (default: none). See [`LogListener`] for which thread calls
    /// each and what it must not do.
    #[must_use]
    pub fn listener(mut self, listener: Arc<dyn LogListener>) -> Self {
        self.listener = Some(listener);
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

    /// The time by the configured clock, ms since the Unix epoch.
    #[inline]
    pub(crate) fn now_ms(&self) -> i64 {
        match &self.clock {
            Some(clock) => clock.now_ms(),
            None => SystemClock.now_ms(),
        }
    }

    /// Calls `event` on the listener, if there is one.
    #[inline]
    pub(crate) fn notify(&self, event: impl FnOnce(&dyn LogListener)) {
        if let Some(listener) = &self.listener {
            event(&**listener);
        }
    }

    /// The listener, if there is one.
    pub(crate) fn listener_handle(&self) -> Option<Arc<dyn LogListener>> {
        self.listener.clone()
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
        if self.record_bytes_max_value() == 0 {
            return fail("record_bytes_max must be at least 1");
        }
        let one_record_batch = (BATCH_HEADER_BYTES + RECORD_HEADER_BYTES) as u64 + self.record_bytes_max_value() as u64;
        if one_record_batch > self.batch_bytes_max() {
            return fail("record_bytes_max must leave a record of that size room in one segment");
        }
        if self.mapped_segments_max == 0 {
            return fail("mapped_segments_max must be at least 1");
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
        let options = Options::default().segment_bytes(4096).record_bytes_max(4096);
        assert!(matches!(options.validate(), Err(Error::InvalidOptions { .. })));
    }

    #[test]
    fn default_record_limit_shrinks_to_fit_small_segments() {
        let options = Options::default().segment_bytes(4096);
        options.validate().unwrap();
        assert_eq!(options.record_bytes_max_value(), 4096 - 64 - 48 - 16);
        assert_eq!(Options::default().record_bytes_max_value(), 1 << 20);
    }

    #[test]
    fn rejects_zero_interval() {
        let options = Options::default().sync(SyncPolicy::Interval(Duration::ZERO));
        assert!(options.validate().is_err());
    }
}
