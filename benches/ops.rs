//! One operation kind at a time, for counting instructions per operation
//! with callgrind (deterministic, unlike timings on a shared machine).
//!
//! ```text
//! cargo bench --bench ops --no-run        # prints the binary's path
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null <binary> append 100000 /tmp/ops
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null <binary> append 200000 /tmp/ops
//! ```
//!
//! The difference of the two totals divided by 100 000 is the cost of one
//! append; likewise `iter N`, `batches N` and `read N` on the log the last
//! `append` left in the directory. Phases: `append N` (256-byte records, one
//! per call, `SyncPolicy::Never`, into a fresh log), `iter N` (the first N
//! records through `Log::iter`), `batches N` (the first N batches through
//! `Log::batches`, records borrowed), `read N` (N reads at pseudo-random
//! offsets). Without arguments (as `cargo bench` runs it) it times each
//! phase once on a small log and prints the wall-clock rates.

use std::path::Path;
use std::time::Instant;

use replog::{Log, Options, SyncPolicy};

fn options() -> Options {
    Options::default()
        .segment_bytes(1 << 30)
        .sync(SyncPolicy::Never)
        .prefault_bytes(0)
}

fn run(phase: &str, n: u64, dir: &Path) -> u64 {
    let mut sum = 0u64;
    match phase {
        "append" => {
            let _ = std::fs::remove_dir_all(dir);
            let log = Log::open(dir, options()).expect("open");
            let value = [7u8; 256];
            for _ in 0..n {
                sum += log.append(value).expect("append");
            }
            log.close().expect("close");
        }
        "iter" => {
            let log = Log::open(dir, options()).expect("open");
            for record in log.iter(0).take(n as usize) {
                sum += record.expect("read").value().len() as u64;
            }
        }
        "batches" => {
            let log = Log::open(dir, options()).expect("open");
            for batch in log.batches(0).take(n as usize) {
                sum += batch
                    .expect("read")
                    .records()
                    .map(|r| r.value().len() as u64)
                    .sum::<u64>();
            }
        }
        "read" => {
            let log = Log::open(dir, options()).expect("open");
            let end = log.next_offset().max(1);
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                sum += log.read(x % end).expect("read").value().len() as u64;
            }
        }
        other => panic!("unknown phase {other:?}: append, iter, batches or read"),
    }
    sum
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if let [phase, n, dir] = &args[..] {
        let n = n.parse().expect("N must be a number");
        std::hint::black_box(run(phase, n, Path::new(dir)));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path().join("log");
    for (phase, n) in [
        ("append", 200_000),
        ("iter", 200_000),
        ("batches", 200_000),
        ("read", 50_000),
    ] {
        let started = Instant::now();
        std::hint::black_box(run(phase, n, &dir));
        let secs = started.elapsed().as_secs_f64();
        println!("{phase:>8}: {n} in {secs:.3} s ({:.2} M/s)", n as f64 / secs / 1e6);
    }
}
