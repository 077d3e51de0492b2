//! Golden on-disk fixtures: log directories written by an earlier build of
//! replog, committed under `tests/fixtures/v1/`, opened by this build. A
//! change to the on-disk format (or to how it is read) shows up here as a
//! failing test.
//!
//! Cases (one directory each, all format version 1, 4 KiB segments):
//!
//! - `clean/`: a cleanly closed log, 10 records (offsets 0..10) in 3 segments, keys (and
//!   records without one), fixed timestamps, leader epochs 1 and 3, so it
//!   has an `epochs` file.
//! - `torn_tail/`: a crashed log (`Log::simulate_crash`) whose last batch
//!   has its second half zeroed, as a torn write leaves it.
//! - `damaged_batch/`: `clean/` with one byte of a record value flipped in
//!   a batch of the first (sealed) segment.
//! - `no_epoch_file/`: `clean/` without its `epochs` file, as a log written
//!   before the epoch history existed.
//! - `newer_version/`: `clean/` with the first segment header's version set
//!   to 2 (and its header CRC recomputed).
//!
//! Every test opens a COPY of its fixture in a temporary directory: opening
//! writes (lock file, checkpoint, epoch file, indexes, truncation).
//!
//! # Regenerating
//!
//! The fixtures are made by the ignored test `regenerate_fixtures`:
//!
//! ```text
//! cargo test --test fixtures -- --ignored regenerate_fixtures
//! ```
//!
//! Regenerate only on purpose, with a format change, and then write the new
//! fixtures into a new `tests/fixtures/vN/` directory (change
//! [`GENERATE_INTO`]) rather than rewriting old ones: the old directories are
//! what proves that this build still reads logs written by earlier ones.
//! (The log id is random, so regenerating always changes the bytes.)

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use replog::codec::{BATCH_HEADER_BYTES, BatchHeader, SEGMENT_HEADER_BYTES, encode_batch_to_vec};
use replog::{Damage, Error, Log, NewRecord, Options, SyncPolicy};

/// The fixtures this build must read.
const FIXTURES: &str = "tests/fixtures/v1";
/// Where `regenerate_fixtures` writes (a new `vN` for a new format version).
const GENERATE_INTO: &str = "tests/fixtures/v1";
const SEGMENT_BYTES: u64 = 4096;
const FIRST_SEGMENT: &str = "00000000000000000000.log";

/// One record as written and as it must read back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    offset: u64,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    timestamp_ms: i64,
    leader_epoch: u64,
}

/// Deterministic record contents (no zero bytes, so a zeroed range is
/// distinguishable from data).
fn value_for(offset: u64, len: usize) -> Vec<u8> {
    let stem = format!("record {offset} of the replog v1 fixture; ");
    stem.bytes().cycle().take(len).collect()
}

/// A planned record: key, value length, timestamp.
type Planned = (Option<&'static str>, usize, i64);

/// The batches of the `clean` log: (leader epoch, records), records given
/// as (key, value length, timestamp).
fn clean_batches() -> Vec<(u64, Vec<Expected>)> {
    let plan: [(u64, &[Planned]); 7] = [
        (
            1,
            &[
                (Some("alice"), 700, 1_700_000_000_000),
                (Some("bob"), 650, 1_700_000_000_500),
            ],
        ),
        (1, &[(None, 900, 1_700_000_001_000)]),
        (
            1,
            &[
                (Some(""), 600, 1_700_000_002_000),
                (Some("carol"), 800, 1_700_000_002_000),
            ],
        ),
        (3, &[(Some("dave"), 750, 1_700_000_003_000)]),
        (
            3,
            &[(Some("erin"), 700, 1_700_000_004_000), (None, 640, 1_700_000_004_001)],
        ),
        (3, &[(Some("frank"), 1000, 1_700_000_005_000)]),
        (3, &[(Some("grace"), 720, 1_700_000_006_000)]),
    ];
    let mut offset = 0;
    plan.iter()
        .map(|(epoch, records)| {
            let records = records
                .iter()
                .map(|&(key, len, timestamp_ms)| {
                    let record = Expected {
                        offset,
                        key: key.map(|k| k.as_bytes().to_vec()),
                        value: value_for(offset, len),
                        timestamp_ms,
                        leader_epoch: *epoch,
                    };
                    offset += 1;
                    record
                })
                .collect();
            (*epoch, records)
        })
        .collect()
}

/// The batches of the `torn_tail` log (epoch 2 throughout); the last one is
/// torn in the fixture.
fn torn_batches() -> Vec<(u64, Vec<Expected>)> {
    let mut offset = 0;
    (0..8)
        .map(|batch| {
            let records = (0..2)
                .map(|i| {
                    let record = Expected {
                        offset,
                        key: Some(format!("torn-{batch}-{i}").into_bytes()),
                        value: value_for(offset, 500 + 10 * batch),
                        timestamp_ms: 1_710_000_000_000 + 1_000 * offset as i64,
                        leader_epoch: 2,
                    };
                    offset += 1;
                    record
                })
                .collect();
            (2, records)
        })
        .collect()
}

fn new_records(records: &[Expected]) -> Vec<NewRecord<'_>> {
    records
        .iter()
        .map(|r| {
            let record = NewRecord::new(&r.value).timestamp_ms(r.timestamp_ms);
            match &r.key {
                Some(key) => record.key(key),
                None => record,
            }
        })
        .collect()
}

fn all(batches: &[(u64, Vec<Expected>)]) -> Vec<Expected> {
    batches.iter().flat_map(|(_, records)| records.clone()).collect()
}

/// Encoded length of a batch of `records`.
fn batch_len(records: &[Expected]) -> u64 {
    encode_batch_to_vec(&new_records(records), records[0].offset, records[0].leader_epoch, 0).len() as u64
}

fn options() -> Options {
    Options::default().segment_bytes(SEGMENT_BYTES)
}

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURES).join(case)
}

/// Copies the files of `from` into the (existing) directory `to`, except
/// `LOCK`.
fn copy_files(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        assert!(entry.file_type().unwrap().is_file(), "{:?} is not a file", entry.path());
        if entry.file_name() != "LOCK" {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A temporary copy of fixture `case`.
fn copy_of(case: &str) -> tempfile::TempDir {
    let source = fixture(case);
    assert!(
        source.join(FIRST_SEGMENT).is_file(),
        "fixture {source:?} is missing (see the top of tests/fixtures.rs)"
    );
    let dir = tempfile::tempdir().unwrap();
    copy_files(&source, dir.path());
    dir
}

/// Every file of `dir` by name, with its contents.
fn listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().into_string().unwrap(),
                fs::read(entry.path()).unwrap(),
            )
        })
        .collect()
}

fn assert_records(log: &Log, expected: &[Expected]) {
    for want in expected {
        let record = log
            .read(want.offset)
            .unwrap_or_else(|e| panic!("offset {}: {e}", want.offset));
        let got = Expected {
            offset: record.offset(),
            key: record.key().map(|k| k.to_vec()),
            value: record.value().to_vec(),
            timestamp_ms: record.timestamp_ms(),
            leader_epoch: record.leader_epoch(),
        };
        assert_eq!(&got, want, "record at offset {}", want.offset);
    }
    let iterated: Vec<u64> = log
        .iter(log.start_offset())
        .map(|r| r.map(|r| r.offset()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()
        .unwrap();
    let offsets: Vec<u64> = expected.iter().map(|r| r.offset).collect();
    assert_eq!(iterated, offsets);
}

/// The epoch answers of the `clean` log (and of every copy of it).
fn assert_clean_epochs(log: &Log) {
    assert_eq!(log.epoch_history(), vec![(1, 0), (3, 5)]);
    assert_eq!(log.end_offset_for_epoch(0), None);
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 5)));
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 5)));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 10)));
    assert_eq!(log.end_offset_for_epoch(7), Some((3, 10)));
    assert_eq!(log.leader_epoch(), 3);
}

#[test]
fn clean_log_reads_back_exactly() {
    let dir = copy_of("clean");
    let log = Log::open(dir.path(), options()).unwrap();
    let report = log.recovery_report().clone();
    assert!(report.clean_shutdown, "{report:?}");
    assert!(!report.read_only);
    assert_eq!(report.truncated_at, None);
    assert_eq!(report.segments_scanned, 0);
    assert_eq!(report.indexes_rebuilt, 0);
    assert!(!report.epochs_rebuilt);
    assert!(report.stray_files_removed.is_empty());
    assert_eq!(log.start_offset(), 0);
    assert_eq!(log.next_offset(), 10);
    assert_records(&log, &all(&clean_batches()));
    assert_clean_epochs(&log);
    assert_eq!(log.offset_for_timestamp(1_700_000_002_000).unwrap(), Some(3));
    assert_eq!(log.offset_for_timestamp(1_700_000_006_001).unwrap(), None);
    assert_eq!(log.append(b"next").unwrap(), 10);
}

#[test]
fn clean_fixture_has_the_expected_files() {
    let names: Vec<String> = listing(&fixture("clean")).into_keys().collect();
    assert_eq!(
        names,
        [
            "00000000000000000000.index",
            "00000000000000000000.log",
            "00000000000000000000.timeindex",
            "00000000000000000005.index",
            "00000000000000000005.log",
            "00000000000000000005.timeindex",
            "00000000000000000009.index",
            "00000000000000000009.log",
            "00000000000000000009.timeindex",
            "checkpoint",
            "epochs",
        ]
    );
}

/// Offset of the first record of the torn batch, and its encoded length.
fn torn_batch() -> (u64, u64) {
    let batches = torn_batches();
    let (_, last) = batches.last().unwrap();
    (last[0].offset, batch_len(last))
}

#[test]
fn torn_tail_is_cut_at_the_torn_batch() {
    let dir = copy_of("torn_tail");
    let (n, len) = torn_batch();
    let log = Log::open(dir.path(), options()).unwrap();
    let report = log.recovery_report().clone();
    assert!(!report.clean_shutdown);
    assert_eq!(report.truncated_at, Some(n), "{report:?}");
    assert_eq!(report.bytes_truncated, len / 2, "the torn batch's first half");
    assert_eq!(report.segments_deleted, 0);
    assert_eq!(log.start_offset(), 0);
    assert_eq!(log.next_offset(), n);
    let kept: Vec<Expected> = all(&torn_batches()).into_iter().filter(|r| r.offset < n).collect();
    assert_records(&log, &kept);
    assert_eq!(log.epoch_history(), vec![(2, 0)]);
    assert_eq!(log.end_offset_for_epoch(2), Some((2, n)));
    assert!(matches!(log.read(n), Err(Error::OffsetOutOfRange { .. })));
    assert_eq!(log.append_record(NewRecord::new(b"after").timestamp_ms(5)).unwrap(), n);
    assert_eq!(log.read(n).unwrap().value(), &b"after"[..]);
    log.close().unwrap();
    let reopened = Log::open(dir.path(), options()).unwrap();
    assert!(reopened.recovery_report().clean_shutdown);
    assert_eq!(reopened.next_offset(), n + 1);
}

#[test]
fn damaged_batch_is_reported_when_read() {
    let dir = copy_of("damaged_batch");
    let log = Log::open(dir.path(), options()).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(log.next_offset(), 10);
    // The damage is in the batch of offset 2 (see `regenerate_fixtures`).
    match log.read(2) {
        Err(Error::Corrupt {
            damage: Damage::ChecksumMismatch { .. },
            path,
            ..
        }) => assert!(path.ends_with(FIRST_SEGMENT), "{path:?}"),
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    // Reaching a later batch of the same index interval means walking over
    // the damaged one, whose CRC fails: those reads report the same damage.
    let damaged_at = match log.read(2) {
        Err(Error::Corrupt { position, .. }) => position,
        _ => unreachable!(),
    };
    for offset in [3, 4] {
        match log.read(offset) {
            Err(Error::Corrupt {
                damage: Damage::ChecksumMismatch { .. },
                position,
                ..
            }) => assert_eq!(position, damaged_at),
            other => panic!("offset {offset}: expected the damaged batch, got {other:?}"),
        }
    }
    // The batches before it, and the other segments, read fine.
    let records = all(&clean_batches());
    let intact: Vec<Expected> = records
        .iter()
        .filter(|r| r.offset < 2 || r.offset >= 5)
        .cloned()
        .collect();
    for want in &intact {
        let record = log.read(want.offset).unwrap();
        assert_eq!(record.value().to_vec(), want.value);
        assert_eq!(record.key().map(|k| k.to_vec()), want.key);
    }
    assert_clean_epochs(&log);
}

#[test]
fn log_without_epoch_file_gets_it_rebuilt() {
    let dir = copy_of("no_epoch_file");
    assert!(!dir.path().join("epochs").exists());
    let log = Log::open(dir.path(), options()).unwrap();
    let report = log.recovery_report().clone();
    assert!(report.epochs_rebuilt, "{report:?}");
    assert!(report.clean_shutdown);
    assert_clean_epochs(&log);
    assert_records(&log, &all(&clean_batches()));
    log.close().unwrap();
    assert!(dir.path().join("epochs").is_file(), "the rebuilt history is written");
    let reopened = Log::open(dir.path(), options()).unwrap();
    assert!(!reopened.recovery_report().epochs_rebuilt);
    assert_clean_epochs(&reopened);
}

#[test]
fn newer_format_version_is_refused() {
    let dir = copy_of("newer_version");
    let before = listing(dir.path());
    match Log::open(dir.path(), options()) {
        Err(Error::Corrupt {
            damage: Damage::UnknownVersion { version: 2 },
            path,
            position: 0,
            ..
        }) => assert!(path.ends_with(FIRST_SEGMENT), "{path:?}"),
        other => panic!("expected UnknownVersion, got {other:?}"),
    }
    let mut after = listing(dir.path());
    after.remove("LOCK");
    assert_eq!(before, after, "a refused open changes no file of the log");
    assert!(matches!(
        Log::open_read_only(dir.path(), options()),
        Err(Error::Corrupt {
            damage: Damage::UnknownVersion { version: 2 },
            ..
        })
    ));
}

/// Opens a copy of `case` read-only and another read-write: same report
/// (but `read_only`), same records; the read-only copy is left unchanged.
fn read_only_matches_read_write(case: &str, expected: &[Expected]) {
    let ro_dir = copy_of(case);
    let before = listing(ro_dir.path());
    let ro = Log::open_read_only(ro_dir.path(), options()).unwrap();
    let rw_dir = copy_of(case);
    let rw = Log::open(rw_dir.path(), options()).unwrap();
    let mut want = rw.recovery_report().clone();
    want.read_only = true;
    assert_eq!(ro.recovery_report(), &want);
    assert_eq!(ro.start_offset(), rw.start_offset());
    assert_eq!(ro.next_offset(), rw.next_offset());
    assert_eq!(ro.epoch_history(), rw.epoch_history());
    assert_records(&ro, expected);
    assert!(matches!(ro.append(b"no"), Err(Error::ReadOnly)));
    drop(ro);
    assert_eq!(listing(ro_dir.path()), before, "read-only open changed {case}");
}

#[test]
fn read_only_open_of_clean_log() {
    read_only_matches_read_write("clean", &all(&clean_batches()));
}

#[test]
fn read_only_open_of_torn_log() {
    let (n, _) = torn_batch();
    let kept: Vec<Expected> = all(&torn_batches()).into_iter().filter(|r| r.offset < n).collect();
    read_only_matches_read_write("torn_tail", &kept);
}

// ---------------------------------------------------------------------------
// The generator.

/// Rebuilds every fixture in [`GENERATE_INTO`]. Not run by default; see the
/// top of this file before running it.
#[test]
#[ignore = "rewrites the committed fixtures; run only on purpose"]
fn regenerate_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(GENERATE_INTO);
    fs::create_dir_all(&root).unwrap();

    // clean: closed cleanly.
    let clean = tempfile::tempdir().unwrap();
    {
        let log = Log::open(clean.path(), options()).unwrap();
        for (epoch, records) in clean_batches() {
            log.set_leader_epoch(epoch).unwrap();
            assert_eq!(log.append_records(&new_records(&records)).unwrap(), records[0].offset);
        }
        log.close().unwrap();
    }
    install(&root, "clean", clean.path(), |_| {});

    // damaged_batch: one byte of a record value flipped in the batch of
    // offset 2, in the first (sealed) segment.
    install(&root, "damaged_batch", clean.path(), |dir| {
        let path = dir.join(FIRST_SEGMENT);
        let mut bytes = fs::read(&path).unwrap();
        let (position, header) = batches_of(&bytes)
            .into_iter()
            .find(|(_, h)| h.base_offset == 2)
            .unwrap();
        assert!(bytes.len() as u64 <= SEGMENT_BYTES);
        let at = position + header.batch_len as usize - 10;
        bytes[at] ^= 0x20;
        fs::write(&path, bytes).unwrap();
    });

    // no_epoch_file: as written before the epoch history existed.
    install(&root, "no_epoch_file", clean.path(), |dir| {
        fs::remove_file(dir.join("epochs")).unwrap();
    });

    // newer_version: the first segment's header claims version 2.
    install(&root, "newer_version", clean.path(), |dir| {
        let path = dir.join(FIRST_SEGMENT);
        let mut bytes = fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32fast::hash(&bytes[..60]);
        bytes[60..64].copy_from_slice(&crc.to_le_bytes());
        fs::write(&path, bytes).unwrap();
    });

    // torn_tail: crashed with the last batch half written. No syncs, so
    // the recovery point stays at the start of the last segment (set when
    // it was rolled to) and recovery scans the torn batch.
    let torn = tempfile::tempdir().unwrap();
    {
        let log = Log::open(torn.path(), options().sync(SyncPolicy::Never)).unwrap();
        log.set_leader_epoch(2).unwrap();
        for (_, records) in torn_batches() {
            assert_eq!(log.append_records(&new_records(&records)).unwrap(), records[0].offset);
        }
        log.simulate_crash();
    }
    install(&root, "torn_tail", torn.path(), |dir| {
        let last = listing(dir)
            .into_keys()
            .filter(|name| name.ends_with(".log"))
            .max()
            .unwrap();
        assert_ne!(last, FIRST_SEGMENT, "the torn log has at least two segments");
        let path = dir.join(last);
        let mut bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, SEGMENT_BYTES, "preallocated active segment");
        let (n, len) = torn_batch();
        let batches = batches_of(&bytes);
        assert!(batches.len() >= 2, "the torn batch is not the segment's first");
        let (position, header) = *batches.last().unwrap();
        assert_eq!((header.base_offset, u64::from(header.batch_len)), (n, len));
        let half = header.batch_len as usize / 2;
        bytes[position + half..position + header.batch_len as usize].fill(0);
        fs::write(&path, bytes).unwrap();
    });
}

/// Replaces `root/case` with the files of `source` (but `LOCK`), then lets
/// `damage` change them.
fn install(root: &Path, case: &str, source: &Path, damage: impl FnOnce(&Path)) {
    let target = root.join(case);
    if target.exists() {
        fs::remove_dir_all(&target).unwrap();
    }
    fs::create_dir_all(&target).unwrap();
    copy_files(source, &target);
    damage(&target);
}

/// Position and header of every batch of a segment file, up to the first
/// position that holds no batch header.
fn batches_of(segment: &[u8]) -> Vec<(usize, BatchHeader)> {
    let mut position = SEGMENT_HEADER_BYTES;
    let mut found = Vec::new();
    while position + BATCH_HEADER_BYTES <= segment.len() {
        let Ok(header) = BatchHeader::decode(&segment[position..]) else {
            break;
        };
        found.push((position, header));
        position += header.batch_len as usize;
    }
    found
}
