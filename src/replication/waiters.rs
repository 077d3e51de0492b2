//! [`Waiters`]: a replica's sleeping threads, in two groups woken by
//! different events, so an append does not wake every producer and a
//! high-watermark rise does not wake a fetch for nothing it waits for.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::notifier::Notifier;

/// The two groups of a replica's waiters. Each group's conditions read only
/// atomics (see [`Notifier`]), so any of these may be called with any lock
/// held.
#[derive(Debug, Default)]
pub(super) struct Waiters {
    /// Long-polling fetches (`handle_fetch_waiting`): they wait for records
    /// past their offset (under [`Waiters::fetch_after_sync`], records a
    /// sync has started on), a higher high watermark or a role change.
    pub(super) fetches: Notifier,
    /// `Acks::All` producers and `wait_committed`: they wait for the high
    /// watermark, a role change, or (a leader counting its own durable
    /// offset) a sync.
    pub(super) commits: Notifier,
    /// Whether long-polls wait for a sync to start on new records rather
    /// than for the records: set for logs under `SyncPolicy::Always`.
    fetch_after_sync: bool,
    /// The highest `next_offset` a sync of the log has started from
    /// (`LogListener::pre_sync`); lowered by truncations.
    syncing_below: AtomicU64,
}

impl Waiters {
    /// Waiters whose long-polls wait for syncs to start when
    /// `fetch_after_sync` holds (see [`Waiters::fetch_after_sync`]).
    pub(super) fn new(fetch_after_sync: bool) -> Waiters {
        Waiters {
            fetch_after_sync,
            ..Waiters::default()
        }
    }

    /// Whether a long-poll answers only once a sync has started on the
    /// records it sends. Under `SyncPolicy::Always` a follower that
    /// answered at the first append of a group fetched one or two records,
    /// synced them, and fetched the rest: two syncs per group where the
    /// leader does one. Woken at the leader's sync instead, it fetches the
    /// whole group and syncs it while the leader does.
    pub(super) fn fetch_after_sync(&self) -> bool {
        self.fetch_after_sync
    }

    /// Every record below this is durable or in a sync that has started.
    pub(super) fn syncing_below(&self) -> u64 {
        self.syncing_below.load(Ordering::SeqCst)
    }

    /// Records were appended: fetches waiting for records are woken.
    pub(super) fn appended(&self) {
        if !self.fetch_after_sync {
            self.fetches.notify();
        }
    }

    /// A sync of every record below `next_offset` is starting.
    pub(super) fn sync_starting(&self, next_offset: u64) {
        self.syncing_below.fetch_max(next_offset, Ordering::SeqCst);
        if self.fetch_after_sync {
            self.fetches.notify();
        }
    }

    /// Records from `offset` on were removed.
    pub(super) fn truncated(&self, offset: u64) {
        self.syncing_below.fetch_min(offset, Ordering::SeqCst);
    }

    /// The log's durable offset moved: the leader's own progress, which
    /// producers re-check.
    pub(super) fn durable(&self) {
        self.commits.notify();
    }

    /// The high watermark rose, a role changed, or the replica closed:
    /// everyone re-checks. Producers first: their wait is the commit
    /// latency, while a fetch woken for the high watermark only passes it
    /// on.
    pub(super) fn all(&self) {
        self.commits.notify();
        self.fetches.notify();
    }
}
