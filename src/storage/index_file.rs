//! The persisted form of a segment's index: `<base>.index` (offsets and the
//! segment's summary) and `<base>.timeindex` (timestamps).
//!
//! Index files are derived data. They are written when a segment is sealed
//! and at clean close, checked by CRC and against the segment when loaded,
//! and rebuilt by scanning the segment whenever they are missing, damaged or
//! stale. The header carries its own CRC, so opening a log reads only the
//! 64-byte header of each sealed segment; entries are loaded on first use.
//!
//! ```text
//! .index header (64 bytes)            .timeindex header (32 bytes)
//!  0 [u8;8] "RPLGIDX\0"                 0 [u8;8] "RPLGTIX\0"
//!  8 u32 version (1)                    8 u32 version (1)
//! 12 u32 entry count                   12 u32 entry count
//! 16 u64 segment base offset           16 u64 segment base offset
//! 24 u64 end position (valid bytes)    24 u32 CRC-32 of the entries
//! 32 u64 next offset                   28 u32 CRC-32 of bytes 0..28
//! 40 i64 max timestamp, ms            entries: i64 max timestamp before, u32 relative offset
//! 48 u64 last leader epoch
//! 56 u32 CRC-32 of the entries
//! 60 u32 CRC-32 of bytes 0..60
//! entries: u32 relative offset, u32 position
//! ```

use std::fs;
use std::path::Path;

use super::fs::{Durability, remove_if_exists, replace_file, write_chunks};
use super::index::IndexEntry;
use super::layout::{SegmentFile, segment_path};
use crate::error::Result;
use crate::format::{header, read_u32, read_u64, write_u32, write_u64};

const OFFSET_MAGIC: [u8; 8] = *b"RPLGIDX\0";
const TIME_MAGIC: [u8; 8] = *b"RPLGTIX\0";
const VERSION: u32 = 1;
const OFFSET_HEADER_BYTES: usize = 64;
const TIME_HEADER_BYTES: usize = 32;
const OFFSET_ENTRY_BYTES: usize = 8;
const TIME_ENTRY_BYTES: usize = 12;

/// What a sealed segment holds, as recorded in its `.index` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentSummary {
    /// Base offset of the segment.
    pub base_offset: u64,
    /// Bytes of valid data, segment header included.
    pub end_position: u64,
    /// One past the last record's offset.
    pub next_offset: u64,
    /// Largest record timestamp (`i64::MIN` for an empty segment).
    pub max_timestamp_ms: i64,
    /// Leader epoch of the last batch (0 for an empty segment).
    pub last_epoch: u64,
}

/// Writes both index files for a segment (temp file, then rename). They are
/// not fsynced: a lost or torn index file fails its CRC and is rebuilt.
pub(crate) fn write(dir: &Path, summary: &SegmentSummary, entries: &[IndexEntry]) -> Result<()> {
    let mut offsets = Vec::with_capacity(entries.len() * OFFSET_ENTRY_BYTES);
    let mut times = Vec::with_capacity(entries.len() * TIME_ENTRY_BYTES);
    for entry in entries {
        offsets.extend_from_slice(&entry.relative_offset.to_le_bytes());
        offsets.extend_from_slice(&entry.position.to_le_bytes());
        times.extend_from_slice(&entry.max_timestamp_before_ms.to_le_bytes());
        times.extend_from_slice(&entry.relative_offset.to_le_bytes());
    }
    let count = entries.len() as u32;

    let mut head = [0u8; OFFSET_HEADER_BYTES];
    write_u32(&mut head, 12, count);
    write_u64(&mut head, 16, summary.base_offset);
    write_u64(&mut head, 24, summary.end_position);
    write_u64(&mut head, 32, summary.next_offset);
    write_u64(&mut head, 40, summary.max_timestamp_ms as u64);
    write_u64(&mut head, 48, summary.last_epoch);
    write_u32(&mut head, 56, crc32fast::hash(&offsets));
    header::seal(&mut head, &OFFSET_MAGIC, VERSION);
    write_file(dir, summary.base_offset, SegmentFile::OffsetIndex, &head, &offsets)?;

    let mut head = [0u8; TIME_HEADER_BYTES];
    write_u32(&mut head, 12, count);
    write_u64(&mut head, 16, summary.base_offset);
    write_u32(&mut head, 24, crc32fast::hash(&times));
    header::seal(&mut head, &TIME_MAGIC, VERSION);
    write_file(dir, summary.base_offset, SegmentFile::TimeIndex, &head, &times)
}

/// Replaces one index file of a segment with `head` then `body`.
fn write_file(dir: &Path, base_offset: u64, kind: SegmentFile, head: &[u8], body: &[u8]) -> Result<()> {
    let path = segment_path(dir, base_offset, kind);
    replace_file(&path, Durability::Unsynced, |file, tmp| {
        write_chunks(file, tmp, &[head, body])
    })?;
    Ok(())
}

/// Reads and checks the `.index` header of a segment; `None` if the file is
/// missing, damaged or not for this segment.
pub(crate) fn read_summary(dir: &Path, base_offset: u64) -> Option<SegmentSummary> {
    let mut head = [0u8; OFFSET_HEADER_BYTES];
    let file = fs::File::open(segment_path(dir, base_offset, SegmentFile::OffsetIndex)).ok()?;
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut head, 0).ok()?;
    decode_offset_header(&head, base_offset).map(|(summary, _, _)| summary)
}

fn decode_offset_header(bytes: &[u8], base_offset: u64) -> Option<(SegmentSummary, u32, u32)> {
    let head = header::check(bytes, OFFSET_HEADER_BYTES, &OFFSET_MAGIC, VERSION).ok()?;
    if read_u64(head, 16) != base_offset {
        return None;
    }
    let summary = SegmentSummary {
        base_offset,
        end_position: read_u64(head, 24),
        next_offset: read_u64(head, 32),
        max_timestamp_ms: read_u64(head, 40) as i64,
        last_epoch: read_u64(head, 48),
    };
    Some((summary, read_u32(head, 12), read_u32(head, 56)))
}

/// Loads both index files of a segment; `None` unless both are intact, agree
/// with each other, and describe exactly `expected`.
pub(crate) fn read(dir: &Path, expected: &SegmentSummary) -> Option<Vec<IndexEntry>> {
    let offsets = fs::read(segment_path(dir, expected.base_offset, SegmentFile::OffsetIndex)).ok()?;
    let times = fs::read(segment_path(dir, expected.base_offset, SegmentFile::TimeIndex)).ok()?;
    let (summary, count, entries_crc) = decode_offset_header(&offsets, expected.base_offset)?;
    let count = count as usize;
    let offset_body = &offsets[OFFSET_HEADER_BYTES..];
    if summary != *expected
        || offset_body.len() != count * OFFSET_ENTRY_BYTES
        || crc32fast::hash(offset_body) != entries_crc
    {
        return None;
    }
    let time_head = header::check(&times, TIME_HEADER_BYTES, &TIME_MAGIC, VERSION).ok()?;
    if read_u64(time_head, 16) != expected.base_offset || read_u32(time_head, 12) as usize != count {
        return None;
    }
    let time_body = &times[TIME_HEADER_BYTES..];
    if time_body.len() != count * TIME_ENTRY_BYTES || crc32fast::hash(time_body) != read_u32(time_head, 24) {
        return None;
    }
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let relative_offset = read_u32(offset_body, i * OFFSET_ENTRY_BYTES);
        if read_u32(time_body, i * TIME_ENTRY_BYTES + 8) != relative_offset {
            return None;
        }
        entries.push(IndexEntry {
            relative_offset,
            position: read_u32(offset_body, i * OFFSET_ENTRY_BYTES + 4),
            max_timestamp_before_ms: read_u64(time_body, i * TIME_ENTRY_BYTES) as i64,
        });
    }
    let sorted = entries
        .windows(2)
        .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position);
    let in_bounds = entries.iter().all(|e| (e.position as u64) < expected.end_position);
    (sorted && in_bounds).then_some(entries)
}

/// Removes both index files of a segment, ignoring ones that do not exist.
pub(crate) fn remove(dir: &Path, base_offset: u64) -> Result<()> {
    remove_if_exists(&segment_path(dir, base_offset, SegmentFile::OffsetIndex))?;
    remove_if_exists(&segment_path(dir, base_offset, SegmentFile::TimeIndex))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> SegmentSummary {
        SegmentSummary {
            base_offset: 42,
            end_position: 9000,
            next_offset: 100,
            max_timestamp_ms: 77,
            last_epoch: 3,
        }
    }

    fn entries() -> Vec<IndexEntry> {
        vec![
            IndexEntry {
                relative_offset: 0,
                position: 64,
                max_timestamp_before_ms: i64::MIN,
            },
            IndexEntry {
                relative_offset: 30,
                position: 4200,
                max_timestamp_before_ms: 50,
            },
        ]
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &summary(), &entries()).unwrap();
        assert_eq!(read_summary(dir.path(), 42), Some(summary()));
        assert_eq!(read(dir.path(), &summary()), Some(entries()));
        assert_eq!(read_summary(dir.path(), 43), None, "wrong segment");
    }

    #[test]
    fn stale_or_damaged_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &summary(), &entries()).unwrap();
        let other = SegmentSummary {
            end_position: 8000,
            ..summary()
        };
        assert_eq!(read(dir.path(), &other), None, "stale summary");
        let path = segment_path(dir.path(), 42, SegmentFile::TimeIndex);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(read(dir.path(), &summary()), None, "flipped time entry");
        remove(dir.path(), 42).unwrap();
        assert_eq!(read_summary(dir.path(), 42), None);
    }
}
