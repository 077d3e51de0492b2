//! Support for this crate's integration tests. The child-process helper
//! and the seeded RNG are the replog crate's own (`tests/common`), shared
//! by path so both crates seed and re-execute the same way
//! (`REPLOG_SEED=<seed>` replays a randomized test).

// Each test binary uses part of this module (see the replog crate's
// `tests/common/mod.rs` for why this is not a per-item `expect`).
#![allow(dead_code)]

#[path = "../../../../tests/common/child.rs"]
pub mod child;
#[path = "../../../../tests/common/rng.rs"]
pub mod rng;

use std::path::Path;

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use replog_openraft::LogStore;

use crate::support::{Request, TypeConfig};

/// As the replog crate's `common::env_u64`: a `u64` from the environment.
pub fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={text:?} is not a number")))
}

/// Small segments, so tests roll segments and purges delete some.
pub fn options() -> replog::Options {
    replog::Options::default().segment_bytes(64 << 10).prefault_bytes(0)
}

/// Opens the store in `dir` with [`options`].
pub fn open(dir: &Path) -> replog_openraft::Result<LogStore<TypeConfig>> {
    LogStore::open_with(dir, options())
}

/// The log id of the entry at `index` written in `term` (by node 1).
pub fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

/// The entry at `index` written in `term`: its value describes itself, with
/// padding of a length derived from the index.
pub fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
    let pad = "x".repeat((rng::mix(index) % 200) as usize);
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Request {
            key: format!("k{index}"),
            value: format!("t{term}-i{index}-{pad}"),
        }),
    }
}

/// Whether `entry` is what [`entry`] makes for its own log id.
pub fn is_well_formed(e: &Entry<TypeConfig>) -> bool {
    let expected = entry(e.log_id.leader_id.term, e.log_id.index);
    format!("{:?}", e.payload) == format!("{:?}", expected.payload) && e.log_id == expected.log_id
}
