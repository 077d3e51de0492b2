//! [`Transport`]: how a follower reaches its leader, supplied by the
//! application; and [`InMemoryTransport`], for tests and examples.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::RwLock;

use super::Replica;
use super::messages::{FetchRequest, FetchResponse};
use crate::error::{Error, Result};
use crate::replica_id::ReplicaId;

/// Carries a follower's fetch to its leader and the answer back. The
/// application implements it over its RPC layer (encode with
/// [`FetchRequest::encode`], answer on the leader's machine with
/// [`Replica::handle_fetch`] or [`Replica::handle_fetch_waiting`], and
/// decode with [`FetchResponse::decode`]); the follower driver calls it in
/// a loop.
///
/// An implementation must return the answer to *this* request (match
/// responses to requests, drop late ones), and should long-poll: when the
/// follower is caught up, hold the request a little on the leader
/// (`handle_fetch_waiting`) rather than answer at once, so idle followers
/// do not spin.
pub trait Transport: Send + Sync {
    /// Sends `request` to `leader` and returns its answer.
    ///
    /// # Errors
    ///
    /// Any error: the driver backs off and tries again. Use
    /// [`Error::Unreachable`] when the leader cannot be reached.
    fn fetch(&self, leader: ReplicaId, request: &FetchRequest) -> Result<FetchResponse>;
}

/// A transport between replicas of one process: a call to the leader's
/// [`Replica::handle_fetch_waiting`], with no copy of the batches. A
/// replica is reachable from when it is [registered](Self::register) until
/// it is [unregistered](Self::unregister) or dropped.
#[derive(Debug)]
pub struct InMemoryTransport {
    replicas: RwLock<HashMap<ReplicaId, Weak<Replica>>>,
    poll_wait: Duration,
}

/// How long [`InMemoryTransport`] holds a fetch that finds nothing new.
pub const POLL_WAIT_DEFAULT: Duration = Duration::from_millis(100);

impl Default for InMemoryTransport {
    fn default() -> Self {
        InMemoryTransport::new()
    }
}

impl InMemoryTransport {
    /// An empty transport that long-polls for [`POLL_WAIT_DEFAULT`].
    pub fn new() -> Self {
        InMemoryTransport::with_poll_wait(POLL_WAIT_DEFAULT)
    }

    /// An empty transport that holds a fetch finding nothing new for
    /// `poll_wait`.
    pub fn with_poll_wait(poll_wait: Duration) -> Self {
        InMemoryTransport {
            replicas: RwLock::new(HashMap::new()),
            poll_wait,
        }
    }

    /// Makes `replica` reachable under its id (replacing any other).
    pub fn register(&self, replica: &Arc<Replica>) {
        self.replicas.write().insert(replica.id(), Arc::downgrade(replica));
    }

    /// Makes `id` unreachable, as a machine that went down.
    pub fn unregister(&self, id: ReplicaId) {
        self.replicas.write().remove(&id);
    }
}

impl Transport for InMemoryTransport {
    fn fetch(&self, leader: ReplicaId, request: &FetchRequest) -> Result<FetchResponse> {
        let replica = self.replicas.read().get(&leader).and_then(Weak::upgrade);
        let replica = replica.ok_or(Error::Unreachable { replica: leader })?;
        Ok(replica.handle_fetch_waiting(request, self.poll_wait))
    }
}
