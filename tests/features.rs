//! The storage features replication, tools and simulation build on:
//! verbatim append, the epoch history, reset, the durable offset, the
//! injected clock, the listener, read-only open and bounded mappings.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use replog::codec::{BATCH_HEADER_BYTES, encode_batch_to_vec};
use replog::{Clock, Damage, Error, Log, LogListener, NewRecord, Options, Retention, SyncPolicy};

fn small() -> Options {
    Options::default().segment_bytes(4096).sync(SyncPolicy::Never)
}

/// Every file of `dir` (but the lock) with its contents.
fn listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "LOCK")
        .map(|e| (e.file_name().into_string().unwrap(), fs::read(e.path()).unwrap()))
        .collect()
}

fn all_bytes(log: &Log) -> Vec<Vec<u8>> {
    log.batches(log.start_offset())
        .map(|b| b.unwrap().as_bytes().to_vec())
        .collect()
}

fn fill(log: &Log, epochs: &[u64], per_epoch: u64) {
    for &epoch in epochs {
        log.set_leader_epoch(epoch).unwrap();
        for i in 0..per_epoch {
            let value = format!("epoch {epoch} record {i}");
            log.append_records(&[
                NewRecord::new(value.as_bytes()).key(b"k").timestamp_ms(i as i64),
                NewRecord::new(b"second").timestamp_ms(i as i64 + 1),
            ])
            .unwrap();
        }
    }
}

#[test]
fn verbatim_append_builds_byte_identical_replicas() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = Log::open(a.path(), small()).unwrap();
    fill(&leader, &[1, 2, 5], 40);
    let follower = Log::open(b.path(), small()).unwrap();
    // Ship in chunks of several batches, as a fetch response would.
    let batches: Vec<Vec<u8>> = all_bytes(&leader);
    for chunk in batches.chunks(7) {
        let next = follower.append_encoded(&chunk.concat()).unwrap();
        assert_eq!(next, follower.next_offset());
    }
    assert_eq!(all_bytes(&follower), batches);
    assert_eq!(follower.epoch_history(), leader.epoch_history());
    assert_eq!(follower.leader_epoch(), 5);
    follower.close().unwrap();
    let follower = Log::open(b.path(), small()).unwrap();
    assert_eq!(all_bytes(&follower), batches, "identical after reopen");
    assert_eq!(follower.epoch_history(), vec![(1, 0), (2, 80), (5, 160)]);
}

#[test]
fn invalid_verbatim_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    log.set_leader_epoch(3).unwrap();
    log.append(b"first").unwrap();
    let before = (log.next_offset(), all_bytes(&log), log.epoch_history());
    let good = encode_batch_to_vec(&[NewRecord::new(b"x")], 1, 3, 0);
    let invalid = |bytes: &[u8]| match log.append_encoded(bytes) {
        Err(Error::InvalidBatch { damage, .. }) => damage,
        other => panic!("expected InvalidBatch, got {other:?}"),
    };

    let misplaced = encode_batch_to_vec(&[NewRecord::new(b"x")], 2, 3, 0);
    assert_eq!(invalid(&misplaced), Damage::UnexpectedOffset { expected: 1, found: 2 });
    let older = encode_batch_to_vec(&[NewRecord::new(b"x")], 1, 2, 0);
    assert_eq!(invalid(&older), Damage::EpochRegression { previous: 3, found: 2 });
    let mut flipped = good.clone();
    flipped[BATCH_HEADER_BYTES + 2] ^= 1;
    assert!(matches!(invalid(&flipped), Damage::ChecksumMismatch { .. }));
    assert_eq!(invalid(&good[..good.len() - 1]), Damage::Truncated);
    // A good batch followed by a bad one: nothing of either is written.
    let mut pair = good.clone();
    pair.extend(encode_batch_to_vec(&[NewRecord::new(b"y")], 5, 3, 0));
    assert!(matches!(invalid(&pair), Damage::UnexpectedOffset { .. }));
    // Limits of this log apply to a leader's batches too.
    let huge = vec![0u8; 5000];
    let too_big = encode_batch_to_vec(&[NewRecord::new(&huge)], 1, 3, 0);
    assert!(matches!(log.append_encoded(&too_big), Err(Error::BatchTooLarge { .. })));
    assert!(matches!(log.append_encoded(&[]), Err(Error::EmptyBatch)));
    assert_eq!((log.next_offset(), all_bytes(&log), log.epoch_history()), before);

    assert_eq!(log.append_encoded(&good).unwrap(), 2);
}

#[test]
fn epoch_history_follows_truncation_retention_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    fill(&log, &[1, 3, 4], 60);
    assert_eq!(log.epoch_history(), vec![(1, 0), (3, 120), (4, 240)]);
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 120)));
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 360)));
    assert_eq!(log.end_offset_for_epoch(0), None);

    log.truncate(261).unwrap();
    assert_eq!(log.end_offset_for_epoch(9), Some((4, 261)));
    log.truncate(200).unwrap();
    assert_eq!(log.epoch_history(), vec![(1, 0), (3, 120)]);
    let start = log.delete_before(170).unwrap();
    assert!(start > 0 && start <= 170, "start {start}");
    let history = log.epoch_history();
    assert_eq!(
        history.first().unwrap().1,
        start,
        "the first epoch starts at the log start"
    );
    log.set_leader_epoch(7).unwrap();
    log.append(b"after").unwrap();
    let history = log.epoch_history();
    log.close().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(log.epoch_history(), history);
    assert!(!log.recovery_report().epochs_rebuilt);
    assert_eq!(log.leader_epoch(), 7);
}

#[test]
fn damaged_or_missing_epoch_file_is_rebuilt_from_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    fill(&log, &[2, 6], 25);
    let history = log.epoch_history();
    log.close().unwrap();
    let epochs = dir.path().join("epochs");
    let mut bytes = fs::read(&epochs).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(&epochs, &bytes).unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    assert!(log.recovery_report().epochs_rebuilt);
    assert_eq!(log.epoch_history(), history);
    log.close().unwrap();
    fs::remove_file(&epochs).unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    assert!(log.recovery_report().epochs_rebuilt);
    assert_eq!(log.epoch_history(), history);
}

#[test]
fn reset_empties_the_log_and_continues_at_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    fill(&log, &[1, 2], 40);
    log.reset(1000).unwrap();
    assert_eq!(
        (log.start_offset(), log.next_offset(), log.durable_offset()),
        (1000, 1000, 1000)
    );
    assert_eq!(log.epoch_history(), vec![]);
    assert!(matches!(log.read(5), Err(Error::OffsetOutOfRange { .. })));
    assert_eq!(log.append(b"after reset").unwrap(), 1000);
    assert_eq!(log.epoch_history(), vec![(2, 1000)]);
    log.simulate_crash();
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!((log.start_offset(), log.next_offset()), (1000, 1001));
    assert_eq!(log.read(1000).unwrap().value(), &b"after reset"[..]);
    // Reset below the start works too.
    log.reset(3).unwrap();
    log.append(b"three").unwrap();
    log.close().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!((log.start_offset(), log.next_offset()), (3, 4));
}

/// A reset interrupted after its new segment was written: the old segments
/// (an older generation) are still there. Opening completes the reset.
#[test]
fn an_interrupted_reset_is_completed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    fill(&log, &[1], 60);
    log.close().unwrap();
    let old = listing(dir.path());
    let log = Log::open(dir.path(), small()).unwrap();
    log.reset(500).unwrap();
    log.simulate_crash();
    // Put the old segments back, as if their deletion had not happened yet.
    for (name, bytes) in &old {
        if name.ends_with(".log") {
            fs::write(dir.path().join(name), bytes).unwrap();
        }
    }
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!((log.start_offset(), log.next_offset()), (500, 500));
    assert!(!log.recovery_report().stray_files_removed.is_empty());
    let logs = fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_str().unwrap().ends_with(".log"))
        .count();
    assert_eq!(logs, 1, "the old generation's segments were removed");
}

#[test]
fn durable_offset_rises_with_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    log.append(b"a").unwrap();
    log.append(b"b").unwrap();
    assert_eq!(log.durable_offset(), 0, "nothing synced under SyncPolicy::Never");
    log.sync().unwrap();
    assert_eq!(log.durable_offset(), 2);
    drop(log);
    let always = tempfile::tempdir().unwrap();
    let log = Log::open(always.path(), Options::default().segment_bytes(4096)).unwrap();
    for i in 0..200u64 {
        log.append(b"0123456789012345678901234567890123456789").unwrap();
        assert_eq!(log.durable_offset(), i + 1, "SyncPolicy::Always: durable on return");
    }
    log.truncate(50).unwrap();
    assert_eq!(log.durable_offset(), 50);
}

#[derive(Debug, Default)]
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[test]
fn the_injected_clock_stamps_records_and_ages_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::default());
    clock.0.store(1_000, Ordering::SeqCst);
    let retention = Retention {
        age_max: Some(Duration::from_millis(500)),
        ..Retention::default()
    };
    let log = Log::open(dir.path(), small().clock(clock.clone()).retention(retention)).unwrap();
    for _ in 0..100 {
        log.append([7u8; 100]).unwrap();
    }
    assert_eq!(log.read(0).unwrap().timestamp_ms(), 1_000);
    assert_eq!(
        log.enforce_retention().unwrap(),
        0,
        "nothing is 500 ms old by the clock"
    );
    clock.0.store(1_400, Ordering::SeqCst);
    assert_eq!(log.enforce_retention().unwrap(), 0);
    clock.0.store(1_501, Ordering::SeqCst);
    let start = log.enforce_retention().unwrap();
    assert!(start > 0, "every sealed segment is older than 500 ms now");
    assert_eq!(log.read(log.next_offset() - 1).unwrap().timestamp_ms(), 1_000);
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl LogListener for Recorder {
    fn post_append(&self, base_offset: u64, next_offset: u64) {
        self.0
            .lock()
            .unwrap()
            .push(format!("append {base_offset}..{next_offset}"));
    }
    fn pre_sync(&self, next_offset: u64) {
        self.0.lock().unwrap().push(format!("sync {next_offset}"));
    }
    fn post_durable(&self, durable_offset: u64) {
        self.0.lock().unwrap().push(format!("durable {durable_offset}"));
    }
    fn post_truncate(&self, offset: u64) {
        self.0.lock().unwrap().push(format!("truncate {offset}"));
    }
    fn post_roll(&self, base_offset: u64) {
        self.0.lock().unwrap().push(format!("roll {base_offset}"));
    }
    fn post_delete_segments(&self, start_offset: u64) {
        self.0.lock().unwrap().push(format!("delete {start_offset}"));
    }
}

#[test]
fn the_listener_hears_every_kind_of_change_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let log = Log::open(dir.path(), small().listener(recorder.clone())).unwrap();
    log.append_batch([&b"a"[..], b"b"]).unwrap();
    log.sync().unwrap();
    while log.next_offset() < 200 {
        log.append([1u8; 64]).unwrap();
    }
    log.truncate(150).unwrap();
    let start = log.delete_before(100).unwrap();
    let events = recorder.0.lock().unwrap().clone();
    assert_eq!(events[0], "append 0..2");
    assert_eq!(events[1], "sync 2", "a sync is announced before it starts");
    assert_eq!(events[2], "durable 2");
    assert!(events.iter().any(|e| e.starts_with("roll ")));
    assert!(events.contains(&"truncate 150".to_string()));
    assert_eq!(events.last().unwrap(), &format!("delete {start}"));
    let appends: Vec<&String> = events.iter().filter(|e| e.starts_with("append")).collect();
    assert_eq!(appends.len(), 199, "one event per append");
}

#[test]
fn read_only_open_changes_nothing_and_reports_what_recovery_would_do() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    fill(&log, &[1], 50);
    let end = log.next_offset();
    log.simulate_crash();
    // Tear the last batch of the active segment.
    let active = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .max()
        .unwrap();
    let mut bytes = fs::read(&active).unwrap();
    let used = bytes.iter().rposition(|&b| b != 0).unwrap();
    bytes[used - 3] ^= 0xff;
    fs::write(&active, &bytes).unwrap();
    let before = listing(dir.path());

    let reader = Log::open_read_only(dir.path(), small()).unwrap();
    let report = reader.recovery_report().clone();
    assert!(report.read_only);
    assert_eq!(report.truncated_at, Some(end - 2));
    assert_eq!(reader.next_offset(), end - 2);
    assert_eq!(reader.iter(0).count() as u64, end - 2);
    assert_eq!(reader.epoch_history(), vec![(1, 0)]);
    assert!(matches!(reader.append(b"x"), Err(Error::ReadOnly)));
    assert!(matches!(reader.truncate(1), Err(Error::ReadOnly)));
    assert!(matches!(reader.reset(0), Err(Error::ReadOnly)));
    assert!(matches!(reader.sync(), Err(Error::ReadOnly)));
    assert!(matches!(reader.delete_before(1), Err(Error::ReadOnly)));
    let second = Log::open_read_only(dir.path(), small()).unwrap();
    assert!(matches!(Log::open(dir.path(), small()), Err(Error::Locked { .. })));
    drop((reader, second));
    assert!(listing(dir.path()) == before, "read-only open changed the directory");

    let writer = Log::open(dir.path(), small()).unwrap();
    assert_eq!(writer.recovery_report().truncated_at, Some(end - 2));
    assert!(matches!(
        Log::open_read_only(dir.path(), small()),
        Err(Error::Locked { .. })
    ));
    drop(writer);
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        Log::open_read_only(empty.path(), small()),
        Err(Error::Io { .. })
    ));
}

/// Mappings of this process whose file lies in `dir`.
fn mappings_in(dir: &Path) -> usize {
    let dir = dir.canonicalize().unwrap();
    let dir = dir.to_str().unwrap();
    fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|line| line.contains(dir))
        .count()
}

/// At most `limit` sealed segments mapped, and in all no more mappings of
/// the log's files than the active segment, the limit, and one that the
/// last reader's view may still hold.
fn assert_mappings_bounded(log: &Log, dir: &Path, limit: usize) {
    assert!(log.mapped_segments() <= limit);
    let mappings = mappings_in(dir);
    assert!(mappings <= limit + 2, "{mappings} mappings for a limit of {limit}");
}

#[test]
fn mappings_stay_bounded_while_every_segment_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 4;
    let options = small().mapped_segments_max(limit).prefault_bytes(0);
    let log = Log::open(dir.path(), options.clone()).unwrap();
    let value = |i: u64| format!("value {i:>6} {}", "x".repeat((i % 50) as usize));
    let mut i = 0;
    while i < 3000 {
        log.append_batch([value(i)]).unwrap();
        i += 1;
    }
    let segments = fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "log"))
        .count();
    assert!(segments >= 10 * limit, "{segments} segments for a limit of {limit}");
    log.close().unwrap();

    let log = Log::open(dir.path(), options).unwrap();
    let n = log.next_offset();
    assert_eq!(n, i);
    for (offset, record) in log.iter(0).enumerate() {
        assert_eq!(record.unwrap().value(), value(offset as u64).as_bytes());
        assert!(log.mapped_segments() <= limit);
    }
    let mut x = 12345u64;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let offset = x % n;
        assert_eq!(log.read(offset).unwrap().value(), value(offset).as_bytes());
        assert!(log.mapped_segments() <= limit);
    }
    assert_mappings_bounded(&log, dir.path(), limit);
}

#[test]
fn interval_syncs_follow_the_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::default());
    clock.0.store(10_000, Ordering::SeqCst);
    let options = small()
        .clock(clock.clone())
        .sync(SyncPolicy::Interval(Duration::from_millis(20)));
    let log = Log::open(dir.path(), options).unwrap();
    log.append(b"a").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(log.durable_offset(), 0, "no virtual time passed: no interval sync");
    clock.0.store(10_050, Ordering::SeqCst);
    log.append(b"b").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while log.durable_offset() < 2 {
        assert!(std::time::Instant::now() < deadline, "the interval sync never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Found while documenting the format: an `epochs` file of a newer version
/// was rebuilt and overwritten as version 1, and a refused open had already
/// removed stray files.
#[test]
fn a_newer_epoch_file_is_refused_and_a_refused_open_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    fill(&log, &[1, 2], 5);
    log.close().unwrap();
    let path = dir.path().join("epochs");
    let mut bytes = fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    fs::write(dir.path().join("checkpoint.tmp"), b"leftover").unwrap();
    let before = listing(dir.path());
    match Log::open(dir.path(), small()) {
        Err(Error::Corrupt {
            damage: Damage::UnknownVersion { version: 2 },
            ..
        }) => {}
        other => panic!("expected UnknownVersion, got {other:?}"),
    }
    assert!(listing(dir.path()) == before, "a refused open changed the directory");
}

/// A truncation inside the active segment turns it into a sealed one: its
/// mapping must become evictable like any sealed segment's (it stayed
/// pinned, one mapping per such truncation, until this was fixed).
#[test]
fn truncated_active_segments_do_not_pin_their_mappings() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 2;
    let log = Log::open(dir.path(), small().mapped_segments_max(limit).prefault_bytes(0)).unwrap();
    for round in 0..20u64 {
        for i in 0..40u64 {
            log.append(format!("round {round} record {i}")).unwrap();
        }
        log.truncate(log.next_offset() - 5).unwrap();
    }
    for record in log.iter(log.start_offset()) {
        record.unwrap();
    }
    assert_mappings_bounded(&log, dir.path(), limit);
}

/// Found by the model test (seed 4875895444273385264): deleting every
/// record (all sealed segments, the active one empty) left the epoch
/// history holding an epoch at the log's end, and the next append of that
/// epoch then added no entry for its record.
#[test]
fn epoch_history_is_empty_once_every_record_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    fill(&log, &[1], 100);
    // Truncate at the active segment's base: the active segment is empty,
    // and every record lies in sealed segments, which delete_before drops.
    let active_base = fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".log").and_then(|stem| stem.parse::<u64>().ok()))
        .max()
        .unwrap();
    assert!(active_base > 0, "the log spans several segments");
    log.truncate(active_base).unwrap();
    assert_eq!(log.epoch_history(), vec![(1, 0)]);
    assert_eq!(log.delete_before(active_base).unwrap(), active_base);
    assert_eq!((log.start_offset(), log.next_offset()), (active_base, active_base));
    assert_eq!(log.epoch_history(), vec![]);
    log.append(b"again").unwrap();
    assert_eq!(log.epoch_history(), vec![(1, active_base)]);
    log.close().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(log.epoch_history(), vec![(1, active_base)]);
    assert!(!log.recovery_report().epochs_rebuilt);
}

/// Issue 11: `close` took the log by value, so a log shared through an
/// `Arc` could not be closed. Now any clone closes it; appends racing with
/// the close either complete (and survive the reopen) or get `Closed`.
#[test]
fn a_log_shared_through_an_arc_closes_and_refuses_later_calls() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), small()).unwrap());
    let appended = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..3)
            .map(|_| {
                let log = Arc::clone(&log);
                scope.spawn(move || {
                    let mut ok = Vec::new();
                    loop {
                        match log.append(b"x") {
                            Ok(offset) => ok.push(offset),
                            Err(Error::Closed) => return ok,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        while log.next_offset() < 300 {
            std::thread::yield_now();
        }
        log.close().unwrap();
        writers.into_iter().flat_map(|w| w.join().unwrap()).count() as u64
    });
    assert!(matches!(log.close(), Err(Error::Closed)));
    assert!(matches!(log.read(0), Err(Error::Closed)));
    assert!(matches!(log.iter(0).next(), Some(Err(Error::Closed))));
    assert!(matches!(log.sync(), Err(Error::Closed)));
    assert!(log.is_closed());
    let reopened = Log::open(dir.path(), small()).unwrap();
    assert!(reopened.recovery_report().clean_shutdown);
    assert_eq!(reopened.next_offset(), appended, "every append that returned is there");
    drop(log);
}

/// Issue 11: the on-disk options were not stored, so a log of 64 KiB
/// segments reopened with the defaults preallocated 256 MiB (and failed on
/// a small volume with a misleading `fallocate` error). Unset options now
/// adopt the stored ones; a set one that differs is a reported change.
#[test]
fn a_log_remembers_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    let created = Options::default().segment_bytes(64 * 1024).index_interval_bytes(512);
    let log = Log::open(dir.path(), created).unwrap();
    for i in 0..500 {
        log.append(format!("record {i}")).unwrap();
    }
    log.close().unwrap();
    let largest_file = || {
        fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .max()
            .unwrap()
    };
    let log = Log::open(dir.path(), Options::default()).unwrap();
    assert!(log.recovery_report().options_changed.is_empty());
    assert!(largest_file() <= 64 * 1024, "the active segment keeps its 64 KiB");
    log.close().unwrap();
    let log = Log::open(dir.path(), Options::default().segment_bytes(128 * 1024)).unwrap();
    assert_eq!(
        log.recovery_report().options_changed,
        vec![("segment_bytes", 64 * 1024, 128 * 1024)]
    );
    log.close().unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap();
    assert!(
        log.recovery_report().options_changed.is_empty(),
        "the change was stored"
    );
    assert_eq!(log.next_offset(), 500);
}

/// Issue 11: a fresh log took 257 MB on disk until it was closed, as its
/// whole 256 MiB active segment was preallocated. The file now grows in
/// steps ahead of the writer (from 1 MiB): a log of ten records takes about
/// a megabyte, open or closed.
#[test]
fn a_small_log_stays_small() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let disk_bytes = || -> u64 {
        fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().blocks() * 512)
            .sum()
    };
    let log = Log::open(dir.path(), Options::default()).unwrap();
    for i in 0..10 {
        log.append(format!("post {i}")).unwrap();
    }
    assert!(disk_bytes() < 2 << 20, "{} bytes on disk while open", disk_bytes());
    // Growing past the first step extends the file, and only by a step.
    let value = vec![7u8; 100_000];
    for _ in 0..30 {
        log.append(&value).unwrap();
    }
    let on_disk = disk_bytes();
    assert!(
        (3 << 20..16 << 20).contains(&on_disk),
        "{on_disk} bytes on disk after 3 MB"
    );
    log.close().unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap();
    assert_eq!(log.next_offset(), 40);
    assert!(disk_bytes() < 16 << 20);
}
