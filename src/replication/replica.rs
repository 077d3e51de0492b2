//! [`Replica`]: a [`Log`] with a replication role. This file holds the
//! handle, opening and closing, the accessors and the role changes; the
//! producer side is in `produce`, the leader's fetch handling in
//! `serve`, the follower's side in `follow`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::leader::LeaderState;
use super::listener::ReplicaListener;
use super::options::ReplicaOptions;
use super::state_file::ReplicaState;
use super::waiters::Waiters;
use crate::error::{Error, Result};
use crate::listener::LogListener;
use crate::log::Log;
use crate::options::{Options, SyncPolicy};
use crate::replica_id::ReplicaId;

/// What a replica does in its current epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepts appends and answers fetches.
    Leader,
    /// Copies its leader's log; refuses appends. A replica opens as a
    /// follower of no known leader until the application assigns a role.
    Follower,
}

/// One replica of a replicated log: a [`Log`] in a directory, plus its id,
/// its leader epoch and role, its high watermark (persisted, so that it
/// does not go back across a restart further than
/// [`ReplicaOptions::high_watermark_persist_interval`]), and, on a leader,
/// each follower's progress and the in-sync set.
///
/// Replication is pull-based, in the style of Kafka: followers send
/// [`FetchRequest`](super::FetchRequest)s, the leader answers with
/// [`FetchResponse`](super::FetchResponse)s, and the application carries
/// them (see [`Transport`](super::Transport) and
/// [`FollowerDriver`](super::FollowerDriver)). Who leads, at which epoch,
/// and which in-sync set is confirmed is decided by the application's
/// control plane: roles change only through
/// [`become_leader`](Replica::become_leader) and
/// [`become_follower`](Replica::become_follower), in-sync set changes only
/// through [`confirm_isr`](Replica::confirm_isr).
///
/// `Replica` is `Send + Sync`; share it in an `Arc`.
pub struct Replica {
    pub(super) id: ReplicaId,
    pub(super) log: Option<Log>,
    pub(super) settings: Settings,
    /// Epoch and role; appends and applies hold it shared, role changes
    /// exclusively, so no batch is written across a role change.
    pub(super) role: RwLock<RoleState>,
    /// The leader's bookkeeping (`None` on a follower). Never held while
    /// calling into the log's write path or a listener.
    pub(super) leader: Mutex<Option<LeaderState>>,
    /// Serializes `apply`.
    pub(super) apply_lock: Mutex<()>,
    pub(super) high_watermark: AtomicU64,
    /// `role.epoch`, readable without the role lock (which a thread holding
    /// it shared must not take again: a waiting writer would deadlock it).
    pub(super) epoch: AtomicU64,
    /// Bumped at every role change, so waiters notice one.
    pub(super) role_generation: AtomicU64,
    /// Threads waiting for an append, a sync or the high watermark.
    pub(super) waiters: Arc<Waiters>,
    /// The high watermark last written to the `replica` file, and when.
    pub(super) persisted: Mutex<Persisted>,
    /// Set when the replica may have lost records others count (see
    /// `unclean_recovery`); cleared once it caught up with a leader.
    pub(super) unclean: AtomicBool,
}

/// The settings `Replica` uses from [`ReplicaOptions`].
#[derive(Debug)]
pub(super) struct Settings {
    pub min_insync_replicas: usize,
    pub replica_lag_max_ms: i64,
    pub ack_timeout: std::time::Duration,
    pub persist_interval_ms: i64,
    pub listener: Arc<dyn ReplicaListener>,
    pub log_options: Options,
}

#[derive(Debug, Clone)]
pub(super) struct RoleState {
    pub epoch: u64,
    pub role: Role,
    pub leader: Option<ReplicaId>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Persisted {
    pub high_watermark: u64,
    pub written_ms: i64,
}

/// The log listener a replica installs: wakes its waiters on appends and
/// syncs, then passes the event on to the application's log listener.
struct Hook {
    waiters: Arc<Waiters>,
    inner: Option<Arc<dyn LogListener>>,
}

impl LogListener for Hook {
    fn post_append(&self, base_offset: u64, next_offset: u64) {
        self.waiters.appended();
        if let Some(inner) = &self.inner {
            inner.post_append(base_offset, next_offset);
        }
    }

    fn post_durable(&self, durable_offset: u64) {
        self.waiters.durable();
        if let Some(inner) = &self.inner {
            inner.post_durable(durable_offset);
        }
    }

    fn pre_sync(&self, next_offset: u64) {
        self.waiters.sync_starting(next_offset);
        if let Some(inner) = &self.inner {
            inner.pre_sync(next_offset);
        }
    }

    fn post_truncate(&self, offset: u64) {
        self.waiters.truncated(offset);
        if let Some(inner) = &self.inner {
            inner.post_truncate(offset);
        }
    }

    fn post_roll(&self, base_offset: u64) {
        if let Some(inner) = &self.inner {
            inner.post_roll(base_offset);
        }
    }

    fn post_delete_segments(&self, start_offset: u64) {
        if let Some(inner) = &self.inner {
            inner.post_delete_segments(start_offset);
        }
    }
}

impl Replica {
    /// Opens (or creates) replica `id` of a log in `dir`: the log as
    /// [`Log::open`] opens it, and the `replica` file beside it (epoch and
    /// high watermark). The replica starts as a [`Role::Follower`] of no
    /// known leader, at the stored epoch, whatever role it had: the
    /// application assigns roles.
    ///
    /// If the replica may have lost records that others count (see
    /// [`Replica::unclean_recovery`]), it is flagged until it has caught up
    /// with a leader again: a control plane must not elect it meanwhile.
    ///
    /// Cost: [`Log::open`] and one small synced file write.
    ///
    /// # Errors
    ///
    /// As [`Log::open`]; [`Error::ReplicaMismatch`] if the directory holds
    /// another replica; [`Error::Corrupt`] for a damaged `replica` file or
    /// one of another log (never replaced by defaults, which could let the
    /// epoch or the high watermark go back).
    pub fn open(dir: impl AsRef<Path>, id: ReplicaId, options: ReplicaOptions) -> Result<Replica> {
        let waiters = Arc::new(Waiters::new(options.log.sync_value() == SyncPolicy::Always));
        let hook = Hook {
            waiters: Arc::clone(&waiters),
            inner: options.log.listener_handle(),
        };
        let log_options = options.log.clone().listener(Arc::new(hook));
        let log = Log::open(dir.as_ref(), log_options)?;
        let stored = ReplicaState::read(log.dir(), log.log_id())?;
        if let Some(stored) = stored
            && stored.replica_id != id
        {
            return Err(Error::ReplicaMismatch {
                stored: stored.replica_id,
                given: id,
            });
        }
        let end = log.next_offset();
        let stored_hw = stored.map_or(0, |s| s.high_watermark);
        let high_watermark = stored_hw.min(end);
        let epoch = stored.map_or(0, |s| s.epoch).max(log.leader_epoch());
        // Under `SyncPolicy::Always` a replica counts (and lets others
        // count) only what is durable, so a crash loses nothing counted;
        // under the other policies a crash of the machine can lose a tail
        // that was counted, and recovery cannot tell (the lost pages read
        // as zeros). A stored high watermark above the log end always means
        // committed records are gone.
        let weak_policy = options.log.sync_value() != SyncPolicy::Always;
        let crashed = stored.is_some() && !log.recovery_report().clean_shutdown;
        let unclean = stored_hw > end || (crashed && weak_policy);
        let now_ms = options.log.now_ms();
        let replica = Replica {
            id,
            log: Some(log),
            settings: Settings {
                min_insync_replicas: options.min_insync_replicas,
                replica_lag_max_ms: millis(options.replica_lag_max),
                ack_timeout: options.ack_timeout,
                persist_interval_ms: millis(options.high_watermark_persist_interval),
                listener: options.listener,
                log_options: options.log,
            },
            role: RwLock::new(RoleState {
                epoch,
                role: Role::Follower,
                leader: None,
            }),
            leader: Mutex::new(None),
            apply_lock: Mutex::new(()),
            high_watermark: AtomicU64::new(high_watermark),
            epoch: AtomicU64::new(epoch),
            role_generation: AtomicU64::new(0),
            waiters,
            persisted: Mutex::new(Persisted {
                high_watermark,
                written_ms: now_ms,
            }),
            unclean: AtomicBool::new(unclean),
        };
        replica.write_state(epoch)?;
        Ok(replica)
    }

    /// This replica's id.
    pub fn id(&self) -> ReplicaId {
        self.id
    }

    /// The underlying log, for reads of uncommitted data and for tools.
    /// Write to it only through the replica: a direct append bypasses the
    /// role checks, and a direct truncate can remove committed records.
    pub fn log(&self) -> &Log {
        self.log.as_ref().expect("the log is held until close")
    }

    /// The high watermark: every offset below it is committed (on every
    /// member of the in-sync set, under its sync policy). Never goes back
    /// while the replica is open. Lock-free.
    pub fn high_watermark(&self) -> u64 {
        self.high_watermark.load(Ordering::SeqCst)
    }

    /// The replica's current leader epoch. Lock-free.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// The replica's role in its current epoch.
    pub fn role(&self) -> Role {
        self.role.read().role
    }

    /// The leader this replica follows, or itself if it leads; `None` if
    /// it follows no known leader.
    pub fn leader(&self) -> Option<ReplicaId> {
        self.role.read().leader
    }

    /// The confirmed in-sync set, sorted (the leader included), if this
    /// replica leads; empty on a follower.
    pub fn isr(&self) -> Vec<ReplicaId> {
        self.leader
            .lock()
            .as_ref()
            .map_or_else(Vec::new, |leader| leader.confirmed().to_vec())
    }

    /// On a leader, the version of the confirmed in-sync set: 0 for the set
    /// given to [`Replica::become_leader`], one more after each
    /// [`Replica::confirm_isr`]. Proposals carry the version they replace
    /// (see [`ReplicaListener::isr_change_proposed`]). `None` on a follower.
    pub fn isr_version(&self) -> Option<u64> {
        self.leader.lock().as_ref().map(LeaderState::version)
    }

    /// On a leader, each follower of the assignment and its log end as of
    /// its last valid fetch in this epoch (`None` before one), sorted by id;
    /// empty on a follower. For monitoring replication lag.
    pub fn follower_progress(&self) -> Vec<(ReplicaId, Option<u64>)> {
        self.leader
            .lock()
            .as_ref()
            .map_or_else(Vec::new, LeaderState::follower_ends)
    }

    /// The proposed in-sync set awaiting [`Replica::confirm_isr`], if this
    /// replica leads and has proposed one.
    pub fn pending_isr(&self) -> Option<Vec<ReplicaId>> {
        self.leader.lock().as_ref()?.pending().map(<[ReplicaId]>::to_vec)
    }

    /// True while a replica that may have lost records others count as
    /// committed has not caught up with a leader again: it restarted after
    /// a crash under a sync policy other than `SyncPolicy::Always` (whose
    /// unsynced tail, which its leader counted, may be gone), or its log
    /// ends below its stored high watermark. A control plane must not
    /// elect it leader meanwhile (Kafka's KIP-966). Cleared when a fetch
    /// brings its log to its leader's end.
    pub fn unclean_recovery(&self) -> bool {
        self.unclean.load(Ordering::SeqCst)
    }

    /// Makes this replica the leader of `epoch`, for the replicas in
    /// `assignment` (itself included) with the confirmed in-sync set `isr`
    /// (itself included, within `assignment`). Batches it appends from now
    /// on carry `epoch`. The epoch is durable when it returns.
    ///
    /// The high watermark does not move back; it advances once every member
    /// of `isr` has fetched in this epoch. Asserting the same leadership
    /// again updates the assignment and the in-sync set.
    ///
    /// # Errors
    ///
    /// [`Error::StaleEpoch`] if `epoch` is below the replica's epoch, or
    /// not above every epoch in its log (a leader's epoch must be new);
    /// [`Error::InvalidArgument`] for an assignment or in-sync set without
    /// this replica, or an in-sync set outside the assignment;
    /// [`Error::Io`]. Nothing changed on error.
    pub fn become_leader(&self, epoch: u64, assignment: &[ReplicaId], isr: &[ReplicaId]) -> Result<()> {
        check_members(self.id, assignment, isr)?;
        let mut role = self.role.write();
        let already = role.role == Role::Leader && role.epoch == epoch;
        if !already {
            self.check_new_leader_epoch(&role, epoch)?;
        }
        self.write_state(epoch)?;
        self.log().set_leader_epoch(epoch)?;
        let now_ms = self.now_ms();
        let state = LeaderState::new(self.id, self.log().next_offset(), assignment, isr, now_ms);
        *self.leader.lock() = Some(state);
        *role = RoleState {
            epoch,
            role: Role::Leader,
            leader: Some(self.id),
        };
        self.epoch.store(epoch, Ordering::SeqCst);
        drop(role);
        self.role_changed(epoch, Role::Leader, Some(self.id));
        self.update_high_watermark();
        Ok(())
    }

    /// Makes this replica a follower of `leader` in `epoch`. It stops
    /// accepting appends (producers waiting for `Acks::All` get
    /// [`Error::LeadershipLost`]) and truncates nothing by itself: a
    /// divergent suffix is found by fetching. The epoch is durable when it
    /// returns.
    ///
    /// # Errors
    ///
    /// [`Error::StaleEpoch`] if `epoch` is below the replica's epoch;
    /// [`Error::InvalidArgument`] if `leader` is this replica, or if this
    /// replica led `epoch` itself; [`Error::Io`]. Nothing changed on error.
    pub fn become_follower(&self, epoch: u64, leader: ReplicaId) -> Result<()> {
        if leader == self.id {
            return Err(Error::InvalidArgument {
                reason: "a replica cannot follow itself",
            });
        }
        let mut role = self.role.write();
        if epoch < role.epoch {
            return Err(Error::StaleEpoch {
                given: epoch,
                current: role.epoch,
            });
        }
        if role.role == Role::Leader && epoch == role.epoch {
            return Err(Error::InvalidArgument {
                reason: "a replica that leads an epoch cannot follow in it",
            });
        }
        self.write_state(epoch)?;
        self.log().set_leader_epoch(epoch)?;
        *self.leader.lock() = None;
        *role = RoleState {
            epoch,
            role: Role::Follower,
            leader: Some(leader),
        };
        self.epoch.store(epoch, Ordering::SeqCst);
        drop(role);
        self.role_changed(epoch, Role::Follower, Some(leader));
        Ok(())
    }

    /// Closes the replica: writes its high watermark and closes the log
    /// (see [`Log::close`]). Dropping it does the same, ignoring errors.
    ///
    /// # Errors
    ///
    /// [`Error::Io`], and as [`Log::close`].
    pub fn close(mut self) -> Result<()> {
        let written = self.write_state(self.epoch());
        let closed = self.log.take().map_or(Ok(()), |log| log.close());
        self.waiters.all();
        written.and(closed)
    }

    /// Drops the replica as a machine that lost power would: what its log
    /// had not made durable is gone (the log is cut at its durable offset),
    /// the high watermark is what was last persisted, and the next open
    /// runs crash recovery. For tests and simulations.
    ///
    /// # Panics
    ///
    /// If the directory cannot be reopened to cut the log (a test
    /// environment failure).
    #[cfg(feature = "test-util")]
    pub fn simulate_crash(mut self) {
        let log = self.log.take().expect("the log is held until close");
        let durable = log.durable_offset();
        let dir = log.dir().to_path_buf();
        log.simulate_crash();
        let options = self.settings.log_options.clone();
        let reopened = Log::open(&dir, options).expect("reopen to cut the log at its durable offset");
        if reopened.next_offset() > durable {
            reopened.truncate(durable).expect("cut the log at its durable offset");
        }
        reopened.simulate_crash();
        self.waiters.all();
    }

    /// Epoch checks for a new leadership: not below the replica's epoch,
    /// and above every epoch in the log.
    fn check_new_leader_epoch(&self, role: &RoleState, epoch: u64) -> Result<()> {
        let latest_in_log = self.log().epoch_history().last().map(|(e, _)| *e);
        let current = latest_in_log.map_or(role.epoch, |e| e.max(role.epoch));
        let fresh = epoch >= role.epoch && latest_in_log.is_none_or(|e| epoch > e);
        if !fresh {
            return Err(Error::StaleEpoch { given: epoch, current });
        }
        Ok(())
    }

    fn role_changed(&self, epoch: u64, role: Role, leader: Option<ReplicaId>) {
        self.role_generation.fetch_add(1, Ordering::SeqCst);
        self.waiters.all();
        self.settings.listener.role_changed(self.id, epoch, role, leader);
    }

    /// Durably writes the `replica` file with `epoch` and the current high
    /// watermark.
    pub(super) fn write_state(&self, epoch: u64) -> Result<()> {
        let mut persisted = self.persisted.lock();
        let high_watermark = self.high_watermark();
        ReplicaState {
            replica_id: self.id,
            log_id: self.log().log_id(),
            epoch,
            high_watermark,
        }
        .write(self.log().dir())?;
        *persisted = Persisted {
            high_watermark,
            written_ms: self.now_ms(),
        };
        Ok(())
    }

    /// Persists the high watermark if it moved and the interval passed.
    /// A failure is not the caller's: the next attempt retries, and close
    /// reports it.
    pub(super) fn maybe_persist_high_watermark(&self) {
        let due = {
            let persisted = self.persisted.lock();
            persisted.high_watermark < self.high_watermark()
                && self.now_ms().saturating_sub(persisted.written_ms) >= self.settings.persist_interval_ms
        };
        if due {
            let _ = self.write_state(self.epoch());
        }
    }

    /// Raises the high watermark to `candidate` if that is higher and wakes
    /// waiters; returns whether it rose. Takes no lock, so it may be called
    /// under any; then call [`Replica::announce_high_watermark`] with none
    /// held.
    pub(super) fn raise_high_watermark(&self, candidate: u64) -> bool {
        let previous = self.high_watermark.fetch_max(candidate, Ordering::SeqCst);
        if candidate > previous {
            self.waiters.all();
        }
        candidate > previous
    }

    /// After the high watermark rose to `high_watermark`: tells the
    /// listener and persists it if due. Call with no lock of the replica
    /// held.
    pub(super) fn announce_high_watermark(&self, high_watermark: u64) {
        self.settings.listener.high_watermark_advanced(self.id, high_watermark);
        self.maybe_persist_high_watermark();
    }

    /// What this replica counts as its own log end for the high watermark:
    /// its durable offset under `SyncPolicy::Always`, its log end under the
    /// other policies (which accept losing the unsynced tail in a crash of
    /// the machine).
    pub(super) fn held_offset(&self) -> u64 {
        let log = self.log();
        match self.settings.log_options.sync_value() {
            SyncPolicy::Always => log.durable_offset(),
            _ => log.next_offset(),
        }
    }

    pub(super) fn now_ms(&self) -> i64 {
        self.settings.log_options.now_ms()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if self.log.is_some() {
            let _ = self.write_state(self.epoch());
        }
    }
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let role = self.role.read().clone();
        f.debug_struct("Replica")
            .field("id", &self.id)
            .field("epoch", &role.epoch)
            .field("role", &role.role)
            .field("leader", &role.leader)
            .field("high_watermark", &self.high_watermark())
            .field("log", &self.log)
            .finish()
    }
}

/// Checks an assignment and in-sync set for a leader `me`.
pub(super) fn check_members(me: ReplicaId, assignment: &[ReplicaId], isr: &[ReplicaId]) -> Result<()> {
    let invalid = |reason| Err(Error::InvalidArgument { reason });
    if !assignment.contains(&me) {
        return invalid("the assignment must hold the leader");
    }
    if !isr.contains(&me) {
        return invalid("the in-sync set must hold the leader");
    }
    if !isr.iter().all(|id| assignment.contains(id)) {
        return invalid("the in-sync set must lie within the assignment");
    }
    Ok(())
}

fn millis(duration: std::time::Duration) -> i64 {
    duration.as_millis().min(i64::MAX as u128) as i64
}
