//! Reading newest first.

use super::Log;
use crate::read::{RevBatches, RevIter};

impl Log {
    /// Iterates over the records before `before`, newest first, back to the
    /// log's start: a timeline's latest posts. `log.iter_rev(log.next_offset())`
    /// starts at the newest record; `.take(n)` reads the last `n`.
    ///
    /// Same snapshot and error semantics as [`Log::iter`]: records appended
    /// later are not included, truncation and retention meanwhile do not
    /// disturb it, and after an error (damage, as [`Error::Corrupt`](crate::Error::Corrupt)) it
    /// ends. An offset outside `start_offset()..=next_offset()` yields one
    /// `Err(OffsetOutOfRange)`.
    ///
    /// Cost: per batch, as forward iteration; the walk goes back one index
    /// interval (`Options::index_interval_bytes`) at a time.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> replog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let log = replog::Log::open(dir.path(), replog::Options::default())?;
    /// for post in ["first", "second", "third"] {
    ///     log.append(post)?;
    /// }
    /// let latest: Vec<_> = log.iter_rev(log.next_offset()).take(2).collect::<Result<_, _>>()?;
    /// assert_eq!(latest[0].value(), "third");
    /// assert_eq!(latest[1].value(), "second");
    /// # Ok(()) }
    /// ```
    pub fn iter_rev(&self, before: u64) -> RevIter {
        RevIter::new(self.batches_rev(before), before)
    }

    /// Iterates over whole batches newest first, from the one holding
    /// `before - 1` back to the log's start; the first may end after
    /// `before - 1`. Zero-copy, with the semantics of [`Log::iter_rev`].
    pub fn batches_rev(&self, before: u64) -> RevBatches {
        match self.read_snapshot(before) {
            Ok((segments, _)) => {
                // As `read_snapshot` bounds the forward reads.
                let start = segments[0].base_offset().max(self.start_offset());
                RevBatches::new(segments, before, start)
            }
            Err(error) => RevBatches::failed(error),
        }
    }
}
