//! Under `SyncPolicy::Always` the pre-fault task writes back the zeros it
//! faults in ahead of the writer, so the file system turns those extents
//! from unwritten into written before the writer's own syncs reach them
//! (`storage::background`, "settling ahead"). That must happen, and must
//! never change a byte the writer wrote.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::files::{segment_bases, segment_path};
use common::records::{number_of, page_filler as value};
use replog::{Log, Options, SyncPolicy};

mod common;

const BLOCK_BYTES: u64 = 4096;

/// The file's extents as (first block, last block, unwritten), from
/// `filefrag -v` (e2fsprogs; FIEMAP); `None` where extents cannot be read
/// (no `filefrag`, or a file system without FIEMAP, such as tmpfs).
fn extents(path: &Path) -> Option<Vec<(u64, u64, bool)>> {
    let output = Command::new("filefrag").arg("-v").arg(path).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let extents: Vec<_> = text
        .lines()
        .filter_map(|line| {
            // "   0:        0..     255:   19596032..  19596287:    256:   last,unwritten,eof"
            let mut fields = line.split(':').map(str::trim);
            fields.next()?.parse::<u64>().ok()?;
            let (first, last) = fields.next()?.split_once("..")?;
            let flags = line.rsplit(':').next().unwrap_or("");
            Some((
                first.trim().parse().ok()?,
                last.trim().parse().ok()?,
                flags.contains("unwritten"),
            ))
        })
        .collect();
    (!extents.is_empty()).then_some(extents)
}

/// Whether every block of `blocks` lies in a written (not unwritten) extent.
fn written(extents: &[(u64, u64, bool)], blocks: std::ops::Range<u64>) -> bool {
    blocks.clone().all(|block| {
        extents
            .iter()
            .any(|&(first, last, unwritten)| first <= block && block <= last && !unwritten)
    })
}

/// Appends 512 records (about 160 KiB) under `sync`, then waits up to
/// `patience` for the 64 KiB just past the write position to be written
/// extents; returns whether they became so, or `None` if extents cannot be
/// read here.
fn settles_ahead(sync: SyncPolicy, patience: Duration) -> Option<bool> {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), Options::default().sync(sync)).unwrap();
    for i in 0..512 {
        log.append(value(i)).unwrap();
    }
    let bases = segment_bases(dir.path());
    assert_eq!(bases, [0], "one segment");
    let path = segment_path(dir.path(), 0);
    extents(&path)?;
    // The data ends well inside the first MiB (zeros follow it).
    let mut head = vec![0u8; 1 << 20];
    std::io::Read::read_exact(&mut std::fs::File::open(&path).unwrap(), &mut head).unwrap();
    let end_bytes = head.iter().rposition(|&b| b != 0).unwrap() as u64;
    let ahead = end_bytes / BLOCK_BYTES + 1..(end_bytes + (64 << 10)) / BLOCK_BYTES;
    let deadline = Instant::now() + patience;
    let settled = loop {
        if written(&extents(&path)?, ahead.clone()) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    log.close().unwrap();
    Some(settled)
}

#[test]
fn under_always_the_pages_ahead_of_the_writer_are_settled() {
    // Planting `settle: false` for `SyncPolicy::Always` (in `Log::open`)
    // fails the first assertion.
    let Some(always) = settles_ahead(SyncPolicy::Always, Duration::from_secs(5)) else {
        eprintln!("skipped: no FIEMAP here (filefrag missing, or a file system without extents)");
        return;
    };
    assert!(
        always,
        "under Always the 64 KiB past the writer stayed unwritten extents"
    );
    // The control: under Never nothing writes the pre-faulted zeros back
    // (write-back trails the writer), so the same range stays unwritten
    // for a second; the check above would otherwise prove nothing.
    assert_eq!(
        settles_ahead(SyncPolicy::Never, Duration::from_secs(1)),
        Some(false),
        "under Never the pre-faulted range was written back"
    );
}

#[test]
fn settling_ahead_changes_no_byte_the_writer_wrote() {
    // Four writers under Always (group commit), 24 MiB in all: the
    // pre-fault task settles chunk after chunk beside them, some of it
    // while the writer is already writing there.
    let dir = tempfile::tempdir().unwrap();
    let options = || Options::default().sync(SyncPolicy::Always);
    let log = Log::open(dir.path(), options()).unwrap();
    let threads = 4u64;
    let per_thread = 24 * 1024;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let log = &log;
            scope.spawn(move || {
                for i in 0..per_thread {
                    let key = t * per_thread + i;
                    let offset = log.append(value(key)).unwrap();
                    assert_eq!(log.read(offset).unwrap().value().as_ref(), value(key).as_slice());
                }
            });
        }
    });
    let check = |log: &Log| {
        let mut seen = vec![false; (threads * per_thread) as usize];
        for record in log.iter(0) {
            let record = record.unwrap();
            let key = number_of(record.value());
            assert_eq!(
                record.value().as_ref(),
                value(key).as_slice(),
                "offset {}",
                record.offset()
            );
            assert!(!std::mem::replace(&mut seen[key as usize], true), "value {key} twice");
        }
        assert!(seen.iter().all(|&s| s), "a value is missing");
    };
    check(&log);
    log.close().unwrap();
    check(&Log::open(dir.path(), options()).unwrap());
}
