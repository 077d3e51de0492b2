//! Timing helpers shared by every store: the value pool, timed loops for one
//! thread and for many, and the per-record "touch" that reads use.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Size of every value appended or read.
pub const VALUE_BYTES: usize = 256;
/// Distinct values in the pool; record `i` carries value `i % POOL`.
const POOL: usize = 4096;

/// 4096 distinct pseudo-random 256-byte values (1 MiB). Random, so that no
/// store gains from compression (raft-engine LZ4-compresses batches over 8 KiB
/// by default), and distinct within any batch for the same reason.
pub struct Values {
    data: Vec<u8>,
    bytes: Vec<Bytes>,
}

impl Values {
    pub fn new() -> Values {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut data = vec![0u8; POOL * VALUE_BYTES];
        for chunk in data.chunks_mut(8) {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        let bytes = data.chunks(VALUE_BYTES).map(Bytes::copy_from_slice).collect();
        Values { data, bytes }
    }

    /// The value of record `i`.
    #[inline]
    pub fn get(&self, i: u64) -> &[u8] {
        let start = (i as usize % POOL) * VALUE_BYTES;
        &self.data[start..start + VALUE_BYTES]
    }

    /// The value of record `i` as a reference-counted `Bytes` (a cheap clone),
    /// for APIs that take ownership of the payload (raft-engine's entries).
    #[inline]
    pub fn bytes(&self, i: u64) -> Bytes {
        self.bytes[i as usize % POOL].clone()
    }

    /// What `touch` summed over records `0..n` adds up to.
    pub fn expected_touch(&self, n: u64) -> u64 {
        (0..n).map(|i| touch(self.get(i))).sum()
    }
}

/// What a read does with each value it gets back: its length plus its first and
/// last byte, so the bytes are really loaded (and the sum is checked, so every
/// record must have been returned with the right content).
#[inline]
pub fn touch(value: &[u8]) -> u64 {
    value.len() as u64 + u64::from(value[0]) + u64::from(value[value.len() - 1])
}

/// One timed measurement.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub records: u64,
    pub elapsed: Duration,
}

impl Sample {
    pub fn rate(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
}

/// Limits of a single-threaded append run.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Untimed warm-up into the same store, for this long...
    pub warmup: Duration,
    /// ...or this many records, whichever comes first.
    pub warmup_records: u64,
    /// The timed phase ends after this long...
    pub duration: Duration,
    /// ...or after this many records, whichever comes first.
    pub cap_records: u64,
}

impl Budget {
    /// Most records a run can append, warm-up included (to size files): the
    /// limits are checked every 64 records or every step, so each phase can
    /// overshoot its limit by that much.
    pub fn max_records(&self, per_step: u64) -> u64 {
        self.warmup_records + self.cap_records + 2 * 64.max(per_step)
    }
}

/// Calls `step(first_record)`, which appends `per_step` records, untimed for
/// the warm-up and then timed until the budget is spent. The clock is read
/// every 64 records or every step, whichever is rarer.
pub fn timed_loop(per_step: u64, budget: Budget, mut step: impl FnMut(u64)) -> Sample {
    let check_every = (64 / per_step).max(1);
    let warmup_start = Instant::now();
    let mut next = 0u64;
    let mut steps = 0u64;
    while next < budget.warmup_records {
        step(next);
        next += per_step;
        steps += 1;
        if steps.is_multiple_of(check_every) && warmup_start.elapsed() >= budget.warmup {
            break;
        }
    }
    let timed_from = next;
    let start = Instant::now();
    let mut steps = 0u64;
    loop {
        step(next);
        next += per_step;
        steps += 1;
        if steps.is_multiple_of(check_every)
            && (next - timed_from >= budget.cap_records || start.elapsed() >= budget.duration)
        {
            break;
        }
    }
    Sample {
        records: next - timed_from,
        elapsed: start.elapsed(),
    }
}

/// The two phases of a multi-threaded run: untimed warm-up, then the window
/// whose completed records are counted.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub run: Duration,
}

/// A counter on its own cache line(s), one per writer thread.
#[repr(align(128))]
#[derive(Default)]
struct PaddedCounter(AtomicU64);

/// Runs `threads` writers, each calling `op(thread, done, stop)` in a loop,
/// where `done` counts the records this thread appended so far; `op` returns
/// how many records it appended (0, after setting `stop`, when its store is
/// full). After the warm-up the counts are snapshotted, after the run window
/// they are snapshotted again: the rate is the difference over that window.
pub fn threaded_run<F>(threads: usize, window: Window, op: F) -> Sample
where
    F: Fn(usize, u64, &AtomicBool) -> u64 + Sync,
{
    let stop = AtomicBool::new(false);
    let counters: Vec<PaddedCounter> = (0..threads).map(|_| PaddedCounter::default()).collect();
    let total = || counters.iter().map(|c| c.0.load(Ordering::Relaxed)).sum::<u64>();
    std::thread::scope(|scope| {
        for (thread, counter) in counters.iter().enumerate() {
            let (op, stop) = (&op, &stop);
            scope.spawn(move || {
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    done += op(thread, done, stop);
                    counter.0.store(done, Ordering::Relaxed);
                }
            });
        }
        // Waits until `until` or until a writer found its store full.
        let wait = |until: Instant| {
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        wait(Instant::now() + window.warmup);
        let (t0, c0) = (Instant::now(), total());
        wait(t0 + window.run);
        let (t1, c1) = (Instant::now(), total());
        stop.store(true, Ordering::Relaxed);
        Sample {
            records: c1 - c0,
            elapsed: t1 - t0,
        }
    })
}
