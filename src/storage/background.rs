//! The active segment's background work, run by the process's shared pool
//! (`storage::pool`) on both sides of the writer:
//!
//! - **Pre-faulting ahead**: it keeps the pages just past the write position
//!   faulted in and writable (`MADV_POPULATE_WRITE`), so appends copy into
//!   memory without taking a page fault. On a kernel without that advice it
//!   stops pre-faulting and the writer takes the faults (slower, not wrong).
//! - **Settling ahead** (when asked at start; the log asks under
//!   `SyncPolicy::Always`): after pre-faulting a chunk it writes the chunk's
//!   zeros back and syncs them, so the file system converts those extents
//!   from unwritten to written before the writer reaches them. A sync that
//!   covers the first bytes written into an unwritten extent also writes
//!   the extent change: 16 records (one fresh 4 KiB page) per `msync` took
//!   200-260 us this way against 110-135 us into settled pages, on the
//!   2-core VM (`benches/compare`'s `disk-sync` probe shows the same
//!   through `pwrite`). The log's syncs then write data only.
//! - **Writing back behind** (when asked; the log asks under
//!   `SyncPolicy::Never`): it starts write-back of frozen bytes behind the
//!   writer (without waiting for it), so the disk works while the writer
//!   goes on and sealing the segment at a roll finds little left to write. This moves no durability mark: only a
//!   sync the log itself makes counts for that.
//! - **Preparing the next segment's file** (when asked; the log asks when
//!   its rolls seal in the background): a [`Spare`], created and allocated
//!   whole, ready before the roll that takes it, so neither the roll nor
//!   the appends after it wait for the file system to allocate. One is
//!   prepared once the writer has populated half of a segment, and again
//!   after each roll takes one.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::mmap::MappedFile;
use super::pool::{Task, TaskHandle};
use super::segment_writer::{ALLOCATION_STEP_MAX_BYTES, allocation_for, allocation_step};
use super::spare::Spare;
use crate::error::Result;

/// Bytes populated per `madvise` call, so a `release` never waits long.
const CHUNK_BYTES: u64 = 1 << 20;
/// Bytes whose write-back is started per call behind the writer. A 4 MiB
/// call took 6-14 ms on the 2-core VM (starting write-back of unwritten
/// extents converts them); pre-faulting waits behind it in the same task.
const WRITE_BACK_CHUNK_BYTES: u64 = 4 << 20;

#[derive(Debug, Default)]
struct State {
    target: Option<Arc<MappedFile>>,
    done_to: u64,
    wanted_to: u64,
    /// Frozen bytes below this were flushed behind the writer.
    written_back_to: u64,
    /// The writer asked for frozen bytes below this to be flushed.
    write_back_wanted_to: u64,
    /// The mapping a pool thread is working on right now, outside the lock.
    busy_on: Option<Arc<MappedFile>>,
    /// Allocating ahead failed (a full disk): pre-fault only what the
    /// writer allocated itself, until the next switch.
    allocation_failed: bool,
    stop: bool,
    unsupported: bool,
    /// A run panicked (a bug): no more work.
    broken: bool,
    /// Where the next segment's file stands.
    spare: SpareStage,
}

/// The life of the spare segment files, one at a time. All share one
/// temporary name, so a spare is only ever created once the last one has
/// left that name (been renamed by a roll, or removed).
#[derive(Debug, Default)]
enum SpareStage {
    /// None asked for yet: one is prepared once the writer has populated
    /// half of its segment.
    #[default]
    Idle,
    /// A roll asked for one.
    Wanted,
    /// A pool thread prepares one, outside the lock.
    Preparing,
    /// Ready for the next roll.
    Ready(Spare),
    /// A roll took it and has not yet renamed it.
    Leaving,
    /// Preparing one failed (a full disk): not again until a roll asks.
    Failed,
    /// The log is closing: no more spares.
    Closed,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Where and how large to prepare spare segment files; `None`: never.
    spares: Option<(std::path::PathBuf, u64)>,
    /// Whether each populated chunk is settled (see the module docs).
    settle: bool,
    /// Makes the next run on a mapping panic (a planted bug, for tests).
    #[cfg(test)]
    panic_next: std::sync::atomic::AtomicBool,
}

/// Handle on the pre-fault work of one log.
#[derive(Debug)]
pub(crate) struct Prefaulter {
    shared: Arc<Shared>,
    /// One pool task for both sides, pre-faulting first. Two tasks (one a
    /// side) let a write-back call that waits on the file system not hold
    /// up pre-faulting, but on 2 cores they ran beside the writer and
    /// halved batched appends (`benches/compare --only append`: 15.6 M
    /// records/s with one task, 7.7 M with two, one run each; 15.0-16.6 M
    /// against 6.7-9.6 M over four alternating runs before and after).
    task: Option<TaskHandle>,
}

impl Prefaulter {
    /// Registers the work with the pool (nothing when `enabled` is false);
    /// with `settle`, each chunk pre-faulted is also settled (see the
    /// module docs).
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) if the pool has no thread and cannot
    /// start one.
    pub(crate) fn start(
        enabled: bool,
        dir: &std::path::Path,
        spare_bytes: Option<u64>,
        settle: bool,
    ) -> Result<Prefaulter> {
        let shared = Arc::new(Shared {
            spares: spare_bytes.map(|bytes| (dir.to_path_buf(), bytes)),
            settle,
            ..Shared::default()
        });
        let task = enabled
            .then(|| {
                let worker: Arc<dyn Task> = Arc::new(Worker {
                    shared: Arc::clone(&shared),
                });
                TaskHandle::register(worker, dir)
            })
            .transpose()?;
        Ok(Prefaulter { shared, task })
    }

    /// Asks for `[.., populate_to)` of the current target to be populated
    /// and, if given, its frozen bytes below `write_back_to` written back.
    pub(crate) fn request(&self, populate_to: u64, write_back_to: Option<u64>) {
        let Some(task) = &self.task else {
            return;
        };
        let mut state = self.shared.state.lock();
        let populate_raised = raise(&mut state.wanted_to, populate_to);
        let write_back_raised = write_back_to.is_some_and(|upto| raise(&mut state.write_back_wanted_to, upto));
        drop(state);
        if populate_raised || write_back_raised {
            task.wake();
        }
    }

    /// Switches to a new mapping (or to none), starting at `from`, without
    /// waiting for a chunk in progress on the previous one (a roll must not
    /// wait behind a slow `madvise`): call [`Prefaulter::wait_released`]
    /// before trimming that one.
    pub(crate) fn switch_to(&self, target: Option<Arc<MappedFile>>, from: u64) {
        let mut state = self.shared.state.lock();
        state.target = target;
        state.allocation_failed = false;
        state.done_to = from;
        state.wanted_to = from;
        state.written_back_to = from;
        state.write_back_wanted_to = from;
        drop(state);
        if let Some(task) = &self.task {
            task.wake();
        }
    }

    /// Stops working on any mapping: returns once no pool thread touches
    /// one, so any may be trimmed.
    pub(crate) fn release(&self) {
        self.switch_to(None, 0);
        let mut state = self.shared.state.lock();
        while state.busy_on.is_some() {
            self.shared.changed.wait(&mut state);
        }
    }

    /// Returns once no pool thread works on `map` (the current target
    /// must be another by then, or it is worked on again), so it may be
    /// trimmed.
    pub(crate) fn wait_released(&self, map: &Arc<MappedFile>) {
        let mut state = self.shared.state.lock();
        while state.busy_on.as_ref().is_some_and(|busy| Arc::ptr_eq(busy, map)) {
            self.shared.changed.wait(&mut state);
        }
    }

    /// The spare segment file prepared for this roll, if one is ready.
    /// The roll calls [`Prefaulter::want_spare`] once it has renamed it:
    /// all spares share one temporary name, so the next one must not be
    /// created before this one has left it.
    pub(crate) fn take_spare(&self) -> Option<Spare> {
        self.task.as_ref()?;
        let mut state = self.shared.state.lock();
        match std::mem::take(&mut state.spare) {
            SpareStage::Ready(spare) => {
                state.spare = SpareStage::Leaving;
                Some(spare)
            }
            other => {
                state.spare = other;
                None
            }
        }
    }

    /// Asks for the next spare (a roll has taken the last one, or made its
    /// file itself), after a failed preparation too.
    pub(crate) fn want_spare(&self) {
        let Some(task) = self.task.as_ref() else {
            return;
        };
        let mut state = self.shared.state.lock();
        if let SpareStage::Idle | SpareStage::Leaving | SpareStage::Failed = state.spare {
            state.spare = SpareStage::Wanted;
            drop(state);
            task.wake();
        }
    }

    /// Prepares no more spares and removes the one ready, if any (the log
    /// is closing): returns once no pool thread prepares one.
    pub(crate) fn drop_spare(&self) {
        let mut state = self.shared.state.lock();
        while let SpareStage::Preparing = state.spare {
            self.shared.changed.wait(&mut state);
        }
        let spare = std::mem::replace(&mut state.spare, SpareStage::Closed);
        drop(state);
        drop(spare);
    }

    /// Stops the work: returns once no pool thread runs it, and drops the
    /// mapping it held (and the spare file, removing it).
    pub(crate) fn stop(&mut self) {
        self.shared.state.lock().stop = true;
        if let Some(task) = self.task.take() {
            task.cancel();
        }
        let mut state = self.shared.state.lock();
        state.target = None;
        let spare = std::mem::replace(&mut state.spare, SpareStage::Closed);
        drop(state);
        drop(spare);
    }
}

impl Drop for Prefaulter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Moves `mark` up to `to`; returns whether it moved.
fn raise(mark: &mut u64, to: u64) -> bool {
    let raised = to > *mark;
    if raised {
        *mark = to;
    }
    raised
}

/// The pool task of one log's background work.
struct Worker {
    shared: Arc<Shared>,
}

/// One piece of work.
enum Work {
    OnMap(MapWork),
    PrepareSpare(std::path::PathBuf, u64),
}

/// Work on the writer's mapping, outside the lock.
enum MapWork {
    Populate(Arc<MappedFile>, u64, u64),
    WriteBack(Arc<MappedFile>, u64, u64),
}

/// The next piece of work: pre-faulting first (the writer is about to need
/// it), then preparing a spare (the next roll will), then writing back.
fn next_work(state: &State, spares: Option<&(std::path::PathBuf, u64)>) -> Option<Work> {
    if state.broken {
        return None;
    }
    let map = state.target.as_ref()?;
    let populate_limit = if state.allocation_failed {
        map.allocated()
    } else {
        map.len()
    };
    let wanted = state.wanted_to.min(populate_limit);
    if !state.unsupported && state.done_to < wanted {
        let end = wanted.min(state.done_to + CHUNK_BYTES);
        return Some(Work::OnMap(MapWork::Populate(Arc::clone(map), state.done_to, end)));
    }
    if let Some((dir, bytes)) = spares
        && match state.spare {
            SpareStage::Wanted => true,
            SpareStage::Idle => state.done_to >= map.len() / 2,
            _ => false,
        }
    {
        return Some(Work::PrepareSpare(dir.clone(), *bytes));
    }
    let write_back = state.write_back_wanted_to.min(map.frozen_len());
    if state.written_back_to < write_back {
        let end = write_back.min(state.written_back_to + WRITE_BACK_CHUNK_BYTES);
        return Some(Work::OnMap(MapWork::WriteBack(
            Arc::clone(map),
            state.written_back_to,
            end,
        )));
    }
    None
}

/// Extends the allocation by a step once the populated end comes within
/// half a step of it, after populating, for files allocated to the largest
/// step already (a busy log; a small one keeps growing only as it fills):
/// `fallocate` can wait tens of milliseconds (perf: 37 ms reading a block
/// bitmap while write-back kept the disk busy), and a writer that reaches
/// unallocated space waits for it. With half a step (32 MiB) allocated
/// past the pre-faulted pages, the writer runs on, taking its own page
/// faults, while it lasts.
fn allocate_ahead(map: &MappedFile, populated_to: u64) -> Result<()> {
    let allocated = map.allocated();
    let step = allocation_step(allocated);
    if allocated >= map.len() || step < ALLOCATION_STEP_MAX_BYTES || populated_to + step / 2 <= allocated {
        return Ok(());
    }
    map.allocate_to(allocation_for(allocated, map.len()))
}

/// Writes back and syncs the pages of `range`, just populated (so dirty,
/// holding zeros or what the writer put there since): their extents become
/// written extents now, instead of in the log's next sync.
///
/// Best effort: nothing depends on it having happened. Its sync goes
/// through a descriptor of its own. The kernel reports a write-back error
/// once to each open file description that was open when it happened, so
/// through the mapping's own, this sync would take an error for pages the
/// writer had filled, and the log's next sync would then succeed without
/// them; through a new one, the log's next sync still reports it (and
/// poisons the log), so the error is ignored here.
fn settle(map: &MappedFile, range: std::ops::Range<u64>) {
    // Cleaning a page that is still mapped write-protects it with a TLB
    // flush each (an interrupt to the other core); unmapped first, one
    // flush covers the range. The pages stay cached: the writer's first
    // store to each maps it again with a minor fault.
    if map.unmap_pages(range).is_err() {
        return;
    }
    if let Ok(file) = std::fs::File::open(map.path()) {
        let _ = file.sync_data();
    }
}

impl Task for Worker {
    /// One chunk of work; runs again at once while more is wanted.
    fn run(&self) -> Option<Instant> {
        let mut state = self.shared.state.lock();
        if state.stop {
            return None;
        }
        let work = match next_work(&state, self.shared.spares.as_ref())? {
            Work::OnMap(work) => work,
            Work::PrepareSpare(dir, bytes) => return self.prepare_spare(state, &dir, bytes),
        };
        state.busy_on = Some(match &work {
            MapWork::Populate(map, ..) | MapWork::WriteBack(map, ..) => Arc::clone(map),
        });
        let mut allocation_failed = false;
        #[cfg(test)]
        let planted_panic = self.shared.panic_next.swap(false, std::sync::atomic::Ordering::SeqCst);
        let run = std::panic::AssertUnwindSafe(|| match &work {
            #[cfg(test)]
            _ if planted_panic => panic!("a bug in the pre-fault task (planted by a test)"),
            MapWork::Populate(map, start, end) => {
                // Allocating here, ahead of the writer, keeps `fallocate` off
                // the append path; the writer allocates itself only if this
                // falls behind.
                if *end > map.allocated() && map.allocate_to(allocation_for(*end, map.len())).is_err() {
                    allocation_failed = true;
                }
                // Never past the allocation (mmap invariant 5).
                let range = *start..(*end).min(map.allocated());
                let populated = map.populate(range.clone()).is_ok();
                if populated && self.shared.settle {
                    settle(map, range);
                }
                if !allocation_failed && allocate_ahead(map, *end).is_err() {
                    allocation_failed = true;
                }
                populated
            }
            // A failed write-back start is harmless: the log's own syncs
            // write everything and report their failures.
            MapWork::WriteBack(map, start, end) => map.start_write_back(*start..*end).is_ok(),
        });
        let outcome = parking_lot::MutexGuard::unlocked(&mut state, || std::panic::catch_unwind(run));
        state.busy_on = None;
        let Ok(outcome) = outcome else {
            // A bug: no more background work for this log (the writer
            // faults and allocates itself), and nothing waiting on this run
            // (`release`, a roll's `wait_released`) waits forever.
            state.broken = true;
            self.shared.changed.notify_all();
            return None;
        };
        let same_target =
            |state: &State, map: &Arc<MappedFile>| state.target.as_ref().is_some_and(|t| Arc::ptr_eq(t, map));
        match work {
            MapWork::Populate(map, start, end) => {
                if !outcome {
                    state.unsupported = true;
                }
                if same_target(&state, &map) {
                    state.allocation_failed |= allocation_failed;
                    if state.done_to == start {
                        state.done_to = end.min(map.allocated());
                    }
                }
            }
            MapWork::WriteBack(map, start, end) => {
                if same_target(&state, &map) && state.written_back_to == start {
                    state.written_back_to = end;
                }
            }
        }
        self.finish_run(state)
    }
}

impl Worker {
    /// Prepares a spare file (outside the lock) and keeps it, unless the
    /// spares were dropped meanwhile. A failure (a full disk) only means
    /// the next roll creates its file itself.
    fn prepare_spare(
        &self,
        mut state: parking_lot::MutexGuard<'_, State>,
        dir: &std::path::Path,
        bytes: u64,
    ) -> Option<Instant> {
        state.spare = SpareStage::Preparing;
        let prepare = std::panic::AssertUnwindSafe(|| Spare::prepare(dir, bytes));
        let prepared = parking_lot::MutexGuard::unlocked(&mut state, || std::panic::catch_unwind(prepare));
        // A panic (a bug) ends the background work, as in `run`.
        state.broken |= prepared.is_err();
        // Closed meanwhile, or stopping: the spare is dropped, removing it.
        if let SpareStage::Preparing = state.spare {
            state.spare = match (prepared, state.stop) {
                (_, true) => SpareStage::Closed,
                (Ok(Ok(spare)), false) => SpareStage::Ready(spare),
                (Ok(Err(_)) | Err(_), false) => SpareStage::Failed,
            };
        }
        self.finish_run(state)
    }

    /// Wakes a `release`, `wait_released` or `drop_spare` waiting for this
    /// run, and asks to run again at once while work is left.
    fn finish_run(&self, state: parking_lot::MutexGuard<'_, State>) -> Option<Instant> {
        self.shared.changed.notify_all();
        (!state.stop && next_work(&state, self.shared.spares.as_ref()).is_some()).then(Instant::now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepares_spare(state: &State, dir: &std::path::Path) -> bool {
        let spares = (dir.to_path_buf(), 4096);
        matches!(next_work(state, Some(&spares)), Some(Work::PrepareSpare(..)))
    }

    /// A run that panics (a bug) must not leave `release` (called by a
    /// roll and by close) waiting forever for the mapping it held.
    #[test]
    fn a_run_that_panics_ends_the_work_and_leaves_nothing_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let (file, path) = crate::storage::fs::scratch_file(dir.path(), "map", 1 << 20);
        let map = MappedFile::map(&file, &path, 1 << 20, 0).unwrap();
        let prefaulter = Arc::new(Prefaulter::start(true, dir.path(), None, false).unwrap());
        // Never dropped: if the run's panic left the pool waiting on it, the
        // drop's cancel would hang the failing test instead of letting it fail.
        std::mem::forget(Arc::clone(&prefaulter));
        prefaulter
            .shared
            .panic_next
            .store(true, std::sync::atomic::Ordering::SeqCst);
        prefaulter.switch_to(Some(Arc::clone(&map)), 0);
        prefaulter.request(1 << 20, None);
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while !prefaulter.shared.state.lock().broken {
            assert!(Instant::now() < deadline, "the planted panic never ran");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // On a thread of its own, so a `release` that never returns fails
        // the wait below instead of hanging the test.
        let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, handle) = (Arc::clone(&released), Arc::clone(&prefaulter));
        std::thread::spawn(move || {
            handle.release();
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        while !released.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "release waited for the run that panicked");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        prefaulter.switch_to(Some(map), 0);
        prefaulter.request(1 << 20, None);
        assert!(
            next_work(&prefaulter.shared.state.lock(), None).is_none(),
            "work after the panic"
        );
    }

    /// A spare is prepared when a roll asks, or once the writer is half
    /// through its segment, and never while the last one still holds the
    /// shared temporary name (a roll took it and has not renamed it): a
    /// new one would truncate and then become the segment just created.
    #[test]
    fn a_spare_is_prepared_only_once_the_last_has_left_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let (file, path) = crate::storage::fs::scratch_file(dir.path(), "map", 8192);
        let map = MappedFile::map(&file, &path, 8192, 0).unwrap();
        let mut state = State {
            target: Some(map),
            ..State::default()
        };
        assert!(!prepares_spare(&state, dir.path()), "idle, writer at the start");
        state.spare = SpareStage::Wanted;
        assert!(prepares_spare(&state, dir.path()), "asked for by a roll");
        state.done_to = 8192;
        state.wanted_to = 8192;
        for stage in [
            SpareStage::Leaving,
            SpareStage::Preparing,
            SpareStage::Failed,
            SpareStage::Closed,
        ] {
            state.spare = stage;
            assert!(!prepares_spare(&state, dir.path()), "{:?}", state.spare);
        }
        state.spare = SpareStage::Idle;
        assert!(prepares_spare(&state, dir.path()), "idle, writer half through");
    }
}
