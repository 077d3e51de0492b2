//! Appending on a replica: acknowledgement levels and their errors.

use std::time::Duration;

use replog::Error;
use replog::replication::Acks;

use super::*;

#[test]
fn a_follower_refuses_appends_naming_its_leader() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    let error = replicas[1].append(&[NewRecord::new(b"x")], Acks::Leader).unwrap_err();
    assert!(matches!(error, Error::NotLeader { leader: Some(A) }));
    let dir = tempfile::tempdir().unwrap();
    let fresh = open(dir.path(), C);
    assert!(matches!(
        fresh.append(&[NewRecord::new(b"x")], Acks::All),
        Err(Error::NotLeader { leader: None })
    ));
    assert_eq!(replicas[1].log().next_offset(), 0);
}

#[test]
fn acks_all_is_refused_up_front_below_min_insync() {
    let (_dirs, replicas) = trio();
    replicas[0].become_leader(1, &ALL, &[A]).unwrap();
    let error = replicas[0].append(&[NewRecord::new(b"x")], Acks::All).unwrap_err();
    assert!(matches!(
        error,
        Error::NotEnoughReplicas {
            in_sync: 1,
            required: 2
        }
    ));
    assert_eq!(replicas[0].log().next_offset(), 0, "nothing was written");
    replicas[0].append(&[NewRecord::new(b"x")], Acks::Leader).unwrap();
}

#[test]
fn acks_all_times_out_saying_the_records_may_still_commit() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    let error = replicas[0].append(&[NewRecord::new(b"x")], Acks::All).unwrap_err();
    assert!(matches!(
        error,
        Error::CommitTimeout {
            first_offset: 0,
            next_offset: 1
        }
    ));
    assert!(error.to_string().contains("may still commit"));
    // They do commit once the followers fetch.
    catch_up(&replicas[1], &replicas[0]);
    catch_up(&replicas[2], &replicas[0]);
    assert_eq!(replicas[0].high_watermark(), 1);
}

#[test]
fn acks_all_returns_once_the_high_watermark_covers_the_records() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    std::thread::scope(|scope| {
        let leader = &replicas[0];
        let producer = scope.spawn(move || leader.append(&[NewRecord::new(b"p")], Acks::All));
        while leader.log().next_offset() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        catch_up(&replicas[1], leader);
        assert!(!producer.is_finished(), "C has not fetched: not committed");
        catch_up(&replicas[2], leader);
        assert_eq!(producer.join().unwrap().unwrap(), 0);
    });
}

#[test]
fn losing_leadership_while_waiting_is_reported() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    std::thread::scope(|scope| {
        let leader = &replicas[0];
        let producer = scope.spawn(move || leader.append(&[NewRecord::new(b"p")], Acks::All));
        while leader.log().next_offset() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        leader.become_follower(2, B).unwrap();
        let error = producer.join().unwrap().unwrap_err();
        assert!(matches!(
            error,
            Error::LeadershipLost {
                first_offset: 0,
                next_offset: 1
            }
        ));
    });
}

#[test]
fn the_leader_stamps_its_epoch_on_every_batch() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 4);
    append_values(&replicas[0], &["a", "b"]);
    let epochs: Vec<u64> = replicas[0]
        .log()
        .batches(0)
        .map(|b| b.unwrap().leader_epoch())
        .collect();
    assert_eq!(epochs, vec![4, 4]);
}
