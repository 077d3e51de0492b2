//! The one seeded random number generator of the tests, and the one seed
//! function.
//!
//! A randomized test calls [`seed`] once with its own name and derives
//! everything random from the result (threads and rounds with
//! `Rng::new(seed ^ something)`). The seed is printed, and the test harness
//! shows the output of a failing test, so `REPLOG_SEED=<seed>` replays the
//! failure (as far as thread scheduling, or in the crash tests the kill
//! timing, allows).

use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that replays a randomized test.
pub const SEED_VAR: &str = "REPLOG_SEED";

/// The seed of the test named `test`: `REPLOG_SEED` if set, else one derived
/// from the clock and the process id. Printed as
/// `"{test}: seed {seed} (replay with REPLOG_SEED={seed})"`.
pub fn seed(test: &str) -> u64 {
    let seed = super::env_u64(SEED_VAR).unwrap_or_else(|| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        mix(now.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32))
    });
    println!("{test}: seed {seed} (replay with {SEED_VAR}={seed})");
    seed
}

/// The splitmix64 finalizer: a good 64-bit mix, for deriving values and
/// seeds from offsets and other seeds.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// xorshift64*: tiny, seeded, good enough for test decisions and filler.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value; it is mixed first, so nearby seeds
    /// give unrelated streams).
    pub fn new(seed: u64) -> Rng {
        Rng(mix(seed) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Uniform-ish in `range`, which must not be empty.
    pub fn in_range(&mut self, range: Range<usize>) -> usize {
        assert!(!range.is_empty(), "Rng::in_range({range:?}): empty range");
        range.start + self.below((range.end - range.start) as u64) as usize
    }

    /// True `p` times in a hundred.
    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// Random bytes none of which is zero.
    pub fn nonzero_bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next_u64() % 255 + 1) as u8).collect()
    }

    /// Random lowercase ASCII letters.
    pub fn letters(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| b'a' + (self.next_u64() % 26) as u8).collect()
    }
}
