//! Every kind of fetch response, and what `apply` does with it.

use replog::replication::{Applied, FetchRequest, FetchResponse};
use replog::{Damage, Error, codec};

use super::*;

#[test]
fn records_are_the_leaders_stored_batches_byte_for_byte_and_zero_copy() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    let (leader, follower) = (&replicas[0], &replicas[1]);
    append_values(leader, &["a", "b", "c"]);
    let request = follower.fetch_request(MAX_BYTES).unwrap();
    let response = leader.handle_fetch(&request);
    let FetchResponse::Records {
        ref batches,
        log_start,
        log_end,
        ..
    } = response
    else {
        panic!("expected records, got {response:?}");
    };
    let stored: Vec<u8> = batch_bytes(leader).concat();
    assert_eq!(&batches[..], &stored[..]);
    assert_eq!((log_start, log_end), (0, 3));
    let first_stored = leader.log().batches(0).next().unwrap().unwrap();
    assert_eq!(
        batches.as_ptr(),
        first_stored.as_bytes().as_ptr(),
        "the response shares the leader's mapping"
    );
    assert_eq!(
        follower.apply(response).unwrap(),
        Applied::Records {
            records: 3,
            high_watermark: 0
        }
    );
    assert_eq!(batch_bytes(follower), batch_bytes(leader));
}

#[test]
fn max_bytes_bounds_a_response_but_one_batch_always_goes() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    let (leader, follower) = (&replicas[0], &replicas[1]);
    append_values(leader, &["one", "two", "three"]);
    let mut request = follower.fetch_request(1).unwrap();
    let one_batch = batch_bytes(leader)[0].len();
    assert_eq!(records(&leader.handle_fetch(&request)).2, one_batch);
    request.max_bytes = 2 * one_batch as u64;
    assert_eq!(records(&leader.handle_fetch(&request)).2, 2 * one_batch);
}

#[test]
fn a_request_of_an_older_epoch_is_fenced_a_newer_one_unknown() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 3);
    let request = replicas[1].fetch_request(MAX_BYTES).unwrap();
    let older = FetchRequest {
        current_epoch: 2,
        ..request
    };
    let newer = FetchRequest {
        current_epoch: 4,
        ..request
    };
    assert_eq!(replicas[0].handle_fetch(&older), FetchResponse::FencedEpoch);
    assert_eq!(replicas[0].handle_fetch(&newer), FetchResponse::UnknownEpoch);
    assert_eq!(replicas[1].apply(FetchResponse::FencedEpoch).unwrap(), Applied::Refused);
}

#[test]
fn a_follower_answers_not_leader() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    let request = replicas[2].fetch_request(MAX_BYTES).unwrap();
    assert_eq!(replicas[1].handle_fetch(&request), FetchResponse::NotLeader);
}

#[test]
fn below_the_leaders_start_is_out_of_range_and_the_follower_resets() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let small = |id| {
        let log = Options::default().segment_bytes(4096);
        Replica::open(dirs[id as usize - 1].path(), ReplicaId(id), ReplicaOptions::new(log)).unwrap()
    };
    let (leader, follower) = (small(1), small(2));
    leader.become_leader(1, &[A, B], &[A, B]).unwrap();
    follower.become_follower(1, A).unwrap();
    let value = "x".repeat(1000);
    append_values(&leader, &[value.as_str(); 20]);
    let start = leader.log().delete_before(15).unwrap();
    assert!(start > 0);
    let request = follower.fetch_request(MAX_BYTES).unwrap();
    let response = leader.handle_fetch(&request);
    assert_eq!(response, FetchResponse::OffsetOutOfRange { log_start: start });
    assert_eq!(follower.apply(response).unwrap(), Applied::Reset { offset: start });
    assert_eq!(follower.log().start_offset(), start);
    catch_up(&follower, &leader);
    assert_eq!(batch_bytes(&follower), batch_bytes(&leader));
}

#[test]
fn a_mismatched_epoch_gets_diverging_and_the_follower_cuts_there() {
    let (_dirs, replicas) = trio();
    let (a, b) = (&replicas[0], &replicas[1]);
    // B led epoch 1 and wrote three records nobody else has.
    b.become_leader(1, &[B], &[B]).unwrap();
    append_values(b, &["b0", "b1", "b2"]);
    // A leads epoch 2 with its own records.
    a.become_leader(2, &ALL, &ALL).unwrap();
    append_values(a, &["a0", "a1"]);
    b.become_follower(2, A).unwrap();
    let request = b.fetch_request(MAX_BYTES).unwrap();
    assert_eq!((request.fetch_offset, request.last_fetched_epoch), (3, 1));
    let response = a.handle_fetch(&request);
    assert_eq!(
        response,
        FetchResponse::Diverging {
            epoch: 0,
            end_offset: 0
        }
    );
    assert_eq!(b.apply(response).unwrap(), Applied::Truncated { offset: 0 });
    assert_eq!(b.log().epoch_history(), vec![]);
    catch_up(b, a);
    assert_eq!(values(b), vec![b"a0".to_vec(), b"a1".to_vec()]);
}

#[test]
fn a_corrupt_batch_is_refused_and_changes_nothing() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    let (leader, follower) = (&replicas[0], &replicas[1]);
    append_values(leader, &["a", "b"]);
    let response = leader.handle_fetch(&follower.fetch_request(MAX_BYTES).unwrap());
    let FetchResponse::Records {
        epoch,
        fetch_offset,
        last_fetched_epoch,
        high_watermark,
        log_start,
        log_end,
        batches,
    } = response
    else {
        panic!("expected records");
    };
    for position in [0, 20, batches.len() - 1] {
        let mut flipped = batches.to_vec();
        flipped[position] ^= 0x10;
        let forged = FetchResponse::Records {
            epoch,
            fetch_offset,
            last_fetched_epoch,
            high_watermark,
            log_start,
            log_end,
            batches: flipped.into(),
        };
        let error = follower.apply(forged).unwrap_err();
        assert!(error.damage().is_some(), "flip at {position}: {error:?}");
        assert_eq!(follower.log().next_offset(), 0, "nothing was written");
    }
}

#[test]
fn records_that_do_not_continue_the_log_are_refused() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    let follower = &replicas[1];
    let batch = codec::encode_batch_to_vec(&[NewRecord::new(b"far")], 5, 1, 0);
    let forged = FetchResponse::Records {
        epoch: 1,
        fetch_offset: 0,
        last_fetched_epoch: 0,
        high_watermark: 6,
        log_start: 0,
        log_end: 6,
        batches: batch.into(),
    };
    let error = follower.apply(forged).unwrap_err();
    assert!(matches!(
        error,
        Error::InvalidBatch {
            damage: Damage::UnexpectedOffset { expected: 0, found: 5 },
            ..
        }
    ));
    assert_eq!(follower.high_watermark(), 0, "the high watermark did not move either");
}

#[test]
fn batches_of_a_later_epoch_than_their_leader_are_refused() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    let batch = codec::encode_batch_to_vec(&[NewRecord::new(b"future")], 0, 7, 0);
    let forged = FetchResponse::Records {
        epoch: 1,
        fetch_offset: 0,
        last_fetched_epoch: 0,
        high_watermark: 0,
        log_start: 0,
        log_end: 1,
        batches: batch.into(),
    };
    assert!(matches!(
        replicas[1].apply(forged),
        Err(Error::UnexpectedResponse { .. })
    ));
    assert_eq!(replicas[1].log().next_offset(), 0);
}

#[test]
fn a_divergence_that_cuts_nothing_or_a_start_already_reached_is_unexpected() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    let (leader, follower) = (&replicas[0], &replicas[1]);
    append_values(leader, &["a"]);
    catch_up(follower, leader);
    let nothing = FetchResponse::Diverging {
        epoch: 1,
        end_offset: 5,
    };
    assert!(matches!(follower.apply(nothing), Err(Error::UnexpectedResponse { .. })));
    let reached = FetchResponse::OffsetOutOfRange { log_start: 1 };
    assert!(matches!(follower.apply(reached), Err(Error::UnexpectedResponse { .. })));
    assert_eq!(values(follower), vec![b"a".to_vec()]);
}

#[test]
fn apply_on_a_leader_and_fetch_request_on_a_leader_are_refused() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    assert!(matches!(
        replicas[0].apply(FetchResponse::NotLeader),
        Err(Error::UnexpectedResponse { .. })
    ));
    assert!(matches!(
        replicas[0].fetch_request(MAX_BYTES),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn a_follower_under_sync_always_holds_durably_what_it_fetched_from() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    let (leader, follower) = (&replicas[0], &replicas[1]);
    append_values(leader, &["a", "b", "c"]);
    fetch_once(follower, leader).unwrap();
    let request = follower.fetch_request(MAX_BYTES).unwrap();
    assert_eq!(request.fetch_offset, 3);
    assert_eq!(follower.log().durable_offset(), 3, "what it reports is durable");
}

#[test]
fn a_follower_cut_inside_a_batch_is_sent_back_to_the_batch_start_uncounted() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    let (leader, follower) = (&replicas[0], &replicas[1]);
    let batch = [NewRecord::new(b"x"), NewRecord::new(b"y"), NewRecord::new(b"z")];
    leader.append(&batch, replog::replication::Acks::Leader).unwrap();
    catch_up(follower, leader);
    follower.log().truncate(1).unwrap();
    let response = leader.handle_fetch(&follower.fetch_request(MAX_BYTES).unwrap());
    assert_eq!(
        response,
        FetchResponse::Diverging {
            epoch: 1,
            end_offset: 0
        }
    );
    assert_eq!(
        leader.follower_progress()[0],
        (B, Some(3)),
        "the fetch from inside was not counted"
    );
    assert_eq!(follower.apply(response).unwrap(), Applied::Truncated { offset: 0 });
    catch_up(follower, leader);
    assert_eq!(batch_bytes(follower), batch_bytes(leader));
}

/// Under `SyncPolicy::Always` a long-poll waits for a sync of the leader's
/// to start on new records, not for the records (see
/// `Replica::handle_fetch_waiting`): the sync must wake it, long before
/// its wait runs out.
#[test]
fn a_long_poll_under_sync_always_is_answered_when_the_leader_syncs_new_records() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    let (leader, follower) = (&replicas[0], &replicas[1]);
    append_values(leader, &["a"]);
    catch_up(follower, leader);
    let request = follower.fetch_request(MAX_BYTES).unwrap();
    let max_wait = Duration::from_secs(20);
    let (response, waited) = std::thread::scope(|scope| {
        let poll = scope.spawn(|| {
            let start = std::time::Instant::now();
            (leader.handle_fetch_waiting(&request, max_wait), start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        let both = [NewRecord::new(b"b"), NewRecord::new(b"c")];
        leader.append(&both, replog::replication::Acks::Leader).unwrap();
        poll.join().unwrap()
    });
    assert!(
        waited < max_wait / 2,
        "the long-poll slept {waited:?}: the sync did not wake it"
    );
    let FetchResponse::Records {
        fetch_offset, batches, ..
    } = &response
    else {
        panic!("expected records, got {response:?}");
    };
    assert_eq!(*fetch_offset, 1);
    assert!(!batches.is_empty(), "woken with nothing to send");
    assert!(matches!(
        follower.apply(response).unwrap(),
        Applied::Records { records: 2, .. }
    ));
}
