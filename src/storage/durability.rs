//! Durability: group commit and poisoning after a failed sync.
//!
//! Appenders that need durability call [`GroupCommit::wait_durable`] with
//! the offset they need covered, after releasing the writer lock. The first
//! one that finds no sync in flight becomes the syncer: it flushes everything
//! written so far and wakes the others. Everyone who appended while that sync
//! ran is covered by the next one, so N concurrent appenders share far fewer
//! than N syncs.
//!
//! Two syncs may be in flight: a caller that arrives once a sync has
//! started flushing (so is not covered by it) starts the next one at once
//! instead of waiting for that flush to end, and the disk works while the
//! callers of the first are woken and append again. Syncs publish their
//! results in the order they started (see `sync_once` for why that is what
//! makes it safe). 16 writers under `SyncPolicy::Always` on the 2-core VM:
//! 52-71 k appends/s (median 58 k) against 47-64 k (50 k) with one sync at
//! a time, six alternating pairs.
//!
//! Right after a sync completes, the first caller to come back would start
//! the next sync with only its own append while the callers it woke are
//! still on their way, and groups would alternate between one caller and
//! the rest. So the syncer first *gathers*: it waits (yielding the CPU) until
//! as many callers have arrived as the previous sync served, or for as long
//! as that sync took (at most 500 us), whichever is first. (Waiting half as
//! long measured a little worse at 4 and 16 writers; waiting not at all,
//! worse at 4.) A lone writer never waits: the previous sync served one
//! caller, itself.
//!
//! A failed sync poisons the log: Linux may drop the dirty pages and report
//! success on a retry (PostgreSQL's "fsyncgate"), so nothing is retried and
//! every later write returns [`Error::Poisoned`] until the log is reopened.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::listener::LogListener;
use crate::notifier::Notifier;

/// A place in the log: a byte position in a segment, and the offset of the
/// record that starts there. Used for the durable point (how far a
/// completed sync got) and the recovery point (the durable point last
/// written to the checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogPosition {
    /// Offset of the record at `position`: every offset below it lies before.
    pub offset: u64,
    /// Base offset of the segment holding the place.
    pub segment_base: u64,
    /// Byte position in that segment.
    pub position: u64,
}

impl LogPosition {
    /// The start of the (empty) segment based at `base`.
    pub(crate) fn segment_start(base: u64) -> LogPosition {
        LogPosition {
            offset: base,
            segment_base: base,
            position: crate::format::SEGMENT_HEADER_BYTES as u64,
        }
    }

    /// Whether `self` lies strictly after `other` in the log.
    pub(crate) fn is_after(&self, other: &LogPosition) -> bool {
        (self.segment_base, self.position) > (other.segment_base, other.position)
    }
}

/// Longest a syncer waits for callers to gather before it flushes.
const MAX_GATHER: Duration = Duration::from_micros(500);
/// Most syncs in flight at once (see the module docs).
const MAX_IN_FLIGHT: u64 = 2;
/// How long a waiter sleeps before it looks again on its own (the
/// notifications wake it far sooner).
const RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct State {
    durable: LogPosition,
    /// `arrivals` when the last sync started.
    arrivals_at_last_sync: u64,
    /// Callers that arrived between the last two sync starts: roughly how
    /// many the last sync served.
    last_group: u64,
    /// How long the last sync took.
    last_sync_time: Duration,
    /// Syncs started so far (each one's number, from 1).
    started: u64,
}

/// Shared durability state of one log.
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    /// `state.durable.offset`, readable without the lock.
    durable_offset: AtomicU64,
    /// Told of every advance of the durable point, under the state lock.
    listener: Option<Arc<dyn LogListener>>,
    /// Syncs in flight (at most [`MAX_IN_FLIGHT`]). Changed only under the
    /// state lock (so a caller holding it sees a stable value), read
    /// without it by waiters.
    in_flight: AtomicU64,
    /// Whether a syncer is gathering callers (its flush has not started):
    /// a caller arriving now is covered by it, so it waits.
    gathering: AtomicBool,
    /// Callers numbered up to this (by arrival) are covered by a sync that
    /// has started its flush.
    flushing_covers: AtomicU64,
    /// Syncs publish their result in the order they started: the number of
    /// the last that did.
    published: AtomicU64,
    /// Where callers sleep while another syncs: woken when a sync ends, the
    /// durable point moves, or the log is poisoned. Waking them all at once
    /// (a futex) matters: a condition variable handed the state lock from
    /// one woken caller to the next, a context switch each, and with 16
    /// writers that chain took as long as the sync.
    done: Notifier,
    poisoned: AtomicBool,
    /// Calls to `wait_durable` so far.
    arrivals: AtomicU64,
    /// Truncations so far (see `reset`).
    truncations: AtomicU64,
}

impl GroupCommit {
    /// Durability state for a log whose data up to `synced` is durable.
    pub(crate) fn new(durable: LogPosition, listener: Option<Arc<dyn LogListener>>) -> GroupCommit {
        GroupCommit {
            durable_offset: AtomicU64::new(durable.offset),
            listener,
            state: Mutex::new(State {
                durable,
                arrivals_at_last_sync: 0,
                last_group: 0,
                last_sync_time: Duration::ZERO,
                started: 0,
            }),
            in_flight: AtomicU64::new(0),
            gathering: AtomicBool::new(false),
            flushing_covers: AtomicU64::new(0),
            published: AtomicU64::new(0),
            done: Notifier::default(),
            poisoned: AtomicBool::new(false),
            arrivals: AtomicU64::new(0),
            truncations: AtomicU64::new(0),
        }
    }

    /// Whether an earlier sync failed.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// `Err(Poisoned)` if an earlier sync failed.
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_poisoned() {
            Err(Error::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Marks the log poisoned (a sync outside group commit failed).
    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::SeqCst);
        self.done.notify();
    }

    /// How many truncations have reset the durable point so far.
    pub(crate) fn truncations(&self) -> u64 {
        self.truncations.load(Ordering::SeqCst)
    }

    /// Returns once every offset below `target` is durable. `flush` writes
    /// back everything appended after the given point and reports how far
    /// it got; it runs on at most one thread at a time.
    ///
    /// Also returns once a truncation after the `truncations`-th (the count
    /// when `target` was read) has reset the durable point: what it kept is
    /// durable, and what it cut is gone, so `target` may never be reached.
    /// (Waiting for it anyway flushed in a loop that held off the
    /// truncation's `reset`: a livelock.)
    pub(crate) fn wait_durable(
        &self,
        target: u64,
        truncations: u64,
        flush: impl Fn(LogPosition) -> Result<LogPosition>,
    ) -> Result<()> {
        let arrival = self.arrivals.fetch_add(1, Ordering::AcqRel) + 1;
        loop {
            let mut state = self.state.lock();
            self.check()?;
            if state.durable.offset >= target || self.truncations() != truncations {
                return Ok(());
            }
            if !self.may_start_sync(arrival) {
                drop(state);
                self.wait_for_turn(target, truncations, arrival);
                continue;
            }
            self.sync_once(&mut state, &flush)?;
        }
    }

    /// Whether the caller that arrived `arrival`-th may start a sync: none
    /// is in flight, or one is flushing without covering it and there is
    /// room for another.
    fn may_start_sync(&self, arrival: u64) -> bool {
        match self.in_flight.load(Ordering::SeqCst) {
            0 => true,
            n if n < MAX_IN_FLIGHT => {
                !self.gathering.load(Ordering::SeqCst) && self.flushing_covers.load(Ordering::SeqCst) < arrival
            }
            _ => false,
        }
    }

    /// Runs one sync as its syncer: gathers callers, flushes, then waits
    /// for the syncs started before it to publish and publishes its own
    /// result. The caller holds the state lock, which this releases while
    /// it gathers, flushes and waits.
    ///
    /// Publishing in order is what makes two syncs in flight safe. Each
    /// flushes from the durable point it saw, so a later one also waits
    /// for the write-back of the earlier one's pages; but a write-back
    /// error is reported to one `msync` only, and if the earlier one took
    /// it, the later one succeeds. It must then not publish a durable point
    /// over the failed pages: it waits, finds the log poisoned, and fails.
    fn sync_once(
        &self,
        state: &mut parking_lot::MutexGuard<'_, State>,
        flush: &impl Fn(LogPosition) -> Result<LogPosition>,
    ) -> Result<()> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.gathering.store(true, Ordering::SeqCst);
        state.started += 1;
        let number = state.started;
        let from = state.durable;
        let gather_goal = state.arrivals_at_last_sync + state.last_group;
        let gather_for = state.last_sync_time.min(MAX_GATHER);
        let started = parking_lot::MutexGuard::unlocked(state, || self.gather(gather_goal, gather_for));
        state.last_group = started.saturating_sub(state.arrivals_at_last_sync);
        state.arrivals_at_last_sync = state.arrivals_at_last_sync.max(started);
        self.flushing_covers.fetch_max(started, Ordering::SeqCst);
        self.gathering.store(false, Ordering::SeqCst);
        if self.arrivals.load(Ordering::SeqCst) > started {
            // Callers this sync does not cover are waiting: one may start
            // the next sync beside this one.
            self.done.notify();
        }
        let (result, took) = parking_lot::MutexGuard::unlocked(state, || {
            let clock = Instant::now();
            let result = flush(from);
            let took = clock.elapsed();
            // The syncs started before this one publish first.
            while self.published.load(Ordering::SeqCst) + 1 != number {
                self.done.wait_until(Instant::now() + RECHECK, || {
                    self.published.load(Ordering::SeqCst) + 1 == number
                });
            }
            (result, took)
        });
        state.last_sync_time = took;
        let outcome = match (result, self.check()) {
            (Ok(to), Ok(())) => {
                if to.offset >= state.durable.offset {
                    self.set_durable(state, to);
                    self.notify_durable(to.offset);
                }
                Ok(())
            }
            (Ok(_), Err(poisoned)) => Err(poisoned),
            (Err(e), _) => {
                self.poisoned.store(true, Ordering::SeqCst);
                Err(e)
            }
        };
        self.published.store(number, Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.done.notify();
        outcome
    }

    /// Sleeps, without the state lock, until the caller that arrived
    /// `arrival`-th may start a sync, the durable point covers `target`, a
    /// truncation came, or the log was poisoned.
    fn wait_for_turn(&self, target: u64, truncations: u64, arrival: u64) {
        self.done.wait_until(Instant::now() + RECHECK, || {
            self.may_start_sync(arrival)
                || self.durable_offset.load(Ordering::SeqCst) >= target
                || self.truncations() != truncations
                || self.is_poisoned()
        });
    }

    /// Waits, yielding the CPU to the callers on their way, until `goal`
    /// callers have arrived or `patience` has passed. Returns the arrivals
    /// the sync about to start covers.
    fn gather(&self, goal: u64, patience: Duration) -> u64 {
        let deadline = Instant::now() + patience;
        loop {
            let arrived = self.arrivals.load(Ordering::Acquire);
            if arrived >= goal || Instant::now() >= deadline {
                return arrived;
            }
            std::thread::yield_now();
        }
    }

    /// After a truncation (which syncs what it keeps itself, and holds the
    /// writer lock): ends the waits for offsets it may have cut, waits out a
    /// sync in flight, then sets the durable point to `durable`, which may be
    /// lower than before.
    pub(crate) fn reset(&self, durable: LogPosition) {
        self.truncations.fetch_add(1, Ordering::SeqCst);
        self.done.notify();
        let mut state = self.state.lock();
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            drop(state);
            self.done
                .wait_until(Instant::now() + RECHECK, || self.in_flight.load(Ordering::SeqCst) == 0);
            state = self.state.lock();
        }
        self.set_durable(&mut state, durable);
        self.done.notify();
    }

    /// Raises the durable point to `durable` if it lies after it (a sealed
    /// segment was synced by its writer): no flush, no waiting.
    pub(crate) fn advance(&self, durable: LogPosition) {
        let mut state = self.state.lock();
        if durable.offset >= state.durable.offset && durable.is_after(&state.durable) {
            self.set_durable(&mut state, durable);
            self.notify_durable(durable.offset);
            self.done.notify();
        }
    }

    fn notify_durable(&self, offset: u64) {
        if let Some(listener) = &self.listener {
            listener.post_durable(offset);
        }
    }

    fn set_durable(&self, state: &mut State, durable: LogPosition) {
        state.durable = durable;
        self.durable_offset.store(durable.offset, Ordering::SeqCst);
    }

    /// The durable point.
    pub(crate) fn durable(&self) -> LogPosition {
        self.state.lock().durable
    }

    /// Every offset below this survives a crash now. Lock-free.
    pub(crate) fn durable_offset(&self) -> u64 {
        self.durable_offset.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64) -> LogPosition {
        LogPosition {
            offset,
            segment_base: 0,
            position: offset,
        }
    }

    #[test]
    fn concurrent_waiters_share_syncs() {
        let group = Arc::new(GroupCommit::new(at(0), None));
        let written = Arc::new(AtomicU64::new(0));
        let flushes = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (group, written, flushes) = (group.clone(), written.clone(), flushes.clone());
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        let target = written.fetch_add(1, Ordering::SeqCst) + 1;
                        group
                            .wait_durable(target, 0, |_| {
                                flushes.fetch_add(1, Ordering::SeqCst);
                                let upto = written.load(Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_micros(200));
                                Ok(at(upto))
                            })
                            .unwrap();
                        assert!(group.durable().offset >= target);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let flushes = flushes.load(Ordering::SeqCst);
        assert!(
            flushes < 800,
            "8 threads x 100 appends took {flushes} syncs: no grouping"
        );
    }

    /// Found by the model test, which hung under `SyncPolicy::Interval`: a
    /// waiter for offsets a truncation had cut flushed in a loop that held
    /// off the truncation's reset (fixed in e826cc3).
    #[test]
    fn a_truncation_ends_waits_for_offsets_it_cut() {
        // The waiter's target (10) is past anything a flush will ever reach
        // (5, the end after the truncation): only the reset can end it.
        let group = Arc::new(GroupCommit::new(at(0), None));
        let truncations = group.truncations();
        let waiter = {
            let group = Arc::clone(&group);
            std::thread::spawn(move || {
                group.wait_durable(10, truncations, |_| {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    Ok(at(5))
                })
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        group.reset(at(5));
        waiter.join().unwrap().unwrap();
        assert_eq!(group.durable().offset, 5);
        // A waiter that read the count after the truncation waits as usual.
        group.wait_durable(6, group.truncations(), |_| Ok(at(6))).unwrap();
        assert_eq!(group.durable().offset, 6);
    }

    #[test]
    fn the_end_of_a_sync_wakes_every_waiter_at_once() {
        // One caller syncs for 50 ms; seven more arrive meanwhile and sleep
        // (one of them may start a second sync beside it, which publishes
        // after the first). They must be back well before `RECHECK`, the
        // interval at which a waiter whose notification was lost would
        // look again on its own.
        let group = Arc::new(GroupCommit::new(at(0), None));
        let syncer = {
            let group = Arc::clone(&group);
            std::thread::spawn(move || {
                group.wait_durable(1, 0, |_| {
                    std::thread::sleep(Duration::from_millis(50));
                    Ok(at(8))
                })
            })
        };
        while group.in_flight.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        let start = Instant::now();
        let waiters: Vec<_> = (2..=8)
            .map(|target| {
                let group = Arc::clone(&group);
                std::thread::spawn(move || group.wait_durable(target, 0, |_| Ok(at(8))))
            })
            .collect();
        syncer.join().unwrap().unwrap();
        for waiter in waiters {
            waiter.join().unwrap().unwrap();
        }
        let waited = start.elapsed();
        assert!(
            waited < RECHECK / 2,
            "waiters took {waited:?}: the end of the sync did not wake them"
        );
    }

    /// Starts a caller of `wait_durable(target)` whose flush runs `flush`,
    /// once the sync in flight (if any) has finished gathering.
    fn caller(
        group: &Arc<GroupCommit>,
        target: u64,
        flush: impl Fn(LogPosition) -> Result<LogPosition> + Send + 'static,
    ) -> std::thread::JoinHandle<Result<()>> {
        while group.gathering.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let group = Arc::clone(group);
        std::thread::spawn(move || group.wait_durable(target, 0, flush))
    }

    fn wait_for_in_flight(group: &GroupCommit, n: u64) {
        while group.in_flight.load(Ordering::SeqCst) != n || group.gathering.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_caller_the_sync_in_flight_does_not_cover_starts_the_next_beside_it() {
        let group = Arc::new(GroupCommit::new(at(0), None));
        let overlapped = Arc::new(AtomicBool::new(false));
        let first = caller(&group, 1, |_| {
            std::thread::sleep(Duration::from_millis(50));
            Ok(at(1))
        });
        wait_for_in_flight(&group, 1);
        let second = {
            let overlapped = Arc::clone(&overlapped);
            let group_seen = Arc::clone(&group);
            caller(&group, 2, move |_| {
                overlapped.store(group_seen.in_flight.load(Ordering::SeqCst) == 2, Ordering::SeqCst);
                Ok(at(2))
            })
        };
        first.join().unwrap().unwrap();
        second.join().unwrap().unwrap();
        assert!(
            overlapped.load(Ordering::SeqCst),
            "the second sync waited for the first"
        );
        assert_eq!(group.durable().offset, 2);
    }

    /// A later sync that succeeds while an earlier one fails (the earlier
    /// `msync` took the write-back error of pages both cover) must not
    /// publish a durable point over the failed pages.
    #[test]
    fn a_later_sync_never_publishes_over_an_earlier_failed_one() {
        let group = Arc::new(GroupCommit::new(at(0), None));
        let first = caller(&group, 1, |_| {
            std::thread::sleep(Duration::from_millis(50));
            Err(Error::io("msync", "x", std::io::Error::other("EIO")))
        });
        wait_for_in_flight(&group, 1);
        let second = caller(&group, 2, |_| Ok(at(2)));
        assert!(matches!(first.join().unwrap(), Err(Error::Io { .. })));
        assert!(matches!(second.join().unwrap(), Err(Error::Poisoned)));
        assert_eq!(
            group.durable().offset,
            0,
            "the second sync published over the failed one"
        );
        assert_eq!(group.durable_offset(), 0);
    }

    #[test]
    fn a_failed_sync_poisons_everyone() {
        let group = GroupCommit::new(at(0), None);
        let err = group.wait_durable(1, 0, |_| Err(Error::io("msync", "x", std::io::Error::other("boom"))));
        assert!(matches!(err, Err(Error::Io { .. })));
        assert!(matches!(group.wait_durable(1, 0, |_| Ok(at(5))), Err(Error::Poisoned)));
        assert!(group.is_poisoned());
    }
}
