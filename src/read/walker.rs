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

    /// Moves to the batch holding the next wanted offset: `Ok(None)` at the
    /// end. After an error the walk is over.
    pub(crate) fn advance(&mut self) -> Result<Option<BatchAt>> {
        if self.next >= self.end {
            return Ok(None);
        }
        match self.find_next() {
            Ok(at) => {
                self.current = Some(at);
                Ok(Some(at))
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
                match self.segment().next_batch(position, self.next, view)? {
                    Some(found) => Some(found),
                    None => {
                        self.segment_index += 1;
                        self.view = None;
                        let segment = self.segments.get(self.segment_index).ok_or_else(|| self.vanished())?;
                        segment.next_batch(SEGMENT_HEADER_BYTES as u64, self.next, None)?
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
