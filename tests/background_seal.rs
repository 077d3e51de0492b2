//! Rolls that seal in the background (`SyncPolicy::Never` and `Interval`,
//! issue 10 "no stall at a roll"): what the log and recovery guarantee
//! while a full segment's seal is in flight.
//!
//! A machine crash is emulated by shaping the files as a crash at that
//! moment leaves them: the old segment untrimmed (zero-filled past its
//! data) with a torn last batch, or the new segment's header not yet on
//! disk (zeros), with a checkpoint that does not vouch past the old one.

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::time::Duration;

use replog::{Error, Log, Options, SyncPolicy};

use common::files::{segment_bases, segment_path};

const SEGMENT_BYTES: u64 = 16 << 10;

fn options(sync: SyncPolicy) -> Options {
    Options::default()
        .segment_bytes(SEGMENT_BYTES)
        .index_interval_bytes(1024)
        .sync(sync)
}

fn value(offset: u64) -> Vec<u8> {
    format!("record {offset:08} {}", "x".repeat(200)).into_bytes()
}

/// Appends until the log has rolled `rolls` times, then `extra` more.
fn fill(log: &Log, rolls: usize, extra: u64) -> u64 {
    let dir_segments = |log: &Log| segment_bases(log.dir()).len();
    let mut next = log.next_offset();
    while dir_segments(log) < rolls + 1 {
        assert_eq!(log.append(value(next)).unwrap(), next);
        next += 1;
    }
    for _ in 0..extra {
        assert_eq!(log.append(value(next)).unwrap(), next);
        next += 1;
    }
    next
}

fn assert_reads(log: &Log, end: u64, context: &str) {
    assert_eq!(log.next_offset(), end, "{context}: next_offset");
    for (offset, record) in (0..end).zip(log.iter(0)) {
        let record = record.unwrap_or_else(|e| panic!("{context}: iter at {offset}: {e}"));
        assert_eq!(record.offset(), offset, "{context}");
        assert_eq!(record.value(), &value(offset)[..], "{context}: value at {offset}");
    }
}

/// Everything appended survives a crash of the process, whether the seal
/// in flight ran, ran partly, or never started (the page cache keeps the
/// data; the replication layer's guarantee under `Never` rests on this).
#[test]
fn a_process_crash_during_a_seal_loses_nothing_in_the_page_cache() {
    for sync in [SyncPolicy::Never, SyncPolicy::Interval(Duration::from_millis(5))] {
        for extra in [0, 1, 30] {
            let dir = tempfile::tempdir().unwrap();
            let log = Log::open(dir.path(), options(sync)).unwrap();
            let end = fill(&log, 8, extra);
            log.simulate_crash();
            let log = Log::open(dir.path(), options(sync)).unwrap();
            assert_reads(&log, end, &format!("{sync:?}, {extra} after the roll"));
        }
    }
}

/// `sync` covers records appended after a roll whose seal is in flight: it
/// finishes the seal first (so the new segment's name is durable too).
#[test]
fn sync_after_a_roll_makes_the_new_segment_durable() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    let end = fill(&log, 1, 3);
    log.sync().unwrap();
    assert_eq!(log.durable_offset(), end);
    // The old segment is sealed: trimmed to its data, with index files.
    let bases = segment_bases(dir.path());
    let old = fs::metadata(segment_path(dir.path(), bases[0])).unwrap().len();
    assert!(old < SEGMENT_BYTES, "the sealed segment was not trimmed: {old} bytes");
}

/// A log of two segments, closed, whose first segment has its last batch
/// torn, with the checkpoint removed (it would vouch for that segment).
/// With `unsealed`, the first segment also looks as it does when its seal
/// never ran: untrimmed (zeros past its data, as the roll left it) and
/// without index files. Returns the segment bases and the log's end.
fn torn_first_segment(dir: &std::path::Path, unsealed: bool) -> (Vec<u64>, u64) {
    let log = Log::open(dir, options(SyncPolicy::Never)).unwrap();
    let end = fill(&log, 1, 5);
    log.close().unwrap();
    let bases = segment_bases(dir);
    assert_eq!(bases.len(), 2);
    let old = segment_path(dir, bases[0]);
    let data_end = fs::metadata(&old).unwrap().len();
    let file = OpenOptions::new().write(true).open(&old).unwrap();
    if unsealed {
        for extension in ["index", "timeindex"] {
            fs::remove_file(common::files::index_path(dir, bases[0], extension)).unwrap();
        }
        file.set_len(SEGMENT_BYTES).unwrap();
    }
    file.write_all_at(&[0u8; 100], data_end - 100).unwrap();
    fs::remove_file(dir.join("checkpoint")).unwrap();
    (bases, end)
}

/// The state a machine crash during a seal leaves: the old segment never
/// trimmed or synced, its last batch torn, and a new segment holding
/// records after it. Recovery cuts at the tear and deletes the new segment
/// (nothing past the recovery point was durable), instead of reporting the
/// tear as damage in a sealed segment and keeping what follows a hole.
#[test]
fn a_torn_segment_whose_seal_never_finished_is_cut_with_what_follows() {
    let dir = tempfile::tempdir().unwrap();
    let (bases, end) = torn_first_segment(dir.path(), true);
    let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    let report = log.recovery_report().clone();
    let torn = bases[1] - 1;
    assert_eq!(report.truncated_at, Some(torn), "{report:?}");
    assert_eq!(report.segments_deleted, 1, "{report:?}");
    assert!(report.damaged_segments.is_empty(), "{report:?}");
    assert_reads(&log, torn, "after the cut");
    assert!(end > torn);
    // The log goes on from the cut.
    assert_eq!(log.append(value(torn)).unwrap(), torn);
}

/// The same damage in a segment that was sealed (trimmed, indexed) is not
/// a torn write: it is reported when read, and the segment after it kept.
#[test]
fn the_same_damage_in_a_sealed_segment_is_reported_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (bases, end) = torn_first_segment(dir.path(), false);
    let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    let report = log.recovery_report().clone();
    assert_eq!(report.truncated_at, None, "{report:?}");
    assert_eq!(report.damaged_segments, vec![bases[0]], "{report:?}");
    assert_eq!(log.next_offset(), end);
    assert!(matches!(log.read(bases[1] - 1), Err(Error::Corrupt { .. })));
    assert_eq!(log.read(bases[1]).unwrap().value(), &value(bases[1])[..]);
}

/// A machine crash after a roll created the new segment but before its
/// seal synced it can leave the file with its header still zeros. When the
/// checkpoint does not vouch for anything in it, open removes it as never
/// created; the log ends where the old segment does.
#[test]
fn a_new_segment_whose_header_never_reached_the_disk_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    log.append(value(0)).unwrap();
    log.close().unwrap();
    // A checkpoint that vouches only for the first segment.
    let checkpoint = fs::read(dir.path().join("checkpoint")).unwrap();
    let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    fill(&log, 1, 5);
    log.close().unwrap();
    let bases = segment_bases(dir.path());
    let new = segment_path(dir.path(), bases[1]);
    fs::write(dir.path().join("checkpoint"), &checkpoint).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&new)
        .unwrap()
        .write_all_at(&[0u8; 64], 0)
        .unwrap();

    let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    assert!(log.recovery_report().stray_files_removed.contains(&new));
    assert!(!new.exists());
    assert_reads(&log, bases[1], "after removing the unborn segment");
}

/// Without a checkpoint that places it past the recovery point, a zeroed
/// header in the last segment is damage: the open is refused and nothing
/// is removed.
#[test]
fn a_zeroed_header_the_checkpoint_vouches_for_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    fill(&log, 1, 5);
    log.close().unwrap();
    let bases = segment_bases(dir.path());
    let new = segment_path(dir.path(), bases[1]);
    OpenOptions::new()
        .write(true)
        .open(&new)
        .unwrap()
        .write_all_at(&[0u8; 64], 0)
        .unwrap();
    assert!(matches!(
        Log::open(dir.path(), options(SyncPolicy::Never)),
        Err(Error::Corrupt { .. })
    ));
    assert!(new.exists());
}

/// A log of five segments, closed, shaped as a machine crash leaves it
/// when the writer ran ahead of the disk by several segments: the
/// checkpoint vouches only for the start of the second segment (it was
/// taken after one roll), and the second, third and fourth segments look
/// as they do before their seals ran: untrimmed, without index files.
/// Returns the segment bases, where each segment's data ends, and the
/// log's end.
fn several_unsealed(dir: &std::path::Path) -> (Vec<u64>, Vec<u64>, u64) {
    let log = Log::open(dir, options(SyncPolicy::Never)).unwrap();
    fill(&log, 1, 0);
    log.sync().unwrap();
    let checkpoint = fs::read(dir.join("checkpoint")).unwrap();
    let end = fill(&log, 4, 5);
    log.close().unwrap();
    let bases = segment_bases(dir);
    assert_eq!(bases.len(), 5);
    let data_ends = bases
        .iter()
        .map(|&base| fs::metadata(segment_path(dir, base)).unwrap().len())
        .collect();
    for &base in &bases[1..4] {
        for extension in ["index", "timeindex"] {
            fs::remove_file(common::files::index_path(dir, base, extension)).unwrap();
        }
        let file = OpenOptions::new().write(true).open(segment_path(dir, base)).unwrap();
        file.set_len(SEGMENT_BYTES).unwrap();
    }
    fs::write(dir.join("checkpoint"), checkpoint).unwrap();
    (bases, data_ends, end)
}

/// Writes `bytes` at `at` in the segment file based at `base`.
fn write_segment(dir: &std::path::Path, base: u64, at: u64, bytes: &[u8]) {
    let file = OpenOptions::new().write(true).open(segment_path(dir, base)).unwrap();
    file.write_all_at(bytes, at).unwrap();
}

/// Seals run behind the writer, several segments deep. A torn write in any
/// segment whose seal never finished (not only the one before the last) is
/// cut, with every segment after it: none of them was durable, and keeping
/// them would leave a hole in the log.
#[test]
fn a_tear_in_any_segment_whose_seal_never_finished_is_cut_with_what_follows() {
    for torn_segment in 1..4 {
        let dir = tempfile::tempdir().unwrap();
        let (bases, data_ends, end) = several_unsealed(dir.path());
        write_segment(
            dir.path(),
            bases[torn_segment],
            data_ends[torn_segment] - 100,
            &[0u8; 100],
        );
        let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
        let report = log.recovery_report().clone();
        let torn = bases[torn_segment + 1] - 1;
        let context = format!("tear in segment {torn_segment}: {report:?}");
        assert_eq!(report.truncated_at, Some(torn), "{context}");
        assert_eq!(report.segments_deleted, 4 - torn_segment, "{context}");
        assert!(report.damaged_segments.is_empty(), "{context}");
        assert_reads(&log, torn, &context);
        assert!(end > torn);
        assert_eq!(log.append(value(torn)).unwrap(), torn, "{context}");
    }
}

/// Without tears, the same shape loses nothing: each unsealed segment is
/// checked, sealed by recovery, and the log goes on at its end.
#[test]
fn several_segments_whose_seals_never_ran_are_recovered_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (bases, _, end) = several_unsealed(dir.path());
    let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    let report = log.recovery_report().clone();
    assert_eq!(report.truncated_at, None, "{report:?}");
    assert_eq!(report.segments_scanned, 4, "{report:?}");
    assert_reads(&log, end, "whole");
    drop(log);
    // Recovery sealed them: trimmed, with index files.
    for &base in &bases[1..4] {
        assert!(fs::metadata(segment_path(dir.path(), base)).unwrap().len() < SEGMENT_BYTES);
        assert!(common::files::index_path(dir.path(), base, "index").exists());
    }
}

/// A segment past the recovery point whose header never reached the disk
/// ends the log even when a later segment's header did (write-back wrote
/// that page first): the later segment is removed as cut, and the log
/// ends where the unborn segment would have begun, with no hole.
#[test]
fn an_unborn_segment_before_others_ends_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (bases, _, _) = several_unsealed(dir.path());
    write_segment(dir.path(), bases[3], 0, &[0u8; 64]);
    let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    let report = log.recovery_report().clone();
    assert_eq!(report.truncated_at, Some(bases[3]), "{report:?}");
    assert_eq!(report.segments_deleted, 1, "{report:?}");
    assert!(report.bytes_truncated > 0, "{report:?}");
    assert!(report.stray_files_removed.contains(&segment_path(dir.path(), bases[3])));
    assert_eq!(segment_bases(dir.path()), bases[..3].to_vec());
    assert_reads(&log, bases[3], "up to the unborn segment");
    assert_eq!(log.append(value(bases[3])).unwrap(), bases[3]);
}

/// Rolls take the next segment's file from a spare prepared in the
/// background under `spare.tmp`. Every segment a spare became holds its
/// own base offset and records (all spares share one temporary name: one
/// must leave it before the next is created); closing removes the spare
/// left waiting, so a clean reopen finds nothing stray.
#[test]
fn spare_segment_files_become_whole_segments_and_leave_nothing_behind() {
    for sync in [SyncPolicy::Never, SyncPolicy::Interval(Duration::from_millis(5))] {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), options(sync)).unwrap();
        let end = fill(&log, 40, 3);
        assert_reads(&log, end, &format!("{sync:?} before close"));
        log.close().unwrap();
        assert!(
            !dir.path().join("spare.tmp").exists(),
            "{sync:?}: spare left after close"
        );
        let log = Log::open(dir.path(), options(sync)).unwrap();
        let report = log.recovery_report().clone();
        assert!(report.stray_files_removed.is_empty(), "{sync:?}: {report:?}");
        assert!(report.damaged_segments.is_empty(), "{sync:?}: {report:?}");
        assert_reads(&log, end, &format!("{sync:?} after reopen"));
    }
}

/// A spare left by a crash (the process died while one waited) is removed
/// at open as a stray temporary file, and the log is whole.
#[test]
fn a_spare_left_by_a_crash_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    let end = fill(&log, 3, 5);
    log.simulate_crash();
    // Whether or not one was waiting at the crash, plant one.
    fs::write(dir.path().join("spare.tmp"), vec![0u8; SEGMENT_BYTES as usize]).unwrap();
    let log = Log::open(dir.path(), options(SyncPolicy::Never)).unwrap();
    let report = log.recovery_report().clone();
    assert!(
        report
            .stray_files_removed
            .iter()
            .any(|path| path.ends_with("spare.tmp")),
        "{report:?}"
    );
    assert_reads(&log, end, "after a crash with a spare waiting");
}
