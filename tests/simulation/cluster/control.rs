//! The simulated control plane: a coordinator that records in-sync sets,
//! elects leaders with new epochs, and tells replicas who leads, all
//! through the simulated network.

use replog::Error;
use replog::replication::{ReplicaId, Role};

use super::{COORDINATOR, Message, Sim, index_of, tracing};
use crate::violation;

/// The coordinator elects a new leader once its leader is gone this long.
const SESSION_MS: i64 = 200;
/// The coordinator repeats who leads to every replica this often (so a
/// zombie leader whose notice was lost hears of the new epoch).
const HEARTBEAT_MS: i64 = 300;
/// The control plane: the epoch, its leader, the recorded in-sync set.
pub(super) struct Coordinator {
    pub(super) epoch: u64,
    pub(super) leader: Option<usize>,
    pub(super) isr: Vec<ReplicaId>,
    /// The version of `isr` in this epoch: 0 at the election, one more
    /// at each recorded change (as the leader counts it).
    pub(super) isr_version: u64,
    pub(super) leader_lost_ms: Option<i64>,
    pub(super) heartbeat_ms: i64,
}

impl Sim {
    /// The coordinator's word reaches a replica: follow `leader` in `epoch`.
    pub(super) fn notice(&mut self, to: usize, epoch: u64, leader: usize) {
        let Some(replica) = &self.nodes[to].replica else { return };
        let leader_id = self.nodes[leader].id;
        let current = replica.epoch() == epoch && replica.leader() == Some(leader_id);
        if leader == to || replica.epoch() > epoch || current {
            return;
        }
        match replica.become_follower(epoch, leader_id) {
            Ok(()) | Err(Error::StaleEpoch { .. } | Error::InvalidArgument { .. }) => {}
            Err(e) => violation!("{:?}: become_follower({epoch}): {e}", self.nodes[to].id),
        }
    }

    /// A proposal reaches the coordinator: it records the set for the
    /// current epoch's leader, then confirms it to that leader. A proposal
    /// that replaces another version than the one recorded is refused (a
    /// compare-and-set; the leader proposes again): a delayed or repeated
    /// proposal must not undo a newer change, or a replica that fell
    /// behind since is back in the set, electable.
    /// `Config::naive_coordinator` shows what happens without the check.
    pub(super) fn proposal(&mut self, from: usize, epoch: u64, isr: Vec<ReplicaId>, version: u64) {
        let current = self.config.naive_coordinator || version == self.coordinator.isr_version;
        if epoch != self.coordinator.epoch || self.coordinator.leader != Some(from) || !current {
            return;
        }
        if tracing() {
            eprintln!("t={} coordinator records isr {isr:?} for epoch {epoch}", self.now());
        }
        self.coordinator.isr = isr;
        self.coordinator.isr_version += 1;
        // The leader counts versions as the coordinator does.
        if let Some(replica) = &self.nodes[from].replica
            && replica.confirm_isr(epoch, &self.coordinator.isr).is_ok()
            && replica.isr_version() != Some(self.coordinator.isr_version)
            && !self.config.naive_coordinator
        {
            let (theirs, ours) = (replica.isr_version(), self.coordinator.isr_version);
            violation!(
                "{:?}: in-sync set version {theirs:?} after a confirm, the coordinator's {ours}",
                replica.id()
            );
        }
    }

    /// The coordinator tells a replica who leads (after an election, a
    /// restart, a refusal or a lost answer), through the network.
    pub(super) fn tell(&mut self, to: usize) {
        if let Some(leader) = self.coordinator.leader
            && leader != to
        {
            let epoch = self.coordinator.epoch;
            self.send(COORDINATOR, to, Message::Notice { epoch, leader });
        }
    }

    /// Elects a leader once the current one is gone for a session; repeats
    /// who leads to every replica now and then.
    pub(super) fn coordinate(&mut self) {
        if self.now() - self.coordinator.heartbeat_ms >= HEARTBEAT_MS {
            self.coordinator.heartbeat_ms = self.now();
            (0..self.nodes.len()).for_each(|index| self.tell(index));
        }
        let epoch = self.coordinator.epoch;
        let alive = self.coordinator.leader.is_some_and(|leader| {
            let replica = self.nodes[leader].replica.as_ref();
            replica.is_some_and(|r| r.role() == Role::Leader && r.epoch() == epoch)
        });
        let now = self.now();
        match self.coordinator.leader_lost_ms {
            _ if alive => self.coordinator.leader_lost_ms = None,
            None => self.coordinator.leader_lost_ms = Some(now),
            Some(lost) if now - lost >= SESSION_MS => self.elect(),
            Some(_) => {}
        }
    }

    /// Makes a member of the recorded in-sync set that is up and did not
    /// lose records in recovery the leader of a new epoch. Healing, when no
    /// member qualifies, an unclean one is taken (safe under
    /// `SyncPolicy::Always`, where recovery cuts only what was never synced).
    pub(super) fn elect(&mut self) {
        let members: Vec<usize> = self.coordinator.isr.iter().map(|id| index_of(*id)).collect();
        let up = |index: &usize| self.nodes[*index].replica.is_some();
        let clean = |index: &usize| {
            self.nodes[*index]
                .replica
                .as_ref()
                .is_some_and(|r| !r.unclean_recovery())
        };
        let mut candidates: Vec<usize> = members.iter().copied().filter(clean).collect();
        if candidates.is_empty() && !self.faults {
            candidates = members.iter().copied().filter(up).collect();
        }
        if candidates.is_empty() {
            return;
        }
        let chosen = candidates[self.rng.in_range(0..candidates.len())];
        let epoch = self.coordinator.epoch + 1;
        let assignment: Vec<ReplicaId> = self.nodes.iter().map(|node| node.id).collect();
        self.update_acks();
        let replica = self.nodes[chosen].replica.as_ref().unwrap();
        if let Err(e) = replica.become_leader(epoch, &assignment, &self.coordinator.isr) {
            violation!("{:?}: become_leader({epoch}): {e}", replica.id());
        }
        self.stats.elections += 1;
        self.coordinator.isr_version = 0;
        self.coordinator.epoch = epoch;
        self.coordinator.leader = Some(chosen);
        self.coordinator.leader_lost_ms = None;
        (0..self.nodes.len()).for_each(|index| self.tell(index));
        if tracing() {
            eprintln!("t={} elect {chosen} epoch {epoch}: {}", self.now(), self.describe());
        }
    }
}
