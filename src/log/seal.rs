//! Sealing a full segment off the append path (`SyncPolicy::Never` and
//! `Interval`).
//!
//! A roll under those policies creates the next segment without syncing
//! it, hands the old one to the background pool, and returns: the writer
//! goes on appending to the new segment at once. The seal then does, in
//! this order, what the roll used to do before returning: sync and trim
//! the old segment and write its index files; sync the new segment's file
//! and the directory (so its name and header are durable); move the
//! durable point to the new segment's start; write it to the checkpoint as
//! the recovery point. One seal is in flight at a time: the next roll
//! waits for it, as does anything that needs the log durable or its files
//! settled (a sync, close, truncation, reset, explicit retention).
//!
//! Whoever waits for a pending seal that no pool thread has started runs
//! it itself, so a wait never depends on a free pool thread.
//!
//! Recovery after a crash during a seal finds the old segment untrimmed
//! with a zero-filled tail (it was never sealed) before a last segment that
//! may hold records: see `storage::recovery`, which treats that segment as
//! the one that may hold a torn tail. Under `SyncPolicy::Always` appends
//! wait for durability anyway, and rolls seal before they return.

use std::fs::File;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::Shared;
use crate::error::{Error, Result};
use crate::storage::durability::LogPosition;
use crate::storage::fs::sync_dir;
use crate::storage::pool::{Task, TaskHandle};
use crate::storage::segment_writer::SegmentWriter;

/// The work of one seal.
pub(super) struct SealJob {
    /// The full segment's writer.
    pub old: SegmentWriter,
    /// The next segment's file, created but not synced, and its path.
    pub next_file: File,
    pub next_path: std::path::PathBuf,
    /// Where the next segment starts.
    pub next_start: LogPosition,
}

#[derive(Default)]
struct State {
    job: Option<SealJob>,
    running: bool,
}

/// The seal in flight, if any, of one log.
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

/// The pool's side: runs a pending seal.
struct SealTask {
    shared: Weak<Shared>,
}

impl Task for SealTask {
    fn run(&self) -> Option<Instant> {
        if let Some(shared) = self.shared.upgrade() {
            // An error poisons the log; whoever waits on the seal sees it.
            let _ = shared.run_pending_seal();
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

    /// Hands `job` to the pool. The caller waited for the previous seal.
    pub(super) fn submit_seal(&self, job: SealJob) {
        let mut state = self.sealer.state.lock();
        debug_assert!(state.job.is_none() && !state.running, "one seal at a time");
        state.job = Some(job);
        drop(state);
        if let Some(task) = self.sealer.task.get() {
            task.wake();
        }
    }

    /// Whether a seal is pending or running (its old segment is not yet
    /// sealed: retention must leave it alone).
    pub(super) fn sealing(&self) -> bool {
        let state = self.sealer.state.lock();
        state.job.is_some() || state.running
    }

    /// Returns once no seal is pending or running, running a pending one
    /// on this thread if no pool thread has started it.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] if a seal (now or earlier) failed, or the error
    /// of the seal run here.
    pub(super) fn wait_sealed(&self) -> Result<()> {
        self.run_pending_seal()?;
        let mut state = self.sealer.state.lock();
        while state.running {
            self.sealer.done.wait(&mut state);
        }
        drop(state);
        self.group.check()
    }

    /// Drops a pending seal without running it, and waits out a running
    /// one (a simulated crash: the seal may have been cut short at any
    /// point, or never started).
    #[cfg(any(test, feature = "test-util"))]
    pub(super) fn abandon_seal(&self) {
        if let Some(task) = self.sealer.task.get() {
            task.cancel();
        }
        let mut state = self.sealer.state.lock();
        state.job = None;
        while state.running {
            self.sealer.done.wait(&mut state);
        }
    }

    /// Runs the pending seal, if there is one and nobody runs it yet.
    fn run_pending_seal(&self) -> Result<()> {
        let mut state = self.sealer.state.lock();
        let Some(job) = state.job.take() else {
            return Ok(());
        };
        state.running = true;
        drop(state);
        let result = self.seal(job);
        if result.is_err() {
            self.group.poison();
        }
        self.sealer.state.lock().running = false;
        self.sealer.done.notify_all();
        result
    }

    fn seal(&self, job: SealJob) -> Result<()> {
        // The roll switched pre-faulting away from the old segment without
        // waiting; trimming it needs no chunk still running on it.
        self.prefaulter.wait_released(job.old.mapping());
        job.old.seal()?;
        job.next_file
            .sync_data()
            .map_err(|e| Error::io("fsync segment", &job.next_path, e))?;
        sync_dir(&self.dir)?;
        self.sealed_up_to(job.next_start)
    }
}
