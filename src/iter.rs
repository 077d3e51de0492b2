//! [`Iter`]: reading records in offset order.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::format::{BATCH_HEADER_BYTES, BatchHeader, SEGMENT_HEADER_BYTES, decode_record};
use crate::log::SegmentList;
use crate::record::Record;
use crate::segment::Segment;

/// Iterator over records in offset order, from [`Log::iter`](crate::Log::iter).
///
/// It holds its own snapshot of the segments, so it never blocks the writer
/// and is unaffected by appends, truncation or retention after its creation.
/// Each batch is checked (CRC and structure) the first time any reader reads
/// it. After an error the iterator ends.
#[derive(Debug)]
pub struct Iter {
    segments: SegmentList,
    /// Offset of the next record to yield.
    next: u64,
    /// One past the last offset to yield.
    end: u64,
    /// Index in `segments` of the segment being read.
    segment_index: usize,
    /// Zero-copy view of the segment being read, holding the current batch:
    /// normally the segment from its start, so moving to the next batch
    /// costs no reference count.
    view: Option<SegmentView>,
    batch: Option<BatchCursor>,
    error: Option<Error>,
}

/// Bytes of a segment from position `start` on.
#[derive(Debug)]
struct SegmentView {
    bytes: Bytes,
    start: u64,
}

impl SegmentView {
    fn covers(&self, range: &std::ops::Range<u64>) -> bool {
        self.start <= range.start && range.end <= self.start + self.bytes.len() as u64
    }
}

#[derive(Debug)]
struct BatchCursor {
    position: u64,
    header: BatchHeader,
    /// Where the batch starts in the view's bytes.
    view_offset: usize,
    /// Byte position of the next record inside the batch.
    cursor: usize,
    /// Offset of the record at `cursor`.
    offset: u64,
}

impl Iter {
    pub(crate) fn new(segments: SegmentList, from: u64, end: u64) -> Iter {
        let segment_index = segments.partition_point(|s| s.base_offset() <= from).saturating_sub(1);
        Iter {
            segments,
            next: from,
            end,
            segment_index,
            view: None,
            batch: None,
            error: None,
        }
    }

    pub(crate) fn failed(error: Error) -> Iter {
        Iter {
            segments: Arc::new(Vec::new()),
            next: 0,
            end: 0,
            segment_index: 0,
            view: None,
            batch: None,
            error: Some(error),
        }
    }

    fn segment(&self) -> &Arc<Segment> {
        &self.segments[self.segment_index]
    }

    /// Positions `self.batch` on the batch holding `self.next`.
    fn load_batch(&mut self) -> Result<()> {
        let found = match self.batch.take() {
            None => self.segment().locate(self.next)?,
            Some(previous) => {
                let position = previous.position + previous.header.batch_len as u64;
                match self.segment().next_batch(position, self.next)? {
                    Some(found) => Some(found),
                    None => {
                        self.segment_index += 1;
                        self.view = None;
                        let segment = self.segments.get(self.segment_index).ok_or_else(|| self.vanished())?;
                        segment.next_batch(SEGMENT_HEADER_BYTES as u64, self.next)?
                    }
                }
            }
        };
        let (position, header) = found.ok_or_else(|| self.vanished())?;
        let view_offset = self.view_batch(position, &header)?;
        let mut batch = BatchCursor {
            position,
            header,
            view_offset,
            cursor: BATCH_HEADER_BYTES,
            offset: header.base_offset,
        };
        while batch.offset < self.next {
            let (_, next) = self.decode(&batch)?;
            batch.cursor = next;
            batch.offset += 1;
        }
        self.batch = Some(batch);
        Ok(())
    }

    /// The batch's bytes, sliced from one view of the segment when possible
    /// (a reference-count increment instead of an allocation).
    /// Makes `self.view` hold the batch at `position` and returns where the
    /// batch starts in it. The view is the whole segment as far as it is
    /// written; only a batch the snapshot cannot cover gets a view of its own.
    fn view_batch(&mut self, position: u64, header: &BatchHeader) -> Result<usize> {
        let range = position..position + header.batch_len as u64;
        if !self.view.as_ref().is_some_and(|view| view.covers(&range)) {
            let segment = Arc::clone(self.segment());
            self.view = segment
                .mapping()
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

    /// The current view and the bytes of `batch` in it.
    fn batch_bytes<'a>(&'a self, batch: &BatchCursor) -> (&'a Bytes, &'a [u8]) {
        let view = &self.view.as_ref().expect("a batch is always in the view").bytes;
        (
            view,
            &view[batch.view_offset..batch.view_offset + batch.header.batch_len as usize],
        )
    }

    fn decode(&self, batch: &BatchCursor) -> Result<(crate::format::RecordFields, usize)> {
        decode_record(self.batch_bytes(batch).1, batch.cursor)
            .map_err(|reason| Error::corrupt(self.segment().path(), batch.position, reason))
    }

    fn vanished(&self) -> Error {
        Error::corrupt(
            self.segments.last().map_or(std::path::Path::new(""), |s| s.path()),
            0,
            "offset below the log end is missing from its segments",
        )
    }

    fn next_record(&mut self) -> Result<Record> {
        if self.batch.as_ref().is_none_or(|b| b.offset >= b.header.next_offset()) {
            self.load_batch()?;
        }
        let batch = self.batch.as_ref().expect("load_batch sets it");
        let (fields, next) = self.decode(batch)?;
        let (view, _) = self.batch_bytes(batch);
        let record = Record::from_view(view, batch.view_offset, batch.offset, batch.header.leader_epoch, fields);
        let batch = self.batch.as_mut().expect("still set");
        batch.cursor = next;
        batch.offset += 1;
        self.next += 1;
        Ok(record)
    }
}

impl Iterator for Iter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if let Some(error) = self.error.take() {
            return Some(Err(error));
        }
        if self.next >= self.end {
            return None;
        }
        match self.next_record() {
            Ok(record) => Some(Ok(record)),
            Err(error) => {
                self.end = self.next;
                Some(Err(error))
            }
        }
    }
}
