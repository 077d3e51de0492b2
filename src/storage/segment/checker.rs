//! Checking a segment's unchecked batches ahead of a reader, on another
//! core.
//!
//! Batches written by an earlier process are checked (CRC and structure)
//! the first time this process reads them. A reader walking such a
//! segment spends most of its time on that check (a one-record batch:
//! about 35 of 65 ns), so the first reader that finds a long unchecked
//! stretch starts a thread that checks batches a little ahead of it.
//!
//! **Why it is sound.** `checked_to` stays what it was: every batch
//! starting below it was checked. The checker checks a chain of batches
//! `[start, end)` of its own, each in full and each starting where the one
//! before ended, and publishes it in `checked_ahead`. Whenever `checked_to`
//! lies inside `[start, end]`, the two are one checked stretch, and
//! `checked_to` may move to `end` ([`Segment::join_checked_ahead`], called
//! by readers and the checker alike). The chain's `start` is found by
//! walking unchecked headers from a checked boundary, so a damaged length
//! can put it off a batch boundary: the chain then fails its first check
//! and stays empty, or (an astronomically unlikely CRC match aside) starts
//! at a real boundary further on, and the skipped batches, the damaged one
//! among them, lie below `start`, where readers check them themselves.
//! The base offset at `start` is not known to the checker; readers check
//! every batch's base offset as they step over it, checked or not.
//!
//! **Its cost.** One thread per segment at most, and at most one fewer
//! than the machine's cores across the process; it stops when nobody else
//! holds the segment, when it is [`WINDOW_BYTES`] ahead of the readers'
//! bound and they do not come on within [`IDLE`], or at the first damage.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::super::mmap::MappedFile;
use super::Segment;
use crate::format::BatchHeader;

/// Where a checker starts its chain, past the readers' bound: as much as a
/// reader checks in one go, so a reader that caught up with the chain's
/// end checks one run itself while the checker gets ahead again.
const LEAD_BYTES: u64 = 32 * 1024;
/// How much the checker checks before it publishes and looks at the bound.
const RUN_BYTES: u64 = 32 * 1024;
/// Unchecked bytes past a reader worth starting a thread for.
const MIN_BYTES: u64 = 1 << 20;
/// How far the checker runs ahead of the readers' bound before it waits
/// for them: a reader that stops early wastes at most this much checking.
const WINDOW_BYTES: u64 = 8 << 20;
/// How long a checker waits for readers to come on before it stops.
const IDLE: Duration = Duration::from_millis(20);

/// Checkers running in this process.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Most checkers at once: one core is left to the readers.
fn most_running() -> usize {
    static MOST: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MOST.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()) - 1)
}

impl Segment {
    /// Joins the checker's chain to `checked_to` if they meet.
    pub(super) fn join_checked_ahead(&self) {
        let (start, end) = *self.checked_ahead.lock();
        let mut bound = self.checked_to.load(Ordering::Acquire);
        while bound >= start && bound < end {
            match self
                .checked_to
                .compare_exchange(bound, end, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(now) => bound = now,
            }
        }
    }

    /// Starts a checker for the unchecked batches between `from` and
    /// `end` (both past the readers' bound) unless one runs for this
    /// segment, the stretch is short, or the process runs its most.
    pub(super) fn start_checker(self: &Arc<Self>, from: u64, end: u64) {
        if end.saturating_sub(from) < MIN_BYTES || self.checker_running.load(Ordering::Acquire) {
            return;
        }
        if RUNNING.fetch_add(1, Ordering::AcqRel) >= most_running() || self.checker_running.swap(true, Ordering::AcqRel)
        {
            RUNNING.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let stop = |segment: &Segment| {
            segment.checker_running.store(false, Ordering::Release);
            RUNNING.fetch_sub(1, Ordering::AcqRel);
        };
        let Ok(map) = self.mapping() else {
            return stop(self);
        };
        let segment = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("replog-check".into()).spawn(move || {
            segment.check_ahead_of_readers(&map, end);
            stop(&segment);
        });
        if spawned.is_err() {
            stop(self);
        }
    }

    /// The checker's loop (see the module docs).
    fn check_ahead_of_readers(self: &Arc<Self>, map: &MappedFile, end: u64) {
        let Ok(data) = self.data(map, end) else {
            return;
        };
        // The chain: its start, its end, and the offset expected there.
        let mut chain: Option<(u64, u64, u64)> = None;
        let mut idle_since = Instant::now();
        let mut last_bound = 0;
        while Arc::strong_count(self) > 1 {
            let bound = self.checked_to.load(Ordering::Acquire);
            if bound >= end {
                return;
            }
            if bound != last_bound {
                (last_bound, idle_since) = (bound, Instant::now());
            }
            let (start, from, expected) = match chain {
                Some((start, chain_end, next)) if chain_end >= bound => (start, chain_end, Some(next)),
                _ => match boundary_past(data, bound, LEAD_BYTES) {
                    Some(start) => (start, start, None),
                    None => return,
                },
            };
            if from >= end {
                return;
            }
            if from >= bound + WINDOW_BYTES {
                if idle_since.elapsed() > IDLE {
                    return;
                }
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            let expected = match expected {
                Some(next) => next,
                None => match BatchHeader::decode(&data[from as usize..]) {
                    Ok(header) => header.base_offset,
                    Err(_) => return,
                },
            };
            let (run_end, next) = self.check_run(data, from, expected, RUN_BYTES);
            if run_end == from {
                // Damage: the readers report it when they get there.
                return;
            }
            *self.checked_ahead.lock() = (start, run_end);
            self.join_checked_ahead();
            chain = Some((start, run_end, next));
        }
    }
}

/// The first batch boundary at least `lead` bytes past `from` (a boundary),
/// found by walking the headers in between without checking them; `None`
/// if a header does not decode or the walk leaves `data`.
fn boundary_past(data: &[u8], from: u64, lead: u64) -> Option<u64> {
    let mut position = from;
    while position < from + lead {
        let header = BatchHeader::decode(data.get(position as usize..)?).ok()?;
        position += header.batch_len as u64;
    }
    (position < data.len() as u64).then_some(position)
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;
    use crate::storage::mapping::{MapCache, MapSlot};
    use crate::storage::segment::SegmentParts;

    /// A segment over a scratch file, for its bounds only.
    fn segment(dir: &std::path::Path, cache: &Arc<MapCache>) -> Arc<Segment> {
        let path = dir.join("scratch");
        File::create(&path).unwrap().set_len(4096).unwrap();
        let slot = MapSlot::unmapped(&File::open(&path).unwrap(), &path, cache).unwrap();
        Segment::new(SegmentParts {
            base_offset: 0,
            dir: dir.to_path_buf(),
            slot,
            end_position: 4096,
            next_offset: 10,
            max_timestamp_ms: 0,
            last_epoch: 0,
            unchecked_end: u64::MAX,
            index_interval_bytes: 64,
            index: None,
            persist_index: false,
        })
    }

    #[test]
    fn a_run_checked_ahead_joins_the_bound_only_where_they_meet() {
        let dir = tempfile::tempdir().unwrap();
        let cache = MapCache::new(1);
        let segment = segment(dir.path(), &cache);
        let bound = |segment: &Segment| segment.checked_to.load(Ordering::SeqCst);
        let set = |segment: &Segment, to: u64, ahead: (u64, u64)| {
            segment.checked_to.store(to, Ordering::SeqCst);
            *segment.checked_ahead.lock() = ahead;
            segment.join_checked_ahead();
        };
        set(&segment, 100, (200, 300));
        assert_eq!(
            bound(&segment),
            100,
            "joined over unchecked bytes between the bound and the run"
        );
        set(&segment, 200, (200, 300));
        assert_eq!(bound(&segment), 300);
        set(&segment, 250, (200, 400));
        assert_eq!(bound(&segment), 400);
        set(&segment, 500, (200, 400));
        assert_eq!(bound(&segment), 500, "the bound went back");
        set(&segment, 64, (0, 0));
        assert_eq!(bound(&segment), 64);
    }

    #[test]
    fn the_start_of_a_run_is_a_boundary_at_least_the_lead_past() {
        let mut data = vec![0u8; 64];
        for base in 0..10 {
            data.extend(crate::format::encode_batch_to_vec(
                &[crate::NewRecord::new(&[1; 100])],
                base,
                1,
                0,
            ));
        }
        let first = crate::format::validate_batch(&data[64..], 0).unwrap().batch_len as u64;
        assert_eq!(boundary_past(&data, 64, 1), Some(64 + first));
        assert_eq!(boundary_past(&data, 64, first), Some(64 + first));
        assert_eq!(boundary_past(&data, 64, first + 1), Some(64 + 2 * first));
        assert_eq!(boundary_past(&data, 64, 100 * first), None, "past the data");
        data[64 + 4] ^= 0xff;
        assert_eq!(boundary_past(&data, 64, 1), None, "a header that does not decode");
    }
}
