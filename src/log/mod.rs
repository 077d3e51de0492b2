//! [`Log`]: the handle through which everything is appended and read.
//!
//! This file holds the handle, opening and closing, and the accessors; each
//! kind of change has its own file: `append` (and rolling), `durability`
//! (syncs and the recovery-point cadence), `truncate` (and reset),
//! `retention`, `epoch`, and `tail` (waiting for new records).

mod append;
mod durability;
mod encoded;
mod epoch;
mod prefault;
mod retention;
mod rev;
mod seal;
mod tail;
mod truncate;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{MappedMutexGuard, Mutex, MutexGuard};

pub use self::tail::{Tail, TailStop};
use crate::error::{Error, Result};
use crate::notifier::Notifier;
use crate::options::{Options, SyncPolicy};
use crate::read::{Batches, Iter};
use crate::record::Record;
use crate::storage::background::Prefaulter;
use crate::storage::checkpoint::Checkpoint;
use crate::storage::durability::{GroupCommit, LogPosition};
use crate::storage::epochs::{EpochHistory, StoredEpochs};
use crate::storage::lock::{DirLock, LockMode};
use crate::storage::mapping::MapCache;
use crate::storage::pool::TaskHandle;
use crate::storage::recovery::{self, Access, RecoveryReport};
use crate::storage::segment_set::{SegmentList, SegmentSet, find_segment};
use crate::storage::segment_writer::{SegmentConfig, SegmentWriter};
use crate::storage::stored_options;
use durability::IntervalSync;
use prefault::PrefaultWindow;

/// A segmented, memory-mapped, append-only log of records in one directory.
///
/// `Log` is `Send + Sync`: share it (for example in an `Arc`) between
/// threads. Appends are serialized internally; reads never take the
/// writer's lock, never block it, and only ever see whole batches.
///
/// ```
/// # fn main() -> replog::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let log = replog::Log::open(dir.path(), replog::Options::default())?;
/// let first = log.append(b"hello")?;
/// log.append_batch([&b"a"[..], b"b", b"c"])?;
/// assert_eq!(log.read(first)?.value(), &b"hello"[..]);
/// assert_eq!(log.iter(0).count(), 4);
/// log.close()?;
/// # Ok(()) }
/// ```
pub struct Log {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    dir: PathBuf,
    /// Identity of this log, written into every segment header.
    log_id: u64,
    options: Options,
    /// `options.record_bytes_max_value()`, computed once.
    record_bytes_max: u64,
    /// `options.batch_bytes_max()`, computed once.
    batch_bytes_max: u64,
    /// Held for as long as the log is open; released by `close`.
    lock: Mutex<Option<DirLock>>,
    /// Set by `close`: every later call returns `Error::Closed`.
    closed: AtomicBool,
    /// `None` when the log was opened read-only.
    writer: Mutex<Option<Writer>>,
    segments: SegmentSet,
    cache: Arc<MapCache>,
    next_offset: AtomicU64,
    start_offset: AtomicU64,
    /// Epoch stamped on new batches; changed only under the writer lock.
    leader_epoch: AtomicU64,
    /// Changed only under the writer lock; read by `end_offset_for_epoch`.
    epochs: Mutex<EpochHistory>,
    group: GroupCommit,
    /// The recovery point last written to the checkpoint. Held by whoever
    /// writes the checkpoint, so writes are ordered; truncation holds it
    /// throughout, so no recovery point beyond a cut is ever written.
    recovery_point: Mutex<LogPosition>,
    /// When `recovery_point` was last written, by the log's clock (ms).
    recovery_point_written_ms: AtomicI64,
    /// When the next interval sync is due, by the log's clock (ms);
    /// `i64::MAX` once an appender has woken the interval sync for it.
    interval_sync_due_ms: AtomicI64,
    /// Wakes readers waiting for new records (`wait_for`, `tail`).
    tailers: Notifier,
    prefaulter: Prefaulter,
    /// The interval sync's task in the pool, under `SyncPolicy::Interval`.
    interval_sync: OnceLock<TaskHandle>,
    /// The seal of a full segment in flight (see `seal`).
    sealer: seal::Sealer,
    report: RecoveryReport,
}

/// State only the (single) appender touches, under `Shared::writer`.
struct Writer {
    active: SegmentWriter,
    prefault: PrefaultWindow,
    /// Reset generation of the segments (see `Log::reset`).
    generation: u64,
    /// The latest epoch in the epoch history, so an append checks whether
    /// it opens a new epoch without taking that lock.
    history_epoch: Option<u64>,
}

impl Log {
    /// Opens the log in `dir`, creating the directory and an empty log if
    /// needed, or recovering what is there.
    ///
    /// Locks the directory for as long as the log is open. After a clean
    /// close, opening reads no data; after a crash it checks the data past
    /// the last recovery point and cuts a torn tail of the last segment (see
    /// [`Log::recovery_report`]). Damage elsewhere is left in place and
    /// reported when read; a damaged or missing checkpoint makes it check
    /// every segment.
    ///
    /// Cost: after a clean close, one directory listing and a 64-byte
    /// header read per segment, no data; after a crash, a checksum pass
    /// over the data past the recovery point (at most about one segment
    /// under `SyncPolicy::Never` without syncs, one second of appends
    /// otherwise). Sealed segments are mapped later, when first read.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> replog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let log = replog::Log::open(dir.path(), replog::Options::default())?;
    /// assert!(matches!(
    ///     replog::Log::open(dir.path(), replog::Options::default()),
    ///     Err(replog::Error::Locked { .. })
    /// ));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] if the directory is open already (in this process or
    /// another), [`Error::InvalidOptions`], [`Error::Corrupt`] for a segment
    /// header that fails its checks, a segment of another log, or a last
    /// segment that lacks records the checkpoint vouched for as durable
    /// (delete the checkpoint to accept that loss), [`Error::Io`] (a full
    /// disk, or a failure to start the log's threads).
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Log> {
        let dir = dir.as_ref();
        options.validate()?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        Log::open_with(dir, options, Access::ReadWrite)
    }

    /// Opens the log in `dir` without changing anything on disk: no
    /// truncation, no checkpoint, no index or epoch file written, no lock
    /// file created. The log is served as recovery would leave it, and
    /// [`Log::recovery_report`] says what recovery would do
    /// ([`RecoveryReport::read_only`] is set). Every change
    /// (`append*`, `sync`, `truncate`, `reset`, `delete_before`,
    /// `enforce_retention`, `set_leader_epoch`) returns
    /// [`Error::ReadOnly`]. For inspection tools.
    ///
    /// Any number of read-only handles may be open at once, in this process
    /// or others, but not while a writer holds the directory.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] while a writer has the directory open;
    /// [`Error::Io`] (kind `NotFound`) if the directory holds no log; and as
    /// [`Log::open`].
    pub fn open_read_only(dir: impl AsRef<Path>, options: Options) -> Result<Log> {
        options.validate()?;
        Log::open_with(dir.as_ref(), options, Access::ReadOnly)
    }

    fn open_with(dir: &Path, options: Options, access: Access) -> Result<Log> {
        let mode = match access {
            Access::ReadWrite => LockMode::Exclusive,
            Access::ReadOnly => LockMode::Shared,
        };
        let lock = DirLock::acquire(dir, mode)?;
        let reconciled = stored_options::reconcile(dir, options)?;
        let options = reconciled.options;
        // Read before recovery, which must not start on a newer format.
        let epochs_file = StoredEpochs::read(dir)?;
        let cache = MapCache::new(options.mapped_segments_max);
        let recovered = recovery::recover(dir, &options, access, &cache)?;
        if reconciled.store && access == Access::ReadWrite {
            stored_options::store(dir, &options)?;
        }
        let mut report = recovered.report;
        report.options_changed = reconciled.changed;
        let segments = recovered.segments;
        let start_offset = segments[0].base_offset();
        let next_offset = segments.last().expect("at least one segment").next_offset();
        let (epochs, rebuilt) = epoch::load_history(dir, &epochs_file, recovered.log_id, &segments, access)?;
        report.epochs_rebuilt = rebuilt;
        // Spare segment files for the rolls that seal in the background
        // (the others sync the new file on the append path anyway).
        let spare_bytes = (options.sync != SyncPolicy::Always).then_some(options.segment_bytes);
        let prefaulter = Prefaulter::start(
            options.prefault_bytes > 0 && recovered.writer.is_some(),
            dir,
            spare_bytes,
            options.sync == SyncPolicy::Always,
        )?;
        let writer = recovered.writer.map(|active| Writer {
            active,
            prefault: PrefaultWindow::new(options.prefault_bytes, options.sync),
            generation: recovered.generation,
            history_epoch: epochs.latest_epoch(),
        });
        let sync_policy = options.sync;
        let now_ms = options.now_ms();
        let group = GroupCommit::new(recovered.durable, options.listener_handle());
        let read_only = writer.is_none();
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            log_id: recovered.log_id,
            record_bytes_max: options.record_bytes_max_value() as u64,
            batch_bytes_max: options.batch_bytes_max(),
            options,
            lock: Mutex::new(Some(lock)),
            closed: AtomicBool::new(false),
            writer: Mutex::new(writer),
            segments: SegmentSet::new(segments),
            cache,
            next_offset: AtomicU64::new(next_offset),
            start_offset: AtomicU64::new(start_offset),
            leader_epoch: AtomicU64::new(recovered.leader_epoch),
            epochs: Mutex::new(epochs),
            group,
            recovery_point: Mutex::new(recovered.durable),
            recovery_point_written_ms: AtomicI64::new(now_ms),
            interval_sync_due_ms: AtomicI64::new(i64::MAX),
            tailers: Notifier::default(),
            prefaulter,
            interval_sync: OnceLock::new(),
            sealer: seal::Sealer::default(),
            report,
        });
        if !read_only && sync_policy != SyncPolicy::Always {
            shared.start_sealer()?;
        }
        if let SyncPolicy::Interval(period) = sync_policy
            && !read_only
        {
            let task = IntervalSync::start(&shared, period)?;
            let _ = shared.interval_sync.set(task);
        }
        let log = Log { shared };
        if let Some(writer) = log.shared.writer.lock().as_mut() {
            log.shared.restart_prefault(writer);
        }
        Ok(log)
    }

    /// Reads the record at `offset`. Zero-copy: key and value share the mapping.
    ///
    /// Cost: a binary search over the segments and the segment's sparse
    /// index, then a walk over at most one index interval of batches
    /// (4 KiB by default) and the records of one batch.
    ///
    /// # Errors
    ///
    /// [`Error::OffsetOutOfRange`] outside `start_offset()..next_offset()`,
    /// [`Error::Corrupt`] if the stored batch fails its checks.
    pub fn read(&self, offset: u64) -> Result<Record> {
        self.shared.check_open()?;
        let end = self.shared.next_offset.load(Ordering::Acquire);
        let start = self.start_offset();
        if offset >= end || offset < start {
            // The range this decision used, so the error never contradicts itself.
            return Err(Error::OffsetOutOfRange { offset, start, end });
        }
        // Not found past this point means a concurrent truncation or deletion
        // removed it; both move the bounds first, so reloading them is consistent.
        let out_of_range = || self.out_of_range(offset);
        let segments = self.shared.segments.snapshot();
        let segment = find_segment(&segments, offset).ok_or_else(out_of_range)?;
        segment.read(offset)?.ok_or_else(out_of_range)
    }

    /// Iterates over the records from `from` up to the end of the log as it
    /// is now. Records appended later are not included; a truncation or
    /// retention that happens meanwhile does not disturb the iteration
    /// (but see [`Options::mapped_segments_max`]: a sealed segment the cache
    /// unmapped, deleted meanwhile, can no longer be read).
    ///
    /// `from == next_offset()` gives an empty iteration; an offset outside
    /// `start_offset()..=next_offset()` yields one `Err(OffsetOutOfRange)`.
    /// To read around damage, start a new iteration past the damaged batch
    /// (the offset after the failing batch, from [`Log::batches`] or by
    /// trying offsets): damage is local to the batches it hits.
    pub fn iter(&self, from: u64) -> Iter {
        match self.read_snapshot(from) {
            Ok((segments, end)) => Iter::new(segments, from, end),
            Err(error) => Iter::failed(error),
        }
    }

    /// Iterates over whole batches, from the one holding `from` up to the
    /// end of the log as it is now; the first batch may start before
    /// `from`. The fastest way to scan: [`Batch::records`](crate::Batch::records)
    /// borrows each record, with no allocation or reference count per
    /// record, and [`Batch::as_bytes`](crate::Batch::as_bytes) gives the
    /// stored bytes for [`Log::append_encoded`] on a replica.
    ///
    /// Same snapshot semantics and range rules as [`Log::iter`].
    pub fn batches(&self, from: u64) -> Batches {
        match self.read_snapshot(from) {
            Ok((segments, end)) => Batches::new(segments, from, end),
            Err(error) => Batches::failed(error),
        }
    }

    /// The segments to read from `from` and the end of the log in them.
    fn read_snapshot(&self, from: u64) -> Result<(SegmentList, u64)> {
        self.shared.check_open()?;
        // The end comes from the snapshot itself, so a truncation or roll
        // between the two loads cannot leave offsets the snapshot lacks.
        let segments = self.shared.segments.snapshot();
        let end = segments.last().expect("a log always has a segment").next_offset();
        let start = segments[0].base_offset().max(self.start_offset());
        if from < start || from > end {
            return Err(Error::OffsetOutOfRange {
                offset: from,
                start,
                end,
            });
        }
        Ok((segments, end))
    }

    /// One past the offset of the last record: the offset the next append gets.
    pub fn next_offset(&self) -> u64 {
        self.shared.next_offset.load(Ordering::Acquire)
    }

    /// The first readable offset (it rises when retention deletes segments).
    pub fn start_offset(&self) -> u64 {
        self.shared.start_offset.load(Ordering::Acquire)
    }

    /// Every offset below this survives a crash of the process or the
    /// machine now (given a device that honours flushes). It rises as syncs
    /// complete (every append under [`SyncPolicy::Always`], [`Log::sync`],
    /// interval syncs, rolls) and falls only with `truncate` or `reset`.
    /// Replication acknowledges by it. Lock-free.
    pub fn durable_offset(&self) -> u64 {
        self.shared.group.durable_offset().min(self.next_offset())
    }

    /// The offset of the first record whose timestamp is at or after
    /// `timestamp_ms`, or `None` if no record is that recent. With
    /// timestamps that go backwards, "first" means lowest offset.
    ///
    /// Cost: visits the segments in order, skipping each whose newest
    /// timestamp is below `timestamp_ms` without reading it (O(segments)),
    /// then one index lookup and a short walk in the segment that holds it.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] if a batch it has to look at fails its checks.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>> {
        for segment in self.shared.segments.snapshot().iter() {
            if let Some(offset) = segment.offset_for_timestamp(timestamp_ms)? {
                return Ok(Some(offset));
            }
        }
        Ok(None)
    }

    /// The log's identity: a random number chosen when the log was created
    /// and written into every segment header, so segment files of another
    /// log are refused at open.
    pub fn log_id(&self) -> u64 {
        self.shared.log_id
    }

    /// What opening the log found and did.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.shared.report
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Sealed segments mapped now (the active segment is not counted); at
    /// most [`Options::mapped_segments_max`].
    pub fn mapped_segments(&self) -> usize {
        self.shared.cache.mapped_count()
    }

    /// Syncs everything, trims the active segment, writes its index and a
    /// clean-shutdown checkpoint (so the next open reads no data), and
    /// releases the directory lock. Dropping the log does the same, ignoring
    /// errors. A read-only log only releases its lock.
    ///
    /// It takes `&self`, so a log shared through an `Arc` can be closed:
    /// every later call on it (from any clone) returns [`Error::Closed`],
    /// an append in progress finishes first, and records and batches
    /// already handed out stay readable (their bytes stay mapped).
    ///
    /// Cost: a sync of the active segment's unsynced pages and three small
    /// file writes.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> replog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let log = std::sync::Arc::new(replog::Log::open(dir.path(), replog::Options::default())?);
    /// let shared = std::sync::Arc::clone(&log);
    /// log.close()?;
    /// assert!(matches!(shared.append(b"late"), Err(replog::Error::Closed)));
    /// let _reopened = replog::Log::open(dir.path(), replog::Options::default())?; // the lock was released
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if it was closed already; [`Error::Poisoned`] if a
    /// sync failed earlier (no clean checkpoint is written; the next open
    /// recovers), [`Error::Io`].
    pub fn close(&self) -> Result<()> {
        self.close_inner()
    }

    /// Poisons the handle exactly as a failed sync does (for tests of what
    /// follows: refused writes, no clean-shutdown checkpoint). The detection
    /// of a failed sync itself is tested in `storage::durability`.
    #[cfg(feature = "test-util")]
    pub fn poison_for_testing(&self) {
        self.shared.group.poison();
    }

    /// Drops the handle the way a killed process would: no final sync, no
    /// trim, no clean-shutdown checkpoint, so the next open runs crash
    /// recovery. (The page cache survives, as it does when a process dies.)
    /// For tests and benchmarks of recovery.
    #[cfg(feature = "test-util")]
    pub fn simulate_crash(self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.stop_background();
        self.shared.abandon_seal();
        self.shared.lock.lock().take();
    }

    /// Whether [`Log::close`] was called (on this handle or a clone of the
    /// `Arc` that shares it).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Waits for a running interval sync to end; later runs see the log
    /// closed and stop.
    fn stop_background(&self) {
        if let Some(task) = self.shared.interval_sync.get() {
            task.cancel();
        }
    }

    fn close_inner(&self) -> Result<()> {
        if self.shared.closed.swap(true, Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        self.stop_background();
        // Waits for an append in progress; later ones see the flag.
        let mut writer = self.shared.writer.lock();
        let result = match writer.as_ref() {
            None => Ok(()),
            Some(writer) => {
                self.shared.prefaulter.release();
                self.shared.prefaulter.drop_spare();
                self.shared
                    .wait_sealed()
                    .and_then(|()| self.shared.close_locked(writer))
            }
        };
        if result.is_err() {
            self.shared.group.poison();
        }
        // Release the mappings now, not when the last clone of a shared
        // handle drops (records handed out keep their own).
        *writer = None;
        drop(writer);
        for segment in self.shared.segments.snapshot().iter() {
            segment.slot().release();
        }
        self.shared.lock.lock().take();
        self.shared.tailers.notify();
        result
    }

    fn out_of_range(&self, offset: u64) -> Error {
        Error::OffsetOutOfRange {
            offset,
            start: self.start_offset(),
            end: self.next_offset(),
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        if !self.is_closed() {
            let _ = self.close_inner();
        }
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.shared.dir)
            .field("start_offset", &self.start_offset())
            .field("next_offset", &self.next_offset())
            .finish()
    }
}

impl Shared {
    /// The writer, locked; [`Error::Closed`] after `close`,
    /// [`Error::ReadOnly`] for a read-only log.
    fn lock_writer(&self) -> Result<MappedMutexGuard<'_, Writer>> {
        let writer = self.writer.lock();
        self.check_open()?;
        MutexGuard::try_map(writer, Option::as_mut).map_err(|_| Error::ReadOnly)
    }

    /// [`Error::Closed`] once `close` was called.
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// What new segments of this log are created with.
    fn segment_config(&self, generation: u64) -> SegmentConfig<'_> {
        SegmentConfig {
            dir: &self.dir,
            log_id: self.log_id,
            capacity_bytes: self.options.segment_bytes,
            index_interval_bytes: self.options.index_interval_bytes,
            cache: &self.cache,
            generation,
        }
    }

    fn close_locked(&self, writer: &Writer) -> Result<()> {
        let active = writer.active.segment();
        let _written = self.recovery_point.lock();
        writer.active.sync_and_trim()?;
        active.write_index_files()?;
        Checkpoint {
            clean: true,
            recovery_point: LogPosition {
                offset: active.next_offset(),
                segment_base: active.base_offset(),
                position: writer.active.position(),
            },
            leader_epoch: self.leader_epoch.load(Ordering::Acquire),
            log_id: self.log_id,
        }
        .write(&self.dir)
    }
}
