//! Recovery of each segment: sealed ones before the recovery point are
//! trusted (their ends come from their index headers); from the recovery
//! point on every batch is checked.

use std::path::Path;
use std::sync::Arc;

use super::found::Found;
use super::{Access, RecoveryReport};
use crate::error::{Error, Result};
use crate::format::SEGMENT_HEADER_BYTES;
use crate::options::Options;
use crate::storage::checkpoint::Checkpoint;
use crate::storage::index::{IndexBuilder, SparseIndex, capacity_for};
use crate::storage::index_file::{self, SegmentSummary};
use crate::storage::layout::{SegmentFile, segment_path};
use crate::storage::mapping::{MapCache, MapSlot};
use crate::storage::mmap::MappedFile;
use crate::storage::scan::{Check, scan};
use crate::storage::segment::{Segment, SegmentParts};
use crate::storage::segment_writer::ActiveTail;

/// What every step of recovering one log needs.
pub(super) struct Context<'a> {
    pub dir: &'a Path,
    pub options: &'a Options,
    pub access: Access,
    pub cache: &'a Arc<MapCache>,
}

impl Context<'_> {
    fn writes(&self) -> bool {
        self.access == Access::ReadWrite
    }
}

/// Opens a sealed segment before the recovery point. Its end comes from its
/// index header, or from a scan when that is missing or stale. Damage is
/// left in place, to be reported when read.
pub(super) fn open_trusted(
    cx: &Context<'_>,
    segment: Found,
    next_base: u64,
    report: &mut RecoveryReport,
) -> Result<Arc<Segment>> {
    let summary = index_file::read_summary(cx.dir, segment.base).filter(|s| {
        s.next_offset == next_base && s.end_position <= segment.len && s.end_position >= SEGMENT_HEADER_BYTES as u64
    });
    let summary = match summary {
        Some(summary) => summary,
        None => {
            report.indexes_rebuilt += 1;
            summarize_by_scan(&segment, next_base)?
        }
    };
    if segment.len > summary.end_position && cx.writes() {
        let past_end = nonzero_bytes_past(&segment, summary.end_position)?;
        if trim_unpublished(&segment, summary.end_position, past_end)? {
            segment
                .file
                .sync_data()
                .map_err(|e| Error::io("fsync segment", &segment.path, e))?;
        }
    }
    open_sealed(cx, &segment, &summary, None, u64::MAX)
}

/// A sealed segment from a summary; `index` if recovery built one.
fn open_sealed(
    cx: &Context<'_>,
    segment: &Found,
    summary: &SegmentSummary,
    index: Option<SparseIndex>,
    unchecked_end: u64,
) -> Result<Arc<Segment>> {
    Ok(Segment::new(SegmentParts {
        base_offset: summary.base_offset,
        dir: cx.dir.to_path_buf(),
        slot: MapSlot::unmapped(&segment.file, &segment.path, cx.cache)?,
        end_position: summary.end_position,
        next_offset: summary.next_offset,
        max_timestamp_ms: summary.max_timestamp_ms,
        last_epoch: summary.last_epoch,
        unchecked_end,
        index_interval_bytes: cx.options.index_interval_bytes,
        index,
        persist_index: cx.writes(),
    }))
}

fn summarize_by_scan(segment: &Found, next_base: u64) -> Result<SegmentSummary> {
    let scanned = with_contents(segment, |data| {
        scan(
            data,
            SEGMENT_HEADER_BYTES as u64,
            segment.base,
            Some(next_base),
            Check::Full,
            |_, _| {},
        )
    })?;
    let reached_next = scanned.damage.is_none() && scanned.next_offset == next_base;
    Ok(SegmentSummary {
        base_offset: segment.base,
        // Damaged: keep every byte, so reads reach the damage and report it.
        end_position: if reached_next { scanned.position } else { segment.len },
        next_offset: next_base,
        max_timestamp_ms: if reached_next {
            scanned.max_timestamp_ms
        } else {
            i64::MAX
        },
        last_epoch: scanned.last_epoch.unwrap_or(0),
    })
}

/// The active segment's state from its index files, when the checkpoint
/// says the log was closed cleanly and the files agree.
pub(super) fn clean_tail(cx: &Context<'_>, found: &[Found], checkpoint: &Checkpoint) -> Option<ActiveTail> {
    let last = found.last()?;
    let point = checkpoint.recovery_point;
    if found.len() != 1 || last.base != point.segment_base || last.len != point.position {
        return None;
    }
    let summary = index_file::read_summary(cx.dir, last.base)?;
    if summary.end_position != point.position || summary.next_offset != point.offset {
        return None;
    }
    let entries = index_file::read(cx.dir, &summary)?;
    let interval = cx.options.index_interval_bytes;
    let capacity = cx.options.segment_bytes.max(summary.end_position);
    let index = SparseIndex::with_capacity(entries.len() + capacity_for(capacity, interval));
    for entry in &entries {
        index.push(*entry);
    }
    let since_entry = entries
        .last()
        .map_or(interval as u64, |e| summary.end_position - e.position as u64);
    Some(ActiveTail {
        end_position: summary.end_position,
        unchecked_end: summary.end_position,
        next_offset: summary.next_offset,
        last_epoch: summary.last_epoch,
        index,
        builder: IndexBuilder::resume(interval, since_entry, summary.max_timestamp_ms),
    })
}

/// The result of scanning one segment from the recovery point on.
pub(super) struct TailScan {
    pub tail: ActiveTail,
    pub damaged: bool,
    /// Non-zero bytes past the last valid batch.
    pub nonzero_after: u64,
}

/// Rebuilds a segment's index from its start and checks every batch from
/// `position` (the recovery point, or the segment header) on.
pub(super) fn scan_tail(
    cx: &Context<'_>,
    segment: &Found,
    position: u64,
    expected: u64,
    limit: Option<u64>,
    report: &mut RecoveryReport,
) -> Result<TailScan> {
    with_contents(segment, |data| {
        let interval = cx.options.index_interval_bytes;
        let capacity = cx.options.segment_bytes.max(segment.len);
        let index = SparseIndex::with_capacity(capacity_for(capacity, interval));
        let mut builder = IndexBuilder::new(interval);
        let base = segment.base;
        // Index the trusted part before the recovery point by its headers.
        let trusted = &data[..(position as usize).min(data.len())];
        scan(
            trusted,
            SEGMENT_HEADER_BYTES as u64,
            base,
            None,
            Check::HeadersOnly,
            |at, header| builder.observe(&index, base, at, header),
        );
        let scanned = scan(data, position, expected, limit, Check::Full, |at, header| {
            builder.observe(&index, base, at, header)
        });
        report.segments_scanned += 1;
        report.bytes_scanned += scanned.position - position;
        TailScan {
            damaged: scanned.damage.is_some(),
            nonzero_after: nonzero_bytes_after(data, scanned.position),
            tail: ActiveTail {
                end_position: scanned.position,
                unchecked_end: position,
                next_offset: scanned.next_offset,
                last_epoch: scanned.last_epoch.unwrap_or(0),
                index,
                builder,
            },
        }
    })
}

/// How far past `from` the last non-zero byte of `data` lies, looking no
/// further than the first window of [`ZERO_WINDOW_BYTES`] (counted from
/// `from`) that is all zeros. The writer fills a segment front to back, so
/// past such a window lies only preallocation never written; stopping there
/// keeps recovery's cost proportional to what was written, not to the
/// segment's size.
pub(super) fn nonzero_bytes_after(data: &[u8], from: u64) -> u64 {
    let mut last = None;
    let mut window_start = from as usize;
    while window_start < data.len() {
        let window_end = (window_start + ZERO_WINDOW_BYTES).min(data.len());
        match data[window_start..window_end].iter().rposition(|&b| b != 0) {
            Some(i) => last = Some(window_start + i + 1),
            None => break,
        }
        window_start = window_end;
    }
    last.map_or(0, |end| (end as u64).saturating_sub(from))
}

/// See [`nonzero_bytes_after`].
const ZERO_WINDOW_BYTES: usize = 1 << 20;

/// A scanned segment that ends exactly where the next begins: trim, write
/// its index files, open it sealed.
pub(super) fn seal_scanned(cx: &Context<'_>, segment: Found, scanned: TailScan) -> Result<Arc<Segment>> {
    let tail = scanned.tail;
    let summary = tail.summary(segment.base);
    if cx.writes() {
        // The scan measured what lies past the end already.
        trim_unpublished(&segment, summary.end_position, scanned.nonzero_after)?;
        segment
            .file
            .sync_data()
            .map_err(|e| Error::io("fsync segment", &segment.path, e))?;
        index_file::write(cx.dir, &summary, &tail.index.entries())?;
    }
    open_sealed(cx, &segment, &summary, Some(tail.index), tail.unchecked_end)
}

/// Whether a segment looks never sealed: no offset index file (sealing
/// writes one after syncing the data) and a file that ends in a zero byte
/// (sealing trims the file to the end of its last batch; an unsealed file
/// ends in the zero-filled room the roll left, after the last batch or
/// after a torn one). A sealed segment can pass both only if its index
/// file was deleted and its last record ends in a zero byte.
pub(super) fn looks_unsealed(dir: &Path, segment: &Found) -> Result<bool> {
    if segment_path(dir, segment.base, SegmentFile::OffsetIndex).exists() || segment.len <= SEGMENT_HEADER_BYTES as u64
    {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(&segment.file, &mut last, segment.len - 1)
        .map_err(|e| Error::io("read segment", &segment.path, e))?;
    Ok(last[0] == 0)
}

/// Whether a segment holds at least one valid batch.
pub(super) fn holds_a_batch(segment: &Found) -> Result<bool> {
    with_contents(segment, |data| {
        let first = data.get(SEGMENT_HEADER_BYTES..).unwrap_or(&[]);
        crate::format::validate_batch(first, segment.base).is_ok()
    })
}

/// The last segment of a log opened read-only: sealed, ending where
/// recovery would have cut it, with the index recovery built.
pub(super) fn open_read_only_tail(cx: &Context<'_>, segment: &Found, tail: ActiveTail) -> Result<Arc<Segment>> {
    let summary = tail.summary(segment.base);
    open_sealed(cx, segment, &summary, Some(tail.index), tail.unchecked_end)
}

/// Calls `look` with the whole file's bytes (mapped; no mapping of the file
/// exists yet while recovery runs, so they cannot change).
fn with_contents<T>(segment: &Found, look: impl FnOnce(&[u8]) -> T) -> Result<T> {
    let map = MappedFile::map(&segment.file, &segment.path, segment.len, segment.len)?;
    Ok(look(map.view(0..segment.len).expect("whole file is frozen")))
}

/// How far past `from` the last non-zero byte of a segment file lies.
pub(super) fn nonzero_bytes_past(segment: &Found, from: u64) -> Result<u64> {
    with_contents(segment, |data| nonzero_bytes_after(data, from))
}

/// Trims a sealed segment's file to `end` if only zeros lie past it
/// (`nonzero_past_end == 0`: preallocation never written); returns whether
/// it did (the caller syncs). Non-zero bytes past the end were cut by a
/// truncation, and records an earlier handle in this process returned may
/// still map them: shortening the file under them would make reading them
/// fault (`mmap` invariant 4), so they stay until the segment is deleted.
fn trim_unpublished(segment: &Found, end: u64, nonzero_past_end: u64) -> Result<bool> {
    if segment.len <= end || nonzero_past_end > 0 {
        return Ok(false);
    }
    segment
        .file
        .set_len(end)
        .map_err(|e| Error::io("trim segment", &segment.path, e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::scratch_file;
    use std::os::unix::fs::FileExt;

    /// Guards recovery's cost: it once read a whole preallocated segment
    /// past a torn tail (found by profiling the crash-reopen benchmark,
    /// fixed in 0bc40f6).
    #[test]
    fn nonzero_bytes_are_found_up_to_the_first_zero_mib() {
        let dir = tempfile::tempdir().unwrap();
        let (file, path) = scratch_file(dir.path(), "f", 8 << 20);
        let map = MappedFile::map(&file, &path, 8 << 20, 8 << 20).unwrap();
        let data = map.view(0..8 << 20).unwrap();
        assert_eq!(nonzero_bytes_after(data, 100), 0);
        file.write_all_at(b"x", (1 << 20) + 5).unwrap();
        file.write_all_at(b"yz", (2 << 20) + 7).unwrap();
        file.write_all_at(b"far", 6 << 20).unwrap();
        assert_eq!(
            nonzero_bytes_after(data, 100),
            (2 << 20) + 9 - 100,
            "stops at the zero MiB before 6 MiB"
        );
        assert_eq!(nonzero_bytes_after(data, (2 << 20) + 9), 0);
        assert_eq!(
            nonzero_bytes_after(data, 5 << 20),
            0,
            "a whole zero MiB ends the search"
        );
        assert_eq!(
            nonzero_bytes_after(data, (5 << 20) + 10),
            (6 << 20) + 3 - (5 << 20) - 10
        );
    }
}
