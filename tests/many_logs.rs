//! Issue 11, "many logs in one process": a timeline store shards its posts
//! over many logs. A thousand open logs with a trickle of appends each must
//! be cheap: background work runs on one bounded pool for the process, a
//! fresh log takes about a megabyte of disk, and an idle one holds a few
//! hundred kilobytes of memory.
//!
//! One test in this binary, so the process's thread count is its own.

#![cfg(target_os = "linux")]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use replog::{Log, Options, SyncPolicy};

const LOGS: usize = 1000;
const POSTS_PER_LOG: u64 = 3;
/// The most threads the background pool may run (documented on `Options`).
const POOL_THREADS_MAX: usize = 8;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().blocks() * 512)
        .sum()
}

fn post(log: usize, n: u64) -> String {
    format!("log {log} post {n}")
}

/// Every other log syncs on an interval, so the pool runs 500 interval
/// syncs besides the pre-faulting of all of them.
fn options(log: usize) -> Options {
    let sync = if log.is_multiple_of(2) {
        SyncPolicy::Interval(Duration::from_millis(20))
    } else {
        SyncPolicy::Never
    };
    Options::default().sync(sync)
}

#[test]
fn a_thousand_logs_share_a_bounded_pool_and_stay_small() {
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (0..LOGS).map(|i| root.path().join(format!("shard-{i:04}"))).collect();
    let threads_before = threads();
    let rss_before = rss_bytes();

    let logs: Vec<Log> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| Log::open(d, options(i)).unwrap())
        .collect();
    for n in 0..POSTS_PER_LOG {
        for (i, log) in logs.iter().enumerate() {
            assert_eq!(log.append(post(i, n)).unwrap(), n);
        }
    }

    // Interval syncs ran for every interval log, with no sync called here.
    let deadline = Instant::now() + Duration::from_secs(60);
    for log in logs.iter().step_by(2) {
        while log.durable_offset() < POSTS_PER_LOG {
            assert!(Instant::now() < deadline, "an interval sync never ran: {log:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    let threads_open = threads();
    assert!(
        threads_open <= threads_before + POOL_THREADS_MAX,
        "{threads_open} threads with {LOGS} logs open (before: {threads_before})"
    );
    let disk: u64 = dirs.iter().map(|d| disk_bytes(d)).sum();
    assert!(
        disk <= LOGS as u64 * (3 << 19),
        "{} MiB on disk for {LOGS} logs of {POSTS_PER_LOG} posts",
        disk >> 20
    );
    let rss_growth = rss_bytes().saturating_sub(rss_before);
    assert!(
        rss_growth <= LOGS as u64 * (512 << 10),
        "{} MiB more resident memory with {LOGS} logs open",
        rss_growth >> 20
    );
    println!(
        "{LOGS} logs: {threads_open} threads (before {threads_before}), {} MiB on disk, {} MiB more resident",
        disk >> 20,
        rss_growth >> 20
    );

    for log in &logs {
        log.close().unwrap();
    }
    drop(logs);
    for (i, dir) in dirs.iter().enumerate() {
        let log = Log::open(dir, options(i)).unwrap();
        let posts: Vec<Vec<u8>> = log.iter(0).map(|r| r.unwrap().value().to_vec()).collect();
        let expected: Vec<Vec<u8>> = (0..POSTS_PER_LOG).map(|n| post(i, n).into_bytes()).collect();
        assert_eq!(posts, expected, "log {i} after reopening");
    }
}
