//! Replication, through the public API of `replog::replication`: every
//! fetch response kind, every rule of the protocol, and each trap of
//! FIELD-NOTES section 4 as its own named test (in `traps`). The
//! deterministic simulation is `tests/simulation.rs`.

mod consumers;
mod fetch;
mod producers;
mod roles;
mod threads;
mod traps;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use replog::replication::{Applied, FetchResponse, Replica, ReplicaId, ReplicaListener, ReplicaOptions, Role};
use replog::{NewRecord, Options, SyncPolicy};

pub const A: ReplicaId = ReplicaId(1);
pub const B: ReplicaId = ReplicaId(2);
pub const C: ReplicaId = ReplicaId(3);
pub const ALL: [ReplicaId; 3] = [A, B, C];
pub const MAX_BYTES: u64 = 1 << 20;

/// Small segments (so tests cross segment boundaries) and a short
/// acknowledgement timeout.
pub fn options() -> ReplicaOptions {
    let log = Options::default().segment_bytes(64 * 1024).sync(SyncPolicy::Always);
    ReplicaOptions::new(log).ack_timeout(Duration::from_millis(300))
}

/// Everything a [`Recorder`] heard.
#[derive(Debug, Default)]
pub struct Heard {
    pub proposals: Vec<(u64, Vec<ReplicaId>)>,
    /// The version each proposal replaces, in the same order.
    pub versions: Vec<u64>,
    pub truncations: Vec<(u64, u64)>,
    pub high_watermarks: Vec<u64>,
    pub roles: Vec<(u64, Role, Option<ReplicaId>)>,
}

/// A listener that records every event.
#[derive(Debug, Default)]
pub struct Recorder(pub Mutex<Heard>);

impl ReplicaListener for Recorder {
    fn high_watermark_advanced(&self, _: ReplicaId, high_watermark: u64) {
        self.0.lock().high_watermarks.push(high_watermark);
    }
    fn isr_change_proposed(&self, _: ReplicaId, epoch: u64, version: u64, proposed: &[ReplicaId]) {
        let mut heard = self.0.lock();
        heard.proposals.push((epoch, proposed.to_vec()));
        heard.versions.push(version);
    }
    fn truncated(&self, _: ReplicaId, from: u64, to: u64) {
        self.0.lock().truncations.push((from, to));
    }
    fn role_changed(&self, _: ReplicaId, epoch: u64, role: Role, leader: Option<ReplicaId>) {
        self.0.lock().roles.push((epoch, role, leader));
    }
}

/// Opens replica `id` in `dir` with [`options`].
pub fn open(dir: &Path, id: ReplicaId) -> Replica {
    Replica::open(dir, id, options()).unwrap()
}

/// Three temporary directories and replicas A, B, C in them.
pub fn trio() -> (Vec<tempfile::TempDir>, Vec<Replica>) {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let replicas = ALL.iter().zip(&dirs).map(|(id, dir)| open(dir.path(), *id)).collect();
    (dirs, replicas)
}

/// A leads `epoch` with everyone in sync; B and C follow it.
pub fn lead(replicas: &[Replica], epoch: u64) {
    replicas[0].become_leader(epoch, &ALL, &ALL).unwrap();
    for follower in &replicas[1..] {
        follower.become_follower(epoch, replicas[0].id()).unwrap();
    }
}

/// One fetch of `follower` from `leader`, applied.
pub fn fetch_once(follower: &Replica, leader: &Replica) -> replog::Result<Applied> {
    let request = follower.fetch_request(MAX_BYTES)?;
    follower.apply(leader.handle_fetch(&request))
}

/// Fetches until `follower` has the leader's whole log and the leader has
/// counted it (a fetch that brings nothing).
pub fn catch_up(follower: &Replica, leader: &Replica) {
    for _ in 0..1000 {
        let applied = fetch_once(follower, leader).unwrap();
        if matches!(applied, Applied::Records { records: 0, .. }) {
            return;
        }
    }
    panic!("follower {:?} did not catch up", follower.id());
}

/// Appends `values` one record each on `leader` (acks from the leader only).
pub fn append_values(leader: &Replica, values: &[&str]) -> u64 {
    let mut first = None;
    for value in values {
        let offset = leader
            .append(&[NewRecord::new(value.as_bytes())], replog::replication::Acks::Leader)
            .unwrap();
        first.get_or_insert(offset);
    }
    first.unwrap_or(leader.log().next_offset())
}

/// The values of a log's records, in order.
pub fn values(replica: &Replica) -> Vec<Vec<u8>> {
    let log = replica.log();
    log.iter(log.start_offset())
        .map(|r| r.unwrap().value().to_vec())
        .collect()
}

/// The stored bytes of every batch of a log, for byte-for-byte comparisons.
pub fn batch_bytes(replica: &Replica) -> Vec<Vec<u8>> {
    let log = replica.log();
    log.batches(log.start_offset())
        .map(|b| b.unwrap().as_bytes().to_vec())
        .collect()
}

/// The records part of a response, for assertions.
pub fn records(response: &FetchResponse) -> (u64, u64, usize) {
    match response {
        FetchResponse::Records {
            epoch,
            high_watermark,
            batches,
            ..
        } => (*epoch, *high_watermark, batches.len()),
        other => panic!("expected records, got {other:?}"),
    }
}

/// A replica with a listener that records events.
pub fn open_recorded(dir: &Path, id: ReplicaId, options: ReplicaOptions) -> (Replica, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let replica = Replica::open(dir, id, options.listener(recorder.clone())).unwrap();
    (replica, recorder)
}
