//! Criterion benchmarks of replication (issue 8, "Performance"): a leader
//! and two followers in one process, over an `InMemoryTransport` with a
//! `FollowerDriver` per follower, producers appending 256-byte records with
//! `Acks::All` (an append returns once the high watermark covers it),
//! against a single-node `Log` doing the same work in the same run.
//!
//! `cargo bench --bench replication` runs them all (about 2 minutes on 2
//! cores); `-- --test` runs each once. Every group sets
//! `Throughput::Elements` in records, so criterion's `thrpt` line is records
//! per second:
//!
//! - `replication/durable_16_producers/{single_node,replicated}`: 16
//!   threads each append 250 records one per call, `SyncPolicy::Always` on
//!   every log (group commit); `time` is one round (all threads done).
//!   `single_node` is a plain `Log` (`Log::append`); `replicated` appends
//!   to the leader with `Acks::All`. Target: replicated >= 50% of single-node.
//! - `replication/batches_of_100/{single_node,replicated_1_producer,replicated_4_producers,replicated_16_producers}`:
//!   `SyncPolicy::Never`, batches of 100 records (`append_records`), 20 000
//!   records per round: one thread for the single node (one log's appends
//!   serialize anyway), one, four or sixteen producers with `Acks::All`
//!   for the cluster. Every log is replaced, outside the timed part, before it
//!   holds 256 MiB. Target: replicated >= 40% of single-node.
//! - `replication/commit_latency/{sync_never,sync_always}`: one producer, one
//!   record per `append` with `Acks::All`, back to back: the time from the
//!   call to its return, which is when the high watermark covers the
//!   record. Percentiles over 20 000 (`Never`) and 3 000 (`Always`) appends
//!   (1 000 under `--test`), and a single-node `Log::append` for reference,
//!   are printed.
//!
//! After each comparison group the median rate of each function (over
//! criterion's own measurement samples) and the replicated / single-node
//! ratios are printed; everything printed is also written to
//! `target/criterion/replication.txt`.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use replog::codec::{BATCH_HEADER_BYTES, RECORD_HEADER_BYTES};
use replog::replication::{
    Acks, DriverOptions, FollowerDriver, InMemoryTransport, Replica, ReplicaId, ReplicaOptions, Transport,
};
use replog::{Log, NewRecord, Options, SyncPolicy};

/// Value size of every record.
const VALUE_BYTES: usize = 256;
/// Segment size: large enough that no bench rolls.
const SEGMENT_BYTES: u64 = 1 << 30;
/// Bytes a log may hold before it is replaced (outside timing).
const LOG_BUDGET_BYTES: u64 = 256 << 20;
/// Records per batch in the batch bench.
const BATCH: usize = 100;

fn options(sync: SyncPolicy) -> Options {
    Options::default().segment_bytes(SEGMENT_BYTES).sync(sync)
}

/// Whether criterion runs in `--test` mode (each bench once).
fn test_mode() -> bool {
    std::env::args().any(|arg| arg == "--test")
}

/// Bytes one batch of `records` values takes in a segment.
fn batch_bytes(records: u64) -> u64 {
    BATCH_HEADER_BYTES as u64 + records * (RECORD_HEADER_BYTES + VALUE_BYTES) as u64
}

// ---------------------------------------------------------------------------
// the cluster

/// A leader and two followers, each in a temporary directory, with a
/// follower driver per follower over an in-memory transport; replica 1
/// leads epoch 1 with everyone in sync.
struct Cluster {
    leader: Arc<Replica>,
    drivers: Vec<FollowerDriver>,
    replicas: Vec<Arc<Replica>>,
    _transport: Arc<InMemoryTransport>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    fn open(sync: SyncPolicy) -> Cluster {
        let ids = [ReplicaId(1), ReplicaId(2), ReplicaId(3)];
        let dirs: Vec<_> = ids.iter().map(|_| tempfile::tempdir().unwrap()).collect();
        // Defaults otherwise: min_insync_replicas 2, replica_lag_max 10 s
        // (nobody leaves the in-sync set during a run), ack_timeout 30 s.
        let replica_options = ReplicaOptions::new(options(sync));
        let replicas: Vec<Arc<Replica>> = ids
            .iter()
            .zip(&dirs)
            .map(|(id, dir)| Arc::new(Replica::open(dir.path(), *id, replica_options.clone()).unwrap()))
            .collect();
        let transport = Arc::new(InMemoryTransport::new());
        for replica in &replicas {
            transport.register(replica);
        }
        replicas[0].become_leader(1, &ids, &ids).unwrap();
        let drivers = replicas[1..]
            .iter()
            .map(|follower| {
                follower.become_follower(1, ids[0]).unwrap();
                let transport: Arc<dyn Transport> = transport.clone();
                FollowerDriver::start(Arc::clone(follower), transport, DriverOptions::default()).unwrap()
            })
            .collect();
        Cluster {
            leader: Arc::clone(&replicas[0]),
            drivers,
            replicas,
            _transport: transport,
            _dirs: dirs,
        }
    }

    fn append(&self, records: &[NewRecord<'_>]) -> u64 {
        self.leader.append(records, Acks::All).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for driver in self.drivers.drain(..) {
            driver.stop();
        }
    }
}

/// A store that is replaced, outside the timed part, before it holds more
/// than [`LOG_BUDGET_BYTES`], so every timed append goes into one
/// preallocated segment and the disk does not fill up.
struct Fresh<T> {
    open: Box<dyn Fn() -> T>,
    current: Option<T>,
    used_bytes: u64,
}

impl<T> Fresh<T> {
    fn new(open: impl Fn() -> T + 'static) -> Self {
        Fresh {
            open: Box::new(open),
            current: None,
            used_bytes: 0,
        }
    }

    /// The store, replaced first unless it has room for `bytes` more.
    fn with_room(&mut self, bytes: u64) -> &T {
        if self.current.is_none() || self.used_bytes + bytes > LOG_BUDGET_BYTES {
            self.current = None;
            self.current = Some((self.open)());
            self.used_bytes = 0;
        }
        self.used_bytes += bytes;
        self.current.as_ref().expect("opened above")
    }
}

// ---------------------------------------------------------------------------
// reporting

/// What criterion measured, per function: `(iterations, time)` of every
/// call of the routine. The last `sample_size` calls are the measurement
/// samples (the calls before are the warm-up).
#[derive(Default)]
struct Recorded {
    runs: RefCell<Vec<(String, Calls)>>,
}

/// `(iterations, time)` of each call of one function's routine.
type Calls = Vec<(u64, Duration)>;

impl Recorded {
    fn note(&self, name: &str, iters: u64, elapsed: Duration) -> Duration {
        let mut runs = self.runs.borrow_mut();
        match runs.iter_mut().find(|(n, _)| n == name) {
            Some((_, samples)) => samples.push((iters, elapsed)),
            None => runs.push((name.to_owned(), vec![(iters, elapsed)])),
        }
        elapsed
    }

    /// Median records/s of `name` over its last `samples` calls.
    fn median_rate(&self, name: &str, samples: usize, records_per_iter: u64) -> Option<f64> {
        let runs = self.runs.borrow();
        let (_, all) = runs.iter().find(|(n, _)| n == name)?;
        let mut rates: Vec<f64> = all[all.len().saturating_sub(samples)..]
            .iter()
            .map(|(iters, elapsed)| (iters * records_per_iter) as f64 / elapsed.as_secs_f64())
            .collect();
        rates.sort_by(f64::total_cmp);
        rates.get(rates.len() / 2).copied()
    }
}

/// `12.3 M`, `456 k`: three significant digits.
fn rate(r: f64) -> String {
    let (v, unit) = if r >= 1e6 {
        (r / 1e6, " M")
    } else if r >= 1e3 {
        (r / 1e3, " k")
    } else {
        (r, "")
    };
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$}{unit}")
}

/// Prints, and keeps for the report file, the median rates of a group and
/// each replicated function's ratio to the single node.
fn summarize(
    report: &mut String,
    group: &str,
    recorded: &Recorded,
    samples: usize,
    records_per_iter: u64,
    names: &[&str],
) {
    let single = recorded.median_rate("single_node", samples, records_per_iter);
    let mut text = format!("{group}: median records/s over criterion's samples\n");
    for name in names {
        let Some(median) = recorded.median_rate(name, samples, records_per_iter) else {
            continue;
        };
        let _ = write!(text, "  {name:<24} {:>10} records/s", rate(median));
        if let (Some(single), true) = (single, *name != "single_node") {
            let _ = write!(text, "   {:.2}x single_node", median / single);
        }
        text.push('\n');
    }
    println!("\n{text}");
    report.push_str(&text);
}

/// Where criterion writes its reports (`target/criterion` by default).
fn criterion_dir() -> PathBuf {
    match std::env::var_os("CRITERION_HOME") {
        Some(home) => PathBuf::from(home),
        None => {
            PathBuf::from(std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into())).join("criterion")
        }
    }
}

fn write_report(report: &str) {
    if report.is_empty() {
        return;
    }
    let path = criterion_dir().join("replication.txt");
    let text = format!("# cargo bench --bench replication\n{report}");
    std::fs::create_dir_all(path.parent().expect("has a parent")).unwrap();
    std::fs::write(&path, text).unwrap();
    println!("written to {}", path.display());
}

// ---------------------------------------------------------------------------
// (a) durable, 16 producers

/// `threads` threads each calling `append` `per_thread` times; the time
/// until all are done (spawning and joining included: tens of
/// microseconds, beside hundreds of appends that each wait for syncs).
fn round(threads: usize, per_thread: u64, append: &(dyn Fn() + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..per_thread {
                    append();
                }
            });
        }
    });
    start.elapsed()
}

fn durable(c: &mut Criterion, report: &mut String) {
    const THREADS: usize = 16;
    const PER_THREAD: u64 = 250;
    const SAMPLES: usize = 10;
    let value = vec![7u8; VALUE_BYTES];
    let recorded = Recorded::default();
    let mut group = c.benchmark_group("replication/durable_16_producers");
    group.sample_size(SAMPLES);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(THREADS as u64 * PER_THREAD));
    {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), options(SyncPolicy::Always)).unwrap();
        let append = || {
            log.append(&value).unwrap();
        };
        group.bench_function("single_node", |b| {
            b.iter_custom(|iters| {
                let elapsed = (0..iters).map(|_| round(THREADS, PER_THREAD, &append)).sum();
                recorded.note("single_node", iters, elapsed)
            })
        });
    }
    {
        let cluster = Cluster::open(SyncPolicy::Always);
        let append = || {
            cluster.append(&[NewRecord::new(&value)]);
        };
        group.bench_function("replicated", |b| {
            b.iter_custom(|iters| {
                let elapsed = (0..iters).map(|_| round(THREADS, PER_THREAD, &append)).sum();
                recorded.note("replicated", iters, elapsed)
            })
        });
    }
    group.finish();
    let per_iter = THREADS as u64 * PER_THREAD;
    summarize(
        report,
        "durable_16_producers (SyncPolicy::Always, 1 record per append)",
        &recorded,
        SAMPLES,
        per_iter,
        &["single_node", "replicated"],
    );
}

// ---------------------------------------------------------------------------
// (b) batches of 100, SyncPolicy::Never

fn batches(c: &mut Criterion, report: &mut String) {
    const ROUND_RECORDS: u64 = 20_000;
    const SAMPLES: usize = 20;
    let value = vec![7u8; VALUE_BYTES];
    let batch: Vec<NewRecord<'_>> = (0..BATCH).map(|_| NewRecord::new(&value)).collect();
    let round_bytes = (ROUND_RECORDS / BATCH as u64) * batch_bytes(BATCH as u64);
    let recorded = Recorded::default();
    let mut group = c.benchmark_group("replication/batches_of_100");
    group.sample_size(SAMPLES);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(ROUND_RECORDS));
    {
        let mut fresh = Fresh::new(|| {
            let dir = tempfile::tempdir().unwrap();
            let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
            (log, dir)
        });
        group.bench_function("single_node", |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let (log, _) = fresh.with_room(round_bytes);
                    let start = Instant::now();
                    for _ in 0..ROUND_RECORDS / BATCH as u64 {
                        log.append_records(&batch).unwrap();
                    }
                    elapsed += start.elapsed();
                }
                recorded.note("single_node", iters, elapsed)
            })
        });
    }
    for producers in [1usize, 4, 16] {
        let name = format!(
            "replicated_{producers}_producer{}",
            if producers == 1 { "" } else { "s" }
        );
        let mut fresh = Fresh::new(|| Cluster::open(SyncPolicy::Never));
        let per_producer = ROUND_RECORDS / BATCH as u64 / producers as u64;
        group.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let cluster = fresh.with_room(round_bytes);
                    let append = || {
                        cluster.append(&batch);
                    };
                    elapsed += if producers == 1 {
                        let start = Instant::now();
                        for _ in 0..per_producer {
                            append();
                        }
                        start.elapsed()
                    } else {
                        round(producers, per_producer, &append)
                    };
                }
                recorded.note(&name, iters, elapsed)
            })
        });
    }
    group.finish();
    summarize(
        report,
        "batches_of_100 (SyncPolicy::Never, append_records of 100)",
        &recorded,
        SAMPLES,
        ROUND_RECORDS,
        &[
            "single_node",
            "replicated_1_producer",
            "replicated_4_producers",
            "replicated_16_producers",
        ],
    );
}

// ---------------------------------------------------------------------------
// (c) commit latency

/// `p50 ... max` of `latencies`, in microseconds.
fn percentiles(latencies: &mut [Duration]) -> String {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    let mean = latencies.iter().sum::<Duration>().as_secs_f64() * 1e6 / latencies.len() as f64;
    format!(
        "p50 {:8.1}  p90 {:8.1}  p99 {:8.1}  p99.9 {:8.1}  max {:8.1}  mean {:8.1} us",
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        at(1.0),
        mean
    )
}

fn commit_latency(c: &mut Criterion, report: &mut String) {
    let value = vec![7u8; VALUE_BYTES];
    let mut group = c.benchmark_group("replication/commit_latency");
    group.throughput(Throughput::Elements(1));
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    let cases = [
        ("sync_never", SyncPolicy::Never, 20_000),
        ("sync_always", SyncPolicy::Always, 3_000),
    ];
    for (name, sync, records) in cases {
        let records = if test_mode() { 1_000 } else { records };
        let cluster = Cluster::open(sync);
        let mut percentiles_done = false;
        group.bench_function(name, |b| {
            // Percentiles from one run, the first time this bench is
            // selected (criterion reports only means), with a single-node
            // `Log::append` of the same policy for reference.
            if !percentiles_done {
                percentiles_done = true;
                let mut replicated: Vec<Duration> = (0..records)
                    .map(|_| {
                        let start = Instant::now();
                        cluster.append(&[NewRecord::new(&value)]);
                        start.elapsed()
                    })
                    .collect();
                let dir = tempfile::tempdir().unwrap();
                let log = Log::open(dir.path(), options(sync)).unwrap();
                let mut single: Vec<Duration> = (0..records)
                    .map(|_| {
                        let start = Instant::now();
                        log.append(&value).unwrap();
                        start.elapsed()
                    })
                    .collect();
                let text = format!(
                    "commit_latency, SyncPolicy::{sync:?}, {records} appends of one record, one producer:\n  \
                     replicated, Acks::All (append -> HW): {}\n  single node, Log::append:              {}\n",
                    percentiles(&mut replicated),
                    percentiles(&mut single),
                );
                println!("\n{text}");
                report.push_str(&text);
            }
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    cluster.append(&[NewRecord::new(&value)]);
                }
                start.elapsed()
            })
        });
        // The segment holds 1 GiB; even 4 s of `Never` appends stays far
        // below it. Check rather than assume.
        assert!(cluster.replicas.iter().all(|r| r.log().next_offset() < 3_000_000));
    }
    group.finish();
}

fn all(c: &mut Criterion) {
    let mut report = String::new();
    durable(c, &mut report);
    batches(c, &mut report);
    commit_latency(c, &mut report);
    write_report(&report);
}

criterion_group!(benches, all);
criterion_main!(benches);
