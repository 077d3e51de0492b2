//! The `replica` file: what a replica must remember across restarts beyond
//! its log, so that neither its epoch nor its high watermark goes back.
//!
//! ```text
//!  0 [u8;8] "RPLGRPLC"
//!  8 u32    version (1)
//! 12 u32    reserved, zero
//! 16 u64    replica id
//! 24 u64    log id (the one in every segment header of the log beside it)
//! 32 u64    leader epoch the replica is at
//! 40 u64    high watermark
//! 48 u64    reserved, zero
//! 56 [u8;4] reserved, zero
//! 60 u32    CRC-32 of bytes 0..60
//! ```
//!
//! Replaced atomically and durably (write to `replica.tmp`, fsync, rename,
//! fsync the directory), so a crash leaves the old or the new file, whole.

use std::path::Path;

use crate::error::{Damage, Error, Result};
use crate::format::{header, read_u64, write_u64};
use crate::replica_id::ReplicaId;
use crate::storage::fs::{read_if_exists, replace_small_file};
use crate::storage::layout;

const MAGIC: [u8; 8] = *b"RPLGRPLC";
const VERSION: u32 = 1;
const BYTES: usize = 64;

/// The contents of the `replica` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplicaState {
    pub replica_id: ReplicaId,
    pub log_id: u64,
    pub epoch: u64,
    pub high_watermark: u64,
}

impl ReplicaState {
    fn encode(&self) -> [u8; BYTES] {
        let mut out = [0u8; BYTES];
        write_u64(&mut out, 16, self.replica_id.0);
        write_u64(&mut out, 24, self.log_id);
        write_u64(&mut out, 32, self.epoch);
        write_u64(&mut out, 40, self.high_watermark);
        header::seal(&mut out, &MAGIC, VERSION);
        out
    }

    fn decode(bytes: &[u8]) -> std::result::Result<ReplicaState, Damage> {
        let bytes = header::check(bytes, BYTES, &MAGIC, VERSION)?;
        Ok(ReplicaState {
            replica_id: ReplicaId(read_u64(bytes, 16)),
            log_id: read_u64(bytes, 24),
            epoch: read_u64(bytes, 32),
            high_watermark: read_u64(bytes, 40),
        })
    }

    /// Durably replaces the `replica` file in `dir`.
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let bytes = self.encode();
        replace_small_file(&dir.join(layout::REPLICA), &bytes)
    }

    /// Reads the `replica` file of `dir`: `Ok(None)` when there is none,
    /// [`Error::Corrupt`] when it fails its checks or belongs to another
    /// log (it is replaced by rename, so it is never torn: damage is
    /// reported, never replaced by defaults that would let the epoch or
    /// the high watermark go back).
    pub(crate) fn read(dir: &Path, log_id: u64) -> Result<Option<ReplicaState>> {
        let path = dir.join(layout::REPLICA);
        let Some(bytes) = read_if_exists(&path)? else {
            return Ok(None);
        };
        if bytes.len() != BYTES {
            return Err(Error::corrupt(&path, 0, Damage::BadLength));
        }
        let state = ReplicaState::decode(&bytes).map_err(|damage| Error::corrupt(&path, 0, damage))?;
        if state.log_id != log_id {
            let damage = Damage::ForeignLog {
                expected: log_id,
                found: state.log_id,
            };
            return Err(Error::corrupt(&path, 24, damage));
        }
        Ok(Some(state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_damage_and_foreign_log() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ReplicaState::read(dir.path(), 7).unwrap(), None);
        let state = ReplicaState {
            replica_id: ReplicaId(3),
            log_id: 7,
            epoch: 9,
            high_watermark: 1234,
        };
        state.write(dir.path()).unwrap();
        assert_eq!(ReplicaState::read(dir.path(), 7).unwrap(), Some(state));
        assert!(matches!(
            ReplicaState::read(dir.path(), 8),
            Err(Error::Corrupt {
                damage: Damage::ForeignLog { .. },
                ..
            })
        ));
        let path = dir.path().join(layout::REPLICA);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[40] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            ReplicaState::read(dir.path(), 7),
            Err(Error::Corrupt {
                damage: Damage::ChecksumMismatch { .. },
                ..
            })
        ));
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert!(matches!(
            ReplicaState::read(dir.path(), 7),
            Err(Error::Corrupt {
                damage: Damage::BadLength,
                ..
            })
        ));
    }
}
