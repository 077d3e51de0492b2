//! The leader's side of a fetch: checking the follower's position against
//! the epoch history, counting its progress, and answering with its log.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::messages::{FetchRequest, FetchResponse};
use super::{Replica, Role};

/// Where a follower's `(fetch_offset, last_fetched_epoch)` stands against
/// the leader's log.
enum Position {
    /// Its log matches the leader's up to `fetch_offset`.
    Valid,
    /// It does not: the answer to send.
    Refused(FetchResponse),
}

impl Replica {
    /// Answers a follower's fetch (leader side). Never blocks on the
    /// network and never fails: every refusal is a kind of response.
    ///
    /// - [`FetchResponse::FencedEpoch`] if the request's epoch is older
    ///   than this replica's, [`FetchResponse::UnknownEpoch`] if newer,
    ///   [`FetchResponse::NotLeader`] if this replica does not lead it;
    /// - [`FetchResponse::OffsetOutOfRange`] below the log's start;
    /// - [`FetchResponse::Diverging`] when `(fetch_offset,
    ///   last_fetched_epoch)` does not match the epoch history;
    /// - otherwise [`FetchResponse::Records`]: the stored batches from
    ///   `fetch_offset` (at most `max_bytes`, but at least one batch, and
    ///   within one segment), zero-copy, with the high watermark after
    ///   counting this fetch as the follower's progress.
    ///
    /// A read error on the leader's own log (damage) is reported to
    /// [`ReplicaListener::fetch_failed`](super::ReplicaListener::fetch_failed)
    /// and answered with no records.
    ///
    /// Cost: a binary search of the epoch history, a short lock to count
    /// the fetch, and [`Log::encoded_batches`](crate::Log::encoded_batches).
    pub fn handle_fetch(&self, request: &FetchRequest) -> FetchResponse {
        let (epoch, log_start, read) = {
            let role = self.role.read();
            if request.current_epoch < role.epoch {
                return FetchResponse::FencedEpoch;
            }
            if request.current_epoch > role.epoch {
                return FetchResponse::UnknownEpoch;
            }
            if role.role != Role::Leader {
                return FetchResponse::NotLeader;
            }
            if let Position::Refused(response) = self.check_position(request) {
                return response;
            }
            let log = self.log();
            let log_start = log.start_offset();
            let read = log.encoded_batches(request.fetch_offset, request.max_bytes);
            if let Ok(Some(run)) = &read
                && run.first.base_offset < request.fetch_offset
            {
                // The follower's log ends inside a batch (it was cut there
                // by hand): batches are shipped whole, so it must cut back
                // to the batch's start. Its offset is not counted: it is
                // about to give up the records past that start.
                return FetchResponse::Diverging {
                    epoch: run.first.leader_epoch,
                    end_offset: run.first.base_offset,
                };
            }
            let now_ms = self.now_ms();
            let end = log.next_offset();
            let mut leader = self.leader.lock();
            let Some(state) = leader.as_mut() else {
                return FetchResponse::NotLeader;
            };
            state.record_fetch(request.replica_id, request.fetch_offset, end, now_ms);
            (role.epoch, log_start, read)
        };
        self.update_high_watermark();
        let batches = match read {
            Ok(run) => run.map(|run| run.bytes).unwrap_or_default(),
            Err(error) => {
                self.settings.listener.fetch_failed(self.id, &error);
                bytes::Bytes::new()
            }
        };
        FetchResponse::Records {
            epoch,
            fetch_offset: request.fetch_offset,
            last_fetched_epoch: request.last_fetched_epoch,
            // Read after counting this fetch, and the end after the
            // batches, so that it covers them.
            high_watermark: self.high_watermark(),
            log_start,
            log_end: self.log().next_offset(),
            batches,
        }
    }

    /// As [`Replica::handle_fetch`], but when the follower is caught up
    /// (the answer would carry no records), waits up to `max_wait` (real
    /// time) for something new to send: records past `fetch_offset`, a
    /// higher high watermark, or a role change. For transports that long-
    /// poll, so an idle follower neither spins nor lags.
    ///
    /// Under `SyncPolicy::Always` "records" means records a sync of the
    /// leader's has started on: the leader gathers the appends of
    /// concurrent producers into one sync, and a follower answered at the
    /// first of them would fetch and sync it alone, then the rest. So a
    /// follower whose new records are all still being gathered waits (at
    /// most `max_wait`) for the sync that takes them, then fetches them
    /// together and syncs them while the leader does. A higher high
    /// watermark alone then does not end the wait either: it comes with
    /// the records.
    pub fn handle_fetch_waiting(&self, request: &FetchRequest, max_wait: Duration) -> FetchResponse {
        let response = self.handle_fetch(request);
        let FetchResponse::Records {
            high_watermark,
            ref batches,
            ..
        } = response
        else {
            return response;
        };
        if !batches.is_empty() && self.records_to_send(request.fetch_offset) {
            return response;
        }
        let generation = self.role_generation.load(Ordering::SeqCst);
        let deadline = Instant::now() + max_wait;
        let changed = self.waiters.fetches.wait_until(deadline, || {
            self.records_to_send(request.fetch_offset)
                || (self.high_watermark() > high_watermark && !self.records_gathering(request.fetch_offset))
                || self.role_generation.load(Ordering::SeqCst) != generation
        });
        if changed || !batches.is_empty() {
            self.handle_fetch(request)
        } else {
            response
        }
    }

    /// Whether a long-poll from `fetch_offset` has records to send now
    /// (see [`Replica::handle_fetch_waiting`]).
    fn records_to_send(&self, fetch_offset: u64) -> bool {
        let log = self.log();
        if self.waiters.fetch_after_sync() {
            self.waiters.syncing_below().max(log.durable_offset()) > fetch_offset
        } else {
            log.next_offset() > fetch_offset
        }
    }

    /// Whether records past `fetch_offset` wait for a sync to start on them.
    fn records_gathering(&self, fetch_offset: u64) -> bool {
        self.log().next_offset() > fetch_offset && !self.records_to_send(fetch_offset)
    }

    /// Checks the follower's position against the leader's log.
    fn check_position(&self, request: &FetchRequest) -> Position {
        let log = self.log();
        let start = log.start_offset();
        let fetch_offset = request.fetch_offset;
        if fetch_offset < start {
            return Position::Refused(FetchResponse::OffsetOutOfRange { log_start: start });
        }
        match log.end_offset_for_epoch(request.last_fetched_epoch) {
            Some((epoch, end)) if epoch == request.last_fetched_epoch && fetch_offset <= end => Position::Valid,
            Some((epoch, end_offset)) => Position::Refused(FetchResponse::Diverging { epoch, end_offset }),
            // Nothing of the leader's is at or below the follower's last
            // epoch: the logs can agree only up to the leader's start.
            None if fetch_offset == start => Position::Valid,
            None => Position::Refused(FetchResponse::Diverging {
                epoch: 0,
                end_offset: start,
            }),
        }
    }
}
