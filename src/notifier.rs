//! [`Notifier`]: where waiters sleep until something they watch changed:
//! the log's tailers (`Log::wait_for`, `Log::tail`) and every waiter of a
//! replica (an `Acks::All` producer, `wait_committed`, a long-polling
//! fetch). Below both, so neither depends on the other.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

/// Wakes waiters when anything they may wait for changed (an append, a
/// sync, the high watermark, a role, a close).
///
/// Waiters' conditions read only atomics, never a lock of the replica or
/// the log, so `notify` may be called with any lock held.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    lock: Mutex<()>,
    cond: Condvar,
    waiters: AtomicUsize,
}

impl Notifier {
    /// Wakes every waiter. Costs an atomic load when nobody waits (it is on
    /// the append path).
    #[inline]
    pub(crate) fn notify(&self) {
        if self.waiters.load(Ordering::SeqCst) == 0 {
            return;
        }
        let _guard = self.lock.lock();
        self.cond.notify_all();
    }

    /// Waits until `done` holds or `deadline` passes; returns whether it
    /// holds. `done` must read only atomics (see the type's docs).
    pub(crate) fn wait_until(&self, deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
        if done() {
            return true;
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.lock.lock();
        let held = loop {
            if done() {
                break true;
            }
            if self.cond.wait_until(&mut guard, deadline).timed_out() {
                break done();
            }
        };
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        held
    }
}
