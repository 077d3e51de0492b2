//! Three openraft nodes in one process on replog storage, a key-value state
//! machine, clients writing; the leader is stopped, a new one is elected,
//! and every acknowledged write is checked to be readable afterwards.
//!
//! ```text
//! cargo run --release -p replog-openraft --example raft_kv [-- <clients> <seconds per phase>]
//! ```
//!
//! Prints the time the cluster had no leader and the write rate before and
//! after the failover; exits with an error if an acknowledged write is
//! missing.

#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use replog_openraft::LogStore;
use support::cluster::{Cluster, write};

/// Writes acknowledged by the cluster: (key, value, acknowledged before the stop).
type Acked = Arc<Mutex<Vec<(String, String, bool)>>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().map_or(Ok(16), |a| a.parse())?;
    let phase = Duration::from_secs_f64(args.next().map_or(Ok(2.0), |a| a.parse())?);
    let dir = tempfile::tempdir()?;
    let options = || replog::Options::default().segment_bytes(32 << 20);
    let mut cluster = Cluster::start(3, |id| {
        LogStore::open_with(dir.path().join(format!("node-{id}")), options()).expect("open store")
    })
    .await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .ok_or("no leader elected")?;
    println!(
        "3 nodes on replog storage in {}; leader: node {leader}; {clients} clients",
        dir.path().display()
    );

    let cluster_view = Arc::new(Mutex::new(cluster.rafts.clone()));
    let acked: Acked = Arc::default();
    let stopped = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            tokio::spawn(client(
                c,
                cluster_view.clone(),
                acked.clone(),
                stopped.clone(),
                done.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(phase).await;
    let before = acked.lock().len();
    let stop_at = Instant::now();
    stopped.store(true, Ordering::Release);
    cluster_view.lock().remove(&leader);
    cluster.stop(leader).await;
    let new_leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .ok_or("no new leader")?;
    let without_leader = stop_at.elapsed();
    println!("stopped node {leader}; node {new_leader} leads after {without_leader:?} without a leader");
    tokio::time::sleep(phase).await;
    done.store(true, Ordering::Release);
    for task in tasks {
        task.await?;
    }
    let after = acked.lock().len() - before;
    println!(
        "writes acknowledged: {before} before the stop ({:.0}/s), {after} after ({:.0}/s, failover included)",
        before as f64 / phase.as_secs_f64(),
        after as f64 / stop_at.elapsed().as_secs_f64()
    );

    // Every acknowledged write, read through the new leader after a
    // linearizable barrier (its state machine has applied all committed).
    let raft = &cluster.rafts[&new_leader];
    raft.ensure_linearizable().await?;
    let machine = &cluster.machines[&new_leader];
    let acked = std::mem::take(&mut *acked.lock());
    let missing: Vec<_> = acked
        .iter()
        .filter(|(k, v, _)| machine.get(k).as_ref() != Some(v))
        .collect();
    let missing_before = missing.iter().filter(|(_, _, before)| *before).count();
    let before_stop = acked.iter().filter(|(_, _, before)| *before).count();
    println!(
        "checked {} acknowledged writes ({before_stop} acknowledged before the stop) on node {new_leader}: \
         {} missing ({missing_before} of those acknowledged before the stop)",
        acked.len(),
        missing.len()
    );
    cluster.shutdown().await;
    if !missing.is_empty() {
        return Err(format!("{} acknowledged writes missing, e.g. {:?}", missing.len(), missing[0]).into());
    }
    Ok(())
}

/// One client: writes unique keys through whichever node leads, retrying a
/// write until it is acknowledged (keys are unique, so a retry is idempotent).
async fn client(
    c: usize,
    cluster: Arc<Mutex<std::collections::BTreeMap<u64, openraft::Raft<support::TypeConfig>>>>,
    acked: Acked,
    stopped: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !done.load(Ordering::Acquire) {
        let (key, value) = (format!("client-{c}-{n}"), format!("value-{n}"));
        let leader = {
            let nodes = cluster.lock();
            nodes
                .values()
                .find_map(|raft| raft.metrics().borrow().current_leader)
                .and_then(|id| nodes.get(&id).cloned())
        };
        let Some(raft) = leader else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let was_stopped = stopped.load(Ordering::Acquire);
        match write(&raft, key.clone(), value.clone()).await {
            Ok(_) => {
                acked.lock().push((key, value, !was_stopped));
                n += 1;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}
