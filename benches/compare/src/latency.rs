//! Issue 10's latency rows: every single `append` of a sustained run timed
//! on its own (against a raw copy into pre-faulted maps timed the same way
//! in the same run), and the batched rate of fresh logs opened one after
//! another in one process.

use std::path::Path;
use std::time::{Duration, Instant};

use replog::{Log, NewRecord, Options, SyncPolicy};

use crate::harness::{VALUE_BYTES, Values};
use crate::raw;
use crate::stores::{BATCH, temp_dir};

/// Percentiles of one run's per-call latencies.
pub struct Latency {
    pub calls: u64,
    pub rolls: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub p9999: Duration,
    pub max: Duration,
}

impl Latency {
    fn of(mut nanos: Vec<u32>, rolls: u64) -> Latency {
        nanos.sort_unstable();
        let at = |q: f64| {
            let i = ((nanos.len() as f64 * q) as usize).min(nanos.len() - 1);
            Duration::from_nanos(u64::from(nanos[i]))
        };
        Latency {
            calls: nanos.len() as u64,
            rolls,
            p50: at(0.5),
            p99: at(0.99),
            p999: at(0.999),
            p9999: at(0.9999),
            max: at(1.0),
        }
    }
}

/// Times each of `calls` calls of `op` (argument: the call's
/// index), in nanoseconds, saturating at `u32::MAX` (4.3 s).
fn time_each(calls: u64, mut op: impl FnMut(u64)) -> Vec<u32> {
    let mut nanos = Vec::with_capacity(calls as usize);
    for i in 0..calls {
        let started = Instant::now();
        op(i);
        nanos.push(started.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
    }
    nanos
}

/// `Log::append` of `total_bytes` of 256-byte values, one per call, into a
/// fresh log of `segment_bytes` segments under `SyncPolicy::Never`.
pub fn replog_append(base: &Path, values: &Values, total_bytes: u64, segment_bytes: u64) -> Latency {
    let dir = temp_dir(base);
    let options = Options::default().segment_bytes(segment_bytes).sync(SyncPolicy::Never);
    let log = Log::open(dir.path(), options).expect("open replog");
    let calls = total_bytes / VALUE_BYTES as u64;
    let nanos = time_each(calls, |i| {
        log.append(values.get(i)).expect("append");
    });
    let rolls = std::fs::read_dir(dir.path())
        .expect("list the log")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count() as u64
        - 1;
    log.simulate_crash();
    Latency::of(nanos, rolls)
}

/// The raw baseline: each value copied (with the raw rows' 8-byte length
/// header) into maps of `segment_bytes`, every page of which was faulted in
/// before timing; a new map each `segment_bytes`, as a log's segments.
pub fn raw_copy(base: &Path, values: &Values, total_bytes: u64, segment_bytes: u64) -> Latency {
    let dir = temp_dir(base);
    let calls = total_bytes / VALUE_BYTES as u64;
    let segments = calls.div_ceil(segment_bytes / raw::RECORD_BYTES as u64);
    let mut maps: Vec<memmap2::MmapMut> = (0..segments)
        .map(|i| raw::prefaulted_map(&dir.path().join(format!("{i}.raw")), segment_bytes))
        .collect();
    let (mut segment, mut pos) = (0usize, 0usize);
    let nanos = time_each(calls, |i| {
        if pos + raw::RECORD_BYTES > segment_bytes as usize {
            segment += 1;
            pos = 0;
        }
        raw::encode(&mut maps[segment][pos..pos + raw::RECORD_BYTES], values.get(i));
        pos += raw::RECORD_BYTES;
    });
    Latency::of(nanos, segments - 1)
}

/// The batched rate of `logs` fresh logs opened one after another in this
/// process, each first given `bytes` of one-record appends, then timed
/// appending `bytes` more in batches of 100 (`SyncPolicy::Never`, 1 GiB
/// segments as in the append rows). Records per second, in order.
pub fn fresh_logs(base: &Path, values: &Values, logs: usize, bytes: u64) -> Vec<f64> {
    let records = bytes / VALUE_BYTES as u64;
    (0..logs)
        .map(|_| {
            let dir = temp_dir(base);
            let options = Options::default().segment_bytes(1 << 30).sync(SyncPolicy::Never);
            let log = Log::open(dir.path(), options).expect("open replog");
            for i in 0..records {
                log.append(values.get(i)).expect("append");
            }
            let started = Instant::now();
            let mut i = 0;
            while i < records {
                let batch: Vec<NewRecord<'_>> = (i..i + BATCH).map(|j| NewRecord::new(values.get(j))).collect();
                log.append_records(&batch).expect("append a batch");
                i += BATCH;
            }
            let rate = i as f64 / started.elapsed().as_secs_f64();
            log.simulate_crash();
            rate
        })
        .collect()
}
