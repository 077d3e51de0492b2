//! The writing side of the active segment: creating a segment file,
//! encoding batches straight into its mapping (or copying verbatim ones),
//! and sealing it. Only one `SegmentWriter` exists per segment.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::fs::{Durability, preallocate, replace_file};
use super::index::{IndexBuilder, SparseIndex, capacity_for};
use super::index_file::{self, SegmentSummary};
use super::layout::{SegmentFile, segment_path};
use super::mapping::{MapCache, MapSlot};
use super::mmap::{MapWriter, MappedFile};
use super::scan::{Check, scan};
use super::segment::{Segment, SegmentParts};
use super::spare::Spare;
use crate::error::{Error, Result};
use crate::format::{
    self, BatchHeader, NewRecord, SEGMENT_HEADER_BYTES, SegmentHeader, batch_checksum, encode_segment_header,
};

/// The state of an active segment's end, from a scan or its index files.
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

impl ActiveTail {
    /// The summary of a segment based at `base_offset` that ends here.
    pub(crate) fn summary(&self, base_offset: u64) -> SegmentSummary {
        SegmentSummary {
            base_offset,
            end_position: self.end_position,
            next_offset: self.next_offset,
            max_timestamp_ms: self.builder.max_timestamp_ms,
            last_epoch: self.last_epoch,
        }
    }
}

/// The smallest step the file of the active segment grows by.
const ALLOCATION_STEP_MIN_BYTES: u64 = 1 << 20;
/// The largest step.
pub(crate) const ALLOCATION_STEP_MAX_BYTES: u64 = 64 << 20;

/// How far to allocate a segment file of `capacity` bytes whose data must
/// reach `needed`: `needed` plus a step as large as what is there, between
/// 1 MiB and 64 MiB, so a small log takes about a megabyte on disk and a
/// busy one extends its file a few times per segment.
pub(crate) fn allocation_for(needed: u64, capacity: u64) -> u64 {
    needed.saturating_add(allocation_step(needed)).min(capacity).max(needed)
}

/// The step a file allocated up to `allocated` grows by next.
pub(crate) fn allocation_step(allocated: u64) -> u64 {
    allocated.clamp(ALLOCATION_STEP_MIN_BYTES, ALLOCATION_STEP_MAX_BYTES)
}

/// Prepares the file of an active segment (mmap invariant 5): blocks
/// allocated over `[0, allocated)`, and the file at least `capacity` bytes
/// long (sparse past the allocation), so a mapping of `capacity` bytes
/// lies inside the file.
///
/// # Errors
///
/// [`Error::Io`] if `fallocate` or the resize fails (a full disk).
pub(crate) fn allocate_active(file: &File, path: &Path, allocated: u64, capacity: u64) -> Result<()> {
    preallocate(file, path, 0..allocated)?;
    let len = file.metadata().map_err(|e| Error::io("stat segment", path, e))?.len();
    if len < capacity {
        file.set_len(capacity).map_err(|e| Error::io("size segment", path, e))?;
    }
    Ok(())
}

/// What every segment of one log shares.
#[derive(Debug, Clone)]
pub(crate) struct SegmentConfig<'a> {
    pub dir: &'a Path,
    pub log_id: u64,
    pub capacity_bytes: u64,
    pub index_interval_bytes: u32,
    pub cache: &'a Arc<MapCache>,
    /// Reset generation written into new segment headers.
    pub generation: u64,
}

impl SegmentConfig<'_> {
    /// The mapping length of an active segment whose data reaches `end`:
    /// the configured size, or more if the data already exceeds it.
    pub(crate) fn capacity_for(&self, end: u64) -> u64 {
        self.capacity_bytes.max(end)
    }
}

/// The writing side of the active segment.
#[derive(Debug)]
pub(crate) struct SegmentWriter {
    segment: Arc<Segment>,
    writer: MapWriter,
    file: File,
    position: u64,
    next_offset: u64,
    builder: IndexBuilder,
}

impl SegmentWriter {
    /// Creates a new segment file at `base_offset` holding `initial` (already
    /// encoded, valid batches; usually empty), allocated for its first step
    /// (see [`allocation_for`]); the mapping spans the whole configured
    /// capacity. The file appears under its final name only once complete
    /// and durable, replacing any segment of the same base.
    pub(crate) fn create(
        config: &SegmentConfig<'_>,
        base_offset: u64,
        initial: &[u8],
    ) -> Result<(Arc<Segment>, SegmentWriter)> {
        SegmentWriter::create_with(config, base_offset, initial, Durability::Synced)
    }

    /// [`SegmentWriter::create`] of an empty segment, without syncing the
    /// file or the directory: a crash may leave no file, or one whose
    /// header reads as zeros. The caller makes it durable later (see
    /// `log::seal`).
    pub(crate) fn create_unsynced(
        config: &SegmentConfig<'_>,
        base_offset: u64,
    ) -> Result<(Arc<Segment>, SegmentWriter)> {
        SegmentWriter::create_with(config, base_offset, &[], Durability::Unsynced)
    }

    /// [`SegmentWriter::create_unsynced`] from a [`Spare`] file prepared
    /// ahead: writes the header into it and renames it to the segment's
    /// name, with nothing to create or allocate here. Crash semantics are
    /// those of `create_unsynced`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if writing the header, the rename or the mapping
    /// fails; the caller may fall back to `create_unsynced`, which
    /// replaces whatever this left under the segment's name.
    pub(crate) fn create_from_spare(
        config: &SegmentConfig<'_>,
        base_offset: u64,
        spare: Spare,
    ) -> Result<(Arc<Segment>, SegmentWriter)> {
        let path = segment_path(config.dir, base_offset, SegmentFile::Data);
        let end = SEGMENT_HEADER_BYTES as u64;
        let capacity = spare.capacity_bytes();
        debug_assert_eq!(
            capacity,
            config.capacity_for(end),
            "a spare is prepared for this log's segments"
        );
        let header = SegmentHeader {
            base_offset,
            log_id: config.log_id,
            generation: config.generation,
        };
        spare
            .file()
            .write_all_at(&encode_segment_header(&header), 0)
            .map_err(|e| Error::io("write segment header", &path, e))?;
        index_file::remove(config.dir, base_offset)?;
        let file = spare.take_as(&path)?;
        let map = MappedFile::map(&file, &path, capacity, end)?;
        let tail = ActiveTail {
            end_position: end,
            unchecked_end: end,
            next_offset: base_offset,
            last_epoch: 0,
            index: SparseIndex::with_capacity(capacity_for(capacity, config.index_interval_bytes)),
            builder: IndexBuilder::new(config.index_interval_bytes),
        };
        SegmentWriter::activate(config, base_offset, (file, capacity), map, tail)
    }

    fn create_with(
        config: &SegmentConfig<'_>,
        base_offset: u64,
        initial: &[u8],
        durability: Durability,
    ) -> Result<(Arc<Segment>, SegmentWriter)> {
        let path = segment_path(config.dir, base_offset, SegmentFile::Data);
        let end = (SEGMENT_HEADER_BYTES + initial.len()) as u64;
        let capacity = config.capacity_for(end);
        let allocated = allocation_for(end, capacity);
        let file = replace_file(&path, durability, |file, tmp| {
            let header = SegmentHeader {
                base_offset,
                log_id: config.log_id,
                generation: config.generation,
            };
            let mut head = encode_segment_header(&header).to_vec();
            head.extend_from_slice(initial);
            file.write_all_at(&head, 0)
                .map_err(|e| Error::io("write segment header", tmp, e))?;
            allocate_active(file, tmp, allocated, capacity)?;
            index_file::remove(config.dir, base_offset)
        })?;
        let map = MappedFile::map(&file, &path, capacity, end)?;
        let data = map.view(0..end).expect("initial bytes are frozen");
        let index = SparseIndex::with_capacity(capacity_for(capacity, config.index_interval_bytes));
        let mut builder = IndexBuilder::new(config.index_interval_bytes);
        let scanned = scan(
            data,
            SEGMENT_HEADER_BYTES as u64,
            base_offset,
            None,
            Check::Full,
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
        SegmentWriter::activate(config, base_offset, (file, allocated), map, tail)
    }

    /// Opens a segment found on disk as the active one. The file must be
    /// valid up to `tail.end_position` and prepared by [`allocate_active`]
    /// with `allocated` and [`SegmentConfig::capacity_for`].
    pub(crate) fn open_active(
        config: &SegmentConfig<'_>,
        base_offset: u64,
        (file, allocated): (File, u64),
        tail: ActiveTail,
    ) -> Result<(Arc<Segment>, SegmentWriter)> {
        let path = segment_path(config.dir, base_offset, SegmentFile::Data);
        let capacity = config.capacity_for(tail.end_position);
        let map = MappedFile::map(&file, &path, capacity, tail.end_position)?;
        SegmentWriter::activate(config, base_offset, (file, allocated), map, tail)
    }

    fn activate(
        config: &SegmentConfig<'_>,
        base_offset: u64,
        (file, allocated): (File, u64),
        map: Arc<MappedFile>,
        tail: ActiveTail,
    ) -> Result<(Arc<Segment>, SegmentWriter)> {
        let writer = map.writer(allocated).expect("a fresh mapping has no writer yet");
        let slot = MapSlot::pinned(&file, map, config.cache)?;
        let segment = Segment::new(SegmentParts {
            base_offset,
            dir: config.dir.to_path_buf(),
            slot,
            end_position: tail.end_position,
            next_offset: tail.next_offset,
            max_timestamp_ms: tail.builder.max_timestamp_ms,
            last_epoch: tail.last_epoch,
            unchecked_end: tail.unchecked_end,
            index_interval_bytes: config.index_interval_bytes,
            index: Some(tail.index),
            persist_index: true,
        });
        let writer = SegmentWriter {
            segment: Arc::clone(&segment),
            writer,
            file,
            position: tail.end_position,
            next_offset: tail.next_offset,
            builder: tail.builder,
        };
        Ok((segment, writer))
    }

    /// The segment being written.
    pub(crate) fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }

    /// The mapping being written.
    pub(crate) fn mapping(&self) -> &Arc<MappedFile> {
        self.writer.mapping()
    }

    /// Offset the next batch gets.
    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Write position (end of the data).
    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    /// Bytes left before the segment is full.
    pub(crate) fn remaining(&self) -> u64 {
        self.writer.mapping().len() - self.position
    }

    /// Turns read-around on faults of the mapping on or off (see
    /// [`MapWriter::set_read_around`]).
    pub(crate) fn set_read_around(&self, on: bool) {
        self.writer.set_read_around(on);
    }

    /// Makes sure the next `bytes` bytes are allocated, extending the file
    /// by the next step if not. The caller checked they fit the segment.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `fallocate` fails (a full disk): nothing was written.
    pub(crate) fn reserve(&mut self, bytes: u64) -> Result<()> {
        let needed = self.position + bytes;
        if needed <= self.writer.allocated() {
            return Ok(());
        }
        self.writer
            .mapping()
            .allocate_to(allocation_for(needed, self.writer.mapping().len()))
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
        self.publish(start, &header);
        header
    }

    /// Copies batches the caller has validated (contiguous from
    /// `next_offset`, each with its header in `headers`) byte for byte,
    /// then publishes them. The caller checked that they fit.
    pub(crate) fn append_encoded(&mut self, bytes: &[u8], headers: &[BatchHeader]) {
        let start = self.position;
        assert!(
            start + bytes.len() as u64 <= self.writer.mapping().len(),
            "append past the segment's capacity"
        );
        self.writer.write(start, bytes);
        let mut position = start;
        for header in headers {
            debug_assert_eq!(
                format::validate_batch(
                    self.writer.unfrozen(position..position + header.batch_len as u64),
                    self.next_offset
                ),
                Ok(*header)
            );
            self.publish(position, header);
            position += header.batch_len as u64;
        }
    }

    /// Freezes the batch at `start` and makes it visible to readers.
    #[inline(always)]
    fn publish(&mut self, start: u64, header: &BatchHeader) {
        let end = start + header.batch_len as u64;
        self.writer.freeze(end);
        let segment = &self.segment;
        self.builder
            .observe(segment.index(), segment.base_offset(), start, header);
        // Only the segment's writer raises it: a compare and a plain store
        // instead of `fetch_max` (a locked compare-and-swap on every append).
        if header.max_timestamp_ms > segment.max_timestamp_ms.load(Ordering::Relaxed) {
            segment
                .max_timestamp_ms
                .store(header.max_timestamp_ms, Ordering::Release);
        }
        segment.last_epoch.store(header.leader_epoch, Ordering::Release);
        segment.publish_end(end, header.next_offset());
        self.position = end;
        self.next_offset = header.next_offset();
    }

    /// Makes the segment durable and final: syncs its data, trims the
    /// preallocated tail (past the frozen bytes; the caller has stopped
    /// pre-faulting it), syncs the new length, writes the index files, and
    /// lets the mapping cache unmap it from now on.
    pub(crate) fn seal(&self) -> Result<()> {
        self.sync_and_trim()?;
        self.segment.write_index_files()?;
        self.segment.slot().unpin();
        Ok(())
    }

    /// Syncs the data and trims the file to it, leaving the segment active
    /// (for a clean close).
    pub(crate) fn sync_and_trim(&self) -> Result<()> {
        let path = self.segment.path();
        // Unmapped first, the pages are written back without a TLB flush
        // each (see `MappedFile::unmap_pages`); advice only, so a failure
        // only costs those flushes.
        let _ = self.writer.mapping().unmap_pages(0..self.position);
        self.writer.mapping().flush(0..self.position)?;
        self.file
            .set_len(self.position)
            .map_err(|e| Error::io("trim segment", path, e))?;
        self.file.sync_data().map_err(|e| Error::io("fsync segment", path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::layout::{SegmentFile, segment_path};

    fn append_values(writer: &mut SegmentWriter, values: &[&[u8]]) -> BatchHeader {
        let records: Vec<NewRecord<'_>> = values
            .iter()
            .map(|v| NewRecord::new(v).timestamp_ms(v.len() as i64))
            .collect();
        writer.append(&records, 1, 0)
    }

    fn config<'a>(
        dir: &'a Path,
        cache: &'a Arc<MapCache>,
        capacity_bytes: u64,
        index_interval_bytes: u32,
    ) -> SegmentConfig<'a> {
        SegmentConfig {
            dir,
            log_id: 7,
            capacity_bytes,
            index_interval_bytes,
            cache,
            generation: 0,
        }
    }

    #[test]
    fn append_read_and_locate() {
        let dir = tempfile::tempdir().unwrap();
        let cache = MapCache::new(4);
        let (segment, mut writer) = SegmentWriter::create(&config(dir.path(), &cache, 1 << 16, 128), 100, &[]).unwrap();
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
    fn verbatim_batches_read_back_identically() {
        let dir = tempfile::tempdir().unwrap();
        let cache = MapCache::new(4);
        let (segment, mut writer) = SegmentWriter::create(&config(dir.path(), &cache, 1 << 16, 128), 0, &[]).unwrap();
        let mut bytes = format::encode_batch_to_vec(&[NewRecord::new(b"a"), NewRecord::new(b"b")], 0, 3, 5);
        bytes.extend(format::encode_batch_to_vec(&[NewRecord::new(b"c")], 2, 4, 6));
        let headers = [
            format::validate_batch(&bytes, 0).unwrap(),
            format::validate_batch(&bytes[bytes.len() - 65..], 2).unwrap(),
        ];
        writer.append_encoded(&bytes, &headers);
        assert_eq!(segment.next_offset(), 3);
        assert_eq!(segment.last_epoch(), 4);
        let stored = segment
            .mapping()
            .unwrap()
            .view(64..64 + bytes.len() as u64)
            .unwrap()
            .to_vec();
        assert_eq!(stored, bytes);
        assert_eq!(segment.read(2).unwrap().unwrap().value(), &b"c"[..]);
    }

    #[test]
    fn seal_trims_and_reopens_from_index_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = MapCache::new(4);
        let (segment, mut writer) = SegmentWriter::create(&config(dir.path(), &cache, 1 << 16, 64), 0, &[]).unwrap();
        for _ in 0..100 {
            append_values(&mut writer, &[b"0123456789"]);
        }
        let end = writer.position();
        writer.seal().unwrap();
        let path = segment_path(dir.path(), 0, SegmentFile::Data);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), end);
        let summary = index_file::read_summary(dir.path(), 0).unwrap();
        assert_eq!(summary, segment.summary());
        let slot = MapSlot::unmapped(&File::open(&path).unwrap(), &path, &cache).unwrap();
        let reopened = Segment::sealed(dir.path(), slot, &summary, 64);
        assert_eq!(reopened.read(57).unwrap().unwrap().value(), &b"0123456789"[..]);
    }
}
