//! The follower's side: building a fetch request and applying the
//! leader's response.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::messages::{FetchRequest, FetchResponse};
use super::{Replica, Role};
use crate::error::{Error, Result};
use crate::format::BatchHeader;

/// What [`Replica::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Appended `records` records (none when caught up); the high
    /// watermark is now `high_watermark`.
    Records {
        /// Number of records appended.
        records: u64,
        /// The follower's high watermark after the response.
        high_watermark: u64,
    },
    /// Cut the records from `offset` on: they diverged from the leader's log.
    Truncated {
        /// The follower's new log end.
        offset: u64,
    },
    /// Emptied the log to continue at the leader's start, `offset`.
    Reset {
        /// The follower's new log start and end.
        offset: u64,
    },
    /// The leader refused the fetch (`FencedEpoch`, `NotLeader`,
    /// `UnknownEpoch`); nothing changed. Fetching again is useless until
    /// the application changes a role or an epoch.
    Refused,
}

/// What `apply` must tell the listener once its locks are released.
enum Effect {
    None,
    Raised(u64),
    Removed { from: u64, to: u64 },
}

impl Replica {
    /// Builds the next fetch for this follower's leader: from its log end,
    /// with the epoch of its last batch and its current epoch. Under
    /// `SyncPolicy::Always` every record it applied is durable by then
    /// (`apply` syncs before it returns), so the leader may count
    /// `fetch_offset` as durable.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] unless this replica follows a known leader.
    pub fn fetch_request(&self, max_bytes: u64) -> Result<FetchRequest> {
        let role = self.role.read();
        if role.role != Role::Follower || role.leader.is_none() {
            return Err(Error::InvalidArgument {
                reason: "only a follower of a known leader fetches",
            });
        }
        let (fetch_offset, last_fetched_epoch) = self.log_position();
        Ok(FetchRequest {
            replica_id: self.id,
            current_epoch: role.epoch,
            fetch_offset,
            last_fetched_epoch,
            max_bytes,
        })
    }

    /// Where the log ends and the epoch of its last batch (0 if empty).
    fn log_position(&self) -> (u64, u64) {
        let log = self.log();
        let last_epoch = log.end_offset_for_epoch(u64::MAX).map_or(0, |(epoch, _)| epoch);
        (log.next_offset(), last_epoch)
    }

    /// Applies the leader's answer to this follower's latest fetch.
    ///
    /// - Records, if they answer the log's current position (its end and last
    ///   epoch, as the response repeats them) in the follower's epoch: every
    ///   batch is checked (structure, checksum, contiguous
    ///   offsets from this log's end, epochs non-decreasing and not above
    ///   the leader's, size limits) before any is written; then they are
    ///   appended byte for byte (synced under `SyncPolicy::Always`), the
    ///   epoch history follows, and only then the high watermark rises to
    ///   `min(leader's, own log end)`.
    /// - `Diverging { epoch, end_offset }`: the log is cut at the smaller of
    ///   `end_offset` and its own end for `epoch` (its epoch history is cut
    ///   with it), never below the high watermark.
    /// - `OffsetOutOfRange { log_start }`: the log, which ends below the
    ///   leader's start, is emptied to continue there.
    /// - A refusal changes nothing.
    ///
    /// A response answers the request it was built for: the transport must
    /// hand over only the answer to the latest request (as an RPC layer
    /// that matches responses to requests does), since `Diverging` and
    /// `OffsetOutOfRange` carry neither an epoch nor the position they
    /// answer. Records answers repeat both and are checked against the
    /// follower's state whatever their origin, so a late or duplicated one
    /// is refused.
    ///
    /// # Errors
    ///
    /// Nothing changed on any error: [`Error::UnexpectedResponse`] for an
    /// answer that does not fit this follower (another epoch, another
    /// position, not a follower, a divergence that cuts nothing, a start it
    /// already reaches); [`Error::InvalidBatch`], [`Error::RecordTooLarge`],
    /// [`Error::BatchTooLarge`] for bad batches;
    /// [`Error::BelowHighWatermark`]; as [`Log::append_encoded`](crate::Log::append_encoded),
    /// [`Log::truncate`](crate::Log::truncate) and [`Log::reset`](crate::Log::reset)
    /// for I/O errors.
    pub fn apply(&self, response: FetchResponse) -> Result<Applied> {
        let (applied, effect) = self.apply_locked(response)?;
        // Listeners run with no lock held (see `ReplicaListener`).
        match effect {
            Effect::Raised(high_watermark) => self.announce_high_watermark(high_watermark),
            Effect::Removed { from, to } => self.settings.listener.truncated(self.id, from, to),
            Effect::None => {}
        }
        Ok(applied)
    }

    fn apply_locked(&self, response: FetchResponse) -> Result<(Applied, Effect)> {
        let role = self.role.read();
        if role.role != Role::Follower {
            return Err(Error::UnexpectedResponse {
                reason: "this replica is not a follower",
            });
        }
        let _apply = self.apply_lock.lock();
        match response {
            FetchResponse::Records {
                epoch,
                fetch_offset,
                last_fetched_epoch,
                high_watermark,
                log_end,
                batches,
                ..
            } => {
                if epoch != role.epoch {
                    return Err(Error::UnexpectedResponse {
                        reason: "the records come from a leader of another epoch",
                    });
                }
                if (fetch_offset, last_fetched_epoch) != self.log_position() {
                    return Err(Error::UnexpectedResponse {
                        reason: "the records answer a fetch from another position of the log",
                    });
                }
                let applied = self.apply_records(epoch, high_watermark, &batches)?;
                if self.log().next_offset() >= log_end {
                    // Caught up with the leader: whatever a crash lost is back.
                    self.unclean.store(false, Ordering::SeqCst);
                }
                Ok(applied)
            }
            FetchResponse::Diverging { epoch, end_offset } => self.truncate_diverging(epoch, end_offset),
            FetchResponse::OffsetOutOfRange { log_start } => self.reset_to(log_start),
            FetchResponse::FencedEpoch | FetchResponse::NotLeader | FetchResponse::UnknownEpoch => {
                Ok((Applied::Refused, Effect::None))
            }
        }
    }

    fn apply_records(
        &self,
        leader_epoch: u64,
        leader_high_watermark: u64,
        batches: &Bytes,
    ) -> Result<(Applied, Effect)> {
        let log = self.log();
        let before = log.next_offset();
        if !batches.is_empty() {
            check_epochs_at_most(batches, leader_epoch)?;
            log.append_encoded(batches)?;
        }
        let end = log.next_offset();
        let candidate = leader_high_watermark.min(end);
        let effect = if self.raise_high_watermark(candidate) {
            Effect::Raised(candidate)
        } else {
            Effect::None
        };
        let applied = Applied::Records {
            records: end - before,
            high_watermark: self.high_watermark(),
        };
        Ok((applied, effect))
    }

    fn truncate_diverging(&self, epoch: u64, end_offset: u64) -> Result<(Applied, Effect)> {
        let log = self.log();
        let end = log.next_offset();
        let own_end_for_epoch = log
            .end_offset_for_epoch(epoch)
            .map_or(log.start_offset(), |(_, end)| end);
        let target = end_offset.min(own_end_for_epoch);
        if target >= end {
            return Err(Error::UnexpectedResponse {
                reason: "the divergence it reports cuts nothing from this log",
            });
        }
        let high_watermark = self.high_watermark();
        if target < high_watermark {
            return Err(Error::BelowHighWatermark {
                offset: target,
                high_watermark,
            });
        }
        if target < log.start_offset() {
            log.reset(target)?;
        } else {
            log.truncate(target)?;
        }
        let removed = Effect::Removed { from: target, to: end };
        Ok((Applied::Truncated { offset: target }, removed))
    }

    fn reset_to(&self, log_start: u64) -> Result<(Applied, Effect)> {
        let log = self.log();
        let end = log.next_offset();
        if end >= log_start {
            return Err(Error::UnexpectedResponse {
                reason: "the log already reaches the leader's start",
            });
        }
        let start = log.start_offset();
        log.reset(log_start)?;
        let removed = Effect::Removed { from: start, to: end };
        Ok((Applied::Reset { offset: log_start }, removed))
    }
}

/// Refuses batches stamped with an epoch above the leader's own: no leader
/// ships what a later leader wrote. (The full check of every batch is
/// `Log::append_encoded`'s.)
fn check_epochs_at_most(batches: &[u8], leader_epoch: u64) -> Result<()> {
    let mut position = 0usize;
    while position < batches.len() {
        let invalid = |damage| Error::InvalidBatch {
            position: position as u64,
            damage,
        };
        let header = BatchHeader::decode(&batches[position..]).map_err(invalid)?;
        if header.leader_epoch > leader_epoch {
            return Err(Error::UnexpectedResponse {
                reason: "a batch carries an epoch above its leader's",
            });
        }
        position += header.batch_len as usize;
    }
    Ok(())
}
