//! One segment: a file of batches that starts at a base offset, shared by
//! the log's single writer (through a `SegmentWriter`) and any number of
//! readers. Its mapping lives in a [`MapSlot`]: always mapped while the
//! segment is active, mapped on demand once it is sealed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::index::{IndexBuilder, IndexEntry, SparseIndex, capacity_for};
use super::index_file::{self, SegmentSummary};
use super::layout::{SegmentFile, segment_path};
use super::mapping::MapSlot;
use super::mmap::MappedFile;
use super::scan::{Check, scan};
use crate::error::{Damage, Error, Result};
use crate::format::{self, BATCH_HEADER_BYTES, BatchHeader, RecordDecoder, SEGMENT_HEADER_BYTES};
use crate::record::Record;

mod ahead;
mod checker;

/// One segment, shared by the writer and any number of readers.
#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: u64,
    dir: PathBuf,
    slot: Arc<MapSlot>,
    /// End of the visible batches and one past the last visible record,
    /// packed in one atomic (see [`SegmentEnd`]) so readers always get a
    /// matching pair. Only grows: truncation makes a new `Segment` instead.
    end: AtomicU64,
    /// Largest visible record timestamp (`i64::MAX` when unknown because of
    /// damage, so timestamp lookups still visit and report it). Raised only
    /// by the segment's one writer (`SegmentWriter::publish`).
    pub(super) max_timestamp_ms: AtomicI64,
    /// Leader epoch of the last visible batch.
    pub(super) last_epoch: AtomicU64,
    /// Batches starting below this were written by an earlier process and
    /// not checked yet (since recovery checked only past the recovery point);
    /// `u64::MAX` for sealed segments found on disk. Batches past it were
    /// written or checked by this process.
    unchecked_end: u64,
    /// Of the unchecked batches, those starting below this were checked
    /// (CRC and structure) by a reader since; it advances batch by batch,
    /// or a run of batches at a time (see `ahead::CHECK_AHEAD_BYTES`).
    checked_to: AtomicU64,
    /// A run of unchecked batches `[start, end)` that a background checker
    /// has checked ahead of the readers, not yet joined to `checked_to`
    /// (see the `checker` module); empty when `start == end`.
    checked_ahead: parking_lot::Mutex<(u64, u64)>,
    /// Whether a background checker is running for this segment.
    checker_running: AtomicBool,
    index_interval_bytes: u32,
    /// Loaded on first lookup for sealed segments; set at once for the active one.
    index: OnceLock<SparseIndex>,
    /// Whether a rebuilt index is written to its files (not when read-only).
    persist_index: bool,
}

/// What a new `Segment` starts with.
pub(crate) struct SegmentParts {
    pub base_offset: u64,
    pub dir: PathBuf,
    pub slot: Arc<MapSlot>,
    pub end_position: u64,
    pub next_offset: u64,
    pub max_timestamp_ms: i64,
    pub last_epoch: u64,
    pub unchecked_end: u64,
    pub index_interval_bytes: u32,
    pub index: Option<SparseIndex>,
    pub persist_index: bool,
}

impl Segment {
    /// A segment from its parts.
    pub(crate) fn new(parts: SegmentParts) -> Arc<Segment> {
        Arc::new(Segment {
            base_offset: parts.base_offset,
            dir: parts.dir,
            slot: parts.slot,
            end: AtomicU64::new(SegmentEnd::pack(
                parts.base_offset,
                parts.end_position,
                parts.next_offset,
            )),
            max_timestamp_ms: AtomicI64::new(parts.max_timestamp_ms),
            last_epoch: AtomicU64::new(parts.last_epoch),
            unchecked_end: parts.unchecked_end,
            checked_to: AtomicU64::new(SEGMENT_HEADER_BYTES as u64),
            checked_ahead: parking_lot::Mutex::new((0, 0)),
            checker_running: AtomicBool::new(false),
            index_interval_bytes: parts.index_interval_bytes,
            index: parts.index.map_or_else(OnceLock::new, OnceLock::from),
            persist_index: parts.persist_index,
        })
    }

    /// A sealed segment found on disk, described by `summary`. Its batches
    /// are checked when first read, its index loaded on first lookup, and
    /// its file mapped on first use.
    #[cfg(test)]
    pub(crate) fn sealed(
        dir: &Path,
        slot: Arc<MapSlot>,
        summary: &SegmentSummary,
        index_interval_bytes: u32,
    ) -> Arc<Segment> {
        Segment::new(SegmentParts {
            base_offset: summary.base_offset,
            dir: dir.to_path_buf(),
            slot,
            end_position: summary.end_position,
            next_offset: summary.next_offset,
            max_timestamp_ms: summary.max_timestamp_ms,
            last_epoch: summary.last_epoch,
            unchecked_end: u64::MAX,
            index_interval_bytes,
            index: None,
            persist_index: true,
        })
    }

    /// First offset this segment may hold.
    pub(crate) fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// End of the visible batches and the offset found there, read together.
    pub(crate) fn end(&self) -> SegmentEnd {
        SegmentEnd::unpack(self.base_offset, self.end.load(Ordering::Acquire))
    }

    /// Publishes a new end (the writer, after the bytes are frozen).
    pub(super) fn publish_end(&self, end_position: u64, next_offset: u64) {
        self.end.store(
            SegmentEnd::pack(self.base_offset, end_position, next_offset),
            Ordering::Release,
        );
    }

    /// One past the last visible record.
    pub(crate) fn next_offset(&self) -> u64 {
        self.end().next_offset
    }

    /// End of the visible batches, in bytes (segment header included).
    pub(crate) fn end_position(&self) -> u64 {
        self.end().end_position
    }

    /// Largest record timestamp (`i64::MIN` if empty, `i64::MAX` if unknown).
    pub(crate) fn max_timestamp_ms(&self) -> i64 {
        self.max_timestamp_ms.load(Ordering::Acquire)
    }

    /// Leader epoch of the last batch (0 if empty).
    pub(crate) fn last_epoch(&self) -> u64 {
        self.last_epoch.load(Ordering::Acquire)
    }

    /// The mapping, mapped again if the cache had unmapped it.
    pub(crate) fn mapping(&self) -> Result<Arc<MappedFile>> {
        self.slot.get(self.end_position())
    }

    /// The slot holding the mapping.
    pub(crate) fn slot(&self) -> &Arc<MapSlot> {
        &self.slot
    }

    /// The segment's data file.
    pub(crate) fn path(&self) -> &Path {
        self.slot.path()
    }

    /// What the segment holds now, as written to its index file.
    pub(crate) fn summary(&self) -> SegmentSummary {
        let end = self.end();
        SegmentSummary {
            base_offset: self.base_offset,
            end_position: end.end_position,
            next_offset: end.next_offset,
            max_timestamp_ms: self.max_timestamp_ms(),
            last_epoch: self.last_epoch(),
        }
    }

    /// Writes the index files for the segment as it is now.
    pub(crate) fn write_index_files(&self) -> Result<()> {
        index_file::write(&self.dir, &self.summary(), &self.index().entries())
    }

    /// Removes the segment's data and index files (readers that hold the
    /// segment's mapping keep reading it: it outlives the directory entry).
    pub(crate) fn remove_files(&self) -> Result<()> {
        super::fs::remove_if_exists(&segment_path(&self.dir, self.base_offset, SegmentFile::Data))?;
        index_file::remove(&self.dir, self.base_offset)
    }

    /// The index, loaded from its files or rebuilt by scanning on first use.
    pub(crate) fn index(&self) -> &SparseIndex {
        self.index.get_or_init(|| self.load_or_rebuild_index())
    }

    fn load_or_rebuild_index(&self) -> SparseIndex {
        let summary = self.summary();
        if let Some(entries) = index_file::read(&self.dir, &summary) {
            return SparseIndex::from_entries(&entries);
        }
        let end = summary.end_position;
        let index = SparseIndex::with_capacity(capacity_for(end, self.index_interval_bytes));
        // Without the bytes, an empty index: lookups then scan from the
        // segment's start and report the failure themselves.
        let Ok(map) = self.mapping() else {
            return index;
        };
        let Some(data) = map.view(0..end) else {
            return index;
        };
        let mut builder = IndexBuilder::new(self.index_interval_bytes);
        let scanned = scan(
            data,
            SEGMENT_HEADER_BYTES as u64,
            self.base_offset,
            Some(summary.next_offset),
            Check::Full,
            |position, header| builder.observe(&index, self.base_offset, position, header),
        );
        self.checked_to.fetch_max(scanned.position, Ordering::AcqRel);
        if self.persist_index && scanned.damage.is_none() && scanned.next_offset == summary.next_offset {
            // Best effort: a failure to write only means rebuilding again.
            let _ = index_file::write(&self.dir, &summary, &index.entries());
        }
        index
    }

    /// Where to start walking batches from an index entry (or from the
    /// segment's first batch without one): a position and the offset there.
    pub(crate) fn walk_start(&self, entry: Option<IndexEntry>) -> (u64, u64) {
        entry.map_or((SEGMENT_HEADER_BYTES as u64, self.base_offset), |e| {
            (e.position as u64, self.base_offset + e.relative_offset as u64)
        })
    }

    /// The header of the batch at `position` of `data` (the segment's bytes
    /// from its start, up to the segment's end as the caller read it),
    /// which must start with offset `expected_base`; checks the whole batch
    /// unless it was checked before.
    #[inline]
    fn batch_at(&self, data: &[u8], position: u64, expected_base: u64) -> Result<BatchHeader> {
        if position < self.unchecked_end && position >= self.checked_to.load(Ordering::Acquire) {
            let corrupt = |damage| Error::corrupt(self.path(), position, damage);
            let data = data
                .get(position as usize..)
                .ok_or_else(|| corrupt(Damage::Truncated))?;
            let header = format::validate_batch(data, expected_base).map_err(corrupt)?;
            let batch_end = position + header.batch_len as u64;
            let _ = self
                .checked_to
                .compare_exchange(position, batch_end, Ordering::AcqRel, Ordering::Relaxed);
            return Ok(header);
        }
        self.checked_batch_at(data, position, expected_base)
    }

    /// The header of the batch at `position` of `data`, a batch checked
    /// before: as [`Segment::batch_at`] without the check.
    #[inline]
    fn checked_batch_at(&self, data: &[u8], position: u64, expected_base: u64) -> Result<BatchHeader> {
        let corrupt = |damage| Error::corrupt(self.path(), position, damage);
        let data = data
            .get(position as usize..)
            .ok_or_else(|| corrupt(Damage::Truncated))?;
        BatchHeader::decode_at(data, expected_base).map_err(corrupt)
    }

    /// Walks the batches from `position` (which holds offset `expected`) to
    /// the first for which `stop` holds, up to the segment's end as it is
    /// now. A walk that reaches the end of the bytes before the end's offset
    /// found missing records: that is `Corrupt` (a segment's end never
    /// shrinks, so it is not a race).
    pub(crate) fn walk(
        &self,
        position: u64,
        expected: u64,
        stop: impl FnMut(u64, &BatchHeader) -> bool,
    ) -> Result<Option<(u64, BatchHeader)>> {
        let map = self.mapping()?;
        self.walk_in(&map, position, expected, stop)
    }

    /// [`Segment::walk`] over the mapping `map`.
    fn walk_in(
        &self,
        map: &MappedFile,
        mut position: u64,
        mut expected: u64,
        mut stop: impl FnMut(u64, &BatchHeader) -> bool,
    ) -> Result<Option<(u64, BatchHeader)>> {
        let end = self.end();
        let data = self.data(map, end.end_position)?;
        while position < end.end_position {
            let header = self.batch_at(data, position, expected)?;
            if stop(position, &header) {
                return Ok(Some((position, header)));
            }
            position += header.batch_len as u64;
            expected = header.next_offset();
        }
        if expected < end.next_offset {
            return Err(Error::corrupt(
                self.path(),
                position,
                Damage::MissingRecords { offset: expected },
            ));
        }
        Ok(None)
    }

    /// Position and header of the batch that holds `offset`; `Ok(None)` if
    /// the segment does not hold it (for example, it was just truncated).
    pub(crate) fn locate(&self, offset: u64) -> Result<Option<(u64, BatchHeader)>> {
        self.locate_in(&*self.mapping()?, offset)
    }

    fn locate_in(&self, map: &MappedFile, offset: u64) -> Result<Option<(u64, BatchHeader)>> {
        if offset < self.base_offset || offset >= self.next_offset() {
            return Ok(None);
        }
        let entry = self.index().floor_offset((offset - self.base_offset) as u32);
        let (mut position, mut expected) = self.walk_start(entry);
        loop {
            let error = match self.walk_in(map, position, expected, |_, header| offset < header.next_offset()) {
                Err(error @ Error::Corrupt { .. }) => error,
                found => return found,
            };
            // Damage on the way: walk on from the next intact batch if
            // `offset` lies past the damage, else say where reading resumes.
            match self.resume_after(map, &error) {
                Some((at, header)) if header.base_offset <= offset => {
                    (position, expected) = (at, header.base_offset);
                }
                Some((_, header)) => return Err(error.resuming_at(header.base_offset)),
                None => return Err(error.resuming_at(self.next_offset())),
            }
        }
    }

    /// The first intact batch past the damage `error` reports (at a byte
    /// position of this segment), found through the index, whose entries
    /// point at real batch starts: bytes inside a record are never taken
    /// for a batch. `None` if no indexed batch after the damage is intact.
    fn resume_after(&self, map: &MappedFile, error: &Error) -> Option<(u64, BatchHeader)> {
        let Error::Corrupt { position, .. } = error else {
            return None;
        };
        let data = self.data(map, self.end().end_position).ok()?;
        self.index().entries_after(*position).find_map(|entry| {
            let at = entry.position as u64;
            let base = self.base_offset + entry.relative_offset as u64;
            let header = format::validate_batch(data.get(at as usize..)?, base).ok()?;
            Some((at, header))
        })
    }

    /// `error` (met reading this segment), saying where reading resumes.
    pub(crate) fn with_resume(&self, error: Error) -> Error {
        if !matches!(error, Error::Corrupt { resume_at: None, .. }) {
            return error;
        }
        let resume = self
            .mapping()
            .ok()
            .and_then(|map| self.resume_after(&map, &error))
            .map_or(self.next_offset(), |(_, header)| header.base_offset);
        error.resuming_at(resume)
    }

    /// A zero-copy handle on the checked batch at `position`.
    pub(crate) fn batch_bytes(&self, position: u64, header: &BatchHeader) -> Result<Bytes> {
        self.bytes_in(&self.mapping()?, position, header)
    }

    fn bytes_in(&self, map: &Arc<MappedFile>, position: u64, header: &BatchHeader) -> Result<Bytes> {
        map.bytes(position..position + header.batch_len as u64)
            .ok_or_else(|| Error::corrupt(self.path(), position, Damage::Truncated))
    }

    /// The segment's bytes `[0, end_position)` in `map`.
    fn data<'a>(&self, map: &'a MappedFile, end_position: u64) -> Result<&'a [u8]> {
        map.view(0..end_position)
            .ok_or_else(|| Error::corrupt(self.path(), end_position, Damage::Truncated))
    }

    /// Reads one record; `Ok(None)` if the segment does not hold `offset`.
    pub(crate) fn read(&self, offset: u64) -> Result<Option<Record>> {
        let map = self.mapping()?;
        let Some((position, header)) = self.locate_in(&map, offset)? else {
            return Ok(None);
        };
        let batch = self.bytes_in(&map, position, &header)?;
        let fields = format::nth_record(&batch, offset - header.base_offset)
            .map_err(|damage| Error::corrupt(self.path(), position, damage).resuming_at(header.next_offset()))?;
        Ok(Some(Record::from_batch(&batch, offset, header.leader_epoch, fields)))
    }

    /// Offset of the first record with a timestamp at or after `timestamp_ms`.
    /// Cost: an index lookup, then a walk over at most one index interval of
    /// batches and the records of one batch.
    pub(crate) fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>> {
        if self.max_timestamp_ms() < timestamp_ms {
            return Ok(None);
        }
        let (position, expected) = self.walk_start(self.index().floor_timestamp(timestamp_ms));
        let Some((position, header)) = self.walk(position, expected, |_, h| h.max_timestamp_ms >= timestamp_ms)? else {
            return Ok(None);
        };
        let batch = self.batch_bytes(position, &header)?;
        let corrupt = |damage| Error::corrupt(self.path(), position, damage);
        let mut records = RecordDecoder::new(&batch, BATCH_HEADER_BYTES);
        for offset in header.base_offset..header.next_offset() {
            let fields = records
                .next()
                .ok_or_else(|| corrupt(Damage::Truncated))?
                .map_err(corrupt)?;
            if fields.timestamp_ms >= timestamp_ms {
                return Ok(Some(offset));
            }
        }
        Err(corrupt(Damage::BadTimestamp))
    }

    /// A new, sealed view of this segment that ends at the batch at
    /// `position` (which starts with `offset`), for truncation. `self` is
    /// left as it was, so readers and iterators that hold it keep their
    /// snapshot; the bytes past the cut stay in the file, untouched, and are
    /// trimmed when the log is next opened.
    pub(crate) fn cut(&self, position: u64, offset: u64) -> Result<Arc<Segment>> {
        let relative = (offset - self.base_offset) as u32;
        let kept: Vec<_> = self
            .index()
            .entries()
            .into_iter()
            .filter(|e| e.relative_offset < relative)
            .collect();
        let cut = Segment::new(SegmentParts {
            base_offset: self.base_offset,
            dir: self.dir.clone(),
            slot: Arc::clone(&self.slot),
            end_position: position,
            next_offset: offset,
            max_timestamp_ms: self.max_timestamp_before(position, offset),
            last_epoch: self.epoch_before(position, offset),
            unchecked_end: self.unchecked_end,
            index_interval_bytes: self.index_interval_bytes,
            index: Some(SparseIndex::from_entries(&kept)),
            persist_index: self.persist_index,
        });
        cut.checked_to
            .store(self.checked_to.load(Ordering::Acquire).min(position), Ordering::Release);
        Ok(cut)
    }

    /// Largest timestamp of the batches before `position` (walking from
    /// the last index entry before it); `i64::MAX` if that fails.
    fn max_timestamp_before(&self, position: u64, offset: u64) -> i64 {
        let entry = self
            .index()
            .floor_offset((offset - self.base_offset).saturating_sub(1) as u32);
        let mut max = entry.map_or(i64::MIN, |e| e.max_timestamp_before_ms);
        let (start, expected) = self.walk_start(entry);
        let walked = self.walk(start, expected, |at, header| {
            if at >= position {
                return true;
            }
            max = max.max(header.max_timestamp_ms);
            false
        });
        if walked.is_err() { i64::MAX } else { max }
    }

    /// Epoch of the last batch before `position` (0 if none, or if the walk fails).
    fn epoch_before(&self, position: u64, offset: u64) -> u64 {
        if offset == self.base_offset {
            return 0;
        }
        let entry = self
            .index()
            .floor_offset((offset - self.base_offset).saturating_sub(1) as u32);
        let (start, expected) = self.walk_start(entry);
        let found = self.walk(start, expected, |at, header| at + header.batch_len as u64 >= position);
        found.ok().flatten().map_or(0, |(_, header)| header.leader_epoch)
    }
}

/// Where a segment's visible data ends: a byte position and the offset of
/// the record that would go there. Stored packed in one `u64` (position in
/// the low 32 bits, offset relative to the segment base in the high 32;
/// both fit, as segments are at most `u32::MAX` bytes and records take at
/// least 16 of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentEnd {
    /// End of the visible batches.
    pub end_position: u64,
    /// One past the last visible record.
    pub next_offset: u64,
}

impl SegmentEnd {
    fn pack(base_offset: u64, end_position: u64, next_offset: u64) -> u64 {
        let relative = next_offset - base_offset;
        assert!(
            end_position <= u32::MAX as u64 && relative <= u32::MAX as u64,
            "segment end out of bounds"
        );
        (relative << 32) | end_position
    }

    fn unpack(base_offset: u64, packed: u64) -> SegmentEnd {
        SegmentEnd {
            end_position: packed & u32::MAX as u64,
            next_offset: base_offset + (packed >> 32),
        }
    }
}
