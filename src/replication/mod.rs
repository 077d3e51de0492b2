//! Replication: a leader and followers per log, with leader epochs, a high
//! watermark, an in-sync set, and hooks for the application's transport
//! and control plane. Built on [`Log`](crate::Log); nothing below imports
//! it.
//!
//! The model is Kafka's (pull replication, KIP-101/320/595 epochs): a
//! [`Replica`] owns a log; the leader appends, stamping its epoch on every
//! batch; followers pull with [`FetchRequest`]s and apply the leader's
//! [`FetchResponse`]s, byte for byte. The high watermark is the minimum
//! log end over the in-sync set (each replica counted by what it holds
//! under its sync policy); records below it are committed and are what
//! consumers read ([`Replica::read_committed`], [`Replica::iter_committed`]).
//! Who leads, at which epoch, and the in-sync set are the application's
//! decisions, made through [`Replica::become_leader`],
//! [`Replica::become_follower`] and [`Replica::confirm_isr`] and heard of
//! through [`ReplicaListener`].
//!
//! ```
//! use std::sync::Arc;
//! use replog::NewRecord;
//! use replog::replication::{Acks, Replica, ReplicaId, ReplicaOptions};
//! # fn main() -> replog::Result<()> {
//! # let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
//! let (a, b) = (ReplicaId(1), ReplicaId(2));
//! let leader = Replica::open(dirs[0].path(), a, ReplicaOptions::default())?;
//! let follower = Replica::open(dirs[1].path(), b, ReplicaOptions::default())?;
//! leader.become_leader(1, &[a, b], &[a, b])?;
//! follower.become_follower(1, a)?;
//!
//! let first = leader.append(&[NewRecord::new(b"post")], Acks::Leader)?;
//! // The follower's fetches (normally a `FollowerDriver` over a `Transport`):
//! // the first brings the record, the second tells the leader it has it.
//! for _ in 0..2 {
//!     let request = follower.fetch_request(1 << 20)?;
//!     follower.apply(leader.handle_fetch(&request))?;
//! }
//! assert_eq!(leader.high_watermark(), first + 1);
//! assert_eq!(leader.read_committed(first)?.value(), &b"post"[..]);
//! # Ok(()) }
//! ```

mod committed;
mod driver;
mod follow;
mod leader;
mod listener;
mod messages;
mod options;
mod produce;
mod replica;
mod serve;
mod state_file;
mod transport;
mod waiters;
mod wire;

pub use crate::replica_id::ReplicaId;
pub use committed::{CommittedBatches, CommittedIter};
pub use driver::{DriverOptions, FollowerDriver};
pub use follow::Applied;
pub use listener::{NoReplicaListener, ReplicaListener};
pub use messages::{FetchRequest, FetchResponse};
pub use options::{
    ACK_TIMEOUT_DEFAULT, HIGH_WATERMARK_PERSIST_INTERVAL_DEFAULT, MIN_INSYNC_REPLICAS_DEFAULT, REPLICA_LAG_MAX_DEFAULT,
    ReplicaOptions,
};
pub use produce::Acks;
pub use replica::{Replica, Role};
pub use transport::{InMemoryTransport, POLL_WAIT_DEFAULT, Transport};
