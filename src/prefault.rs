//! Pre-faulting: a background thread keeps the pages just past the write
//! position of the active segment faulted in and writable
//! (`MADV_POPULATE_WRITE`), so appends copy into memory without taking a
//! page fault. On a kernel without that advice the thread stops and the
//! writer takes the faults itself (slower, not wrong).

use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::mmap::MappedFile;

/// Bytes populated per `madvise` call, so a retarget never waits long.
const CHUNK_BYTES: u64 = 1 << 20;

#[derive(Debug, Default)]
struct State {
    target: Option<Arc<MappedFile>>,
    done_to: u64,
    wanted_to: u64,
    busy: bool,
    stop: bool,
    unsupported: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// Handle on the pre-fault thread of one log.
#[derive(Debug)]
pub(crate) struct Prefaulter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Prefaulter {
    /// Starts the thread (none when `enabled` is false).
    pub(crate) fn start(enabled: bool) -> Prefaulter {
        let shared = Arc::new(Shared::default());
        let thread = enabled.then(|| {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("replog-prefault".into())
                .spawn(move || run(&shared))
                .expect("spawning the pre-fault thread")
        });
        Prefaulter { shared, thread }
    }

    /// Asks for `[.., upto)` of the current target to be populated.
    pub(crate) fn request(&self, upto: u64) {
        if self.thread.is_none() {
            return;
        }
        let mut state = self.shared.state.lock();
        if upto > state.wanted_to {
            state.wanted_to = upto;
            self.shared.changed.notify_all();
        }
    }

    /// Switches to a new mapping (or to none), starting at `from`. Returns
    /// once the thread no longer touches the previous mapping, so it may be
    /// trimmed.
    pub(crate) fn retarget(&self, target: Option<Arc<MappedFile>>, from: u64) {
        let mut state = self.shared.state.lock();
        while state.busy {
            self.shared.changed.wait(&mut state);
        }
        state.target = target;
        state.done_to = from;
        state.wanted_to = from;
        self.shared.changed.notify_all();
    }

    /// Stops and joins the thread.
    pub(crate) fn stop(&mut self) {
        self.shared.state.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Prefaulter {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: &Shared) {
    let mut state = shared.state.lock();
    loop {
        if state.stop {
            return;
        }
        let work = match &state.target {
            Some(map) if !state.unsupported && state.done_to < state.wanted_to.min(map.len()) => {
                let end = state.wanted_to.min(map.len()).min(state.done_to + CHUNK_BYTES);
                Some((Arc::clone(map), state.done_to, end))
            }
            _ => None,
        };
        let Some((map, start, end)) = work else {
            shared.changed.wait(&mut state);
            continue;
        };
        state.busy = true;
        let result = parking_lot::MutexGuard::unlocked(&mut state, || map.populate(start..end));
        state.busy = false;
        if result.is_err() {
            state.unsupported = true;
        }
        let same_target = state.target.as_ref().is_some_and(|t| Arc::ptr_eq(t, &map));
        if same_target && state.done_to == start {
            state.done_to = end;
        }
        shared.changed.notify_all();
    }
}
