//! Reading stored batches byte for byte, for a replication leader.

use super::Log;
use crate::error::{Error, Result};
use crate::read::{EncodedRun, encoded_run};

impl Log {
    /// The stored bytes of whole batches, from the batch holding `from`, as
    /// one zero-copy run: for a leader that ships its log byte for byte
    /// (feed the bytes to [`Log::append_encoded`] on a replica).
    ///
    /// The run holds at least the first batch, whatever its size, then as
    /// many following batches as keep it within `max_bytes`; it never
    /// crosses a segment boundary (the next call continues in the next
    /// segment). `Ok(None)` when `from` is `next_offset()`. The first batch
    /// may start before `from` if `from` is inside it.
    ///
    /// Cost: a look-up of the batch holding `from` (as [`Log::read`]), then
    /// a header read per batch; each batch's checksum is checked once per
    /// process, the first time any reader reads it. No copy.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> replog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let log = replog::Log::open(dir.path(), replog::Options::default())?;
    /// log.append_batch([&b"a"[..], b"b"])?;
    /// log.append(b"c")?;
    /// let run = log.encoded_batches(0, 1 << 20)?.expect("the log is not empty");
    /// assert_eq!((run.first.base_offset, run.next_offset), (0, 3));
    /// assert_eq!(log.encoded_batches(3, 1 << 20)?.map(|r| r.next_offset), None);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::OffsetOutOfRange`] unless `start_offset() <= from <=
    /// next_offset()`; [`Error::Corrupt`] if the first batch fails its
    /// check (a later one that fails ends the run before it).
    pub fn encoded_batches(&self, from: u64, max_bytes: u64) -> Result<Option<EncodedRun>> {
        let (segments, end) = self.read_snapshot(from)?;
        if from == end {
            return Ok(None);
        }
        encoded_run(segments, from, end, max_bytes).map_err(|error| match error {
            Error::OffsetOutOfRange { .. } => self.out_of_range(from),
            other => other,
        })
    }
}
