//! [`Log`]: the handle through which everything is appended and read.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::batches::Batches;
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::format::{self, BATCH_HEADER_BYTES, NewRecord, SEGMENT_HEADER_BYTES};
use crate::fsutil::{now_ms, sync_dir};
use crate::iter::Iter;
use crate::options::{Options, SyncPolicy};
use crate::prefault::Prefaulter;
use crate::record::Record;
use crate::recovery::{self, RecoveryReport, write_open_checkpoint};
use crate::segment::{Segment, SegmentWriter};
use crate::sync::{GroupCommit, SyncedTo};

/// How far behind the write position write-back (under `SyncPolicy::Never`) stays.
const WRITE_BACK_LAG_BYTES: u64 = 1 << 20;

/// Least time between two recovery-point writes from the sync path.
const RECOVERY_POINT_INTERVAL_MS: i64 = 1000;

/// Name of the lock file inside a log directory.
const LOCK_FILE: &str = "LOCK";

/// The segments readers see: replaced as a whole (copy on write) on roll,
/// retention and truncation, so readers never wait for the writer.
pub(crate) type SegmentList = Arc<Vec<Arc<Segment>>>;

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
    interval_sync: Option<JoinHandle<()>>,
    closed: bool,
}

struct Shared {
    dir: PathBuf,
    /// Identity of this log, written into every segment header.
    log_id: u64,
    options: Options,
    /// Holds the directory's exclusive lock for as long as the log is open.
    _lock: File,
    writer: Mutex<Writer>,
    segments: RwLock<SegmentList>,
    next_offset: AtomicU64,
    start_offset: AtomicU64,
    /// Epoch stamped on new batches; changed only under the writer lock.
    leader_epoch: AtomicU64,
    group: GroupCommit,
    /// The recovery point last written to the checkpoint. Held by whoever
    /// writes the checkpoint, so writes are ordered; truncation holds it
    /// throughout, so no recovery point beyond a cut is ever written.
    recovery_point: Mutex<SyncedTo>,
    /// When `recovery_point` was last written, ms since the Unix epoch.
    recovery_point_written_ms: std::sync::atomic::AtomicI64,
    tail: Tail,
    prefaulter: Prefaulter,
    report: RecoveryReport,
    stop: (Mutex<bool>, Condvar),
}

/// State only the (single) appender touches, under `Shared::writer`.
struct Writer {
    active: SegmentWriter,
    prefault_requested_to: u64,
}

/// Wakes tailers waiting in [`Log::wait_for`].
#[derive(Default)]
struct Tail {
    lock: Mutex<()>,
    appended: Condvar,
    waiters: AtomicUsize,
}

impl Log {
    /// Opens the log in `dir`, creating the directory and an empty log if
    /// needed, or recovering what is there.
    ///
    /// Takes an exclusive lock on the directory for as long as the log is
    /// open. After a clean close, opening reads no data; after a crash it
    /// checks the data past the last recovery point and cuts a torn tail
    /// (see [`Log::recovery_report`]).
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] if the directory is open already (in this process or
    /// another), [`Error::InvalidOptions`], [`Error::Corrupt`] for segment or
    /// checkpoint files that fail their checks where truncation would lose
    /// vouched-for data, [`Error::Io`].
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Log> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        let lock = lock_dir(&dir)?;
        let recovered = recovery::recover(&dir, &options)?;
        let mut segments = recovered.sealed;
        segments.push(Arc::clone(&recovered.active));
        let start_offset = segments[0].base_offset();
        let next_offset = recovered.active.next_offset();
        let prefaulter = Prefaulter::start(options.prefault_bytes > 0);
        prefaulter.retarget(
            Some(Arc::clone(recovered.active.mapping())),
            recovered.writer.position(),
        );
        let sync_policy = options.sync;
        let shared = Arc::new(Shared {
            dir,
            log_id: recovered.log_id,
            options,
            _lock: lock,
            writer: Mutex::new(Writer {
                active: recovered.writer,
                prefault_requested_to: 0,
            }),
            segments: RwLock::new(Arc::new(segments)),
            next_offset: AtomicU64::new(next_offset),
            start_offset: AtomicU64::new(start_offset),
            leader_epoch: AtomicU64::new(recovered.leader_epoch),
            group: GroupCommit::new(recovered.synced),
            recovery_point: Mutex::new(recovered.synced),
            recovery_point_written_ms: std::sync::atomic::AtomicI64::new(now_ms()),
            tail: Tail::default(),
            prefaulter,
            report: recovered.report,
            stop: (Mutex::new(false), Condvar::new()),
        });
        let interval_sync = match sync_policy {
            SyncPolicy::Interval(period) => Some(spawn_interval_sync(Arc::clone(&shared), period)),
            _ => None,
        };
        let log = Log {
            shared,
            interval_sync,
            closed: false,
        };
        log.shared.prefault_ahead(&mut log.shared.writer.lock());
        Ok(log)
    }

    /// Appends one record (no key, timestamped now) and returns its offset.
    ///
    /// # Errors
    ///
    /// [`Error::RecordTooLarge`], [`Error::Poisoned`], [`Error::Io`] (for
    /// example a full disk when a new segment is preallocated). On error
    /// nothing was appended.
    pub fn append(&self, value: impl AsRef<[u8]>) -> Result<u64> {
        self.append_records(&[NewRecord::new(value.as_ref())])
    }

    /// Appends one keyed and/or timestamped record and returns its offset.
    ///
    /// # Errors
    ///
    /// As [`Log::append`].
    pub fn append_record(&self, record: NewRecord<'_>) -> Result<u64> {
        self.append_records(&[record])
    }

    /// Appends `values` as one batch and returns the offset of the first.
    /// Atomic: after any crash, all of the batch is in the log or none of it.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyBatch`], [`Error::RecordTooLarge`],
    /// [`Error::BatchTooLarge`] (the batch must fit in one segment), and as
    /// [`Log::append`]. On error nothing was appended.
    pub fn append_batch<I, V>(&self, values: I) -> Result<u64>
    where
        I: IntoIterator<Item = V>,
        V: AsRef<[u8]>,
    {
        let values: Vec<V> = values.into_iter().collect();
        let records: Vec<NewRecord<'_>> = values.iter().map(|v| NewRecord::new(v.as_ref())).collect();
        self.append_records(&records)
    }

    /// Appends `records` as one atomic batch and returns the first offset.
    ///
    /// # Errors
    ///
    /// As [`Log::append_batch`].
    pub fn append_records(&self, records: &[NewRecord<'_>]) -> Result<u64> {
        let batch_bytes = self.check_batch(records)?;
        let now = now_ms();
        let (header, truncations) = {
            let mut writer = self.shared.writer.lock();
            self.shared.group.check()?;
            if writer.active.remaining() < batch_bytes {
                self.shared.roll(&mut writer)?;
            }
            let epoch = self.shared.leader_epoch.load(Ordering::Relaxed);
            let header = writer.active.append(records, epoch, now);
            self.shared.next_offset.store(header.next_offset(), Ordering::SeqCst);
            self.shared.prefault_ahead(&mut writer);
            // Read under the writer lock, which truncation holds.
            (header, self.shared.group.truncations())
        };
        self.shared.tail.notify();
        if self.shared.options.sync == SyncPolicy::Always {
            self.shared.wait_durable(header.next_offset(), truncations)?;
            self.shared.advance_recovery_point(now)?;
        }
        Ok(header.base_offset)
    }

    /// Checks limits before anything is written; returns the batch's size.
    fn check_batch(&self, records: &[NewRecord<'_>]) -> Result<u64> {
        if records.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let max = self.shared.options.max_record_bytes_value() as u64;
        let mut total = BATCH_HEADER_BYTES as u64;
        for record in records {
            let size = record.payload_len();
            if size > max {
                return Err(Error::RecordTooLarge { size, max });
            }
            total += record.encoded_len();
        }
        let batch_max = self.shared.options.batch_bytes_max();
        if total > batch_max || records.len() > u32::MAX as usize {
            return Err(Error::BatchTooLarge {
                size: total,
                max: batch_max,
            });
        }
        Ok(total)
    }

    /// Reads the record at `offset`. Zero-copy: key and value share the mapping.
    ///
    /// # Errors
    ///
    /// [`Error::OffsetOutOfRange`] outside `start_offset()..next_offset()`,
    /// [`Error::Corrupt`] if the stored batch fails its checks.
    pub fn read(&self, offset: u64) -> Result<Record> {
        let end = self.shared.next_offset.load(Ordering::Acquire);
        let start = self.start_offset();
        if offset >= end || offset < start {
            // The range this decision used, so the error never contradicts itself.
            return Err(Error::OffsetOutOfRange { offset, start, end });
        }
        // Not found past this point means a concurrent truncation or deletion
        // removed it; both move the bounds first, so reloading them is consistent.
        let out_of_range = || self.out_of_range(offset);
        let segments = self.shared.snapshot();
        let segment = find_segment(&segments, offset).ok_or_else(out_of_range)?;
        segment.read(offset)?.ok_or_else(out_of_range)
    }

    /// Iterates over the records from `from` up to the end of the log as it
    /// is now. Records appended later are not included; a truncation or
    /// retention that happens meanwhile does not disturb the iteration.
    ///
    /// `from == next_offset()` gives an empty iteration; an offset outside
    /// `start_offset()..=next_offset()` yields one `Err(OffsetOutOfRange)`.
    pub fn iter(&self, from: u64) -> Iter {
        match self.read_snapshot(from) {
            Ok((segments, end)) => Iter::new(segments, from, end),
            Err(error) => Iter::failed(error),
        }
    }

    /// Iterates over whole batches, from the one holding `from` up to the
    /// end of the log as it is now; the first batch may start before
    /// `from`. The fastest way to scan: [`Batch::records`](crate::Batch::records) borrows each
    /// record, with no allocation or reference count per record.
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
        // The end comes from the snapshot itself, so a truncation or roll
        // between the two loads cannot leave offsets the snapshot lacks.
        let segments = self.shared.snapshot();
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

    /// Makes everything appended before the call durable.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] after an earlier failed sync, [`Error::Io`] if this
    /// one fails (which poisons the log).
    pub fn sync(&self) -> Result<()> {
        self.shared.group.check()?;
        self.shared.wait_durable_for_end()?;
        self.shared.advance_recovery_point(now_ms())
    }

    /// Removes every record at or after `offset`; `next_offset()` becomes
    /// `offset`. Used by replication to drop a divergent suffix. Durable when
    /// it returns. Readers that already hold records keep them, and iterators
    /// created before keep seeing the old records.
    ///
    /// Cost: if `offset` falls inside a batch, the records of that batch
    /// before `offset` are copied into a new batch.
    ///
    /// # Errors
    ///
    /// [`Error::OffsetOutOfRange`] unless `start_offset() <= offset <=
    /// next_offset()`; [`Error::Poisoned`]; [`Error::Io`] and
    /// [`Error::Corrupt`], after which the log is poisoned and must be
    /// reopened (recovery then shows the old or the truncated log).
    pub fn truncate(&self, offset: u64) -> Result<()> {
        let mut writer = self.shared.writer.lock();
        self.shared.group.check()?;
        let end = self.next_offset();
        if offset < self.start_offset() || offset > end {
            return Err(self.out_of_range(offset));
        }
        if offset == end {
            return Ok(());
        }
        let result = self.shared.truncate_locked(&mut writer, offset);
        if result.is_err() {
            self.shared.group.poison();
        }
        result
    }

    /// Deletes whole segments whose records all lie below `offset` (never
    /// the active segment) and returns the new `start_offset()`. Records at
    /// or above `offset` are never deleted; some below it may remain.
    ///
    /// # Errors
    ///
    /// [`Error::OffsetOutOfRange`] if `offset > next_offset()`; [`Error::Io`].
    pub fn delete_before(&self, offset: u64) -> Result<u64> {
        let _writer = self.shared.writer.lock();
        if offset > self.next_offset() {
            return Err(self.out_of_range(offset));
        }
        let segments = self.shared.snapshot();
        let whole = segments
            .windows(2)
            .take_while(|pair| pair[1].base_offset() <= offset)
            .count();
        self.shared.remove_oldest(whole)?;
        Ok(self.start_offset())
    }

    /// Applies the retention policy of [`Options::retention`] now (it is also
    /// applied whenever a segment is rolled). Returns the new `start_offset()`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a file cannot be removed.
    pub fn enforce_retention(&self) -> Result<u64> {
        let _writer = self.shared.writer.lock();
        self.shared.enforce_retention_locked()?;
        Ok(self.start_offset())
    }

    /// The offset of the first record whose timestamp is at or after
    /// `timestamp_ms`, or `None` if no record is that recent. With
    /// timestamps that go backwards, "first" means lowest offset.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] if a batch it has to look at fails its checks.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>> {
        for segment in self.shared.snapshot().iter() {
            if let Some(offset) = segment.offset_for_timestamp(timestamp_ms)? {
                return Ok(Some(offset));
            }
        }
        Ok(None)
    }

    /// Waits until the log holds `offset` (`next_offset() > offset`) or
    /// `timeout` passes; returns whether it does. For tailing readers.
    pub fn wait_for(&self, offset: u64, timeout: Duration) -> bool {
        self.shared.wait_for(offset, timeout)
    }

    /// The leader epoch stamped on new batches.
    pub fn leader_epoch(&self) -> u64 {
        self.shared.leader_epoch.load(Ordering::Acquire)
    }

    /// Sets the leader epoch stamped on batches appended from now on.
    ///
    /// # Errors
    ///
    /// [`Error::StaleEpoch`] if `epoch` is below the current one.
    pub fn set_leader_epoch(&self, epoch: u64) -> Result<()> {
        let _writer = self.shared.writer.lock();
        let current = self.leader_epoch();
        if epoch < current {
            return Err(Error::StaleEpoch { given: epoch, current });
        }
        self.shared.leader_epoch.store(epoch, Ordering::Release);
        Ok(())
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

    /// Syncs everything, trims the active segment, writes its index and a
    /// clean-shutdown checkpoint (so the next open reads no data), and
    /// releases the directory lock. Dropping the log does the same, ignoring
    /// errors.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] if a sync failed earlier (no clean checkpoint is
    /// written; the next open recovers), [`Error::Io`].
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    /// Poisons the handle exactly as a failed sync does (for tests of what
    /// follows: refused writes, no clean-shutdown checkpoint). The detection
    /// of a failed sync itself is tested in `sync::tests`.
    #[doc(hidden)]
    pub fn poison_for_testing(&self) {
        self.shared.group.poison();
    }

    /// Drops the handle the way a killed process would: no final sync, no
    /// trim, no clean-shutdown checkpoint, so the next open runs crash
    /// recovery. (The page cache survives, as it does when a process dies.)
    /// For tests and benchmarks of recovery.
    #[doc(hidden)]
    pub fn simulate_crash(mut self) {
        self.closed = true;
        self.stop_background();
    }

    fn stop_background(&mut self) {
        *self.shared.stop.0.lock() = true;
        self.shared.stop.1.notify_all();
        if let Some(thread) = self.interval_sync.take() {
            let _ = thread.join();
        }
    }

    fn close_inner(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        self.stop_background();
        let writer = self.shared.writer.lock();
        self.shared.prefaulter.retarget(None, 0);
        self.shared.group.check()?;
        let result = self.shared.close_locked(&writer);
        if result.is_err() {
            self.shared.group.poison();
        }
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
        let _ = self.close_inner();
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

/// The segment that would hold `offset`: the last one based at or below it.
pub(crate) fn find_segment(segments: &[Arc<Segment>], offset: u64) -> Option<&Arc<Segment>> {
    let after = segments.partition_point(|s| s.base_offset() <= offset);
    after.checked_sub(1).map(|i| &segments[i])
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("open lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { dir: dir.to_path_buf() }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock directory", &path, e)),
    }
}

fn spawn_interval_sync(shared: Arc<Shared>, period: Duration) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("replog-sync".into())
        .spawn(move || {
            let (stop, wake) = &shared.stop;
            let mut stopped = stop.lock();
            while !*stopped {
                wake.wait_for(&mut stopped, period);
                if *stopped || shared.group.is_poisoned() {
                    continue;
                }
                drop(stopped);
                if shared.wait_durable_for_end().is_ok() {
                    let _ = shared.advance_recovery_point(now_ms());
                }
                stopped = stop.lock();
            }
        })
        .expect("spawning the sync thread")
}

impl Shared {
    fn snapshot(&self) -> SegmentList {
        Arc::clone(&self.segments.read())
    }

    fn replace_segments(&self, segments: Vec<Arc<Segment>>) {
        *self.segments.write() = Arc::new(segments);
    }

    /// Waits (sharing syncs with other callers) until offsets below
    /// `target` are durable, or until a truncation after the
    /// `truncations`-th cut them off (see `GroupCommit::wait_durable`).
    fn wait_durable(&self, target: u64, truncations: u64) -> Result<()> {
        self.group
            .wait_durable(target, truncations, |from| self.flush_from(from))
    }

    /// Waits until everything appended so far is durable.
    fn wait_durable_for_end(&self) -> Result<()> {
        // The count first: a truncation between the two loads then ends the
        // wait (its end is lower than `target`, which it may have cut).
        let truncations = self.group.truncations();
        self.wait_durable(self.next_offset.load(Ordering::SeqCst), truncations)
    }

    /// Flushes the segments from `from` on. Sealed segments were synced
    /// when sealed, so this makes every offset below the last one's tail
    /// durable. The result pairs a position with the offset found there, so
    /// it can serve as a recovery point.
    fn flush_from(&self, from: SyncedTo) -> Result<SyncedTo> {
        let mut synced = from;
        for segment in self.snapshot().iter().filter(|s| s.base_offset() >= from.segment_base) {
            let start = if segment.base_offset() == from.segment_base {
                from.position
            } else {
                0
            };
            let tail = segment.tail();
            segment.mapping().flush(start..tail.end_position)?;
            synced = SyncedTo {
                offset: tail.next_offset,
                segment_base: segment.base_offset(),
                position: tail.end_position,
            };
        }
        Ok(synced)
    }

    /// Persists the durable point as the recovery point, at most once per
    /// [`RECOVERY_POINT_INTERVAL_MS`], so a crash re-scans little and damage
    /// in data that was synced is reported rather than cut. Skips the write
    /// when another thread is writing the checkpoint.
    fn advance_recovery_point(&self, now_ms: i64) -> Result<()> {
        let last = self.recovery_point_written_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < RECOVERY_POINT_INTERVAL_MS {
            return Ok(());
        }
        let Some(mut written) = self.recovery_point.try_lock() else {
            return Ok(());
        };
        let synced = self.group.synced();
        if (synced.segment_base, synced.position) <= (written.segment_base, written.position) {
            return Ok(());
        }
        self.write_recovery_point(&mut written, synced)
            .inspect_err(|_| self.group.poison())
    }

    /// Writes `point` as the recovery point (the caller holds the lock).
    fn write_recovery_point(&self, written: &mut SyncedTo, point: SyncedTo) -> Result<()> {
        write_open_checkpoint(
            &self.dir,
            &point,
            self.leader_epoch.load(Ordering::Acquire),
            self.log_id,
        )?;
        *written = point;
        self.recovery_point_written_ms.store(now_ms(), Ordering::Relaxed);
        Ok(())
    }

    /// Keeps pages ahead of the write position pre-faulted and, under
    /// `SyncPolicy::Never`, pages behind it written back (see `prefault`).
    fn prefault_ahead(&self, writer: &mut Writer) {
        let ahead = self.options.prefault_bytes;
        let position = writer.active.position();
        if ahead > 0 && position + ahead / 2 >= writer.prefault_requested_to {
            writer.prefault_requested_to = position + ahead;
            // Write-back trails the writer: it write-protects the pages it
            // cleans, and the page being filled would then fault again.
            let write_back_to = (self.options.sync == SyncPolicy::Never)
                .then(|| position.saturating_sub(WRITE_BACK_LAG_BYTES) / 4096 * 4096);
            self.prefaulter.request(writer.prefault_requested_to, write_back_to);
        }
    }

    /// Seals the active segment and starts a new one at the next offset.
    /// The new file is created first, so a full disk changes nothing.
    fn roll(&self, writer: &mut Writer) -> Result<()> {
        let next = self.next_offset.load(Ordering::Acquire);
        let (segment, fresh) = Segment::create(
            &self.dir,
            self.log_id,
            next,
            self.options.segment_bytes,
            self.options.index_interval_bytes,
            &[],
        )?;
        self.prefaulter.retarget(None, 0);
        let old = std::mem::replace(&mut writer.active, fresh);
        let result = (|| {
            old.seal()?;
            let mut segments = self.snapshot().as_ref().clone();
            segments.push(Arc::clone(&segment));
            self.replace_segments(segments);
            let recovery_point = SyncedTo {
                offset: next,
                segment_base: next,
                position: SEGMENT_HEADER_BYTES as u64,
            };
            self.write_recovery_point(&mut self.recovery_point.lock(), recovery_point)
        })();
        if let Err(e) = result {
            self.group.poison();
            return Err(e);
        }
        self.prefaulter
            .retarget(Some(Arc::clone(segment.mapping())), writer.active.position());
        writer.prefault_requested_to = 0;
        self.prefault_ahead(writer);
        self.enforce_retention_locked()
    }

    /// Deletes the `count` oldest segments (never the last one), oldest
    /// first, so a crash midway leaves a contiguous log.
    fn remove_oldest(&self, count: usize) -> Result<()> {
        let segments = self.snapshot();
        let count = count.min(segments.len() - 1);
        if count == 0 {
            return Ok(());
        }
        // Raise the start first: a reader that passed the start check must
        // still find its segment in the list it takes afterwards.
        self.start_offset.store(segments[count].base_offset(), Ordering::SeqCst);
        self.replace_segments(segments[count..].to_vec());
        for segment in &segments[..count] {
            segment.remove_files()?;
        }
        sync_dir(&self.dir)
    }

    fn enforce_retention_locked(&self) -> Result<()> {
        let retention = self.options.retention;
        let segments = self.snapshot();
        let closed = segments.len() - 1;
        let mut count = 0;
        if let Some(max_bytes) = retention.max_bytes {
            let mut total: u64 = segments.iter().map(|s| s.end_position()).sum();
            while count < closed && total > max_bytes {
                total -= segments[count].end_position();
                count += 1;
            }
        }
        if let Some(max_age) = retention.max_age {
            let cutoff = now_ms().saturating_sub(max_age.as_millis().min(i64::MAX as u128) as i64);
            while count < closed && segments[count].max_timestamp_ms() < cutoff {
                count += 1;
            }
        }
        self.remove_oldest(count)
    }

    /// The body of [`Log::truncate`], for `start <= offset < next_offset`.
    /// On-disk steps are ordered so a crash at any point leaves the old log
    /// or a prefix of it at least `offset` long, or the truncated log.
    fn truncate_locked(&self, writer: &mut Writer, offset: u64) -> Result<()> {
        let segments = self.snapshot();
        let holder_index = segments.partition_point(|s| s.base_offset() <= offset) - 1;
        let holder = &segments[holder_index];
        let corrupt = || Error::corrupt(holder.path(), 0, "offset inside the log not found in its segment");
        let (position, header) = holder.locate(offset)?.ok_or_else(corrupt)?;
        let cut_base = header.base_offset;
        let kept = if cut_base < offset {
            reencode_prefix(holder, position, &header, offset)?
        } else {
            Vec::new()
        };
        self.prefaulter.retarget(None, 0);
        let mut written = self.recovery_point.lock();

        // 1. Make what is kept durable and move the recovery point below the cut.
        let keeps_holder = holder.base_offset() < cut_base;
        let recovery_point = if keeps_holder {
            holder.mapping().flush(0..position)?;
            SyncedTo {
                offset: cut_base,
                segment_base: holder.base_offset(),
                position,
            }
        } else if holder_index > 0 {
            let previous = &segments[holder_index - 1];
            SyncedTo {
                offset: cut_base,
                segment_base: previous.base_offset(),
                position: previous.end_position(),
            }
        } else {
            SyncedTo {
                offset: cut_base,
                segment_base: cut_base,
                position: SEGMENT_HEADER_BYTES as u64,
            }
        };
        self.write_recovery_point(&mut written, recovery_point)?;
        // 2. Delete later segments, newest first.
        for segment in segments[holder_index + 1..].iter().rev() {
            segment.remove_files()?;
        }
        sync_dir(&self.dir)?;
        // 3. Start a segment at the cut (replacing the holder if it starts
        //    there), holding the kept part of a split batch.
        let (fresh_segment, fresh) = Segment::create(
            &self.dir,
            self.log_id,
            cut_base,
            self.options.segment_bytes,
            self.options.index_interval_bytes,
            &kept,
        )?;
        let mut remaining: Vec<Arc<Segment>> = segments[..holder_index].to_vec();
        if keeps_holder {
            let cut = holder.cut(position, cut_base)?;
            cut.write_index_files()?;
            remaining.push(cut);
        }
        remaining.push(Arc::clone(&fresh_segment));
        debug_assert_eq!(fresh_segment.next_offset(), offset);
        writer.active = fresh;
        // Lower the end before the data goes (the mirror of an append, which
        // adds data before raising the end), so a reader that misses the cut
        // records finds the end already below them.
        self.next_offset.store(offset, Ordering::SeqCst);
        self.replace_segments(remaining);
        let synced = SyncedTo {
            offset,
            segment_base: cut_base,
            position: writer.active.position(),
        };
        self.group.reset(synced);
        self.write_recovery_point(&mut written, synced)?;
        self.prefaulter
            .retarget(Some(Arc::clone(fresh_segment.mapping())), writer.active.position());
        writer.prefault_requested_to = 0;
        self.prefault_ahead(writer);
        Ok(())
    }

    fn close_locked(&self, writer: &Writer) -> Result<()> {
        let active = writer.active.segment();
        let _written = self.recovery_point.lock();
        writer.active.seal()?;
        Checkpoint {
            clean: true,
            segment_base: active.base_offset(),
            position: writer.active.position(),
            next_offset: active.next_offset(),
            leader_epoch: self.leader_epoch.load(Ordering::Acquire),
            log_id: self.log_id,
        }
        .write(&self.dir)
    }

    fn wait_for(&self, offset: u64, timeout: Duration) -> bool {
        let holds = || self.next_offset.load(Ordering::SeqCst) > offset;
        if holds() {
            return true;
        }
        let deadline = Instant::now() + timeout;
        self.tail.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.tail.lock.lock();
        let result = loop {
            if holds() {
                break true;
            }
            if self.tail.appended.wait_until(&mut guard, deadline).timed_out() {
                break holds();
            }
        };
        drop(guard);
        self.tail.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

impl Tail {
    /// Wakes waiting tailers; free when nobody waits.
    fn notify(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock();
            self.appended.notify_all();
        }
    }
}

/// The records of the batch at `position` before `offset`, encoded as a
/// new batch with the same base offset, epoch, keys and timestamps.
fn reencode_prefix(
    segment: &Arc<Segment>,
    position: u64,
    header: &format::BatchHeader,
    offset: u64,
) -> Result<Vec<u8>> {
    let batch = segment.batch_bytes(position, header)?;
    let mut fields = Vec::new();
    let mut cursor = BATCH_HEADER_BYTES;
    for _ in header.base_offset..offset {
        let (record, next) =
            format::decode_record(&batch, cursor).map_err(|reason| Error::corrupt(segment.path(), position, reason))?;
        fields.push(record);
        cursor = next;
    }
    let records: Vec<NewRecord<'_>> = fields.iter().map(|f| f.to_new_record(&batch)).collect();
    Ok(format::encode_batch_to_vec(
        &records,
        header.base_offset,
        header.leader_epoch,
        0,
    ))
}
