//! The byte layout of segments, batches and records: pure encoding and
//! decoding, no I/O. `docs/FORMAT.md` describes the same layout in prose.
//!
//! All integers are little-endian with explicit widths.
//!
//! ```text
//! segment header (64 bytes)
//!   0  [u8; 8] magic "RPLGSEG\0"
//!   8  u32     format version (1)
//!  12  u32     header length (64)
//!  16  u64     base offset (first offset this segment may hold)
//!  24  u64     log id (random, chosen when the log was created)
//!  32  [u8;28] reserved, zero
//!  60  u32     CRC-32 of bytes 0..60
//!
//! batch header (48 bytes), followed by `record_count` records
//!   0  u32 CRC-32 of bytes 4..batch_len (covers offset, epoch, everything)
//!   4  u32 magic "RPB1"
//!   8  u32 batch_len (header + records; never 0, at least 48 + 16)
//!  12  u32 record_count (at least 1)
//!  16  u64 base offset (offset of the first record)
//!  24  u64 leader epoch
//!  32  i64 first timestamp, ms since the Unix epoch
//!  40  i64 max timestamp, ms (exactly the largest record timestamp)
//!
//! record (16-byte header, then key, then value)
//!   0  i64 timestamp, ms
//!   8  u32 key length, or u32::MAX for "no key"
//!  12  u32 value length
//! ```

use std::ops::Range;

/// Length of the segment file header.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Length of a batch header.
pub const BATCH_HEADER_BYTES: usize = 48;
/// Length of a record header.
pub const RECORD_HEADER_BYTES: usize = 16;
/// Format version written into every segment header.
pub const FORMAT_VERSION: u32 = 1;

const SEGMENT_MAGIC: [u8; 8] = *b"RPLGSEG\0";
const BATCH_MAGIC: u32 = u32::from_le_bytes(*b"RPB1");
const NO_KEY: u32 = u32::MAX;

/// Why bytes failed to decode. A static description; callers add the place.
pub type DecodeError = &'static str;

/// One record to append: a value, an optional key, an optional timestamp
/// (the append's wall-clock time when absent).
///
/// ```
/// let record = replog::NewRecord::new(b"hello").key(b"user-42").timestamp(1_700_000_000_000);
/// assert_eq!(record.value_bytes(), b"hello");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewRecord<'a> {
    key: Option<&'a [u8]>,
    value: &'a [u8],
    timestamp_ms: Option<i64>,
}

impl<'a> NewRecord<'a> {
    /// A record with this value, no key, and the append time as timestamp.
    pub fn new(value: &'a [u8]) -> Self {
        NewRecord {
            key: None,
            value,
            timestamp_ms: None,
        }
    }

    /// Sets the key (for example, the author of a post).
    #[must_use]
    pub fn key(mut self, key: &'a [u8]) -> Self {
        self.key = Some(key);
        self
    }

    /// Sets the timestamp, in milliseconds since the Unix epoch.
    #[must_use]
    pub fn timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// The value.
    pub fn value_bytes(&self) -> &'a [u8] {
        self.value
    }

    /// The key, if any.
    pub fn key_bytes(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The caller-supplied timestamp, if any.
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.timestamp_ms
    }

    /// Key plus value length: what `max_record_bytes` limits.
    pub(crate) fn payload_len(&self) -> u64 {
        self.key.map_or(0, |k| k.len() as u64) + self.value.len() as u64
    }

    /// Bytes this record takes inside a batch.
    pub(crate) fn encoded_len(&self) -> u64 {
        RECORD_HEADER_BYTES as u64 + self.payload_len()
    }
}

/// The fixed header of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Total encoded length, header included.
    pub batch_len: u32,
    /// Number of records, at least 1.
    pub record_count: u32,
    /// Offset of the first record.
    pub base_offset: u64,
    /// Epoch of the leader that wrote the batch.
    pub leader_epoch: u64,
    /// Timestamp of the first record.
    pub first_timestamp_ms: i64,
    /// Largest timestamp of any record in the batch.
    pub max_timestamp_ms: i64,
}

impl BatchHeader {
    /// One past the offset of the last record.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + self.record_count as u64
    }

    /// The header bytes, with the CRC field left zero (it is patched in
    /// after the records are written; see `batch_checksum`).
    pub fn encode(&self) -> [u8; BATCH_HEADER_BYTES] {
        let mut out = [0u8; BATCH_HEADER_BYTES];
        out[4..8].copy_from_slice(&BATCH_MAGIC.to_le_bytes());
        out[8..12].copy_from_slice(&self.batch_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.record_count.to_le_bytes());
        out[16..24].copy_from_slice(&self.base_offset.to_le_bytes());
        out[24..32].copy_from_slice(&self.leader_epoch.to_le_bytes());
        out[32..40].copy_from_slice(&self.first_timestamp_ms.to_le_bytes());
        out[40..48].copy_from_slice(&self.max_timestamp_ms.to_le_bytes());
        out
    }

    /// Decodes and checks the header fields that can be checked without the
    /// records: magic, a length that can hold `record_count` records, at
    /// least one record, and timestamps in order. Does not check the CRC.
    pub fn decode(bytes: &[u8]) -> Result<BatchHeader, DecodeError> {
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err("truncated batch header");
        }
        if read_u32(bytes, 4) != BATCH_MAGIC {
            return Err("bad batch magic");
        }
        let header = BatchHeader {
            batch_len: read_u32(bytes, 8),
            record_count: read_u32(bytes, 12),
            base_offset: read_u64(bytes, 16),
            leader_epoch: read_u64(bytes, 24),
            first_timestamp_ms: read_u64(bytes, 32) as i64,
            max_timestamp_ms: read_u64(bytes, 40) as i64,
        };
        if header.record_count == 0 {
            return Err("batch with no records");
        }
        let min_len = BATCH_HEADER_BYTES as u64 + header.record_count as u64 * RECORD_HEADER_BYTES as u64;
        if (header.batch_len as u64) < min_len {
            return Err("batch length too small for its record count");
        }
        if header.base_offset.checked_add(header.record_count as u64).is_none() {
            return Err("batch offsets overflow u64");
        }
        if header.max_timestamp_ms < header.first_timestamp_ms {
            return Err("max timestamp below first timestamp");
        }
        Ok(header)
    }
}

/// The CRC stored in a batch's first four bytes: CRC-32 of everything after it.
pub fn batch_checksum(batch: &[u8]) -> u32 {
    // A copy of a hasher made once skips crc32fast's CPU feature check on
    // every batch (about 40 of the 760 instructions of a 256 B append).
    static FRESH: std::sync::OnceLock<crc32fast::Hasher> = std::sync::OnceLock::new();
    let mut hasher = FRESH.get_or_init(crc32fast::Hasher::new).clone();
    hasher.update(&batch[4..]);
    hasher.finalize()
}

/// The CRC stored in `batch`'s first four bytes.
pub fn stored_checksum(batch: &[u8]) -> u32 {
    read_u32(batch, 0)
}

/// A record's fields as ranges into its batch's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFields {
    /// Timestamp, ms.
    pub timestamp_ms: i64,
    /// Where the key is, if there is one.
    pub key: Option<Range<usize>>,
    /// Where the value is.
    pub value: Range<usize>,
}

impl RecordFields {
    /// The record as input for encoding again (same key, value and
    /// timestamp), borrowing from `batch`, the bytes the ranges point into.
    pub fn to_new_record<'a>(&self, batch: &'a [u8]) -> NewRecord<'a> {
        let record = NewRecord::new(&batch[self.value.clone()]).timestamp(self.timestamp_ms);
        match &self.key {
            Some(key) => record.key(&batch[key.clone()]),
            None => record,
        }
    }
}

/// Decodes the `index`-th record of `batch` (0 is the first), decoding past
/// the ones before it.
pub(crate) fn nth_record(batch: &[u8], index: u64) -> Result<RecordFields, DecodeError> {
    let mut cursor = BATCH_HEADER_BYTES;
    for _ in 0..index {
        cursor = decode_record(batch, cursor)?.1;
    }
    Ok(decode_record(batch, cursor)?.0)
}

/// Decodes the record starting at `position` in `batch`; returns it and the
/// position of the next record. Every length is checked against `batch`.
pub fn decode_record(batch: &[u8], position: usize) -> Result<(RecordFields, usize), DecodeError> {
    let header_end = position
        .checked_add(RECORD_HEADER_BYTES)
        .filter(|&end| end <= batch.len())
        .ok_or("truncated record header")?;
    let timestamp_ms = read_u64(batch, position) as i64;
    let key_len = read_u32(batch, position + 8);
    let value_len = read_u32(batch, position + 12) as usize;
    let (key, key_end) = if key_len == NO_KEY {
        (None, header_end)
    } else {
        let end = header_end
            .checked_add(key_len as usize)
            .filter(|&end| end <= batch.len())
            .ok_or("record key runs past its batch")?;
        (Some(header_end..end), end)
    };
    let value_end = key_end
        .checked_add(value_len)
        .filter(|&end| end <= batch.len())
        .ok_or("record value runs past its batch")?;
    let fields = RecordFields {
        timestamp_ms,
        key,
        value: key_end..value_end,
    };
    Ok((fields, value_end))
}

/// Checks a whole batch: header, CRC, expected base offset, and that its
/// records exactly fill `batch_len` with timestamps inside the header's
/// bounds. `bytes` may extend past the batch; returns the header.
pub fn validate_batch(bytes: &[u8], expected_base: u64) -> Result<BatchHeader, DecodeError> {
    let header = BatchHeader::decode(bytes)?;
    let len = header.batch_len as usize;
    if len > bytes.len() {
        return Err("batch runs past the end of the data");
    }
    let batch = &bytes[..len];
    if batch_checksum(batch) != stored_checksum(batch) {
        return Err("batch checksum mismatch");
    }
    if header.base_offset != expected_base {
        return Err("batch base offset is not the expected next offset");
    }
    let mut position = BATCH_HEADER_BYTES;
    let mut max_timestamp_ms = i64::MIN;
    for i in 0..header.record_count {
        let (fields, next) = decode_record(batch, position)?;
        if i == 0 && fields.timestamp_ms != header.first_timestamp_ms {
            return Err("first record timestamp differs from batch header");
        }
        max_timestamp_ms = max_timestamp_ms.max(fields.timestamp_ms);
        position = next;
    }
    if position != len {
        return Err("records do not fill the batch exactly");
    }
    // Exactly the records' maximum: the time index trusts it to find them.
    if max_timestamp_ms != header.max_timestamp_ms {
        return Err("batch max timestamp differs from its records' maximum");
    }
    Ok(header)
}

/// Receives encoded bytes in order.
pub trait ByteSink {
    /// Appends `bytes` to the output.
    fn put(&mut self, bytes: &[u8]);
}

impl ByteSink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// The header of a batch of `records` (which must be non-empty and fit in a
/// `u32` length; callers check both). `now_ms` stands in for missing timestamps.
pub fn batch_header_for(records: &[NewRecord<'_>], base_offset: u64, leader_epoch: u64, now_ms: i64) -> BatchHeader {
    let len: u64 = BATCH_HEADER_BYTES as u64 + records.iter().map(NewRecord::encoded_len).sum::<u64>();
    let timestamp = |r: &NewRecord<'_>| r.timestamp_ms.unwrap_or(now_ms);
    BatchHeader {
        batch_len: len as u32,
        record_count: records.len() as u32,
        base_offset,
        leader_epoch,
        first_timestamp_ms: timestamp(&records[0]),
        max_timestamp_ms: records.iter().map(timestamp).max().unwrap_or(now_ms),
    }
}

/// Writes `header` (CRC field zero) and `records` to `sink`. The caller then
/// computes [`batch_checksum`] over the written bytes and stores it.
pub fn encode_batch(sink: &mut impl ByteSink, header: &BatchHeader, records: &[NewRecord<'_>], now_ms: i64) {
    sink.put(&header.encode());
    for record in records {
        let mut record_header = [0u8; RECORD_HEADER_BYTES];
        record_header[0..8].copy_from_slice(&record.timestamp_ms.unwrap_or(now_ms).to_le_bytes());
        let key_len = record.key.map_or(NO_KEY, |k| k.len() as u32);
        record_header[8..12].copy_from_slice(&key_len.to_le_bytes());
        record_header[12..16].copy_from_slice(&(record.value.len() as u32).to_le_bytes());
        sink.put(&record_header);
        if let Some(key) = record.key {
            sink.put(key);
        }
        sink.put(record.value);
    }
}

/// Encodes a complete batch, CRC included, into a new vector. For tests,
/// tools and replication; the log itself encodes straight into its mapping.
pub fn encode_batch_to_vec(records: &[NewRecord<'_>], base_offset: u64, leader_epoch: u64, now_ms: i64) -> Vec<u8> {
    let header = batch_header_for(records, base_offset, leader_epoch, now_ms);
    let mut out = Vec::with_capacity(header.batch_len as usize);
    encode_batch(&mut out, &header, records, now_ms);
    let crc = batch_checksum(&out);
    out[0..4].copy_from_slice(&crc.to_le_bytes());
    out
}

/// What a segment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// First offset the segment may hold.
    pub base_offset: u64,
    /// Identity of the log the segment belongs to.
    pub log_id: u64,
}

/// The header of a segment of log `log_id` starting at `base_offset`.
pub fn encode_segment_header(base_offset: u64, log_id: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut out = [0u8; SEGMENT_HEADER_BYTES];
    out[0..8].copy_from_slice(&SEGMENT_MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&(SEGMENT_HEADER_BYTES as u32).to_le_bytes());
    out[16..24].copy_from_slice(&base_offset.to_le_bytes());
    out[24..32].copy_from_slice(&log_id.to_le_bytes());
    let crc = crc32fast::hash(&out[..60]);
    out[60..64].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes and checks a segment header.
pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, DecodeError> {
    if bytes.len() < SEGMENT_HEADER_BYTES {
        return Err("truncated segment header");
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err("bad segment magic (not a replog segment)");
    }
    if crc32fast::hash(&bytes[..60]) != read_u32(bytes, 60) {
        return Err("segment header checksum mismatch");
    }
    if read_u32(bytes, 8) != FORMAT_VERSION {
        return Err("unsupported segment format version");
    }
    if read_u32(bytes, 12) as usize != SEGMENT_HEADER_BYTES {
        return Err("unsupported segment header length");
    }
    Ok(SegmentHeader {
        base_offset: read_u64(bytes, 16),
        log_id: read_u64(bytes, 24),
    })
}

/// Reads a little-endian `u32` at `at`; the caller has checked the bounds.
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(buf)
}

/// Reads a little-endian `u64` at `at`; the caller has checked the bounds.
pub(crate) fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        let records = [
            NewRecord::new(b"first").key(b"alice").timestamp(10),
            NewRecord::new(b"").timestamp(30),
            NewRecord::new(b"third"),
        ];
        encode_batch_to_vec(&records, 7, 3, 20)
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let header = validate_batch(&bytes, 7).unwrap();
        assert_eq!(header.record_count, 3);
        assert_eq!(header.leader_epoch, 3);
        assert_eq!(header.first_timestamp_ms, 10);
        assert_eq!(header.max_timestamp_ms, 30);
        assert_eq!(header.next_offset(), 10);
        let (first, next) = decode_record(&bytes, BATCH_HEADER_BYTES).unwrap();
        assert_eq!(&bytes[first.key.unwrap()], b"alice");
        assert_eq!(&bytes[first.value], b"first");
        let (second, next) = decode_record(&bytes, next).unwrap();
        assert_eq!(second.key, None);
        assert!(second.value.is_empty());
        let (third, end) = decode_record(&bytes, next).unwrap();
        assert_eq!(third.timestamp_ms, 20, "missing timestamp takes now");
        assert_eq!(end, bytes.len());
    }

    #[test]
    fn zeroes_never_validate() {
        let zeroes = vec![0u8; 4096];
        assert!(validate_batch(&zeroes, 0).is_err());
        assert!(BatchHeader::decode(&zeroes).is_err());
    }

    #[test]
    fn misplaced_batch_fails_offset_check() {
        assert_eq!(
            validate_batch(&sample(), 8),
            Err("batch base offset is not the expected next offset")
        );
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let bytes = sample();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(validate_batch(&flipped, 7).is_err(), "flip of bit {bit} went unnoticed");
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(validate_batch(&bytes[..len], 7).is_err(), "cut at {len} went unnoticed");
        }
    }

    /// Found by fuzzing (`fuzz/corpus/batch_decode/regression-max-timestamp-above-records`):
    /// a header max above every record validated, and a timestamp lookup
    /// then found no record in the batch it pointed to.
    #[test]
    fn max_timestamp_must_equal_the_records_maximum() {
        let records = [NewRecord::new(b"a").timestamp(10), NewRecord::new(b"b").timestamp(20)];
        let mut bytes = encode_batch_to_vec(&records, 0, 1, 0);
        bytes[40..48].copy_from_slice(&30i64.to_le_bytes());
        let crc = batch_checksum(&bytes);
        bytes[0..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            validate_batch(&bytes, 0),
            Err("batch max timestamp differs from its records' maximum")
        );
    }

    #[test]
    fn segment_header_round_trip_and_rejects_garbage() {
        let header = encode_segment_header(1234, 99);
        assert_eq!(
            decode_segment_header(&header),
            Ok(SegmentHeader {
                base_offset: 1234,
                log_id: 99
            })
        );
        assert!(decode_segment_header(&[0u8; 64]).is_err());
        let mut bad = header;
        bad[20] ^= 1;
        assert!(decode_segment_header(&bad).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), base in any::<u64>()) {
            let _ = validate_batch(&bytes, base);
            let _ = decode_record(&bytes, 0);
            let _ = decode_segment_header(&bytes);
        }

        #[test]
        fn encoded_batches_validate(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..20),
                                    base in 0u64..u64::MAX / 2, epoch in any::<u64>(), now in any::<i64>()) {
            let records: Vec<NewRecord<'_>> = values.iter().map(|v| NewRecord::new(v)).collect();
            let bytes = encode_batch_to_vec(&records, base, epoch, now);
            let header = validate_batch(&bytes, base).unwrap();
            prop_assert_eq!(header.record_count as usize, values.len());
            let mut position = BATCH_HEADER_BYTES;
            for value in &values {
                let (fields, next) = decode_record(&bytes, position).unwrap();
                prop_assert_eq!(&bytes[fields.value], &value[..]);
                position = next;
            }
        }
    }
}
