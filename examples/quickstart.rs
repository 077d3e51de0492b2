//! A tour of replog as a timeline store would use it: posts appended as
//! keyed, timestamped records, read back by offset, by time and in order,
//! then a clean close and a reopen. Prints what it did and how fast.
//!
//! `cargo run --release --example quickstart`

use std::time::Instant;

use replog::{Log, NewRecord, Options, SyncPolicy};

const POSTS: u64 = 1_000_000;
const POST_BYTES: usize = 256;
const BATCH: usize = 100;

fn main() -> replog::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    println!("replog quickstart in {}", dir.path().display());

    let log = Log::open(dir.path(), Options::default().sync(SyncPolicy::Never))?;
    let body = vec![b'x'; POST_BYTES];
    let start_ms = 1_700_000_000_000i64;

    // Appends: batches of 100 posts, each keyed by its author.
    let authors: Vec<String> = (0..BATCH).map(|i| format!("user-{i}")).collect();
    let started = Instant::now();
    let mut posted = 0u64;
    while posted < POSTS {
        let batch: Vec<NewRecord<'_>> = authors
            .iter()
            .enumerate()
            .map(|(i, author)| {
                NewRecord::new(&body)
                    .key(author.as_bytes())
                    .timestamp_ms(start_ms + (posted + i as u64) as i64)
            })
            .collect();
        log.append_records(&batch)?;
        posted += BATCH as u64;
    }
    let elapsed = started.elapsed();
    report(
        "appended (SyncPolicy::Never, batches of 100)",
        POSTS,
        POST_BYTES,
        elapsed,
    );

    // One post at a time, as a request handler would.
    let started = Instant::now();
    for _ in 0..POSTS / 10 {
        log.append(&body)?;
    }
    report(
        "appended (SyncPolicy::Never, one per call)",
        POSTS / 10,
        POST_BYTES,
        started.elapsed(),
    );

    // Durable appends: each returns only once the post is on disk.
    let durable = Log::open(dir.path().join("durable"), Options::default().sync(SyncPolicy::Always))?;
    let started = Instant::now();
    for _ in 0..500 {
        durable.append(&body)?;
    }
    report(
        "appended (SyncPolicy::Always, one per call, 1 thread)",
        500,
        POST_BYTES,
        started.elapsed(),
    );
    durable.close()?;

    // Reads: zero-copy, every batch checksum verified.
    let started = Instant::now();
    let mut bytes = 0usize;
    for record in log.iter(0) {
        bytes += record?.value().len();
    }
    report(
        "read sequentially (iter)",
        log.next_offset(),
        bytes / log.next_offset() as usize,
        started.elapsed(),
    );

    // The fastest scan: whole stored batches, records borrowed from them.
    let started = Instant::now();
    let mut bytes = 0usize;
    for batch in log.batches(0) {
        bytes += batch?.records().map(|record| record.value().len()).sum::<usize>();
    }
    report(
        "read sequentially (batches)",
        log.next_offset(),
        bytes / log.next_offset() as usize,
        started.elapsed(),
    );

    let post = log.read(123_456)?;
    println!(
        "post 123456: author {}, {} bytes, timestamp {}",
        String::from_utf8_lossy(post.key().expect("posts have authors")),
        post.value().len(),
        post.timestamp_ms()
    );
    let since = log.offset_for_timestamp(start_ms + 500_000)?;
    println!("first post at or after t0 + 500 s: offset {since:?}");

    // Clean close, then reopen: no data is read.
    let next = log.next_offset();
    log.close()?;
    let started = Instant::now();
    let log = Log::open(dir.path(), Options::default())?;
    println!(
        "reopened {} records in {:.2} ms (clean shutdown: {})",
        log.next_offset(),
        started.elapsed().as_secs_f64() * 1e3,
        log.recovery_report().clean_shutdown
    );
    assert_eq!(log.next_offset(), next);
    log.close()
}

fn report(what: &str, records: u64, record_bytes: usize, elapsed: std::time::Duration) {
    let seconds = elapsed.as_secs_f64();
    let rate = records as f64 / seconds;
    let rate = if rate >= 1e5 {
        format!("{:.2} M records/s", rate / 1e6)
    } else {
        format!("{:.1} k records/s", rate / 1e3)
    };
    println!(
        "{what}: {records} records of {record_bytes} B in {:.1} ms = {rate}, {:.1} MB/s",
        seconds * 1e3,
        records as f64 * record_bytes as f64 / seconds / 1e6
    );
}
