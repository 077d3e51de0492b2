//! The wire encoding of the replication messages (`docs/FORMAT.md`,
//! "Replication messages"), through the public API: every kind round-trips,
//! and every kind of damage a transport can do (a flipped bit, a cut, extra
//! bytes, an unknown version or kind, batches that do not follow each
//! other, epochs that go back, more batch bytes than the receiver accepts)
//! is a typed `InvalidMessage` error. Over-long batches are refused before
//! anything is allocated.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use replog::codec::encode_batch_to_vec;
use replog::replication::{FetchRequest, FetchResponse, ReplicaId};
use replog::{Damage, Error, NewRecord};

// ---------------------------------------------------------------------------
// Allocation counting: bytes allocated by the current thread.
// ---------------------------------------------------------------------------

struct CountingAllocator;

thread_local! {
    static ALLOCATED: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation(bytes: usize) {
    let _ = ALLOCATED.try_with(|a| a.set(a.get() + bytes as u64));
}

// SAFETY: every method forwards to the system allocator unchanged; the
// counting touches only a const-initialized thread local (no allocation).
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result with the bytes this thread allocated
/// meanwhile.
fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = ALLOCATED.with(Cell::get);
    let result = f();
    (result, ALLOCATED.with(Cell::get) - before)
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

const REQUEST_BYTES: usize = 56;
const RESPONSE_HEADER_BYTES: usize = 76;
/// Where a response's header holds the length of its batches.
const LENGTH_AT: u64 = 64;

fn request() -> FetchRequest {
    FetchRequest {
        replica_id: ReplicaId(2),
        current_epoch: 5,
        fetch_offset: 12,
        last_fetched_epoch: 4,
        max_bytes: 1 << 20,
    }
}

/// A batch of `count` records from `base`, stamped with `epoch`.
fn batch(base: u64, epoch: u64, count: u64) -> Vec<u8> {
    let values: Vec<String> = (base..base + count).map(|o| format!("record {o}")).collect();
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let record = NewRecord::new(v.as_bytes()).timestamp_ms(1_000 + i as i64);
            if i % 2 == 0 { record.key(b"key") } else { record }
        })
        .collect();
    encode_batch_to_vec(&records, base, epoch, 0)
}

/// A records response of epoch 5 answering a fetch at `position`
/// (`fetch_offset`, `last_fetched_epoch`).
fn records(position: (u64, u64), high_watermark: u64, log_start: u64, log_end: u64, batches: Vec<u8>) -> FetchResponse {
    FetchResponse::Records {
        epoch: 5,
        fetch_offset: position.0,
        last_fetched_epoch: position.1,
        high_watermark,
        log_start,
        log_end,
        batches: batches.into(),
    }
}

/// The position of [`request`]: offset 12, last fetched epoch 4.
const AT12: (u64, u64) = (12, 4);

/// A records response of three batches (offsets 12..18, epochs 4, 5, 5),
/// answering [`request`].
fn three_batches() -> FetchResponse {
    records(
        AT12,
        12,
        0,
        18,
        [batch(12, 4, 3), batch(15, 5, 1), batch(16, 5, 2)].concat(),
    )
}

/// One response of every kind.
fn every_response() -> Vec<FetchResponse> {
    vec![
        three_batches(),
        records(AT12, 12, 0, 12, Vec::new()),
        records((0, 0), 0, 0, 0, Vec::new()),
        FetchResponse::Records {
            epoch: u64::MAX,
            fetch_offset: u64::MAX,
            last_fetched_epoch: u64::MAX,
            high_watermark: u64::MAX,
            log_start: u64::MAX,
            log_end: u64::MAX,
            batches: Vec::new().into(),
        },
        FetchResponse::Diverging {
            epoch: 3,
            end_offset: 7,
        },
        FetchResponse::Diverging {
            epoch: u64::MAX,
            end_offset: u64::MAX,
        },
        FetchResponse::FencedEpoch,
        FetchResponse::NotLeader,
        FetchResponse::UnknownEpoch,
        FetchResponse::OffsetOutOfRange { log_start: 1000 },
    ]
}

/// The damage of an `InvalidMessage` error, and its position.
fn invalid(result: Result<impl std::fmt::Debug, Error>) -> (u64, Damage) {
    match result {
        Err(Error::InvalidMessage { position, damage }) => (position, damage),
        other => panic!("expected InvalidMessage, got {other:?}"),
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Writes `value` at `at` in a message's fixed part (`header_len` bytes)
/// and recomputes its CRC (the fixed part's last four bytes), as a peer
/// that means it would.
fn reseal(mut bytes: Vec<u8>, at: usize, value: &[u8], header_len: usize) -> Vec<u8> {
    bytes[at..at + value.len()].copy_from_slice(value);
    let crc = crc32(&bytes[..header_len - 4]);
    bytes[header_len - 4..header_len].copy_from_slice(&crc.to_le_bytes());
    bytes
}

// ---------------------------------------------------------------------------
// Round trips and layout
// ---------------------------------------------------------------------------

#[test]
fn every_request_round_trips() {
    for request in [
        request(),
        FetchRequest {
            replica_id: ReplicaId(0),
            current_epoch: 0,
            fetch_offset: 0,
            last_fetched_epoch: 0,
            max_bytes: 0,
        },
        FetchRequest {
            replica_id: ReplicaId(u64::MAX),
            current_epoch: u64::MAX,
            fetch_offset: u64::MAX,
            last_fetched_epoch: u64::MAX,
            max_bytes: u64::MAX,
        },
    ] {
        let bytes = request.encode();
        assert_eq!(bytes.len(), REQUEST_BYTES);
        assert_eq!(FetchRequest::decode(&bytes).unwrap(), request);
    }
}

#[test]
fn every_response_kind_round_trips() {
    for response in every_response() {
        let bytes = response.encode();
        let batches = match &response {
            FetchResponse::Records { batches, .. } => batches.len(),
            _ => 0,
        };
        assert_eq!(bytes.len(), RESPONSE_HEADER_BYTES + batches);
        assert_eq!(FetchResponse::decode(&bytes, u64::MAX).unwrap(), response);
        assert_eq!(FetchResponse::decode(&bytes, batches as u64).unwrap(), response);
    }
}

#[test]
fn request_layout_is_the_documented_one() {
    let bytes = request().encode();
    assert_eq!(&bytes[0..8], b"RPLGFREQ");
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    assert_eq!(u32_at(8), 1, "version");
    assert_eq!(
        [u64_at(12), u64_at(20), u64_at(28), u64_at(36), u64_at(44)],
        [2, 5, 12, 4, 1 << 20]
    );
    assert_eq!(u32_at(52), crc32(&bytes[..52]));
}

#[test]
fn response_layout_is_the_documented_one() {
    let kinds = [
        (three_batches(), 0),
        (
            FetchResponse::Diverging {
                epoch: 3,
                end_offset: 7,
            },
            1,
        ),
        (FetchResponse::FencedEpoch, 2),
        (FetchResponse::NotLeader, 3),
        (FetchResponse::UnknownEpoch, 4),
        (FetchResponse::OffsetOutOfRange { log_start: 1000 }, 5),
    ];
    for (response, kind) in kinds {
        let bytes = response.encode();
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        assert_eq!(&bytes[0..8], b"RPLGFRSP");
        assert_eq!((u32_at(8), u32_at(12)), (1, kind));
        let fields = [16, 24, 32, 40, 48, 56].map(u64_at);
        let expected = match &response {
            // Epoch, fetch offset, last fetched epoch, high watermark, log start, log end.
            FetchResponse::Records { .. } => [5, 12, 4, 12, 0, 18],
            FetchResponse::Diverging { .. } => [3, 7, 0, 0, 0, 0],
            FetchResponse::OffsetOutOfRange { .. } => [1000, 0, 0, 0, 0, 0],
            _ => [0; 6],
        };
        assert_eq!(fields, expected, "{response:?}");
        assert_eq!(u64_at(64), (bytes.len() - RESPONSE_HEADER_BYTES) as u64);
        assert_eq!(u32_at(72), crc32(&bytes[..72]));
    }
}

// ---------------------------------------------------------------------------
// Damage a transport can do
// ---------------------------------------------------------------------------

#[test]
fn every_bit_flip_of_a_request_is_detected() {
    let bytes = request().encode();
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let (_, damage) = invalid(FetchRequest::decode(&flipped));
        let expected = if bit < 64 {
            matches!(damage, Damage::BadMagic)
        } else {
            matches!(damage, Damage::ChecksumMismatch { .. })
        };
        assert!(expected, "bit {bit}: {damage}");
    }
}

#[test]
fn every_bit_flip_of_a_records_response_is_detected() {
    let bytes = three_batches().encode();
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let (position, damage) = invalid(FetchResponse::decode(&flipped, u64::MAX));
        if bit < RESPONSE_HEADER_BYTES * 8 {
            assert_eq!(position, 0, "bit {bit} in the header: {damage}");
        } else {
            assert!(
                position >= RESPONSE_HEADER_BYTES as u64,
                "bit {bit} in the batches: {damage}"
            );
        }
    }
}

#[test]
fn every_bit_flip_of_every_other_response_is_detected() {
    for response in every_response().into_iter().skip(1) {
        let bytes = response.encode();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            invalid(FetchResponse::decode(&flipped, u64::MAX));
        }
    }
}

#[test]
fn truncation_at_every_length_is_an_error() {
    let bytes = request().encode();
    for len in 0..bytes.len() {
        assert_eq!(
            invalid(FetchRequest::decode(&bytes[..len])),
            (0, Damage::Truncated),
            "{len}"
        );
    }
    for response in every_response() {
        let bytes = response.encode();
        for len in 0..bytes.len() {
            let (position, damage) = invalid(FetchResponse::decode(&bytes[..len], u64::MAX));
            if len < RESPONSE_HEADER_BYTES {
                assert_eq!((position, damage), (0, Damage::Truncated), "{len}");
            } else {
                // The header says how many batch bytes follow.
                assert_eq!((position, damage), (LENGTH_AT, Damage::BadLength), "{len}");
            }
        }
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    let mut bytes = request().encode();
    bytes.push(0);
    assert_eq!(invalid(FetchRequest::decode(&bytes)).1, Damage::BadLength);
    for response in every_response() {
        for extra in [&[0u8][..], &batch(18, 5, 1)] {
            let bytes = [response.encode(), extra.to_vec()].concat();
            assert_eq!(
                invalid(FetchResponse::decode(&bytes, u64::MAX)),
                (LENGTH_AT, Damage::BadLength),
                "{response:?}"
            );
        }
    }
}

#[test]
fn batches_over_max_bytes_are_refused_before_allocation() {
    let bytes = three_batches().encode();
    let carried = (bytes.len() - RESPONSE_HEADER_BYTES) as u64;
    for max_bytes in [0, 1, carried - 1] {
        let (result, allocated) = allocated_by(|| FetchResponse::decode(&bytes, max_bytes));
        assert_eq!(invalid(result), (LENGTH_AT, Damage::BadLength), "max_bytes {max_bytes}");
        assert_eq!(allocated, 0, "max_bytes {max_bytes}");
    }
    // Two batches, the first alone over the limit: still refused.
    let b12 = batch(12, 4, 3);
    let two = records(AT12, 12, 0, 16, [b12.clone(), batch(15, 5, 1)].concat()).encode();
    for max_bytes in [0, b12.len() as u64 - 1, b12.len() as u64] {
        let (result, allocated) = allocated_by(|| FetchResponse::decode(&two, max_bytes));
        assert_eq!(invalid(result), (LENGTH_AT, Damage::BadLength), "max_bytes {max_bytes}");
        assert_eq!(allocated, 0, "max_bytes {max_bytes}");
    }
    let (result, allocated) = allocated_by(|| FetchResponse::decode(&bytes, carried));
    assert_eq!(result.unwrap(), three_batches());
    assert!(
        allocated <= carried + 256,
        "allocated {allocated} for {carried} batch bytes"
    );

    // A header (CRC-valid) that declares more batch bytes than follow, up
    // to u64::MAX: refused without allocating, whatever the limit.
    let header = FetchResponse::Records {
        epoch: 5,
        fetch_offset: 0,
        last_fetched_epoch: 0,
        high_watermark: 0,
        log_start: 0,
        log_end: 0,
        batches: Vec::new().into(),
    }
    .encode();
    for declared in [1u64, 1 << 20, 1 << 40, u64::MAX] {
        let forged = reseal(header.clone(), 64, &declared.to_le_bytes(), RESPONSE_HEADER_BYTES);
        for max_bytes in [0, 1 << 30, u64::MAX] {
            let (result, allocated) = allocated_by(|| FetchResponse::decode(&forged, max_bytes));
            assert_eq!(invalid(result), (LENGTH_AT, Damage::BadLength), "declared {declared}");
            assert_eq!(allocated, 0, "declared {declared}, max_bytes {max_bytes}");
        }
    }
}

#[test]
fn bad_magic_is_refused() {
    let mut bytes = request().encode();
    bytes[..8].copy_from_slice(b"RPLGFRSP");
    assert_eq!(invalid(FetchRequest::decode(&bytes)), (0, Damage::BadMagic));
    let mut bytes = FetchResponse::NotLeader.encode();
    bytes[..8].copy_from_slice(b"RPLGFREQ");
    assert_eq!(invalid(FetchResponse::decode(&bytes, u64::MAX)), (0, Damage::BadMagic));
}

#[test]
fn unknown_versions_are_refused() {
    for version in [0u32, 2, u32::MAX] {
        let bytes = reseal(request().encode(), 8, &version.to_le_bytes(), REQUEST_BYTES);
        assert_eq!(
            invalid(FetchRequest::decode(&bytes)),
            (0, Damage::UnknownVersion { version })
        );
        for response in every_response() {
            let bytes = reseal(response.encode(), 8, &version.to_le_bytes(), RESPONSE_HEADER_BYTES);
            assert_eq!(
                invalid(FetchResponse::decode(&bytes, u64::MAX)),
                (0, Damage::UnknownVersion { version })
            );
        }
    }
}

#[test]
fn unknown_kinds_are_refused() {
    for kind in [6u32, 7, 255, u32::MAX] {
        let bytes = reseal(
            FetchResponse::NotLeader.encode(),
            12,
            &kind.to_le_bytes(),
            RESPONSE_HEADER_BYTES,
        );
        assert_eq!(
            invalid(FetchResponse::decode(&bytes, u64::MAX)),
            (12, Damage::BadLength)
        );
    }
}

#[test]
fn unused_fields_must_be_zero() {
    let cases = [
        (
            FetchResponse::Diverging {
                epoch: 3,
                end_offset: 7,
            },
            32,
        ),
        (
            FetchResponse::Diverging {
                epoch: 3,
                end_offset: 7,
            },
            56,
        ),
        (FetchResponse::OffsetOutOfRange { log_start: 9 }, 24),
        (FetchResponse::OffsetOutOfRange { log_start: 9 }, 48),
        (FetchResponse::FencedEpoch, 16),
        (FetchResponse::NotLeader, 40),
        (FetchResponse::UnknownEpoch, 56),
    ];
    for (response, field) in cases {
        let bytes = reseal(response.encode(), field, &1u64.to_le_bytes(), RESPONSE_HEADER_BYTES);
        assert_eq!(
            invalid(FetchResponse::decode(&bytes, u64::MAX)),
            (16, Damage::BadLength),
            "{response:?}, field at {field}"
        );
    }
    // Only records carry batches.
    let body = batch(0, 1, 1);
    let mut bytes = reseal(
        FetchResponse::NotLeader.encode(),
        64,
        &(body.len() as u64).to_le_bytes(),
        RESPONSE_HEADER_BYTES,
    );
    bytes.extend(&body);
    assert_eq!(
        invalid(FetchResponse::decode(&bytes, u64::MAX)),
        (16, Damage::BadLength)
    );
}

#[test]
fn non_contiguous_batches_are_refused() {
    let (b12, b15, b16) = (batch(12, 5, 3), batch(15, 5, 1), batch(16, 5, 2));
    // A gap, an overlap, a repeat, and going back.
    let cases = [
        ([&b12[..], &b16].concat(), b12.len(), 15, 16),
        ([&b12[..], &batch(14, 5, 1)].concat(), b12.len(), 15, 14),
        ([&b12[..], &b12].concat(), b12.len(), 15, 12),
        (
            [&b12[..], &b15, &batch(12, 5, 1)].concat(),
            b12.len() + b15.len(),
            16,
            12,
        ),
    ];
    for (batches, at, expected, found) in cases {
        let bytes = records((12, 5), 0, 0, 100, batches).encode();
        assert_eq!(
            invalid(FetchResponse::decode(&bytes, u64::MAX)),
            (
                (RESPONSE_HEADER_BYTES + at) as u64,
                Damage::UnexpectedOffset { expected, found }
            )
        );
    }
}

#[test]
fn epoch_regression_in_batches_is_refused() {
    let first = batch(12, 5, 3);
    let bytes = records((12, 5), 0, 0, 100, [&first[..], &batch(15, 4, 1)].concat()).encode();
    assert_eq!(
        invalid(FetchResponse::decode(&bytes, u64::MAX)),
        (
            (RESPONSE_HEADER_BYTES + first.len()) as u64,
            Damage::EpochRegression { previous: 5, found: 4 }
        )
    );
    // Equal and rising epochs are fine.
    let bytes = records(
        (12, 5),
        0,
        0,
        100,
        [&first[..], &batch(15, 5, 1), &batch(16, 9, 1)].concat(),
    )
    .encode();
    assert!(FetchResponse::decode(&bytes, u64::MAX).is_ok());
}

#[test]
fn positions_must_agree() {
    let batches = [batch(12, 5, 3), batch(15, 5, 1)].concat();
    // Batches 12..16 answering a fetch at 12 need log_end >= 16; the fetch
    // offset and high watermark are at most log_end, log_start too, and the
    // last fetched epoch at most the leader's (5).
    for (position, high_watermark, log_start, log_end, damage_at) in [
        (AT12, 0, 0, 15, RESPONSE_HEADER_BYTES as u64),
        (AT12, 17, 0, 16, 16),
        (AT12, 0, 17, 16, 16),
        ((17, 4), 0, 0, 16, 16),
        ((12, 6), 0, 0, 16, 16),
        ((12, u64::MAX), 0, 0, 16, 16),
        // The batches must start at the fetch offset.
        ((11, 4), 0, 0, 16, RESPONSE_HEADER_BYTES as u64),
        ((13, 4), 0, 0, 16, RESPONSE_HEADER_BYTES as u64),
        ((0, 0), 0, 0, 16, RESPONSE_HEADER_BYTES as u64),
    ] {
        let bytes = records(position, high_watermark, log_start, log_end, batches.clone()).encode();
        assert_eq!(
            invalid(FetchResponse::decode(&bytes, u64::MAX)),
            (damage_at, Damage::OutOfBounds),
            "position {position:?}, hw {high_watermark}, log {log_start}..{log_end}"
        );
    }
    // Without batches: the fetch offset past the leader's end is refused.
    let bytes = records((17, 4), 0, 0, 16, Vec::new()).encode();
    assert_eq!(
        invalid(FetchResponse::decode(&bytes, u64::MAX)),
        (16, Damage::OutOfBounds)
    );
    for (position, log_end) in [(AT12, 16), ((16, 5), 16), ((12, 0), 16)] {
        let body = if position.0 == 12 { batches.clone() } else { Vec::new() };
        let bytes = records(position, 16, 12, log_end, body).encode();
        assert!(FetchResponse::decode(&bytes, u64::MAX).is_ok(), "{position:?}");
    }
}

#[test]
fn batches_below_the_leaders_start_are_refused() {
    let batches = [batch(12, 5, 3), batch(15, 5, 1)].concat();
    let bytes = records(AT12, 0, 13, 16, batches).encode();
    assert_eq!(
        invalid(FetchResponse::decode(&bytes, u64::MAX)),
        (RESPONSE_HEADER_BYTES as u64, Damage::OutOfBounds)
    );
}

#[test]
fn bytes_that_are_not_batches_are_refused() {
    for body in [
        vec![0u8; 1],
        vec![0u8; 47],
        vec![0u8; 48],
        vec![0xAB; 500],
        batch(0, 1, 2)[..60].to_vec(),
    ] {
        let mut bytes = reseal(
            records((0, 0), 0, 0, 0, Vec::new()).encode(),
            64,
            &(body.len() as u64).to_le_bytes(),
            RESPONSE_HEADER_BYTES,
        );
        bytes.extend(&body);
        let (position, _) = invalid(FetchResponse::decode(&bytes, u64::MAX));
        assert_eq!(position, RESPONSE_HEADER_BYTES as u64);
    }
}

// ---------------------------------------------------------------------------
// The limit a follower decodes with
// ---------------------------------------------------------------------------

#[test]
fn one_whole_batch_over_max_bytes_decodes() {
    // The leader sends at least one whole batch, whatever max_bytes: one
    // batch decodes under any limit (allocating only its copy), and is
    // checked as any other.
    let one = batch(12, 4, 3);
    let response = records(AT12, 12, 0, 15, one.clone());
    let bytes = response.encode();
    for max_bytes in [0, 1, one.len() as u64 - 1, one.len() as u64, u64::MAX] {
        let (result, allocated) = allocated_by(|| FetchResponse::decode(&bytes, max_bytes));
        assert_eq!(result.unwrap(), response, "max_bytes {max_bytes}");
        assert!(
            allocated <= one.len() as u64 + 256,
            "allocated {allocated} for {} batch bytes",
            one.len()
        );
    }
    let flipped = {
        let mut bytes = bytes.clone();
        bytes[RESPONSE_HEADER_BYTES + 40] ^= 1;
        bytes
    };
    let (position, damage) = invalid(FetchResponse::decode(&flipped, 0));
    assert!(
        position == RESPONSE_HEADER_BYTES as u64 && matches!(damage, Damage::ChecksumMismatch { .. }),
        "{position}: {damage}"
    );
    // A whole batch followed by part of another is not one batch.
    let cut = [one.clone(), batch(15, 5, 1)[..30].to_vec()].concat();
    let bytes = reseal(
        records(AT12, 12, 0, 16, Vec::new()).encode(),
        64,
        &(cut.len() as u64).to_le_bytes(),
        RESPONSE_HEADER_BYTES,
    );
    let bytes = [bytes, cut].concat();
    assert_eq!(
        invalid(FetchResponse::decode(&bytes, 0)),
        (LENGTH_AT, Damage::BadLength)
    );
}

#[test]
fn a_batch_larger_than_the_requests_max_bytes_decodes_under_that_limit() {
    use replog::replication::{Acks, Replica, ReplicaOptions};
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (a, b) = (ReplicaId(1), ReplicaId(2));
    let leader = Replica::open(dirs[0].path(), a, ReplicaOptions::default()).unwrap();
    let follower = Replica::open(dirs[1].path(), b, ReplicaOptions::default()).unwrap();
    leader.become_leader(1, &[a, b], &[a, b]).unwrap();
    follower.become_follower(1, a).unwrap();
    leader.append(&[NewRecord::new(&[7u8; 1000])], Acks::Leader).unwrap();

    let request = FetchRequest::decode(&follower.fetch_request(100).unwrap().encode()).unwrap();
    let bytes = leader.handle_fetch(&request).encode();
    assert!(
        bytes.len() - RESPONSE_HEADER_BYTES > 100,
        "the leader sent the whole batch"
    );
    let response = FetchResponse::decode(&bytes, request.max_bytes).expect("the answer to the request decodes");
    follower.apply(response).unwrap();
    assert_eq!(follower.log().next_offset(), 1);
}
