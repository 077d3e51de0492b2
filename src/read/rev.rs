//! Reading newest first: [`RevBatches`] and [`RevIter`], for the commonest
//! timeline read (the latest records, a user's last posts).
//!
//! Batches can only be walked forward (their lengths lead from one to the
//! next), so the reverse walk goes back one index interval at a time: from
//! the index entry at or before the current bound it walks forward to the
//! bound, then hands those batches out newest first.

use std::collections::VecDeque;

use super::batch::Batch;
use super::batches::Batches;
use crate::error::{Error, Result};
use crate::record::Record;
use crate::storage::segment_set::{SegmentList, find_segment};

/// Whole batches newest first, from the one holding `before - 1` back to
/// the log's start: from [`Log::batches_rev`](crate::Log::batches_rev).
///
/// The first batch may end after `before - 1` if that offset is inside it.
/// Like [`Batches`], it holds its own snapshot of the segments and never
/// blocks the writer, each batch is checked (CRC and structure) the first
/// time any reader reads it, the batches share the mapping (zero-copy), and
/// after an error the iterator ends.
#[derive(Debug)]
pub struct RevBatches {
    segments: SegmentList,
    /// Offsets below this are still to be visited.
    upper: u64,
    /// The log's first offset, where the walk ends.
    start: u64,
    /// Batches of the current index interval, oldest first.
    chunk: VecDeque<Batch>,
    error: Option<Error>,
}

impl RevBatches {
    pub(crate) fn new(segments: SegmentList, before: u64, start: u64) -> RevBatches {
        RevBatches {
            segments,
            upper: before,
            start,
            chunk: VecDeque::new(),
            error: None,
        }
    }

    pub(crate) fn failed(error: Error) -> RevBatches {
        RevBatches {
            segments: SegmentList::default(),
            upper: 0,
            start: 0,
            chunk: VecDeque::new(),
            error: Some(error),
        }
    }

    /// Reads the batches of the index interval that holds `upper - 1`.
    fn load_chunk(&mut self) -> Result<()> {
        let last = self.upper - 1;
        let segment = find_segment(&self.segments, last).ok_or(Error::OffsetOutOfRange {
            offset: last,
            start: self.start,
            end: self.upper,
        })?;
        let relative = (last - segment.base_offset()) as u32;
        let from = segment
            .index()
            .floor_offset(relative)
            .map_or(segment.base_offset(), |e| {
                segment.base_offset() + e.relative_offset as u64
            })
            .max(self.start);
        for batch in Batches::new(SegmentList::clone(&self.segments), from, self.upper) {
            self.chunk.push_back(batch?);
        }
        self.upper = self.chunk.front().map_or(from, |b| b.base_offset().max(self.start));
        Ok(())
    }
}

impl Iterator for RevBatches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if let Some(error) = self.error.take() {
            return Some(Err(error));
        }
        if self.chunk.is_empty() {
            if self.upper <= self.start {
                return None;
            }
            if let Err(error) = self.load_chunk() {
                self.upper = self.start;
                self.chunk.clear();
                return Some(Err(error));
            }
        }
        self.chunk.pop_back().map(Ok)
    }
}

/// Records newest first, from `before - 1` back to the log's start: from
/// [`Log::iter_rev`](crate::Log::iter_rev). Each record shares the mapped
/// bytes (a reference count, no copy). Same snapshot and error semantics
/// as [`RevBatches`].
#[derive(Debug)]
pub struct RevIter {
    batches: RevBatches,
    before: u64,
    /// Records of the current batch, oldest first.
    records: Vec<Record>,
}

impl RevIter {
    pub(crate) fn new(batches: RevBatches, before: u64) -> RevIter {
        RevIter {
            batches,
            before,
            records: Vec::new(),
        }
    }

    /// The records of `batch` below `before`, sharing its bytes. (A batch
    /// handed out was checked, so its records always decode.)
    fn load(&mut self, batch: &Batch) {
        let bytes = batch.as_bytes();
        let records = batch.records().take_while(|r| r.offset() < self.before);
        self.records.extend(records.map(|r| {
            let key = r.key().map(|k| bytes.slice_ref(k));
            Record::from_parts(
                r.offset(),
                r.timestamp_ms(),
                batch.leader_epoch(),
                key,
                bytes.slice_ref(r.value()),
            )
        }));
    }
}

impl Iterator for RevIter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        loop {
            if let Some(record) = self.records.pop() {
                return Some(Ok(record));
            }
            match self.batches.next()? {
                Ok(batch) => self.load(&batch),
                Err(error) => return Some(Err(error)),
            }
        }
    }
}
