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
