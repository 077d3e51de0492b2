//! Write-back behind the writer (under `SyncPolicy::Never`) unmaps the
//! pages it cleans from the process (`MADV_DONTNEED`) before it starts
//! their write-back. That must never change a byte a reader sees: not in a
//! zero-copy value handed out before, nor in a read made after.

use std::time::Duration;

use common::records::page_filler as value;
use replog::{Log, Options, SyncPolicy};

mod common;

const RECORDS: u64 = 64 * 1024;

#[test]
fn values_read_before_write_back_unmapped_their_pages_keep_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), Options::default().sync(SyncPolicy::Never)).unwrap();
    // 64 Ki records of 256 bytes: about 18 MiB, so write-back runs well
    // behind the writer (it trails by 1 MiB, in 4 MiB calls).
    let held_count = 4096;
    let mut held = Vec::new();
    for i in 0..RECORDS {
        log.append(value(i)).unwrap();
        if i < held_count && i % 64 == 63 {
            // Zero-copy values into the first megabyte, taken while it
            // is still mapped.
            for j in i - 63..=i {
                held.push((j, log.read(j).unwrap()));
            }
        }
    }
    // Give the pool time to start write-back of everything behind the
    // writer (and so to unmap it). Planting `MADV_REMOVE` (which punches
    // the pages out of the file) in place of `MADV_DONTNEED` fails the
    // first check below.
    std::thread::sleep(Duration::from_secs(2));
    for (offset, record) in &held {
        assert_eq!(
            record.value().as_ref(),
            value(*offset).as_slice(),
            "held value {offset}"
        );
    }
    for offset in (0..RECORDS).step_by(97) {
        assert_eq!(
            log.read(offset).unwrap().value().as_ref(),
            value(offset).as_slice(),
            "read {offset}"
        );
    }
    let mut read = 0;
    for record in log.iter(0) {
        assert_eq!(record.unwrap().offset(), read);
        read += 1;
    }
    assert_eq!(read, RECORDS);
}
