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
    /// Zero-copy view of the segment being read, from its start.
    segment_bytes: Option<Bytes>,
    batch: Option<BatchCursor>,
    error: Option<Error>,
}

#[derive(Debug)]
struct BatchCursor {
    position: u64,
    header: BatchHeader,
    bytes: Bytes,
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
            segment_bytes: None,
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
            segment_bytes: None,
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
                        self.segment_bytes = None;
                        let segment = self.segments.get(self.segment_index).ok_or_else(|| self.vanished())?;
                        segment.next_batch(SEGMENT_HEADER_BYTES as u64, self.next)?
                    }
                }
            }
        };
        let (position, header) = found.ok_or_else(|| self.vanished())?;
        let bytes = self.batch_bytes(position, &header)?;
        let mut batch = BatchCursor {
            position,
            header,
            bytes,
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
    fn batch_bytes(&mut self, position: u64, header: &BatchHeader) -> Result<Bytes> {
        let end = position + header.batch_len as u64;
        let segment = Arc::clone(self.segment());
        if self.segment_bytes.as_ref().is_none_or(|b| (b.len() as u64) < end) {
            self.segment_bytes = segment.mapping().bytes(0..segment.end_position());
        }
        match &self.segment_bytes {
            Some(bytes) if bytes.len() as u64 >= end => Ok(bytes.slice(position as usize..end as usize)),
            _ => segment.batch_bytes(position, header),
        }
    }

    fn decode(&self, batch: &BatchCursor) -> Result<(crate::format::RecordFields, usize)> {
        decode_record(&batch.bytes, batch.cursor)
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
        let record = Record::from_batch(&batch.bytes, batch.offset, batch.header.leader_epoch, fields);
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
