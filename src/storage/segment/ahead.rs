//! Reading a segment in order: the next batch for a walking reader, with
//! batches due for their first check checked a run at a time.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Segment;
use crate::error::Result;
use crate::format::{self, BatchHeader};

/// How far past a batch due for its check a reader walking in order checks
/// the batches after it, in the same go. Small batches (a record each, a
/// few hundred bytes) then share one update of the check-once bound, and
/// the reader checks its own way forward without one atomic operation per
/// batch. Small enough that a reader that stops early wastes little: at
/// most this many bytes of CRC, about 3 µs.
const CHECK_AHEAD_BYTES: u64 = 32 * 1024;

impl Segment {
    /// The checked batch at `position`, if the segment has one there, for
    /// a reader walking the segment in order. `view`, the segment's bytes
    /// from its start as the reader holds them, spares a look-up of the
    /// mapping when it reaches the segment's end.
    ///
    /// `checked_end` is the reader's own record of the check: batches of
    /// this segment starting below it were checked, by this reader if no
    /// other (start it at 0). When the batch at `position` is due for its
    /// check, the batches after it, up to [`CHECK_AHEAD_BYTES`] on, are
    /// checked in the same go (see [`Segment::check_run`]).
    #[inline]
    pub(crate) fn next_batch(
        self: &Arc<Self>,
        position: u64,
        expected_base: u64,
        view: Option<&[u8]>,
        checked_end: &mut u64,
    ) -> Result<Option<(u64, BatchHeader)>> {
        let end = self.end();
        if position >= end.end_position || expected_base >= end.next_offset {
            return Ok(None);
        }
        let header = match view {
            Some(view) if view.len() as u64 >= end.end_position => {
                self.batch_ahead(&view[..end.end_position as usize], position, expected_base, checked_end)
            }
            _ => self.batch_ahead_mapped(position, expected_base, end.end_position, checked_end),
        };
        Ok(Some((position, header.map_err(|e| self.with_resume(e))?)))
    }

    /// [`Segment::batch_ahead`] through the mapping, for a caller without a view.
    fn batch_ahead_mapped(
        self: &Arc<Self>,
        position: u64,
        expected_base: u64,
        end_position: u64,
        checked_end: &mut u64,
    ) -> Result<BatchHeader> {
        let map = self.mapping()?;
        self.batch_ahead(self.data(&map, end_position)?, position, expected_base, checked_end)
    }

    /// [`Segment::batch_at`] for a reader walking in order: a batch due for
    /// its check is checked as there, and so is the run of batches after it
    /// (up to [`CHECK_AHEAD_BYTES`] on), recorded in `checked_end` and,
    /// when the run starts at the segment's check-once bound, in that bound
    /// with one atomic update for the whole run instead of one per batch.
    #[inline]
    fn batch_ahead(
        self: &Arc<Self>,
        data: &[u8],
        position: u64,
        expected_base: u64,
        checked_end: &mut u64,
    ) -> Result<BatchHeader> {
        let due = position >= *checked_end
            && position < self.unchecked_end
            && position >= self.checked_to.load(Ordering::Acquire)
            && {
                // A background checker may have checked it.
                self.join_checked_ahead();
                position >= self.checked_to.load(Ordering::Acquire)
            };
        if !due {
            // What the segment knows to be good, the walker may step over
            // on its own too: batches written by this process (all of the
            // visible ones from `unchecked_end` on) or checked by others.
            let known = if position >= self.unchecked_end {
                data.len() as u64
            } else {
                self.checked_to.load(Ordering::Acquire)
            };
            *checked_end = (*checked_end).max(known);
            return self.checked_batch_at(data, position, expected_base);
        }
        // The batch itself fails exactly as `batch_at` would make it fail.
        let header = self.batch_at(data, position, expected_base)?;
        let first_end = position + header.batch_len as u64;
        let (run_end, _) = self.check_run(data, first_end, header.next_offset(), CHECK_AHEAD_BYTES);
        // `batch_at` moved the bound past the first batch if it was at
        // `position`; the run joins it only if nothing moved it since.
        let _ = self
            .checked_to
            .compare_exchange(first_end, run_end, Ordering::AcqRel, Ordering::Relaxed);
        self.join_checked_ahead();
        *checked_end = run_end;
        self.start_checker(run_end, self.unchecked_end.min(data.len() as u64));
        Ok(header)
    }

    /// Checks (CRC and structure, as [`format::validate_batch`]) the
    /// batches of `data` from `position` (which must hold offset
    /// `expected`) while they start less than `bytes` past `position`, and
    /// returns where the intact ones end and the offset expected there.
    /// Stops silently at the first failure: a reader reports it when it
    /// gets there, from its own check of that batch, exactly as without
    /// checking ahead.
    pub(super) fn check_run(&self, data: &[u8], mut position: u64, mut expected: u64, bytes: u64) -> (u64, u64) {
        let limit = (position + bytes).min(self.unchecked_end).min(data.len() as u64);
        while position < limit {
            match format::validate_batch(&data[position as usize..], expected) {
                Ok(header) => {
                    position += header.batch_len as u64;
                    expected = header.next_offset();
                }
                Err(_) => break,
            }
        }
        (position, expected)
    }
}
