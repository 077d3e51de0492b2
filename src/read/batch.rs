//! [`Batch`]: one stored batch, zero-copy, with borrowed access to its
//! records.

use bytes::Bytes;

use crate::format::{BATCH_HEADER_BYTES, BatchHeader, batch_field, decode_record, nth_record, read_u32, read_u64};
use crate::record::Record;

/// A batch as stored in the log: the unit of appending, checksumming and
/// (later) replication. Holds a zero-copy view of the mapped segment.
///
/// Its bytes were checked (CRC and structure) before it was handed out, or
/// were written by this process, so its records always decode.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The whole batch, header included. The header's fields are read from
    /// it when asked for: a batch is then one `Bytes` and nothing else, so
    /// handing one out (once per record for one-record batches) copies
    /// nothing more.
    bytes: Bytes,
}

impl Batch {
    /// `bytes` must be exactly one checked batch with this header.
    #[inline]
    pub(crate) fn new(bytes: Bytes, header: BatchHeader) -> Batch {
        debug_assert_eq!(bytes.len(), header.batch_len as usize);
        debug_assert_eq!(BatchHeader::decode(&bytes), Ok(header));
        Batch { bytes }
    }

    /// Offset of the first record.
    #[inline]
    pub fn base_offset(&self) -> u64 {
        read_u64(&self.bytes, batch_field::BASE_OFFSET)
    }

    /// One past the offset of the last record.
    #[inline]
    pub fn next_offset(&self) -> u64 {
        self.base_offset() + self.record_count() as u64
    }

    /// Number of records (at least 1).
    #[inline]
    pub fn record_count(&self) -> u32 {
        read_u32(&self.bytes, batch_field::RECORD_COUNT)
    }

    /// Epoch of the leader that wrote the batch.
    #[inline]
    pub fn leader_epoch(&self) -> u64 {
        read_u64(&self.bytes, batch_field::LEADER_EPOCH)
    }

    /// Largest timestamp of any record in the batch, ms.
    #[inline]
    pub fn max_timestamp_ms(&self) -> i64 {
        read_u64(&self.bytes, batch_field::MAX_TIMESTAMP) as i64
    }

    /// The encoded batch, header and CRC included, in the format of
    /// `docs/FORMAT.md`; [`codec::validate_batch`](crate::codec::validate_batch)
    /// accepts it.
    #[inline]
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The records, borrowed from the batch: no allocation and no reference
    /// count per record.
    #[inline]
    pub fn records(&self) -> BatchRecords<'_> {
        BatchRecords {
            bytes: &self.bytes,
            cursor: BATCH_HEADER_BYTES,
            offset: self.base_offset(),
            end_offset: self.next_offset(),
        }
    }

    /// The record at `offset` as an owned [`Record`] sharing the batch's
    /// bytes; `None` if the batch does not hold it.
    ///
    /// Cost: O(n) in the records before `offset` in the batch, which are
    /// stepped over (records have variable lengths); use
    /// [`Batch::records`] to visit them all.
    pub fn record(&self, offset: u64) -> Option<Record> {
        if offset < self.base_offset() || offset >= self.next_offset() {
            return None;
        }
        let fields = nth_record(&self.bytes, offset - self.base_offset()).ok()?;
        Some(Record::from_batch(&self.bytes, offset, self.leader_epoch(), fields))
    }
}

/// Iterator over the records of a [`Batch`], from [`Batch::records`].
#[derive(Debug, Clone)]
pub struct BatchRecords<'a> {
    bytes: &'a [u8],
    cursor: usize,
    offset: u64,
    end_offset: u64,
}

impl<'a> Iterator for BatchRecords<'a> {
    type Item = RecordRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<RecordRef<'a>> {
        if self.offset >= self.end_offset {
            return None;
        }
        let bytes = self.bytes;
        // A batch holds checked bytes (see `Batch`), so this cannot fail; if
        // it ever did, ending early is safer than a panic.
        let (fields, next) = decode_record(bytes, self.cursor).ok()?;
        let record = RecordRef {
            offset: self.offset,
            timestamp_ms: fields.timestamp_ms,
            key: fields.key.map(|range| &bytes[range]),
            value: &bytes[fields.value],
        };
        self.cursor = next;
        self.offset += 1;
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.end_offset - self.offset) as usize;
        (left, Some(left))
    }
}

/// A record borrowed from a [`Batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    offset: u64,
    timestamp_ms: i64,
    key: Option<&'a [u8]>,
    value: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// The record's offset.
    #[inline]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The record's timestamp, ms since the Unix epoch.
    #[inline]
    pub fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    /// The record's key, if it has one.
    #[inline]
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The record's value.
    #[inline]
    pub fn value(&self) -> &'a [u8] {
        self.value
    }
}
