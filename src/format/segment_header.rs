//! The 64-byte header at the start of every segment file.
//!
//! ```text
//!  0  [u8; 8] magic "RPLGSEG\0"
//!  8  u32     format version (1)
//! 12  u32     header length (64)
//! 16  u64     base offset (first offset this segment may hold)
//! 24  u64     log id (random, chosen when the log was created)
//! 32  u64     reset generation (0 until the log is first reset)
//! 40  [u8;20] reserved, zero
//! 60  u32     CRC-32 of bytes 0..60
//! ```

use super::{FORMAT_VERSION, SEGMENT_HEADER_BYTES, header, read_u32, read_u64, write_u32, write_u64};
use crate::error::Damage;

const SEGMENT_MAGIC: [u8; 8] = *b"RPLGSEG\0";

/// What a segment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// First offset the segment may hold.
    pub base_offset: u64,
    /// Identity of the log the segment belongs to.
    pub log_id: u64,
    /// How many times the log had been reset when the segment was created.
    /// Segments of an older generation than the newest are leftovers of an
    /// interrupted reset.
    pub generation: u64,
}

/// The bytes of `header`.
pub fn encode_segment_header(header: &SegmentHeader) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut out = [0u8; SEGMENT_HEADER_BYTES];
    write_u32(&mut out, 12, SEGMENT_HEADER_BYTES as u32);
    write_u64(&mut out, 16, header.base_offset);
    write_u64(&mut out, 24, header.log_id);
    write_u64(&mut out, 32, header.generation);
    header::seal(&mut out, &SEGMENT_MAGIC, FORMAT_VERSION);
    out
}

/// Decodes and checks a segment header.
///
/// # Errors
///
/// [`Damage::Truncated`], [`Damage::BadMagic`] (not a replog segment),
/// [`Damage::ChecksumMismatch`], [`Damage::UnknownVersion`], or
/// [`Damage::BadLength`] for a header length this version does not write.
pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, Damage> {
    let header = header::check(bytes, SEGMENT_HEADER_BYTES, &SEGMENT_MAGIC, FORMAT_VERSION)?;
    if read_u32(header, 12) as usize != SEGMENT_HEADER_BYTES {
        return Err(Damage::BadLength);
    }
    Ok(SegmentHeader {
        base_offset: read_u64(header, 16),
        log_id: read_u64(header, 24),
        generation: read_u64(header, 32),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_garbage() {
        let fields = SegmentHeader {
            base_offset: 1234,
            log_id: 99,
            generation: 2,
        };
        let header = encode_segment_header(&fields);
        assert_eq!(decode_segment_header(&header), Ok(fields));
        assert_eq!(decode_segment_header(&[0u8; 64]), Err(Damage::BadMagic));
        assert_eq!(decode_segment_header(&header[..10]), Err(Damage::Truncated));
        let mut bad = header;
        bad[20] ^= 1;
        assert!(matches!(
            decode_segment_header(&bad),
            Err(Damage::ChecksumMismatch { .. })
        ));
    }
}
