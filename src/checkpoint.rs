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
//! Written to `checkpoint.tmp`, fsynced, renamed over `checkpoint`, and the
//! directory fsynced, so a crash leaves the old or the new file, whole.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::{read_u32, read_u64};
use crate::fsutil::sync_dir;

const MAGIC: [u8; 8] = *b"RPLGCKPT";
const VERSION: u32 = 1;
const BYTES: usize = 64;
/// File name of the checkpoint inside the log directory.
pub(crate) const FILE_NAME: &str = "checkpoint";

/// The contents of the checkpoint file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// Written by a clean close, and nothing has been appended since.
    pub clean: bool,
    /// Segment that holds the recovery point.
    pub segment_base: u64,
    /// Byte position of the recovery point in that segment.
    pub position: u64,
    /// Offset of the first record at or after the recovery point.
    pub next_offset: u64,
    /// Leader epoch the log was at.
    pub leader_epoch: u64,
    /// Identity of the log (as in its segment headers).
    pub log_id: u64,
}

impl Checkpoint {
    fn encode(&self) -> [u8; BYTES] {
        let mut out = [0u8; BYTES];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&u32::from(self.clean).to_le_bytes());
        out[16..24].copy_from_slice(&self.segment_base.to_le_bytes());
        out[24..32].copy_from_slice(&self.position.to_le_bytes());
        out[32..40].copy_from_slice(&self.next_offset.to_le_bytes());
        out[40..48].copy_from_slice(&self.leader_epoch.to_le_bytes());
        out[48..56].copy_from_slice(&self.log_id.to_le_bytes());
        let crc = crc32fast::hash(&out[..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        if bytes.len() != BYTES
            || bytes[0..8] != MAGIC
            || read_u32(bytes, 8) != VERSION
            || crc32fast::hash(&bytes[..60]) != read_u32(bytes, 60)
        {
            return None;
        }
        Some(Checkpoint {
            clean: read_u32(bytes, 12) & 1 == 1,
            segment_base: read_u64(bytes, 16),
            position: read_u64(bytes, 24),
            next_offset: read_u64(bytes, 32),
            leader_epoch: read_u64(bytes, 40),
            log_id: read_u64(bytes, 48),
        })
    }

    /// Durably replaces the checkpoint file in `dir`.
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(FILE_NAME);
        let tmp = dir.join("checkpoint.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&self.encode())?;
            file.sync_data()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| Error::io("write checkpoint", &path, e))?;
        sync_dir(dir)
    }

    /// Reads the checkpoint of `dir`. `Ok(None)` when there is none;
    /// `Err(Corrupt)` when it exists but fails its checks (a torn checkpoint
    /// cannot happen, as it is replaced by rename, so damage is reported).
    pub(crate) fn read(dir: &Path) -> Result<Option<Checkpoint>> {
        let path = dir.join(FILE_NAME);
        match fs::read(&path) {
            Ok(bytes) => Checkpoint::decode(&bytes)
                .map(Some)
                .ok_or_else(|| Error::corrupt(&path, 0, "checkpoint file fails its checks")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read checkpoint", &path, e)),
        }
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
            segment_base: 5,
            position: 640,
            next_offset: 17,
            leader_epoch: 2,
            log_id: 42,
        };
        checkpoint.write(dir.path()).unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), Some(checkpoint));
        fs::write(dir.path().join(FILE_NAME), b"garbage").unwrap();
        assert!(matches!(Checkpoint::read(dir.path()), Err(Error::Corrupt { .. })));
    }
}
