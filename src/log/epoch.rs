//! Leader epochs: the epoch stamped on new batches, and the history of the
//! epochs in the log (see `storage::epochs`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Log;
use crate::error::{Error, Result};
use crate::storage::epochs::{EpochHistory, StoredEpochs};
use crate::storage::recovery::Access;
use crate::storage::segment::Segment;

impl Log {
    /// The leader epoch stamped on new batches.
    pub fn leader_epoch(&self) -> u64 {
        self.shared.leader_epoch.load(Ordering::Acquire)
    }

    /// Sets the leader epoch stamped on batches appended from now on. It
    /// enters the epoch history with the first batch appended under it.
    ///
    /// # Errors
    ///
    /// [`Error::StaleEpoch`] if `epoch` is below the current one;
    /// [`Error::ReadOnly`].
    pub fn set_leader_epoch(&self, epoch: u64) -> Result<()> {
        let _writer = self.shared.lock_writer()?;
        let current = self.leader_epoch();
        if epoch < current {
            return Err(Error::StaleEpoch { given: epoch, current });
        }
        self.shared.leader_epoch.store(epoch, Ordering::Release);
        Ok(())
    }

    /// Kafka's OffsetsForLeaderEpoch, answered from the epoch history: the
    /// largest leader epoch at or below `epoch` that has records in the
    /// log, and the offset where its records end (the first offset of the
    /// next larger epoch in the log, or `next_offset()` for the latest).
    /// `None` if the log holds no record of an epoch at or below `epoch`
    /// (it is empty, or begins with a larger epoch).
    ///
    /// A follower whose last fetched epoch is `e` truncates to the returned
    /// end offset (or its own end, if lower) when the returned epoch is not
    /// `e`, or the end is below its own.
    ///
    /// Cost: a binary search over the epochs (one entry per epoch change).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> replog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let log = replog::Log::open(dir.path(), replog::Options::default())?;
    /// log.set_leader_epoch(1)?;
    /// log.append_batch([&b"a"[..], b"b"])?;
    /// log.set_leader_epoch(3)?;
    /// log.append(b"c")?;
    /// assert_eq!(log.end_offset_for_epoch(2), Some((1, 2)));
    /// assert_eq!(log.end_offset_for_epoch(3), Some((3, 3)));
    /// assert_eq!(log.end_offset_for_epoch(0), None);
    /// # Ok(()) }
    /// ```
    pub fn end_offset_for_epoch(&self, epoch: u64) -> Option<(u64, u64)> {
        let epochs = self.shared.epochs.lock();
        epochs.end_offset_for_epoch(epoch, self.next_offset())
    }

    /// The epoch history: every leader epoch with records in the log and
    /// the offset of its first record there, oldest first.
    ///
    /// Cost: a copy of the history, one entry per epoch change.
    pub fn epoch_history(&self) -> Vec<(u64, u64)> {
        let epochs = self.shared.epochs.lock();
        epochs.entries().iter().map(|e| (e.epoch, e.start_offset)).collect()
    }
}

/// The epoch history of a recovered log: from its file, trimmed to the
/// log's range, or rebuilt from the batch headers when the file is missing,
/// damaged or disagrees with the log. Writes the result back if it changed
/// (read-write only). Returns it and whether it was rebuilt.
pub(super) fn load_history(
    dir: &Path,
    file: &StoredEpochs,
    log_id: u64,
    segments: &[Arc<Segment>],
    access: Access,
) -> Result<(EpochHistory, bool)> {
    let start = segments[0].base_offset();
    let end = segments.last().expect("a log always has a segment").next_offset();
    let last_epoch = last_batch_epoch(segments);
    let stored = match file.decode(log_id) {
        Ok(stored) => stored,
        // Damaged (or another log's): rebuilt below. (A newer version was
        // refused before recovery changed anything.)
        Err(Error::Corrupt { .. }) => None,
        Err(error) => return Err(error),
    };
    let reconciled = stored
        .clone()
        .and_then(|mut history| history.reconcile(start, end, last_epoch).then_some(history));
    let (history, rebuilt) = match reconciled {
        Some(history) => (history, false),
        None if last_epoch.is_none() => (EpochHistory::default(), false),
        None => (rebuild(segments), true),
    };
    let unchanged = stored
        .as_ref()
        .map_or(history.entries().is_empty(), |stored| *stored == history);
    if access == Access::ReadWrite && !unchanged {
        history.write(dir, log_id)?;
    }
    Ok((history, rebuilt))
}

/// Epoch of the last batch in the log (`None` if it is empty).
fn last_batch_epoch(segments: &[Arc<Segment>]) -> Option<u64> {
    segments
        .iter()
        .rev()
        .find(|s| s.next_offset() > s.base_offset())
        .map(|s| s.last_epoch())
}

/// The history from every batch header. A segment that cannot be walked to
/// its end (damage, reported when read) contributes what precedes the damage.
fn rebuild(segments: &[Arc<Segment>]) -> EpochHistory {
    let mut history = EpochHistory::default();
    for segment in segments {
        let (position, expected) = segment.walk_start(None);
        let _ = segment.walk(position, expected, |_, header| {
            history.observe(header.leader_epoch, header.base_offset);
            false
        });
    }
    history
}
