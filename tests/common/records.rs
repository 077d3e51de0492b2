//! What the tests store at each offset, and the checks that a log holds it.
//!
//! The record at offset `i` is [`value_at`]`(i)`, keyed [`key_at`]`(i)` and
//! stamped [`timestamp_at`]`(i)` where a test appends keys and timestamps
//! (a test that appends plain values checks the value only). Tests whose
//! records must carry something else (the crash test's self-describing
//! values, the disk-full test's fixed-size ones, the concurrency test's
//! per-writer and per-generation values) make their own.

use std::ops::Range;

use replog::{Error, Log, Record};

/// The timestamp of offset 0.
pub const TIMESTAMP_BASE: i64 = 1_700_000_000_000;

/// The value stored at `offset`: `value-<offset>:`, then 0 to 60 copies of a
/// letter, then `!`. Lengths vary with the offset (multiples of 61 have the
/// shortest), and no byte is zero, so a value never ends in what a zeroed
/// tail would leave (the corruption tests' byte positions depend on all
/// this).
pub fn value_at(offset: u64) -> Vec<u8> {
    let mut value = format!("value-{offset}:").into_bytes();
    value.extend(std::iter::repeat_n(
        b'a' + (offset % 26) as u8,
        (offset * 7 % 61) as usize,
    ));
    value.push(b'!');
    value
}

/// A 256-byte value whose first 8 bytes are `i` (little-endian) and whose
/// other bytes are `i % 251`: for tests of whole pages of data, where each
/// value must say which one it is wherever it landed ([`number_of`]).
pub fn page_filler(i: u64) -> Vec<u8> {
    let mut value = vec![(i % 251) as u8; 256];
    value[..8].copy_from_slice(&i.to_le_bytes());
    value
}

/// The number a [`page_filler`] value carries.
pub fn number_of(value: &[u8]) -> u64 {
    u64::from_le_bytes(value[..8].try_into().expect("a page_filler value"))
}

/// The key of `offset`: two offsets in three have one, from 11 different
/// keys.
pub fn key_at(offset: u64) -> Option<Vec<u8>> {
    (!offset.is_multiple_of(3)).then(|| format!("key-{}", offset % 11).into_bytes())
}

/// The timestamp of `offset`: two records share each one, so timestamp
/// lookups must find the first.
pub fn timestamp_at(offset: u64) -> i64 {
    TIMESTAMP_BASE + (offset / 2) as i64 * 10
}

/// Checks that `record` is the one stored at `offset`: offset, value and key.
pub fn check_record(record: &Record, offset: u64, context: &str) {
    assert_eq!(record.offset(), offset, "{context}: wrong offset");
    assert!(
        record.value()[..] == value_at(offset)[..],
        "{context}: value of {offset}: read \"{}\", appended \"{}\"",
        record.value().escape_ascii(),
        value_at(offset).escape_ascii()
    );
    assert_eq!(
        record.key().map(|k| k.to_vec()),
        key_at(offset),
        "{context}: key of {offset}"
    );
}

/// Appends `value_at(offset)` (no key, no timestamp) for every offset of
/// `offsets`, one `Log::append` each, checking the offset each returns.
pub fn append_values(log: &Log, offsets: Range<u64>) {
    for offset in offsets {
        let got = log
            .append(value_at(offset))
            .unwrap_or_else(|e| panic!("append of {offset}: {e}"));
        assert_eq!(got, offset, "append of {offset} returned another offset");
    }
}

/// Checks that the log ends at `range.end` and holds every offset of
/// `range`: reading each offset, and iterating from `range.start`, yields
/// records that `check(record, offset)` accepts, iteration yields exactly
/// `range` in order, and reading `range.end` is out of range.
pub fn assert_holds(log: &Log, range: Range<u64>, context: &str, check: impl Fn(&Record, u64)) {
    assert_eq!(log.next_offset(), range.end, "{context}: next_offset");
    for offset in range.clone() {
        let record = log
            .read(offset)
            .unwrap_or_else(|e| panic!("{context}: read({offset}): {e}"));
        assert_eq!(record.offset(), offset, "{context}: read({offset}) offset");
        check(&record, offset);
    }
    assert!(
        matches!(log.read(range.end), Err(Error::OffsetOutOfRange { .. })),
        "{context}: read({}) past the end is not out of range",
        range.end
    );
    let mut expected = range.start;
    for item in log.iter(range.start) {
        let record = item.unwrap_or_else(|e| panic!("{context}: iter({}) at {expected}: {e}", range.start));
        assert!(
            expected < range.end,
            "{context}: iter({}) goes past {}",
            range.start,
            range.end
        );
        assert_eq!(record.offset(), expected, "{context}: iter({}) offsets", range.start);
        check(&record, expected);
        expected += 1;
    }
    assert_eq!(expected, range.end, "{context}: iter({}) ended early", range.start);
}
