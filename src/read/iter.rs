//! [`Iter`]: reading records in offset order.

use super::walker::BatchWalker;
use crate::error::{Damage, Error, Result};
use crate::format::{BATCH_HEADER_BYTES, RecordDecoder, decode_record};
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
    /// The batch being read; it has no records left when `offset` has
    /// reached `end_offset` (as before the first batch).
    batch: RecordCursor,
    error: Option<Error>,
}

/// Position inside the batch being read. Positions are in the walker's
/// view, so decoded ranges index it directly. Only what the next record
/// needs, so that moving to the next batch (once per record for
/// one-record batches) copies little.
#[derive(Debug, Default)]
struct RecordCursor {
    /// Byte position of the batch in its segment, for errors.
    position: u64,
    leader_epoch: u64,
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
            batch: RecordCursor::default(),
            error: None,
        }
    }

    pub(crate) fn failed(error: Error) -> Iter {
        Iter {
            walker: BatchWalker::empty(),
            batch: RecordCursor::default(),
            error: Some(error),
        }
    }

    /// Moves to the batch holding the next wanted offset, decoding past the
    /// records before it; `Ok(false)` at the end.
    #[inline(always)]
    fn load_batch(&mut self) -> Result<bool> {
        if !self.walker.advance()? {
            return Ok(false);
        }
        let at = self.walker.current();
        let mut cursor = at.view_offset + BATCH_HEADER_BYTES;
        let skip = self.walker.next_offset().saturating_sub(at.header.base_offset);
        if skip > 0 {
            cursor = self.skip_records(cursor, skip)?;
        }
        let at = self.walker.current();
        self.batch = RecordCursor {
            position: at.position,
            leader_epoch: at.header.leader_epoch,
            cursor,
            batch_end: at.range().end,
            offset: at.header.base_offset + skip,
            end_offset: at.header.next_offset(),
        };
        Ok(true)
    }

    /// Steps over the first `skip` records of the walker's batch (whose
    /// records start at `cursor` in the view), to the one wanted: only for
    /// the first batch of an iteration that starts inside a batch.
    #[cold]
    fn skip_records(&self, cursor: usize, skip: u64) -> Result<usize> {
        let at = self.walker.current();
        let mut records = RecordDecoder::new(&self.walker.view()[..at.range().end], cursor);
        records.skip_records(skip).map_err(|damage| {
            Error::corrupt(self.walker.segment().path(), at.position, damage).resuming_at(at.header.next_offset())
        })
    }

    /// The record at the cursor, which must be inside the batch.
    #[inline(always)]
    fn next_in_batch(&mut self) -> Result<Record> {
        let batch = &mut self.batch;
        let view = self.walker.view();
        // The slice ends at the batch's end, so a record cannot run past it.
        let (fields, next) = match decode_record(&view[..batch.batch_end], batch.cursor) {
            Ok(decoded) => decoded,
            Err(damage) => return Err(self.corrupt(damage)),
        };
        let record = Record::from_batch(view, batch.offset, batch.leader_epoch, fields);
        batch.cursor = next;
        batch.offset += 1;
        self.walker.skip_to(batch.offset);
        Ok(record)
    }

    /// `damage` in the batch being read, as the error to return.
    #[cold]
    fn corrupt(&self, damage: Damage) -> Error {
        Error::corrupt(self.walker.segment().path(), self.batch.position, damage).resuming_at(self.batch.end_offset)
    }

    /// Ends the iteration after an error: the walker is already over, and a
    /// record cursor must not outlive it.
    #[cold]
    fn fail(&mut self, error: Error) -> Option<Result<Record>> {
        self.batch = RecordCursor::default();
        self.walker.skip_to(u64::MAX);
        Some(Err(error))
    }
}

impl Iterator for Iter {
    type Item = Result<Record>;

    /// Inlined, with the walker's step to a batch it already checked, into
    /// the caller's loop (the error paths are out of line): with one-record
    /// batches this runs once per batch, and every call boundary on the way
    /// copied a large `Result` through the stack.
    #[inline(always)]
    fn next(&mut self) -> Option<Result<Record>> {
        if self.batch.offset >= self.batch.end_offset {
            // An iterator made `failed` has no batch: its error comes first.
            if self.error.is_some() {
                return self.error.take().map(Err);
            }
            match self.load_batch() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(error) => return self.fail(error),
            }
        }
        match self.next_in_batch() {
            Ok(record) => Some(Ok(record)),
            Err(error) => self.fail(error),
        }
    }
}
