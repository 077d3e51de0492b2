//! The leader epoch history: for every leader epoch present in the log,
//! the offset of its first record (Kafka's leader-epoch checkpoint).
//! Replication uses it to find where a follower's log diverges from its
//! leader's (see [`EpochHistory::end_offset_for_epoch`]).
//!
//! Kept in memory and persisted in the `epochs` file, replaced atomically
//! whenever it changes:
//!
//! ```text
//!  0 [u8;8] "RPLGEPCH"
//!  8 u32    version (1)
//! 12 u32    entry count
//! 16 u64    log id (the one in every segment header)
//! 24 u32    CRC-32 of the entries
//! 28 u32    CRC-32 of bytes 0..28
//! entries (16 bytes each, epochs and start offsets strictly increasing):
//!    u64 leader epoch, u64 offset of its first record
//! ```
//!
//! The file is written *before* the data it describes changes in the one
//! direction that adds entries (the first batch of a new epoch), and after
//! the data in the directions that remove them (truncation, deletion of
//! old segments). A reset clears it first: a crash before the reset is
//! committed leaves the old log with an empty history, which disagrees with
//! it and is rebuilt. So after a crash the file holds at least what the log
//! holds, or is rebuilt; opening reconciles it with the log's actual range,
//! and a file that is missing, damaged, or disagrees with the last batch's
//! epoch is rebuilt from the batch headers.

use std::path::{Path, PathBuf};

use super::fs::{read_if_exists, replace_small_file};
use super::layout;
use crate::error::{Damage, Error, Result};
use crate::format::{header, read_u32, read_u64, write_u32, write_u64};

const MAGIC: [u8; 8] = *b"RPLGEPCH";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 32;
const ENTRY_BYTES: usize = 16;

/// One leader epoch and the offset of its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EpochStart {
    pub epoch: u64,
    pub start_offset: u64,
}

/// The epochs of a log, in increasing order of epoch and start offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EpochHistory {
    entries: Vec<EpochStart>,
}

impl EpochHistory {
    /// The entries, oldest first.
    pub(crate) fn entries(&self) -> &[EpochStart] {
        &self.entries
    }

    /// The epoch of the last entry.
    pub(crate) fn latest_epoch(&self) -> Option<u64> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that a batch of `epoch` starts at `offset`; returns whether
    /// that added an entry. Epochs below the latest are ignored (the
    /// callers check first).
    pub(crate) fn observe(&mut self, epoch: u64, offset: u64) -> bool {
        match self.latest_epoch() {
            Some(latest) if latest >= epoch => false,
            _ => {
                self.entries.push(EpochStart {
                    epoch,
                    start_offset: offset,
                });
                true
            }
        }
    }

    /// Drops the entries of epochs that start at or after `offset` (the
    /// log was truncated there); returns whether any were dropped.
    pub(crate) fn truncate_from(&mut self, offset: u64) -> bool {
        let keep = self.entries.partition_point(|e| e.start_offset < offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The log now starts at `start`: drops entries wholly below it and
    /// moves the start of the epoch that holds `start` up to it; returns
    /// whether anything changed.
    pub(crate) fn truncate_before(&mut self, start: u64) -> bool {
        let below = self.entries.partition_point(|e| e.start_offset <= start);
        let Some(holder) = below.checked_sub(1) else {
            return false;
        };
        let changed = holder > 0 || self.entries[0].start_offset != start;
        self.entries.drain(..holder);
        self.entries[0].start_offset = start;
        changed
    }

    /// Forgets every entry (the log was reset to empty).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Kafka's OffsetsForLeaderEpoch: the largest epoch at or below `epoch`
    /// present in the log, and the offset where it ends: the start of the
    /// next larger epoch, or `log_end` for the latest. `None` when the log
    /// holds no epoch at or below `epoch`.
    pub(crate) fn end_offset_for_epoch(&self, epoch: u64, log_end: u64) -> Option<(u64, u64)> {
        let after = self.entries.partition_point(|e| e.epoch <= epoch);
        let floor = self.entries[..after].last()?;
        let end = self.entries.get(after).map_or(log_end, |next| next.start_offset);
        Some((floor.epoch, end))
    }

    /// Keeps only what describes records in `[start, end)` whose last batch
    /// has epoch `last_epoch` (`None` for an empty log); returns `false` if
    /// the history cannot describe that log and must be rebuilt.
    pub(crate) fn reconcile(&mut self, start: u64, end: u64, last_epoch: Option<u64>) -> bool {
        self.truncate_from(end);
        self.truncate_before(start);
        match last_epoch {
            None => {
                self.clear();
                true
            }
            Some(epoch) => self.latest_epoch() == Some(epoch) && self.entries[0].start_offset == start,
        }
    }

    fn encode(&self, log_id: u64) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.entries.len() * ENTRY_BYTES);
        for entry in &self.entries {
            body.extend_from_slice(&entry.epoch.to_le_bytes());
            body.extend_from_slice(&entry.start_offset.to_le_bytes());
        }
        let mut head = vec![0u8; HEADER_BYTES];
        write_u32(&mut head, 12, self.entries.len() as u32);
        write_u64(&mut head, 16, log_id);
        write_u32(&mut head, 24, crc32fast::hash(&body));
        header::seal(&mut head, &MAGIC, VERSION);
        head.extend_from_slice(&body);
        head
    }

    fn decode(bytes: &[u8], log_id: u64) -> std::result::Result<EpochHistory, Damage> {
        let head = header::check(bytes, HEADER_BYTES, &MAGIC, VERSION)?;
        let found = read_u64(head, 16);
        if found != log_id {
            return Err(Damage::ForeignLog {
                expected: log_id,
                found,
            });
        }
        let body = &bytes[HEADER_BYTES..];
        if body.len() != read_u32(head, 12) as usize * ENTRY_BYTES {
            return Err(Damage::BadLength);
        }
        let (stored, computed) = (read_u32(head, 24), crc32fast::hash(body));
        if stored != computed {
            return Err(Damage::ChecksumMismatch { stored, computed });
        }
        let entries: Vec<EpochStart> = body
            .chunks_exact(ENTRY_BYTES)
            .map(|chunk| EpochStart {
                epoch: read_u64(chunk, 0),
                start_offset: read_u64(chunk, 8),
            })
            .collect();
        let unordered = entries
            .windows(2)
            .find(|w| w[0].epoch >= w[1].epoch || w[0].start_offset >= w[1].start_offset);
        if let Some(w) = unordered {
            return Err(Damage::EpochRegression {
                previous: w[0].epoch,
                found: w[1].epoch,
            });
        }
        Ok(EpochHistory { entries })
    }

    /// Durably replaces the `epochs` file of `dir`.
    pub(crate) fn write(&self, dir: &Path, log_id: u64) -> Result<()> {
        let bytes = self.encode(log_id);
        replace_small_file(&dir.join(layout::EPOCHS), &bytes)
    }

    /// Reads the `epochs` file of `dir`: `Ok(None)` if there is none,
    /// `Err(Corrupt)` if it fails its checks.
    #[cfg(test)]
    pub(crate) fn read(dir: &Path, log_id: u64) -> Result<Option<EpochHistory>> {
        StoredEpochs::read(dir)?.decode(log_id)
    }
}

/// The bytes of a log's `epochs` file, read once when the log is opened.
#[derive(Debug)]
pub(crate) struct StoredEpochs {
    path: PathBuf,
    bytes: Option<Vec<u8>>,
}

impl StoredEpochs {
    /// Reads the `epochs` file of `dir`, if there is one, and refuses one
    /// written by a format version this build does not read
    /// ([`Damage::UnknownVersion`]): called before opening changes anything.
    /// Damage of any other kind is left for [`StoredEpochs::decode`].
    pub(crate) fn read(dir: &Path) -> Result<StoredEpochs> {
        let path = dir.join(layout::EPOCHS);
        let bytes = read_if_exists(&path)?;
        if let Some(bytes) = &bytes
            && let Err(damage @ Damage::UnknownVersion { .. }) = header::check(bytes, HEADER_BYTES, &MAGIC, VERSION)
        {
            return Err(Error::corrupt(&path, 8, damage));
        }
        Ok(StoredEpochs { path, bytes })
    }

    /// The history the file holds for log `log_id`: `Ok(None)` if there was
    /// no file, `Err(Corrupt)` if it fails its checks.
    pub(crate) fn decode(&self, log_id: u64) -> Result<Option<EpochHistory>> {
        let Some(bytes) = &self.bytes else {
            return Ok(None);
        };
        EpochHistory::decode(bytes, log_id)
            .map(Some)
            .map_err(|damage| Error::corrupt(&self.path, 0, damage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(entries: &[(u64, u64)]) -> EpochHistory {
        let mut history = EpochHistory::default();
        for &(epoch, start) in entries {
            assert!(history.observe(epoch, start));
        }
        history
    }

    #[test]
    fn end_offset_for_epoch_follows_kafka() {
        let history = history(&[(1, 0), (3, 10), (4, 25)]);
        assert_eq!(history.end_offset_for_epoch(0, 40), None);
        assert_eq!(history.end_offset_for_epoch(1, 40), Some((1, 10)));
        assert_eq!(
            history.end_offset_for_epoch(2, 40),
            Some((1, 10)),
            "epoch 2 never led: floor is 1"
        );
        assert_eq!(history.end_offset_for_epoch(3, 40), Some((3, 25)));
        assert_eq!(history.end_offset_for_epoch(4, 40), Some((4, 40)));
        assert_eq!(history.end_offset_for_epoch(9, 40), Some((4, 40)));
        assert_eq!(EpochHistory::default().end_offset_for_epoch(5, 0), None);
    }

    #[test]
    fn truncation_at_either_end() {
        let mut h = history(&[(1, 0), (3, 10), (4, 25)]);
        assert!(!h.observe(3, 30), "an older epoch adds nothing");
        assert!(!h.observe(4, 30), "the same epoch adds nothing");
        assert!(h.truncate_from(25));
        assert_eq!(h, history(&[(1, 0), (3, 10)]));
        assert!(h.truncate_before(12));
        assert_eq!(h, history(&[(3, 12)]));
        assert!(!h.truncate_before(5), "below the start changes nothing");
        assert!(h.truncate_from(0));
        assert_eq!(h, EpochHistory::default());
    }

    #[test]
    fn reconcile_trims_to_the_log_or_asks_for_a_rebuild() {
        let mut h = history(&[(1, 0), (3, 10), (4, 25)]);
        assert!(h.reconcile(5, 20, Some(3)));
        assert_eq!(h, history(&[(1, 5), (3, 10)]));
        assert!(!h.reconcile(5, 20, Some(2)), "last batch's epoch disagrees");
        let mut empty = history(&[(2, 0)]);
        assert!(empty.reconcile(7, 7, None));
        assert_eq!(empty, EpochHistory::default());
    }

    #[test]
    fn file_round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(EpochHistory::read(dir.path(), 9).unwrap(), None);
        let h = history(&[(1, 0), (3, 10)]);
        h.write(dir.path(), 9).unwrap();
        assert_eq!(EpochHistory::read(dir.path(), 9).unwrap(), Some(h.clone()));
        assert!(matches!(
            EpochHistory::read(dir.path(), 8),
            Err(Error::Corrupt {
                damage: Damage::ForeignLog { .. },
                ..
            })
        ));
        let path = dir.path().join(layout::EPOCHS);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            EpochHistory::read(dir.path(), 9),
            Err(Error::Corrupt {
                damage: Damage::ChecksumMismatch { .. },
                ..
            })
        ));
    }
}
