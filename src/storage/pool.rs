//! The process's background pool: a bounded set of threads shared by every
//! open log, for the work no caller waits on (pre-faulting ahead of a
//! writer, starting write-back behind it, interval syncs).
//!
//! A [`Task`] is woken for a moment ([`TaskHandle::wake_at`]); when that
//! moment comes, a pool thread calls [`Task::run`], which does a bounded
//! piece of work and says when it wants to run next. Each task has at most
//! one pending wake-up (the earliest asked for) and runs on one thread at a
//! time, so a task needs no guard against itself; tasks of different logs
//! run in parallel, up to the pool's size. Due tasks run in the order of
//! their wake-up times, so a busy log cannot starve the others: a task with
//! more to do asks to run again "now", behind every task already due.
//!
//! Threads start lazily, one at a time, when a task is due and no thread is
//! idle, up to [`pool_threads`]; they then live as long as the process (a
//! thousand open logs share them).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};

/// The most threads the pool runs: the number of CPUs, at least 2 (so a
/// sync that waits on the disk does not hold up pre-faulting) and at most 8.
pub(crate) fn pool_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

/// Background work of one log.
pub(crate) trait Task: Send + Sync {
    /// Does a bounded piece of work; returns when to run again (`None`: not
    /// until woken). Never called on two threads at once for one task.
    fn run(&self) -> Option<Instant>;
}

/// A task registered with the pool. Dropping it cancels the task (see
/// [`TaskHandle::cancel`]).
pub(crate) struct TaskHandle {
    pool: &'static Pool,
    id: u64,
    task: Arc<dyn Task>,
}

impl std::fmt::Debug for TaskHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl TaskHandle {
    /// Registers `task` with the process's pool, starting its first thread
    /// if there is none yet.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the pool has no thread and cannot start one.
    pub(crate) fn register(task: Arc<dyn Task>, dir: &std::path::Path) -> Result<TaskHandle> {
        let pool = Pool::global();
        pool.ensure_a_thread()
            .map_err(|e| Error::io("start a background thread", dir, e))?;
        Ok(TaskHandle {
            pool,
            id: pool.next_id.fetch_add(1, Ordering::Relaxed),
            task,
        })
    }

    /// Asks for the task to run at `at` (at once if that has passed), unless
    /// it is already due to run earlier.
    pub(crate) fn wake_at(&self, at: Instant) {
        self.pool.wake(self.id, &self.task, at);
    }

    /// Asks for the task to run as soon as a thread is free.
    pub(crate) fn wake(&self) {
        self.wake_at(Instant::now());
    }

    /// Drops any pending wake-up and waits until no other thread runs the
    /// task; it is not run again until woken.
    pub(crate) fn cancel(&self) {
        self.pool.cancel(self.id);
    }
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        self.cancel();
    }
}

struct Pool {
    state: Mutex<State>,
    /// Signalled when a task becomes due earlier than before, or finishes.
    changed: Condvar,
    next_id: AtomicU64,
    threads_max: usize,
}

#[derive(Default)]
struct State {
    /// Pending wake-ups by time, at most one per task.
    due: BTreeMap<(Instant, u64), Arc<dyn Task>>,
    /// The pending wake-up of each task, by id.
    wake_of: HashMap<u64, Instant>,
    /// The tasks being run, and by which thread.
    running: HashMap<u64, ThreadId>,
    threads: usize,
    idle: usize,
}

impl Pool {
    fn global() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| Pool {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            next_id: AtomicU64::new(0),
            threads_max: pool_threads(),
        })
    }

    fn ensure_a_thread(&'static self) -> std::io::Result<()> {
        let mut state = self.state.lock();
        if state.threads == 0 {
            self.spawn(&mut state)?;
        }
        Ok(())
    }

    fn spawn(&'static self, state: &mut State) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("replog-background".into())
            .spawn(move || self.work())?;
        state.threads += 1;
        Ok(())
    }

    fn wake(&'static self, id: u64, task: &Arc<dyn Task>, at: Instant) {
        let mut state = self.state.lock();
        if state.wake_of.get(&id).is_some_and(|&pending| pending <= at) {
            return;
        }
        state.set_wake(id, task, at);
        // A failed spawn is not an error: the threads there are run the task.
        if state.idle == 0 && state.threads < self.threads_max {
            let _ = self.spawn(&mut state);
        }
        self.changed.notify_one();
    }

    fn cancel(&self, id: u64) {
        let mut state = self.state.lock();
        if let Some(at) = state.wake_of.remove(&id) {
            state.due.remove(&(at, id));
        }
        // From the task's own run (which can drop the last handle on the
        // log that owns it), waiting would never end.
        let me = std::thread::current().id();
        while state.running.get(&id).is_some_and(|&thread| thread != me) {
            self.changed.wait(&mut state);
        }
    }

    fn work(&self) {
        let mut state = self.state.lock();
        loop {
            let now = Instant::now();
            let Some((id, task)) = state.take_due(now) else {
                state.idle += 1;
                match state.next_wake(now) {
                    Some(at) => {
                        self.changed.wait_until(&mut state, at);
                    }
                    None => self.changed.wait(&mut state),
                }
                state.idle -= 1;
                continue;
            };
            state.running.insert(id, std::thread::current().id());
            // A task that panics (a bug) is not run again until woken, and
            // neither its thread nor a `cancel` waiting for it is lost with
            // it: the pool would otherwise keep counting a dead thread and
            // list the task as running forever, and the log's close would
            // hang.
            let run = std::panic::AssertUnwindSafe(|| task.run());
            let next = parking_lot::MutexGuard::unlocked(&mut state, || std::panic::catch_unwind(run)).unwrap_or(None);
            state.running.remove(&id);
            if let Some(at) = next
                && state.wake_of.get(&id).is_none_or(|&pending| at < pending)
            {
                state.set_wake(id, &task, at);
            }
            // Wakes cancellers, and threads that skipped this task while it ran.
            self.changed.notify_all();
        }
    }
}

impl State {
    fn set_wake(&mut self, id: u64, task: &Arc<dyn Task>, at: Instant) {
        if let Some(old) = self.wake_of.insert(id, at) {
            self.due.remove(&(old, id));
        }
        self.due.insert((at, id), Arc::clone(task));
    }

    /// Takes the earliest due task that no thread is running.
    fn take_due(&mut self, now: Instant) -> Option<(u64, Arc<dyn Task>)> {
        let key = *self
            .due
            .range(..=(now, u64::MAX))
            .map(|(key, _)| key)
            .find(|(_, id)| !self.running.contains_key(id))?;
        self.wake_of.remove(&key.1);
        self.due.remove(&key).map(|task| (key.1, task))
    }

    /// When the next task not running now falls due (`None`: none pending,
    /// or only tasks being run, whose end notifies).
    fn next_wake(&self, now: Instant) -> Option<Instant> {
        self.due
            .keys()
            .find(|(at, id)| *at > now || !self.running.contains_key(id))
            .map(|(at, _)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Counts its runs and checks it never runs twice at once.
    #[derive(Default)]
    struct Counter {
        runs: AtomicUsize,
        inside: AtomicUsize,
        again: AtomicUsize,
    }

    impl Task for Counter {
        fn run(&self) -> Option<Instant> {
            assert_eq!(self.inside.fetch_add(1, Ordering::SeqCst), 0, "ran twice at once");
            std::thread::sleep(Duration::from_micros(200));
            self.runs.fetch_add(1, Ordering::SeqCst);
            self.inside.fetch_sub(1, Ordering::SeqCst);
            let again = self
                .again
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            again.then(Instant::now)
        }
    }

    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_woken_task_runs_and_reruns_while_it_asks() {
        let counter = Arc::new(Counter::default());
        counter.again.store(5, Ordering::SeqCst);
        let handle = TaskHandle::register(counter.clone(), std::path::Path::new("test")).unwrap();
        handle.wake();
        wait_for("six runs", || counter.runs.load(Ordering::SeqCst) == 6);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(counter.runs.load(Ordering::SeqCst), 6, "ran without being woken");
    }

    #[test]
    fn wake_ups_never_run_a_task_on_two_threads() {
        let counter = Arc::new(Counter::default());
        let handle = Arc::new(TaskHandle::register(counter.clone(), std::path::Path::new("test")).unwrap());
        let wakers: Vec<_> = (0..4)
            .map(|_| {
                let handle = Arc::clone(&handle);
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        handle.wake();
                        std::thread::yield_now();
                    }
                })
            })
            .collect();
        for waker in wakers {
            waker.join().unwrap();
        }
        wait_for("a run", || counter.runs.load(Ordering::SeqCst) > 0);
        handle.cancel();
        let runs = counter.runs.load(Ordering::SeqCst);
        assert_eq!(counter.inside.load(Ordering::SeqCst), 0, "running after cancel");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(counter.runs.load(Ordering::SeqCst), runs, "ran after cancel");
    }

    #[test]
    fn a_later_wake_up_does_not_delay_an_earlier_one() {
        let counter = Arc::new(Counter::default());
        let handle = TaskHandle::register(counter.clone(), std::path::Path::new("test")).unwrap();
        handle.wake_at(Instant::now() + Duration::from_millis(5));
        handle.wake_at(Instant::now() + Duration::from_secs(3600));
        wait_for("the early run", || counter.runs.load(Ordering::SeqCst) == 1);
    }

    /// Panics in every run.
    struct Panics;

    impl Task for Panics {
        fn run(&self) -> Option<Instant> {
            panic!("a bug in a background task (planted by a test)")
        }
    }

    #[test]
    fn a_task_that_panics_loses_no_thread_and_its_cancel_returns() {
        let broken = Arc::new(TaskHandle::register(Arc::new(Panics), std::path::Path::new("test")).unwrap());
        // Never dropped: if the pool lost track of the task, the drop's
        // cancel would hang the failing test instead of letting it fail.
        std::mem::forget(Arc::clone(&broken));
        // More panics than the pool has threads: each would kill one.
        for _ in 0..pool_threads() + 2 {
            broken.wake();
            std::thread::sleep(Duration::from_millis(5));
        }
        let counter = Arc::new(Counter::default());
        let handle = TaskHandle::register(counter.clone(), std::path::Path::new("test")).unwrap();
        handle.wake();
        wait_for("a run after the panics", || counter.runs.load(Ordering::SeqCst) == 1);
        // On a thread of its own: a cancel that never returns fails the
        // wait below instead of hanging the test.
        let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&cancelled);
        std::thread::spawn(move || {
            broken.cancel();
            flag.store(true, Ordering::SeqCst);
        });
        wait_for("the cancel of the task that panicked", || {
            cancelled.load(Ordering::SeqCst)
        });
    }

    #[test]
    fn a_cancelled_wake_up_never_runs() {
        let counter = Arc::new(Counter::default());
        let handle = TaskHandle::register(counter.clone(), std::path::Path::new("test")).unwrap();
        handle.wake_at(Instant::now() + Duration::from_millis(30));
        handle.cancel();
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(counter.runs.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn many_tasks_share_a_bounded_set_of_threads() {
        let counters: Vec<Arc<Counter>> = (0..64).map(|_| Arc::default()).collect();
        let handles: Vec<TaskHandle> = counters
            .iter()
            .map(|c| TaskHandle::register(c.clone(), std::path::Path::new("test")).unwrap())
            .collect();
        for handle in &handles {
            handle.wake();
        }
        wait_for("every task", || {
            counters.iter().all(|c| c.runs.load(Ordering::SeqCst) == 1)
        });
        let threads = Pool::global().state.lock().threads;
        assert!(threads <= pool_threads(), "{threads} threads");
    }
}
