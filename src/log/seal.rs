//! Sealing full segments off the append path (`SyncPolicy::Never` and
//! `Interval`).
//!
//! A roll under those policies creates the next segment without syncing
//! it, queues the old one for sealing by the background pool, and returns:
//! the writer goes on appending to the new segment at once. Each seal then
//! does, in this order, what the roll used to do before returning: sync
//! and trim the old segment and write its index files; make the new
//! segment's header (with the file's size and allocation) and the
//! directory durable, so its name and header survive a crash; move the
//! durable point to the new segment's start; write it to the checkpoint as
//! the recovery point. Only the new segment's header is synced, not its
//! data (`storage::fs::sync_file_head`): by the time a queued seal runs,
//! the writer may have filled much of it, and writing that back would
//! write-protect every page the writer maps (a TLB flush each: 30% of all
//! CPU samples of a 2 GiB run, perf, issue 10) and fault the writer again.
//!
//! Seals run one at a time, in the order of their rolls, so the recovery
//! point only ever moves forward over segments that are synced. Several
//! may wait their turn: a writer faster than the disk (a burst into the
//! page cache) rolls on without waiting for the disk, until the segments
//! awaiting their seal hold [`UNSEALED_BYTES_MAX`]; only then does a roll
//! wait. Anything that needs the log durable or its files settled (a sync,
//! close, truncation, reset, explicit retention) waits for every queued
//! seal.
//!
//! Whoever waits for seals that no pool thread has started runs them
//! itself, so a wait never depends on a free pool thread.
//!
//! Recovery after a crash finds the segments whose seal never finished
//! untrimmed, with zero-filled tails and no index files, after the
//! recovery point: see `storage::recovery`, which treats each of them as
//! one that may hold a torn tail, and a segment whose header never reached
//! the disk as the end of the log. Under `SyncPolicy::Always` appends wait
//! for durability anyway, and rolls seal before they return.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::Shared;
use crate::error::Result;
use crate::format::SEGMENT_HEADER_BYTES;
use crate::storage::durability::LogPosition;
use crate::storage::fs::{sync_dir, sync_file_head};
use crate::storage::pool::{Task, TaskHandle};
use crate::storage::segment_writer::SegmentWriter;

/// The work of one seal.
pub(super) struct SealJob {
    /// The full segment's writer.
    pub old: SegmentWriter,
    /// The next segment's file, created but not synced.
    pub next_path: std::path::PathBuf,
    /// Where the next segment starts.
    pub next_start: LogPosition,
}

/// How many bytes the segments awaiting their seal (queued or being
/// sealed) may hold before a roll waits for the oldest seal: 2 GiB, the
/// order of what the kernel lets a burst leave dirty in the page cache
/// (10% of memory on this machine class) before it throttles the writer
/// itself. It also bounds what recovery scans after a machine crash: the
/// segments from the recovery point on, at most this much plus the active
/// segment. A roll always may leave one segment awaiting its seal.
const UNSEALED_BYTES_MAX: u64 = 2 << 30;

#[derive(Default)]
struct State {
    /// Seals not started, oldest first.
    queue: VecDeque<SealJob>,
    /// A seal is running (always the oldest: seals run in roll order).
    running: bool,
    /// Bytes of the segments queued or being sealed.
    unsealed_bytes: u64,
}

impl State {
    /// Seals queued or running.
    fn pending(&self) -> usize {
        self.queue.len() + usize::from(self.running)
    }
}

/// The seals in flight of one log, oldest first.
#[derive(Default)]
pub(super) struct Sealer {
    state: Mutex<State>,
    done: Condvar,
    task: OnceLock<TaskHandle>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").finish_non_exhaustive()
    }
}

/// The pool's side: runs the queued seals.
struct SealTask {
    shared: Weak<Shared>,
}

impl Task for SealTask {
    fn run(&self) -> Option<Instant> {
        if let Some(shared) = self.shared.upgrade() {
            // An error poisons the log; whoever waits on the seal sees it.
            let _ = shared.run_queued_seals();
        }
        None
    }
}

impl Shared {
    /// Registers the sealing task with the pool (for a writable log whose
    /// policy seals off the append path).
    pub(super) fn start_sealer(self: &Arc<Self>) -> Result<()> {
        let task = SealTask {
            shared: Arc::downgrade(self),
        };
        let handle = TaskHandle::register(Arc::new(task), &self.dir)?;
        let _ = self.sealer.task.set(handle);
        Ok(())
    }

    /// Whether rolls seal in the background: with a pool task, under a
    /// policy whose appends do not wait for durability.
    pub(super) fn seals_in_background(&self) -> bool {
        self.sealer.task.get().is_some()
    }

    /// Returns once the segments awaiting their seal hold less than
    /// [`UNSEALED_BYTES_MAX`], so that a roll may queue one more: at once
    /// unless the writer has outrun the disk by that much. Runs queued
    /// seals on this thread if no pool thread has started them.
    ///
    /// # Errors
    ///
    /// As [`Shared::wait_sealed`].
    pub(super) fn wait_seal_room(&self) -> Result<()> {
        self.wait_seals_until(|state| state.unsealed_bytes < UNSEALED_BYTES_MAX)
    }

    /// Queues `job` behind the seals in flight and wakes the pool.
    pub(super) fn submit_seal(&self, job: SealJob) {
        let mut state = self.sealer.state.lock();
        state.unsealed_bytes += job.old.position();
        state.queue.push_back(job);
        drop(state);
        if let Some(task) = self.sealer.task.get() {
            task.wake();
        }
    }

    /// How many segments are queued or being sealed: the newest this many
    /// segments before the active one are not sealed yet, and retention
    /// must leave them alone.
    pub(super) fn seals_pending(&self) -> usize {
        self.sealer.state.lock().pending()
    }

    /// Returns once no seal is queued or running, running queued ones on
    /// this thread if no pool thread has started them.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] if a seal (now or earlier) failed, or the error
    /// of a seal run here.
    pub(super) fn wait_sealed(&self) -> Result<()> {
        self.wait_seals_until(|state| state.pending() == 0)
    }

    /// Runs queued seals here, or waits for the one running, until `done`.
    fn wait_seals_until(&self, done: impl Fn(&State) -> bool) -> Result<()> {
        let mut state = self.sealer.state.lock();
        while !done(&state) {
            if state.running {
                self.sealer.done.wait(&mut state);
                continue;
            }
            drop(state);
            self.run_oldest_seal()?;
            state = self.sealer.state.lock();
        }
        drop(state);
        self.group.check()
    }

    /// Drops the queued seals without running them, and waits out a
    /// running one (a simulated crash: the seals may have been cut short
    /// at any point, or never started).
    #[cfg(any(test, feature = "test-util"))]
    pub(super) fn abandon_seal(&self) {
        if let Some(task) = self.sealer.task.get() {
            task.cancel();
        }
        let mut state = self.sealer.state.lock();
        state.queue.clear();
        while state.running {
            self.sealer.done.wait(&mut state);
        }
        state.unsealed_bytes = 0;
    }

    /// Runs queued seals, oldest first, until none is left or another
    /// thread runs one.
    fn run_queued_seals(&self) -> Result<()> {
        while self.run_oldest_seal()? {}
        Ok(())
    }

    /// Runs the oldest queued seal, if nobody runs one: `Ok(false)` if
    /// there was none to run here. After a failure the queue is dropped
    /// (the log is poisoned; recovery finds those segments unsealed).
    fn run_oldest_seal(&self) -> Result<bool> {
        let mut state = self.sealer.state.lock();
        if state.running {
            return Ok(false);
        }
        let Some(job) = state.queue.pop_front() else {
            return Ok(false);
        };
        state.running = true;
        drop(state);
        let bytes = job.old.position();
        let result = self.seal(job);
        if result.is_err() {
            self.group.poison();
        }
        let mut state = self.sealer.state.lock();
        state.running = false;
        state.unsealed_bytes -= bytes;
        if result.is_err() {
            state.queue.clear();
            state.unsealed_bytes = 0;
        }
        drop(state);
        self.sealer.done.notify_all();
        result.map(|()| true)
    }

    fn seal(&self, job: SealJob) -> Result<()> {
        // The roll switched pre-faulting away from the old segment without
        // waiting; trimming it needs no chunk still running on it.
        self.prefaulter.wait_released(job.old.mapping());
        job.old.seal()?;
        // Only the next segment's header: the writer is filling the rest.
        sync_file_head(&job.next_path, SEGMENT_HEADER_BYTES)?;
        sync_dir(&self.dir)?;
        self.sealed_up_to(job.next_start)
    }
}
