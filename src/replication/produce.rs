//! The leader's producer side: appends with an acknowledgement level, the
//! high watermark they wait for, and the in-sync set changes that follow.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::replica::check_members;
use super::{Replica, Role};
use crate::error::{Error, Result};
use crate::format::NewRecord;
use crate::replica_id::ReplicaId;

/// When an append on the leader returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Acks {
    /// Once the leader has the records under its log's sync policy. A
    /// leader failure can lose them: a new leader may not have them.
    Leader,
    /// Once the high watermark covers the records: they are on every
    /// member of the in-sync set (durably, under `SyncPolicy::Always`), and
    /// no leader elected from it will lose them. Refused up front while
    /// the in-sync set is smaller than `min_insync_replicas`.
    All,
}

/// How often a producer waiting for `Acks::All` checks the in-sync set
/// for lagging followers (real time), so that a dead follower is proposed
/// out even when no fetch arrives.
const ACK_WAIT_TICK: Duration = Duration::from_millis(50);

impl Replica {
    /// Appends `records` as one batch stamped with the leader's epoch, and
    /// returns the first record's offset once `acks` is satisfied.
    ///
    /// Cost: [`Log::append_records`](crate::Log::append_records); with
    /// [`Acks::All`], the wait for the followers' next fetches.
    ///
    /// # Errors
    ///
    /// [`Error::NotLeader`] (with the leader, when known) on a follower and
    /// [`Error::NotEnoughReplicas`] for `Acks::All` while the confirmed
    /// in-sync set is below `min_insync_replicas`: nothing was written.
    /// As [`Log::append_records`](crate::Log::append_records).
    /// With `Acks::All`, after the records were written:
    /// [`Error::CommitTimeout`] after `ack_timeout`, and
    /// [`Error::LeadershipLost`] if the replica stopped leading; in both
    /// cases the records may still commit.
    pub fn append(&self, records: &[NewRecord<'_>], acks: Acks) -> Result<u64> {
        let role = self.role.read();
        if role.role != Role::Leader {
            return Err(Error::NotLeader { leader: role.leader });
        }
        if acks == Acks::All {
            let in_sync = self.leader.lock().as_ref().map_or(0, |l| l.confirmed().len());
            let required = self.settings.min_insync_replicas;
            if in_sync < required {
                return Err(Error::NotEnoughReplicas { in_sync, required });
            }
        }
        let first_offset = self.log().append_records(records)?;
        let epoch = role.epoch;
        drop(role);
        self.update_high_watermark();
        if acks == Acks::Leader {
            return Ok(first_offset);
        }
        let next_offset = first_offset + records.len() as u64;
        self.wait_for_commit(first_offset, next_offset, epoch)?;
        Ok(first_offset)
    }

    /// Waits until the high watermark reaches `next_offset`, checking the
    /// in-sync set now and then, as long as the replica leads `epoch`.
    fn wait_for_commit(&self, first_offset: u64, next_offset: u64, epoch: u64) -> Result<()> {
        let deadline = Instant::now() + self.settings.ack_timeout;
        loop {
            let tick = (Instant::now() + ACK_WAIT_TICK).min(deadline);
            let generation = self.role_generation.load(Ordering::SeqCst);
            let role_changed = || self.role_generation.load(Ordering::SeqCst) != generation;
            self.waiters
                .commits
                .wait_until(tick, || self.high_watermark() >= next_offset || role_changed());
            if self.high_watermark() >= next_offset {
                return Ok(());
            }
            if self.epoch() != epoch || self.role() != Role::Leader {
                return Err(Error::LeadershipLost {
                    first_offset,
                    next_offset,
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::CommitTimeout {
                    first_offset,
                    next_offset,
                });
            }
            self.update_high_watermark();
        }
    }

    /// The application confirms that its coordinator recorded `isr` as the
    /// in-sync set of `epoch` (usually a set this leader proposed through
    /// [`ReplicaListener::isr_change_proposed`](super::ReplicaListener::isr_change_proposed)).
    /// From now on the high watermark counts `isr` alone, and the set's
    /// version ([`Replica::isr_version`]) is one higher.
    ///
    /// # Errors
    ///
    /// [`Error::StaleEpoch`] if `epoch` is not the replica's (an answer to
    /// an older leadership); [`Error::NotLeader`] on a follower;
    /// [`Error::InvalidArgument`] for a set without the leader or outside
    /// the assignment. Nothing changed on error.
    pub fn confirm_isr(&self, epoch: u64, isr: &[ReplicaId]) -> Result<()> {
        let role = self.role.read();
        if epoch != role.epoch {
            return Err(Error::StaleEpoch {
                given: epoch,
                current: role.epoch,
            });
        }
        let mut leader = self.leader.lock();
        let Some(state) = leader.as_mut().filter(|_| role.role == Role::Leader) else {
            return Err(Error::NotLeader { leader: role.leader });
        };
        check_members(self.id, state.assignment(), isr)?;
        state.confirm(isr);
        drop(leader);
        drop(role);
        self.waiters.all();
        self.update_high_watermark();
        Ok(())
    }

    /// Leader only: recomputes the high watermark from the members'
    /// progress and the leader's own, and proposes any in-sync set change
    /// that is due. Listeners are called after the locks are released.
    pub(super) fn update_high_watermark(&self) {
        let own = self.held_offset();
        let now_ms = self.now_ms();
        let (candidate, proposal, epoch) = {
            let role = self.role.read();
            let mut leader = self.leader.lock();
            let Some(state) = leader.as_mut().filter(|_| role.role == Role::Leader) else {
                return;
            };
            let candidate = state.high_watermark(own, self.settings.min_insync_replicas);
            let high_watermark = candidate.unwrap_or(0).max(self.high_watermark());
            let proposal = state.isr_change(high_watermark, now_ms, self.settings.replica_lag_max_ms);
            (candidate, proposal.map(|p| (state.version(), p)), role.epoch)
        };
        if let Some(candidate) = candidate
            && self.raise_high_watermark(candidate)
        {
            self.announce_high_watermark(candidate);
        }
        if let Some((version, proposal)) = proposal {
            self.settings
                .listener
                .isr_change_proposed(self.id, epoch, version, &proposal);
        }
    }
}
