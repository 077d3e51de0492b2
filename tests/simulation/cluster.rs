//! The simulated cluster: replicas on real directories, a network that
//! drops, delays, duplicates and reorders, partitions, crashes, a
//! coordinator, producers, and the step loop that drives them all on one
//! thread and virtual time.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use replog::replication::{Acks, Applied, FetchRequest, FetchResponse, Replica, ReplicaId, Role};
use replog::{Clock, Error, NewRecord};

use crate::checks::{Checker, batches, check_epoch_history};
use crate::common::rng::Rng;
use crate::violation;

mod control;
mod machines;

use crate::Stats;
use control::Coordinator;
use machines::{Cuts, Proposals, VirtualClock};

/// A follower gives up on a fetch after this long (virtual ms) and sends another.
const FETCH_TIMEOUT_MS: i64 = 150;
/// The one-thread stand-in for a long poll: a caught-up follower waits this long.
const POLL_MS: u64 = 40;
/// Steps the healed cluster gets to converge.
const HEAL_STEPS: u64 = 4_000;
/// The coordinator's pseudo-node in the network.
const COORDINATOR: usize = usize::MAX;

/// What one simulated run does; drawn from its seed.
#[derive(Debug, Clone)]
pub struct Config {
    pub replicas: usize,
    pub min_insync: usize,
    /// Steps with faults, before healing.
    pub steps: u64,
    pub drop_percent: u64,
    pub duplicate_percent: u64,
    pub lag_max_ms: u64,
    pub persist_interval_ms: u64,
    /// Percent of steps that hand an old `Records` response straight to a
    /// follower's `apply`, past the RPC layer's matching.
    pub stale_records_percent: u64,
    /// The coordinator records any proposal of its current leader and
    /// epoch, ignoring the version it replaces (see `proposal`): the
    /// mistake `ReplicaListener::isr_change_proposed` warns about.
    pub naive_coordinator: bool,
}

/// A replica's machine: its directory, the replica while it is up, and its
/// follower RPC client (at most one fetch outstanding, by request id).
struct Node {
    id: ReplicaId,
    dir: PathBuf,
    replica: Option<Replica>,
    cuts: Arc<Cuts>,
    outstanding: Option<(u64, i64)>,
    next_fetch_ms: i64,
    /// Records appended while leading, not acknowledged yet: (epoch, offset, value).
    pending: Vec<(u64, u64, Vec<u8>)>,
}

#[derive(Clone)]
enum Message {
    Fetch {
        id: u64,
        bytes: Vec<u8>,
    },
    Answer {
        id: u64,
        bytes: Vec<u8>,
    },
    /// Coordinator to replica: follow `leader` in `epoch`.
    Notice {
        epoch: u64,
        leader: usize,
    },
    /// Leader to coordinator: an in-sync set proposal, to replace the set
    /// of version `version`.
    Proposal {
        epoch: u64,
        isr: Vec<ReplicaId>,
        version: u64,
    },
}

struct Flight {
    at: i64,
    seq: u64,
    from: usize,
    to: usize,
    message: Message,
}

pub struct Sim {
    pub stats: Stats,
    rng: Rng,
    config: Config,
    clock: Arc<VirtualClock>,
    proposals: Arc<Proposals>,
    _root: tempfile::TempDir,
    nodes: Vec<Node>,
    flights: Vec<Flight>,
    seq: u64,
    cut: Vec<Vec<bool>>,
    coordinator: Coordinator,
    faults: bool,
    producing: bool,
    checker: Checker,
    /// Encoded `Records` responses seen, for the stale-response test.
    stale: Vec<Vec<u8>>,
    produced: u64,
    seed: u64,
}

impl Sim {
    pub fn new(seed: u64, config: Config) -> Sim {
        let root = crate::scratch();
        let clock = Arc::new(VirtualClock(AtomicI64::new(1_700_000_000_000)));
        let nodes = (0..config.replicas)
            .map(|index| {
                let dir = root.path().join(format!("replica-{index}"));
                std::fs::create_dir(&dir).unwrap();
                Node {
                    id: ReplicaId(index as u64 + 1),
                    dir,
                    replica: None,
                    cuts: Arc::default(),
                    outstanding: None,
                    next_fetch_ms: 0,
                    pending: Vec::new(),
                }
            })
            .collect();
        let ids = (1..=config.replicas as u64).map(ReplicaId).collect();
        let mut sim = Sim {
            rng: Rng::new(seed),
            clock,
            proposals: Arc::default(),
            _root: root,
            nodes,
            flights: Vec::new(),
            seq: 0,
            cut: vec![vec![false; config.replicas]; config.replicas],
            coordinator: Coordinator {
                epoch: 0,
                leader: None,
                isr: ids,
                isr_version: 0,
                leader_lost_ms: None,
                heartbeat_ms: 0,
            },
            faults: true,
            producing: true,
            checker: Checker::new(config.replicas),
            stale: Vec::new(),
            produced: 0,
            seed,
            config,
            stats: Stats {
                runs: 1,
                ..Stats::default()
            },
        };
        (0..sim.nodes.len()).for_each(|index| sim.start(index));
        sim
    }

    /// Runs the faulty phase, then heals and checks convergence. `step`
    /// tells the caller how far it got, for the failure message.
    pub fn run(mut self, step: &std::cell::Cell<u64>) -> Stats {
        self.elect();
        for n in 1..=self.config.steps {
            step.set(n);
            self.step();
        }
        self.faults = false;
        self.cut.iter_mut().flatten().for_each(|cut| *cut = false);
        (0..self.nodes.len()).for_each(|index| self.start(index));
        for n in 1..=HEAL_STEPS {
            step.set(self.config.steps + n);
            self.producing = n < 50;
            self.step();
            if !self.producing && self.converged() {
                return self.stats;
            }
        }
        violation!("no convergence {HEAL_STEPS} steps after healing: {}", self.describe());
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// One step: one random action (time passes, delivering the message
    /// due first; an append; a crash, close or restart; a partition change;
    /// an election; a stale answer), then the followers' fetch timers, the
    /// coordinator's session and heartbeat timers, the leaders' proposals
    /// put on the network, and every invariant checked.
    fn step(&mut self) {
        let roll = self.rng.below(100);
        let pause = self.rng.below(200);
        let stale = self.faults && self.rng.percent(self.config.stale_records_percent);
        match roll {
            _ if stale => self.stale_records(),
            55..70 if self.producing => self.produce(),
            70..75 => self.pass_time(pause),
            75..79 if self.faults => self.crash_or_restart(),
            79..82 if self.faults => self.repartition(),
            82..83 if self.faults => self.elect(),
            _ => self.pass_time(1 + pause % 20),
        }
        self.update_acks();
        self.coordinate();
        self.fetch();
        let proposals = std::mem::take(&mut *self.proposals.0.lock().unwrap());
        for (id, epoch, version, isr) in proposals {
            self.send(index_of(id), COORDINATOR, Message::Proposal { epoch, isr, version });
        }
        self.update_acks();
        self.check();
    }

    /// Puts a message in flight: dropped, delayed, duplicated at random
    /// while faults are on (reordering follows from the delays).
    fn send(&mut self, from: usize, to: usize, message: Message) {
        if self.faults && self.rng.percent(self.config.drop_percent) {
            return;
        }
        let copies = if self.faults && self.rng.percent(self.config.duplicate_percent) {
            2
        } else {
            1
        };
        let mut message = Some(message);
        for copy in 0..copies {
            let delay = if self.faults && self.rng.percent(5) {
                self.rng.below(800)
            } else {
                1 + self.rng.below(20)
            };
            let message = if copy + 1 == copies {
                message.take().unwrap()
            } else {
                message.clone().unwrap()
            };
            self.seq += 1;
            let flight = Flight {
                at: self.now() + delay as i64,
                seq: self.seq,
                from,
                to,
                message,
            };
            self.flights.push(flight);
        }
    }

    /// Lets up to `ms` of virtual time pass: delivers the first message due
    /// by then (advancing the clock to it), or, if none is, advances the
    /// clock by `ms`. Time never passes a message that is due.
    fn pass_time(&mut self, ms: u64) {
        let target = self.now() + ms as i64;
        let next = (0..self.flights.len()).min_by_key(|i| (self.flights[*i].at, self.flights[*i].seq));
        let Some(next) = next.filter(|i| self.flights[*i].at <= target) else {
            return self.clock.0.store(target, Ordering::SeqCst);
        };
        let Flight {
            at, from, to, message, ..
        } = self.flights.swap_remove(next);
        self.clock.0.fetch_max(at, Ordering::SeqCst);
        let linked = from == COORDINATOR || to == COORDINATOR || !self.cut[from][to];
        if !linked {
            return;
        }
        match message {
            Message::Fetch { id, bytes } => self.serve(from, to, id, &bytes),
            Message::Answer { id, bytes } => self.answer(to, id, &bytes),
            Message::Notice { epoch, leader } => self.notice(to, epoch, leader),
            Message::Proposal { epoch, isr, version } => self.proposal(from, epoch, isr, version),
        }
    }

    /// A fetch reaches the replica its sender takes for the leader.
    fn serve(&mut self, from: usize, to: usize, id: u64, bytes: &[u8]) {
        let Some(replica) = &self.nodes[to].replica else { return };
        let request = FetchRequest::decode(bytes).unwrap_or_else(|e| violation!("request does not decode: {e}"));
        let response = replica.handle_fetch(&request);
        let bytes = response.encode();
        if matches!(&response, FetchResponse::Records { batches, .. } if !batches.is_empty()) {
            if self.stale.len() < 64 {
                self.stale.push(bytes.clone());
            } else {
                let slot = self.rng.in_range(0..64);
                self.stale[slot] = bytes.clone();
            }
        }
        self.send(to, from, Message::Answer { id, bytes });
    }

    /// An answer reaches a follower: its RPC layer drops it unless it
    /// answers the one outstanding request, then the replica applies it.
    fn answer(&mut self, to: usize, id: u64, bytes: &[u8]) {
        let node = &mut self.nodes[to];
        let Some(replica) = &node.replica else { return };
        if node.outstanding.map(|(outstanding, _)| outstanding) != Some(id) {
            self.stats.dropped_answers += 1;
            return;
        }
        node.outstanding = None;
        let response =
            FetchResponse::decode(bytes, 1 << 24).unwrap_or_else(|e| violation!("answer does not decode: {e}"));
        let before = (replica.log().next_offset(), replica.high_watermark());
        let result = replica.apply(response);
        if tracing() {
            eprintln!("t={} {:?} applied {result:?}", self.clock.now_ms(), node.id);
        }
        let wait = match result {
            Ok(Applied::Records { records: 0, .. }) => self.rng.below(POLL_MS) as i64,
            Ok(Applied::Refused) => 50,
            Ok(Applied::Truncated { .. } | Applied::Reset { .. }) => {
                self.stats.truncations += 1;
                0
            }
            Ok(_) => 0,
            // The role changed since the request (another epoch, or leading now).
            Err(Error::UnexpectedResponse { .. }) => {
                let after = (replica.log().next_offset(), replica.high_watermark());
                if after != before {
                    violation!(
                        "{:?}: a refused answer changed (end, HW) from {before:?} to {after:?}",
                        node.id
                    );
                }
                0
            }
            // Only where stale answers are also handed to `apply` directly
            // can the log have changed since the request.
            Err(Error::InvalidBatch { .. }) if self.config.stale_records_percent > 0 => {
                let after = (replica.log().next_offset(), replica.high_watermark());
                if after != before {
                    violation!(
                        "{:?}: a refused answer changed (end, HW) from {before:?} to {after:?}",
                        node.id
                    );
                }
                0
            }
            Err(e) => violation!("{:?}: apply of its leader's answer failed: {e}", node.id),
        };
        node.next_fetch_ms = self.clock.now_ms() + wait;
        if wait == 50 {
            self.stats.refused_fetches += 1;
            self.tell(to);
        }
    }

    /// Each follower's RPC client: a new fetch when none is outstanding and
    /// its poll is due, or when the outstanding one timed out.
    fn fetch(&mut self) {
        let now = self.now();
        for index in 0..self.nodes.len() {
            let node = &self.nodes[index];
            let Some(replica) = node.replica.as_ref().filter(|r| r.role() == Role::Follower) else {
                continue;
            };
            let timed_out = node.outstanding.is_some_and(|(_, deadline)| now >= deadline);
            let due = node.outstanding.is_none() && now >= node.next_fetch_ms;
            if !(due || timed_out) {
                continue;
            }
            let Some(leader) = replica.leader() else {
                self.nodes[index].next_fetch_ms = now + 100;
                self.tell(index);
                continue;
            };
            let max_bytes = 256 + self.rng.below(4096);
            let request = replica.fetch_request(max_bytes).unwrap();
            self.seq += 1;
            let id = self.seq;
            self.nodes[index].outstanding = Some((id, now + FETCH_TIMEOUT_MS));
            if timed_out {
                self.tell(index);
            }
            let bytes = request.encode();
            self.send(index, index_of(leader), Message::Fetch { id, bytes });
        }
    }

    /// A producer appends one batch with `Acks::Leader` to a replica that
    /// leads (usually the coordinator's leader; sometimes a zombie).
    fn produce(&mut self) {
        let leaders: Vec<usize> = (0..self.nodes.len())
            .filter(|i| {
                self.nodes[*i]
                    .replica
                    .as_ref()
                    .is_some_and(|r| r.role() == Role::Leader)
            })
            .collect();
        if leaders.is_empty() {
            return;
        }
        let chosen = match self.coordinator.leader {
            Some(leader) if leaders.contains(&leader) && self.rng.percent(80) => leader,
            _ => leaders[self.rng.in_range(0..leaders.len())],
        };
        let count = self.rng.in_range(1..4);
        let values: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                self.produced += 1;
                let mut value = format!("{:x}/{}/{}:", self.seed, self.produced, chosen).into_bytes();
                let len = self.rng.in_range(0..80);
                value.extend(self.rng.letters(len));
                value
            })
            .collect();
        values.iter().for_each(|value| self.checker.appended(value));
        let records: Vec<NewRecord<'_>> = values.iter().map(NewRecord::new).collect();
        let replica = self.nodes[chosen].replica.as_ref().unwrap();
        let epoch = replica.epoch();
        let first = replica
            .append(&records, Acks::Leader)
            .unwrap_or_else(|e| violation!("{:?}: append while leading: {e}", replica.id()));
        self.stats.appended += count as u64;
        let pending = values
            .into_iter()
            .enumerate()
            .map(|(i, v)| (epoch, first + i as u64, v));
        self.nodes[chosen].pending.extend(pending);
    }

    /// What `Acks::All` would have returned by now: a record is
    /// acknowledged once the high watermark of the replica that appended it
    /// covers it while that replica still leads the epoch it appended in.
    fn update_acks(&mut self) {
        for node in &mut self.nodes {
            let leading = node.replica.as_ref().filter(|r| r.role() == Role::Leader);
            let Some(replica) = leading else {
                node.pending.clear();
                continue;
            };
            let (epoch, high_watermark) = (replica.epoch(), replica.high_watermark());
            node.pending.retain(|(appended_in, _, _)| *appended_in == epoch);
            for (epoch, offset, value) in node.pending.iter().filter(|p| p.1 < high_watermark) {
                self.checker.acknowledged(replica, *offset, *epoch, value);
                if tracing() {
                    eprintln!("ack {:?} epoch {epoch} offset {offset}", replica.id());
                }
                self.stats.acknowledged += 1;
            }
            node.pending.retain(|p| p.1 >= high_watermark);
        }
    }

    /// Every invariant on every live replica (see `checks`).
    fn check(&mut self) {
        let leader = self.coordinator.leader;
        let epoch = self.coordinator.epoch;
        for (index, node) in self.nodes.iter().enumerate() {
            let Some(replica) = &node.replica else { continue };
            let cuts = std::mem::take(&mut *node.cuts.0.lock().unwrap());
            let leads = leader == Some(index) && replica.role() == Role::Leader && replica.epoch() == epoch;
            self.checker.check(index, replica, &cuts, leads);
        }
    }

    /// True once every replica follows the leader of the current epoch and
    /// has its log and high watermark; then checks that the logs are byte
    /// for byte the same (batches, epochs, offsets) and the epoch histories
    /// agree with them.
    fn converged(&mut self) -> bool {
        let Some(leader) = self.coordinator.leader else {
            return false;
        };
        let Some(lead) = &self.nodes[leader].replica else {
            return false;
        };
        let (end, hw) = (lead.log().next_offset(), lead.high_watermark());
        let caught_up = self.nodes.iter().all(|node| {
            node.replica.as_ref().is_some_and(|r| {
                r.epoch() == self.coordinator.epoch && r.log().next_offset() == end && r.high_watermark() == end
            })
        });
        if hw != end || !caught_up || lead.role() != Role::Leader {
            return false;
        }
        let expected = batches(lead.log());
        for node in &self.nodes {
            let replica = node.replica.as_ref().unwrap();
            check_epoch_history(replica.log());
            if batches(replica.log()) != expected || replica.log().epoch_history() != lead.log().epoch_history() {
                violation!(
                    "{:?} differs from the leader after convergence: {}",
                    node.id,
                    self.describe()
                );
            }
        }
        self.checker.check_structure();
        true
    }

    fn describe(&self) -> String {
        let replicas: Vec<String> = self
            .nodes
            .iter()
            .map(|node| match &node.replica {
                None => format!("{:?} down", node.id),
                Some(r) => format!(
                    "{:?} {:?} epoch {} leader {:?} end {} hw {} history {:?} unclean {}",
                    node.id,
                    r.role(),
                    r.epoch(),
                    r.leader(),
                    r.log().next_offset(),
                    r.high_watermark(),
                    r.log().epoch_history(),
                    r.unclean_recovery(),
                ),
            })
            .collect();
        let c = &self.coordinator;
        format!(
            "coordinator epoch {} leader {:?} isr {:?}; {}",
            c.epoch,
            c.leader,
            c.isr,
            replicas.join("; ")
        )
    }
}

/// `REPLOG_SIM_TRACE=1` prints every delivery and apply (with `REPLOG_SEED`).
fn tracing() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("REPLOG_SIM_TRACE").is_some())
}

fn index_of(id: ReplicaId) -> usize {
    id.0 as usize - 1
}
