//! The disk's own limit for durable appends of 256-byte records, with no
//! log in the way: how many records per second survive a crash when each
//! sync covers `n` of them, and how many bytes the disk writes for each.
//!
//! `cargo run --release --bin disk-sync` times, on fresh 256 MiB files in
//! the current directory, loops that write `n` records of 268 bytes (a
//! 256-byte value as replog frames it) after the last, then sync just those.
//! Through a shared map (`memcpy`, then `msync(MS_SYNC)` of the pages
//! written), as replog does:
//!
//! - **map, unwritten**: an `fallocate`d file, its first 64 MiB pre-faulted
//!   (`MADV_POPULATE_WRITE`, read-around on): replog under
//!   `SyncPolicy::Always` before it settled ahead;
//! - **map, settled**: the same with read-around off (`MADV_RANDOM`, so the
//!   page cache holds 4 KiB folios) and the pre-faulted zeros synced
//!   before the loop, so its extents are written: what replog's pre-fault
//!   task now does ahead of the writer under `Always`;
//! - **map, zero-filled (1 MiB writes)**: a file written with zeros in
//!   1 MiB `pwrite`s and synced: written extents, but large folios;
//!
//! and through `pwrite` + `fdatasync`, on an `fallocate`d file and on a
//! zero-filled one. `n` is 1 (one writer waiting for each record) and 16
//! (16 writers whose records one group commit covers: each sync then
//! writes a fresh 4 KiB page). With 16 writers each waiting for its own
//! record no sync can cover more than 16, so the rate for 16 is the
//! ceiling of a 16-writer row on this disk. "KiB written" is what every
//! block device of the machine wrote during the loop (`/sys/block/*/stat`),
//! per sync.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use memmap2::MmapMut;

const FILE_BYTES: usize = 256 << 20;
const PREFAULT_BYTES: usize = 64 << 20;
const RECORD_BYTES: usize = 268;
const RUN: Duration = Duration::from_secs(1);
const ROUNDS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    MapUnwritten,
    MapSettled,
    MapZeroFilled,
    PwriteFallocated,
    PwriteZeroFilled,
}

impl Way {
    fn label(self) -> &'static str {
        match self {
            Way::MapUnwritten => "map + msync, unwritten",
            Way::MapSettled => "map + msync, settled",
            Way::MapZeroFilled => "map + msync, zero-filled (1 MiB writes)",
            Way::PwriteFallocated => "pwrite + fdatasync, fallocated",
            Way::PwriteZeroFilled => "pwrite + fdatasync, zero-filled",
        }
    }

    fn mapped(self) -> bool {
        matches!(self, Way::MapUnwritten | Way::MapSettled | Way::MapZeroFilled)
    }

    fn zero_filled(self) -> bool {
        matches!(self, Way::MapZeroFilled | Way::PwriteZeroFilled)
    }
}

/// Sectors (512 B) written by every block device so far.
fn sectors_written() -> u64 {
    let Ok(devices) = std::fs::read_dir("/sys/block") else {
        return 0;
    };
    devices
        .filter_map(|device| std::fs::read_to_string(device.ok()?.path().join("stat")).ok())
        .filter_map(|stat| stat.split_whitespace().nth(6)?.parse::<u64>().ok())
        .sum()
}

fn fresh_file(path: &std::path::Path, way: Way) -> File {
    let _ = std::fs::remove_file(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .expect("create probe file");
    if way.zero_filled() {
        let zeros = vec![0u8; 1 << 20];
        for at in (0..FILE_BYTES).step_by(zeros.len()) {
            file.write_all_at(&zeros, at as u64).expect("write zeros");
        }
    } else {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain system call on a descriptor this function owns.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, FILE_BYTES as libc::off_t) };
        assert_eq!(rc, 0, "fallocate: {}", std::io::Error::last_os_error());
    }
    file.sync_all().expect("sync probe file");
    file
}

fn advise(map: &MmapMut, len: usize, advice: libc::c_int) {
    // SAFETY: advice on a range inside the map, which outlives the call.
    let rc = unsafe { libc::madvise(map.as_ptr() as *mut _, len, advice) };
    assert_eq!(rc, 0, "madvise: {}", std::io::Error::last_os_error());
}

/// Writes `per_sync` records after the last and syncs them, for `RUN`;
/// returns records per second and KiB written per sync.
fn run(way: Way, per_sync: usize) -> (f64, f64) {
    let path = std::path::Path::new("disk-sync.probe");
    let file = fresh_file(path, way);
    // SAFETY: the file is this process's own and outlives the map; nothing
    // truncates it while mapped.
    let mut map = unsafe { MmapMut::map_mut(&file).expect("map probe file") };
    if way.mapped() {
        if way == Way::MapSettled {
            advise(&map, FILE_BYTES, libc::MADV_RANDOM);
        }
        advise(&map, PREFAULT_BYTES, libc::MADV_POPULATE_WRITE);
        if way == Way::MapSettled {
            map.flush_range(0, PREFAULT_BYTES).expect("msync ahead");
        }
    }
    let chunk = vec![0x5au8; RECORD_BYTES * per_sync];
    let (mut at, mut syncs) = (0usize, 0u64);
    let sectors_before = sectors_written();
    let started = Instant::now();
    while started.elapsed() < RUN && at + chunk.len() <= PREFAULT_BYTES {
        if way.mapped() {
            map[at..at + chunk.len()].copy_from_slice(&chunk);
            let page = at / 4096 * 4096;
            map.flush_range(page, at + chunk.len() - page).expect("msync");
        } else {
            file.write_all_at(&chunk, at as u64).expect("pwrite");
            file.sync_data().expect("fdatasync");
        }
        at += chunk.len();
        syncs += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let written_kib = (sectors_written() - sectors_before) as f64 / 2.0;
    drop(map);
    drop(file);
    let _ = std::fs::remove_file(path);
    ((syncs * per_sync as u64) as f64 / elapsed, written_kib / syncs as f64)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let ways = [
        Way::MapUnwritten,
        Way::MapSettled,
        Way::MapZeroFilled,
        Way::PwriteFallocated,
        Way::PwriteZeroFilled,
    ];
    let cases: Vec<(Way, usize)> = [1, 16].iter().flat_map(|&n| ways.map(|way| (way, n))).collect();
    let mut results = vec![(Vec::new(), Vec::new()); cases.len()];
    // Rounds alternate the cases, so drift of a shared disk hits all alike.
    for _ in 0..ROUNDS {
        for (case, &(way, per_sync)) in cases.iter().enumerate() {
            let (rate, kib) = run(way, per_sync);
            results[case].0.push(rate);
            results[case].1.push(kib);
        }
    }
    println!("records of {RECORD_BYTES} B made durable; median of {ROUNDS} runs of up to {RUN:?} each (min-max)");
    for ((way, per_sync), (rates, kib)) in cases.iter().zip(results) {
        let (low, high) = rates.iter().fold((f64::MAX, 0f64), |(l, h), &r| (l.min(r), h.max(r)));
        let rate = median(rates);
        println!(
            "{:<40} {per_sync:>2} per sync: {rate:>7.0} records/s ({low:.0}-{high:.0}), {:>5.0} syncs/s, {:>6.1} KiB written per sync",
            way.label(),
            rate / *per_sync as f64,
            median(kib),
        );
    }
}
