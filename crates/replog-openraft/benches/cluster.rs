//! Client writes per second through a three-node openraft cluster in one
//! process (in-memory network, in-memory state machine), with the log on
//! replog, on raft-log (the WAL of openraft's `log-wal` example, Databend's
//! Raft log; with its default config, and as `raft-log-nowait` with its
//! 1 ms flush batching wait set to zero, which suits openraft 0.9's one
//! append at a time better) and in memory; 1 and 64 concurrent clients.
//! Plus the entry
//! codec: postcard (the crate's) against bincode 1.3.
//!
//! ```text
//! flock /tmp/replog-bench.lock cargo bench -p replog-openraft --bench cluster
//! ```
//!
//! A write is acknowledged once a quorum (the leader and one follower) has
//! it durable and the leader has applied it. After each replog run the
//! leader's flush statistics are printed: callbacks (appends), syncs, and
//! the most callbacks waiting at once.

#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Raft};
use parking_lot::Mutex;
use replog_openraft::{LogReader, LogStore};
use support::cluster::{Cluster, write};
use support::mem_log::MemLogStore;
use support::wal_log::WalLogStore;
use support::{Request, TypeConfig};

fn sample_entry() -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(7, 2), 1_234_567),
        payload: EntryPayload::Normal(Request {
            key: "client-12-345678".into(),
            value: "value-345678".into(),
        }),
    }
}

fn codec(c: &mut Criterion) {
    let entry = sample_entry();
    let postcard_bytes = postcard::to_allocvec(&entry).unwrap();
    let bincode_bytes = bincode::serialize(&entry).unwrap();
    println!(
        "codec: one entry ({:?}) encodes to {} bytes with postcard, {} with bincode 1.3",
        entry.log_id,
        postcard_bytes.len(),
        bincode_bytes.len()
    );
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    group.bench_function("postcard encode+decode", |b| {
        b.iter(|| {
            let bytes = postcard::to_allocvec(std::hint::black_box(&entry)).unwrap();
            postcard::from_bytes::<Entry<TypeConfig>>(&bytes).unwrap()
        })
    });
    group.bench_function("bincode encode+decode", |b| {
        b.iter(|| {
            let bytes = bincode::serialize(std::hint::black_box(&entry)).unwrap();
            bincode::deserialize::<Entry<TypeConfig>>(&bytes).unwrap()
        })
    });
    group.finish();
}

/// `total` writes from `clients` concurrent clients through `raft`.
async fn writes(raft: &Raft<TypeConfig>, clients: u64, total: u64, next_key: &Arc<AtomicU64>) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (raft, next_key) = (raft.clone(), next_key.clone());
            let count = total / clients + u64::from(c < total % clients);
            tokio::spawn(async move {
                for _ in 0..count {
                    let n = next_key.fetch_add(1, Ordering::Relaxed);
                    write(&raft, format!("key-{n}"), format!("value-{n}"))
                        .await
                        .expect("write");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}

async fn start(store: &str, dir: &std::path::Path, readers: &Mutex<Vec<LogReader<TypeConfig>>>) -> Cluster {
    match store {
        "replog" => {
            Cluster::start(3, |id| {
                let store = LogStore::<TypeConfig>::open(dir.join(format!("node-{id}"))).unwrap();
                readers.lock().push(store.reader());
                store
            })
            .await
        }
        "raft-log" => {
            Cluster::start(3, |id| {
                WalLogStore::open(&dir.join(format!("node-{id}")), None).unwrap()
            })
            .await
        }
        "raft-log-nowait" => {
            let wait = Some(Duration::ZERO);
            Cluster::start(3, |id| {
                WalLogStore::open(&dir.join(format!("node-{id}")), wait).unwrap()
            })
            .await
        }
        _ => Cluster::start(3, |_| MemLogStore::default()).await,
    }
}

fn cluster(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("cluster_writes");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    let next_key = Arc::new(AtomicU64::new(0));
    for clients in [1u64, 64] {
        for store in ["replog", "raft-log", "raft-log-nowait", "memory"] {
            let dir = tempfile::tempdir().unwrap();
            let readers = Mutex::new(Vec::new());
            let cluster = runtime.block_on(start(store, dir.path(), &readers));
            let leader = runtime
                .block_on(cluster.wait_for_leader(Duration::from_secs(10)))
                .expect("a leader");
            let raft = cluster.rafts[&leader].clone();
            group.bench_function(BenchmarkId::new(store, clients), |b| {
                b.to_async(&runtime).iter_custom(|iters| {
                    let (raft, next_key) = (raft.clone(), next_key.clone());
                    async move { writes(&raft, clients, iters, &next_key).await }
                })
            });
            if let Some(reader) = readers.lock().get(leader as usize - 1) {
                println!(
                    "replog, {clients} clients: leader's flush stats {:?}",
                    reader.flush_stats()
                );
            }
            runtime.block_on(cluster.shutdown());
        }
    }
    group.finish();
}

criterion_group!(benches, codec, cluster);
criterion_main!(benches);
