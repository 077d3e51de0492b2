//! Removing records from the end (`truncate`) or all of them (`reset`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Log, Shared, Writer};
use crate::error::{Damage, Error, Result};
use crate::format::{self, BATCH_HEADER_BYTES, BatchHeader, NewRecord, RecordFields};
use crate::storage::durability::LogPosition;
use crate::storage::fs::sync_dir;
use crate::storage::segment::Segment;
use crate::storage::segment_set::segment_index;
use crate::storage::segment_writer::SegmentWriter;

impl Log {
    /// Removes every record at or after `offset`; `next_offset()` becomes
    /// `offset`. Used by replication to drop a divergent suffix. Durable when
    /// it returns. Readers that already hold records keep them, and iterators
    /// created before keep seeing the old records. The epoch history loses
    /// the epochs that started at or after `offset`.
    ///
    /// Cost: if `offset` falls inside a batch, the records of that batch
    /// before `offset` are copied into a new batch.
    ///
    /// # Errors
    ///
    /// [`Error::OffsetOutOfRange`] unless `start_offset() <= offset <=
    /// next_offset()`; [`Error::Poisoned`]; [`Error::ReadOnly`];
    /// [`Error::Io`] and [`Error::Corrupt`], after which the log is
    /// poisoned and must be reopened (recovery then shows the old or the
    /// truncated log).
    pub fn truncate(&self, offset: u64) -> Result<()> {
        let mut writer = self.shared.lock_writer()?;
        // Settles the files first: a seal in flight writes the recovery
        // point, which the steps below order against the cut.
        self.shared.wait_sealed()?;
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

    /// Empties the log and continues it at `offset`: afterwards
    /// `start_offset() == next_offset() == offset`, the epoch history is
    /// empty, and the leader epoch is kept. For a follower whose log ends
    /// below its leader's start (or has nothing in common with it).
    ///
    /// Crash-safe: after a crash at any point the log is the old one or the
    /// empty one at `offset`, never a mix. The reset is committed once its
    /// new segment file is durable (its header carries a reset generation
    /// above the old segments', and opening removes segments of an older
    /// generation); durable when it returns.
    ///
    /// Cost: creating and preallocating one segment file, a file deletion
    /// per old segment, and a few small synced file writes.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`]; [`Error::ReadOnly`]; [`Error::Io`], after which
    /// the log is poisoned and must be reopened (recovery then shows the old
    /// or the reset log).
    pub fn reset(&self, offset: u64) -> Result<()> {
        let mut writer = self.shared.lock_writer()?;
        // Settles the files first: a seal in flight writes the recovery
        // point, which the steps below order against the cut.
        self.shared.wait_sealed()?;
        if offset > u64::MAX / 2 {
            return Err(self.out_of_range(offset));
        }
        let result = self.shared.reset_locked(&mut writer, offset);
        if result.is_err() {
            self.shared.group.poison();
        }
        result
    }
}

impl Shared {
    /// The body of [`Log::truncate`], for `start <= offset < next_offset`.
    /// On-disk steps are ordered so a crash at any point leaves the old log
    /// or a prefix of it at least `offset` long, or the truncated log.
    fn truncate_locked(&self, writer: &mut Writer, offset: u64) -> Result<()> {
        let segments = self.segments.snapshot();
        let holder_index = segment_index(&segments, offset).expect("offset is at or above the start");
        let holder = &segments[holder_index];
        let missing = || Error::corrupt(holder.path(), 0, Damage::MissingRecords { offset });
        let (position, header) = holder.locate(offset)?.ok_or_else(missing)?;
        let cut_base = header.base_offset;
        let kept = if cut_base < offset {
            reencode_prefix(holder, position, &header, offset)?
        } else {
            Vec::new()
        };
        self.prefaulter.release();
        let mut written = self.recovery_point.lock();

        // 1. Make what is kept durable and move the recovery point below the cut.
        let keeps_holder = holder.base_offset() < cut_base;
        let recovery_point = if keeps_holder {
            holder.mapping()?.flush(0..position)?;
            LogPosition {
                offset: cut_base,
                segment_base: holder.base_offset(),
                position,
            }
        } else if holder_index > 0 {
            let previous = &segments[holder_index - 1];
            LogPosition {
                offset: cut_base,
                segment_base: previous.base_offset(),
                position: previous.end_position(),
            }
        } else {
            LogPosition::segment_start(cut_base)
        };
        self.write_recovery_point(&mut written, recovery_point)?;
        // 2. Delete later segments, newest first.
        for segment in segments[holder_index + 1..].iter().rev() {
            segment.remove_files()?;
        }
        sync_dir(&self.dir)?;
        // 3. Start a segment at the cut (replacing the holder if it starts
        //    there), holding the kept part of a split batch.
        let (fresh_segment, fresh) = SegmentWriter::create(&self.segment_config(writer.generation), cut_base, &kept)?;
        let mut remaining: Vec<Arc<Segment>> = segments[..holder_index].to_vec();
        if keeps_holder {
            let cut = holder.cut(position, cut_base)?;
            cut.write_index_files()?;
            // The holder may have been the active segment: sealed now, its
            // mapping becomes the cache's to unmap.
            cut.slot().unpin();
            remaining.push(cut);
        }
        remaining.push(Arc::clone(&fresh_segment));
        debug_assert_eq!(fresh_segment.next_offset(), offset);
        writer.active = fresh;
        // Lower the end before the data goes (the mirror of an append, which
        // adds data before raising the end), so a reader that misses the cut
        // records finds the end already below them.
        self.next_offset.store(offset, Ordering::SeqCst);
        self.segments.replace(remaining);
        let durable = LogPosition {
            offset,
            segment_base: cut_base,
            position: writer.active.position(),
        };
        self.group.reset(durable);
        self.write_recovery_point(&mut written, durable)?;
        drop(written);
        self.cut_epochs(writer, |epochs| epochs.truncate_from(offset))?;
        self.restart_prefault(writer);
        self.options.notify(|l| l.post_truncate(offset));
        Ok(())
    }

    /// The body of [`Log::reset`]; see there for the order of steps.
    fn reset_locked(&self, writer: &mut Writer, offset: u64) -> Result<()> {
        let segments = self.segments.snapshot();
        self.prefaulter.release();
        let mut written = self.recovery_point.lock();
        // 1. An empty epoch history: a crash now leaves the old log, whose
        //    history is then rebuilt from its batches.
        self.cut_epochs(writer, |epochs| {
            epochs.clear();
            true
        })?;
        // 2. The new segment, of the next generation: durable, it commits
        //    the reset (opening drops older generations).
        let generation = writer.generation + 1;
        let (fresh_segment, fresh) = SegmentWriter::create(&self.segment_config(generation), offset, &[])?;
        writer.generation = generation;
        writer.active = fresh;
        self.start_offset.store(offset, Ordering::SeqCst);
        self.next_offset.store(offset, Ordering::SeqCst);
        self.segments.replace(vec![Arc::clone(&fresh_segment)]);
        let durable = LogPosition::segment_start(offset);
        self.group.reset(durable);
        self.write_recovery_point(&mut written, durable)?;
        drop(written);
        // 3. The old segments go (one at the new segment's base was
        //    replaced by it already).
        for segment in segments.iter().filter(|s| s.base_offset() != offset) {
            segment.remove_files()?;
        }
        sync_dir(&self.dir)?;
        self.restart_prefault(writer);
        self.options.notify(|l| l.post_truncate(offset));
        Ok(())
    }

    /// Applies `cut` to the epoch history and writes it if it changed.
    pub(super) fn cut_epochs(
        &self,
        writer: &mut Writer,
        cut: impl FnOnce(&mut crate::storage::epochs::EpochHistory) -> bool,
    ) -> Result<()> {
        let mut epochs = self.epochs.lock();
        if cut(&mut epochs) {
            epochs.write(&self.dir, self.log_id)?;
        }
        writer.history_epoch = epochs.latest_epoch();
        Ok(())
    }
}

/// The records of the batch at `position` before `offset`, encoded as a
/// new batch with the same base offset, epoch, keys and timestamps.
fn reencode_prefix(segment: &Segment, position: u64, header: &BatchHeader, offset: u64) -> Result<Vec<u8>> {
    let batch = segment.batch_bytes(position, header)?;
    let count = (offset - header.base_offset) as usize;
    let fields: Vec<RecordFields> = format::RecordDecoder::new(&batch, BATCH_HEADER_BYTES)
        .take(count)
        .collect::<std::result::Result<_, _>>()
        .map_err(|damage| Error::corrupt(segment.path(), position, damage))?;
    if fields.len() != count {
        return Err(Error::corrupt(segment.path(), position, Damage::Truncated));
    }
    let records: Vec<NewRecord<'_>> = fields.iter().map(|f| f.to_new_record(&batch)).collect();
    Ok(format::encode_batch_to_vec(
        &records,
        header.base_offset,
        header.leader_epoch,
        0,
    ))
}
