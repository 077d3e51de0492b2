//! Replication with real threads: follower drivers over the in-memory
//! transport, producers with `Acks::All`.

use std::sync::Arc;
use std::time::Duration;

use replog::replication::{Acks, DriverOptions, FollowerDriver, InMemoryTransport, Transport};

use super::*;

#[test]
fn drivers_replicate_and_acks_all_commits_on_every_replica() {
    let (_dirs, replicas) = trio();
    lead(&replicas, 1);
    let replicas: Vec<Arc<Replica>> = replicas.into_iter().map(Arc::new).collect();
    let transport = Arc::new(InMemoryTransport::with_poll_wait(Duration::from_millis(20)));
    for replica in &replicas {
        transport.register(replica);
    }
    let drivers: Vec<FollowerDriver> = replicas[1..]
        .iter()
        .map(|r| {
            let transport: Arc<dyn Transport> = transport.clone();
            FollowerDriver::start(Arc::clone(r), transport, DriverOptions::default()).unwrap()
        })
        .collect();
    let leader = &replicas[0];
    std::thread::scope(|scope| {
        for producer in 0..4 {
            scope.spawn(move || {
                for i in 0..25 {
                    let value = format!("p{producer}-{i}");
                    let offset = leader.append(&[NewRecord::new(value.as_bytes())], Acks::All).unwrap();
                    assert!(leader.high_watermark() > offset);
                }
            });
        }
    });
    assert_eq!(leader.high_watermark(), 100);
    for follower in &replicas[1..] {
        assert!(follower.log().wait_for(99, Duration::from_secs(5)));
    }
    for driver in drivers {
        driver.stop();
    }
    for follower in &replicas[1..] {
        assert_eq!(batch_bytes(follower), batch_bytes(leader));
    }
}

#[test]
fn an_unreachable_leader_is_an_error_and_the_driver_keeps_trying() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = Arc::new(open(dirs[0].path(), A));
    let b = Arc::new(open(dirs[1].path(), B));
    a.become_leader(1, &[A, B], &[A, B]).unwrap();
    b.become_follower(1, A).unwrap();
    append_values(&a, &["x"]);
    let transport = Arc::new(InMemoryTransport::with_poll_wait(Duration::from_millis(10)));
    let request = b.fetch_request(MAX_BYTES).unwrap();
    assert!(matches!(
        transport.fetch(A, &request),
        Err(replog::Error::Unreachable { replica: A })
    ));
    let as_dyn: Arc<dyn Transport> = transport.clone();
    let driver = FollowerDriver::start(Arc::clone(&b), as_dyn, DriverOptions::default()).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    transport.register(&a);
    assert!(b.log().wait_for(0, Duration::from_secs(5)));
    driver.stop();
}

/// A coordinator in the same process, recording each proposal made against
/// the set it holds (compare-and-set on the version) and confirming it from
/// inside the listener (listeners run with no replica lock held).
#[derive(Default)]
struct InlineCoordinator {
    leader: std::sync::OnceLock<std::sync::Weak<Replica>>,
    recorded_version: Mutex<u64>,
}

impl replog::replication::ReplicaListener for InlineCoordinator {
    fn isr_change_proposed(&self, _: ReplicaId, epoch: u64, version: u64, proposed: &[ReplicaId]) {
        let mut recorded = self.recorded_version.lock();
        if version != *recorded {
            return;
        }
        if let Some(leader) = self.leader.get().and_then(std::sync::Weak::upgrade) {
            *recorded += 1;
            leader.confirm_isr(epoch, proposed).unwrap();
        }
    }
}

#[test]
fn a_dead_follower_is_dropped_from_the_isr_and_acks_all_goes_on() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let coordinator = Arc::new(InlineCoordinator::default());
    let leader_options = options()
        .replica_lag_max(Duration::from_millis(100))
        .ack_timeout(Duration::from_secs(10))
        .listener(coordinator.clone());
    let a = Arc::new(Replica::open(dirs[0].path(), A, leader_options).unwrap());
    coordinator.leader.set(Arc::downgrade(&a)).unwrap();
    let b = Arc::new(open(dirs[1].path(), B));
    let c = Arc::new(open(dirs[2].path(), C));
    a.become_leader(1, &ALL, &ALL).unwrap();
    b.become_follower(1, A).unwrap();
    c.become_follower(1, A).unwrap();
    let transport = Arc::new(InMemoryTransport::with_poll_wait(Duration::from_millis(20)));
    transport.register(&a);
    let start = |replica: &Arc<Replica>| {
        let transport: Arc<dyn Transport> = transport.clone();
        FollowerDriver::start(Arc::clone(replica), transport, DriverOptions::default()).unwrap()
    };
    let driver_b = start(&b);
    let driver_c = start(&c);
    a.append(&[NewRecord::new(b"all three")], Acks::All).unwrap();
    driver_c.stop();
    let offset = a.append(&[NewRecord::new(b"after C died")], Acks::All).unwrap();
    assert_eq!(a.isr(), vec![A, B]);
    assert!(a.high_watermark() > offset);
    // C comes back, catches up and is confirmed back in.
    let driver_c = start(&c);
    assert!(c.log().wait_for(offset, Duration::from_secs(5)));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while a.isr() != ALL.to_vec() && std::time::Instant::now() < deadline {
        a.append(&[NewRecord::new(b"more")], Acks::All).unwrap();
    }
    assert_eq!(a.isr(), ALL.to_vec());
    driver_b.stop();
    driver_c.stop();
}
