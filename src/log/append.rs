//! Appending: encoded in place, or verbatim batches from a leader; rolling
//! to a new segment when the active one is full.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::seal::SealJob;
use super::{Log, Shared, Writer};
use crate::error::{Error, Result};
use crate::format::{self, BATCH_HEADER_BYTES, BatchHeader, NewRecord};
use crate::options::SyncPolicy;
use crate::storage::durability::LogPosition;
use crate::storage::segment::Segment;
use crate::storage::segment_writer::SegmentWriter;

impl Log {
    /// Appends one record (no key, timestamped by the log's clock) and
    /// returns its offset. Durable when it returns under
    /// [`SyncPolicy::Always`] (the default).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> replog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let log = replog::Log::open(dir.path(), replog::Options::default())?;
    /// assert_eq!(log.append(b"first post")?, 0);
    /// assert_eq!(log.append(b"second post")?, 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::RecordTooLarge`], [`Error::Poisoned`], [`Error::ReadOnly`],
    /// [`Error::Io`] (for example a full disk when the next step of the
    /// segment file or a new segment is allocated). On error nothing was
    /// appended.
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

    /// Appends `records` as one atomic batch, stamped with
    /// [`Log::leader_epoch`], and returns the first offset.
    ///
    /// # Examples
    ///
    /// ```
    /// use replog::NewRecord;
    /// # fn main() -> replog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let log = replog::Log::open(dir.path(), replog::Options::default())?;
    /// let base = log.append_records(&[
    ///     NewRecord::new(b"hello").key(b"alice").timestamp_ms(1_000),
    ///     NewRecord::new(b"world").key(b"bob").timestamp_ms(1_001),
    /// ])?;
    /// assert_eq!(log.read(base + 1)?.key(), Some(&b"bob"[..]));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Log::append_batch`].
    pub fn append_records(&self, records: &[NewRecord<'_>]) -> Result<u64> {
        let batch_bytes = self.check_batch(records)?;
        let now_ms = self.shared.options.now_ms();
        let (header, truncations) = {
            let mut writer = self.shared.lock_writer()?;
            self.shared.group.check()?;
            if writer.active.remaining() < batch_bytes {
                self.shared.roll(&mut writer)?;
            }
            writer.active.reserve(batch_bytes)?;
            let epoch = self.shared.leader_epoch.load(Ordering::Relaxed);
            let base_offset = writer.active.next_offset();
            self.shared.note_epoch(&mut writer, epoch, base_offset)?;
            let header = writer.active.append(records, epoch, now_ms);
            self.shared
                .publish_appended(&mut writer, header.base_offset, header.next_offset());
            // Read under the writer lock, which truncation holds.
            (header, self.shared.group.truncations())
        };
        self.shared.after_append(header.next_offset(), truncations, now_ms)?;
        Ok(header.base_offset)
    }

    /// Appends already-encoded batches byte for byte (for example from a
    /// leader: the bytes of [`Batch::as_bytes`](crate::Batch::as_bytes) of
    /// one or more consecutive batches) and returns the offset after the
    /// last. Replicas built this way hold byte-identical batches.
    ///
    /// Every batch is validated before anything is written: its checksum
    /// and structure, a base offset equal to `next_offset()` (then to the
    /// end of the batch before), a leader epoch not below the last batch's,
    /// record sizes within [`Options::record_bytes_max`](crate::Options::record_bytes_max),
    /// and that each batch fits in one segment. The batches' own epochs are
    /// kept (not restamped), enter the epoch history, and raise
    /// [`Log::leader_epoch`] to the highest among them. Batches may go to
    /// different segments, but each is atomic; after a crash a prefix of
    /// the batches is present.
    ///
    /// Cost: one checksum pass over `bytes` plus the copy.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> replog::Result<()> {
    /// # let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    /// let leader = replog::Log::open(a.path(), replog::Options::default())?;
    /// let follower = replog::Log::open(b.path(), replog::Options::default())?;
    /// leader.append_batch([&b"x"[..], b"y"])?;
    /// for batch in leader.batches(0) {
    ///     follower.append_encoded(batch?.as_bytes())?;
    /// }
    /// assert_eq!(follower.read(1)?.value(), &b"y"[..]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBatch`] with the [`Damage`](crate::Damage) found
    /// ([`Damage::UnexpectedOffset`](crate::Damage::UnexpectedOffset) for a batch that does not continue the
    /// log, [`Damage::EpochRegression`](crate::Damage::EpochRegression), [`Damage::ChecksumMismatch`](crate::Damage::ChecksumMismatch),
    /// [`Damage::Truncated`](crate::Damage::Truncated), ...); [`Error::RecordTooLarge`],
    /// [`Error::BatchTooLarge`], [`Error::EmptyBatch`] for empty input: all
    /// found before anything is written, so nothing was appended. And as
    /// [`Log::append`]: an I/O error while rolling to a new segment midway
    /// (a full disk) leaves the batches before that roll appended (see
    /// `next_offset()`), never part of a batch.
    pub fn append_encoded(&self, bytes: &[u8]) -> Result<u64> {
        if bytes.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let mut writer = self.shared.lock_writer()?;
        self.shared.group.check()?;
        let headers = self.check_encoded(bytes, writer.history_epoch.unwrap_or(0))?;
        let now_ms = self.shared.options.now_ms();
        let mut position = 0;
        for run in runs_fitting_segments(
            &headers,
            writer.active.remaining(),
            self.shared.options.batch_bytes_max(),
        ) {
            let run_bytes: u64 = run.iter().map(|h| h.batch_len as u64).sum();
            if writer.active.remaining() < run_bytes {
                self.shared.roll(&mut writer)?;
            }
            writer.active.reserve(run_bytes)?;
            for header in run {
                self.shared
                    .note_epoch(&mut writer, header.leader_epoch, header.base_offset)?;
            }
            let end = position + run_bytes as usize;
            writer.active.append_encoded(&bytes[position..end], run);
            position = end;
            let last = run.last().expect("runs are not empty");
            self.shared.raise_leader_epoch(last.leader_epoch);
            self.shared
                .publish_appended(&mut writer, run[0].base_offset, last.next_offset());
        }
        let truncations = self.shared.group.truncations();
        drop(writer);
        let next = headers.last().expect("input is not empty").next_offset();
        self.shared.after_append(next, truncations, now_ms)?;
        Ok(next)
    }

    /// Validates every batch of `bytes` (see [`Log::append_encoded`]);
    /// returns their headers.
    fn check_encoded(&self, bytes: &[u8], last_epoch: u64) -> Result<Vec<BatchHeader>> {
        let options = &self.shared.options;
        let record_max = options.record_bytes_max_value() as u64;
        let mut headers = Vec::new();
        for checked in format::checked_batches(bytes, Some(self.next_offset()), last_epoch) {
            let (position, header) = checked.map_err(|(position, damage)| Error::InvalidBatch {
                position: position as u64,
                damage,
            })?;
            if header.batch_len as u64 > options.batch_bytes_max() {
                return Err(Error::BatchTooLarge {
                    size_bytes: header.batch_len as u64,
                    limit_bytes: options.batch_bytes_max(),
                });
            }
            let batch = &bytes[position..position + header.batch_len as usize];
            for record in format::RecordDecoder::new(batch, BATCH_HEADER_BYTES) {
                let invalid = |damage| Error::InvalidBatch {
                    position: position as u64,
                    damage,
                };
                let size_bytes = record.map_err(invalid)?.to_new_record(batch).payload_bytes();
                if size_bytes > record_max {
                    return Err(Error::RecordTooLarge {
                        size_bytes,
                        limit_bytes: record_max,
                    });
                }
            }
            headers.push(header);
        }
        Ok(headers)
    }

    /// Checks limits before anything is written; returns the batch's size.
    fn check_batch(&self, records: &[NewRecord<'_>]) -> Result<u64> {
        if records.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let limit_bytes = self.shared.record_bytes_max;
        let mut total = BATCH_HEADER_BYTES as u64;
        for record in records {
            let size_bytes = record.payload_bytes();
            if size_bytes > limit_bytes {
                return Err(Error::RecordTooLarge {
                    size_bytes,
                    limit_bytes,
                });
            }
            total += record.encoded_bytes();
        }
        let batch_max = self.shared.batch_bytes_max;
        if total > batch_max || records.len() > u32::MAX as usize {
            return Err(Error::BatchTooLarge {
                size_bytes: total,
                limit_bytes: batch_max,
            });
        }
        Ok(total)
    }
}

/// Splits `headers` into runs that each go to one segment: the first run
/// fills the `remaining` bytes of the active segment, later ones a fresh
/// segment of `segment_bytes_max` each.
fn runs_fitting_segments(headers: &[BatchHeader], remaining: u64, segment_bytes_max: u64) -> Vec<&[BatchHeader]> {
    let mut runs = Vec::new();
    let (mut start, mut room) = (0, remaining);
    for (i, header) in headers.iter().enumerate() {
        let len = header.batch_len as u64;
        if len > room {
            if i > start {
                runs.push(&headers[start..i]);
            }
            start = i;
            room = segment_bytes_max;
        }
        room -= len.min(room);
    }
    runs.push(&headers[start..]);
    runs
}

impl Shared {
    /// Makes the records below `next_offset` visible to `next_offset()`
    /// readers and tailers, keeps pre-faulting ahead, and tells the listener.
    fn publish_appended(&self, writer: &mut Writer, base_offset: u64, next_offset: u64) {
        self.next_offset.store(next_offset, Ordering::SeqCst);
        self.prefault_ahead(writer);
        self.options.notify(|l| l.post_append(base_offset, next_offset));
    }

    /// After the writer lock is released: wakes tailers and, under
    /// `SyncPolicy::Always`, waits until the append is durable.
    #[inline(always)]
    fn after_append(&self, next_offset: u64, truncations: u64, now_ms: i64) -> Result<()> {
        self.tailers.notify();
        if self.options.sync == SyncPolicy::Never {
            return Ok(());
        }
        self.sync_after_append(next_offset, truncations, now_ms)
    }

    fn sync_after_append(&self, next_offset: u64, truncations: u64, now_ms: i64) -> Result<()> {
        match self.options.sync {
            SyncPolicy::Always => {
                self.wait_durable(next_offset, truncations)?;
                self.advance_recovery_point(now_ms)
            }
            SyncPolicy::Interval(_) => {
                self.nudge_interval_sync(now_ms);
                Ok(())
            }
            SyncPolicy::Never => Ok(()),
        }
    }

    /// Adds `epoch` to the epoch history, durably, if a batch of it at
    /// `offset` is the first of that epoch in the log.
    #[inline]
    fn note_epoch(&self, writer: &mut Writer, epoch: u64, offset: u64) -> Result<()> {
        if writer.history_epoch == Some(epoch) {
            return Ok(());
        }
        self.note_new_epoch(writer, epoch, offset)
    }

    #[cold]
    fn note_new_epoch(&self, writer: &mut Writer, epoch: u64, offset: u64) -> Result<()> {
        let mut epochs = self.epochs.lock();
        if epochs.observe(epoch, offset) {
            epochs.write(&self.dir, self.log_id)?;
        }
        writer.history_epoch = epochs.latest_epoch();
        Ok(())
    }

    /// Raises the epoch stamped on new batches to at least `epoch`.
    fn raise_leader_epoch(&self, epoch: u64) {
        self.leader_epoch.fetch_max(epoch, Ordering::AcqRel);
    }

    /// Seals the active segment and starts a new one at the next offset.
    /// The new file is created first, so a full disk changes nothing. Under
    /// `SyncPolicy::Never` and `Interval` the seal runs in the background
    /// (see `seal`): the roll creates a file, unsynced, and returns.
    pub(super) fn roll(&self, writer: &mut Writer) -> Result<()> {
        let in_background = self.seals_in_background();
        if in_background {
            // Only a writer that has outrun the disk by `UNSEALED_BYTES_MAX`
            // waits here.
            self.wait_seal_room()?;
        }
        let next = self.next_offset.load(Ordering::Acquire);
        let start = LogPosition::segment_start(next);
        let config = self.segment_config(writer.generation);
        let (segment, fresh) = if in_background {
            // A spare that cannot be taken is dropped (its file removed):
            // the roll creates its file itself, as without one.
            let from_spare = self
                .prefaulter
                .take_spare()
                .map(|spare| SegmentWriter::create_from_spare(&config, next, spare));
            // The spare has left its name (or is gone): the next may start.
            self.prefaulter.want_spare();
            match from_spare {
                Some(Ok(created)) => created,
                Some(Err(_)) | None => SegmentWriter::create_unsynced(&config, next)?,
            }
        } else {
            SegmentWriter::create(&config, next, &[])?
        };
        // Without waiting for a chunk in progress on the old segment: its
        // seal waits for that (`wait_released`) before trimming the file.
        self.prefaulter.switch_to(None, 0);
        let old = std::mem::replace(&mut writer.active, fresh);
        if in_background {
            self.publish_segment(&segment);
            self.submit_seal(SealJob {
                old,
                next_path: segment.path().to_path_buf(),
                next_start: start,
            });
        } else {
            self.prefaulter.wait_released(old.mapping());
            let sealed = old.seal().and_then(|()| {
                self.publish_segment(&segment);
                self.sealed_up_to(start)
            });
            if let Err(e) = sealed {
                self.group.poison();
                return Err(e);
            }
        }
        self.options.notify(|l| l.post_roll(next));
        self.restart_prefault(writer);
        self.enforce_retention_locked(writer)
    }

    /// Adds a new (active) segment to the list readers take.
    fn publish_segment(&self, segment: &Arc<Segment>) {
        let mut segments = self.segments.snapshot().as_ref().clone();
        segments.push(Arc::clone(segment));
        self.segments.replace(segments);
    }

    /// Moves the durable point to `start`, the beginning of the segment
    /// after one just sealed (synced), and writes it as the recovery point.
    pub(super) fn sealed_up_to(&self, start: LogPosition) -> Result<()> {
        self.group.advance(start);
        self.write_recovery_point(&mut self.recovery_point.lock(), start)
    }
}
