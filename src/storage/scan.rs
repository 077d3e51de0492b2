//! The one walk over a segment's raw bytes, batch header by batch header,
//! used by recovery and by index rebuilds. (Reads of an open segment walk
//! its batches through `Segment`, which checks each batch once.)

use crate::error::Damage;
use crate::format::{self, BATCH_HEADER_BYTES, BatchHeader};

/// How much of each batch a scan checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Everything: CRC, structure, records (`format::validate_batch`).
    Full,
    /// The header, its length and offset only: for bytes checked before.
    HeadersOnly,
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
    pub damage: Option<Damage>,
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
    check: Check,
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
        let checked = match check {
            Check::Full => format::validate_batch(rest, next_offset),
            Check::HeadersOnly => BatchHeader::decode_at(rest, next_offset),
        };
        let header = match checked {
            Ok(header) => header,
            Err(damage) => {
                end.damage = Some(damage);
                return end;
            }
        };
        if limit_offset.is_some_and(|limit| header.next_offset() > limit) {
            end.damage = Some(Damage::UnexpectedOffset {
                expected: limit_offset.unwrap_or_default(),
                found: header.next_offset(),
            });
            return end;
        }
        visit(position, &header);
        end.last_epoch = Some(header.leader_epoch);
        end.max_timestamp_ms = end.max_timestamp_ms.max(header.max_timestamp_ms);
        position += header.batch_len as u64;
        next_offset = header.next_offset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{NewRecord, encode_batch_to_vec};

    #[test]
    fn stops_at_zeros_damage_and_limit() {
        let mut bytes = Vec::new();
        for offset in 0..3 {
            bytes.extend(encode_batch_to_vec(&[NewRecord::new(b"abc")], offset, 1, 0));
        }
        let end = bytes.len() as u64;
        bytes.resize(bytes.len() + 100, 0);
        for check in [Check::Full, Check::HeadersOnly] {
            let clean = scan(&bytes, 0, 0, None, check, |_, _| {});
            assert_eq!((clean.position, clean.next_offset, clean.damage), (end, 3, None));
            let limited = scan(&bytes, 0, 0, Some(2), check, |_, _| {});
            assert_eq!(limited.next_offset, 2);
        }
        bytes[end as usize - 1] ^= 0xff;
        let damaged = scan(&bytes, 0, 0, None, Check::Full, |_, _| {});
        assert_eq!(damaged.next_offset, 2);
        assert!(matches!(damaged.damage, Some(Damage::ChecksumMismatch { .. })));
        let headers = scan(&bytes, 0, 0, None, Check::HeadersOnly, |_, _| {});
        assert_eq!(headers.next_offset, 3, "a header walk does not read records");
    }
}
