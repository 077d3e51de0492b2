//! The two messages of the replication protocol: a follower's
//! [`FetchRequest`] and the leader's [`FetchResponse`]. Their byte
//! encoding is in `wire`.

use bytes::Bytes;

use crate::replica_id::ReplicaId;

/// A follower's request for the leader's records from `fetch_offset` on.
///
/// It doubles as the follower's acknowledgement: the leader takes
/// `fetch_offset` as the follower's log end (what it holds durably under
/// its sync policy), once `(fetch_offset, last_fetched_epoch)` is checked
/// against the leader's epoch history. Built by
/// [`Replica::fetch_request`](super::Replica::fetch_request), answered by
/// [`Replica::handle_fetch`](super::Replica::handle_fetch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FetchRequest {
    /// The follower asking.
    pub replica_id: ReplicaId,
    /// The leader epoch the follower believes current; a leader of another
    /// epoch refuses the request.
    pub current_epoch: u64,
    /// The follower's log end: the first offset it lacks.
    pub fetch_offset: u64,
    /// Epoch of the follower's last batch (the one before `fetch_offset`);
    /// 0 if its log is empty.
    pub last_fetched_epoch: u64,
    /// The most batch bytes the follower takes in one response (the leader
    /// sends at least one whole batch, whatever its size).
    pub max_bytes: u64,
}

/// The leader's answer to a [`FetchRequest`]. Refusals are kinds of
/// response, not errors, so that any transport carries them the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchResponse {
    /// The leader's stored batches from the request's `fetch_offset`, byte
    /// for byte (on the leader, a zero-copy view of its mapping), and where
    /// the leader stands. `batches` is empty when the follower is caught up.
    ///
    /// It repeats the position it answers (`fetch_offset`,
    /// `last_fetched_epoch`, which the leader checked against its log), so
    /// a follower applies it only while its log still ends there with that
    /// epoch: a late or misdelivered answer is refused, never appended
    /// after records it was not checked against.
    Records {
        /// The leader's epoch.
        epoch: u64,
        /// The `fetch_offset` of the request answered: where `batches` start.
        fetch_offset: u64,
        /// The `last_fetched_epoch` of the request answered.
        last_fetched_epoch: u64,
        /// The leader's high watermark: every offset below it is committed.
        high_watermark: u64,
        /// The leader's first offset.
        log_start: u64,
        /// The leader's log end (one past its last record).
        log_end: u64,
        /// Whole encoded batches, contiguous, in the format of
        /// `docs/FORMAT.md`.
        batches: Bytes,
    },
    /// The follower's `(fetch_offset, last_fetched_epoch)` does not match
    /// the leader's log: the largest epoch of the leader at or below
    /// `last_fetched_epoch` is `epoch`, and its records end at
    /// `end_offset`. The follower truncates to the smaller of `end_offset`
    /// and its own end for `epoch`, and fetches again.
    Diverging {
        /// Largest leader epoch at or below the follower's last fetched epoch.
        epoch: u64,
        /// Where the leader's records of `epoch` end.
        end_offset: u64,
    },
    /// The request's epoch is older than the leader's: the follower must
    /// learn the new epoch from the application.
    FencedEpoch,
    /// This replica does not lead the request's epoch.
    NotLeader,
    /// The request's epoch is newer than this replica knows: it is behind.
    UnknownEpoch,
    /// The follower's log ends below the leader's first offset: the
    /// follower empties its log and continues at `log_start`.
    OffsetOutOfRange {
        /// The leader's first offset.
        log_start: u64,
    },
}

impl FetchResponse {
    /// True for the refusals (`FencedEpoch`, `NotLeader`, `UnknownEpoch`):
    /// answers that no fetch will change until the application changes a
    /// role or an epoch.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            FetchResponse::FencedEpoch | FetchResponse::NotLeader | FetchResponse::UnknownEpoch
        )
    }
}
