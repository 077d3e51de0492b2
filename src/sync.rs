//! Durability: group commit and poisoning after a failed sync.
//!
//! Appenders that need durability call [`GroupCommit::wait_durable`] with
//! the offset they need covered, after releasing the writer lock. The first
//! one that finds no sync in flight becomes the syncer: it flushes everything
//! written so far and wakes the others. Everyone who appended while that sync
//! ran is covered by the next one, so N concurrent appenders share far fewer
//! than N syncs.
//!
//! A failed sync poisons the log: Linux may drop the dirty pages and report
//! success on a retry (PostgreSQL's "fsyncgate"), so nothing is retried and
//! every later write returns [`Error::Poisoned`] until the log is reopened.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};

/// Where a completed sync got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyncedTo {
    /// Every offset below this is durable.
    pub offset: u64,
    /// Segment holding the synced end.
    pub segment_base: u64,
    /// Byte position of the synced end in that segment.
    pub position: u64,
}

#[derive(Debug)]
struct State {
    synced: SyncedTo,
    syncing: bool,
}

/// Shared durability state of one log.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
    poisoned: AtomicBool,
}

impl GroupCommit {
    /// Durability state for a log whose data up to `synced` is durable.
    pub(crate) fn new(synced: SyncedTo) -> GroupCommit {
        GroupCommit {
            state: Mutex::new(State { synced, syncing: false }),
            done: Condvar::new(),
            poisoned: AtomicBool::new(false),
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
        self.poisoned.store(true, Ordering::Release);
        let _guard = self.state.lock();
        self.done.notify_all();
    }

    /// Returns once every offset below `target` is durable. `flush` writes
    /// back everything appended after the given point and reports how far
    /// it got; it runs on at most one thread at a time.
    pub(crate) fn wait_durable(&self, target: u64, flush: impl Fn(SyncedTo) -> Result<SyncedTo>) -> Result<()> {
        let mut state = self.state.lock();
        loop {
            self.check()?;
            if state.synced.offset >= target {
                return Ok(());
            }
            if state.syncing {
                self.done.wait(&mut state);
                continue;
            }
            state.syncing = true;
            let from = state.synced;
            let result = parking_lot::MutexGuard::unlocked(&mut state, || flush(from));
            state.syncing = false;
            match result {
                Ok(to) => {
                    if to.offset >= state.synced.offset {
                        state.synced = to;
                    }
                    self.done.notify_all();
                }
                Err(e) => {
                    self.poisoned.store(true, Ordering::Release);
                    self.done.notify_all();
                    return Err(e);
                }
            }
        }
    }

    /// After a truncation (which syncs what it keeps itself): waits out a
    /// sync in flight, then sets the durable point to `synced`, which may be
    /// lower than before.
    pub(crate) fn reset(&self, synced: SyncedTo) {
        let mut state = self.state.lock();
        while state.syncing {
            self.done.wait(&mut state);
        }
        state.synced = synced;
    }

    /// The durable point.
    pub(crate) fn synced(&self) -> SyncedTo {
        self.state.lock().synced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    fn at(offset: u64) -> SyncedTo {
        SyncedTo {
            offset,
            segment_base: 0,
            position: offset,
        }
    }

    #[test]
    fn concurrent_waiters_share_syncs() {
        let group = Arc::new(GroupCommit::new(at(0)));
        let written = Arc::new(AtomicU64::new(0));
        let flushes = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (group, written, flushes) = (group.clone(), written.clone(), flushes.clone());
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        let target = written.fetch_add(1, Ordering::SeqCst) + 1;
                        group
                            .wait_durable(target, |_| {
                                flushes.fetch_add(1, Ordering::SeqCst);
                                let upto = written.load(Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_micros(200));
                                Ok(at(upto))
                            })
                            .unwrap();
                        assert!(group.synced().offset >= target);
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

    #[test]
    fn a_failed_sync_poisons_everyone() {
        let group = GroupCommit::new(at(0));
        let err = group.wait_durable(1, |_| Err(Error::io("msync", "x", std::io::Error::other("boom"))));
        assert!(matches!(err, Err(Error::Io { .. })));
        assert!(matches!(group.wait_durable(1, |_| Ok(at(5))), Err(Error::Poisoned)));
        assert!(group.is_poisoned());
    }
}
