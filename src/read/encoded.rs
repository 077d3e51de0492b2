//! Whole stored batches as one run of bytes, for a replication leader that
//! ships its log byte for byte.

use bytes::Bytes;

use super::walker::BatchWalker;
use crate::error::Result;
use crate::format::BatchHeader;
use crate::storage::segment_set::SegmentList;

/// A run of whole, checked batches from one segment, zero-copy.
#[derive(Debug, Clone)]
pub struct EncodedRun {
    /// Header of the first batch of the run.
    pub first: BatchHeader,
    /// One past the offset of the run's last record.
    pub next_offset: u64,
    /// The batches, byte for byte as stored.
    pub bytes: Bytes,
}

/// The batches from the one holding `from` to the last one that keeps the
/// run within `max_bytes` (the first batch is taken whatever its size), all
/// in the segment of the first, and below `end`. `Ok(None)` when `from` is
/// `end`.
pub(crate) fn encoded_run(segments: SegmentList, from: u64, end: u64, max_bytes: u64) -> Result<Option<EncodedRun>> {
    let mut walker = BatchWalker::new(segments, from, end);
    if !walker.advance()? {
        return Ok(None);
    }
    let first = *walker.current();
    // A reference to the view holding the first batch: the run is sliced
    // out of it, and a later batch joins the run only if it lies right
    // after the run in this same view (same mapping, same segment).
    let view = walker.view().clone();
    let start = first.view_offset;
    let mut run_end = first.range().end;
    let mut next_offset = first.header.next_offset();
    walker.skip_to(next_offset);
    // A batch after the first that fails its check ends the run; the next
    // read, starting at it, reports the error.
    while let Ok(true) = walker.advance() {
        let at = *walker.current();
        let contiguous =
            walker.view().as_ptr() == view.as_ptr() && at.view_offset == run_end && at.range().end <= view.len();
        if !contiguous || (at.range().end - start) as u64 > max_bytes {
            break;
        }
        run_end = at.range().end;
        next_offset = at.header.next_offset();
        walker.skip_to(next_offset);
    }
    Ok(Some(EncodedRun {
        first: first.header,
        next_offset,
        bytes: view.slice(start..run_end),
    }))
}
