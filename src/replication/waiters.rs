//! [`Waiters`]: a replica's sleeping threads, in two groups woken by
//! different events, so an append does not wake every producer and a
//! high-watermark rise does not wake a fetch for nothing it waits for.

use crate::notifier::Notifier;

/// The two groups of a replica's waiters. Each group's conditions read only
/// atomics (see [`Notifier`]), so any of these may be called with any lock
/// held.
#[derive(Debug, Default)]
pub(super) struct Waiters {
    /// Long-polling fetches (`handle_fetch_waiting`): they wait for records
    /// past their offset, a higher high watermark or a role change.
    pub(super) fetches: Notifier,
    /// `Acks::All` producers and `wait_committed`: they wait for the high
    /// watermark, a role change, or (a leader counting its own durable
    /// offset) a sync.
    pub(super) commits: Notifier,
}

impl Waiters {
    /// Records were appended: only fetches wait for that.
    pub(super) fn appended(&self) {
        self.fetches.notify();
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
