//! Three replicas of one log in one process, a writer that needs every
//! acknowledged record to survive, and a leader that dies mid-stream.
//!
//! - Replicas 1, 2 and 3 each own a log (`SyncPolicy::Always`) in a
//!   temporary directory; they reach each other through an
//!   `InMemoryTransport`, and a `FollowerDriver` keeps each one fetching
//!   whenever it follows.
//! - A coordinator thread stands for the application's control plane: it
//!   hears the leader's in-sync set proposals through a `ReplicaListener`,
//!   records them, then confirms them; it elects leaders.
//! - A writer thread appends with `Acks::All` and notes every acknowledged
//!   `(offset, value)`. Mid-stream the coordinator kills the leader (it
//!   becomes unreachable and is never used again) and promotes a member of
//!   the confirmed in-sync set with a new epoch; the writer retries against
//!   whichever replica leads.
//!
//! At the end the example prints how long writes were unavailable and the
//! write rate, and checks that every acknowledged record is in the new
//! leader's committed log, unchanged, at its offset (it exits non-zero if
//! not).
//!
//! `cargo run --release --example replicated`

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use replog::replication::{
    Acks, DriverOptions, FollowerDriver, InMemoryTransport, Replica, ReplicaId, ReplicaListener, ReplicaOptions,
    Transport,
};
use replog::{Error, NewRecord, Options, SyncPolicy};

const IDS: [ReplicaId; 3] = [ReplicaId(1), ReplicaId(2), ReplicaId(3)];
/// How long the writer runs before the leader is killed, and after.
const RUN_BEFORE_KILL: Duration = Duration::from_millis(1500);
const RUN_AFTER_FAILOVER: Duration = Duration::from_millis(1500);

/// What the replicas tell the coordinator, and what main asks of it.
enum Event {
    /// A leader proposed an in-sync set.
    IsrProposed {
        leader: ReplicaId,
        epoch: u64,
        /// The version of the confirmed set it would replace.
        version: u64,
        isr: Vec<ReplicaId>,
    },
    /// Kill the current leader and elect another.
    KillLeader,
    Stop,
}

/// The listener every replica gets: forwards proposals to the coordinator
/// thread. (Listeners run with no replica lock held, so it could call
/// `confirm_isr` itself; one thread doing record-then-confirm keeps the
/// coordinator's record and the leader's set in the same order.)
struct ToCoordinator(Mutex<Sender<Event>>);

impl ReplicaListener for ToCoordinator {
    fn isr_change_proposed(&self, leader: ReplicaId, epoch: u64, version: u64, proposed: &[ReplicaId]) {
        let event = Event::IsrProposed {
            leader,
            epoch,
            version,
            isr: proposed.to_vec(),
        };
        let _ = self.0.lock().unwrap().send(event);
    }
}

/// Who leads, as producers learn it (a metadata service, in a real system).
#[derive(Default)]
struct Metadata {
    leader: RwLock<Option<Arc<Replica>>>,
}

impl Metadata {
    fn leader(&self) -> Option<Arc<Replica>> {
        self.leader.read().unwrap().clone()
    }
}

/// The control plane: the epoch, the leader, and the confirmed in-sync set
/// it has recorded (what it elects from) with its version.
struct Coordinator {
    replicas: Vec<Arc<Replica>>,
    transport: Arc<InMemoryTransport>,
    metadata: Arc<Metadata>,
    epoch: u64,
    leader: ReplicaId,
    isr: Vec<ReplicaId>,
    /// 0 for the set given to `become_leader`, one more at each confirm.
    isr_version: u64,
    dead: Vec<ReplicaId>,
    /// When the last failover ended (the new leader in place).
    failed_over: Option<Instant>,
}

impl Coordinator {
    fn replica(&self, id: ReplicaId) -> &Arc<Replica> {
        self.replicas
            .iter()
            .find(|r| r.id() == id)
            .expect("a replica of the log")
    }

    /// Epoch 1: replica 1 leads, everyone is in sync.
    fn start(&mut self) -> replog::Result<()> {
        self.epoch = 1;
        self.leader = IDS[0];
        self.isr = IDS.to_vec();
        self.replica(IDS[0]).become_leader(1, &IDS, &IDS)?;
        for id in &IDS[1..] {
            self.replica(*id).become_follower(1, IDS[0])?;
        }
        *self.metadata.leader.write().unwrap() = Some(Arc::clone(self.replica(IDS[0])));
        Ok(())
    }

    fn run(mut self, events: Receiver<Event>) -> replog::Result<Self> {
        for event in events {
            match event {
                Event::IsrProposed {
                    leader,
                    epoch,
                    version,
                    isr,
                } => {
                    // Only the live leader of the current epoch is listened
                    // to, and only about the set recorded now (a late or
                    // repeated proposal is about an older one).
                    let current = leader == self.leader && epoch == self.epoch && version == self.isr_version;
                    if !current || self.dead.contains(&leader) {
                        continue;
                    }
                    // Record first, then confirm: the set elected from is
                    // never one the leader stopped counting.
                    println!(
                        "  coordinator: epoch {epoch}: in-sync set {:?} -> {:?}",
                        ids(&self.isr),
                        ids(&isr)
                    );
                    self.isr = isr.clone();
                    self.isr_version += 1;
                    self.replica(leader).confirm_isr(epoch, &isr)?;
                }
                Event::KillLeader => self.fail_over()?,
                Event::Stop => break,
            }
        }
        Ok(self)
    }

    /// The leader's machine dies: unreachable from now on, and nobody uses
    /// it again. The first live member of the confirmed in-sync set leads
    /// a new epoch; the other live replicas follow it.
    fn fail_over(&mut self) -> replog::Result<()> {
        let old = self.leader;
        self.transport.unregister(old);
        self.dead.push(old);
        *self.metadata.leader.write().unwrap() = None;
        let isr: Vec<ReplicaId> = self.isr.iter().copied().filter(|id| !self.dead.contains(id)).collect();
        // With none (the followers had been proposed out for lagging), no
        // replica can lead without losing acknowledged records: stop.
        let new = *isr
            .first()
            .expect("no live member of the confirmed in-sync set to elect");
        self.epoch += 1;
        println!(
            "  coordinator: replica {} killed; replica {} leads epoch {} with in-sync set {:?}",
            old.0,
            new.0,
            self.epoch,
            ids(&isr)
        );
        self.replica(new).become_leader(self.epoch, &IDS, &isr)?;
        for id in IDS.iter().filter(|id| **id != new && !self.dead.contains(id)) {
            self.replica(*id).become_follower(self.epoch, new)?;
        }
        self.leader = new;
        self.isr = isr;
        self.isr_version = 0;
        *self.metadata.leader.write().unwrap() = Some(Arc::clone(self.replica(new)));
        self.failed_over = Some(Instant::now());
        Ok(())
    }
}

fn ids(set: &[ReplicaId]) -> Vec<u64> {
    set.iter().map(|id| id.0).collect()
}

/// What the writer saw.
#[derive(Default)]
struct Written {
    /// Every acknowledged record: offset -> value.
    acked: BTreeMap<u64, Vec<u8>>,
    /// Acknowledged before the kill, and after the failover.
    acked_before: u64,
    /// Start of the first append that failed after the leader died (the
    /// one blocked on it when it died, usually), and the first
    /// acknowledgement by another leader.
    unavailable_from: Option<Instant>,
    available_again: Option<Instant>,
    errors: BTreeMap<String, u64>,
}

/// Appends records `post 0`, `post 1`, ... one per call with `Acks::All`,
/// retrying each until it is acknowledged, until `stop` says so.
fn write(metadata: &Metadata, killed: &RwLock<Option<Instant>>, stop: &RwLock<bool>) -> Written {
    let mut written = Written::default();
    let mut seq = 0u64;
    while !*stop.read().unwrap() {
        let value = format!("post {seq:08} {}", "x".repeat(240)).into_bytes();
        let called = Instant::now();
        let result = match metadata.leader() {
            Some(leader) => leader
                .append(&[NewRecord::new(&value)], Acks::All)
                .map(|offset| (offset, leader.id())),
            None => Err(Error::NotLeader { leader: None }),
        };
        match result {
            Ok((offset, leader)) => {
                if leader != IDS[0] && written.available_again.is_none() {
                    written.available_again = Some(Instant::now());
                }
                if killed.read().unwrap().is_none() {
                    written.acked_before += 1;
                }
                written.acked.insert(offset, value);
                seq += 1;
            }
            Err(error) => {
                // Not acknowledged: it may or may not be in the log, and is
                // sent again (a retried record may appear twice; only
                // acknowledged offsets are checked).
                if killed.read().unwrap().is_some() {
                    written.unavailable_from.get_or_insert(called);
                }
                let kind = format!("{error:?}");
                let kind = kind.split([' ', '{', '(']).next().unwrap_or("").to_owned();
                *written.errors.entry(kind).or_default() += 1;
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
    written
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dirs: Vec<tempfile::TempDir> = IDS.iter().map(|_| tempfile::tempdir()).collect::<Result<_, _>>()?;
    let (events, inbox) = mpsc::channel();
    let listener = Arc::new(ToCoordinator(Mutex::new(events.clone())));
    // Quick failover: a follower that has not caught up for 500 ms is
    // proposed out of the in-sync set (so a slow one does not stall
    // writes for long), and a write the dead leader cannot commit gives
    // up after 300 ms (the writer then asks who leads now).
    let options = ReplicaOptions::new(Options::default().sync(SyncPolicy::Always))
        .min_insync_replicas(2)
        .replica_lag_max(Duration::from_millis(500))
        .ack_timeout(Duration::from_millis(300))
        .listener(listener);
    let replicas: Vec<Arc<Replica>> = IDS
        .iter()
        .zip(&dirs)
        .map(|(id, dir)| Replica::open(dir.path(), *id, options.clone()).map(Arc::new))
        .collect::<replog::Result<_>>()?;

    let transport = Arc::new(InMemoryTransport::with_poll_wait(Duration::from_millis(50)));
    for replica in &replicas {
        transport.register(replica);
    }
    let metadata = Arc::new(Metadata::default());
    let mut coordinator = Coordinator {
        replicas: replicas.clone(),
        transport: Arc::clone(&transport),
        metadata: Arc::clone(&metadata),
        epoch: 0,
        leader: IDS[0],
        isr: Vec::new(),
        isr_version: 0,
        dead: Vec::new(),
        failed_over: None,
    };
    coordinator.start()?;
    // A driver per replica: it fetches while its replica follows and idles
    // while it leads, so role changes need nothing more.
    let driver_options = DriverOptions {
        backoff_max: Duration::from_millis(10),
        ..DriverOptions::default()
    };
    let mut drivers: Vec<Option<FollowerDriver>> = replicas
        .iter()
        .map(|r| {
            let transport: Arc<dyn Transport> = transport.clone();
            FollowerDriver::start(Arc::clone(r), transport, driver_options).map(Some)
        })
        .collect::<replog::Result<_>>()?;
    let coordinator = thread::spawn(move || coordinator.run(inbox));

    println!("3 replicas, SyncPolicy::Always, Acks::All, min_insync_replicas 2; replica 1 leads epoch 1");
    let killed = RwLock::new(None);
    let stop = RwLock::new(false);
    let started = Instant::now();
    let written = thread::scope(|scope| {
        let writer = scope.spawn(|| write(&metadata, &killed, &stop));
        thread::sleep(RUN_BEFORE_KILL);
        *killed.write().unwrap() = Some(Instant::now());
        drivers[0].take(); // the dead machine's driver stops with it
        events.send(Event::KillLeader).expect("coordinator running");
        // Run on for a while once another replica leads.
        while metadata.leader().is_none_or(|l| l.id() == IDS[0]) {
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(RUN_AFTER_FAILOVER);
        *stop.write().unwrap() = true;
        writer.join().expect("writer")
    });
    let elapsed = started.elapsed();
    events.send(Event::Stop)?;
    let mut coordinator = coordinator.join().expect("coordinator")?;
    drop(drivers);
    // The dead leader goes down as a machine losing power would.
    drop(replicas);
    let dead = coordinator.replicas.remove(0);
    match Arc::try_unwrap(dead) {
        Ok(dead) => dead.simulate_crash(),
        Err(_) => return Err("the dead leader is still in use".into()),
    }

    // The verdict, on the new leader's committed log.
    let leader = metadata.leader().ok_or("no leader after the failover")?;
    let killed_at = killed.read().unwrap().expect("killed");
    let high_watermark = leader.high_watermark();
    let acked = written.acked.len() as u64;
    println!(
        "writer: {acked} records acknowledged in {:.2} s ({:.0} records/s; {} before the kill, {} after); \
         not acknowledged, retried: {:?}",
        elapsed.as_secs_f64(),
        acked as f64 / elapsed.as_secs_f64(),
        written.acked_before,
        acked - written.acked_before,
        written.errors
    );
    let (from, to) = (
        written
            .unavailable_from
            .ok_or("no write failed: the kill went unnoticed")?,
        written.available_again.ok_or("writes never came back after the kill")?,
    );
    let failed_over = coordinator.failed_over.ok_or("no failover")?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "writes unavailable for {:.1} ms: from the first append that failed (called {:.1} ms before the kill) \
         to the first acknowledgement by replica {} in epoch {}; the new leader was in place {:.1} ms after the \
         kill (an append blocked on the dead leader gives up after the ack_timeout, 300 ms)",
        ms(to - from),
        ms(killed_at.saturating_duration_since(from)),
        leader.id().0,
        coordinator.epoch,
        ms(failed_over - killed_at),
    );
    let mut missing = 0;
    for (&offset, value) in &written.acked {
        let ok = offset < high_watermark && leader.read_committed(offset).is_ok_and(|r| r.value() == &value[..]);
        if !ok {
            missing += 1;
            eprintln!("LOST: acknowledged record at offset {offset} is not in the new leader's committed log");
        }
    }
    if missing > 0 || acked == 0 || written.acked_before == acked {
        eprintln!("FAILED: {missing} of {acked} acknowledged records lost (or no write after the failover)");
        std::process::exit(1);
    }
    println!(
        "checked: all {acked} acknowledged records are in replica {}'s committed log (high watermark {high_watermark}), \
         unchanged, at their offsets",
        leader.id().0
    );
    Ok(())
}
