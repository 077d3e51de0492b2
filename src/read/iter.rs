//! [`Iter`]: reading records in offset order.

use super::walker::{BatchAt, BatchWalker};
use crate::error::{Error, Result};
use crate::format::{BATCH_HEADER_BYTES, RecordDecoder, RecordFields, decode_record};
use crate::record::Record;
use crate::storage::segment_set::SegmentList;

/// Iterator over records in offset order, from [`Log::iter`](crate::Log::iter).
///
/// It holds its own snapshot of the segments, so it never blocks the writer
/// and is unaffected by appends, truncation or retention after its creation.
/// Each batch is checked (CRC and structure) the first time any reader reads
/// it. After an error the iterator ends.
///
/// Each record it yields shares the mapped bytes (a reference count, no
/// copy); [`Log::batches`](crate::Log::batches) reads with borrowed records
/// and no reference count per record, for scans that need the most speed.
#[derive(Debug)]
pub struct Iter {
    walker: BatchWalker,
    /// The batch being read, if it has records left.
    batch: Option<RecordCursor>,
    error: Option<Error>,
}

/// Position inside the batch being read. Positions are in the walker's
/// view, so decoded ranges index it directly.
#[derive(Debug)]
struct RecordCursor {
    at: BatchAt,
    /// Where the next record starts in the view.
    cursor: usize,
    /// Where the batch ends in the view.
    batch_end: usize,
    /// Offset of the record at `cursor`.
    offset: u64,
    /// One past the batch's last offset.
    end_offset: u64,
}

impl Iter {
    pub(crate) fn new(segments: SegmentList, from: u64, end: u64) -> Iter {
        Iter {
            walker: BatchWalker::new(segments, from, end),
            batch: None,
            error: None,
        }
    }

    pub(crate) fn failed(error: Error) -> Iter {
        Iter {
            walker: BatchWalker::empty(),
            batch: None,
            error: Some(error),
        }
    }

    /// Moves to the batch holding the next wanted offset, decoding past the
    /// records before it; `Ok(false)` at the end.
    fn load_batch(&mut self) -> Result<bool> {
        let Some(at) = self.walker.advance()? else {
            return Ok(false);
        };
        let batch_end = at.range().end;
        // Step over the batch's records before the one wanted.
        let skip = self.walker.next_offset().saturating_sub(at.header.base_offset);
        let mut records = RecordDecoder::new(&self.walker.view()[..batch_end], at.view_offset + BATCH_HEADER_BYTES);
        let cursor = records.skip_records(skip).map_err(|damage| {
            Error::corrupt(self.walker.segment().path(), at.position, damage).resuming_at(at.header.next_offset())
        })?;
        self.batch = Some(RecordCursor {
            at,
            cursor,
            batch_end,
            offset: at.header.base_offset + skip,
            end_offset: at.header.next_offset(),
        });
        Ok(true)
    }

    fn next_record(&mut self) -> Result<Option<Record>> {
        let batch = match &mut self.batch {
            Some(batch) if batch.offset < batch.end_offset => batch,
            _ => {
                if !self.load_batch()? {
                    return Ok(None);
                }
                self.batch.as_mut().expect("load_batch sets it")
            }
        };
        let (fields, next) = decode_in(&self.walker, batch)?;
        let record = Record::from_batch(self.walker.view(), batch.offset, batch.at.header.leader_epoch, fields);
        batch.cursor = next;
        batch.offset += 1;
        self.walker.skip_to(batch.offset);
        Ok(Some(record))
    }
}

/// Decodes the record at `batch.cursor`; its ranges index the walker's view.
fn decode_in(walker: &BatchWalker, batch: &RecordCursor) -> Result<(RecordFields, usize)> {
    // The slice ends at the batch's end, so a record cannot run past it.
    decode_record(&walker.view()[..batch.batch_end], batch.cursor).map_err(|damage| {
        Error::corrupt(walker.segment().path(), batch.at.position, damage).resuming_at(batch.end_offset)
    })
}

impl Iterator for Iter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if let Some(error) = self.error.take() {
            return Some(Err(error));
        }
        match self.next_record() {
            Ok(record) => record.map(Ok),
            Err(error) => {
                // End the iteration: the walker is already over, and a
                // record cursor must not outlive it.
                self.batch = None;
                self.walker.skip_to(u64::MAX);
                Some(Err(error))
            }
        }
    }
}
