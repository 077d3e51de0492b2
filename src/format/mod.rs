//! The byte layout of segments, batches and records: pure encoding and
//! decoding, no I/O (exported as [`codec`](crate::codec)). `docs/FORMAT.md`
//! describes the same layout in prose; each submodule's doc comment carries
//! its diagram.
//!
//! All integers are little-endian with explicit widths; every decoding
//! failure is a [`Damage`].

mod batch;
pub(crate) mod header;
mod record;
mod segment_header;

pub use batch::{BatchHeader, batch_checksum, batch_header_for, encode_batch, encode_batch_to_vec, validate_batch};
pub(crate) use batch::{checked_batches, field as batch_field};
pub(crate) use record::RecordDecoder;
pub use record::{NewRecord, RecordFields, decode_record};
pub use segment_header::{SegmentHeader, decode_segment_header, encode_segment_header};

use crate::error::Damage;

/// Length of the segment file header.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Length of a batch header.
pub const BATCH_HEADER_BYTES: usize = 48;
/// Length of a record header.
pub const RECORD_HEADER_BYTES: usize = 16;
/// Format version written into every segment header (see `docs/FORMAT.md`,
/// "Version history").
pub const FORMAT_VERSION: u32 = 1;

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

/// Decodes the `index`-th record of `batch` (0 is the first), stepping over
/// the ones before it.
pub(crate) fn nth_record(batch: &[u8], index: u64) -> Result<RecordFields, Damage> {
    let mut records = RecordDecoder::new(batch, BATCH_HEADER_BYTES);
    records.skip_records(index)?;
    records.next().ok_or(Damage::Truncated)?
}

/// Reads a little-endian `u32` at `at`; the caller has checked the bounds.
#[inline]
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(buf)
}

/// Reads a little-endian `u64` at `at`; the caller has checked the bounds.
#[inline]
pub(crate) fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buf)
}

/// Writes `value` little-endian at `at`; the caller has checked the bounds.
#[inline]
pub(crate) fn write_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// Writes `value` little-endian at `at`; the caller has checked the bounds.
#[inline]
pub(crate) fn write_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        let records = [
            NewRecord::new(b"first").key(b"alice").timestamp_ms(10),
            NewRecord::new(b"").timestamp_ms(30),
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
        assert_eq!(nth_record(&bytes, 2).unwrap(), third);
        assert_eq!(nth_record(&bytes, 3), Err(Damage::Truncated));
    }

    #[test]
    fn zeroes_never_validate() {
        let zeroes = vec![0u8; 4096];
        assert_eq!(validate_batch(&zeroes, 0), Err(Damage::BadMagic));
        assert!(BatchHeader::decode(&zeroes).is_err());
    }

    #[test]
    fn misplaced_batch_fails_offset_check() {
        assert_eq!(
            validate_batch(&sample(), 8),
            Err(Damage::UnexpectedOffset { expected: 8, found: 7 })
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
        let records = [
            NewRecord::new(b"a").timestamp_ms(10),
            NewRecord::new(b"b").timestamp_ms(20),
        ];
        let mut bytes = encode_batch_to_vec(&records, 0, 1, 0);
        bytes[40..48].copy_from_slice(&30i64.to_le_bytes());
        let crc = batch_checksum(&bytes);
        bytes[0..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(validate_batch(&bytes, 0), Err(Damage::BadTimestamp));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), base in any::<u64>()) {
            let _ = validate_batch(&bytes, base);
            let _ = decode_record(&bytes, 0);
            let _ = decode_segment_header(&bytes);
            let _ = nth_record(&bytes, 3);
        }

        #[test]
        fn encoded_batches_validate(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..20),
                                    base in 0u64..u64::MAX / 2, epoch in any::<u64>(), now in any::<i64>()) {
            let records: Vec<NewRecord<'_>> = values.iter().map(NewRecord::new).collect();
            let bytes = encode_batch_to_vec(&records, base, epoch, now);
            let header = validate_batch(&bytes, base).unwrap();
            prop_assert_eq!(header.record_count as usize, values.len());
            let decoded: Vec<RecordFields> = RecordDecoder::new(&bytes, BATCH_HEADER_BYTES).collect::<Result<_, _>>().unwrap();
            for (fields, value) in decoded.iter().zip(&values) {
                prop_assert_eq!(&bytes[fields.value.clone()], &value[..]);
            }
            prop_assert_eq!(decoded.len(), values.len());
        }
    }
}
