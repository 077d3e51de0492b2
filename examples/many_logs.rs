//! Many logs in one process: a timeline store sharding its posts over
//! `N` logs (one per shard), each with a trickle of appends, and what that
//! costs the process: threads, memory, disk, and the time to open, append
//! and close.
//!
//! ```text
//! cargo run --release --example many_logs -- 1000        # one count
//! cargo run --release --example many_logs -- 1 100 1000  # a table, one process per count
//! ```
//!
//! Each count runs in a fresh process (threads and memory are per
//! process). The logs use `Options::default()` (256 MiB segments,
//! `SyncPolicy::Always`) in a temporary directory under `target/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use replog::{Log, Options};

/// Appends per log (each durable: `SyncPolicy::Always`).
const APPENDS_PER_LOG: usize = 10;
/// Bytes per post.
const POST_BYTES: usize = 256;

fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("log counts are numbers"))
        .collect();
    match counts.as_slice() {
        [] => table(&[1, 100, 1000]),
        [count] => print_row(&measure(*count)),
        counts => table(counts),
    }
}

/// Runs each count in a child process and prints the rows as a table.
fn table(counts: &[usize]) {
    println!(
        "| logs | threads | RSS (MiB) | of which file pages | disk (MiB) | open | {APPENDS_PER_LOG} appends per log | close |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let exe = std::env::current_exe().expect("current_exe");
    for count in counts {
        let output = std::process::Command::new(&exe)
            .arg(count.to_string())
            .output()
            .expect("running a count");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
}

struct Row {
    logs: usize,
    threads: usize,
    rss_kib: u64,
    rss_file_kib: u64,
    disk_bytes: u64,
    open: Duration,
    append: Duration,
    close: Duration,
}

fn measure(count: usize) -> Row {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/many_logs/{count}"));
    let _ = std::fs::remove_dir_all(&base);
    let dirs: Vec<PathBuf> = (0..count).map(|i| base.join(format!("shard-{i:05}"))).collect();

    let started = Instant::now();
    let logs: Vec<Log> = dirs
        .iter()
        .map(|dir| Log::open(dir, Options::default()).expect("open"))
        .collect();
    let open = started.elapsed();

    let post = vec![b'x'; POST_BYTES];
    let started = Instant::now();
    for _ in 0..APPENDS_PER_LOG {
        for log in &logs {
            log.append(&post).expect("append");
        }
    }
    let append = started.elapsed();
    // Let the background pool settle (pre-faulting) before measuring.
    std::thread::sleep(Duration::from_millis(200));
    let (rss_kib, rss_file_kib) = rss_kib();
    let row = Row {
        logs: count,
        threads: threads(),
        rss_kib,
        rss_file_kib,
        disk_bytes: dirs.iter().map(|d| disk_bytes(d)).sum(),
        open,
        append,
        close: Duration::ZERO,
    };
    let started = Instant::now();
    for log in logs {
        log.close().expect("close");
    }
    let close = started.elapsed();
    let _ = std::fs::remove_dir_all(&base);
    Row { close, ..row }
}

fn print_row(row: &Row) {
    println!(
        "| {} | {} | {:.1} | {:.1} | {:.1} | {:.0} ms | {:.0} ms | {:.0} ms |",
        row.logs,
        row.threads,
        row.rss_kib as f64 / 1024.0,
        row.rss_file_kib as f64 / 1024.0,
        row.disk_bytes as f64 / f64::from(1 << 20),
        row.open.as_secs_f64() * 1e3,
        row.append.as_secs_f64() * 1e3,
        row.close.as_secs_f64() * 1e3,
    );
}

/// Threads of this process.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Resident memory of this process, and the part that is mapped file pages
/// (`VmRSS`, `RssFile`), in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssFile:"))
}

/// Bytes allocated on disk under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.blocks() * 512)
            .sum()
    })
}
