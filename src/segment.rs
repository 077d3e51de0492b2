//! One segment: a preallocated, memory-mapped file of batches that starts at
//! a base offset. Readers share a [`Segment`]; the log's single writer owns
//! the [`SegmentWriter`] of the active segment.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::format::{
    self, BATCH_HEADER_BYTES, BatchHeader, NewRecord, SEGMENT_HEADER_BYTES, batch_checksum, decode_record,
    encode_segment_header,
};
use crate::fsutil::{preallocate, sync_dir};
use crate::index::{IndexBuilder, SparseIndex, capacity_for};
use crate::index_file::{self, SegmentSummary, segment_file};
use crate::mmap::{MapWriter, MappedFile};
use crate::record::Record;

/// One segment, shared by the writer and any number of readers.
#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: u64,
    dir: PathBuf,
    file: File,
    map: Arc<MappedFile>,
    /// End of the visible batches and one past the last visible record,
    /// packed in one atomic (see [`Tail`]) so readers always get a matching
    /// pair. Only grows: truncation makes a new `Segment` instead.
    tail: AtomicU64,
    /// Largest visible record timestamp (`i64::MAX` when unknown because of
    /// damage, so timestamp lookups still visit and report it).
    max_timestamp_ms: AtomicI64,
    /// Leader epoch of the last visible batch.
    last_epoch: AtomicU64,
    /// Batches starting below this were written by an earlier process and
    /// not checked yet (since recovery checked only past the recovery point);
    /// `u64::MAX` for sealed segments found on disk. Batches past it were
    /// written or checked by this process.
    unchecked_end: u64,
    /// Of the unchecked batches, those starting below this were checked
    /// (CRC and structure) by a reader since; it advances batch by batch.
    checked_to: AtomicU64,
    index_interval_bytes: u32,
    /// Loaded on first lookup for sealed segments; set at once for the active one.
    index: OnceLock<SparseIndex>,
}

/// Where a batch scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanEnd {
    /// Position after the last valid batch.
    pub position: u64,
    /// One past the last valid record.
    pub next_offset: u64,
    /// Epoch of the last valid batch, if any batch was valid.
    pub last_epoch: Option<u64>,
    /// Largest timestamp of the valid batches scanned.
    pub max_timestamp_ms: i64,
    /// Set when the scan stopped at bytes that are not a valid batch (rather
    /// than at zeros, the end of the data, or the limit offset).
    pub damage: Option<&'static str>,
}

/// Walks the batches of a segment's bytes from `position`, expecting offset
/// `next_offset` first, calling `visit` for each valid batch. Stops at
/// zeros, the end of `data`, the first invalid batch, or once `limit_offset`
/// (the next segment's base) is reached.
pub(crate) fn scan(
    data: &[u8],
    mut position: u64,
    mut next_offset: u64,
    limit_offset: Option<u64>,
    mut visit: impl FnMut(u64, &BatchHeader),
) -> ScanEnd {
    let mut end = ScanEnd {
        position,
        next_offset,
        last_epoch: None,
        max_timestamp_ms: i64::MIN,
        damage: None,
    };
    loop {
        end.position = position;
        end.next_offset = next_offset;
        if limit_offset == Some(next_offset) {
            return end;
        }
        let rest = data.get(position as usize..).unwrap_or(&[]);
        let header_bytes = &rest[..rest.len().min(BATCH_HEADER_BYTES)];
        if header_bytes.iter().all(|&b| b == 0) {
            return end;
        }
        let header = match format::validate_batch(rest, next_offset) {
            Ok(header) => header,
            Err(reason) => {
                end.damage = Some(reason);
                return end;
            }
        };
        if limit_offset.is_some_and(|limit| header.next_offset() > limit) {
            end.damage = Some("batch runs past the next segment's base offset");
            return end;
        }
        visit(position, &header);
        end.last_epoch = Some(header.leader_epoch);
        end.max_timestamp_ms = end.max_timestamp_ms.max(header.max_timestamp_ms);
        position += header.batch_len as u64;
        next_offset = header.next_offset();
    }
}

impl Segment {
    /// Creates a new segment file at `base_offset` holding `initial` (already
    /// encoded, valid batches; usually empty), preallocated to `capacity`
    /// bytes. The file appears under its final name only once complete and
    /// durable, replacing any segment of the same base.
    pub(crate) fn create(
        dir: &Path,
        log_id: u64,
        base_offset: u64,
        capacity: u64,
        index_interval_bytes: u32,
        initial: &[u8],
    ) -> Result<(Arc<Segment>, SegmentWriter)> {
        let path = segment_file(dir, base_offset, "log");
        let tmp = segment_file(dir, base_offset, "log.tmp");
        let end = (SEGMENT_HEADER_BYTES + initial.len()) as u64;
        let capacity = capacity.max(end);
        let file = write_new_file(&tmp, log_id, base_offset, capacity, initial).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })?;
        index_file::remove(dir, base_offset)?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("rename segment", &path, e))?;
        sync_dir(dir)?;
        let map = MappedFile::map(&file, &path, capacity, end)?;
        let data = map.view(0..end).expect("initial bytes are frozen");
        let index = SparseIndex::with_capacity(capacity_for(capacity, index_interval_bytes));
        let mut builder = IndexBuilder::new(index_interval_bytes);
        let scanned = scan(
            data,
            SEGMENT_HEADER_BYTES as u64,
            base_offset,
            None,
            |position, header| builder.observe(&index, base_offset, position, header),
        );
        assert!(
            scanned.damage.is_none() && scanned.position == end,
            "initial batches of a new segment must be valid"
        );
        let tail = ActiveTail {
            end_position: end,
            unchecked_end: SEGMENT_HEADER_BYTES as u64,
            next_offset: scanned.next_offset,
            last_epoch: scanned.last_epoch.unwrap_or(0),
            index,
            builder,
        };
        Ok(Segment::activate(
            dir,
            base_offset,
            file,
            map,
            index_interval_bytes,
            tail,
        ))
    }

    /// Opens a segment found on disk as the active one. The file must be
    /// preallocated to `capacity` and valid up to `tail.end_position`.
    pub(crate) fn open_active(
        dir: &Path,
        base_offset: u64,
        file: File,
        capacity: u64,
        index_interval_bytes: u32,
        tail: ActiveTail,
    ) -> Result<(Arc<Segment>, SegmentWriter)> {
        let path = segment_file(dir, base_offset, "log");
        let map = MappedFile::map(&file, &path, capacity, tail.end_position)?;
        Ok(Segment::activate(
            dir,
            base_offset,
            file,
            map,
            index_interval_bytes,
            tail,
        ))
    }

    fn activate(
        dir: &Path,
        base_offset: u64,
        file: File,
        map: Arc<MappedFile>,
        index_interval_bytes: u32,
        tail: ActiveTail,
    ) -> (Arc<Segment>, SegmentWriter) {
        let writer = map.writer().expect("a fresh mapping has no writer yet");
        let segment = Arc::new(Segment {
            base_offset,
            dir: dir.to_path_buf(),
            file,
            map,
            tail: AtomicU64::new(Tail::pack(base_offset, tail.end_position, tail.next_offset)),
            max_timestamp_ms: AtomicI64::new(tail.builder.max_timestamp_ms),
            last_epoch: AtomicU64::new(tail.last_epoch),
            unchecked_end: tail.unchecked_end,
            checked_to: AtomicU64::new(SEGMENT_HEADER_BYTES as u64),
            index_interval_bytes,
            index: OnceLock::from(tail.index),
        });
        let writer = SegmentWriter {
            segment: Arc::clone(&segment),
            writer,
            position: tail.end_position,
            next_offset: tail.next_offset,
            builder: tail.builder,
        };
        (segment, writer)
    }

    /// Opens a sealed segment found on disk, described by `summary`. Its
    /// batches are checked when first read, its index loaded on first lookup.
    pub(crate) fn open_sealed(
        dir: &Path,
        file: File,
        summary: &SegmentSummary,
        index_interval_bytes: u32,
    ) -> Result<Arc<Segment>> {
        let path = segment_file(dir, summary.base_offset, "log");
        let map = MappedFile::map(&file, &path, summary.end_position, summary.end_position)?;
        Ok(Arc::new(Segment {
            base_offset: summary.base_offset,
            dir: dir.to_path_buf(),
            file,
            map,
            tail: AtomicU64::new(Tail::pack(
                summary.base_offset,
                summary.end_position,
                summary.next_offset,
            )),
            max_timestamp_ms: AtomicI64::new(summary.max_timestamp_ms),
            last_epoch: AtomicU64::new(summary.last_epoch),
            unchecked_end: u64::MAX,
            checked_to: AtomicU64::new(SEGMENT_HEADER_BYTES as u64),
            index_interval_bytes,
            index: OnceLock::new(),
        }))
    }

    /// First offset this segment may hold.
    pub(crate) fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// End of the visible batches and the offset found there, read together.
    pub(crate) fn tail(&self) -> Tail {
        Tail::unpack(self.base_offset, self.tail.load(Ordering::Acquire))
    }

    /// One past the last visible record.
    pub(crate) fn next_offset(&self) -> u64 {
        self.tail().next_offset
    }

    /// End of the visible batches, in bytes (segment header included).
    pub(crate) fn end_position(&self) -> u64 {
        self.tail().end_position
    }

    /// Largest record timestamp (`i64::MIN` if empty, `i64::MAX` if unknown).
    pub(crate) fn max_timestamp_ms(&self) -> i64 {
        self.max_timestamp_ms.load(Ordering::Acquire)
    }

    /// Leader epoch of the last batch (0 if empty).
    pub(crate) fn last_epoch(&self) -> u64 {
        self.last_epoch.load(Ordering::Acquire)
    }

    /// The mapping (for syncing).
    pub(crate) fn mapping(&self) -> &Arc<MappedFile> {
        &self.map
    }

    /// The segment's data file.
    pub(crate) fn path(&self) -> &Path {
        self.map.path()
    }

    /// What the segment holds now, as written to its index file.
    pub(crate) fn summary(&self) -> SegmentSummary {
        let tail = self.tail();
        SegmentSummary {
            base_offset: self.base_offset,
            end_position: tail.end_position,
            next_offset: tail.next_offset,
            max_timestamp_ms: self.max_timestamp_ms(),
            last_epoch: self.last_epoch(),
        }
    }

    /// Writes the index files for the segment as it is now.
    pub(crate) fn write_index_files(&self) -> Result<()> {
        index_file::write(&self.dir, &self.summary(), &self.index().entries())
    }

    /// Removes the segment's data and index files (readers that hold the
    /// segment keep reading it: the mapping outlives the directory entry).
    pub(crate) fn remove_files(&self) -> Result<()> {
        let path = self.path();
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove segment", path, e)),
        }
        index_file::remove(&self.dir, self.base_offset)
    }

    /// The index, loaded from its files or rebuilt by scanning on first use.
    fn index(&self) -> &SparseIndex {
        self.index.get_or_init(|| self.load_or_rebuild_index())
    }

    fn load_or_rebuild_index(&self) -> SparseIndex {
        let summary = self.summary();
        if let Some(entries) = index_file::read(&self.dir, &summary) {
            return SparseIndex::from_entries(&entries);
        }
        let end = summary.end_position;
        let index = SparseIndex::with_capacity(capacity_for(end, self.index_interval_bytes));
        let Some(data) = self.map.view(0..end) else {
            return index;
        };
        let mut builder = IndexBuilder::new(self.index_interval_bytes);
        let scanned = scan(
            data,
            SEGMENT_HEADER_BYTES as u64,
            self.base_offset,
            Some(summary.next_offset),
            |position, header| builder.observe(&index, self.base_offset, position, header),
        );
        self.checked_to.fetch_max(scanned.position, Ordering::AcqRel);
        if scanned.damage.is_none() && scanned.next_offset == summary.next_offset {
            // Best effort: a failure to write only means rebuilding again.
            let _ = index_file::write(&self.dir, &summary, &index.entries());
        }
        index
    }

    /// The header of the batch at `position`, which must start with offset
    /// `expected_base`; checks the whole batch unless it was checked before.
    fn batch_at(&self, position: u64, expected_base: u64) -> Result<BatchHeader> {
        let end = self.end_position();
        let corrupt = |reason| Error::corrupt(self.path(), position, reason);
        let data = self
            .map
            .view(position.min(end)..end)
            .ok_or_else(|| corrupt("batch beyond the end of the mapping"))?;
        if position < self.unchecked_end && position >= self.checked_to.load(Ordering::Acquire) {
            let header = format::validate_batch(data, expected_base).map_err(corrupt)?;
            let batch_end = position + header.batch_len as u64;
            let _ = self
                .checked_to
                .compare_exchange(position, batch_end, Ordering::AcqRel, Ordering::Relaxed);
            return Ok(header);
        }
        let header = BatchHeader::decode(data).map_err(corrupt)?;
        if header.batch_len as usize > data.len() {
            return Err(corrupt("batch runs past the end of the segment"));
        }
        if header.base_offset != expected_base {
            return Err(corrupt("batch base offset is not the expected next offset"));
        }
        Ok(header)
    }

    /// Position and header of the batch that holds `offset`; `Ok(None)` if
    /// the segment does not hold it (for example, it was just truncated).
    pub(crate) fn locate(&self, offset: u64) -> Result<Option<(u64, BatchHeader)>> {
        if offset < self.base_offset || offset >= self.next_offset() {
            return Ok(None);
        }
        let start = self.index().floor_offset((offset - self.base_offset) as u32);
        let (position, expected) = start.map_or((SEGMENT_HEADER_BYTES as u64, self.base_offset), |e| {
            (e.position as u64, self.base_offset + e.relative_offset as u64)
        });
        self.find_batch(position, expected, |header| offset < header.next_offset())
    }

    /// Scans forward from `position` to the first batch for which `found`
    /// holds, up to the segment's tail as it is now. A scan that reaches the
    /// end of the bytes before the tail's offset found missing data: that is
    /// `Corrupt` (a segment's tail never shrinks, so it is not a race).
    fn find_batch(
        &self,
        mut position: u64,
        mut expected: u64,
        found: impl Fn(&BatchHeader) -> bool,
    ) -> Result<Option<(u64, BatchHeader)>> {
        let tail = self.tail();
        while position < tail.end_position {
            let header = self.batch_at(position, expected)?;
            if found(&header) {
                return Ok(Some((position, header)));
            }
            position += header.batch_len as u64;
            expected = header.next_offset();
        }
        if expected < tail.next_offset {
            return Err(Error::corrupt(
                self.path(),
                position,
                "segment data ends before its last offset",
            ));
        }
        Ok(None)
    }

    /// A zero-copy handle on the checked batch at `position`.
    pub(crate) fn batch_bytes(self: &Arc<Self>, position: u64, header: &BatchHeader) -> Result<Bytes> {
        self.map
            .bytes(position..position + header.batch_len as u64)
            .ok_or_else(|| Error::corrupt(self.path(), position, "batch beyond the end of the mapping"))
    }

    /// The checked batch after the one at `position`, if the segment has one.
    pub(crate) fn next_batch(&self, position: u64, expected_base: u64) -> Result<Option<(u64, BatchHeader)>> {
        if position >= self.end_position() || expected_base >= self.next_offset() {
            return Ok(None);
        }
        self.batch_at(position, expected_base)
            .map(|header| Some((position, header)))
    }

    /// Reads one record; `Ok(None)` if the segment does not hold `offset`.
    pub(crate) fn read(self: &Arc<Self>, offset: u64) -> Result<Option<Record>> {
        let Some((position, header)) = self.locate(offset)? else {
            return Ok(None);
        };
        let batch = self.batch_bytes(position, &header)?;
        let fields = format::nth_record(&batch, offset - header.base_offset)
            .map_err(|reason| Error::corrupt(self.path(), position, reason))?;
        Ok(Some(Record::from_batch(&batch, offset, header.leader_epoch, fields)))
    }

    /// Offset of the first record with a timestamp at or after `timestamp_ms`.
    pub(crate) fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>> {
        if self.max_timestamp_ms() < timestamp_ms {
            return Ok(None);
        }
        let start = self.index().floor_timestamp(timestamp_ms);
        let (position, expected) = start.map_or((SEGMENT_HEADER_BYTES as u64, self.base_offset), |e| {
            (e.position as u64, self.base_offset + e.relative_offset as u64)
        });
        let Some((position, header)) = self.find_batch(position, expected, |h| h.max_timestamp_ms >= timestamp_ms)?
        else {
            return Ok(None);
        };
        let end = position + header.batch_len as u64;
        let batch = self
            .map
            .view(position..end)
            .ok_or_else(|| Error::corrupt(self.path(), position, "batch beyond the end"))?;
        let mut cursor = BATCH_HEADER_BYTES;
        for i in 0..header.record_count as u64 {
            let (fields, next) =
                decode_record(batch, cursor).map_err(|reason| Error::corrupt(self.path(), position, reason))?;
            if fields.timestamp_ms >= timestamp_ms {
                return Ok(Some(header.base_offset + i));
            }
            cursor = next;
        }
        Err(Error::corrupt(
            self.path(),
            position,
            "batch max timestamp above all its records",
        ))
    }

    /// A new, sealed view of this segment that ends at the batch at
    /// `position` (which starts with `offset`), for truncation. `self` is
    /// left as it was, so readers and iterators that hold it keep their
    /// snapshot; the bytes past the cut stay in the file, untouched, and are
    /// trimmed when the log is next opened.
    pub(crate) fn cut(&self, position: u64, offset: u64) -> Result<Arc<Segment>> {
        let file = self
            .file
            .try_clone()
            .map_err(|e| Error::io("dup segment file", self.path(), e))?;
        let relative = (offset - self.base_offset) as u32;
        let kept: Vec<_> = self
            .index()
            .entries()
            .into_iter()
            .filter(|e| e.relative_offset < relative)
            .collect();
        let index = OnceLock::from(SparseIndex::from_entries(&kept));
        let max_timestamp_ms = self.max_timestamp_before(position, offset);
        Ok(Arc::new(Segment {
            base_offset: self.base_offset,
            dir: self.dir.clone(),
            file,
            map: Arc::clone(&self.map),
            tail: AtomicU64::new(Tail::pack(self.base_offset, position, offset)),
            max_timestamp_ms: AtomicI64::new(max_timestamp_ms),
            last_epoch: AtomicU64::new(self.last_epoch()),
            unchecked_end: self.unchecked_end,
            checked_to: AtomicU64::new(self.checked_to.load(Ordering::Acquire).min(position)),
            index_interval_bytes: self.index_interval_bytes,
            index,
        }))
    }

    /// Largest timestamp of the batches before `position` (scanning from
    /// the last index entry before it); `i64::MAX` if that fails.
    fn max_timestamp_before(&self, position: u64, offset: u64) -> i64 {
        let start = self
            .index()
            .floor_offset((offset - self.base_offset).saturating_sub(1) as u32);
        let (mut at, mut expected, mut max) =
            start.map_or((SEGMENT_HEADER_BYTES as u64, self.base_offset, i64::MIN), |e| {
                (
                    e.position as u64,
                    self.base_offset + e.relative_offset as u64,
                    e.max_timestamp_before_ms,
                )
            });
        while at < position {
            let Ok(header) = self.batch_at(at, expected) else {
                return i64::MAX;
            };
            max = max.max(header.max_timestamp_ms);
            at += header.batch_len as u64;
            expected = header.next_offset();
        }
        max
    }

    /// Reads `len` bytes at `position` of the file (not the mapping).
    #[cfg(test)]
    pub(crate) fn read_file_at(&self, position: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, position)
            .map_err(|e| Error::io("read segment", self.path(), e))?;
        Ok(buf)
    }
}

/// Where a segment's visible data ends: a byte position and the offset of
/// the record that would go there. Stored packed in one `u64` (position in
/// the low 32 bits, offset relative to the segment base in the high 32;
/// both fit, as segments are at most `u32::MAX` bytes and records take at
/// least 16 of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tail {
    /// End of the visible batches.
    pub end_position: u64,
    /// One past the last visible record.
    pub next_offset: u64,
}

impl Tail {
    fn pack(base_offset: u64, end_position: u64, next_offset: u64) -> u64 {
        let relative = next_offset - base_offset;
        assert!(
            end_position <= u32::MAX as u64 && relative <= u32::MAX as u64,
            "segment tail out of bounds"
        );
        (relative << 32) | end_position
    }

    fn unpack(base_offset: u64, packed: u64) -> Tail {
        Tail {
            end_position: packed & u32::MAX as u64,
            next_offset: base_offset + (packed >> 32),
        }
    }
}

/// Writes a new segment file: header, `initial`, preallocation, fsync.
fn write_new_file(path: &Path, log_id: u64, base_offset: u64, capacity: u64, initial: &[u8]) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| Error::io("create segment", path, e))?;
    let mut head = encode_segment_header(base_offset, log_id).to_vec();
    head.extend_from_slice(initial);
    file.write_all_at(&head, 0)
        .map_err(|e| Error::io("write segment header", path, e))?;
    preallocate(&file, path, capacity)?;
    file.sync_data().map_err(|e| Error::io("fsync segment", path, e))?;
    Ok(file)
}

/// The state of an active segment's tail, from a scan or its index files.
#[derive(Debug)]
pub(crate) struct ActiveTail {
    /// End of the valid batches.
    pub end_position: u64,
    /// Batches starting below this were written by an earlier process and
    /// not checked by recovery; readers check them on first read.
    pub unchecked_end: u64,
    /// One past the last record.
    pub next_offset: u64,
    /// Epoch of the last batch (0 if none).
    pub last_epoch: u64,
    /// The index so far, with room to grow.
    pub index: SparseIndex,
    /// Where the next index entry goes.
    pub builder: IndexBuilder,
}

/// The writing side of the active segment. Only one exists per segment.
#[derive(Debug)]
pub(crate) struct SegmentWriter {
    segment: Arc<Segment>,
    writer: MapWriter,
    position: u64,
    next_offset: u64,
    builder: IndexBuilder,
}

impl SegmentWriter {
    /// The segment being written.
    pub(crate) fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }

    /// Write position (end of the data).
    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    /// Bytes left before the segment is full.
    pub(crate) fn remaining(&self) -> u64 {
        self.writer.mapping().len() - self.position
    }

    /// Encodes `records` as one batch straight into the mapping, checksums it
    /// in one pass, then publishes it. The caller checked that it fits.
    /// Returns the header written.
    pub(crate) fn append(&mut self, records: &[NewRecord<'_>], leader_epoch: u64, now_ms: i64) -> BatchHeader {
        let header = format::batch_header_for(records, self.next_offset, leader_epoch, now_ms);
        let start = self.position;
        let end = start + header.batch_len as u64;
        assert!(end <= self.writer.mapping().len(), "append past the segment's capacity");
        format::encode_batch(&mut self.writer.cursor(start), &header, records, now_ms);
        let crc = batch_checksum(self.writer.unfrozen(start..end));
        self.writer.write(start, &crc.to_le_bytes());
        debug_assert_eq!(
            format::validate_batch(self.writer.unfrozen(start..end), self.next_offset),
            Ok(header)
        );
        self.writer.freeze(end);

        let segment = &self.segment;
        self.builder
            .observe(segment.index(), segment.base_offset, start, &header);
        segment
            .max_timestamp_ms
            .fetch_max(header.max_timestamp_ms, Ordering::AcqRel);
        segment.last_epoch.store(leader_epoch, Ordering::Release);
        segment.tail.store(
            Tail::pack(segment.base_offset, end, header.next_offset()),
            Ordering::Release,
        );
        self.position = end;
        self.next_offset = header.next_offset();
        header
    }

    /// Makes the segment durable and final: syncs its data, trims the
    /// preallocated tail (past the frozen bytes; the caller has stopped
    /// pre-faulting it), syncs the new length, and writes the index files.
    pub(crate) fn seal(&self) -> Result<()> {
        let segment = &self.segment;
        let path = segment.path();
        segment.map.flush(0..self.position)?;
        segment
            .file
            .set_len(self.position)
            .map_err(|e| Error::io("trim segment", path, e))?;
        segment
            .file
            .sync_data()
            .map_err(|e| Error::io("fsync segment", path, e))?;
        segment.write_index_files()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append_values(writer: &mut SegmentWriter, values: &[&[u8]]) -> BatchHeader {
        let records: Vec<NewRecord<'_>> = values
            .iter()
            .map(|v| NewRecord::new(v).timestamp(v.len() as i64))
            .collect();
        writer.append(&records, 1, 0)
    }

    #[test]
    fn append_read_and_locate() {
        let dir = tempfile::tempdir().unwrap();
        let (segment, mut writer) = Segment::create(dir.path(), 7, 100, 1 << 16, 128, &[]).unwrap();
        for i in 0..50u64 {
            let value = format!("value-{i}");
            append_values(&mut writer, &[value.as_bytes(), b"x"]);
        }
        assert_eq!(segment.next_offset(), 200);
        for offset in 100..200u64 {
            let record = segment.read(offset).unwrap().unwrap();
            assert_eq!(record.offset(), offset);
            let want = if (offset - 100) % 2 == 1 {
                "x".to_string()
            } else {
                format!("value-{}", (offset - 100) / 2)
            };
            assert_eq!(record.value(), want.as_bytes());
        }
        assert!(segment.read(200).unwrap().is_none());
        assert!(segment.read(99).unwrap().is_none());
        assert_eq!(segment.offset_for_timestamp(2).unwrap(), Some(100));
        assert_eq!(
            segment.offset_for_timestamp(8).unwrap(),
            Some(120),
            "value-10 is the first 8-byte value"
        );
        assert_eq!(segment.offset_for_timestamp(9).unwrap(), None);
    }

    #[test]
    fn scan_stops_at_zeros_damage_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (segment, mut writer) = Segment::create(dir.path(), 7, 0, 8192, 128, &[]).unwrap();
        for _ in 0..3 {
            append_values(&mut writer, &[b"abc"]);
        }
        let end = segment.end_position();
        let mut bytes = segment.read_file_at(0, 8192).unwrap();
        let clean = scan(&bytes, 64, 0, None, |_, _| {});
        assert_eq!((clean.position, clean.next_offset, clean.damage), (end, 3, None));
        let limited = scan(&bytes, 64, 0, Some(2), |_, _| {});
        assert_eq!(limited.next_offset, 2);
        bytes[end as usize - 1] ^= 0xff;
        let damaged = scan(&bytes, 64, 0, None, |_, _| {});
        assert_eq!(damaged.next_offset, 2);
        assert_eq!(damaged.damage, Some("batch checksum mismatch"));
    }

    #[test]
    fn seal_trims_and_reopens_from_index_files() {
        let dir = tempfile::tempdir().unwrap();
        let (segment, mut writer) = Segment::create(dir.path(), 7, 0, 1 << 16, 64, &[]).unwrap();
        for _ in 0..100 {
            append_values(&mut writer, &[b"0123456789"]);
        }
        let end = writer.position();
        writer.seal().unwrap();
        let path = segment_file(dir.path(), 0, "log");
        assert_eq!(fs::metadata(&path).unwrap().len(), end);
        let summary = index_file::read_summary(dir.path(), 0).unwrap();
        assert_eq!(summary, segment.summary());
        let reopened = Segment::open_sealed(dir.path(), File::open(&path).unwrap(), &summary, 64).unwrap();
        assert_eq!(reopened.read(57).unwrap().unwrap().value(), &b"0123456789"[..]);
    }
}
