//! Each trap of FIELD-NOTES section 4 (a bug that lost data in a production
//! system) as its own test.

use std::time::Duration;

use replog::Error;
use replog::replication::{Acks, Applied, FetchRequest, FetchResponse};

use super::*;

/// KIP-101: a follower that truncated to its high watermark on restart lost
/// records the leader had committed (the follower had them but had not yet
/// learned the new high watermark); when it then became leader, they were
/// gone. Truncation is by epoch, never by the local high watermark.
#[test]
fn a_restart_does_not_truncate_to_the_high_watermark() {
    let (dirs, mut replicas) = trio();
    lead(&replicas, 1);
    append_values(&replicas[0], &["c0", "c1", "c2"]);
    catch_up(&replicas[1], &replicas[0]);
    catch_up(&replicas[2], &replicas[0]);
    assert_eq!(replicas[0].high_watermark(), 3, "committed");
    assert_eq!(replicas[1].high_watermark(), 0, "B has not heard it yet");
    // B restarts, then the leader dies and B is elected from the ISR.
    let b = replicas.remove(1);
    b.close().unwrap();
    let b = open(dirs[1].path(), B);
    assert_eq!(b.log().next_offset(), 3, "the restart kept everything B had");
    drop(replicas.remove(0));
    let c = replicas.remove(0);
    b.become_leader(2, &[B, C], &[B, C]).unwrap();
    c.become_follower(2, B).unwrap();
    catch_up(&c, &b);
    for (offset, value) in ["c0", "c1", "c2"].iter().enumerate() {
        assert_eq!(b.read_committed(offset as u64).unwrap().value(), value.as_bytes());
    }
}

/// KAFKA-14704: a follower raised its high watermark from the leader's
/// before truncating its divergent suffix, so for a moment it served
/// divergent records as committed. Committed reads on a follower must always
/// be the leader's records.
#[test]
fn the_high_watermark_rises_only_over_records_that_match_the_leader() {
    let (_dirs, replicas) = trio();
    let (a, b, c) = (&replicas[0], &replicas[1], &replicas[2]);
    // B led epoch 1 briefly: one record reached A and C, two did not.
    b.become_leader(1, &ALL, &ALL).unwrap();
    a.become_follower(1, B).unwrap();
    c.become_follower(1, B).unwrap();
    append_values(b, &["shared"]);
    catch_up(a, b);
    catch_up(c, b);
    append_values(b, &["lost1", "lost2"]);
    // A leads epoch 2 and commits three records with C.
    a.become_leader(2, &ALL, &[A, C]).unwrap();
    c.become_follower(2, A).unwrap();
    b.become_follower(2, A).unwrap();
    append_values(a, &["new1", "new2", "new3"]);
    catch_up(c, a);
    assert_eq!(a.high_watermark(), 4);
    // An answer to a fetch from another position (3, epoch 2) reaches B,
    // whose log also ends at 3 but with its divergent epoch-1 records: it
    // must neither be appended after them nor raise B's high watermark.
    let elsewhere = FetchRequest {
        replica_id: C,
        current_epoch: 2,
        fetch_offset: 3,
        last_fetched_epoch: 2,
        max_bytes: MAX_BYTES,
    };
    let misdelivered = a.handle_fetch(&elsewhere);
    assert_eq!(records(&misdelivered).1, 4);
    assert!(matches!(b.apply(misdelivered), Err(Error::UnexpectedResponse { .. })));
    assert_eq!((b.log().next_offset(), b.high_watermark()), (3, 1), "as before");
    // B fetches step by step; after every step its committed records are
    // the leader's.
    for _ in 0..10 {
        let applied = fetch_once(b, a).unwrap();
        for offset in 0..b.high_watermark() {
            let mine = b.read_committed(offset).unwrap();
            assert_eq!(mine.value(), a.log().read(offset).unwrap().value(), "offset {offset}");
        }
        if matches!(applied, Applied::Records { records: 0, .. }) {
            break;
        }
    }
    assert_eq!(b.high_watermark(), 4);
    assert_eq!(batch_bytes(b), batch_bytes(a));
}

/// KAFKA-10706: a follower that truncated without cleaning its epoch cache
/// kept an epoch whose records were gone, and answered later fetches from
/// it wrongly. After a truncation the epoch history holds no epoch that
/// starts at or after the cut.
#[test]
fn truncation_cleans_the_epoch_history() {
    let (_dirs, replicas) = trio();
    let (a, b) = (&replicas[0], &replicas[1]);
    a.become_leader(1, &ALL, &ALL).unwrap();
    b.become_follower(1, A).unwrap();
    append_values(a, &["e1"]);
    catch_up(b, a);
    // B leads epoch 2 alone and writes records no one else will have.
    b.become_leader(2, &[B], &[B]).unwrap();
    append_values(b, &["e2a", "e2b"]);
    assert_eq!(b.log().epoch_history(), vec![(1, 0), (2, 1)]);
    a.become_leader(3, &ALL, &[A, C]).unwrap();
    append_values(a, &["e3"]);
    b.become_follower(3, A).unwrap();
    let response = a.handle_fetch(&b.fetch_request(MAX_BYTES).unwrap());
    assert_eq!(
        response,
        FetchResponse::Diverging {
            epoch: 1,
            end_offset: 1
        }
    );
    assert_eq!(b.apply(response).unwrap(), Applied::Truncated { offset: 1 });
    assert_eq!(
        b.log().epoch_history(),
        vec![(1, 0)],
        "epoch 2 is gone with its records"
    );
    assert_eq!(b.log().end_offset_for_epoch(2), Some((1, 1)));
    catch_up(b, a);
    assert_eq!(b.log().epoch_history(), a.log().epoch_history());
}

/// KRaft: a follower must never truncate below its high watermark (those
/// records are committed); a divergence that asks for it is refused and
/// changes nothing.
#[test]
fn a_follower_never_truncates_below_its_high_watermark() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    let (a, b) = (&replicas[0], &replicas[1]);
    append_values(a, &["a", "b", "c"]);
    catch_up(b, a);
    catch_up(&replicas[2], a);
    catch_up(b, a);
    assert_eq!(b.high_watermark(), 3);
    let error = b
        .apply(FetchResponse::Diverging {
            epoch: 0,
            end_offset: 1,
        })
        .unwrap_err();
    assert!(matches!(
        error,
        Error::BelowHighWatermark {
            offset: 0,
            high_watermark: 3
        }
    ));
    assert_eq!(b.log().next_offset(), 3, "nothing was cut");
}

/// Kafka's AlterPartition (and the TLA+ model of KIP-320): a leader that
/// relied on a smaller in-sync set before the controller recorded it could
/// commit records that a replica the controller still counted lacked. While
/// a shrink is only proposed, the high watermark counts the old set too.
#[test]
fn a_shrunk_isr_is_not_relied_on_before_it_is_confirmed() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let lag = options().replica_lag_max(Duration::from_millis(50));
    let (a, heard) = open_recorded(dirs[0].path(), A, lag);
    let b = open(dirs[1].path(), B);
    let c = open(dirs[2].path(), C);
    a.become_leader(1, &ALL, &ALL).unwrap();
    b.become_follower(1, A).unwrap();
    c.become_follower(1, A).unwrap();
    append_values(&a, &["0"]);
    catch_up(&b, &a);
    catch_up(&c, &a);
    assert_eq!(a.high_watermark(), 1);
    // C stops fetching; B goes on.
    append_values(&a, &["1", "2"]);
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(10));
        catch_up(&b, &a);
    }
    let proposal = heard.0.lock().proposals.last().cloned();
    assert_eq!(proposal, Some((1, vec![A, B])));
    assert_eq!(a.pending_isr(), Some(vec![A, B]));
    assert_eq!(a.high_watermark(), 1, "C still counts until the shrink is confirmed");
    a.confirm_isr(1, &[A, B]).unwrap();
    assert_eq!(a.isr(), vec![A, B]);
    assert_eq!(a.high_watermark(), 3);
    // C catches up and is proposed back.
    catch_up(&c, &a);
    assert_eq!(heard.0.lock().proposals.last().cloned(), Some((1, vec![A, B, C])));
}

/// Found by the simulation: a grow proposed twice (the second copy after a
/// later shrink was confirmed) let a coordinator record the stale grow, and
/// elect a replica that lacked acknowledged records. Every proposal names
/// the version of the set it replaces, so the coordinator records it only
/// against that version (compare-and-set).
#[test]
fn every_isr_proposal_names_the_version_it_replaces() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let lag = options().replica_lag_max(Duration::from_millis(50));
    let (a, heard) = open_recorded(dirs[0].path(), A, lag);
    let b = open(dirs[1].path(), B);
    let c = open(dirs[2].path(), C);
    a.become_leader(1, &ALL, &[A, B]).unwrap();
    b.become_follower(1, A).unwrap();
    c.become_follower(1, A).unwrap();
    assert_eq!(a.isr_version(), Some(0));
    append_values(&a, &["0"]);
    catch_up(&b, &a);
    catch_up(&c, &a);
    // The grow, proposed against version 0, and again while unanswered.
    std::thread::sleep(Duration::from_millis(60));
    catch_up(&b, &a);
    catch_up(&c, &a);
    assert_eq!(heard.0.lock().proposals.last().cloned(), Some((1, ALL.to_vec())));
    assert!(heard.0.lock().versions.iter().all(|v| *v == 0));
    a.confirm_isr(1, &ALL).unwrap();
    assert_eq!(a.isr_version(), Some(1));
    // C stops; the shrink is proposed against version 1.
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(10));
        catch_up(&b, &a);
    }
    assert_eq!(heard.0.lock().proposals.last().cloned(), Some((1, vec![A, B])));
    assert_eq!(heard.0.lock().versions.last(), Some(&1));
    a.confirm_isr(1, &[A, B]).unwrap();
    assert_eq!(a.isr_version(), Some(2));
    // A coordinator holding version 2 refuses the late copy of the grow,
    // which says it replaces version 0.
    assert_eq!(b.isr_version(), None, "a follower has no in-sync set");
}

/// KIP-320 fencing: a zombie leader (one that missed its replacement) must
/// neither get its records onto the new leader's followers nor see them
/// acknowledged with `Acks::All`; when it rejoins, they are truncated.
#[test]
fn a_zombie_leaders_writes_are_never_acknowledged_nor_replicated() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    let (a, b, c) = (&replicas[0], &replicas[1], &replicas[2]);
    append_values(a, &["committed"]);
    catch_up(b, a);
    catch_up(c, a);
    // B is elected for epoch 2; A does not hear of it.
    b.become_leader(2, &ALL, &[B, C]).unwrap();
    c.become_follower(2, B).unwrap();
    let error = a.append(&[NewRecord::new(b"zombie")], Acks::All).unwrap_err();
    assert!(matches!(error, Error::CommitTimeout { .. }));
    // C, at epoch 2, refuses anything from A and A refuses C's fetches.
    let zombie_answer = a.handle_fetch(&c.fetch_request(MAX_BYTES).unwrap());
    assert_eq!(zombie_answer, FetchResponse::UnknownEpoch);
    let stale = FetchResponse::Records {
        epoch: 1,
        fetch_offset: 1,
        last_fetched_epoch: 1,
        high_watermark: 2,
        log_start: 0,
        log_end: 2,
        batches: a.log().encoded_batches(1, MAX_BYTES).unwrap().unwrap().bytes,
    };
    assert!(matches!(c.apply(stale), Err(Error::UnexpectedResponse { .. })));
    assert_eq!(c.log().next_offset(), 1);
    // B fences A's old-epoch fetches; once A follows B, its record goes.
    let request = a_request_at_epoch(a, 1);
    assert_eq!(b.handle_fetch(&request), FetchResponse::FencedEpoch);
    append_values(b, &["new"]);
    a.become_follower(2, B).unwrap();
    catch_up(a, b);
    assert_eq!(values(a), vec![b"committed".to_vec(), b"new".to_vec()]);
}

/// A fetch request as `replica` would build it at `epoch`.
fn a_request_at_epoch(replica: &Replica, epoch: u64) -> replog::replication::FetchRequest {
    replog::replication::FetchRequest {
        replica_id: replica.id(),
        current_epoch: epoch,
        fetch_offset: replica.log().next_offset(),
        last_fetched_epoch: 1,
        max_bytes: MAX_BYTES,
    }
}

/// KIP-966: a replica that lost records it had reported (a crash under a
/// weak sync policy) must not count as in sync until it caught up again.
/// The leader sees its fetch offset go back and proposes it out.
#[test]
fn a_follower_that_lost_reported_records_leaves_the_isr() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let never = || {
        let log = Options::default().segment_bytes(64 * 1024).sync(SyncPolicy::Never);
        ReplicaOptions::new(log).ack_timeout(Duration::from_millis(200))
    };
    let (a, heard) = open_recorded(dirs[0].path(), A, never());
    let b = Replica::open(dirs[1].path(), B, never()).unwrap();
    let c = Replica::open(dirs[2].path(), C, never()).unwrap();
    a.become_leader(1, &ALL, &ALL).unwrap();
    b.become_follower(1, A).unwrap();
    c.become_follower(1, A).unwrap();
    append_values(&a, &["0", "1", "2"]);
    catch_up(&b, &a);
    catch_up(&c, &a);
    assert_eq!(a.high_watermark(), 3);
    // C loses power: nothing it had was synced.
    c.simulate_crash();
    let c = Replica::open(dirs[2].path(), C, never()).unwrap();
    assert_eq!(c.log().next_offset(), 0);
    assert!(c.unclean_recovery(), "it may have lost what A counted: not electable");
    c.become_follower(1, A).unwrap();
    fetch_once(&c, &a).unwrap();
    assert_eq!(heard.0.lock().proposals.last().cloned(), Some((1, vec![A, B])));
    a.confirm_isr(1, &[A, B]).unwrap();
    catch_up(&c, &a);
    assert!(!c.unclean_recovery(), "caught up with its leader");
    assert_eq!(heard.0.lock().proposals.last().cloned(), Some((1, vec![A, B, C])));
}
