//! [`ReplicaListener`]: how the application's control plane and metrics
//! hear about replication events.

use std::fmt;

use super::Role;
use crate::error::Error;
use crate::replica_id::ReplicaId;

/// Called after each replication event of a [`Replica`](super::Replica).
/// Every method defaults to doing nothing; pass an implementation with
/// [`ReplicaOptions::listener`](super::ReplicaOptions::listener).
///
/// # Threading
///
/// Each method runs on the thread that caused the event, after the change
/// and with **no** lock of the replica held, so a method may call back into
/// the replica (for example a coordinator in the same process may call
/// [`Replica::confirm_isr`](super::Replica::confirm_isr) from
/// `isr_change_proposed`). Calls may come from several threads at once
/// (producers, fetch handlers, follower drivers): make the listener
/// `Sync` in earnest, and keep it quick, as the caller waits for it.
///
/// | method | called by |
/// |---|---|
/// | `high_watermark_advanced` | a producer (`append`), a fetch handler (leader), or `apply` (follower) |
/// | `isr_change_proposed` | a producer or a fetch handler on the leader |
/// | `truncated` | the thread in `apply` |
/// | `role_changed` | the thread in `become_leader` or `become_follower` |
/// | `fetch_failed` | a fetch handler on the leader |
pub trait ReplicaListener: Send + Sync {
    /// The high watermark of `replica` rose to `high_watermark`: every
    /// offset below it is committed.
    fn high_watermark_advanced(&self, replica: ReplicaId, high_watermark: u64) {
        let _ = (replica, high_watermark);
    }

    /// The leader `replica` proposes the in-sync set `proposed` for
    /// `epoch`, to replace the confirmed set of version `version` (0 is the
    /// set given to `become_leader`; each `confirm_isr` adds one; see
    /// [`Replica::isr_version`](super::Replica::isr_version)). It takes
    /// effect only when the application, having recorded it where leaders
    /// are elected from, calls
    /// [`Replica::confirm_isr`](super::Replica::confirm_isr). Until then
    /// the high watermark counts the old and the proposed set together.
    /// Proposed again every `replica_lag_max` while unanswered.
    ///
    /// The coordinator must record a proposal only if the set it holds for
    /// `epoch` is still version `version` (a compare-and-set, as Kafka's
    /// controller does with the partition epoch), then count its version
    /// up and confirm. Proposals can arrive twice or late; recording a
    /// stale one (say, a grow proposed before a later shrink) would let it
    /// elect a replica that lacks acknowledged records.
    fn isr_change_proposed(&self, replica: ReplicaId, epoch: u64, version: u64, proposed: &[ReplicaId]) {
        let _ = (replica, epoch, version, proposed);
    }

    /// The follower `replica` removed its records `from..to` (a suffix that
    /// diverged from its leader's log, or everything, to continue at the
    /// leader's start). Never committed records.
    fn truncated(&self, replica: ReplicaId, from: u64, to: u64) {
        let _ = (replica, from, to);
    }

    /// `replica` took `role` in `epoch`, following `leader` if it follows.
    fn role_changed(&self, replica: ReplicaId, epoch: u64, role: Role, leader: Option<ReplicaId>) {
        let _ = (replica, epoch, role, leader);
    }

    /// The leader `replica` could not read its own log to answer a fetch
    /// (the follower received no records). A [`Corrupt`](Error::Corrupt)
    /// error here needs an operator.
    fn fetch_failed(&self, replica: ReplicaId, error: &Error) {
        let _ = (replica, error);
    }
}

/// The listener that does nothing (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReplicaListener;

impl ReplicaListener for NoReplicaListener {}

impl fmt::Debug for dyn ReplicaListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplicaListener")
    }
}
