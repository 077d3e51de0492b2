//! Consumers read committed records only.

use std::time::Duration;

use replog::Error;

use super::*;

/// A leads epoch 1; five records, of which B and C fetched the first three.
fn three_of_five_committed() -> (Vec<tempfile::TempDir>, Vec<Replica>) {
    let (dirs, replicas) = trio();
    lead(&replicas, 1);
    append_values(&replicas[0], &["0", "1", "2"]);
    catch_up(&replicas[1], &replicas[0]);
    catch_up(&replicas[2], &replicas[0]);
    append_values(&replicas[0], &["3", "4"]);
    assert_eq!(replicas[0].high_watermark(), 3);
    assert_eq!(replicas[0].follower_progress(), vec![(B, Some(3)), (C, Some(3))]);
    assert_eq!(replicas[1].follower_progress(), vec![], "a follower tracks no one");
    (dirs, replicas)
}

#[test]
fn reads_stop_at_the_high_watermark() {
    let (_dirs, replicas) = three_of_five_committed();
    let leader = &replicas[0];
    assert_eq!(leader.read_committed(2).unwrap().value(), &b"2"[..]);
    assert!(matches!(
        leader.read_committed(3),
        Err(Error::OffsetOutOfRange { offset: 3, end: 3, .. })
    ));
    assert_eq!(leader.log().read(4).unwrap().value(), &b"4"[..], "tools still see it");
    let committed: Vec<u64> = leader.iter_committed(1).map(|r| r.unwrap().offset()).collect();
    assert_eq!(committed, vec![1, 2]);
    assert_eq!(leader.iter_committed(3).count(), 0);
    assert!(matches!(
        leader.iter_committed(4).next(),
        Some(Err(Error::OffsetOutOfRange { .. }))
    ));
    let batches: Vec<u64> = leader.batches_committed(0).map(|b| b.unwrap().base_offset()).collect();
    assert_eq!(batches, vec![0, 1, 2]);
}

#[test]
fn wait_committed_wakes_when_the_high_watermark_passes() {
    let (_dirs, replicas) = three_of_five_committed();
    let leader = &replicas[0];
    assert!(leader.wait_committed(2, Duration::ZERO));
    assert!(!leader.wait_committed(4, Duration::from_millis(20)));
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| leader.wait_committed(4, Duration::from_secs(10)));
        catch_up(&replicas[1], leader);
        catch_up(&replicas[2], leader);
        assert!(waiter.join().unwrap());
    });
}

#[test]
fn a_follower_serves_what_it_knows_is_committed() {
    let (_dirs, replicas) = three_of_five_committed();
    let follower = &replicas[1];
    catch_up(follower, &replicas[0]);
    assert_eq!(follower.log().next_offset(), 5);
    assert_eq!(follower.high_watermark(), 3, "min(leader's, own end)");
    assert_eq!(follower.iter_committed(0).count(), 3);
}
