//! End-to-end behaviour of the public API: append, read, iterate, reopen,
//! truncate, retention, bad input.

mod common;

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use replog::{Error, Log, NewRecord, Options, Retention, SyncPolicy};
use tempfile::TempDir;

use common::records::{self, append_values, value_at};

fn small() -> Options {
    Options::default()
        .segment_bytes(4096)
        .index_interval_bytes(256)
        .sync(SyncPolicy::Never)
}

/// Opens (or reopens) the log in `dir`, with `small()` options.
fn open(dir: &Path) -> Log {
    Log::open(dir, small()).unwrap()
}

/// A log in a new directory, holding `value_at` at offsets `0..n`.
fn new_log(n: u64) -> (TempDir, Log) {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    append_values(&log, 0..n);
    (dir, log)
}

/// The log ends at `range.end` and holds `value_at(i)` at every offset `i`
/// of `range`, by `read` and by `iter`.
fn assert_holds(log: &Log, range: Range<u64>) {
    records::assert_holds(log, range, "smoke", |record, i| {
        assert_eq!(record.value(), &value_at(i)[..], "value at {i}")
    });
}

#[test]
fn append_read_reopen_clean_and_crashed() {
    let (dir, log) = new_log(500);
    assert_holds(&log, 0..500);
    log.close().unwrap();

    let log = open(dir.path());
    assert!(log.recovery_report().clean_shutdown, "{:?}", log.recovery_report());
    assert_eq!(log.next_offset(), 500);
    assert_holds(&log, 0..500);
    append_values(&log, 500..700);
    log.simulate_crash();
    let log = open(dir.path());
    assert!(!log.recovery_report().clean_shutdown);
    assert_holds(&log, 0..700);
}

#[test]
fn truncate_inside_a_batch_and_across_segments() {
    let (dir, log) = new_log(0);
    for chunk in 0..60u64 {
        let values: Vec<Vec<u8>> = (chunk * 10..chunk * 10 + 10).map(value_at).collect();
        assert_eq!(log.append_batch(&values).unwrap(), chunk * 10);
    }
    let old = log.iter(0);
    log.truncate(455).unwrap();
    assert_eq!(log.next_offset(), 455);
    assert_holds(&log, 0..455);
    assert!(matches!(log.read(455), Err(Error::OffsetOutOfRange { .. })));
    assert_eq!(old.count(), 600, "an iterator made before keeps its snapshot");
    append_values(&log, 455..470);
    log.truncate(100).unwrap();
    assert_holds(&log, 0..100);
    log.close().unwrap();
    let log = open(dir.path());
    assert_holds(&log, 0..100);
    log.truncate(0).unwrap();
    assert_eq!(log.next_offset(), 0);
    log.append(value_at(0)).unwrap();
    drop(log);
    let log = open(dir.path());
    assert_holds(&log, 0..1);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small().record_bytes_max(100)).unwrap();
    log.append(b"a").unwrap();
    assert!(matches!(
        log.append(vec![0u8; 101]),
        Err(Error::RecordTooLarge {
            size_bytes: 101,
            limit_bytes: 100
        })
    ));
    assert!(matches!(
        log.append_batch(Vec::<Vec<u8>>::new()),
        Err(Error::EmptyBatch)
    ));
    assert!(matches!(
        log.append_batch(vec![vec![1u8; 90]; 100]),
        Err(Error::BatchTooLarge { .. })
    ));
    assert!(matches!(
        log.read(1),
        Err(Error::OffsetOutOfRange {
            offset: 1,
            start: 0,
            end: 1
        })
    ));
    assert!(matches!(log.truncate(2), Err(Error::OffsetOutOfRange { .. })));
    assert!(matches!(Log::open(dir.path(), small()), Err(Error::Locked { .. })));
    assert_eq!(log.next_offset(), 1);
}

#[test]
fn keys_timestamps_and_tailing() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(open(dir.path()));
    for i in 0..100i64 {
        log.append_record(NewRecord::new(b"post").key(b"alice").timestamp_ms(1000 + i * 10))
            .unwrap();
    }
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some(0));
    assert_eq!(log.offset_for_timestamp(1055).unwrap(), Some(6));
    assert_eq!(log.offset_for_timestamp(1990).unwrap(), Some(99));
    assert_eq!(log.offset_for_timestamp(1991).unwrap(), None);
    assert_eq!(log.read(3).unwrap().key().unwrap(), &b"alice"[..]);
    let tail = log.clone();
    let waiter = std::thread::spawn(move || tail.wait_for(100, Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(20));
    log.append(b"late").unwrap();
    assert!(waiter.join().unwrap());
    assert!(!log.wait_for(500, Duration::from_millis(10)));
}

#[test]
fn retention_and_delete_before_drop_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        small().retention(Retention {
            bytes_max: Some(100_000),
            age_max: None,
        }),
    )
    .unwrap();
    append_values(&log, 0..3000);
    let start = log.start_offset();
    assert!(start > 0);
    assert!(matches!(log.read(start - 1), Err(Error::OffsetOutOfRange { .. })));
    assert_holds(&log, start..3000);
    let new_start = log.delete_before(2500).unwrap();
    assert!(new_start > start && new_start <= 2500, "{start} -> {new_start}");
    assert_holds(&log, new_start..3000);
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.start_offset(), new_start);
    assert_holds(&log, new_start..3000);
}

#[test]
fn simulated_crash_recovers_everything_written() {
    let (dir, log) = new_log(300);
    log.simulate_crash();
    let log = open(dir.path());
    let report = log.recovery_report().clone();
    assert!(!report.clean_shutdown);
    assert!(report.segments_scanned >= 1, "{report:?}");
    assert_eq!(report.truncated_at, None, "{report:?}");
    assert_holds(&log, 0..300);
}

#[test]
fn log_and_its_outputs_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Log>();
    assert_send_sync::<replog::Record>();
    fn assert_send<T: Send>() {}
    assert_send::<replog::Iter>();
}

#[test]
fn retention_by_age_deletes_closed_segments_of_old_records_only() {
    let dir = tempfile::tempdir().unwrap();
    let day_ms = 24 * 3600 * 1000;
    let retention = Retention {
        bytes_max: None,
        age_max: Some(Duration::from_secs(24 * 3600)),
    };
    let log = Log::open(dir.path(), small().retention(retention)).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Old posts fill several segments; then fresh ones.
    for i in 0..300u64 {
        log.append_record(NewRecord::new(&value_at(i)).timestamp_ms(now - 3 * day_ms))
            .unwrap();
    }
    let old_end = log.next_offset();
    for i in 300..600u64 {
        log.append_record(NewRecord::new(&value_at(i)).timestamp_ms(now))
            .unwrap();
    }
    let start = log.enforce_retention().unwrap();
    assert!(start > 0, "old segments were deleted");
    assert!(start <= old_end, "no segment holding a fresh record was deleted");
    assert_holds(&log, start..600);
    assert_eq!(log.offset_for_timestamp(now - day_ms).unwrap(), Some(old_end));
}

#[test]
fn a_poisoned_log_refuses_writes_keeps_reads_and_recovers_on_reopen() {
    let (dir, log) = new_log(50);
    log.poison_for_testing();
    assert!(matches!(log.append(b"x"), Err(Error::Poisoned)));
    assert!(matches!(log.append_batch([b"x"]), Err(Error::Poisoned)));
    assert!(matches!(log.sync(), Err(Error::Poisoned)));
    assert!(matches!(log.truncate(10), Err(Error::Poisoned)));
    assert_holds(&log, 0..50);
    assert!(
        matches!(log.close(), Err(Error::Poisoned)),
        "close reports the poisoning"
    );
    let log = open(dir.path());
    assert!(
        !log.recovery_report().clean_shutdown,
        "no clean checkpoint after poisoning"
    );
    assert_holds(&log, 0..50);
    assert_eq!(log.append(value_at(50)).unwrap(), 50);
}

#[test]
fn a_checkpoint_claiming_more_offsets_than_bytes_is_refused() {
    let (dir, log) = new_log(10);
    log.simulate_crash();
    // A well-formed checkpoint (valid CRC) whose recovery point names an
    // offset that its byte position cannot hold.
    let path = dir.path().join("checkpoint");
    let mut bytes = std::fs::read(&path).unwrap();
    let base = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
    bytes[32..40].copy_from_slice(&(base + (1 << 31)).to_le_bytes());
    let crc = crc32fast::hash(&bytes[..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    match Log::open(dir.path(), small()) {
        Err(Error::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn batches_yield_whole_stored_batches_that_validate() {
    let (_dir, log) = new_log(0);
    log.set_leader_epoch(3).unwrap();
    // Batches of 1..=5 records, across several segments.
    let mut next = 0u64;
    for size in (1..=5u64).cycle().take(60) {
        let values: Vec<Vec<u8>> = (next..next + size).map(value_at).collect();
        assert_eq!(log.append_batch(&values).unwrap(), next);
        next += size;
    }
    let from = 7; // inside the fourth batch (offsets 6..10)
    let batches: Vec<_> = log.batches(from).map(|b| b.unwrap()).collect();
    assert_eq!((batches[0].base_offset(), batches[0].next_offset()), (6, 10));
    assert_eq!(batches.last().unwrap().next_offset(), next);
    for pair in batches.windows(2) {
        assert_eq!(pair[0].next_offset(), pair[1].base_offset());
    }
    for batch in &batches {
        assert_eq!(batch.leader_epoch(), 3);
        let header = replog::codec::validate_batch(batch.as_bytes(), batch.base_offset()).unwrap();
        assert_eq!(header.record_count, batch.record_count());
        assert_eq!(header.max_timestamp_ms, batch.max_timestamp_ms());
        for record in batch.records() {
            assert_eq!(record.value(), &value_at(record.offset())[..]);
            assert_eq!(batch.record(record.offset()).unwrap().value(), record.value());
        }
        assert!(batch.record(batch.next_offset()).is_none());
        assert!(batch.base_offset() == 0 || batch.record(batch.base_offset() - 1).is_none());
    }
    // The same records as `iter`, from the same offset.
    let borrowed: Vec<Vec<u8>> = batches
        .iter()
        .flat_map(|b| b.records())
        .filter(|r| r.offset() >= from)
        .map(|r| r.value().to_vec())
        .collect();
    let owned: Vec<Vec<u8>> = log.iter(from).map(|r| r.unwrap().value().to_vec()).collect();
    assert_eq!(borrowed, owned);
    assert_eq!(log.batches(next).count(), 0);
    assert!(matches!(
        log.batches(next + 1).collect::<Vec<_>>()[..],
        [Err(Error::OffsetOutOfRange { offset, .. })] if offset == next + 1
    ));
}

#[test]
fn batches_keep_their_snapshot_across_truncation() {
    let (_dir, log) = new_log(100);
    let mut batches = log.batches(0);
    let first = batches.next().unwrap().unwrap();
    log.truncate(10).unwrap();
    let rest: Vec<_> = batches.map(|b| b.unwrap()).collect();
    assert_eq!(rest.last().unwrap().next_offset(), 100);
    assert_eq!(first.records().next().unwrap().value(), &value_at(0)[..]);
    assert_eq!(
        log.batches(0).map(|b| b.unwrap().record_count() as u64).sum::<u64>(),
        10
    );
}
