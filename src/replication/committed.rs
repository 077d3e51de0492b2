//! Reading committed records only: below the high watermark.

use std::time::{Duration, Instant};

use super::Replica;
use crate::error::{Error, Result};
use crate::read::{Batch, Batches, Iter};
use crate::record::Record;

/// Records in offset order, up to the high watermark as it was when the
/// iteration began: from [`Replica::iter_committed`]. Same snapshot and
/// error semantics as [`Iter`].
#[derive(Debug)]
pub struct CommittedIter {
    inner: Iter,
    end: u64,
    error: Option<Error>,
}

impl Iterator for CommittedIter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if let Some(error) = self.error.take() {
            return Some(Err(error));
        }
        match self.inner.next()? {
            Ok(record) if record.offset() >= self.end => None,
            other => Some(other),
        }
    }
}

/// Whole batches in offset order, up to the high watermark as it was when
/// the iteration began: from [`Replica::batches_committed`]. A batch is
/// returned only once all of it is committed. Same snapshot and error
/// semantics as [`Batches`].
#[derive(Debug)]
pub struct CommittedBatches {
    inner: Batches,
    end: u64,
    error: Option<Error>,
}

impl Iterator for CommittedBatches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if let Some(error) = self.error.take() {
            return Some(Err(error));
        }
        match self.inner.next()? {
            Ok(batch) if batch.next_offset() > self.end => None,
            other => Some(other),
        }
    }
}

impl Replica {
    /// Reads the committed record at `offset` (see [`Log::read`](crate::Log::read)).
    ///
    /// # Errors
    ///
    /// [`Error::OffsetOutOfRange`] (with `end` the high watermark) unless
    /// `start_offset() <= offset < high_watermark()`; as `Log::read`.
    pub fn read_committed(&self, offset: u64) -> Result<Record> {
        let end = self.high_watermark();
        if offset >= end {
            return Err(self.committed_out_of_range(offset, end));
        }
        self.log().read(offset)
    }

    /// Iterates over committed records from `from` up to the high
    /// watermark as it is now (see [`Log::iter`](crate::Log::iter)).
    /// `from == high_watermark()` gives an empty iteration; an offset
    /// outside `start_offset()..=high_watermark()` yields one
    /// `Err(OffsetOutOfRange)`.
    pub fn iter_committed(&self, from: u64) -> CommittedIter {
        let end = self.high_watermark();
        let error = (from > end).then(|| self.committed_out_of_range(from, end));
        let inner = if error.is_some() {
            self.log().iter(self.log().next_offset())
        } else {
            self.log().iter(from)
        };
        CommittedIter { inner, end, error }
    }

    /// Iterates over whole committed batches from the one holding `from`
    /// (see [`Log::batches`](crate::Log::batches)), stopping before the
    /// first batch not wholly below the high watermark as it is now.
    pub fn batches_committed(&self, from: u64) -> CommittedBatches {
        let end = self.high_watermark();
        let error = (from > end).then(|| self.committed_out_of_range(from, end));
        let inner = if error.is_some() {
            self.log().batches(self.log().next_offset())
        } else {
            self.log().batches(from)
        };
        CommittedBatches { inner, end, error }
    }

    /// Waits until `offset` is committed (`high_watermark() > offset`) or
    /// `timeout` passes (real time); returns whether it is.
    pub fn wait_committed(&self, offset: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.waiters
            .commits
            .wait_until(deadline, || self.high_watermark() > offset)
    }

    fn committed_out_of_range(&self, offset: u64, end: u64) -> Error {
        Error::OffsetOutOfRange {
            offset,
            start: self.log().start_offset(),
            end,
        }
    }
}
