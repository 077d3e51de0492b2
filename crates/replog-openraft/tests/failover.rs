//! A three-node cluster on replog storage survives losing its leader: every
//! write acknowledged before and after is readable on the new leader, and
//! the stopped node's store reopens with everything it acknowledged.

mod common;
#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use openraft::RaftLogReader;
use support::cluster::{Cluster, write};

#[test]
fn acknowledged_writes_survive_a_leader_failover() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let leader = runtime.block_on(async {
        let mut cluster = Cluster::start(3, |id| common::open(&dir.path().join(format!("node-{id}"))).unwrap()).await;
        let leader = cluster
            .wait_for_leader(Duration::from_secs(10))
            .await
            .expect("a leader");
        let mut acked = Vec::new();
        for n in 0..200 {
            write(&cluster.rafts[&leader], format!("k{n}"), format!("v{n}"))
                .await
                .expect("write");
            acked.push(n);
        }
        cluster.stop(leader).await;
        let new_leader = cluster
            .wait_for_leader(Duration::from_secs(10))
            .await
            .expect("a new leader");
        assert_ne!(new_leader, leader);
        for n in 200..400 {
            write(&cluster.rafts[&new_leader], format!("k{n}"), format!("v{n}"))
                .await
                .expect("write after failover");
            acked.push(n);
        }
        cluster.rafts[&new_leader]
            .ensure_linearizable()
            .await
            .expect("linearizable");
        let machine = &cluster.machines[&new_leader];
        for n in acked {
            assert_eq!(
                machine.get(&format!("k{n}")),
                Some(format!("v{n}")),
                "acknowledged write {n} missing"
            );
        }
        cluster.shutdown().await;
        leader
    });
    // The old leader's store (closed by its shutdown) holds its 200 writes.
    let mut store = common::open(&dir.path().join(format!("node-{leader}"))).expect("reopen the old leader's store");
    let entries = runtime.block_on(store.try_get_log_entries(..)).unwrap();
    assert!(entries.len() >= 200, "only {} entries after reopen", entries.len());
}
