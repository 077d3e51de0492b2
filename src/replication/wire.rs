//! The versioned binary encoding of [`FetchRequest`] and [`FetchResponse`]
//! (specified in `docs/FORMAT.md`, "Replication messages"), so that any
//! RPC layer can carry them.
//!
//! ```text
//! request (56 bytes)                  response (76-byte header, then batches)
//!  0 [u8;8] "RPLGFREQ"                 0 [u8;8] "RPLGFRSP"
//!  8 u32    version (1)                8 u32    version (1)
//! 12 u64    replica id                12 u32    kind (0 records, 1 diverging, 2 fenced
//! 20 u64    current epoch                       epoch, 3 not leader, 4 unknown epoch,
//! 28 u64    fetch offset                        5 offset out of range)
//! 36 u64    last fetched epoch        16 u64    fields a..f: records: epoch, fetch
//! 44 u64    max bytes                    ..     offset, last fetched epoch, high
//! 52 u32    CRC-32 of bytes 0..52     56        watermark, log start, log end;
//!                                               diverging: epoch, end offset; out
//!                                               of range: log start; unused zero
//!                                     64 u64    length of the batches in bytes
//!                                     72 u32    CRC-32 of bytes 0..72
//!                                     76        batches (records only), each with its CRC
//! ```
//!
//! Decoding checks the CRC, the version, every field's range, and every
//! batch (structure, CRC, contiguous offsets, non-decreasing epochs), so a
//! flipped bit anywhere is an error. It never panics, and allocates only
//! the batches, after checking their declared length against the input and
//! the caller's limit (which one whole batch may exceed).

use bytes::Bytes;

use super::messages::{FetchRequest, FetchResponse};
use crate::error::{Damage, Error, Result};
use crate::format::{BatchHeader, checked_batches, header, read_u32, read_u64, write_u32, write_u64};
use crate::replica_id::ReplicaId;

const REQUEST_MAGIC: [u8; 8] = *b"RPLGFREQ";
const RESPONSE_MAGIC: [u8; 8] = *b"RPLGFRSP";
/// Version of both messages' encoding.
const VERSION: u32 = 1;
/// Size of an encoded request.
pub(crate) const REQUEST_BYTES: usize = 56;
/// Size of a response's header (the batches follow it).
pub(crate) const RESPONSE_HEADER_BYTES: usize = 76;
/// Number of `u64` fields in a response header.
const RESPONSE_FIELDS: usize = 6;

impl FetchRequest {
    /// The request's bytes (56 of them; see `docs/FORMAT.md`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; REQUEST_BYTES];
        write_u64(&mut out, 12, self.replica_id.0);
        write_u64(&mut out, 20, self.current_epoch);
        write_u64(&mut out, 28, self.fetch_offset);
        write_u64(&mut out, 36, self.last_fetched_epoch);
        write_u64(&mut out, 44, self.max_bytes);
        header::seal(&mut out, &REQUEST_MAGIC, VERSION);
        out
    }

    /// Decodes a request from exactly the bytes [`FetchRequest::encode`]
    /// produced. Never panics; allocates nothing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMessage`] with [`Damage::Truncated`],
    /// [`Damage::BadLength`] (trailing bytes), [`Damage::BadMagic`],
    /// [`Damage::ChecksumMismatch`] or [`Damage::UnknownVersion`].
    pub fn decode(bytes: &[u8]) -> Result<FetchRequest> {
        let fields = header::check(bytes, REQUEST_BYTES, &REQUEST_MAGIC, VERSION).map_err(invalid(0))?;
        if bytes.len() != REQUEST_BYTES {
            return Err(invalid(REQUEST_BYTES as u64)(Damage::BadLength));
        }
        Ok(FetchRequest {
            replica_id: ReplicaId(read_u64(fields, 12)),
            current_epoch: read_u64(fields, 20),
            fetch_offset: read_u64(fields, 28),
            last_fetched_epoch: read_u64(fields, 36),
            max_bytes: read_u64(fields, 44),
        })
    }
}

/// The kinds of response, as numbered on the wire.
const RECORDS: u32 = 0;
const DIVERGING: u32 = 1;
const FENCED_EPOCH: u32 = 2;
const NOT_LEADER: u32 = 3;
const UNKNOWN_EPOCH: u32 = 4;
const OFFSET_OUT_OF_RANGE: u32 = 5;

impl FetchResponse {
    /// The response's bytes: a 76-byte header, then (for records) the
    /// batches as stored. Copies the batches once.
    pub fn encode(&self) -> Vec<u8> {
        let none = [0; RESPONSE_FIELDS];
        let (kind, fields, batches): (u32, [u64; RESPONSE_FIELDS], &[u8]) = match self {
            FetchResponse::Records {
                epoch,
                fetch_offset,
                last_fetched_epoch,
                high_watermark,
                log_start,
                log_end,
                batches,
            } => {
                let fields = [
                    *epoch,
                    *fetch_offset,
                    *last_fetched_epoch,
                    *high_watermark,
                    *log_start,
                    *log_end,
                ];
                (RECORDS, fields, batches)
            }
            FetchResponse::Diverging { epoch, end_offset } => (DIVERGING, [*epoch, *end_offset, 0, 0, 0, 0], &[]),
            FetchResponse::FencedEpoch => (FENCED_EPOCH, none, &[]),
            FetchResponse::NotLeader => (NOT_LEADER, none, &[]),
            FetchResponse::UnknownEpoch => (UNKNOWN_EPOCH, none, &[]),
            FetchResponse::OffsetOutOfRange { log_start } => (OFFSET_OUT_OF_RANGE, [*log_start, 0, 0, 0, 0, 0], &[]),
        };
        let mut out = vec![0u8; RESPONSE_HEADER_BYTES + batches.len()];
        write_u32(&mut out, 12, kind);
        for (i, field) in fields.iter().enumerate() {
            write_u64(&mut out, 16 + 8 * i, *field);
        }
        write_u64(&mut out, 16 + 8 * RESPONSE_FIELDS, batches.len() as u64);
        header::seal(&mut out[..RESPONSE_HEADER_BYTES], &RESPONSE_MAGIC, VERSION);
        out[RESPONSE_HEADER_BYTES..].copy_from_slice(batches);
        out
    }

    /// Decodes a response from the bytes [`FetchResponse::encode`]
    /// produced, taking at most `max_bytes` of batches (the limit the
    /// follower asked for, or any larger one it accepts), or exactly one
    /// batch of any size (as the leader sends at least one whole batch).
    /// Checks every batch. Never panics; allocates only the batches, after
    /// checking their declared length against the input (so never more than
    /// the input's length) and `max_bytes`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMessage`] with the [`Damage`] found:
    /// [`Damage::Truncated`], [`Damage::BadMagic`],
    /// [`Damage::ChecksumMismatch`] (in the header or a batch),
    /// [`Damage::UnknownVersion`], [`Damage::BadLength`] (batches over
    /// `max_bytes`, trailing bytes, an unknown kind, non-zero unused
    /// fields), [`Damage::OutOfBounds`] (positions that contradict each
    /// other, or batches outside the leader's range),
    /// [`Damage::UnexpectedOffset`] (batches that are not contiguous),
    /// [`Damage::EpochRegression`].
    pub fn decode(bytes: &[u8], max_bytes: u64) -> Result<FetchResponse> {
        let head = header::check(bytes, RESPONSE_HEADER_BYTES, &RESPONSE_MAGIC, VERSION).map_err(invalid(0))?;
        let kind = read_u32(head, 12);
        let fields: [u64; RESPONSE_FIELDS] = std::array::from_fn(|i| read_u64(head, 16 + 8 * i));
        let length_at = 16 + 8 * RESPONSE_FIELDS;
        let batches_len = read_u64(head, length_at);
        let body = &bytes[RESPONSE_HEADER_BYTES..];
        // Over the limit only as one whole batch: the leader sends at least
        // one batch whatever `max_bytes`, so a follower never stalls behind
        // a large one. The copy is never larger than the input.
        let one_batch = || BatchHeader::decode(body).is_ok_and(|h| h.batch_len as usize == body.len());
        if batches_len != body.len() as u64 || (batches_len > max_bytes && !one_batch()) {
            return Err(invalid(length_at as u64)(Damage::BadLength));
        }
        let [a, b, ..] = fields;
        let unused_zero = |used: usize| {
            if fields[used..].iter().any(|f| *f != 0) || (kind != RECORDS && batches_len != 0) {
                return Err(invalid(16)(Damage::BadLength));
            }
            Ok(())
        };
        let response = match kind {
            RECORDS => decode_records(fields, body)?,
            DIVERGING => {
                unused_zero(2)?;
                FetchResponse::Diverging {
                    epoch: a,
                    end_offset: b,
                }
            }
            FENCED_EPOCH => unused_zero(0).map(|()| FetchResponse::FencedEpoch)?,
            NOT_LEADER => unused_zero(0).map(|()| FetchResponse::NotLeader)?,
            UNKNOWN_EPOCH => unused_zero(0).map(|()| FetchResponse::UnknownEpoch)?,
            OFFSET_OUT_OF_RANGE => {
                unused_zero(1)?;
                FetchResponse::OffsetOutOfRange { log_start: a }
            }
            _ => return Err(invalid(12)(Damage::BadLength)),
        };
        Ok(response)
    }
}

fn decode_records(fields: [u64; RESPONSE_FIELDS], body: &[u8]) -> Result<FetchResponse> {
    let [
        epoch,
        fetch_offset,
        last_fetched_epoch,
        high_watermark,
        log_start,
        log_end,
    ] = fields;
    let inconsistent =
        log_start > log_end || high_watermark > log_end || fetch_offset > log_end || last_fetched_epoch > epoch;
    if inconsistent {
        return Err(invalid(16)(Damage::OutOfBounds));
    }
    let (first, next) = check_batches(body)?;
    if !body.is_empty() && (first != fetch_offset || first < log_start || next > log_end) {
        return Err(invalid(RESPONSE_HEADER_BYTES as u64)(Damage::OutOfBounds));
    }
    Ok(FetchResponse::Records {
        epoch,
        fetch_offset,
        last_fetched_epoch,
        high_watermark,
        log_start,
        log_end,
        batches: Bytes::copy_from_slice(body),
    })
}

/// Checks that `body` is whole, contiguous batches with non-decreasing
/// epochs; returns the first offset and one past the last (`(0, 0)` when
/// empty).
pub(crate) fn check_batches(body: &[u8]) -> Result<(u64, u64)> {
    let mut range: Option<(u64, u64)> = None;
    for checked in checked_batches(body, None, 0) {
        let (_, header) =
            checked.map_err(|(position, damage)| invalid((RESPONSE_HEADER_BYTES + position) as u64)(damage))?;
        range = Some((range.map_or(header.base_offset, |r| r.0), header.next_offset()));
    }
    Ok(range.unwrap_or((0, 0)))
}

/// Builds an `InvalidMessage` error at `position`.
fn invalid(position: u64) -> impl Fn(Damage) -> Error + Copy {
    move |damage| Error::InvalidMessage { position, damage }
}
