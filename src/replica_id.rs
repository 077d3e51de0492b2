//! [`ReplicaId`]: the name of one replica of a log. It lives at the bottom
//! of the crate because [`Error`](crate::Error) names replicas too; it is
//! re-exported as `replog::replication::ReplicaId`.

use std::fmt;

/// The identity of one replica of a replicated log, chosen by the
/// application (a node id, say). Stored with the replica and checked when
/// it is opened again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ReplicaId(pub u64);

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "replica {}", self.0)
    }
}
