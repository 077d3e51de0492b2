//! The sparse offset and time index of one segment, in memory.
//!
//! One entry every `index_interval_bytes` of batches: the batch's offset
//! relative to the segment base, its byte position, and the largest record
//! timestamp of the segment *before* that batch. Lookups binary-search the
//! entries, then the caller scans batches forward from the position found.
//!
//! The writer appends entries while readers search them, without a lock:
//! slots are atomics in a fixed-capacity array and the entry count is
//! published with `Release` after the slot is written. The array is
//! allocated in chunks as entries arrive, so the index of a segment that
//! may grow to 256 MiB costs a few hundred bytes until it does (a thousand
//! open logs would otherwise hold a megabyte each).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

/// Entries per chunk of the array (16 KiB).
const CHUNK_ENTRIES: usize = 1024;

/// One slot: the packed offset and position, and the timestamp.
#[derive(Debug, Default)]
struct Slot {
    offset_position: AtomicU64,
    max_timestamp_before_ms: AtomicI64,
}

use crate::format::BatchHeader;

/// One index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Base offset of the batch minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the segment file.
    pub position: u32,
    /// Largest timestamp in the segment before this batch (`i64::MIN` if none).
    pub max_timestamp_before_ms: i64,
}

/// A fixed-capacity, append-only array of
/// [`IndexEntry`], readable concurrently with appends.
#[derive(Debug)]
pub(crate) struct SparseIndex {
    /// `capacity` slots in chunks of [`CHUNK_ENTRIES`] (the last may be
    /// shorter), each allocated by the writer before its first entry.
    chunks: Box<[OnceLock<Box<[Slot]>>]>,
    capacity: usize,
    len: AtomicUsize,
}

impl SparseIndex {
    /// An empty index with room for `capacity` entries.
    pub(crate) fn with_capacity(capacity: usize) -> SparseIndex {
        SparseIndex {
            chunks: (0..capacity.div_ceil(CHUNK_ENTRIES)).map(|_| OnceLock::new()).collect(),
            capacity,
            len: AtomicUsize::new(0),
        }
    }

    /// An index holding exactly `entries`.
    pub(crate) fn from_entries(entries: &[IndexEntry]) -> SparseIndex {
        let index = SparseIndex::with_capacity(entries.len());
        for entry in entries {
            index.push(*entry);
        }
        index
    }

    /// Number of published entries.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Entry `i`, which must be below `len()`.
    pub(crate) fn get(&self, i: usize) -> IndexEntry {
        let slot = &self.chunks[i / CHUNK_ENTRIES]
            .get()
            .expect("the chunk of a published entry exists")[i % CHUNK_ENTRIES];
        let packed = slot.offset_position.load(Ordering::Relaxed);
        IndexEntry {
            relative_offset: (packed >> 32) as u32,
            position: packed as u32,
            max_timestamp_before_ms: slot.max_timestamp_before_ms.load(Ordering::Relaxed),
        }
    }

    /// All published entries, copied out.
    pub(crate) fn entries(&self) -> Vec<IndexEntry> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }

    /// Appends an entry (writer only). Returns false, and drops the entry, when
    /// the index is full: lookups then scan further, which is slower, not wrong.
    pub(crate) fn push(&self, entry: IndexEntry) -> bool {
        let len = self.len.load(Ordering::Relaxed);
        if len == self.capacity {
            return false;
        }
        let chunk_start = len / CHUNK_ENTRIES * CHUNK_ENTRIES;
        let chunk = self.chunks[len / CHUNK_ENTRIES].get_or_init(|| {
            let entries = CHUNK_ENTRIES.min(self.capacity - chunk_start);
            (0..entries).map(|_| Slot::default()).collect()
        });
        let slot = &chunk[len - chunk_start];
        let packed = ((entry.relative_offset as u64) << 32) | entry.position as u64;
        slot.offset_position.store(packed, Ordering::Relaxed);
        slot.max_timestamp_before_ms
            .store(entry.max_timestamp_before_ms, Ordering::Relaxed);
        // Publishes the slot (and the chunk, which `OnceLock` publishes too).
        self.len.store(len + 1, Ordering::Release);
        true
    }

    /// The last entry whose batch starts at or before `relative_offset`.
    pub(crate) fn floor_offset(&self, relative_offset: u32) -> Option<IndexEntry> {
        let after = self.partition_point(|e| e.relative_offset <= relative_offset);
        after.checked_sub(1).map(|i| self.get(i))
    }

    /// The entries whose batches start after byte `position`, in order.
    pub(crate) fn entries_after(&self, position: u64) -> impl Iterator<Item = IndexEntry> + '_ {
        let first = self.partition_point(|e| e.position as u64 <= position);
        (first..self.len()).map(|i| self.get(i))
    }

    /// The entry to start scanning from to find the first batch whose max
    /// timestamp is at least `timestamp_ms`: the last entry before which
    /// every timestamp is still below it.
    pub(crate) fn floor_timestamp(&self, timestamp_ms: i64) -> Option<IndexEntry> {
        let after = self.partition_point(|e| e.max_timestamp_before_ms < timestamp_ms);
        after.checked_sub(1).map(|i| self.get(i))
    }

    /// Number of leading entries for which `pred` holds (entries are sorted
    /// by offset, position and timestamp alike, so `pred` is monotone).
    fn partition_point(&self, pred: impl Fn(&IndexEntry) -> bool) -> usize {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            if pred(&self.get(mid)) {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }
}

/// Decides where index entries go, as batches are appended or scanned; the
/// same rule for both, so a rebuilt index equals the one written live.
#[derive(Debug, Clone)]
pub(crate) struct IndexBuilder {
    interval_bytes: u64,
    bytes_since_entry: u64,
    /// Largest timestamp seen in the segment so far.
    pub(crate) max_timestamp_ms: i64,
}

impl IndexBuilder {
    /// A builder for an empty segment.
    pub(crate) fn new(interval_bytes: u32) -> IndexBuilder {
        IndexBuilder {
            interval_bytes: interval_bytes as u64,
            // The first batch always gets an entry.
            bytes_since_entry: interval_bytes as u64,
            max_timestamp_ms: i64::MIN,
        }
    }

    /// A builder continuing a segment whose last index entry is
    /// `bytes_since_entry` bytes before its end.
    pub(crate) fn resume(interval_bytes: u32, bytes_since_entry: u64, max_timestamp_ms: i64) -> IndexBuilder {
        IndexBuilder {
            interval_bytes: interval_bytes as u64,
            bytes_since_entry,
            max_timestamp_ms,
        }
    }

    /// Records a batch at `position` of a segment based at `segment_base`,
    /// adding an index entry when the interval has passed.
    pub(crate) fn observe(&mut self, index: &SparseIndex, segment_base: u64, position: u64, header: &BatchHeader) {
        if self.bytes_since_entry >= self.interval_bytes {
            index.push(IndexEntry {
                relative_offset: (header.base_offset - segment_base) as u32,
                position: position as u32,
                max_timestamp_before_ms: self.max_timestamp_ms,
            });
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += header.batch_len as u64;
        self.max_timestamp_ms = self.max_timestamp_ms.max(header.max_timestamp_ms);
    }
}

/// Index capacity that can never fill for a segment of `segment_bytes`:
/// entries are at least `interval_bytes` apart.
pub(crate) fn capacity_for(segment_bytes: u64, interval_bytes: u32) -> usize {
    (segment_bytes / interval_bytes as u64 + 2) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(relative_offset: u32, position: u32, ts: i64) -> IndexEntry {
        IndexEntry {
            relative_offset,
            position,
            max_timestamp_before_ms: ts,
        }
    }

    #[test]
    fn floor_lookups() {
        let index = SparseIndex::from_entries(&[entry(0, 64, i64::MIN), entry(10, 4200, 50), entry(20, 8400, 90)]);
        assert_eq!(index.floor_offset(0).unwrap().position, 64);
        assert_eq!(index.floor_offset(9).unwrap().position, 64);
        assert_eq!(index.floor_offset(10).unwrap().position, 4200);
        assert_eq!(index.floor_offset(1000).unwrap().position, 8400);
        assert_eq!(index.floor_timestamp(10).unwrap().position, 64);
        assert_eq!(index.floor_timestamp(50).unwrap().position, 64);
        assert_eq!(index.floor_timestamp(51).unwrap().position, 4200);
        assert_eq!(index.floor_timestamp(1000).unwrap().position, 8400);
        assert!(SparseIndex::with_capacity(4).floor_offset(3).is_none());
    }

    #[test]
    fn full_index_refuses_more_entries() {
        let index = SparseIndex::with_capacity(2);
        assert!(index.push(entry(0, 64, 0)));
        assert!(index.push(entry(5, 100, 0)));
        assert!(!index.push(entry(9, 200, 0)));
        assert_eq!(index.entries()[1].relative_offset, 5);
    }

    #[test]
    fn entries_span_chunks_and_fill_a_capacity_that_is_not_a_multiple() {
        let capacity = 2 * CHUNK_ENTRIES + 3;
        let index = SparseIndex::with_capacity(capacity);
        for i in 0..capacity as u32 {
            assert!(index.push(entry(i * 2, 64 + i * 10, i64::from(i))));
        }
        assert!(!index.push(entry(u32::MAX, u32::MAX, 0)), "full");
        assert_eq!(index.len(), capacity);
        for i in [0, CHUNK_ENTRIES - 1, CHUNK_ENTRIES, 2 * CHUNK_ENTRIES + 2] {
            let got = index.get(i);
            assert_eq!(
                (got.relative_offset, got.max_timestamp_before_ms),
                (i as u32 * 2, i as i64)
            );
        }
        assert_eq!(
            index
                .floor_offset(2 * CHUNK_ENTRIES as u32 + 1)
                .unwrap()
                .relative_offset,
            2 * CHUNK_ENTRIES as u32
        );
    }

    #[test]
    fn builder_spaces_entries_by_interval() {
        let index = SparseIndex::with_capacity(capacity_for(1 << 20, 100));
        let mut builder = IndexBuilder::new(100);
        let mut position = 64;
        for i in 0..10u64 {
            let header = BatchHeader {
                batch_len: 60,
                record_count: 1,
                base_offset: 1000 + i,
                leader_epoch: 0,
                first_timestamp_ms: i as i64,
                max_timestamp_ms: i as i64,
            };
            builder.observe(&index, 1000, position, &header);
            position += 60;
        }
        let positions: Vec<u32> = index.entries().iter().map(|e| e.position).collect();
        assert_eq!(positions, vec![64, 184, 304, 424, 544]);
        assert_eq!(index.get(1).max_timestamp_before_ms, 1);
    }
}
