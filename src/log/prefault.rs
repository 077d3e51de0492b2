//! Keeping the background pre-fault work just ahead of the writer: how far
//! ahead (a window that follows the write rate), allocating the segment
//! file ahead of it, and write-back behind the writer under
//! `SyncPolicy::Never`.
//!
//! The window starts small and doubles while the writer uses it up quickly,
//! up to `Options::prefault_bytes`, and halves while it does not. So a log
//! appended to at gigabytes per second finds its pages faulted in, while a
//! thousand logs with a trickle of appends each hold a few hundred
//! kilobytes of faulted pages apiece, not `prefault_bytes`.
//!
//! Read-around on faults follows the window: off while it is small, on
//! from [`READ_AROUND_FROM_BYTES`]. Measured on the 2-core VM (read-ahead
//! 8 MiB): with read-around off, pre-faulting page by page held batched
//! appends to a fresh log at 2.8 M records/s against 10-16 M with it on;
//! with it on, pre-faulting 128 KiB for a log of ten records zero-filled
//! 8 MiB of page cache and took 5.5 ms (opening 1,000 logs: 9.5 s, most of
//! it in that zero-filling).
//!
//! Under `SyncPolicy::Always` read-around stays off, and the pre-fault task
//! writes back the zeros it faulted in (see `storage::background`): a
//! durable writer is slow enough for page-by-page pre-faulting, and its
//! syncs are what pays for large folios and unwritten extents.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Shared, Writer};
use crate::options::SyncPolicy;

/// The window from which faults read around (see the module docs).
const READ_AROUND_FROM_BYTES: u64 = 2 << 20;
/// How far behind the write position write-back (under `SyncPolicy::Never`) stays.
const WRITE_BACK_LAG_BYTES: u64 = 1 << 20;
/// The smallest pre-fault window.
const WINDOW_MIN_BYTES: u64 = 128 << 10;
/// A writer that crosses half its window sooner than this after the last
/// request gets a window twice as large.
const GROW_WITHIN: Duration = Duration::from_millis(100);
/// One that takes longer than this gets a window half as large.
const SHRINK_AFTER: Duration = Duration::from_secs(1);

/// The pre-fault window of one log's writer.
#[derive(Debug)]
pub(super) struct PrefaultWindow {
    /// Pre-faulting was requested up to this position of the active segment.
    requested_to: u64,
    bytes: u64,
    requested_at: Option<Instant>,
    /// Faults read around from a window this large on (`u64::MAX`: never).
    read_around_from_bytes: u64,
}

impl PrefaultWindow {
    /// A window of the smallest size (or `max_bytes`, if smaller) for a
    /// log under `sync`.
    pub(super) fn new(max_bytes: u64, sync: SyncPolicy) -> PrefaultWindow {
        PrefaultWindow {
            requested_to: 0,
            bytes: WINDOW_MIN_BYTES.min(max_bytes),
            requested_at: None,
            read_around_from_bytes: if sync == SyncPolicy::Always {
                u64::MAX
            } else {
                READ_AROUND_FROM_BYTES
            },
        }
    }

    /// Whether faults should read around, for a window this large.
    fn read_around(&self) -> bool {
        self.bytes >= self.read_around_from_bytes
    }

    /// Whether the writer at `position` has used up half the window.
    fn due(&self, position: u64) -> bool {
        position + self.bytes / 2 >= self.requested_to
    }

    /// Sizes the window by how fast the writer used up the last one.
    fn adapt(&mut self, max_bytes: u64) {
        let now = Instant::now();
        if let Some(elapsed) = self.requested_at.map(|at| now.duration_since(at)) {
            if elapsed < GROW_WITHIN {
                self.bytes = (self.bytes * 2).min(max_bytes);
            } else if elapsed > SHRINK_AFTER {
                self.bytes = (self.bytes / 2).max(WINDOW_MIN_BYTES.min(max_bytes));
            }
        }
        self.requested_at = Some(now);
    }
}

impl Shared {
    /// Keeps pages ahead of the write position allocated and pre-faulted
    /// and, under `SyncPolicy::Never`, pages behind it written back (see
    /// `storage::background`). Cheap unless half the window is used up.
    pub(super) fn prefault_ahead(&self, writer: &mut Writer) {
        let max_bytes = self.options.prefault_bytes;
        let position = writer.active.position();
        if max_bytes == 0 || !writer.prefault.due(position) {
            return;
        }
        let read_around = writer.prefault.read_around();
        writer.prefault.adapt(max_bytes);
        if writer.prefault.read_around() != read_around {
            writer.active.set_read_around(!read_around);
        }
        // The pre-fault task allocates the file ahead of it as it goes; an
        // append that finds no room allocates itself (`reserve`).
        let target = position + writer.prefault.bytes.min(writer.active.remaining());
        if target <= writer.prefault.requested_to {
            return;
        }
        writer.prefault.requested_to = target;
        // Write-back trails the writer: it write-protects the pages it
        // cleans, and the page being filled would then fault again.
        let write_back_to = (self.options.sync == SyncPolicy::Never)
            .then(|| position.saturating_sub(WRITE_BACK_LAG_BYTES) / 4096 * 4096);
        self.prefaulter.request(target, write_back_to);
    }

    /// Points pre-faulting at the active segment after it changed.
    pub(super) fn restart_prefault(&self, writer: &mut Writer) {
        self.prefaulter
            .switch_to(Some(Arc::clone(writer.active.mapping())), writer.active.position());
        writer.prefault.requested_to = 0;
        if self.options.prefault_bytes > 0 {
            writer.active.set_read_around(writer.prefault.read_around());
        }
        self.prefault_ahead(writer);
    }
}
