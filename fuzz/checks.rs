//! What each fuzz target asserts, shared by the targets (under libFuzzer)
//! and by `tests/fuzz_corpus.rs` (which replays the checked-in corpus in
//! every `cargo test`). Depends on nothing but `replog` and `tempfile`.

use replog::codec::{self, BATCH_HEADER_BYTES};
use replog::{Log, NewRecord, Options};

/// Decoding arbitrary bytes as a batch never panics; a batch that validates
/// decodes into records inside its bounds and re-encodes to the same bytes.
pub fn batch_decode(data: &[u8]) {
    let Some(base) = data.get(16..24).map(|b| u64::from_le_bytes(b.try_into().unwrap())) else {
        let _ = codec::validate_batch(data, 0);
        return;
    };
    let Ok(header) = codec::validate_batch(data, base) else {
        return;
    };
    let batch = &data[..header.batch_len as usize];
    let mut position = BATCH_HEADER_BYTES;
    let mut fields = Vec::new();
    for _ in 0..header.record_count {
        let (record, next) = codec::decode_record(batch, position).expect("a validated batch decodes");
        assert!(record.value.end <= batch.len());
        assert!(record.timestamp_ms <= header.max_timestamp_ms);
        fields.push(record);
        position = next;
    }
    assert_eq!(position, batch.len());
    let records: Vec<NewRecord<'_>> = fields.iter().map(|f| f.to_new_record(batch)).collect();
    let again = codec::encode_batch_to_vec(&records, header.base_offset, header.leader_epoch, 0);
    assert_eq!(again, batch, "re-encoding a valid batch gives the same bytes");
}

/// A directory whose only segment file holds `data` after a valid segment
/// header opens to an error or to a log whose every record reads back
/// without a panic, and that accepts appends.
pub fn open_segment(data: &[u8]) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut file = codec_segment_header(0).to_vec();
    file.extend_from_slice(data);
    std::fs::write(dir.path().join("00000000000000000000.log"), &file).expect("write segment");
    let options = Options::default().segment_bytes(1 << 16).prefault_bytes(0);
    let Ok(log) = Log::open(dir.path(), options) else {
        return;
    };
    let end = log.next_offset();
    let mut count = 0;
    for record in log.iter(0) {
        match record {
            Ok(record) => assert!(record.offset() < end),
            Err(_) => break,
        }
        count += 1;
    }
    assert_eq!(count, end, "a recovered tail reads back whole");
    assert_eq!(log.append(b"after").expect("append after recovery"), end);
}

fn codec_segment_header(base: u64) -> [u8; 64] {
    // Same layout as the library writes (log id 0), checked by decoding it.
    let mut out = [0u8; 64];
    out[0..8].copy_from_slice(b"RPLGSEG\0");
    out[8..12].copy_from_slice(&1u32.to_le_bytes());
    out[12..16].copy_from_slice(&64u32.to_le_bytes());
    out[16..24].copy_from_slice(&base.to_le_bytes());
    let crc = crc32(&out[..60]);
    out[60..64].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(codec::decode_segment_header(&out).map(|h| h.base_offset), Ok(base));
    out
}

/// Bitwise CRC-32 (IEEE), to avoid a dependency just for the header.
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
