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

    #[inline]
    fn next(&mut self) -> Option<Result<Batch>> {
        if self.error.is_some() {
            return self.error.take().map(Err);
        }
        match self.walker.advance() {
            Ok(true) => {
                let at = self.walker.current();
                let (header, range) = (at.header, at.range());
                let bytes = self.walker.view().slice(range);
                self.walker.skip_to(header.next_offset());
                Some(Ok(Batch::new(bytes, header)))
            }
            Ok(false) => None,
            Err(error) => Some(Err(error)),
        }
    }
}
