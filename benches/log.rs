//! Criterion benchmarks of the storage core, 256-byte records.
//!
//! `cargo bench --bench log` runs them all; the figures in the README and
//! the closing notes come from here. Every group sets `Throughput`, so
//! criterion reports records per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use replog::{Log, Options, SyncPolicy};

const VALUE_BYTES: usize = 256;

fn options(sync: SyncPolicy) -> Options {
    Options::default().segment_bytes(1 << 30).sync(sync)
}

/// A log in a temporary directory, replaced (outside the timed part) once it
/// holds 512 MiB, so samples measure appends into a preallocated segment and
/// the disk does not fill up.
#[derive(Default)]
struct FreshLog(Option<(tempfile::TempDir, Log)>);

impl FreshLog {
    fn get(&mut self) -> &Log {
        let full = self
            .0
            .as_ref()
            .is_none_or(|(_, log)| log.next_offset() * (VALUE_BYTES as u64 + 64) > 512 << 20);
        if full {
            self.0 = None;
            let dir = tempfile::tempdir().unwrap();
            let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
            self.0 = Some((dir, log));
        }
        &self.0.as_ref().unwrap().1
    }
}

fn append(c: &mut Criterion) {
    let value = vec![7u8; VALUE_BYTES];
    let batch: Vec<&[u8]> = vec![&value; 100];
    let mut group = c.benchmark_group("append_256B");
    let mut fresh = FreshLog::default();
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_per_call", |b| {
        b.iter_custom(|iters| {
            let log = fresh.get();
            let start = Instant::now();
            for _ in 0..iters {
                log.append(&value).unwrap();
            }
            start.elapsed()
        })
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("batch_of_100", |b| {
        b.iter_custom(|iters| {
            let log = fresh.get();
            let start = Instant::now();
            for _ in 0..iters {
                log.append_batch(&batch).unwrap();
            }
            start.elapsed()
        })
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    const RECORDS: u64 = 200_000;
    let value = vec![7u8; VALUE_BYTES];
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    for _ in 0..RECORDS {
        log.append(&value).unwrap();
    }
    // Reopen, so reads check batch CRCs as they would on data from disk.
    log.close().unwrap();
    let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    let mut group = c.benchmark_group("read_256B");
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("sequential_iter", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for record in log.iter(0) {
                bytes += record.unwrap().value().len();
            }
            assert_eq!(bytes, RECORDS as usize * VALUE_BYTES);
        })
    });
    group.throughput(Throughput::Elements(1));
    let mut offset = 0u64;
    group.bench_function("random_read", |b| {
        b.iter(|| {
            offset = (offset + 7919) % RECORDS;
            log.read(offset).unwrap()
        })
    });
    group.finish();
}

/// `threads` writers appending with `SyncPolicy::Always` (group commit).
fn durable_run(log: &Arc<Log>, threads: usize, per_thread: u64) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let log = Arc::clone(log);
            std::thread::spawn(move || {
                let value = vec![7u8; VALUE_BYTES];
                for _ in 0..per_thread {
                    log.append(&value).unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    start.elapsed()
}

fn durable_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable_append_256B");
    group.sample_size(10);
    for threads in [1usize, 8, 16] {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Log::open(dir.path(), options(SyncPolicy::Always)).unwrap());
        let per_thread = 500;
        group.throughput(Throughput::Elements(threads as u64 * per_thread));
        group.bench_function(format!("{threads}_threads"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| durable_run(&log, threads, per_thread)).sum())
        });
    }
    group.finish();
}

/// Reopen of a log of at least 1 GiB, after a clean close and after a crash.
fn reopen(c: &mut Criterion) {
    const RECORDS: u64 = 4 << 20; // 4 Mi records of 256 B values: 1.25 GiB on disk
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().sync(SyncPolicy::Never);
    {
        let log = Log::open(dir.path(), options.clone()).unwrap();
        let value = vec![7u8; VALUE_BYTES];
        let batch: Vec<&[u8]> = vec![&value; 1000];
        while log.next_offset() < RECORDS {
            log.append_batch(&batch).unwrap();
        }
        log.close().unwrap();
    }
    let mut group = c.benchmark_group("reopen_1.25GiB");
    group.sample_size(10);
    group.bench_function("after_clean_close", |b| {
        b.iter_batched(
            || (),
            |()| {
                let log = Log::open(dir.path(), options.clone()).unwrap();
                assert!(log.recovery_report().clean_shutdown);
                log
            },
            BatchSize::PerIteration,
        )
    });
    // Recovery scans what was appended since the last recovery point (the
    // last open, roll, or sync): here a 64 MiB tail of 1000-record batches.
    // Segments of the largest size keep a tail from rolling (a roll would
    // move the recovery point past it), and each tail is truncated away after
    // it is measured, so the log stays at 1.25 GiB however many iterations run.
    let options = options.clone().segment_bytes(replog::SEGMENT_BYTES_MAX);
    let log_end = Log::open(dir.path(), options.clone()).unwrap().next_offset();
    let tail_batches = (64 << 20) / (1000 * (VALUE_BYTES + 16));
    group.bench_function("after_crash_with_64MiB_tail", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let value = vec![7u8; VALUE_BYTES];
            let batch: Vec<&[u8]> = vec![&value; 1000];
            for _ in 0..iters {
                let log = Log::open(dir.path(), options.clone()).unwrap();
                for _ in 0..tail_batches {
                    log.append_batch(&batch).unwrap();
                }
                log.simulate_crash();
                let start = Instant::now();
                let log = Log::open(dir.path(), options.clone()).unwrap();
                total += start.elapsed();
                let report = log.recovery_report();
                assert!(!report.clean_shutdown && report.bytes_scanned >= 60 << 20, "{report:?}");
                log.truncate(log_end).unwrap();
                log.close().unwrap();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, append, read, durable_append, reopen);
criterion_main!(benches);
