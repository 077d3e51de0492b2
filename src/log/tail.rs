//! Tailing: waiting until the log holds an offset.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{Log, Shared};

/// Wakes tailers waiting in [`Log::wait_for`].
#[derive(Default)]
pub(super) struct Tailers {
    lock: Mutex<()>,
    appended: Condvar,
    waiting: AtomicUsize,
}

impl Tailers {
    /// Wakes waiting tailers; free when nobody waits.
    #[inline(always)]
    pub(super) fn notify(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock();
            self.appended.notify_all();
        }
    }
}

impl Log {
    /// Waits until the log holds `offset` (`next_offset() > offset`) or
    /// `timeout` passes (real time, not the log's clock); returns whether it
    /// does. For tailing readers: wakes as soon as an append publishes the
    /// offset, before it is durable.
    pub fn wait_for(&self, offset: u64, timeout: Duration) -> bool {
        self.shared.wait_for(offset, timeout)
    }
}

impl Shared {
    fn wait_for(&self, offset: u64, timeout: Duration) -> bool {
        let holds = || self.next_offset.load(Ordering::SeqCst) > offset;
        if holds() {
            return true;
        }
        let deadline = Instant::now() + timeout;
        let tailers = &self.tailers;
        tailers.waiting.fetch_add(1, Ordering::SeqCst);
        let mut guard = tailers.lock.lock();
        let result = loop {
            if holds() {
                break true;
            }
            if tailers.appended.wait_until(&mut guard, deadline).timed_out() {
                break holds();
            }
        };
        drop(guard);
        tailers.waiting.fetch_sub(1, Ordering::SeqCst);
        result
    }
}
