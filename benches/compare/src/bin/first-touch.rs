//! How fast this machine hands out memory it has not touched lately: the
//! cost every fresh page-cache page of a new log pays before a byte of it is
//! written.
//!
//! `cargo run --release --bin first-touch [GIB]` (default 2) touches GIB of
//! fresh anonymous memory one byte per 4 KiB page, frees it, and repeats:
//! at once, then after a pause of 5 s, then at once again. On a VM with free
//! page reporting (`virtio_balloon`), memory freed is handed back to the
//! host within seconds, and touching it again costs a fault in the host as
//! well as the guest's; memory freed a moment ago and not yet reported is
//! cheap. Each round prints its rate and the memory the guest reported to
//! the host since the previous round (`reported_kib` of the
//! `page_reporting` module, when it exists).

use std::time::{Duration, Instant};

const PAGE_BYTES: usize = 4096;
const PAUSE: Duration = Duration::from_secs(5);

/// KiB of memory the guest has reported to the host since boot, if it reports.
fn reported_kib() -> Option<u64> {
    std::fs::read_to_string("/sys/module/page_reporting/parameters/reported_kib")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Touches `bytes` of freshly allocated memory one page at a time and frees
/// it; returns GB/s.
fn touch(bytes: usize) -> f64 {
    let started = Instant::now();
    // Zeroed and this large, the allocation is a fresh anonymous mapping:
    // no page of it is backed until it is written.
    let mut memory = vec![0u8; bytes];
    for page in memory.chunks_mut(PAGE_BYTES) {
        page[0] = 1;
    }
    std::hint::black_box(&memory);
    drop(memory);
    bytes as f64 / started.elapsed().as_secs_f64() / 1e9
}

fn main() {
    let gib: usize = match std::env::args().nth(1).map(|arg| arg.parse()) {
        None => 2,
        Some(Ok(gib)) if gib > 0 => gib,
        Some(_) => {
            eprintln!("usage: first-touch [GIB] (a whole number of GiB, default 2)");
            std::process::exit(2);
        }
    };
    let bytes = gib << 30;
    let mut reported = reported_kib();
    let mut round = |label: &str| {
        let rate = touch(bytes);
        let now = reported_kib();
        let given_back = match (reported, now) {
            (Some(before), Some(after)) => format!("{} MiB", after.saturating_sub(before) / 1024),
            _ => "unknown (no page_reporting module)".to_owned(),
        };
        reported = now;
        println!("{label:<28} {gib} GiB at {rate:5.2} GB/s; reported to the host before and during: {given_back}");
    };
    round("first");
    round("again at once");
    std::thread::sleep(PAUSE);
    round(&format!("after a pause of {} s", PAUSE.as_secs()));
    round("again at once");
}
