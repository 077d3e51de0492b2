//! Malformed bytes from a peer: `Log::append_encoded` on mutated copies of
//! a leader's batches never panics, refuses what is wrong with a typed
//! error that changes nothing, and appends only byte-identical batches.
//!
//! Randomized: prints its seed; `REPLOG_SEED=<seed>` replays it.

mod common;

use common::rng::{Rng, seed};
use replog::{Error, Log, NewRecord, Options, SyncPolicy};

fn options() -> Options {
    Options::default().segment_bytes(16 << 10).sync(SyncPolicy::Never)
}

/// The leader's batches, each as stored, with its base offset.
fn leader_batches(rng: &mut Rng) -> (tempfile::TempDir, Vec<(u64, Vec<u8>)>) {
    let dir = tempfile::tempdir().unwrap();
    let leader = Log::open(dir.path(), options()).unwrap();
    for epoch in 1..=4u64 {
        leader.set_leader_epoch(epoch * 2).unwrap();
        for _ in 0..40 {
            let count = rng.in_range(1..6);
            let values: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    let len = rng.in_range(0..200);
                    rng.bytes(len)
                })
                .collect();
            let timestamp_ms = rng.below(1000) as i64;
            let records: Vec<NewRecord<'_>> = values
                .iter()
                .map(|v| NewRecord::new(v).key(b"k").timestamp_ms(timestamp_ms))
                .collect();
            leader.append_records(&records).unwrap();
        }
    }
    let batches = leader
        .batches(0)
        .map(|b| {
            let b = b.unwrap();
            (b.base_offset(), b.as_bytes().to_vec())
        })
        .collect();
    (dir, batches)
}

/// One of the ways a peer's bytes go wrong.
fn mutate(rng: &mut Rng, mut bytes: Vec<u8>, batches: &[(u64, Vec<u8>)]) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    let at = rng.below(bytes.len() as u64) as usize;
    match rng.below(7) {
        0 => bytes[at] ^= 1 << rng.below(8),
        1 => bytes[at] = rng.below(256) as u8,
        2 => bytes.truncate(at),
        3 => {
            let len = rng.in_range(1..100);
            bytes.extend(rng.bytes(len));
        }
        4 => {
            // A batch from elsewhere in the leader's log.
            let other = &batches[rng.below(batches.len() as u64) as usize].1;
            bytes.extend_from_slice(other);
        }
        5 => {
            let end = (at + rng.in_range(1..64)).min(bytes.len());
            bytes[at..end].fill(0);
        }
        _ => {} // unchanged: valid input must be accepted
    }
    bytes
}

#[test]
fn malformed_batches_from_a_peer_change_nothing() {
    let mut rng = Rng::new(seed("malformed_batches_from_a_peer_change_nothing"));
    let (_leader_dir, batches) = leader_batches(&mut rng);
    let dir = tempfile::tempdir().unwrap();
    let follower = Log::open(dir.path(), options()).unwrap();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..3000 {
        let next = follower.next_offset();
        let Some(first) = batches.iter().position(|(base, _)| *base == next) else {
            // Caught up: start over, from the reset path a lagging follower takes.
            follower.reset(0).unwrap();
            continue;
        };
        let count = rng.in_range(1..4).min(batches.len() - first);
        let chunk: Vec<u8> = batches[first..first + count]
            .iter()
            .flat_map(|(_, b)| b.clone())
            .collect();
        let input = mutate(&mut rng, chunk, &batches);
        let before = (
            follower.next_offset(),
            follower.epoch_history(),
            follower.leader_epoch(),
        );
        match follower.append_encoded(&input) {
            Ok(end) => {
                accepted += 1;
                assert_eq!(end, follower.next_offset());
                // Only whole, unchanged leader batches went in.
                for batch in follower.batches(next) {
                    let batch = batch.unwrap();
                    let (_, original) = batches.iter().find(|(base, _)| *base == batch.base_offset()).unwrap();
                    assert_eq!(&batch.as_bytes()[..], &original[..]);
                }
            }
            Err(
                Error::InvalidBatch { .. }
                | Error::EmptyBatch
                | Error::RecordTooLarge { .. }
                | Error::BatchTooLarge { .. },
            ) => {
                refused += 1;
                let after = (
                    follower.next_offset(),
                    follower.epoch_history(),
                    follower.leader_epoch(),
                );
                assert_eq!(after, before, "a refused input changed the log");
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    println!("accepted {accepted}, refused {refused}");
    assert!(
        accepted > 100 && refused > 1000,
        "accepted {accepted}, refused {refused}"
    );
    // Whatever got in reads back completely.
    assert_eq!(follower.iter(0).filter(|r| r.is_err()).count(), 0);
}
