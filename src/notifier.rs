//! [`Notifier`]: where waiters sleep until something they watch changed:
//! the log's tailers (`Log::wait_for`, `Log::tail`) and every waiter of a
//! replica (an `Acks::All` producer, `wait_committed`, a long-polling
//! fetch). Below both, so neither depends on the other.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering, fence};
use std::time::Instant;

use rustix::thread::futex;

/// Wakes waiters when anything they may wait for changed (an append, a
/// sync, the high watermark, a role, a close).
///
/// Waiters' conditions read only atomics, never a lock of the replica or
/// the log, so `notify` may be called with any lock held.
///
/// Built on a futex over a generation counter rather than a mutex and a
/// condition variable: a notification wakes every waiter at once and none
/// has to take a lock to return, where a condition variable hands its
/// mutex from one woken waiter to the next (with many producers waiting
/// for the high watermark, that chain of wake-ups, a context switch each,
/// was most of the commit latency).
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    /// Bumped by every notification that finds a waiter; waiters sleep on
    /// it (the futex word).
    generation: AtomicU32,
    waiters: AtomicUsize,
}

impl Notifier {
    /// Wakes every waiter. Costs a fence and an atomic load when nobody
    /// waits (it is on the append path).
    #[inline]
    pub(crate) fn notify(&self) {
        // Orders the caller's change of what waiters watch before the load
        // of `waiters`; pairs with the fence in `wait_until`, so either
        // this sees the waiter or the waiter sees the change.
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) == 0 {
            return;
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        // The kernel reads the count as an `int`: `u32::MAX` would be -1,
        // which wakes one waiter. An error (none is documented for a wake)
        // would only leave a waiter to its deadline.
        let _ = futex::wake(&self.generation, futex::Flags::PRIVATE, i32::MAX as u32);
    }

    /// Waits until `done` holds or `deadline` passes; returns whether it
    /// holds. `done` must read only atomics (see the type's docs).
    pub(crate) fn wait_until(&self, deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
        if done() {
            return true;
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let held = loop {
            // Read before checking: a notification after the check changes
            // it, so the wait below returns at once instead of sleeping
            // through it.
            let generation = self.generation.load(Ordering::SeqCst);
            if done() {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            let left = deadline - now;
            let timeout = rustix::time::Timespec {
                tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: left.subsec_nanos().into(),
            };
            // Returns on a wake, a changed generation (`EAGAIN`), a signal
            // (`EINTR`) or the timeout: each goes round the loop again.
            let _ = futex::wait(&self.generation, futex::Flags::PRIVATE, generation, Some(&timeout));
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        held
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::time::Duration;

    use super::*;

    /// Far beyond any wake-up: a waiter that returns this late was woken by
    /// its deadline, not by the notification.
    const PATIENCE: Duration = Duration::from_secs(20);

    #[test]
    fn one_notification_wakes_every_waiter_at_once() {
        let notifier = Arc::new(Notifier::default());
        let flag = Arc::new(AtomicBool::new(false));
        let waiting: Vec<_> = (0..8)
            .map(|_| {
                let (notifier, flag) = (Arc::clone(&notifier), Arc::clone(&flag));
                std::thread::spawn(move || {
                    let start = Instant::now();
                    let held = notifier.wait_until(start + PATIENCE, || flag.load(Ordering::SeqCst));
                    (held, start.elapsed())
                })
            })
            .collect();
        while notifier.waiters.load(Ordering::SeqCst) < 8 {
            std::thread::yield_now();
        }
        flag.store(true, Ordering::SeqCst);
        notifier.notify();
        for waiter in waiting {
            let (held, waited) = waiter.join().unwrap();
            assert!(held);
            assert!(
                waited < PATIENCE / 2,
                "a waiter slept {waited:?}: the notification missed it"
            );
        }
    }

    #[test]
    fn no_notification_is_lost_between_check_and_sleep() {
        // Two threads hand a counter back and forth 20 000 times, each
        // notifying right after its store: a notification lost in the
        // window between a waiter's check and its sleep stalls the ring
        // until the deadline.
        let notifiers = Arc::new([Notifier::default(), Notifier::default()]);
        let counter = Arc::new(AtomicU64::new(0));
        const ROUNDS: u64 = 20_000;
        let start = Instant::now();
        let players: Vec<_> = (0..2u64)
            .map(|me| {
                let (notifiers, counter) = (Arc::clone(&notifiers), Arc::clone(&counter));
                std::thread::spawn(move || {
                    let mut turn = me;
                    while turn < 2 * ROUNDS {
                        let mine = notifiers[me as usize]
                            .wait_until(Instant::now() + PATIENCE, || counter.load(Ordering::SeqCst) == turn);
                        assert!(mine, "player {me} never got turn {turn}");
                        counter.store(turn + 1, Ordering::SeqCst);
                        notifiers[1 - me as usize].notify();
                        turn += 2;
                    }
                })
            })
            .collect();
        for player in players {
            player.join().unwrap();
        }
        let took = start.elapsed();
        assert!(
            took < PATIENCE / 2,
            "{ROUNDS} rounds took {took:?}: a notification was lost"
        );
    }

    #[test]
    fn a_wait_without_notification_ends_at_its_deadline() {
        let notifier = Notifier::default();
        let start = Instant::now();
        let held = notifier.wait_until(start + Duration::from_millis(50), || false);
        assert!(!held);
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert_eq!(notifier.waiters.load(Ordering::SeqCst), 0);
    }
}
