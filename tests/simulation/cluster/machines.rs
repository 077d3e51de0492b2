//! The replicas' machines: the virtual clock and listeners each replica
//! gets, opening, crashing (with torn tails) and closing replicas,
//! partitions, and stale answers handed straight to `apply`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use replog::replication::{FetchResponse, Replica, ReplicaId, ReplicaListener, ReplicaOptions};
use replog::{Clock, Error, LogListener, Options, SEGMENT_BYTES_MIN, SyncPolicy};

use super::{Sim, tracing};
use crate::checks::tear;
use crate::violation;

/// The simulation's clock, advanced by the step loop only.
#[derive(Debug, Default)]
pub struct VirtualClock(pub AtomicI64);

impl Clock for VirtualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// In-sync set proposals as the leaders make them; the step loop sends each
/// to the coordinator as a network message.
#[derive(Debug, Default)]
pub(super) struct Proposals(pub(super) Mutex<Vec<Proposal>>);

/// A proposal as the listener hears it: leader, epoch, the version of the
/// set it replaces, the set.
pub(super) type Proposal = (ReplicaId, u64, u64, Vec<ReplicaId>);

impl ReplicaListener for Proposals {
    fn isr_change_proposed(&self, replica: ReplicaId, epoch: u64, version: u64, proposed: &[ReplicaId]) {
        self.0
            .lock()
            .unwrap()
            .push((replica, epoch, version, proposed.to_vec()));
    }
}

/// The offsets a replica's log was truncated at (its log listener).
#[derive(Debug, Default)]
pub(super) struct Cuts(pub(super) Mutex<Vec<u64>>);

impl LogListener for Cuts {
    fn post_truncate(&self, offset: u64) {
        self.0.lock().unwrap().push(offset);
    }
}

impl Sim {
    /// Opens the replica of `index` if it is down.
    pub(super) fn start(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        if node.replica.is_some() {
            return;
        }
        let log = Options::default()
            .segment_bytes(SEGMENT_BYTES_MIN)
            .sync(SyncPolicy::Always)
            .prefault_bytes(0)
            .clock(self.clock.clone())
            .listener(node.cuts.clone());
        let options = ReplicaOptions::new(log)
            .min_insync_replicas(self.config.min_insync)
            .replica_lag_max(std::time::Duration::from_millis(self.config.lag_max_ms))
            .high_watermark_persist_interval(std::time::Duration::from_millis(self.config.persist_interval_ms))
            .listener(self.proposals.clone());
        let replica = Replica::open(&node.dir, node.id, options)
            .unwrap_or_else(|e| violation!("{:?}: reopen after a crash or close failed: {e}", node.id));
        node.cuts.0.lock().unwrap().clear();
        node.replica = Some(replica);
        node.outstanding = None;
        self.checker.went_down(index);
        self.tell(index);
    }

    /// Crashes a live replica (losing what is not durable, with a torn
    /// tail), closes one cleanly, or restarts one that is down.
    pub(super) fn crash_or_restart(&mut self) {
        let index = self.rng.in_range(0..self.nodes.len());
        self.update_acks();
        let Some(replica) = self.nodes[index].replica.take() else {
            return self.start(index);
        };
        if tracing() {
            eprintln!("t={} down {index}: {}", self.now(), self.describe());
        }
        if self.rng.percent(70) {
            replica.simulate_crash();
            self.stats.crashes += 1;
            if self.rng.percent(70) {
                tear(&self.nodes[index].dir, &mut self.rng);
                self.stats.torn += 1;
            }
        } else {
            let id = replica.id();
            replica.close().unwrap_or_else(|e| violation!("{id:?}: close: {e}"));
            self.stats.closes += 1;
        }
        self.nodes[index].cuts.0.lock().unwrap().clear();
        self.nodes[index].pending.clear();
        self.checker.went_down(index);
    }

    /// Cuts the links around one replica, or across a random split, or heals.
    pub(super) fn repartition(&mut self) {
        let n = self.nodes.len();
        self.cut.iter_mut().flatten().for_each(|cut| *cut = false);
        match self.rng.below(3) {
            0 => {}
            1 => {
                let alone = self.rng.in_range(0..n);
                (0..n).filter(|i| *i != alone).for_each(|i| {
                    self.cut[i][alone] = true;
                    self.cut[alone][i] = true;
                });
            }
            _ => {
                let side: Vec<bool> = (0..n).map(|_| self.rng.percent(50)).collect();
                (0..n).for_each(|a| (0..n).for_each(|b| self.cut[a][b] = side[a] != side[b]));
            }
        }
    }

    /// Hands an old `Records` response straight to a follower's `apply`.
    /// Such answers carry their epoch and are checked against the log end:
    /// applied or refused, they never corrupt (refused ones change nothing).
    pub(super) fn stale_records(&mut self) {
        if self.stale.is_empty() {
            return;
        }
        let bytes = self.stale[self.rng.in_range(0..self.stale.len())].clone();
        let index = self.rng.in_range(0..self.nodes.len());
        let Some(replica) = &self.nodes[index].replica else {
            return;
        };
        let response = FetchResponse::decode(&bytes, 1 << 24).unwrap();
        let before = (replica.log().next_offset(), replica.high_watermark());
        match replica.apply(response) {
            Ok(_) => self.stats.stale_applied += 1,
            Err(Error::UnexpectedResponse { .. } | Error::InvalidBatch { .. }) => {
                let after = (replica.log().next_offset(), replica.high_watermark());
                if after != before {
                    violation!(
                        "{:?}: a refused stale answer changed (end, HW) {before:?} -> {after:?}",
                        replica.id()
                    );
                }
            }
            Err(e) => violation!("{:?}: stale Records answer: unexpected error {e}", replica.id()),
        }
    }
}
