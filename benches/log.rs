//! Criterion benchmarks of the storage core.
//!
//! `cargo bench --bench log` runs them all (a few minutes on 2 cores);
//! `cargo bench --bench log -- --test` runs each once. Every group sets
//! `Throughput::Elements` in records, so criterion's `thrpt` line is records
//! per second and its `time` line is the time of one iteration, which is:
//!
//! - `append/{16B,256B,4KiB,64KiB}/one_per_call`: one `Log::append` of a
//!   value of that size, `SyncPolicy::Never` (time per record).
//! - `append/{..}/batch_of_100`: one `Log::append_batch` of 100 such values
//!   (time per batch; `thrpt` counts the 100 records).
//!   Both time appends into a preallocated 1 GiB segment only: the log is
//!   replaced outside the timed part before it holds 512 MiB (no roll).
//! - `read/256B/sequential_verified`: an `iter(0)` scan of 200 000 records
//!   written one per call, through a handle opened just before (untimed), so
//!   every batch is checked (CRC and structure) and the new mapping faulted
//!   in (fault-around makes that a few hundred faults, a small part).
//! - `read/256B/sequential_warm`: the same scan through a handle that has
//!   read everything before (checksums are checked once per handle).
//! - `read/256B/sequential_batches_{verified,warm}`: the same two scans
//!   through `Log::batches`, whose records are borrowed from their batch
//!   (no reference count per record).
//! - `read/256B/random_by_offset`: one `Log::read` at a random offset (warm).
//! - `read/256B/random_by_timestamp`: `Log::offset_for_timestamp` of a
//!   random timestamp, then `Log::read` of the offset found (warm).
//! - `durable_append/256B/{1,4,16}_threads`: that many threads each append
//!   500 records with `SyncPolicy::Always` (group commit); `time` is one
//!   round (all threads done), `thrpt` durable records per second overall.
//! - `tailing_latency/256B/sync_{never,always}_from_append_call`: mean
//!   latency from the writer calling `append` (paced, about 100 us apart)
//!   to a reader thread, blocked in `wait_for`, holding the record from
//!   `read`. Measured from the call, not the return: `append` wakes the
//!   reader before it returns (and under `SyncPolicy::Always` before its
//!   sync), so latency from the return is about zero or negative, which
//!   criterion cannot take. `thrpt` is only 1/latency, not a rate.
//!   Percentiles (p50/p90/p99/p99.9/max) from the call *and* from the return,
//!   for both policies, over 20 000 (`Never`) and 5 000 (`Always`) records
//!   (1 000 under `--test`), are printed and written to
//!   `target/criterion/tailing_latency.txt`.
//! - `reopen/1GiB_log/after_clean_close`: one `Log::open` of a 1.06 GiB log
//!   (4 Mi records of 256 B) that was closed cleanly (time per open).
//! - `reopen/1GiB_log/after_crash_64MiB_tail`: one `Log::open` of it after
//!   a simulated crash left a 64 MiB unsynced tail to scan.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use replog::codec::{BATCH_HEADER_BYTES, RECORD_HEADER_BYTES};
use replog::{Log, NewRecord, Options, SyncPolicy};

/// Segment size of the logs appended to: large enough that no bench rolls.
const SEGMENT_BYTES: u64 = 1 << 30;
/// Bytes an append log may hold before it is replaced (outside timing).
const APPEND_LOG_BUDGET_BYTES: u64 = 512 << 20;
/// Value size of the read, durable and tailing benches.
const VALUE_BYTES: usize = 256;

fn options(sync: SyncPolicy) -> Options {
    Options::default().segment_bytes(SEGMENT_BYTES).sync(sync)
}

/// Whether criterion runs in `--test` mode (each bench once).
fn test_mode() -> bool {
    std::env::args().any(|arg| arg == "--test")
}

/// `16B`, `4KiB`, `64KiB`.
fn size_name(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{}KiB", bytes / 1024)
    } else {
        format!("{bytes}B")
    }
}

/// Bytes one batch of `records` values of `value_bytes` takes in a segment.
fn batch_bytes(records: u64, value_bytes: usize) -> u64 {
    BATCH_HEADER_BYTES as u64 + records * (RECORD_HEADER_BYTES + value_bytes) as u64
}

/// Fixed-seed xorshift64, so every run reads the same "random" offsets.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

// ---------------------------------------------------------------------------
// append

/// The log the append benches write to, in a temporary directory. It is
/// replaced outside the timed part before it would hold more than
/// [`APPEND_LOG_BUDGET_BYTES`], so every timed append goes into the one
/// preallocated segment (no roll) and the disk does not fill up.
#[derive(Default)]
struct FreshLog {
    current: Option<(tempfile::TempDir, Log)>,
    used_bytes: u64,
}

impl FreshLog {
    /// Replaces the log (or opens the first) unless it has room for `bytes` more.
    fn make_room(&mut self, bytes: u64) {
        if self.current.is_some() && self.used_bytes + bytes <= APPEND_LOG_BUDGET_BYTES {
            return;
        }
        self.discard();
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
        self.current = Some((dir, log));
        self.used_bytes = 0;
    }

    /// Throws the log away without the final sync of a close: its data is
    /// never read, and syncing up to 512 MiB per replacement would only load
    /// the (shared) disk and add wall time.
    fn discard(&mut self) {
        if let Some((dir, log)) = self.current.take() {
            log.simulate_crash();
            drop(dir);
        }
    }

    /// Runs `append` `iters` times, each adding `bytes_per_iter` to the log,
    /// and returns the time the appends took. Runs as many as fit in one log
    /// at a time, replacing the log (untimed) in between.
    fn timed_appends(&mut self, iters: u64, bytes_per_iter: u64, mut append: impl FnMut(&Log)) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            self.make_room(bytes_per_iter);
            let room = (APPEND_LOG_BUDGET_BYTES - self.used_bytes) / bytes_per_iter;
            let n = left.min(room.max(1));
            let log = &self.current.as_ref().expect("make_room opens one").1;
            let start = Instant::now();
            for _ in 0..n {
                append(log);
            }
            total += start.elapsed();
            self.used_bytes += n * bytes_per_iter;
            left -= n;
        }
        total
    }
}

impl Drop for FreshLog {
    fn drop(&mut self) {
        self.discard();
    }
}

fn append(c: &mut Criterion) {
    let mut fresh = FreshLog::default();
    for value_bytes in [16, 256, 4 << 10, 64 << 10] {
        let value = vec![7u8; value_bytes];
        let batch: Vec<&[u8]> = vec![&value; 100];
        let mut group = c.benchmark_group(format!("append/{}", size_name(value_bytes)));
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(5));
        group.throughput(Throughput::Elements(1));
        group.bench_function("one_per_call", |b| {
            b.iter_custom(|iters| {
                fresh.timed_appends(iters, batch_bytes(1, value_bytes), |log| {
                    log.append(&value).unwrap();
                })
            })
        });
        group.throughput(Throughput::Elements(100));
        group.bench_function("batch_of_100", |b| {
            b.iter_custom(|iters| {
                fresh.timed_appends(iters, batch_bytes(100, value_bytes), |log| {
                    log.append_batch(&batch).unwrap();
                })
            })
        });
        group.finish();
    }
}

// ---------------------------------------------------------------------------
// read

/// Options of the read benches' log: no pre-fault thread, so nothing runs
/// beside the reader (its work is for appends, and there are none).
/// A bench-name suffix and the scan it times.
type NamedScan<'a> = (&'static str, &'a dyn Fn(&Log));

fn read_options() -> Options {
    options(SyncPolicy::Never).prefault_bytes(0)
}

fn read(c: &mut Criterion) {
    const RECORDS: u64 = 200_000;
    const FIRST_TIMESTAMP_MS: i64 = 1_700_000_000_000;
    let value = vec![7u8; VALUE_BYTES];
    let dir = tempfile::tempdir().unwrap();
    {
        // The layout of `append/256B/one_per_call` (one record per batch),
        // with timestamps 1 ms apart for the by-timestamp reads.
        let log = Log::open(dir.path(), read_options()).unwrap();
        for i in 0..RECORDS {
            log.append_record(NewRecord::new(&value).timestamp_ms(FIRST_TIMESTAMP_MS + i as i64))
                .unwrap();
        }
        log.close().unwrap();
    }
    let scan = |log: &Log| {
        let mut bytes = 0;
        for record in log.iter(0) {
            bytes += record.unwrap().value().len();
        }
        assert_eq!(bytes, RECORDS as usize * VALUE_BYTES);
    };
    // The same scan through `Log::batches`, whose records are borrowed.
    let scan_batches = |log: &Log| {
        let mut bytes = 0;
        for batch in log.batches(0) {
            bytes += batch.unwrap().records().map(|r| r.value().len()).sum::<usize>();
        }
        assert_eq!(bytes, RECORDS as usize * VALUE_BYTES);
    };
    let scans: [NamedScan<'_>; 2] = [("", &scan), ("_batches", &scan_batches)];

    let mut group = c.benchmark_group(format!("read/{}", size_name(VALUE_BYTES)));
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(RECORDS));
    // Each iteration also opens and closes the log (untimed, several syncs):
    // fewer samples of equal size, so this bench takes seconds, not tens.
    group.sample_size(20);
    group.sampling_mode(SamplingMode::Flat);
    for (api, scan) in scans {
        group.bench_function(format!("sequential{api}_verified"), |b| {
            // A handle checks each batch once (it remembers how far it
            // checked), so every iteration opens the log afresh, outside the
            // timed part (a few ms: opening writes a checkpoint and syncs),
            // and closes it.
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let log = Log::open(dir.path(), read_options()).unwrap();
                    assert!(log.recovery_report().clean_shutdown);
                    let start = Instant::now();
                    scan(&log);
                    total += start.elapsed();
                    log.close().unwrap();
                }
                total
            })
        });
    }

    // One handle for the rest, which has checked every batch: what follows
    // measures lookups, not checksums. (Without this pass, a random read on
    // a fresh handle would check its batch, and the batches it walks from the
    // index entry before it, again on every read.)
    let log = Log::open(dir.path(), read_options()).unwrap();
    scan(&log);
    group.sample_size(100);
    group.sampling_mode(SamplingMode::Auto);
    for (api, scan) in scans {
        group.bench_function(format!("sequential{api}_warm"), |b| b.iter(|| scan(&log)));
    }

    group.throughput(Throughput::Elements(1));
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    group.bench_function("random_by_offset", |b| {
        b.iter(|| {
            let offset = rng.below(RECORDS);
            log.read(offset).unwrap()
        })
    });
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    group.bench_function("random_by_timestamp", |b| {
        b.iter(|| {
            let target = rng.below(RECORDS);
            let offset = log
                .offset_for_timestamp(FIRST_TIMESTAMP_MS + target as i64)
                .unwrap()
                .unwrap();
            assert_eq!(offset, target);
            log.read(offset).unwrap()
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------
// durable append

/// `threads` writers each appending `per_thread` records to a log with
/// `SyncPolicy::Always` (group commit); the time until all are done. It
/// includes spawning and joining the threads (tens of microseconds), small
/// beside 500 appends that each wait for an `msync` (100 us or more).
fn durable_run(log: &Log, threads: usize, per_thread: u64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let value = vec![7u8; VALUE_BYTES];
                for _ in 0..per_thread {
                    log.append(&value).unwrap();
                }
            });
        }
    });
    start.elapsed()
}

fn durable_append(c: &mut Criterion) {
    const PER_THREAD: u64 = 500;
    let mut group = c.benchmark_group(format!("durable_append/{}", size_name(VALUE_BYTES)));
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    for threads in [1usize, 4, 16] {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), options(SyncPolicy::Always)).unwrap();
        group.throughput(Throughput::Elements(threads as u64 * PER_THREAD));
        let name = if threads == 1 {
            "1_thread".to_string()
        } else {
            format!("{threads}_threads")
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| durable_run(&log, threads, PER_THREAD)).sum())
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// tailing latency

/// Time between two appends of a tailing run. Long enough that the reader
/// has read the previous record and is blocked in `wait_for` again when the
/// next append comes, so each append wakes a sleeping reader (the case that
/// matters for a follower). `thread::sleep` overshoots by the timer slack
/// (50 us by default), so appends are about 100 us apart.
const TAIL_GAP: Duration = Duration::from_micros(50);

/// Per-record timings of one tailing run, in nanoseconds.
struct TailRun {
    /// Reader holding the record minus writer calling `append`.
    from_call: Vec<i64>,
    /// Reader holding the record minus writer's `append` returning. Signed:
    /// `append` wakes readers before it returns, and under
    /// `SyncPolicy::Always` before its sync, so readers may see a record
    /// before it is durable.
    from_return: Vec<i64>,
    /// Records the reader found already appended when it went to wait for
    /// them (so it did not block): should be about none.
    found_ready: u64,
}

/// Appends `records` records, paced by [`TAIL_GAP`], while a reader thread
/// follows the log with `wait_for` + `read`. Each side notes its instants on
/// its own (relative to one epoch); they are paired up after both are done,
/// so the measurement adds no sharing between the threads.
fn tail_run(log: &Log, records: u64) -> TailRun {
    let first = log.next_offset();
    let value = vec![7u8; VALUE_BYTES];
    let epoch = Instant::now();
    let nanos = move || epoch.elapsed().as_nanos() as i64;
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut seen = Vec::with_capacity(records as usize);
            let mut found_ready = 0;
            for offset in first..first + records {
                found_ready += u64::from(log.next_offset() > offset);
                assert!(
                    log.wait_for(offset, Duration::from_secs(10)),
                    "no record {offset} in 10 s"
                );
                let record = log.read(offset).unwrap();
                seen.push(nanos());
                assert_eq!(record.value().len(), VALUE_BYTES);
            }
            (seen, found_ready)
        });
        // Let the reader block before the first append.
        std::thread::sleep(Duration::from_millis(1));
        let mut called = Vec::with_capacity(records as usize);
        let mut returned = Vec::with_capacity(records as usize);
        for _ in 0..records {
            std::thread::sleep(TAIL_GAP);
            called.push(nanos());
            log.append(&value).unwrap();
            returned.push(nanos());
        }
        let (seen, found_ready) = reader.join().unwrap();
        TailRun {
            from_return: seen.iter().zip(&returned).map(|(s, r)| s - r).collect(),
            from_call: seen.iter().zip(&called).map(|(s, c)| s - c).collect(),
            found_ready,
        }
    })
}

/// `p50 ... max` of `latencies` (ns), in microseconds.
fn percentiles(latencies: &[i64]) -> String {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64 / 1e3;
    let mean = sorted.iter().sum::<i64>() as f64 / sorted.len() as f64 / 1e3;
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

/// Where criterion writes its reports (`target/criterion` by default).
fn criterion_dir() -> PathBuf {
    match std::env::var_os("CRITERION_HOME") {
        Some(home) => PathBuf::from(home),
        None => {
            PathBuf::from(std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into())).join("criterion")
        }
    }
}

fn tailing_latency(c: &mut Criterion) {
    let mut report = String::new();
    let mut group = c.benchmark_group(format!("tailing_latency/{}", size_name(VALUE_BYTES)));
    group.throughput(Throughput::Elements(1));
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    // Records of the percentile runs: fewer under `Always`, whose appends
    // each wait for an `msync` (0.1 to several ms on a busy shared disk).
    let cases = [
        ("sync_never_from_append_call", SyncPolicy::Never, 20_000),
        ("sync_always_from_append_call", SyncPolicy::Always, 5_000),
    ];
    for (name, sync, records) in cases {
        let records = if test_mode() { 1_000 } else { records };
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), options(sync)).unwrap();
        let mut percentiles_done = false;
        group.bench_function(name, |b| {
            // Percentiles from one run of `records` records, the first time
            // this bench is selected (criterion reports only means).
            if !percentiles_done {
                percentiles_done = true;
                let run = tail_run(&log, records);
                let text = format!(
                    "tailing_latency/256B, SyncPolicy::{sync:?}, {records} records, reader found ready {}:\n  \
                     append called   -> reader has it: {}\n  append returned -> reader has it: {}\n",
                    run.found_ready,
                    percentiles(&run.from_call),
                    percentiles(&run.from_return),
                );
                println!("\n{text}");
                report.push_str(&text);
            }
            b.iter_custom(|iters| {
                let run = tail_run(&log, iters);
                Duration::from_nanos(run.from_call.iter().sum::<i64>().max(0) as u64)
            })
        });
    }
    group.finish();
    if !report.is_empty() {
        let path = criterion_dir().join("tailing_latency.txt");
        let mut text = String::new();
        let _ = writeln!(
            text,
            "# cargo bench --bench log: tailing latency percentiles, in microseconds (negative: the reader had \
             the record before append returned)"
        );
        text.push_str(&report);
        std::fs::create_dir_all(path.parent().expect("has a parent")).unwrap();
        std::fs::write(&path, text).unwrap();
        println!("tailing latency percentiles written to {}", path.display());
    }
}

// ---------------------------------------------------------------------------
// reopen

/// Reopen of a log of at least 1 GiB, after a clean close and after a crash.
fn reopen(c: &mut Criterion) {
    // 4 Mi records of 256 B values in 1000-record batches: 1.06 GiB of data
    // in five segments of 256 MiB (the default size).
    const RECORDS: u64 = 4 << 20;
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
    let mut group = c.benchmark_group("reopen/1GiB_log");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    group.bench_function("after_clean_close", |b| {
        b.iter_batched(
            || (),
            |()| {
                let log = Log::open(dir.path(), options.clone()).unwrap();
                assert!(log.recovery_report().clean_shutdown);
                log // closed by its drop, outside the timed part
            },
            BatchSize::PerIteration,
        )
    });
    // Recovery scans what was appended since the last recovery point (the
    // last open, roll, or sync): here a 64 MiB tail of 1000-record batches.
    // Segments of the largest size keep a tail from rolling (a roll would
    // move the recovery point past it), and each tail is truncated away after
    // it is measured, so the log stays the same however many iterations run.
    let options = options.clone().segment_bytes(replog::SEGMENT_BYTES_MAX);
    let log_end = Log::open(dir.path(), options.clone()).unwrap().next_offset();
    let tail_batches = (64 << 20) / (1000 * (VALUE_BYTES + 16));
    group.bench_function("after_crash_64MiB_tail", |b| {
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

criterion_group!(benches, append, read, durable_append, tailing_latency, reopen);
criterion_main!(benches);
