//! Concurrency tests: one or more writers, readers doing random reads,
//! iterators and tailers following the writer, retention and truncation
//! running underneath. Segments are tiny, so they roll under the readers.
//!
//! Everything random comes from `common::rng`, seeded from the clock; each
//! test prints its seed, and `REPLOG_SEED=<seed>` replays it (as far as
//! thread scheduling allows).

mod common;

use std::panic;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use replog::{Error, Log, NewRecord, Options, Record, Retention, SyncPolicy};

use common::records::{append_values, check_record, key_at, value_at};
use common::rng::{Rng, mix, seed};

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

/// Sets a flag when dropped, also when the owning thread panics.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// Joins every thread; re-raises the first panic after all have ended.
fn join_all<T>(handles: Vec<(String, JoinHandle<T>)>) -> Vec<(String, T)> {
    let mut results = Vec::new();
    let mut failure = None;
    for (name, handle) in handles {
        match handle.join() {
            Ok(result) => results.push((name, result)),
            Err(payload) => {
                eprintln!("thread {name} failed");
                failure.get_or_insert(payload);
            }
        }
    }
    if let Some(payload) = failure {
        panic::resume_unwind(payload);
    }
    results
}

fn spawn<T: Send + 'static>(
    handles: &mut Vec<(String, JoinHandle<T>)>,
    name: String,
    body: impl FnOnce() -> T + Send + 'static,
) {
    let handle = thread::Builder::new().name(name.clone()).spawn(body).unwrap();
    handles.push((name, handle));
}

fn small_options(segment_bytes: u64, sync: SyncPolicy) -> Options {
    Options::default()
        .segment_bytes(segment_bytes)
        .index_interval_bytes(128)
        .sync(sync)
        .prefault_bytes(16 << 10)
}

// ---------------------------------------------------------------------------
// One writer; readers, iterators and tailers; optionally retention.
// ---------------------------------------------------------------------------

/// Whether retention explains an `OffsetOutOfRange` for `offset`: it lies
/// below `start_offset()` (which the log raises before it drops segments,
/// see `retention_never_makes_offsets_at_or_above_start_out_of_range`).
fn deleted(log: &Log, offset: u64) -> bool {
    offset < log.start_offset()
}

/// Scans from random offsets until `done` is set; returns the number of
/// scans. Each picks `from` in `start_offset()..=next_offset()` and a limit
/// up to 2000 records past it, and `scan(from, limit)` reads on from `from`
/// and returns where it stopped, or `None` if retention had deleted `from`.
/// A scan must get at least to the `next_offset()` seen before it began (or
/// to its limit).
fn scan_from_random_offsets(
    log: &Log,
    done: &AtomicBool,
    mut rng: Rng,
    what: &str,
    mut scan: impl FnMut(u64, u64) -> Option<u64>,
) -> u64 {
    let mut scans = 0;
    while !done.load(SeqCst) {
        let start = log.start_offset();
        let end = log.next_offset();
        let from = start + rng.below(end - start + 1);
        let limit = from + 1 + rng.below(2000);
        if let Some(stopped) = scan(from, limit) {
            assert!(
                stopped >= end.min(limit),
                "{what}({from}) stopped at {stopped}, before {end}"
            );
        }
        scans += 1;
    }
    scans
}

const WRITER_RECORDS: u64 = 12_000;
const WRITER_TIME: Duration = Duration::from_secs(4);

fn follow_one_writer(test: &str, options: Options, retention: bool) {
    let seed = seed(test);
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), options.clone()).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let mut handles: Vec<(String, JoinHandle<u64>)> = Vec::new();

    // The writer: single records and batches; returns how many it wrote.
    {
        let (log, done) = (log.clone(), done.clone());
        spawn(&mut handles, "writer".into(), move || {
            let _done = SetOnDrop(done);
            let mut rng = Rng::new(seed);
            let began = Instant::now();
            let mut next = 0;
            while next < WRITER_RECORDS && began.elapsed() < WRITER_TIME {
                let n = if rng.percent(30) { 1 + rng.below(20) } else { 1 };
                let values: Vec<(Vec<u8>, Option<Vec<u8>>)> =
                    (next..next + n).map(|o| (value_at(o), key_at(o))).collect();
                let base = if n == 1 && values[0].1.is_none() && rng.percent(50) {
                    log.append(&values[0].0)
                } else {
                    let records: Vec<NewRecord<'_>> = values
                        .iter()
                        .map(|(v, k)| match k {
                            Some(k) => NewRecord::new(v).key(k),
                            None => NewRecord::new(v),
                        })
                        .collect();
                    log.append_records(&records)
                }
                .unwrap_or_else(|e| panic!("seed {seed}: append at {next} failed: {e}"));
                assert_eq!(base, next, "seed {seed}: append returned the wrong offset");
                next += n;
            }
            next
        });
    }

    // Readers: random reads below next_offset(); hold some records and
    // check later that they did not change.
    for r in 0..3u64 {
        let (log, done) = (log.clone(), done.clone());
        spawn(&mut handles, format!("reader-{r}"), move || {
            let mut rng = Rng::new(seed ^ ((r + 1) << 32));
            let mut held: Vec<Record> = Vec::new();
            let mut reads = 0;
            while !done.load(SeqCst) {
                let end = log.next_offset();
                let start = log.start_offset();
                if end == start {
                    thread::yield_now();
                    continue;
                }
                let offset = start + rng.below(end - start);
                match log.read(offset) {
                    Ok(record) => {
                        check_record(&record, offset, &format!("seed {seed}: reader {r}"));
                        reads += 1;
                        if rng.percent(2) {
                            if held.len() < 32 {
                                held.push(record);
                            } else {
                                let slot = rng.below(32) as usize;
                                held[slot] = record;
                            }
                        }
                    }
                    Err(Error::OffsetOutOfRange { .. }) if retention && deleted(&log, offset) => {}
                    Err(e) => panic!("seed {seed}: reader {r}: read({offset}) below next_offset {end}: {e}"),
                }
                // Past the end: out of range, or (if the writer got there
                // meanwhile) the right record.
                let beyond = log.next_offset() + rng.below(3);
                match log.read(beyond) {
                    Ok(record) => check_record(&record, beyond, &format!("seed {seed}: reader {r} past the end")),
                    Err(Error::OffsetOutOfRange { .. }) => {}
                    Err(e) => panic!("seed {seed}: reader {r}: read({beyond}): {e}"),
                }
                if reads % 256 == 0 {
                    for record in &held {
                        check_record(
                            record,
                            record.offset(),
                            &format!("seed {seed}: reader {r}, held record"),
                        );
                    }
                }
            }
            for record in &held {
                check_record(
                    record,
                    record.offset(),
                    &format!("seed {seed}: reader {r}, held record"),
                );
            }
            reads
        });
    }

    // Iterators from random offsets: contiguous, correct, at least up to
    // the next_offset() seen before creating them.
    {
        let (log, done) = (log.clone(), done.clone());
        spawn(&mut handles, "iterator".into(), move || {
            let what = format!("seed {seed}: iter");
            scan_from_random_offsets(&log, &done, Rng::new(seed ^ 0xA11CE), &what, |from, limit| {
                let mut expected = from;
                for item in log.iter(from) {
                    match item {
                        Ok(record) => check_record(&record, expected, &format!("{what}({from})")),
                        Err(Error::OffsetOutOfRange { .. }) if retention && expected == from && deleted(&log, from) => {
                            return None;
                        }
                        Err(e) => panic!("{what}({from}) failed at {expected}: {e}"),
                    }
                    expected += 1;
                    if expected == limit {
                        break;
                    }
                }
                Some(expected)
            })
        });
    }

    // Batch scanners from random offsets: whole stored batches, contiguous,
    // the first holding `from`, every record (borrowed and owned) correct,
    // at least up to the next_offset() seen before creating them.
    {
        let (log, done) = (log.clone(), done.clone());
        spawn(&mut handles, "batches".into(), move || {
            let what = format!("seed {seed}: batches");
            scan_from_random_offsets(&log, &done, Rng::new(seed ^ 0xBA7C), &what, |from, limit| {
                let context = format!("{what}({from})");
                let mut expected = from;
                for item in log.batches(from) {
                    let batch = match item {
                        Ok(batch) => batch,
                        Err(Error::OffsetOutOfRange { .. }) if retention && expected == from && deleted(&log, from) => {
                            return None;
                        }
                        Err(e) => panic!("{context} failed at {expected}: {e}"),
                    };
                    assert!(
                        batch.base_offset() <= expected,
                        "{context}: batch skips to {}",
                        batch.base_offset()
                    );
                    assert_eq!(
                        batch.next_offset(),
                        batch.base_offset() + batch.records().count() as u64
                    );
                    for borrowed in batch.records().filter(|r| r.offset() >= from) {
                        assert_eq!(borrowed.offset(), expected, "{context}: offsets are contiguous");
                        assert_eq!(
                            borrowed.value(),
                            &value_at(expected)[..],
                            "{context}: value at {expected}"
                        );
                        assert_eq!(borrowed.key().map(|k| k.to_vec()), key_at(expected), "{context}: key");
                        let owned = batch.record(expected).unwrap();
                        check_record(&owned, expected, &context);
                        expected += 1;
                    }
                    if expected >= limit {
                        break;
                    }
                }
                Some(expected)
            })
        });
    }

    // Tailers: wait_for(offset) then read (or iterate) it, following the writer.
    for t in 0..2u64 {
        let (log, done) = (log.clone(), done.clone());
        spawn(&mut handles, format!("tailer-{t}"), move || {
            let mut offset = 0;
            loop {
                let waiting = Instant::now();
                while !log.wait_for(offset, Duration::from_millis(50)) {
                    if done.load(SeqCst) && offset >= log.next_offset() {
                        return offset;
                    }
                    assert!(
                        waiting.elapsed() < Duration::from_secs(20),
                        "seed {seed}: tailer {t} waited 20 s for {offset}"
                    );
                }
                assert!(
                    log.next_offset() > offset,
                    "seed {seed}: wait_for({offset}) returned early"
                );
                if t == 0 {
                    match log.read(offset) {
                        Ok(record) => {
                            check_record(&record, offset, &format!("seed {seed}: tailer {t}"));
                            offset += 1;
                        }
                        Err(Error::OffsetOutOfRange { .. }) if retention && deleted(&log, offset) => {
                            offset = log.start_offset();
                        }
                        Err(e) => panic!("seed {seed}: tailer {t}: read({offset}) after wait_for: {e}"),
                    }
                } else {
                    let from = offset;
                    for item in log.iter(from) {
                        match item {
                            Ok(record) => {
                                check_record(&record, offset, &format!("seed {seed}: tailer {t}"));
                                offset += 1;
                            }
                            Err(Error::OffsetOutOfRange { .. })
                                if retention && offset == from && deleted(&log, from) =>
                            {
                                offset = log.start_offset();
                                break;
                            }
                            Err(e) => panic!("seed {seed}: tailer {t}: iter({from}) failed at {offset}: {e}"),
                        }
                    }
                    assert!(
                        offset > from,
                        "seed {seed}: tailer {t}: iter({from}) after wait_for was empty"
                    );
                }
            }
        });
    }

    // Retention: delete_before from another thread (and, through the
    // options, on every roll).
    if retention {
        let (log, done) = (log.clone(), done.clone());
        spawn(&mut handles, "retention".into(), move || {
            let mut rng = Rng::new(seed ^ 0xDE1E7E);
            let mut deletes = 0;
            while !done.load(SeqCst) {
                let next = log.next_offset();
                let before = log.start_offset();
                let target = next.saturating_sub(300 + rng.below(600));
                let start = log
                    .delete_before(target)
                    .unwrap_or_else(|e| panic!("seed {seed}: delete_before({target}): {e}"));
                // The start may also have risen past `target` meanwhile, by
                // the retention policy applied on the writer's rolls.
                assert!(
                    before <= start,
                    "seed {seed}: delete_before({target}) moved start {before} back to {start}"
                );
                assert!(log.start_offset() >= start, "seed {seed}: start_offset went back");
                // Records at or above the target stay (unless the policy took them).
                let kept = target.max(start);
                if kept < log.next_offset() {
                    match log.read(kept) {
                        Ok(record) => check_record(&record, kept, &format!("seed {seed}: after delete_before")),
                        Err(Error::OffsetOutOfRange { .. }) if deleted(&log, kept) => {}
                        Err(e) => panic!("seed {seed}: read({kept}) after delete_before({target}): {e}"),
                    }
                }
                deletes += u64::from(start > before);
                thread::sleep(Duration::from_millis(1 + rng.below(3)));
            }
            deletes
        });
    }

    let results = join_all(handles);
    println!("{test}: {results:?}");
    let written = results[0].1;
    let count = |prefix: &str| {
        results
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|r| r.1)
            .sum::<u64>()
    };
    assert!(written > 1000, "the writer wrote only {written} records");
    assert!(
        count("reader") > 0 && count("iterator") > 0 && count("batches") > 0,
        "readers did nothing: {results:?}"
    );
    for (name, reached) in results.iter().filter(|(n, _)| n.starts_with("tailer")) {
        assert_eq!(*reached, written, "{name} did not follow the writer to the end");
    }
    if retention {
        assert!(log.start_offset() > 0, "retention deleted nothing");
    }

    // The end state, also after a reopen: a clean one, or (with retention,
    // whose deletions raced the background syncs and their recovery
    // points) a simulated crash.
    let log = Arc::into_inner(log).unwrap();
    let start = log.start_offset();
    assert_eq!(log.next_offset(), written);
    for (i, item) in log.iter(start).enumerate() {
        check_record(&item.unwrap(), start + i as u64, "final iteration");
    }
    if retention {
        log.simulate_crash();
    } else {
        log.close().unwrap();
    }
    let log = Log::open(dir.path(), options).unwrap();
    assert_eq!(
        log.recovery_report().clean_shutdown,
        !retention,
        "{:?}",
        log.recovery_report()
    );
    assert_eq!((log.start_offset(), log.next_offset()), (start, written));
    for (i, item) in log.iter(start).enumerate() {
        check_record(&item.unwrap(), start + i as u64, "iteration after reopening");
    }
}

#[test]
fn readers_iterators_and_tailers_follow_one_writer() {
    follow_one_writer(
        "readers_iterators_and_tailers_follow_one_writer",
        small_options(4096, SyncPolicy::Never),
        false,
    );
}

/// The same with at most two sealed segments mapped: readers race the
/// mapping cache, which unmaps and maps segments again under them.
#[test]
fn readers_follow_one_writer_through_a_small_mapping_cache() {
    follow_one_writer(
        "readers_follow_one_writer_through_a_small_mapping_cache",
        small_options(4096, SyncPolicy::Never).mapped_segments_max(2),
        false,
    );
}

#[test]
fn readers_iterators_and_tailers_follow_one_writer_under_retention() {
    let options = small_options(5000, SyncPolicy::Interval(Duration::from_millis(3))).retention(Retention {
        bytes_max: Some(400 << 10),
        age_max: None,
    });
    follow_one_writer(
        "readers_iterators_and_tailers_follow_one_writer_under_retention",
        options,
        true,
    );
}

// ---------------------------------------------------------------------------
// Several writers with SyncPolicy::Always (group commit).
// ---------------------------------------------------------------------------

/// The value writer `w` stores as its `seq`-th record.
fn writer_value(w: u64, seq: u64) -> Vec<u8> {
    let mut value = w.to_le_bytes().to_vec();
    value.extend_from_slice(&seq.to_le_bytes());
    value.extend(Rng::new((w << 40) | seq).bytes((mix((w << 40) | seq) % 80) as usize));
    value
}

/// Decodes `(writer, seq)` from a value, checking the filler.
fn decode_writer_value(value: &[u8]) -> Option<(u64, u64)> {
    let w = u64::from_le_bytes(value.get(0..8)?.try_into().ok()?);
    let seq = u64::from_le_bytes(value.get(8..16)?.try_into().ok()?);
    (value == &writer_value(w, seq)[..]).then_some((w, seq))
}

#[test]
fn concurrent_writers_with_group_commit() {
    const WRITERS: u64 = 4;
    const APPENDS: u64 = 200;
    let seed = seed("concurrent_writers_with_group_commit");
    let dir = tempfile::tempdir().unwrap();
    let options = small_options(4096, SyncPolicy::Always);
    let log = Arc::new(Log::open(dir.path(), options.clone()).unwrap());
    let writers_done = Arc::new(AtomicU64::new(0));
    let all_done = Arc::new(AtomicBool::new(false));

    // Each writer returns the (offset, seq) of every record it appended.
    type Appended = Vec<(u64, u64)>;
    let mut writers: Vec<(String, JoinHandle<Appended>)> = Vec::new();
    for w in 0..WRITERS {
        let (log, writers_done) = (log.clone(), writers_done.clone());
        spawn(&mut writers, format!("writer-{w}"), move || {
            let mut rng = Rng::new(seed ^ ((w + 1) << 40));
            let mut written = Vec::new(); // (offset, seq)
            let mut seq = 0;
            let mut last = None;
            for _ in 0..APPENDS {
                let n = if rng.percent(25) { 1 + rng.below(8) } else { 1 };
                let values: Vec<Vec<u8>> = (seq..seq + n).map(|s| writer_value(w, s)).collect();
                let base = if n == 1 {
                    log.append(&values[0])
                } else {
                    log.append_batch(&values)
                }
                .unwrap_or_else(|e| panic!("seed {seed}: writer {w}: append failed: {e}"));
                assert!(last < Some(base), "seed {seed}: writer {w}: offsets went back");
                last = Some(base);
                // Acknowledged, so readable at once.
                for i in 0..n {
                    let record = log.read(base + i).unwrap();
                    assert_eq!(decode_writer_value(record.value()), Some((w, seq + i)), "seed {seed}");
                    written.push((base + i, seq + i));
                }
                seq += n;
            }
            writers_done.fetch_add(1, SeqCst);
            written
        });
    }

    // A reader checking that every record below next_offset() is whole,
    // and a thread calling sync() alongside group commit.
    let mut others: Vec<(String, JoinHandle<u64>)> = Vec::new();
    {
        let (log, all_done) = (log.clone(), all_done.clone());
        spawn(&mut others, "reader".into(), move || {
            let mut rng = Rng::new(seed ^ 0x5EAD);
            let mut reads = 0;
            while !all_done.load(SeqCst) {
                let end = log.next_offset();
                if end == 0 {
                    thread::yield_now();
                    continue;
                }
                let offset = rng.below(end);
                let record = log
                    .read(offset)
                    .unwrap_or_else(|e| panic!("seed {seed}: read({offset}) below {end}: {e}"));
                assert_eq!(record.offset(), offset);
                assert!(
                    decode_writer_value(record.value()).is_some(),
                    "seed {seed}: bad value at {offset}"
                );
                reads += 1;
            }
            reads
        });
    }
    {
        let (log, all_done) = (log.clone(), all_done.clone());
        spawn(&mut others, "syncer".into(), move || {
            let mut syncs = 0;
            while !all_done.load(SeqCst) {
                log.sync().unwrap_or_else(|e| panic!("seed {seed}: sync: {e}"));
                syncs += 1;
                thread::sleep(Duration::from_millis(1));
            }
            syncs
        });
    }

    let written = {
        let _stop = SetOnDrop(all_done.clone());
        join_all(writers)
    };
    let others = join_all(others);
    println!("others: {others:?}");
    assert_eq!(writers_done.load(SeqCst), WRITERS);

    // Every returned offset is unique, together they are 0..total, and each
    // holds what its writer wrote, also after a crash (acknowledged means durable).
    let mut owner: Vec<Option<(u64, u64)>> = vec![None; log.next_offset() as usize];
    for (w, (_, offsets)) in written.iter().enumerate() {
        for &(offset, seq) in offsets {
            let slot = owner
                .get_mut(offset as usize)
                .unwrap_or_else(|| panic!("seed {seed}: offset {offset} past the end"));
            assert_eq!(*slot, None, "seed {seed}: offset {offset} returned twice");
            *slot = Some((w as u64, seq));
        }
    }
    assert!(owner.iter().all(Option::is_some), "seed {seed}: offsets missing");
    let check = |log: &Log| {
        for (offset, item) in log.iter(0).enumerate() {
            let record = item.unwrap();
            assert_eq!(
                decode_writer_value(record.value()),
                owner[offset],
                "seed {seed}: offset {offset}"
            );
        }
        assert_eq!(log.next_offset(), owner.len() as u64);
    };
    check(&log);
    Arc::into_inner(log).unwrap().simulate_crash();
    let log = Log::open(dir.path(), options).unwrap();
    check(&log);
}

// ---------------------------------------------------------------------------
// Truncation concurrent with readers.
// ---------------------------------------------------------------------------

const TABLE: usize = 1 << 16;

/// Value of a record at `offset` written as generation `generation`.
fn generation_value(offset: u64, generation: u64) -> Vec<u8> {
    let mut value = offset.to_le_bytes().to_vec();
    value.extend_from_slice(&generation.to_le_bytes());
    value.extend(Rng::new(offset ^ (generation << 20)).bytes((mix(offset ^ generation) % 100) as usize));
    value
}

/// The generation of a record read at `offset`, checking that it is whole
/// and belongs there.
fn generation_of(record: &Record, offset: u64, context: &str) -> u64 {
    assert_eq!(record.offset(), offset, "{context}: wrong offset");
    let value = record.value();
    assert!(value.len() >= 16, "{context}: short value at {offset}");
    let stored = u64::from_le_bytes(value[0..8].try_into().unwrap());
    let generation = u64::from_le_bytes(value[8..16].try_into().unwrap());
    assert_eq!(stored, offset, "{context}: record of offset {stored} found at {offset}");
    assert!(
        value[..] == generation_value(offset, generation)[..],
        "{context}: torn value at {offset}"
    );
    generation
}

/// Shared between the truncating writer and its readers.
struct Generations {
    /// Generation of the record at each offset (set before it is appended;
    /// only ever grows).
    table: Vec<AtomicU64>,
    /// Bumped before and after every truncation: odd while one runs.
    truncations: AtomicU64,
}

impl Generations {
    fn get(&self, offset: u64) -> u64 {
        self.table[offset as usize].load(SeqCst)
    }

    /// Whether a truncation ran at any time between the two counter loads.
    fn truncated_between(before: u64, after: u64) -> bool {
        before % 2 == 1 || before != after
    }
}

#[test]
fn truncation_concurrent_with_readers() {
    let seed = seed("truncation_concurrent_with_readers");
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), small_options(4096, SyncPolicy::Never)).unwrap());
    let shared = Arc::new(Generations {
        table: (0..TABLE).map(|_| AtomicU64::new(0)).collect(),
        truncations: AtomicU64::new(0),
    });
    let done = Arc::new(AtomicBool::new(false));
    let mut handles: Vec<(String, JoinHandle<u64>)> = Vec::new();

    {
        let (log, shared, done) = (log.clone(), shared.clone(), done.clone());
        spawn(&mut handles, "writer".into(), move || {
            let _done = SetOnDrop(done);
            let mut rng = Rng::new(seed);
            let mut generation = 0;
            let mut truncations = 0;
            let mut appends = 0;
            let began = Instant::now();
            while began.elapsed() < Duration::from_secs(4) {
                let next = log.next_offset();
                if rng.percent(12) || next as usize + 32 > TABLE {
                    let back = if rng.percent(10) { 400 } else { 40 };
                    let target = next.saturating_sub(rng.below(back + 1));
                    let target = if next as usize + 32 > TABLE { 0 } else { target };
                    shared.truncations.fetch_add(1, SeqCst);
                    log.truncate(target)
                        .unwrap_or_else(|e| panic!("seed {seed}: truncate({target}): {e}"));
                    shared.truncations.fetch_add(1, SeqCst);
                    assert_eq!(log.next_offset(), target);
                    truncations += 1;
                    continue;
                }
                let n = if rng.percent(30) { 1 + rng.below(20) } else { 1 };
                let values: Vec<Vec<u8>> = (next..next + n)
                    .map(|offset| {
                        generation += 1;
                        shared.table[offset as usize].store(generation, SeqCst);
                        generation_value(offset, generation)
                    })
                    .collect();
                let base = log
                    .append_batch(&values)
                    .unwrap_or_else(|e| panic!("seed {seed}: append at {next}: {e}"));
                assert_eq!(base, next);
                appends += 1;
            }
            println!("writer: {appends} appends, {truncations} truncations");
            truncations
        });
    }

    for r in 0..3u64 {
        let (log, shared, done) = (log.clone(), shared.clone(), done.clone());
        spawn(&mut handles, format!("reader-{r}"), move || {
            let mut rng = Rng::new(seed ^ ((r + 1) << 32));
            let mut held: Vec<(Record, Vec<u8>)> = Vec::new();
            let mut reads = 0;
            while !done.load(SeqCst) {
                let context = format!("seed {seed}: reader {r}");
                let before = shared.truncations.load(SeqCst);
                let end = log.next_offset();
                if end == 0 {
                    thread::yield_now();
                    continue;
                }
                let offset = rng.below(end);
                let generation_before = shared.get(offset);
                let result = log.read(offset);
                let generation_after = shared.get(offset);
                let after = shared.truncations.load(SeqCst);
                match result {
                    Ok(record) => {
                        let generation = generation_of(&record, offset, &context);
                        assert!(
                            (generation_before..=generation_after).contains(&generation),
                            "{context}: read({offset}) gave generation {generation}, \
                             current was {generation_before} before the read and {generation_after} after"
                        );
                        if !Generations::truncated_between(before, after) {
                            assert_eq!(generation, generation_before, "{context}: read({offset})");
                        }
                        reads += 1;
                        if rng.percent(3) {
                            let copy = record.value().to_vec();
                            if held.len() < 32 {
                                held.push((record, copy));
                            } else {
                                let slot = rng.below(32) as usize;
                                held[slot] = (record, copy);
                            }
                        }
                    }
                    Err(Error::OffsetOutOfRange { .. }) => assert!(
                        Generations::truncated_between(before, after),
                        "{context}: read({offset}) below next_offset {end} out of range with no truncation"
                    ),
                    Err(e) => panic!("{context}: read({offset}): {e}"),
                }
                if reads % 128 == 0 {
                    for (record, copy) in &held {
                        assert!(record.value()[..] == copy[..], "{context}: a held record changed");
                    }
                }
                if reads % 16 == 0 {
                    // Leave the (I/O-bound) writer some CPU on small machines.
                    thread::sleep(Duration::from_micros(50));
                }
            }
            for (record, copy) in &held {
                assert!(
                    record.value()[..] == copy[..],
                    "seed {seed}: reader {r}: a held record changed"
                );
            }
            reads
        });
    }

    // Iterators: an iterator shows the log as it was at its creation, so
    // each record's generation is at least the one current before it was
    // created; one created while a truncation runs may also find its start
    // truncated away (and then yields one OffsetOutOfRange).
    {
        let (log, shared, done) = (log.clone(), shared.clone(), done.clone());
        spawn(&mut handles, "iterator".into(), move || {
            let mut rng = Rng::new(seed ^ 0x17E8);
            let mut iterations = 0;
            while !done.load(SeqCst) {
                let context = format!("seed {seed}: iterator");
                let before = shared.truncations.load(SeqCst);
                let end = log.next_offset();
                let from = rng.below(end + 1);
                let count = (end - from).min(300);
                let generations: Vec<u64> = (from..from + count).map(|o| shared.get(o)).collect();
                let iter = log.iter(from);
                let created = shared.truncations.load(SeqCst);
                let racing = Generations::truncated_between(before, created);
                let mut offset = from;
                for item in iter.take(300) {
                    match item {
                        Ok(record) => {
                            let generation = generation_of(&record, offset, &context);
                            if let Some(&at_least) = generations.get((offset - from) as usize) {
                                assert!(
                                    generation >= at_least,
                                    "{context}: iter({from}) gave generation {generation} at {offset}, \
                                     but {at_least} was current before it was created"
                                );
                            }
                            assert!(
                                generation <= shared.get(offset),
                                "{context}: generation from the future"
                            );
                            offset += 1;
                        }
                        Err(Error::OffsetOutOfRange { .. }) if racing && offset == from => break,
                        Err(e) => panic!("{context}: iter({from}) failed at {offset}: {e}"),
                    }
                }
                if !racing {
                    assert!(
                        offset >= from + count,
                        "{context}: iter({from}) ended at {offset}, before {end}"
                    );
                }
                iterations += 1;
                if iterations % 16 == 0 {
                    thread::sleep(Duration::from_micros(50));
                }
            }
            iterations
        });
    }

    let results = join_all(handles);
    println!("truncation_concurrent_with_readers: {results:?}");
    assert!(results[0].1 > 10, "the writer truncated only {} times", results[0].1);
    let log = Arc::into_inner(log).unwrap();
    for (offset, item) in log.iter(0).enumerate() {
        let generation = generation_of(&item.unwrap(), offset as u64, "final iteration");
        assert_eq!(generation, shared.get(offset as u64), "final iteration at {offset}");
    }
}

/// Regression test, found by the concurrency test
/// `truncation_concurrent_with_readers` (its seed was not recorded; fixed in
/// 87eb44e): an iterator created while `truncate` ran could take the log's
/// end from before the truncation and its segment snapshot from after it,
/// and then failed with `Corrupt { reason: "offset below the log end is
/// missing from its segments" }` instead of yielding the records. Reproduced
/// within a fraction of a second before `Log::iter` took its end from the
/// snapshot.
#[test]
fn iter_created_during_truncation_never_reports_corruption() {
    let seed = seed("iter_created_during_truncation_never_reports_corruption");
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), small_options(4096, SyncPolicy::Never)).unwrap());
    append_values(&log, 0..100);
    let done = Arc::new(AtomicBool::new(false));
    let mut handles: Vec<(String, JoinHandle<u64>)> = Vec::new();
    {
        let (log, done) = (log.clone(), done.clone());
        spawn(&mut handles, "truncator".into(), move || {
            let _done = SetOnDrop(done.clone());
            let mut rng = Rng::new(seed);
            let began = Instant::now();
            let mut rounds = 0;
            while !done.load(SeqCst) && began.elapsed() < Duration::from_secs(3) {
                let target = 50 + rng.below(50);
                log.truncate(target).unwrap();
                append_values(&log, target..100);
                rounds += 1;
            }
            rounds
        });
    }
    // Cheap probes, so many land in the window between the truncation's two
    // updates: an iterator from 99 yields record 99, nothing (the log ends
    // at 99) or one OffsetOutOfRange (it ends below); never anything else.
    for t in 0..2u64 {
        let (log, done) = (log.clone(), done.clone());
        spawn(&mut handles, format!("iterator-{t}"), move || {
            let mut iterations = 0;
            while !done.load(SeqCst) {
                let mut iter = log.iter(99);
                match iter.next() {
                    Some(Ok(record)) => {
                        assert_eq!(record.offset(), 99);
                        assert!(record.value()[..] == value_at(99)[..], "seed {seed}: wrong value");
                        assert!(iter.next().is_none(), "seed {seed}: iter(99) went past 100");
                    }
                    Some(Err(Error::OffsetOutOfRange { .. })) => assert!(iter.next().is_none()),
                    None => {} // the log ended at 99
                    other => {
                        done.store(true, SeqCst);
                        panic!("seed {seed}: after {iterations} iterations, iter(99) gave {other:?}")
                    }
                }
                iterations += 1;
            }
            iterations
        });
    }
    println!("{:?}", join_all(handles));
}

/// Regression test, found by the concurrency test under retention
/// (`readers_iterators_and_tailers_follow_one_writer_under_retention`; its
/// seed was not recorded; fixed in 80ce595). Retention (`delete_before`,
/// `enforce_retention`, or the policy applied on a roll) published the
/// shortened segment list before it raised `start_offset()`
/// (`Shared::remove_oldest`: `replace_segments`, then `start_offset.store`;
/// now the other way round). A reader in between, for as long as the
/// deleting thread was preempted there, got `OffsetOutOfRange` for offsets
/// at or above `start_offset()`; the error's own `start` field said the
/// offset was in range.
#[test]
fn retention_never_makes_offsets_at_or_above_start_out_of_range() {
    let seed = seed("retention_never_makes_offsets_at_or_above_start_out_of_range");
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), small_options(4096, SyncPolicy::Never)).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let mut handles: Vec<(String, JoinHandle<u64>)> = Vec::new();
    {
        let (log, done) = (log.clone(), done.clone());
        spawn(&mut handles, "writer and deleter".into(), move || {
            let _done = SetOnDrop(done.clone());
            let began = Instant::now();
            let mut deletes = 0;
            while !done.load(SeqCst) && began.elapsed() < Duration::from_secs(10) {
                let next = log.next_offset();
                append_values(&log, next..next + 40);
                log.delete_before(log.next_offset().saturating_sub(200)).unwrap();
                deletes += 1;
            }
            deletes
        });
    }
    // More spinning readers than cores, so the deleter gets preempted.
    for r in 0..4u64 {
        let (log, done) = (log.clone(), done.clone());
        spawn(&mut handles, format!("reader-{r}"), move || {
            let mut rng = Rng::new(seed ^ r);
            let mut reads = 0;
            while !done.load(SeqCst) {
                let start = log.start_offset();
                let end = log.next_offset();
                let offset = start + rng.below(end.saturating_sub(start).min(60));
                match log.read(offset) {
                    Ok(record) => assert!(record.value()[..] == value_at(offset)[..], "seed {seed}: wrong value"),
                    Err(Error::OffsetOutOfRange { start, end, .. }) if start <= offset && offset < end => {
                        done.store(true, SeqCst);
                        panic!(
                            "seed {seed}: after {reads} reads, read({offset}) gave OffsetOutOfRange, start {start}, end {end}"
                        );
                    }
                    Err(Error::OffsetOutOfRange { .. }) => {}
                    Err(e) => panic!("seed {seed}: read({offset}): {e}"),
                }
                reads += 1;
            }
            reads
        });
    }
    println!("{:?}", join_all(handles));
}

// ---------------------------------------------------------------------------
// Durable waits racing truncation.
// ---------------------------------------------------------------------------

/// Runs `body` on a thread and fails (instead of hanging the suite) if it
/// does not finish within `limit`.
fn within<T: Send + 'static>(limit: Duration, what: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = std::sync::mpsc::channel();
    let handle = thread::spawn(move || {
        let result = body();
        let _ = done.send(());
        result
    });
    match finished.recv_timeout(limit) {
        Ok(()) => handle.join().unwrap(),
        Err(_) if handle.is_finished() => handle.join().unwrap(), // it panicked
        Err(_) => panic!("{what}: still running after {limit:?} (livelock?)"),
    }
}

/// Regression test: an appender (or `sync`, or the interval-sync thread)
/// waiting for an offset that a concurrent truncation cut away flushed in a
/// loop forever, holding off the truncation, which waited for that loop to
/// stop while holding the writer lock: the log hung. Found by the model test
/// (it hung under `SyncPolicy::Interval` once group commit's gathering made
/// the syncing window longer; fixed in e826cc3).
#[test]
fn durable_waits_end_when_a_truncation_cuts_their_records() {
    let seed = seed("durable_waits_end_when_a_truncation_cuts_their_records");
    for policy in [SyncPolicy::Interval(Duration::from_micros(200)), SyncPolicy::Always] {
        within(
            Duration::from_secs(60),
            &format!("{policy:?}: durable waits racing truncation"),
            move || {
                let dir = tempfile::tempdir().unwrap();
                let log = Arc::new(Log::open(dir.path(), small_options(64 << 10, policy)).unwrap());
                let stop = Arc::new(AtomicBool::new(false));
                let mut handles = Vec::new();
                // Appenders (which wait for durability themselves under
                // `Always`), and threads that only call `sync`, so that some
                // thread is nearly always waiting for the end of the log.
                for w in 0..4u64 {
                    let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
                    spawn(&mut handles, format!("thread {w}"), move || {
                        let mut appended = 0u64;
                        while !stop.load(SeqCst) {
                            if w < 2 {
                                log.append(value_at(w)).unwrap();
                                appended += 1;
                            }
                            log.sync().unwrap();
                        }
                        appended
                    });
                }
                let mut rng = Rng::new(seed);
                for _ in 0..300 {
                    let end = log.next_offset();
                    let start = log.start_offset();
                    if end > start {
                        log.truncate(end - 1 - rng.below((end - start).min(8))).unwrap();
                    }
                    thread::sleep(Duration::from_micros(rng.below(300)));
                }
                stop.store(true, SeqCst);
                let appended: u64 = join_all(handles).into_iter().map(|(_, n)| n).sum();
                assert!(appended > 0);
            },
        );
    }
}
