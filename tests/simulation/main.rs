//! Deterministic simulation of replication (issue 8, FIELD-NOTES 7): 3 to 5
//! replicas in one thread, on real directories (tmpfs when there is one)
//! and virtual time, driven by one seeded random number generator.
//!
//! What it models (`cluster`): followers that fetch like RPC clients (one
//! outstanding request, answers matched by request id, a timeout and a new
//! request when an answer is lost); a network that drops, delays,
//! duplicates and reorders every message, and partitions that cut links; a
//! coordinator that records the in-sync set proposals it receives (delayed,
//! lost or duplicated like any message) before confirming them, and that
//! elects a new leader, with a new epoch, from the recorded in-sync set
//! (never a replica whose recovery cut records) when its leader is gone or
//! at random; producers appending with `Acks::Leader` (a record counts as
//! acknowledged with `Acks::All` once the high watermark of the leader that
//! appended it covered it while it still led); crashes that lose what is
//! not durable and leave torn garbage past it, clean restarts, and zombie
//! leaders that keep serving until they hear of the new epoch.
//!
//! What it checks after every step (`checks`): no acknowledged record is
//! lost or changed on the current leader; every replica agrees with the
//! committed history below its high watermark, byte for byte; the high
//! watermark never moves backward on a replica that did not crash, and
//! never passes the log end; epochs never go backward; no log is cut below
//! its high watermark; epoch histories match the batches. After healing
//! (faults off, everything restarted, a leader elected), the replicas must
//! converge to byte-identical logs.
//!
//! Each test prints its base seed; a failure prints the seed of the failing
//! run and the step. `REPLOG_SEED=<seed>` runs exactly that run;
//! `REPLOG_SIM_SEEDS=<n>` runs more (or fewer) seeds than the default;
//! `REPLOG_SIM_TRACE=1` prints every delivery, apply, election and crash;
//! `REPLOG_SIM_NAIVE_COORDINATOR=1` makes the coordinator record every
//! proposal of its leader whatever version it replaces (see `regressions`).

#[path = "../common/mod.rs"]
mod common;

mod checks;
mod cluster;
mod regressions;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use cluster::{Config, Sim};
use common::rng::{Rng, SEED_VAR, mix, seed};

/// What happened in runs, so a reader can see the simulation does work.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub runs: u64,
    pub appended: u64,
    pub acknowledged: u64,
    pub elections: u64,
    pub crashes: u64,
    pub torn: u64,
    pub closes: u64,
    pub truncations: u64,
    pub refused_fetches: u64,
    pub stale_applied: u64,
    pub dropped_answers: u64,
}

impl Stats {
    pub fn add(&mut self, other: &Stats) {
        let Stats {
            runs,
            appended,
            acknowledged,
            elections,
            crashes,
            torn,
            closes,
            truncations,
            refused_fetches,
            stale_applied,
            dropped_answers,
        } = other;
        self.runs += runs;
        self.appended += appended;
        self.acknowledged += acknowledged;
        self.elections += elections;
        self.crashes += crashes;
        self.torn += torn;
        self.closes += closes;
        self.truncations += truncations;
        self.refused_fetches += refused_fetches;
        self.stale_applied += stale_applied;
        self.dropped_answers += dropped_answers;
    }
}

/// A directory on tmpfs when there is one, so that syncs are cheap.
pub fn scratch() -> tempfile::TempDir {
    match std::fs::metadata("/dev/shm") {
        Ok(meta) if meta.is_dir() => tempfile::tempdir_in("/dev/shm").unwrap(),
        _ => tempfile::tempdir().unwrap(),
    }
}

/// Runs `default` seeds (or `REPLOG_SIM_SEEDS`, or just `REPLOG_SEED`) of
/// the simulation with the configuration `config` draws for each.
fn simulate(test: &str, default: u64, config: impl Fn(&mut Rng) -> Config) {
    let base = seed(test);
    let seeds: Vec<u64> = if common::env_u64(SEED_VAR).is_some() {
        vec![base]
    } else {
        let count = common::env_u64("REPLOG_SIM_SEEDS").unwrap_or(default);
        (0..count).map(|i| mix(base.wrapping_add(i))).collect()
    };
    let mut stats = Stats::default();
    let total = seeds.len();
    for (run, seed) in seeds.into_iter().enumerate() {
        let config = config(&mut Rng::new(!seed));
        let step = Cell::new(0);
        let outcome = catch_unwind(AssertUnwindSafe(|| Sim::new(seed, config.clone()).run(&step)));
        if let Ok(outcome) = &outcome {
            stats.add(outcome);
        }
        if let Err(panic) = outcome {
            eprintln!(
                "{test}: FAILED at step {} of seed {seed} (run {} of {total}; {config:?})\n  replay: {SEED_VAR}={seed} cargo test --test simulation {test}",
                step.get(),
                run + 1,
            );
            resume_unwind(panic);
        }
    }
    println!("{test}: {stats:?}");
}

fn config(rng: &mut Rng, replicas: std::ops::Range<usize>, steps: u64) -> Config {
    let replicas = rng.in_range(replicas);
    Config {
        replicas,
        min_insync: rng.in_range(2..replicas.div_ceil(2) + 1).max(2),
        steps,
        drop_percent: rng.below(15),
        duplicate_percent: rng.below(10),
        lag_max_ms: 200 + rng.below(800),
        persist_interval_ms: rng.below(500),
        stale_records_percent: 0,
        naive_coordinator: std::env::var_os("REPLOG_SIM_NAIVE_COORDINATOR").is_some(),
    }
}

/// The main simulation, three replicas (the common deployment).
#[test]
fn three_replicas() {
    simulate("three_replicas", 2_000, |rng| config(rng, 3..4, 400));
}

/// The main simulation, four or five replicas (larger in-sync sets and
/// minimums, more ways to split).
#[test]
fn four_or_five_replicas() {
    simulate("four_or_five_replicas", 1_500, |rng| config(rng, 4..6, 400));
}

/// Old `Records` responses handed straight to `apply`, past the RPC
/// layer's matching: they carry the leader's epoch and must be safe even
/// unmatched (applied when they fit the log's end and epoch, refused with
/// nothing changed otherwise), so every invariant must still hold.
#[test]
fn stale_records_responses_never_corrupt() {
    simulate("stale_records_responses_never_corrupt", 500, |rng| Config {
        stale_records_percent: 10,
        ..config(rng, 3..6, 300)
    });
}

/// Diverging answers carry no epoch of their own, so the RPC layer must
/// hand over only the answer to the latest fetch; one that slips through
/// may cut uncommitted records, but `apply` never cuts below the high
/// watermark (FIELD-NOTES 4: refuse to truncate below the HW), and a
/// refused one changes nothing. (The simulation proper never produces an
/// answer that asks for such a cut, so it cannot see this check go.)
#[test]
fn unmatched_diverging_responses_never_cut_below_the_high_watermark() {
    use replog::NewRecord;
    use replog::replication::{Acks, FetchResponse, Replica, ReplicaId, ReplicaOptions};
    let mut rng = Rng::new(seed("unmatched_diverging_responses_never_cut_below_the_high_watermark"));
    let dirs = [scratch(), scratch()];
    let ids = [ReplicaId(1), ReplicaId(2)];
    let open = |i: usize| Replica::open(dirs[i].path(), ids[i], ReplicaOptions::default()).unwrap();
    let (leader, follower) = (open(0), open(1));
    for epoch in [1, 3, 5] {
        leader.become_leader(epoch, &ids, &ids).unwrap();
        for _ in 0..rng.in_range(1..6) {
            let len = rng.in_range(1..40);
            let value = rng.letters(len);
            leader.append(&[NewRecord::new(&value)], Acks::Leader).unwrap();
        }
    }
    follower.become_follower(5, ids[0]).unwrap();
    let (mut cuts, mut refused_below) = (0, 0);
    for round in 0..100 {
        // New records, and one fetch that brings them: the follower's high
        // watermark stays where its previous fetch left its log end.
        for _ in 0..rng.in_range(1..4) {
            let len = rng.in_range(1..40);
            let value = rng.letters(len);
            leader.append(&[NewRecord::new(&value)], Acks::Leader).unwrap();
        }
        let request = follower.fetch_request(1 << 20).unwrap();
        follower.apply(leader.handle_fetch(&request)).unwrap();
        let (end, high_watermark) = (follower.log().next_offset(), follower.high_watermark());
        let epoch = rng.below(7);
        let end_offset = if rng.percent(50) {
            high_watermark + rng.below(end - high_watermark + 2)
        } else {
            rng.below(end + 3)
        };
        let applied = follower.apply(FetchResponse::Diverging { epoch, end_offset });
        let after = (follower.log().next_offset(), follower.high_watermark());
        assert!(
            after.0 >= high_watermark,
            "round {round}: Diverging {{ epoch: {epoch}, end_offset: {end_offset} }} cut to {} below the HW {high_watermark} ({applied:?})",
            after.0
        );
        if applied.is_err() {
            assert_eq!(
                after,
                (end, high_watermark),
                "round {round}: refused but changed ({applied:?})"
            );
        }
        cuts += u32::from(matches!(applied, Ok(replog::replication::Applied::Truncated { .. })));
        refused_below += u32::from(matches!(applied, Err(replog::Error::BelowHighWatermark { .. })));
    }
    println!("{cuts} cuts above the HW, {refused_below} refused below it");
    assert!(
        cuts > 0 && refused_below > 0,
        "exercised: {cuts} cuts, {refused_below} refused below the HW"
    );
}
