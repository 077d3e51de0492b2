//! [`LogListener`]: hooks called after the log changes, for replication,
//! metrics and tests.

use std::fmt;

/// Called after each kind of change to a [`Log`](crate::Log). Every method
/// defaults to doing nothing; implement the ones you need and pass the
/// listener with [`Options::listener`](crate::Options::listener).
///
/// # Threading
///
/// Each method runs synchronously on the thread that made the change, with
/// one of the log's internal locks held (all but `pre_sync`), so calls of
/// one kind arrive in the order the changes happened and never
/// concurrently with each other:
///
/// | method | called by | lock held |
/// |---|---|---|
/// | `post_append` | the appending thread | the writer lock |
/// | `post_roll` | the appending thread | the writer lock |
/// | `post_truncate` | the thread in `truncate` or `reset` | the writer lock |
/// | `post_delete_segments` | the thread enforcing retention or `delete_before` (an appender, at a roll) | the writer lock |
/// | `post_durable` | the thread whose sync completed (an appender, a caller of `sync`, or a background pool thread running an interval sync) | the durability lock |
/// | `pre_sync` | the thread starting a sync (as for `post_durable`); two syncs may start at once, so two calls may overlap | none |
///
/// A listener must return quickly and must not call back into the log's
/// writing path (`append*`, `sync`, `truncate`, `reset`, `delete_before`,
/// `enforce_retention`, `set_leader_epoch`, `close`) from any method: the
/// lock it is called under is the one those need, and the call would
/// deadlock. Reads (`read`, `iter`, `batches`, `next_offset`,
/// `durable_offset`, ...) take none of these locks and are allowed. To act
/// on an event with a write, hand it to another thread.
pub trait LogListener: Send + Sync {
    /// Records `[base_offset, next_offset)` were appended (as one batch, or
    /// several verbatim batches) and are visible to readers; not yet
    /// necessarily durable.
    fn post_append(&self, base_offset: u64, next_offset: u64) {
        let _ = (base_offset, next_offset);
    }

    /// Every offset below `durable_offset` now survives a crash.
    fn post_durable(&self, durable_offset: u64) {
        let _ = durable_offset;
    }

    /// A sync of the active segment is starting (for `sync`, an append
    /// under `SyncPolicy::Always`, or an interval sync) that makes every
    /// record below `next_offset` durable, and perhaps more: under
    /// `SyncPolicy::Always`, the appends it serves are all in. Called
    /// before the sync's write-back, so a listener may start work that
    /// overlaps it (a leader answering its followers' fetches with the
    /// records being synced, say). A seal's sync of a full segment is not
    /// announced; `post_durable` reports every sync that completes.
    fn pre_sync(&self, next_offset: u64) {
        let _ = next_offset;
    }

    /// Every record at or after `offset` was removed (by `truncate`, or by
    /// `reset`, which also moves the start to `offset`).
    fn post_truncate(&self, offset: u64) {
        let _ = offset;
    }

    /// The active segment was sealed and a new one starts at `base_offset`.
    fn post_roll(&self, base_offset: u64) {
        let _ = base_offset;
    }

    /// Whole segments were deleted from the front; the log now starts at
    /// `start_offset`.
    fn post_delete_segments(&self, start_offset: u64) {
        let _ = start_offset;
    }
}

/// The listener that does nothing (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoListener;

impl LogListener for NoListener {}

impl fmt::Debug for dyn LogListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogListener")
    }
}
