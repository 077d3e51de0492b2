//! What a leader tracks about its followers: each one's progress, the
//! in-sync set (confirmed, and a proposed change), and from them the high
//! watermark. Pure bookkeeping, no I/O, so every rule is unit-tested here.

use std::collections::HashMap;

use crate::replica_id::ReplicaId;

/// One follower, as the leader sees it.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// The follower's log end from its last valid fetch of this epoch
    /// (`None` before one): what it holds, under its sync policy.
    end: Option<u64>,
    /// The last time it was caught up (by the log's clock, ms); `None`
    /// after it lost data it had reported.
    caught_up_ms: Option<i64>,
    /// When it last fetched, and the leader's log end then.
    last_fetch: Option<(i64, u64)>,
}

/// A proposed in-sync set, not yet confirmed by the application.
#[derive(Debug, Clone)]
struct Proposal {
    isr: Vec<ReplicaId>,
    proposed_ms: i64,
}

/// A leader's view of replication in one epoch.
#[derive(Debug)]
pub(crate) struct LeaderState {
    me: ReplicaId,
    /// The leader's log end when it took the epoch: a follower joins the
    /// in-sync set only once it has reached it (and the high watermark).
    epoch_start: u64,
    assignment: Vec<ReplicaId>,
    followers: HashMap<ReplicaId, Progress>,
    /// The in-sync set the application confirmed, the leader included.
    confirmed: Vec<ReplicaId>,
    /// How many changes of the in-sync set were confirmed in this epoch:
    /// 0 for the set given with the leadership. Proposals carry it, so a
    /// coordinator records a proposal only against the set it replaces.
    version: u64,
    pending: Option<Proposal>,
}

/// What the leader should do after an update: propose this set.
pub(crate) type Proposed = Option<Vec<ReplicaId>>;

impl LeaderState {
    /// A new epoch's state. Followers start with unknown progress (so the
    /// high watermark waits for each member's first fetch) and as caught up
    /// at `now_ms` (so none is dropped before it had `lag_max` to fetch).
    pub(crate) fn new(
        me: ReplicaId,
        epoch_start: u64,
        assignment: &[ReplicaId],
        isr: &[ReplicaId],
        now_ms: i64,
    ) -> LeaderState {
        let followers = assignment
            .iter()
            .filter(|id| **id != me)
            .map(|id| {
                let progress = Progress {
                    end: None,
                    caught_up_ms: Some(now_ms),
                    last_fetch: None,
                };
                (*id, progress)
            })
            .collect();
        LeaderState {
            me,
            epoch_start,
            assignment: assignment.to_vec(),
            followers,
            confirmed: sorted(isr),
            version: 0,
            pending: None,
        }
    }

    /// The version of the confirmed in-sync set (see the field).
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Each follower of the assignment and its log end as of its last
    /// valid fetch in this epoch (`None` before one).
    pub(crate) fn follower_ends(&self) -> Vec<(ReplicaId, Option<u64>)> {
        let mut ends: Vec<_> = self.followers.iter().map(|(id, p)| (*id, p.end)).collect();
        ends.sort_unstable();
        ends
    }

    /// The confirmed in-sync set.
    pub(crate) fn confirmed(&self) -> &[ReplicaId] {
        &self.confirmed
    }

    /// The proposed in-sync set awaiting confirmation, if any.
    pub(crate) fn pending(&self) -> Option<&[ReplicaId]> {
        self.pending.as_ref().map(|p| &p.isr[..])
    }

    /// The assignment: every replica of the log.
    pub(crate) fn assignment(&self) -> &[ReplicaId] {
        &self.assignment
    }

    /// Takes a valid fetch of `follower` at `fetch_offset` (checked against
    /// the leader's epoch history) while the leader's log ends at
    /// `leader_end`.
    ///
    /// As in Kafka, a follower is caught up now if it fetches from the
    /// leader's end, and was caught up at its previous fetch if it now
    /// fetches from at least where the leader's log ended then: under a
    /// steady stream of appends a healthy follower is never exactly at the
    /// end, but always reaches where the end was one fetch ago.
    ///
    /// A follower whose end went back lost data it had
    /// reported (a crash under a weak sync policy): it is treated as
    /// lagging, so it leaves the in-sync set and rejoins when caught up.
    /// Fetches from replicas outside the assignment are not counted.
    pub(crate) fn record_fetch(&mut self, follower: ReplicaId, fetch_offset: u64, leader_end: u64, now_ms: i64) {
        let Some(progress) = self.followers.get_mut(&follower) else {
            return;
        };
        let went_back = progress.end.is_some_and(|end| fetch_offset < end);
        progress.end = Some(fetch_offset);
        if went_back {
            progress.caught_up_ms = None;
        } else if fetch_offset >= leader_end {
            progress.caught_up_ms = Some(now_ms);
        } else if let Some((previous_ms, previous_end)) = progress.last_fetch
            && fetch_offset >= previous_end
        {
            progress.caught_up_ms = progress.caught_up_ms.max(Some(previous_ms));
        }
        progress.last_fetch = Some((now_ms, leader_end));
    }

    /// The high watermark the members' progress allows, given the leader's
    /// own (`own_end`, what it holds under its sync policy): the minimum
    /// over the confirmed set and any proposed one together. `None` while
    /// a member has not fetched yet in this epoch, or while the confirmed
    /// or the proposed set is smaller than `min_insync`.
    pub(crate) fn high_watermark(&self, own_end: u64, min_insync: usize) -> Option<u64> {
        let pending = self.pending.as_ref().map_or(&self.confirmed, |p| &p.isr);
        if self.confirmed.len().min(pending.len()) < min_insync {
            return None;
        }
        let mut watermark = own_end;
        for member in self.confirmed.iter().chain(pending) {
            if *member == self.me {
                continue;
            }
            watermark = watermark.min(self.followers.get(member)?.end?);
        }
        Some(watermark)
    }

    /// The in-sync set change due now, if none is pending: followers that
    /// reached `high_watermark` and the epoch's start join; members not
    /// caught up for longer than `lag_max_ms` leave. A pending proposal
    /// unanswered for `lag_max_ms` is proposed again.
    pub(crate) fn isr_change(&mut self, high_watermark: u64, now_ms: i64, lag_max_ms: i64) -> Proposed {
        if let Some(pending) = &mut self.pending {
            if now_ms.saturating_sub(pending.proposed_ms) < lag_max_ms {
                return None;
            }
            pending.proposed_ms = now_ms;
            return Some(pending.isr.clone());
        }
        let recent = |p: &Progress| p.caught_up_ms.is_some_and(|at| now_ms.saturating_sub(at) <= lag_max_ms);
        // A follower joins on a recent catch-up, not on an old one: one that
        // stopped fetching at the high watermark must not be proposed back.
        let joins = |(id, p): (&ReplicaId, &Progress)| {
            let end = p.end?;
            let eligible = end >= high_watermark && end >= self.epoch_start && recent(p);
            eligible.then_some(*id)
        };
        let lagging = |id: &ReplicaId| *id != self.me && self.followers.get(id).is_none_or(|p| !recent(p));
        let joiners = || {
            self.followers
                .iter()
                .filter_map(joins)
                .filter(|id| !self.confirmed.contains(id))
        };
        // The common case, checked without allocating: nothing changes.
        if !self.confirmed.iter().any(lagging) && joiners().next().is_none() {
            return None;
        }
        let mut proposed: Vec<ReplicaId> = self.confirmed.iter().copied().filter(|id| !lagging(id)).collect();
        proposed.extend(joiners());
        let proposed = sorted(&proposed);
        self.pending = Some(Proposal {
            isr: proposed.clone(),
            proposed_ms: now_ms,
        });
        Some(proposed)
    }

    /// The application confirmed `isr` (checked by the caller to hold the
    /// leader and lie within the assignment): it becomes the in-sync set,
    /// its version rises by one, and any proposal is settled.
    pub(crate) fn confirm(&mut self, isr: &[ReplicaId]) {
        self.confirmed = sorted(isr);
        self.version += 1;
        self.pending = None;
    }
}

fn sorted(ids: &[ReplicaId]) -> Vec<ReplicaId> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ReplicaId = ReplicaId(1);
    const B: ReplicaId = ReplicaId(2);
    const C: ReplicaId = ReplicaId(3);

    fn state(isr: &[ReplicaId]) -> LeaderState {
        LeaderState::new(A, 10, &[A, B, C], isr, 0)
    }

    #[test]
    fn high_watermark_waits_for_every_member_and_min_insync() {
        let mut leader = state(&[A, B, C]);
        assert_eq!(leader.high_watermark(20, 2), None, "no member has fetched yet");
        leader.record_fetch(B, 15, 20, 1);
        assert_eq!(leader.high_watermark(20, 2), None, "C has not fetched");
        leader.record_fetch(C, 12, 20, 1);
        assert_eq!(leader.high_watermark(20, 2), Some(12));
        assert_eq!(leader.high_watermark(11, 2), Some(11), "the leader counts too");
        assert_eq!(leader.high_watermark(20, 4), None, "in-sync set below the minimum");
    }

    #[test]
    fn a_proposed_shrink_is_not_relied_on_before_it_is_confirmed() {
        let mut leader = state(&[A, B, C]);
        leader.record_fetch(B, 20, 20, 1);
        leader.record_fetch(C, 12, 20, 1);
        // C stops catching up; B keeps fetching at the end.
        leader.record_fetch(B, 20, 20, 5_000);
        assert_eq!(leader.isr_change(12, 5_000, 1_000), Some(vec![A, B]));
        assert_eq!(leader.pending(), Some(&[A, B][..]));
        assert_eq!(
            leader.high_watermark(20, 2),
            Some(12),
            "C still counts while the shrink is only proposed"
        );
        assert_eq!(leader.isr_change(12, 5_500, 1_000), None, "one proposal at a time");
        assert_eq!(leader.isr_change(12, 6_001, 1_000), Some(vec![A, B]), "proposed again");
        leader.confirm(&[A, B]);
        assert_eq!(leader.high_watermark(20, 2), Some(20));
    }

    #[test]
    fn a_follower_joins_only_at_the_high_watermark_and_the_epoch_start() {
        let mut leader = state(&[A, B]);
        leader.record_fetch(B, 30, 30, 1);
        leader.record_fetch(C, 8, 30, 1);
        assert_eq!(leader.isr_change(30, 2, 1_000), None, "C is below the epoch start");
        leader.record_fetch(C, 29, 30, 3);
        assert_eq!(leader.isr_change(30, 4, 1_000), None, "C is below the high watermark");
        leader.record_fetch(C, 30, 30, 5);
        assert_eq!(leader.isr_change(30, 6, 1_000), Some(vec![A, B, C]));
        assert_eq!(
            leader.high_watermark(30, 2),
            Some(30),
            "a proposed grow counts the joiner too"
        );
    }

    #[test]
    fn a_follower_that_went_back_leaves_and_must_catch_up() {
        let mut leader = state(&[A, B, C]);
        leader.record_fetch(B, 20, 20, 1);
        leader.record_fetch(C, 20, 20, 1);
        leader.record_fetch(C, 14, 20, 2);
        assert_eq!(leader.isr_change(20, 3, 1_000), Some(vec![A, B]));
        leader.confirm(&[A, B]);
        leader.record_fetch(C, 20, 20, 4);
        assert_eq!(leader.isr_change(20, 5, 1_000), Some(vec![A, B, C]));
    }

    #[test]
    fn a_follower_that_reaches_where_the_end_was_at_its_last_fetch_is_caught_up() {
        let mut leader = state(&[A, B, C]);
        // B never fetches from the very end, but always reaches where the
        // end was at its previous fetch; C falls behind.
        for (i, now) in (0..10u64).map(|i| (i, 1 + i as i64 * 400)) {
            leader.record_fetch(B, 10 + i * 5, 15 + i * 5, now);
            leader.record_fetch(C, 10, 15 + i * 5, now);
        }
        assert_eq!(leader.isr_change(10, 3_700, 1_000), Some(vec![A, B]));
    }

    /// Found by the simulation: a follower that stopped fetching while at
    /// the high watermark was proposed back as soon as it was dropped.
    #[test]
    fn a_follower_that_stopped_fetching_is_not_proposed_back() {
        let mut leader = state(&[A, B, C]);
        leader.record_fetch(B, 20, 20, 1);
        leader.record_fetch(C, 20, 20, 1);
        leader.record_fetch(B, 20, 20, 2_000);
        assert_eq!(leader.isr_change(20, 2_000, 1_000), Some(vec![A, B]));
        leader.confirm(&[A, B]);
        assert_eq!(leader.version(), 1);
        assert_eq!(leader.isr_change(20, 2_001, 1_000), None, "C is not back");
        leader.record_fetch(C, 20, 20, 2_002);
        assert_eq!(leader.isr_change(20, 2_003, 1_000), Some(vec![A, B, C]), "now it is");
    }

    #[test]
    fn fetches_from_outside_the_assignment_do_not_count() {
        let mut leader = state(&[A, B]);
        leader.record_fetch(ReplicaId(9), 100, 100, 1);
        leader.record_fetch(B, 40, 100, 1);
        assert_eq!(leader.high_watermark(100, 2), Some(40));
        assert_eq!(leader.isr_change(40, 2, 1_000), None);
    }
}
