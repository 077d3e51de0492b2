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
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{read_u32, read_u64};
use crate::index::IndexEntry;

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

/// `<dir>/<base, 20 digits>.<extension>`.
pub(crate) fn segment_file(dir: &Path, base_offset: u64, extension: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{extension}"))
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

    let mut header = [0u8; OFFSET_HEADER_BYTES];
    header[0..8].copy_from_slice(&OFFSET_MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&count.to_le_bytes());
    header[16..24].copy_from_slice(&summary.base_offset.to_le_bytes());
    header[24..32].copy_from_slice(&summary.end_position.to_le_bytes());
    header[32..40].copy_from_slice(&summary.next_offset.to_le_bytes());
    header[40..48].copy_from_slice(&summary.max_timestamp_ms.to_le_bytes());
    header[48..56].copy_from_slice(&summary.last_epoch.to_le_bytes());
    header[56..60].copy_from_slice(&crc32fast::hash(&offsets).to_le_bytes());
    let crc = crc32fast::hash(&header[..60]);
    header[60..64].copy_from_slice(&crc.to_le_bytes());
    replace_file(&segment_file(dir, summary.base_offset, "index"), &header, &offsets)?;

    let mut header = [0u8; TIME_HEADER_BYTES];
    header[0..8].copy_from_slice(&TIME_MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&count.to_le_bytes());
    header[16..24].copy_from_slice(&summary.base_offset.to_le_bytes());
    header[24..28].copy_from_slice(&crc32fast::hash(&times).to_le_bytes());
    let crc = crc32fast::hash(&header[..28]);
    header[28..32].copy_from_slice(&crc.to_le_bytes());
    replace_file(&segment_file(dir, summary.base_offset, "timeindex"), &header, &times)
}

fn replace_file(path: &Path, header: &[u8], body: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(header)?;
        file.write_all(body)?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("write index file", path, e)
    })
}

/// Reads and checks the `.index` header of a segment; `None` if the file is
/// missing, damaged or not for this segment.
pub(crate) fn read_summary(dir: &Path, base_offset: u64) -> Option<SegmentSummary> {
    let mut header = [0u8; OFFSET_HEADER_BYTES];
    let file = fs::File::open(segment_file(dir, base_offset, "index")).ok()?;
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut header, 0).ok()?;
    decode_offset_header(&header, base_offset).map(|(summary, _, _)| summary)
}

fn decode_offset_header(header: &[u8], base_offset: u64) -> Option<(SegmentSummary, u32, u32)> {
    if header.len() < OFFSET_HEADER_BYTES
        || header[0..8] != OFFSET_MAGIC
        || read_u32(header, 8) != VERSION
        || crc32fast::hash(&header[..60]) != read_u32(header, 60)
        || read_u64(header, 16) != base_offset
    {
        return None;
    }
    let summary = SegmentSummary {
        base_offset,
        end_position: read_u64(header, 24),
        next_offset: read_u64(header, 32),
        max_timestamp_ms: read_u64(header, 40) as i64,
        last_epoch: read_u64(header, 48),
    };
    Some((summary, read_u32(header, 12), read_u32(header, 56)))
}

/// Loads both index files of a segment; `None` unless both are intact, agree
/// with each other, and describe exactly `expected`.
pub(crate) fn read(dir: &Path, expected: &SegmentSummary) -> Option<Vec<IndexEntry>> {
    let offsets = fs::read(segment_file(dir, expected.base_offset, "index")).ok()?;
    let times = fs::read(segment_file(dir, expected.base_offset, "timeindex")).ok()?;
    let (summary, count, entries_crc) = decode_offset_header(&offsets, expected.base_offset)?;
    let count = count as usize;
    let offset_body = &offsets[OFFSET_HEADER_BYTES..];
    if summary != *expected
        || offset_body.len() != count * OFFSET_ENTRY_BYTES
        || crc32fast::hash(offset_body) != entries_crc
    {
        return None;
    }
    if times.len() < TIME_HEADER_BYTES
        || times[0..8] != TIME_MAGIC
        || read_u32(&times, 8) != VERSION
        || crc32fast::hash(&times[..28]) != read_u32(&times, 28)
        || read_u64(&times, 16) != expected.base_offset
        || read_u32(&times, 12) as usize != count
    {
        return None;
    }
    let time_body = &times[TIME_HEADER_BYTES..];
    if time_body.len() != count * TIME_ENTRY_BYTES || crc32fast::hash(time_body) != read_u32(&times, 24) {
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
    for extension in ["index", "timeindex"] {
        let path = segment_file(dir, base_offset, extension);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove index file", path, e)),
        }
    }
    Ok(())
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
        let path = segment_file(dir.path(), 42, "timeindex");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(read(dir.path(), &summary()), None, "flipped time entry");
        remove(dir.path(), 42).unwrap();
        assert_eq!(read_summary(dir.path(), 42), None);
    }
}
