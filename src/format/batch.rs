//! The batch: the unit of framing, checksum, indexing, replication and
//! atomicity. A 48-byte header, then `record_count` records.
//!
//! ```text
//!  0  u32 CRC-32 of bytes 4..batch_len (covers offset, epoch, everything)
//!  4  u32 magic "RPB1"
//!  8  u32 batch_len (header + records; never 0, at least 48 + 16)
//! 12  u32 record_count (at least 1)
//! 16  u64 base offset (offset of the first record)
//! 24  u64 leader epoch
//! 32  i64 first timestamp, ms since the Unix epoch
//! 40  i64 max timestamp, ms (exactly the largest record timestamp)
//! ```

use super::record::{NewRecord, RecordDecoder};
use super::{BATCH_HEADER_BYTES, ByteSink, RECORD_HEADER_BYTES, read_u32, read_u64, write_u32, write_u64};
use crate::error::Damage;

const BATCH_MAGIC: u32 = u32::from_le_bytes(*b"RPB1");

/// Where each header field is, in bytes from the batch's start (see the
/// module doc).
pub(crate) mod field {
    pub(crate) const MAGIC: usize = 4;
    pub(crate) const BATCH_LEN: usize = 8;
    pub(crate) const RECORD_COUNT: usize = 12;
    pub(crate) const BASE_OFFSET: usize = 16;
    pub(crate) const LEADER_EPOCH: usize = 24;
    pub(crate) const FIRST_TIMESTAMP: usize = 32;
    pub(crate) const MAX_TIMESTAMP: usize = 40;
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
    #[inline]
    pub fn next_offset(&self) -> u64 {
        self.base_offset + self.record_count as u64
    }

    /// The header bytes, with the CRC field left zero (it is patched in
    /// after the records are written; see [`batch_checksum`]).
    pub fn encode(&self) -> [u8; BATCH_HEADER_BYTES] {
        let mut out = [0u8; BATCH_HEADER_BYTES];
        write_u32(&mut out, field::MAGIC, BATCH_MAGIC);
        write_u32(&mut out, field::BATCH_LEN, self.batch_len);
        write_u32(&mut out, field::RECORD_COUNT, self.record_count);
        write_u64(&mut out, field::BASE_OFFSET, self.base_offset);
        write_u64(&mut out, field::LEADER_EPOCH, self.leader_epoch);
        write_u64(&mut out, field::FIRST_TIMESTAMP, self.first_timestamp_ms as u64);
        write_u64(&mut out, field::MAX_TIMESTAMP, self.max_timestamp_ms as u64);
        out
    }

    /// Decodes and checks the header fields that can be checked without the
    /// records: magic, a length that can hold `record_count` records, at
    /// least one record, and timestamps in order. Does not check the CRC.
    ///
    /// # Errors
    ///
    /// [`Damage::Truncated`], [`Damage::BadMagic`], [`Damage::BadLength`],
    /// [`Damage::BadTimestamp`].
    #[inline]
    pub fn decode(bytes: &[u8]) -> Result<BatchHeader, Damage> {
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err(Damage::Truncated);
        }
        if read_u32(bytes, field::MAGIC) != BATCH_MAGIC {
            return Err(Damage::BadMagic);
        }
        let header = BatchHeader {
            batch_len: read_u32(bytes, field::BATCH_LEN),
            record_count: read_u32(bytes, field::RECORD_COUNT),
            base_offset: read_u64(bytes, field::BASE_OFFSET),
            leader_epoch: read_u64(bytes, field::LEADER_EPOCH),
            first_timestamp_ms: read_u64(bytes, field::FIRST_TIMESTAMP) as i64,
            max_timestamp_ms: read_u64(bytes, field::MAX_TIMESTAMP) as i64,
        };
        let min_len = BATCH_HEADER_BYTES as u64 + header.record_count as u64 * RECORD_HEADER_BYTES as u64;
        if header.record_count == 0
            || (header.batch_len as u64) < min_len
            || header.base_offset.checked_add(header.record_count as u64).is_none()
        {
            return Err(Damage::BadLength);
        }
        if header.max_timestamp_ms < header.first_timestamp_ms {
            return Err(Damage::BadTimestamp);
        }
        Ok(header)
    }

    /// The header of the batch at the start of `bytes`, provided the whole
    /// batch lies within `bytes` and starts with offset `expected_base`.
    /// Checks neither the CRC nor the records: for batches that were
    /// checked before (see [`validate_batch`] for a full check).
    ///
    /// # Errors
    ///
    /// As [`BatchHeader::decode`], plus [`Damage::Truncated`] if the batch
    /// runs past `bytes` and [`Damage::UnexpectedOffset`].
    #[inline]
    pub fn decode_at(bytes: &[u8], expected_base: u64) -> Result<BatchHeader, Damage> {
        let header = BatchHeader::decode(bytes)?;
        if header.batch_len as usize > bytes.len() {
            return Err(Damage::Truncated);
        }
        if header.base_offset != expected_base {
            return Err(Damage::UnexpectedOffset {
                expected: expected_base,
                found: header.base_offset,
            });
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

/// Checks a whole batch: header, CRC, expected base offset, and that its
/// records exactly fill `batch_len` with timestamps inside the header's
/// bounds. `bytes` may extend past the batch; returns the header.
///
/// # Errors
///
/// The [`Damage`] found: [`Damage::Truncated`], [`Damage::BadMagic`],
/// [`Damage::BadLength`], [`Damage::ChecksumMismatch`],
/// [`Damage::UnexpectedOffset`], [`Damage::BadTimestamp`].
pub fn validate_batch(bytes: &[u8], expected_base: u64) -> Result<BatchHeader, Damage> {
    let header = BatchHeader::decode(bytes)?;
    let batch = bytes.get(..header.batch_len as usize).ok_or(Damage::Truncated)?;
    let (stored, computed) = (stored_checksum(batch), batch_checksum(batch));
    if stored != computed {
        return Err(Damage::ChecksumMismatch { stored, computed });
    }
    if header.base_offset != expected_base {
        return Err(Damage::UnexpectedOffset {
            expected: expected_base,
            found: header.base_offset,
        });
    }
    let mut records = RecordDecoder::new(batch, BATCH_HEADER_BYTES);
    let mut max_timestamp_ms = i64::MIN;
    for i in 0..header.record_count {
        let fields = records.next().ok_or(Damage::BadLength)??;
        if i == 0 && fields.timestamp_ms != header.first_timestamp_ms {
            return Err(Damage::BadTimestamp);
        }
        max_timestamp_ms = max_timestamp_ms.max(fields.timestamp_ms);
    }
    if records.position() != batch.len() {
        return Err(Damage::BadLength);
    }
    // Exactly the records' maximum: the time index trusts it to find them.
    if max_timestamp_ms != header.max_timestamp_ms {
        return Err(Damage::BadTimestamp);
    }
    Ok(header)
}

/// Walks `bytes` as back-to-back batches, checking each in full
/// ([`validate_batch`]), that each starts where the one before ended (the
/// first at `first_base`, or where its own header says when `None`), and
/// that epochs never go below `min_epoch` nor down from one batch to the
/// next. Yields each batch's position in `bytes` and header, or the
/// position and [`Damage`] of the first failure, after which it ends.
pub(crate) fn checked_batches(
    bytes: &[u8],
    first_base: Option<u64>,
    min_epoch: u64,
) -> impl Iterator<Item = Result<(usize, BatchHeader), (usize, Damage)>> + '_ {
    let mut position = 0usize;
    let mut expected = first_base;
    let mut last_epoch = min_epoch;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || position >= bytes.len() {
            return None;
        }
        let rest = &bytes[position..];
        let checked = expected
            .map_or_else(|| BatchHeader::decode(rest).map(|h| h.base_offset), Ok)
            .and_then(|base| validate_batch(rest, base))
            .and_then(|header| {
                if header.leader_epoch < last_epoch {
                    return Err(Damage::EpochRegression {
                        previous: last_epoch,
                        found: header.leader_epoch,
                    });
                }
                Ok(header)
            });
        match checked {
            Ok(header) => {
                let at = position;
                last_epoch = header.leader_epoch;
                expected = Some(header.next_offset());
                position += header.batch_len as usize;
                Some(Ok((at, header)))
            }
            Err(damage) => {
                failed = true;
                Some(Err((position, damage)))
            }
        }
    })
}

/// The header of a batch of `records` (which must be non-empty and fit in a
/// `u32` length; callers check both). `now_ms` stands in for missing timestamps.
pub fn batch_header_for(records: &[NewRecord<'_>], base_offset: u64, leader_epoch: u64, now_ms: i64) -> BatchHeader {
    let len: u64 = BATCH_HEADER_BYTES as u64 + records.iter().map(NewRecord::encoded_bytes).sum::<u64>();
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
        record.encode(sink, now_ms);
    }
}

/// Encodes a complete batch, CRC included, into a new vector. For tests,
/// tools and replication; the log itself encodes straight into its mapping.
pub fn encode_batch_to_vec(records: &[NewRecord<'_>], base_offset: u64, leader_epoch: u64, now_ms: i64) -> Vec<u8> {
    let header = batch_header_for(records, base_offset, leader_epoch, now_ms);
    let mut out = Vec::with_capacity(header.batch_len as usize);
    encode_batch(&mut out, &header, records, now_ms);
    let crc = batch_checksum(&out);
    write_u32(&mut out, 0, crc);
    out
}
