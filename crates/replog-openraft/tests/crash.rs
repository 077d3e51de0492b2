//! Crash tests with real processes killed by SIGKILL.
//!
//! The test binary re-executes itself as a child (the `crash_child` "test",
//! which does nothing unless a parent started it through `common::child`).
//! The child opens the store, saves a vote, then appends batches, and now
//! and then truncates or purges, printing a line for each operation once it
//! is durable (an append once its flush callback fired; a vote, truncation
//! or purge once the call returned), and a line before each truncation or
//! purge. The parent kills it at a random moment, reopens the store and
//! checks:
//!
//! - the vote is at least the last one printed, the purged id at least the
//!   last purge printed;
//! - every appended entry printed, and not truncated or purged since (or
//!   possibly so, by an operation started but not printed), is present with
//!   its log id and payload;
//! - the entries present are contiguous, each well formed, and the log state
//!   names the last of them;
//! - the store takes appends again (the next round continues it).
//!
//! SIGKILL keeps the page cache, so this tests the store's recovery and its
//! metadata writes, not power loss (the callbacks' "only once durable" is
//! tested in `src/flush.rs`). Rounds: `REPLOG_OPENRAFT_CRASH_ROUNDS`
//! (default 24). Replay: the test prints its seed; `REPLOG_SEED` replays
//! the choices (the kill timing still varies).

#![cfg(unix)]

mod common;
#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{LogIdOptionExt, RaftLogReader, Vote};

use common::rng::{Rng, seed};
use common::{child, entry, env_u64, log_id, open};

const CHILD_TEST: &str = "crash_child";
const ENV_CHILD_SEED: &str = "REPLOG_OPENRAFT_CRASH_CHILD_SEED";
const ENV_ROUNDS: &str = "REPLOG_OPENRAFT_CRASH_ROUNDS";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The child: works on the store until killed.
#[test]
fn crash_child() {
    let Some(dir) = child::dir(CHILD_TEST) else {
        return;
    };
    println!();
    let mut rng = Rng::new(env_u64(ENV_CHILD_SEED).expect("child seed"));
    runtime().block_on(async {
        let mut store = open(&dir).expect("child: open");
        let state = store.get_log_state().await.unwrap();
        let vote_term = store.read_vote().await.unwrap().map_or(0, |v| v.leader_id().term);
        let last_term = state.last_log_id.map_or(0, |id| id.leader_id.term);
        let mut term = vote_term.max(last_term) + 1;
        let mut purged_next = state.last_purged_log_id.next_index();
        let mut next = state.last_log_id.next_index();
        store.save_vote(&Vote::new_committed(term, 1)).await.unwrap();
        println!("vote {term}");
        loop {
            let choice = rng.below(100);
            if choice < 3 && next > purged_next + 1 {
                let index = purged_next + 1 + rng.below(next - purged_next - 1);
                println!("truncating {index}");
                store.truncate(log_id(term, index)).await.unwrap();
                println!("truncate {index}");
                next = index;
                term += 1;
                store.save_vote(&Vote::new_committed(term, 1)).await.unwrap();
                println!("vote {term}");
            } else if choice < 5 {
                let index = purged_next + rng.below(next - purged_next + 3);
                let id = if index < next {
                    store.try_get_log_entries(index..=index).await.unwrap()[0].log_id
                } else {
                    log_id(term, index)
                };
                println!("purging {index}");
                store.purge(id).await.unwrap();
                println!("purge {index}");
                purged_next = index + 1;
                next = next.max(purged_next);
            } else {
                let count = 1 + rng.below(8);
                store
                    .blocking_append((next..next + count).map(|i| entry(term, i)))
                    .await
                    .unwrap();
                println!("append {next} {count} {term}");
                next += count;
            }
        }
    });
}

/// What the parent knows from the lines the child printed.
#[derive(Default)]
struct Model {
    vote_term: u64,
    purged: Option<u64>,
    /// Acknowledged entries: index -> term.
    acked: BTreeMap<u64, u64>,
    /// A truncation or purge started but not printed as done.
    truncating: Option<u64>,
    purging: Option<u64>,
}

impl Model {
    fn apply(&mut self, line: &str) {
        let words: Vec<u64> = line.split(' ').skip(1).map(|w| w.parse().expect("number")).collect();
        match line.split(' ').next() {
            Some("vote") => self.vote_term = words[0],
            Some("append") => {
                for index in words[0]..words[0] + words[1] {
                    self.acked.insert(index, words[2]);
                }
            }
            Some("truncating") => self.truncating = Some(words[0]),
            Some("truncate") => {
                self.acked.split_off(&words[0]);
                self.truncating = None;
            }
            Some("purging") => self.purging = Some(words[0]),
            Some("purge") => {
                self.purged = self.purged.max(Some(words[0]));
                self.acked = self.acked.split_off(&(words[0] + 1));
                self.purging = None;
            }
            _ => panic!("unexpected line from the child: {line:?}"),
        }
    }
}

/// Reopens the store after a kill, checks it against `model`, and returns
/// the model of what it holds now (the parent's close makes it durable).
fn check(dir: &Path, model: &Model, round: u64) -> Model {
    runtime().block_on(async {
        let mut store = open(dir).unwrap_or_else(|e| panic!("round {round}: reopen: {e}"));
        let vote = store.read_vote().await.unwrap().expect("a vote was saved");
        assert!(
            vote.leader_id().term >= model.vote_term,
            "round {round}: vote {vote} lost {}",
            model.vote_term
        );
        let state = store.get_log_state().await.unwrap();
        let purged = state.last_purged_log_id.map(|id| id.index);
        assert!(
            purged >= model.purged,
            "round {round}: purge {:?} lost, store says {purged:?}",
            model.purged
        );
        let first = state.last_purged_log_id.next_index();
        let entries = store.try_get_log_entries(first..).await.unwrap();
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(
                e.log_id.index,
                first + i as u64,
                "round {round}: entries not contiguous"
            );
            assert!(common::is_well_formed(e), "round {round}: bad entry {}", e.log_id);
        }
        assert_eq!(
            state.last_log_id,
            entries.last().map(|e| e.log_id).or(state.last_purged_log_id),
            "round {round}: log state"
        );
        let present: BTreeMap<u64, u64> = entries
            .iter()
            .map(|e| (e.log_id.index, e.log_id.leader_id.term))
            .collect();
        for (&index, &term) in &model.acked {
            let maybe_gone = purged.is_some_and(|p| index <= p)
                || model.truncating.is_some_and(|t| index >= t)
                || model.purging.is_some_and(|p| index <= p);
            match present.get(&index) {
                Some(&t) => assert!(
                    t == term || maybe_gone,
                    "round {round}: entry {index} has term {t}, acked {term}"
                ),
                None => assert!(
                    maybe_gone,
                    "round {round}: acknowledged entry {index} (term {term}) lost"
                ),
            }
        }
        let next = state.last_log_id.next_index();
        store
            .blocking_append([entry(vote.leader_id().term, next)])
            .await
            .unwrap();
        store.close().unwrap();
        Model {
            vote_term: vote.leader_id().term,
            purged,
            acked: present.into_iter().chain([(next, vote.leader_id().term)]).collect(),
            ..Model::default()
        }
    })
}

/// Runs one child until killed; returns its complete output lines.
fn run_child(dir: &Path, child_seed: u64, kill_after: Duration) -> Vec<String> {
    let mut process = child::spawn(CHILD_TEST, dir, &[(ENV_CHILD_SEED, child_seed.to_string())]);
    let mut stdout = process.stdout.take().unwrap();
    let stderr = child::read_to_end(process.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut output = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 {
                break;
            }
            if output.is_empty() || !output.windows(5).any(|w| w == b"vote ") {
                output.extend_from_slice(&buffer[..n]);
                if output.windows(5).any(|w| w == b"vote ") {
                    let _ = tx.send(());
                }
            } else {
                output.extend_from_slice(&buffer[..n]);
            }
        }
        output
    });
    // Wait until the child has opened the store, then let it work a while.
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = process.kill();
        panic!("the child did not start: {}", stderr.join().unwrap());
    }
    std::thread::sleep(kill_after);
    process.kill().expect("SIGKILL the child");
    process.wait().expect("wait for the child");
    let output = String::from_utf8(reader.join().unwrap()).expect("utf-8");
    let _ = stderr.join();
    // Only whole lines: a line without its newline was cut by the kill.
    let complete = &output[..output.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("running") && !l.starts_with("test "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn sigkill_never_loses_an_acknowledged_entry_or_a_saved_vote() {
    let seed = seed("sigkill_never_loses_an_acknowledged_entry_or_a_saved_vote");
    let rounds = env_u64(ENV_ROUNDS).unwrap_or(24);
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let (mut lines_total, started) = (0, Instant::now());
    for round in 0..rounds {
        let kill_after = Duration::from_millis(20 + rng.below(280));
        for line in run_child(dir.path(), rng.next_u64(), kill_after) {
            model.apply(&line);
            lines_total += 1;
        }
        model = check(dir.path(), &model, round);
    }
    println!(
        "{rounds} rounds, {lines_total} acknowledged operations, {:?}",
        started.elapsed()
    );
    assert!(lines_total > rounds, "the children acknowledged almost nothing");
}
