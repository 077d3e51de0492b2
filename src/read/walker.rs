//! The walk over a snapshot of the segments that [`Batches`](super::Batches)
//! and [`Iter`](super::Iter) share: batch by batch, keeping one zero-copy
//! view of the segment being read.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Damage, Error, Result};
use crate::format::{BatchHeader, SEGMENT_HEADER_BYTES};
use crate::storage::segment::Segment;
use crate::storage::segment_set::{SegmentList, segment_index};

/// Where the walk stands: a batch and where its bytes are in the view.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchAt {
    /// Byte position of the batch in its segment.
    pub position: u64,
    pub header: BatchHeader,
    /// Where the batch starts in [`BatchWalker::view`].
    pub view_offset: usize,
}

impl BatchAt {
    /// The batch's bytes in the view.
    pub(crate) fn range(&self) -> Range<usize> {
        self.view_offset..self.view_offset + self.header.batch_len as usize
    }
}

/// Bytes of a segment from position `start` on.
#[derive(Debug)]
struct SegmentView {
    bytes: Bytes,
    start: u64,
}

impl SegmentView {
    fn covers(&self, range: &Range<u64>) -> bool {
        self.start <= range.start && range.end <= self.start + self.bytes.len() as u64
    }
}

/// Walks the batches of a snapshot of the segments, from the one holding
/// `from` to the one holding `end - 1`, keeping one zero-copy view of the
/// segment being read so that moving to the next batch costs no reference
/// count.
#[derive(Debug)]
pub(crate) struct BatchWalker {
    segments: SegmentList,
    /// Offset of the next record wanted.
    next: u64,
    /// One past the last offset to reach.
    end: u64,
    segment_index: usize,
    view: Option<SegmentView>,
    /// The batch last returned by `advance`.
    current: Option<BatchAt>,
    /// Batches of the current segment starting below this were checked
    /// (see [`Segment::next_batch`]): the walk decodes their headers
    /// without asking the segment again.
    checked_end: u64,
}

impl BatchWalker {
    pub(crate) fn new(segments: SegmentList, from: u64, end: u64) -> BatchWalker {
        let segment_index = segment_index(&segments, from).unwrap_or(0);
        BatchWalker {
            segments,
            next: from,
            end,
            segment_index,
            view: None,
            current: None,
            checked_end: 0,
        }
    }

    /// A walk over nothing, for an iterator that only reports an error.
    pub(crate) fn empty() -> BatchWalker {
        BatchWalker::new(Arc::new(Vec::new()), 0, 0)
    }

    /// Records below `offset` are no longer wanted; `advance` moves to the
    /// batch holding it.
    pub(crate) fn skip_to(&mut self, offset: u64) {
        self.next = offset;
    }

    /// Offset of the next record wanted.
    pub(crate) fn next_offset(&self) -> u64 {
        self.next
    }

    /// Moves to the batch holding the next wanted offset, which
    /// [`BatchWalker::current`] then returns: `Ok(false)` at the end. After
    /// an error the walk is over.
    ///
    /// The batch is left in the walker rather than returned: the fast and
    /// the slow way both store it there, so that a caller into which this
    /// is inlined reads the fields it needs instead of copying a
    /// `Result<Option<BatchAt>>` through the stack for every batch.
    #[inline(always)]
    pub(crate) fn advance(&mut self) -> Result<bool> {
        if self.next >= self.end {
            return Ok(false);
        }
        // The common step of a scan, small enough to inline into the
        // iterators.
        if let Some(at) = self.next_checked() {
            self.current = Some(at);
            return Ok(true);
        }
        self.advance_slow()
    }

    /// The batch `advance` moved to last.
    #[inline(always)]
    pub(crate) fn current(&self) -> &BatchAt {
        self.current.as_ref().expect("advance sets the batch")
    }

    /// The batch right after the last one, if the walk can take it from
    /// the view without asking the segment (see `checked_in_view`).
    #[inline(always)]
    fn next_checked(&self) -> Option<BatchAt> {
        let previous = self.current.as_ref()?;
        if previous.header.next_offset() != self.next {
            return None;
        }
        self.checked_in_view(previous.position + previous.header.batch_len as u64)
    }

    /// [`BatchWalker::advance`] the long way: through the segment, which
    /// checks the batch if it is due, moving to the next segment or
    /// locating a batch through the index when needed.
    #[inline(never)]
    fn advance_slow(&mut self) -> Result<bool> {
        match self.find_next() {
            Ok(at) => {
                self.current = Some(at);
                Ok(true)
            }
            Err(error) => {
                self.end = self.next;
                Err(error)
            }
        }
    }

    /// The view holding the batch `advance` returned last.
    pub(crate) fn view(&self) -> &Bytes {
        &self.view.as_ref().expect("advance sets the view").bytes
    }

    /// The segment being read.
    pub(crate) fn segment(&self) -> &Arc<Segment> {
        &self.segments[self.segment_index]
    }

    fn find_next(&mut self) -> Result<BatchAt> {
        let found = match self.current {
            // Sequential case: the batch right after the last one.
            Some(previous) if previous.header.next_offset() == self.next => {
                let position = previous.position + previous.header.batch_len as u64;
                let view = self.view.as_ref().filter(|v| v.start == 0).map(|v| &v.bytes[..]);
                let segment = &self.segments[self.segment_index];
                match segment.next_batch(position, self.next, view, &mut self.checked_end)? {
                    Some(found) => Some(found),
                    None => {
                        self.segment_index += 1;
                        self.view = None;
                        self.checked_end = 0;
                        let segment = self.segments.get(self.segment_index).ok_or_else(|| self.vanished())?;
                        segment.next_batch(SEGMENT_HEADER_BYTES as u64, self.next, None, &mut self.checked_end)?
                    }
                }
            }
            _ => self.segment().locate(self.next)?,
        };
        let (position, header) = found.ok_or_else(|| self.vanished())?;
        let view_offset = self.view_batch(position, &header)?;
        Ok(BatchAt {
            position,
            header,
            view_offset,
        })
    }

    /// The batch at `position` of the current segment, if this walk saw it
    /// checked (below `checked_end`) and the view holds it: its header
    /// decoded from the view, with no look-up of the segment's end, its
    /// check-once bound or its mapping. The batch lies below the segment's
    /// end as it was when checked, and that end never moves back.
    /// `None` sends the caller the slow way, which reports any failure.
    #[inline(always)]
    fn checked_in_view(&self, position: u64) -> Option<BatchAt> {
        if position >= self.checked_end {
            return None;
        }
        let view = self.view.as_ref()?;
        let view_offset = usize::try_from(position.checked_sub(view.start)?).ok()?;
        let header = BatchHeader::decode_at(view.bytes.get(view_offset..)?, self.next).ok()?;
        Some(BatchAt {
            position,
            header,
            view_offset,
        })
    }

    /// Makes the view hold the batch at `position` and returns where the
    /// batch starts in it. The view is the whole segment as far as it is
    /// written; only a batch the snapshot cannot cover gets a view of its own.
    fn view_batch(&mut self, position: u64, header: &BatchHeader) -> Result<usize> {
        let range = position..position + header.batch_len as u64;
        if !self.view.as_ref().is_some_and(|view| view.covers(&range)) {
            let segment = Arc::clone(self.segment());
            self.view = segment
                .mapping()?
                .bytes(0..segment.end_position())
                .map(|bytes| SegmentView { bytes, start: 0 })
                .filter(|view| view.covers(&range));
            if self.view.is_none() {
                let bytes = segment.batch_bytes(position, header)?;
                self.view = Some(SegmentView { bytes, start: position });
            }
        }
        let view = self.view.as_ref().expect("set above");
        Ok((position - view.start) as usize)
    }

    fn vanished(&self) -> Error {
        Error::corrupt(
            self.segments.last().map_or(std::path::Path::new(""), |s| s.path()),
            0,
            Damage::MissingRecords { offset: self.next },
        )
    }
}
