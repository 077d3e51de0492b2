//! Support code shared by the integration tests: each `tests/*.rs` file
//! declares `mod common;` and takes what it needs from here.
//!
//! - [`rng`]: the one seeded random number generator and the one seed
//!   function; `REPLOG_SEED=<seed>` replays any randomized test.
//! - [`child`]: re-executing the test binary as a child process that runs one
//!   "child test" on a directory (the crash and disk-full tests).
//! - [`records`]: what the tests store at each offset, and the checks that a
//!   log holds it.
//! - [`files`]: the files of a log directory.

// Every test binary compiles this module on its own and uses only part of
// it; what one binary leaves unused another one uses. Per-item
// `#[expect(dead_code)]` does not fit: the expectation would go unfulfilled
// (a warning) in the binaries that do use the item.
#![allow(dead_code)]

pub mod child;
pub mod files;
pub mod records;
pub mod rng;

/// The value of the environment variable `name` as a `u64` (decimal, or hex
/// with `0x`), or `None` if it is not set. Panics if it is set to anything
/// else, so that a mistyped seed is not silently replaced by a random one.
pub fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={text:?} is not a number")))
}
