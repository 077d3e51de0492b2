//! The invariants the simulation checks after every step, and the torn tail
//! a crash leaves.
//!
//! The checker keeps one canonical history: the records every replica has
//! below its high watermark and every record a leader acknowledged (its
//! high watermark covered it while it led), as `(batch epoch, value)` per
//! offset. Each replica is compared with it incrementally: offsets below
//! `checked` were compared already and can change only by a truncation,
//! which the replica's log reports (see `Cuts`) and which lowers `checked`.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::FileExt;
use std::path::Path;

use replog::replication::Replica;
use replog::{Batch, Log};

use crate::common::files::{segment_bases, segment_path};
use crate::common::rng::Rng;

/// Panics with the step where an invariant broke; the runner adds the seed.
#[macro_export]
macro_rules! violation {
    ($($arg:tt)*) => {
        panic!("INVARIANT VIOLATED: {}", format!($($arg)*))
    };
}

/// What the checker remembers of one replica between steps.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Offsets below this were compared with the canonical history.
    checked: u64,
    /// High watermark at the end of the previous step; `None` after a crash.
    high_watermark: Option<u64>,
    /// Epoch at the end of the previous step (kept across crashes).
    epoch: u64,
    /// The epoch history must be checked against the batches.
    structure: bool,
}

/// A record as the checker compares it: the epoch of its batch, its
/// timestamp, key and value.
type Signature = (u64, i64, Option<Vec<u8>>, Vec<u8>);

#[derive(Debug)]
pub struct Checker {
    /// Committed (and acknowledged) records: every replica below its high
    /// watermark, and the current leader everywhere, must hold exactly these.
    committed: BTreeMap<u64, Signature>,
    /// Every value a producer appended (each is unique).
    appended: HashSet<Vec<u8>>,
    seen: Vec<Seen>,
}

impl Checker {
    pub fn new(replicas: usize) -> Checker {
        Checker {
            committed: BTreeMap::new(),
            appended: HashSet::new(),
            seen: vec![Seen::default(); replicas],
        }
    }

    /// A producer appended `value` (no phantom records: every record a
    /// log holds below its high watermark is one of these).
    pub fn appended(&mut self, value: &[u8]) {
        self.appended.insert(value.to_vec());
    }

    /// One past the highest committed offset known.
    pub fn committed_end(&self) -> u64 {
        self.committed.last_key_value().map_or(0, |(offset, _)| offset + 1)
    }

    /// Guards "no acknowledged record changes": a leader's high watermark
    /// covered the record it appended at `offset`. Two different records
    /// acknowledged at one offset, or one that differs from what the
    /// producer appended, is a violation.
    pub fn acknowledged(&mut self, replica: &Replica, offset: u64, epoch: u64, value: &[u8]) {
        let read = replica.log().read(offset);
        let read =
            read.unwrap_or_else(|e| violation!("{:?} acknowledged {offset} but cannot read it: {e}", replica.id()));
        if read.value() != value {
            violation!(
                "{:?} acknowledged offset {offset}: it holds {:?}, the producer appended {:?}",
                replica.id(),
                read.value().escape_ascii().to_string(),
                value.escape_ascii().to_string()
            );
        }
        let key = read.key().map(|key| key.to_vec());
        let signature = (epoch, read.timestamp_ms(), key, value.to_vec());
        if let Some(existing) = self.committed.insert(offset, signature.clone())
            && existing != signature
        {
            violation!("offset {offset} acknowledged twice: {existing:?} and now {signature:?}");
        }
    }

    /// The replica went down (crash or close): its high watermark may be
    /// lower when it comes back, and its log must be compared again.
    pub fn went_down(&mut self, index: usize) {
        let seen = &mut self.seen[index];
        seen.high_watermark = None;
        seen.checked = 0;
        seen.structure = true;
    }

    /// Requests a check of every replica's epoch history on its next check.
    pub fn check_structure(&mut self) {
        self.seen.iter_mut().for_each(|seen| seen.structure = true);
    }

    /// Every invariant of one live replica after a step. `cuts` are the
    /// offsets its log was truncated at during the step; `leads` is true for
    /// the coordinator's current leader (in its role and epoch).
    pub fn check(&mut self, index: usize, replica: &Replica, cuts: &[u64], leads: bool) {
        let committed_end = self.committed_end();
        let seen = &mut self.seen[index];
        let id = replica.id();
        let log = replica.log();
        let (high_watermark, end, epoch) = (replica.high_watermark(), log.next_offset(), replica.epoch());
        // Epochs never go backward, across crashes too (the epoch is durable).
        if epoch < seen.epoch {
            violation!("{id:?}: epoch went back from {} to {epoch}", seen.epoch);
        }
        seen.epoch = epoch;
        // The high watermark never covers records the replica lacks.
        if high_watermark > end {
            violation!("{id:?}: high watermark {high_watermark} above its log end {end}");
        }
        if let Some(previous) = seen.high_watermark {
            // The high watermark never moves backward on a replica that did not crash.
            if high_watermark < previous {
                violation!("{id:?}: high watermark went back from {previous} to {high_watermark}");
            }
            // Committed records are never cut (FIELD-NOTES 4: never truncate below the HW).
            if let Some(cut) = cuts.iter().find(|cut| **cut < previous) {
                violation!("{id:?}: truncated at {cut}, below its high watermark {previous}");
            }
        }
        seen.high_watermark = Some(high_watermark);
        if let Some(lowest) = cuts.iter().min() {
            seen.checked = seen.checked.min(*lowest);
            seen.structure = true;
        }
        // The leader holds every acknowledged record; others agree below their HW.
        if leads && end < committed_end {
            let first = end.max(log.start_offset());
            violation!("{id:?} leads epoch {epoch} but its log ends at {end}: committed record {first} is lost");
        }
        let target = if leads {
            high_watermark.max(committed_end)
        } else {
            high_watermark
        };
        if seen.checked < target {
            let from = seen.checked.max(log.start_offset());
            compare(&mut self.committed, &self.appended, log, from, target, high_watermark);
            seen.checked = target;
        }
        if std::mem::take(&mut seen.structure) {
            check_epoch_history(log);
        }
    }
}

/// Compares the replica's records `from..to` with the committed history,
/// adding those below `high_watermark` that it does not have yet, and
/// checks that each is a record a producer appended.
fn compare(
    committed: &mut BTreeMap<u64, Signature>,
    appended: &HashSet<Vec<u8>>,
    log: &Log,
    from: u64,
    to: u64,
    high_watermark: u64,
) {
    for batch in log.batches(from) {
        let batch = batch.unwrap_or_else(|e| violation!("{:?}: reading from {from}: {e}", log.dir()));
        if batch.base_offset() >= to {
            break;
        }
        for record in batch.records() {
            let offset = record.offset();
            if offset < from || offset >= to {
                continue;
            }
            if !appended.contains(record.value()) {
                violation!("{:?}: offset {offset} holds a record no producer appended", log.dir());
            }
            let key = record.key().map(|key| key.to_vec());
            let signature = (
                batch.leader_epoch(),
                record.timestamp_ms(),
                key,
                record.value().to_vec(),
            );
            match committed.get(&offset) {
                Some(expected) if *expected != signature => violation!(
                    "{:?}: committed offset {offset} is {expected:?} but the log holds {signature:?}",
                    log.dir()
                ),
                Some(_) => {}
                None if offset < high_watermark => {
                    committed.insert(offset, signature);
                }
                None => {}
            }
        }
    }
}

/// Guards "the epoch cache is cleaned on truncation" (FIELD-NOTES 4): the
/// epoch history equals the one the batches give, epochs strictly rising.
pub fn check_epoch_history(log: &Log) {
    let mut derived: Vec<(u64, u64)> = Vec::new();
    for batch in log.batches(log.start_offset()) {
        let batch: Batch = batch.unwrap_or_else(|e| violation!("{:?}: reading batches: {e}", log.dir()));
        match derived.last() {
            Some((epoch, _)) if *epoch == batch.leader_epoch() => {}
            Some((epoch, _)) if *epoch > batch.leader_epoch() => violation!(
                "{:?}: batch at {} has epoch {} after epoch {epoch}",
                log.dir(),
                batch.base_offset(),
                batch.leader_epoch()
            ),
            _ => derived.push((batch.leader_epoch(), batch.base_offset())),
        }
    }
    let history = log.epoch_history();
    if history != derived {
        violation!(
            "{:?}: epoch history {history:?}, but the batches give {derived:?}",
            log.dir()
        );
    }
}

/// Every batch of `log`, as `(base offset, epoch, stored bytes)`.
pub fn batches(log: &Log) -> Vec<(u64, u64, Vec<u8>)> {
    log.batches(log.start_offset())
        .map(|batch| {
            let batch = batch.unwrap_or_else(|e| violation!("{:?}: reading batches: {e}", log.dir()));
            (batch.base_offset(), batch.leader_epoch(), batch.as_bytes().to_vec())
        })
        .collect()
}

/// Leaves torn garbage past the data of the newest segment, as a write in
/// flight when the power went would (docs/FORMAT.md: the active segment is
/// preallocated with zeros, and recovery cuts at the first batch that fails
/// its checks). Finds the end of the data by walking the batch headers.
pub fn tear(dir: &Path, rng: &mut Rng) {
    let Some(&base) = segment_bases(dir).last() else {
        return;
    };
    let path = segment_path(dir, base);
    let bytes = std::fs::read(&path).unwrap();
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let (mut position, mut expected) = (64usize, base);
    while position + 48 <= bytes.len() {
        let len = u32_at(position + 8) as usize;
        let valid = &bytes[position + 4..position + 8] == b"RPB1"
            && len >= 48
            && position + len <= bytes.len()
            && u64_at(position + 16) == expected;
        if !valid {
            break;
        }
        position += len;
        expected += u64::from(u32_at(position - len + 12));
    }
    let len = rng.in_range(1..300);
    let garbage = rng.nonzero_bytes(len);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&garbage, position as u64).unwrap();
}
