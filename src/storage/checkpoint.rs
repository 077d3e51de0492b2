//! The `checkpoint` file: the recovery point and the clean-shutdown flag.
//!
//! Everything before the recovery point (a segment base and a byte position
//! in it) was synced and checked when the checkpoint was written; recovery
//! after a crash scans only from there. A checkpoint with the clean flag is
//! written last by `Log::close` and replaced by an unclean one as soon as the
//! log is opened again, so the flag means "nothing happened since close".
//!
//! ```text
//!  0 [u8;8] "RPLGCKPT"
//!  8 u32    version (1)
//! 12 u32    flags (bit 0: clean shutdown)
//! 16 u64    recovery point: segment base offset
//! 24 u64    recovery point: byte position in that segment
//! 32 u64    recovery point: next offset at that position
//! 40 u64    leader epoch
//! 48 u64    log id (the one in every segment header)
//! 56 [u8;4] reserved, zero
//! 60 u32    CRC-32 of bytes 0..60
//! ```
//!
//! Replaced atomically (`fs::replace_file`, synced), so a crash leaves the
//! old or the new file, whole.

use std::path::Path;

use super::durability::LogPosition;
use super::fs::{read_if_exists, replace_small_file};
use super::layout;
use crate::error::{Damage, Error, Result};
use crate::format::{header, read_u32, read_u64, write_u32, write_u64};

const MAGIC: [u8; 8] = *b"RPLGCKPT";
const VERSION: u32 = 1;
const BYTES: usize = 64;

/// The contents of the checkpoint file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// Written by a clean close, and nothing has been appended since.
    pub clean: bool,
    /// Where recovery starts checking batches.
    pub recovery_point: LogPosition,
    /// Leader epoch the log was at.
    pub leader_epoch: u64,
    /// Identity of the log (as in its segment headers).
    pub log_id: u64,
}

impl Checkpoint {
    fn encode(&self) -> [u8; BYTES] {
        let mut out = [0u8; BYTES];
        write_u32(&mut out, 12, u32::from(self.clean));
        write_u64(&mut out, 16, self.recovery_point.segment_base);
        write_u64(&mut out, 24, self.recovery_point.position);
        write_u64(&mut out, 32, self.recovery_point.offset);
        write_u64(&mut out, 40, self.leader_epoch);
        write_u64(&mut out, 48, self.log_id);
        header::seal(&mut out, &MAGIC, VERSION);
        out
    }

    fn decode(bytes: &[u8]) -> std::result::Result<Checkpoint, Damage> {
        let bytes = header::check(bytes, BYTES, &MAGIC, VERSION)?;
        Ok(Checkpoint {
            clean: read_u32(bytes, 12) & 1 == 1,
            recovery_point: LogPosition {
                segment_base: read_u64(bytes, 16),
                position: read_u64(bytes, 24),
                offset: read_u64(bytes, 32),
            },
            leader_epoch: read_u64(bytes, 40),
            log_id: read_u64(bytes, 48),
        })
    }

    /// Durably replaces the checkpoint file in `dir`.
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let bytes = self.encode();
        replace_small_file(&dir.join(layout::CHECKPOINT), &bytes)
    }

    /// Reads the checkpoint of `dir`. `Ok(None)` when there is none;
    /// `Err(Corrupt)` when it exists but fails its checks (a torn checkpoint
    /// cannot happen, as it is replaced by rename, so damage is reported).
    pub(crate) fn read(dir: &Path) -> Result<Option<Checkpoint>> {
        let path = dir.join(layout::CHECKPOINT);
        let Some(bytes) = read_if_exists(&path)? else {
            return Ok(None);
        };
        if bytes.len() > BYTES {
            return Err(Error::corrupt(&path, BYTES as u64, Damage::BadLength));
        }
        Checkpoint::decode(&bytes)
            .map(Some)
            .map_err(|damage| Error::corrupt(&path, 0, damage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), None);
        let checkpoint = Checkpoint {
            clean: true,
            recovery_point: LogPosition {
                segment_base: 5,
                position: 640,
                offset: 17,
            },
            leader_epoch: 2,
            log_id: 42,
        };
        checkpoint.write(dir.path()).unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), Some(checkpoint));
        std::fs::write(dir.path().join(layout::CHECKPOINT), b"garbage").unwrap();
        assert!(matches!(
            Checkpoint::read(dir.path()),
            Err(Error::Corrupt {
                damage: Damage::Truncated,
                ..
            })
        ));
    }
}
