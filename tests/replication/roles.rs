//! Roles and epochs: who may lead, epochs never go back, what a restart keeps.

use replog::replication::Role;
use replog::{Damage, Error};

use super::*;

#[test]
fn epochs_never_go_backward() {
    let (_dirs, replicas) = trio();
    let a = &replicas[0];
    a.become_follower(5, B).unwrap();
    assert!(matches!(
        a.become_follower(4, B),
        Err(Error::StaleEpoch { given: 4, current: 5 })
    ));
    assert!(matches!(
        a.become_leader(4, &ALL, &ALL),
        Err(Error::StaleEpoch { given: 4, .. })
    ));
    assert_eq!((a.epoch(), a.role(), a.leader()), (5, Role::Follower, Some(B)));
}

#[test]
fn a_leader_needs_an_epoch_above_every_epoch_in_its_log() {
    let (_dirs, replicas) = trio();
    let a = &replicas[0];
    a.become_leader(3, &ALL, &ALL).unwrap();
    append_values(a, &["x"]);
    a.become_follower(3, B).unwrap_err();
    a.become_follower(4, B).unwrap();
    // Epoch 4 is above every epoch in the log: it may lead it.
    a.become_leader(4, &ALL, &ALL).unwrap();
    append_values(a, &["y"]);
    a.become_follower(5, B).unwrap();
    assert!(matches!(a.become_leader(4, &ALL, &ALL), Err(Error::StaleEpoch { .. })));
    a.become_leader(6, &ALL, &ALL).unwrap();
    assert_eq!(a.role(), Role::Leader);
}

#[test]
fn a_restarted_leader_needs_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), A);
    a.become_leader(2, &ALL, &ALL).unwrap();
    append_values(&a, &["x"]);
    a.close().unwrap();
    let a = open(dir.path(), A);
    assert_eq!((a.epoch(), a.role(), a.leader()), (2, Role::Follower, None));
    assert!(matches!(a.become_leader(2, &ALL, &ALL), Err(Error::StaleEpoch { .. })));
    a.become_leader(3, &ALL, &ALL).unwrap();
}

#[test]
fn invalid_memberships_are_refused() {
    let (_dirs, replicas) = trio();
    let a = &replicas[0];
    let invalid = |r: replog::Result<()>| matches!(r, Err(Error::InvalidArgument { .. }));
    assert!(invalid(a.become_leader(1, &[B, C], &[B])));
    assert!(invalid(a.become_leader(1, &ALL, &[B])));
    assert!(invalid(a.become_leader(1, &[A, B], &[A, C])));
    assert!(invalid(a.become_follower(1, A)));
    a.become_leader(1, &ALL, &ALL).unwrap();
    assert!(invalid(a.confirm_isr(1, &[B, C])));
    assert!(invalid(a.become_follower(1, B)));
    assert!(matches!(a.confirm_isr(0, &ALL), Err(Error::StaleEpoch { .. })));
    assert_eq!(a.isr(), ALL.to_vec());
}

#[test]
fn epoch_and_high_watermark_survive_a_restart() {
    let (dirs, replicas) = trio();
    lead(&replicas, 7);
    append_values(&replicas[0], &["a", "b"]);
    catch_up(&replicas[1], &replicas[0]);
    catch_up(&replicas[2], &replicas[0]);
    catch_up(&replicas[1], &replicas[0]);
    assert_eq!((replicas[0].high_watermark(), replicas[1].high_watermark()), (2, 2));
    for replica in replicas {
        replica.close().unwrap();
    }
    for (dir, id) in dirs.iter().zip(ALL).take(2) {
        let replica = open(dir.path(), id);
        assert_eq!((replica.epoch(), replica.high_watermark()), (7, 2));
        assert_eq!(replica.read_committed(1).unwrap().value(), &b"b"[..]);
    }
}

#[test]
fn a_directory_of_another_replica_or_a_damaged_replica_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path(), A).close().unwrap();
    assert!(matches!(
        Replica::open(dir.path(), B, options()),
        Err(Error::ReplicaMismatch { stored: A, given: B })
    ));
    let path = dir.path().join("replica");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[33] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let error = Replica::open(dir.path(), A, options()).unwrap_err();
    assert!(matches!(
        error,
        Error::Corrupt {
            damage: Damage::ChecksumMismatch { .. },
            ..
        }
    ));
    assert!(error.to_string().contains("replica"), "{error}");
}

#[test]
fn the_listener_hears_role_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, heard) = open_recorded(dir.path(), A, options());
    a.become_follower(1, B).unwrap();
    a.become_leader(2, &ALL, &ALL).unwrap();
    assert_eq!(
        heard.0.lock().roles,
        vec![(1, Role::Follower, Some(B)), (2, Role::Leader, Some(A))]
    );
}
