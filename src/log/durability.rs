//! Syncs from the log's side: waiting for durability (group commit lives in
//! `storage::durability`), what a flush covers, the interval sync,
//! and the cadence at which the durable point is written to the checkpoint
//! as the recovery point.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{Log, Shared};
use crate::error::{Error, Result};
use crate::storage::durability::LogPosition;
use crate::storage::pool::{Task, TaskHandle};
use crate::storage::recovery::write_open_checkpoint;

/// Least time between two recovery-point writes from the sync path.
const RECOVERY_POINT_INTERVAL_MS: i64 = 1000;

impl Log {
    /// Makes everything appended before the call durable.
    ///
    /// Cost: one `msync` of the active segment's unsynced pages, shared
    /// with concurrent callers (group commit); nothing when all is durable.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] after an earlier failed sync, [`Error::Io`] if this
    /// one fails (which poisons the log), [`Error::ReadOnly`].
    pub fn sync(&self) -> Result<()> {
        self.shared.check_open()?;
        if self.shared.writer.lock().is_none() {
            return Err(Error::ReadOnly);
        }
        self.shared.group.check()?;
        self.shared.wait_durable_for_end()?;
        self.shared.advance_recovery_point(self.shared.options.now_ms())
    }
}

/// The interval sync of one log under `SyncPolicy::Interval`, run by the
/// process's background pool.
///
/// Periods are measured by the log's clock: the task runs every `period` of
/// real time (and whenever an append finds a sync due by the clock) and
/// syncs if the clock says a period has passed since the last sync. With a
/// virtual clock that does not advance, no interval sync happens.
pub(super) struct IntervalSync {
    /// Weak: the pool must not keep a dropped log alive.
    shared: Weak<Shared>,
    period: Duration,
    period_ms: i64,
    last_sync_ms: AtomicI64,
}

impl IntervalSync {
    /// Registers the interval sync of `shared` with the pool; it first runs
    /// one period from now.
    pub(super) fn start(shared: &Arc<Shared>, period: Duration) -> Result<TaskHandle> {
        let period_ms = period.as_millis().min(i64::MAX as u128) as i64;
        // The period starts now, not when the task first runs: on a loaded
        // machine that can be after the clock moved, and the first sync would
        // then wait for the clock to move again.
        let started_ms = shared.options.now_ms();
        shared
            .interval_sync_due_ms
            .store(started_ms.saturating_add(period_ms), Ordering::Release);
        let task = Arc::new(IntervalSync {
            shared: Arc::downgrade(shared),
            period,
            period_ms,
            last_sync_ms: AtomicI64::new(started_ms),
        });
        let handle = TaskHandle::register(task, &shared.dir)?;
        handle.wake_at(Instant::now() + period);
        Ok(handle)
    }
}

impl Task for IntervalSync {
    fn run(&self) -> Option<Instant> {
        let shared = self.shared.upgrade()?;
        if shared.closed.load(Ordering::SeqCst) {
            return None;
        }
        let next = Instant::now() + self.period;
        let now_ms = shared.options.now_ms();
        let last_sync_ms = self.last_sync_ms.load(Ordering::Relaxed);
        // One millisecond of slack: a wait of exactly one period can read
        // as one millisecond less on a millisecond clock.
        let due = now_ms.saturating_sub(last_sync_ms).saturating_add(1) >= self.period_ms;
        if shared.group.is_poisoned() || !due {
            return Some(next);
        }
        self.last_sync_ms.store(now_ms, Ordering::Relaxed);
        shared
            .interval_sync_due_ms
            .store(now_ms.saturating_add(self.period_ms), Ordering::Release);
        if shared.wait_durable_for_end().is_ok() {
            let _ = shared.advance_recovery_point(now_ms);
        }
        Some(next)
    }
}

impl Shared {
    /// Wakes the interval sync if, by the clock, a sync is due and data is
    /// waiting (so a virtual clock drives syncs too). Wakes it once per
    /// period at most: the first appender to see the sync due claims the
    /// wake-up, and the task sets the next due time when it syncs.
    pub(super) fn nudge_interval_sync(&self, now_ms: i64) {
        let due_ms = self.interval_sync_due_ms.load(Ordering::Acquire);
        if now_ms < due_ms || self.group.durable_offset() >= self.next_offset.load(Ordering::Relaxed) {
            return;
        }
        let claimed = self
            .interval_sync_due_ms
            .compare_exchange(due_ms, i64::MAX, Ordering::AcqRel, Ordering::Relaxed);
        if claimed.is_ok()
            && let Some(task) = self.interval_sync.get()
        {
            task.wake();
        }
    }

    /// Waits (sharing syncs with other callers) until offsets below
    /// `target` are durable, or until a truncation after the
    /// `truncations`-th cut them off (see `GroupCommit::wait_durable`).
    pub(super) fn wait_durable(&self, target: u64, truncations: u64) -> Result<()> {
        self.group
            .wait_durable(target, truncations, |from| self.flush_from(from))
    }

    /// Waits until everything appended so far is durable.
    pub(super) fn wait_durable_for_end(&self) -> Result<()> {
        // The count first: a truncation between the two loads then ends the
        // wait (its end is lower than `target`, which it may have cut).
        let truncations = self.group.truncations();
        self.wait_durable(self.next_offset.load(Ordering::SeqCst), truncations)
    }

    /// Flushes the active segment from `from` (or from its start, if `from`
    /// lies in an earlier segment: sealed segments were synced when sealed).
    /// The result pairs a position with the offset found there, so it can
    /// serve as a recovery point.
    fn flush_from(&self, from: LogPosition) -> Result<LogPosition> {
        // The active segment's name is durable only once the seal before it
        // is done; and the durable point must not skip the sealed segment.
        self.wait_sealed()?;
        let segments = self.segments.snapshot();
        let active = segments.last().expect("a log always has a segment");
        let start = if active.base_offset() == from.segment_base {
            from.position
        } else {
            0
        };
        let end = active.end();
        self.options.notify(|listener| listener.pre_sync(end.next_offset));
        active.mapping()?.flush(start..end.end_position)?;
        Ok(LogPosition {
            offset: end.next_offset,
            segment_base: active.base_offset(),
            position: end.end_position,
        })
    }

    /// Persists the durable point as the recovery point, at most once per
    /// [`RECOVERY_POINT_INTERVAL_MS`], so a crash re-scans little and damage
    /// in data that was synced is reported rather than cut. Skips the write
    /// when another thread is writing the checkpoint.
    pub(super) fn advance_recovery_point(&self, now_ms: i64) -> Result<()> {
        let last = self.recovery_point_written_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < RECOVERY_POINT_INTERVAL_MS {
            return Ok(());
        }
        let Some(mut written) = self.recovery_point.try_lock() else {
            return Ok(());
        };
        let durable = self.group.durable();
        if !durable.is_after(&written) {
            return Ok(());
        }
        self.write_recovery_point(&mut written, durable)
            .inspect_err(|_| self.group.poison())
    }

    /// Writes `point` as the recovery point (the caller holds the lock).
    pub(super) fn write_recovery_point(&self, written: &mut LogPosition, point: LogPosition) -> Result<()> {
        write_open_checkpoint(&self.dir, point, self.leader_epoch.load(Ordering::Acquire), self.log_id)?;
        *written = point;
        self.recovery_point_written_ms
            .store(self.options.now_ms(), Ordering::Relaxed);
        Ok(())
    }
}
