//! [`Batches`]: reading the log a whole batch at a time, on top of the
//! walk in `walker`.

use super::batch::Batch;
use super::walker::BatchWalker;
use crate::error::{Error, Result};
use crate::storage::segment_set::SegmentList;

/// Iterator over whole batches in offset order, from
/// [`Log::batches`](crate::Log::batches).
///
/// The first batch is the one holding the requested offset, so it may start
/// before it. Like [`Iter`](crate::Iter), it holds its own snapshot of the
/// segments: appends, truncation and retention after its creation do not
/// affect it, and it never blocks the writer. Each batch is checked (CRC and
/// structure) the first time any reader reads it. After an error the
/// iterator ends.
#[derive(Debug)]
pub struct Batches {
    walker: BatchWalker,
    error: Option<Error>,
}

impl Batches {
    pub(crate) fn new(segments: SegmentList, from: u64, end: u64) -> Batches {
        Batches {
            walker: BatchWalker::new(segments, from, end),
            error: None,
        }
    }

    pub(crate) fn failed(error: Error) -> Batches {
        Batches {
            walker: BatchWalker::empty(),
            error: Some(error),
        }
    }
}

impl Iterator for Batches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if let Some(error) = self.error.take() {
            return Some(Err(error));
        }
        match self.walker.advance() {
            Ok(Some(at)) => {
                let next = at.header.next_offset();
                let bytes = self.walker.view().slice(at.range());
                self.walker.skip_to(next);
                Some(Ok(Batch::new(bytes, at.header)))
            }
            Ok(None) => None,
            Err(error) => Some(Err(error)),
        }
    }
}
