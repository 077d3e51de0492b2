//! Retention: deleting whole segments from the front of the log.

use std::sync::atomic::Ordering;

use super::{Log, Shared, Writer};
use crate::error::Result;
use crate::storage::fs::sync_dir;

impl Log {
    /// Deletes whole segments whose records all lie below `offset` (never
    /// the active segment) and returns the new `start_offset()`. Records at
    /// or above `offset` are never deleted; some below it may remain.
    ///
    /// Cost: a file deletion per segment deleted (data and index files) and
    /// a directory sync; the epoch history is rewritten if it changed.
    /// Holds the writer lock meanwhile: appends wait.
    ///
    /// # Errors
    ///
    /// [`Error::OffsetOutOfRange`](crate::Error::OffsetOutOfRange) if
    /// `offset > next_offset()`; [`Error::ReadOnly`](crate::Error::ReadOnly);
    /// [`Error::Io`](crate::Error::Io).
    pub fn delete_before(&self, offset: u64) -> Result<u64> {
        let mut writer = self.shared.lock_writer()?;
        self.shared.wait_sealed()?;
        if offset > self.next_offset() {
            return Err(self.out_of_range(offset));
        }
        let segments = self.shared.segments.snapshot();
        let whole = segments
            .windows(2)
            .take_while(|pair| pair[1].base_offset() <= offset)
            .count();
        self.shared.remove_oldest(&mut writer, whole)?;
        Ok(self.start_offset())
    }

    /// Applies the retention policy of [`Options::retention`](crate::Options::retention)
    /// now (it is also applied whenever a segment is rolled). Returns the
    /// new `start_offset()`. Ages are measured by the log's clock.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) if a file cannot be removed;
    /// [`Error::ReadOnly`](crate::Error::ReadOnly).
    pub fn enforce_retention(&self) -> Result<u64> {
        let mut writer = self.shared.lock_writer()?;
        self.shared.wait_sealed()?;
        self.shared.enforce_retention_locked(&mut writer)?;
        Ok(self.start_offset())
    }
}

impl Shared {
    /// Deletes the `count` oldest segments (never the last one), oldest
    /// first, so a crash midway leaves a contiguous log. The caller holds
    /// the writer lock.
    fn remove_oldest(&self, writer: &mut Writer, count: usize) -> Result<()> {
        let segments = self.segments.snapshot();
        let count = count.min(segments.len() - 1);
        if count == 0 {
            return Ok(());
        }
        let start = segments[count].base_offset();
        // Raise the start first: a reader that passed the start check must
        // still find its segment in the list it takes afterwards.
        self.start_offset.store(start, Ordering::SeqCst);
        self.segments.replace(segments[count..].to_vec());
        for segment in &segments[..count] {
            segment.remove_files()?;
        }
        sync_dir(&self.dir)?;
        // An epoch that now starts at the log's end has no record left.
        let end = self.next_offset.load(Ordering::Acquire);
        self.cut_epochs(writer, |epochs| {
            epochs.truncate_before(start) | epochs.truncate_from(end)
        })?;
        self.options.notify(|l| l.post_delete_segments(start));
        Ok(())
    }

    /// Deletes what [`Options::retention`](crate::Options::retention) says
    /// to. The caller holds the writer lock.
    pub(super) fn enforce_retention_locked(&self, writer: &mut Writer) -> Result<()> {
        let retention = self.options.retention;
        let segments = self.segments.snapshot();
        // Segments whose seal is in flight are left for a later pass.
        let closed = (segments.len() - 1).saturating_sub(self.seals_pending());
        let mut count = 0;
        if let Some(bytes_max) = retention.bytes_max {
            let mut total: u64 = segments.iter().map(|s| s.end_position()).sum();
            while count < closed && total > bytes_max {
                total -= segments[count].end_position();
                count += 1;
            }
        }
        if let Some(age_max) = retention.age_max {
            let age_max_ms = age_max.as_millis().min(i64::MAX as u128) as i64;
            let cutoff = self.options.now_ms().saturating_sub(age_max_ms);
            while count < closed && segments[count].max_timestamp_ms() < cutoff {
                count += 1;
            }
        }
        self.remove_oldest(writer, count)
    }
}
