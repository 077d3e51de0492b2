//! Reading newest first (`Log::iter_rev`, `Log::batches_rev`): the same
//! records as forward iteration, reversed, from any bound; zero-copy; the
//! same error contract. And tailing (`Log::tail`).

mod common;

use common::rng::{Rng, seed};
use replog::{Error, Log, NewRecord, Options, SyncPolicy};

fn options() -> Options {
    Options::default()
        .segment_bytes(16 * 1024)
        .index_interval_bytes(256)
        .sync(SyncPolicy::Never)
}

/// A log of `n` records in batches of random sizes over many segments;
/// record `i` holds the value `v{i}` and, for even `i`, the key `k{i}`.
fn random_log(dir: &std::path::Path, rng: &mut Rng, n: u64) -> Log {
    let log = Log::open(dir, options()).unwrap();
    let mut next = 0;
    while next < n {
        let size = (rng.below(6) + 1).min(n - next);
        let values: Vec<String> = (next..next + size)
            .map(|i| format!("v{i}-{}", "x".repeat(i as usize % 50)))
            .collect();
        let keys: Vec<String> = (next..next + size).map(|i| format!("k{i}")).collect();
        let records: Vec<NewRecord<'_>> = values
            .iter()
            .zip(&keys)
            .enumerate()
            .map(|(j, (v, k))| {
                let record = NewRecord::new(v);
                if (next + j as u64).is_multiple_of(2) {
                    record.key(k)
                } else {
                    record
                }
            })
            .collect();
        assert_eq!(log.append_records(&records).unwrap(), next);
        next += size;
    }
    log
}

#[test]
fn reverse_iteration_is_forward_iteration_reversed_from_any_bound() {
    let seed = seed("reverse_iteration_is_forward_iteration_reversed_from_any_bound");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let n = 1500;
    let log = random_log(dir.path(), &mut rng, n);
    log.delete_before(300).unwrap();
    let start = log.start_offset();
    assert!(start > 0, "retention deleted a segment");
    let forward: Vec<_> = log.iter(start).map(|r| r.unwrap()).collect();
    let mut bounds: Vec<u64> = (0..40).map(|_| start + rng.below(n - start + 1)).collect();
    bounds.extend([start, start + 1, n - 1, n]);
    for before in bounds {
        let expected: Vec<_> = forward.iter().filter(|r| r.offset() < before).rev().collect();
        let got: Vec<_> = log.iter_rev(before).map(|r| r.unwrap()).collect();
        assert_eq!(got.len(), expected.len(), "seed {seed}: before {before}");
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(
                (g.offset(), g.key(), g.value(), g.timestamp_ms(), g.leader_epoch()),
                (e.offset(), e.key(), e.value(), e.timestamp_ms(), e.leader_epoch()),
                "seed {seed}: before {before}"
            );
        }
        let batch_bases: Vec<u64> = log.batches_rev(before).map(|b| b.unwrap().base_offset()).collect();
        let mut forward_bases: Vec<u64> = log
            .batches(start)
            .map(|b| b.unwrap().base_offset())
            .filter(|b| *b < before)
            .collect();
        forward_bases.reverse();
        assert_eq!(batch_bases, forward_bases, "seed {seed}: before {before}");
    }
}

#[test]
fn the_latest_records_share_the_mapping_and_ignore_later_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options()).unwrap();
    for i in 0..100 {
        log.append(format!("post {i}")).unwrap();
    }
    let mut latest = log.iter_rev(log.next_offset());
    log.append("after").unwrap();
    let newest = latest.next().unwrap().unwrap();
    assert_eq!((newest.offset(), &newest.value()[..]), (99, &b"post 99"[..]));
    let batch = log.batches(99).next().unwrap().unwrap();
    let range = batch.as_bytes().as_ptr_range();
    assert!(range.contains(&newest.value().as_ptr()), "zero-copy");
    assert_eq!(latest.count(), 99);
}

#[test]
fn out_of_range_bounds_yield_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options()).unwrap();
    log.append("a").unwrap();
    let mut beyond = log.iter_rev(5);
    assert!(matches!(
        beyond.next(),
        Some(Err(Error::OffsetOutOfRange { offset: 5, .. }))
    ));
    assert!(beyond.next().is_none());
    assert_eq!(log.iter_rev(0).count(), 0);
    assert_eq!(log.batches_rev(1).count(), 1);
}

#[test]
fn damage_ends_reverse_iteration_with_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(seed("damage_ends_reverse_iteration_with_corrupt"));
    let log = random_log(dir.path(), &mut rng, 600);
    let bases = common::files::segment_bases(dir.path());
    drop(log);
    // Flip a byte inside the second segment's records.
    let path = common::files::segment_path(dir.path(), bases[1]);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[replog::codec::SEGMENT_HEADER_BYTES + 200] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let log = Log::open(dir.path(), options()).unwrap();
    let mut iter = log.iter_rev(log.next_offset());
    let mut seen = 0;
    let error = loop {
        match iter.next() {
            Some(Ok(record)) => {
                assert!(record.offset() >= bases[1], "only newer records before the damage");
                seen += 1;
            }
            Some(Err(error)) => break error,
            None => panic!("the damage was not reported"),
        }
    };
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");
    assert!(iter.next().is_none(), "the iteration ends after an error");
    assert!(seen > 0);
}

// Tailing (`Log::tail`) lives here too: the other new way to read.

#[test]
fn a_tail_returns_every_record_as_it_is_appended_and_stops_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options()).unwrap();
    log.append("before").unwrap();
    let tail = log.tail(0);
    let stop = tail.stop_handle();
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || tail.map(|r| r.unwrap().value().to_vec()).collect::<Vec<_>>());
        for i in 0..200 {
            log.append(format!("post {i}")).unwrap();
            if i % 50 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        while !log.wait_for(200, std::time::Duration::from_secs(1)) {}
        // Let the reader catch up, then stop it while it waits.
        std::thread::sleep(std::time::Duration::from_millis(50));
        stop.stop();
        let got = reader.join().unwrap();
        assert_eq!(got.len(), 201);
        assert_eq!(got[0], b"before");
        assert_eq!(got[200], b"post 199");
    });
}

#[test]
fn a_tail_with_a_timeout_ends_when_nothing_comes_and_resumes_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options()).unwrap();
    let mut tail = log.tail(0).timeout(std::time::Duration::from_millis(20));
    let started = std::time::Instant::now();
    assert!(tail.next().is_none());
    assert!(started.elapsed() >= std::time::Duration::from_millis(20));
    log.append("late").unwrap();
    assert_eq!(tail.next().unwrap().unwrap().offset(), 0);
    assert_eq!(tail.next_offset(), 1);
}
