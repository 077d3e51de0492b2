//! Checking ahead on another core: the first reader of a long stretch of
//! batches written by an earlier process starts a thread that checks them
//! a little ahead of it (`storage::segment::checker`). Wherever a damaged
//! batch lies against where that thread works, a reader must still meet it
//! as `Error::Corrupt` at its offset, with every record before it intact.
//! The damage sits at several depths and each case runs several rounds, so
//! the reader and the checker meet at different places.

mod common;

use std::fs;
use std::path::Path;

use replog::codec::{SEGMENT_HEADER_BYTES, validate_batch};
use replog::{Error, Log, Options};
use tempfile::TempDir;

use common::files::{copy_files, segment_bases, segment_path};
use common::records::{number_of, page_filler};

/// About 12 MiB of one-record batches in one segment: many times the
/// stretch a checker starts for.
const RECORDS: u64 = 40_000;
/// Rounds per damage, each on a fresh copy, reopened.
const ROUNDS: usize = 3;
/// Where the batch length sits in a batch header (docs/FORMAT.md).
const BATCH_LEN_AT: usize = 8;

fn options() -> Options {
    Options::default().segment_bytes(64 << 20)
}

/// A closed log of [`RECORDS`] one-record batches, and its segment's bytes.
fn written() -> (TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options()).unwrap();
    for i in 0..RECORDS {
        log.append(page_filler(i)).unwrap();
    }
    log.close().unwrap();
    assert_eq!(segment_bases(dir.path()), vec![0], "one segment");
    let bytes = fs::read(segment_path(dir.path(), 0)).unwrap();
    (dir, bytes)
}

/// Position and length of every batch (one record each, so batch `i`
/// holds offset `i`).
fn batches(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut position = SEGMENT_HEADER_BYTES;
    for offset in 0..RECORDS {
        let header = validate_batch(&bytes[position..], offset).unwrap();
        found.push((position, header.batch_len as usize));
        position += header.batch_len as usize;
    }
    found
}

/// A copy of `dir` with `damaged` written over its segment, and its log
/// opened there (a new process's view: nothing checked yet).
fn open_damaged(dir: &Path, damaged: &[u8]) -> (TempDir, Log) {
    let copy = tempfile::tempdir().unwrap();
    copy_files(dir, copy.path());
    fs::write(segment_path(copy.path(), 0), damaged).unwrap();
    let log = Log::open(copy.path(), options()).unwrap();
    (copy, log)
}

/// Reads `dir`'s log from the start after writing `damaged` over its
/// segment, and asserts that it yields exactly the records before
/// `first_bad` and then `Error::Corrupt`.
fn assert_stops_at(dir: &Path, damaged: &[u8], first_bad: u64, context: &str) {
    let (_copy, log) = open_damaged(dir, damaged);
    let mut read = 0;
    for item in log.iter(0) {
        match item {
            Ok(record) => {
                assert_eq!(record.offset(), read, "{context}");
                assert_eq!(number_of(record.value()), read, "{context}: a record changed");
                assert!(
                    record.value() == &page_filler(read)[..],
                    "{context}: record {read} changed"
                );
                read += 1;
            }
            Err(Error::Corrupt { .. }) => break,
            Err(other) => panic!("{context}: {other}"),
        }
    }
    assert_eq!(
        read, first_bad,
        "{context}: the damaged batch was not reported where it lies"
    );
}

/// Batches to damage: near the start, at depths around and past where a
/// checker starts, and near the end.
fn targets() -> Vec<u64> {
    vec![200, 3_500, 3_700, 10_000, 20_001, 33_333, RECORDS - 2]
}

#[test]
fn a_damaged_record_anywhere_is_reported_at_its_offset() {
    let (dir, clean) = written();
    let batches = batches(&clean);
    for target in targets() {
        let (position, len) = batches[target as usize];
        let mut damaged = clean.clone();
        damaged[position + len - 3] ^= 0x10;
        for round in 0..ROUNDS {
            assert_stops_at(dir.path(), &damaged, target, &format!("batch {target}, round {round}"));
        }
    }
}

/// The nastiest length: one that makes the damaged batch span the next
/// one too, so a walk over unchecked headers (as the checker's to find
/// where to start) steps over a batch and lands on a real boundary.
#[test]
fn a_damaged_length_never_lets_a_batch_go_unchecked() {
    let (dir, clean) = written();
    let batches = batches(&clean);
    for target in targets() {
        let (position, len) = batches[target as usize];
        let (_, next_len) = batches[target as usize + 1];
        let mut damaged = clean.clone();
        let spanning = (len + next_len) as u32;
        damaged[position + BATCH_LEN_AT..position + BATCH_LEN_AT + 4].copy_from_slice(&spanning.to_le_bytes());
        for round in 0..ROUNDS {
            assert_stops_at(
                dir.path(),
                &damaged,
                target,
                &format!("length of batch {target}, round {round}"),
            );
        }
    }
}

/// Two damaged batches: the reader stops at the first; a reader started
/// well past it (past the index entries whose walks cross it) stops at
/// the second.
#[test]
fn a_reader_started_past_one_damage_meets_the_next() {
    let (dir, clean) = written();
    let batches = batches(&clean);
    let (first, second) = (5_000u64, 30_000u64);
    let mut damaged = clean.clone();
    for target in [first, second] {
        let (position, len) = batches[target as usize];
        damaged[position + len - 5] ^= 0x01;
    }
    assert_stops_at(dir.path(), &damaged, first, "two damaged batches");
    let (_copy, log) = open_damaged(dir.path(), &damaged);
    let start = first + 1_000;
    let mut offset = start;
    for item in log.iter(start) {
        match item {
            Ok(record) => {
                assert_eq!(record.offset(), offset);
                assert_eq!(number_of(record.value()), offset);
                offset += 1;
            }
            Err(Error::Corrupt { .. }) => break,
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(offset, second, "the second damaged batch was not reported");
}
