//! The metadata file: the vote, the committed log id and the last purged
//! log id, checksummed, replaced atomically.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! offset  size  field
//! 0       8     magic "RLRAFTMD"
//! 8       4     version (1)
//! 12      4     payload_bytes: length of the payload
//! 16      4     CRC-32 (crc32fast, IEEE) over bytes 8..16 and the payload
//! 20      n     payload: postcard encoding of `Meta`
//! ```
//!
//! The file is written whole to `<path>.tmp`, fsynced, renamed over `path`,
//! and the directory fsynced: after a crash it is the old file or the new
//! one. A file that fails any check is an error at open, never a default.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use openraft::{LogId, NodeId, Vote};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"RLRAFTMD";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 20;
/// Far above any real metadata (three small ids); a larger length field is
/// damage, not a reason to allocate.
const PAYLOAD_BYTES_MAX: u32 = 64 * 1024;

/// What openraft asks the store to keep beside the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct Meta<NID: NodeId> {
    /// The replog log id of the log this file belongs to.
    pub log_id: u64,
    pub vote: Option<Vote<NID>>,
    pub committed: Option<LogId<NID>>,
    pub purged: Option<LogId<NID>>,
}

impl<NID: NodeId> Meta<NID> {
    pub(crate) fn new(log_id: u64) -> Self {
        Meta {
            log_id,
            vote: None,
            committed: None,
            purged: None,
        }
    }
}

/// Encodes `meta` with its header and checksum.
pub(crate) fn encode<NID: NodeId>(meta: &Meta<NID>) -> Vec<u8> {
    let payload = postcard::to_allocvec(meta).expect("encoding metadata into memory cannot fail");
    let payload_bytes = u32::try_from(payload.len()).expect("metadata is a few ids");
    assert!(payload_bytes <= PAYLOAD_BYTES_MAX);
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&payload_bytes.to_le_bytes());
    bytes.extend_from_slice(&checksum(&bytes[8..16], &payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    bytes
}

/// Decodes a metadata file's bytes, checking every field; `Err` says which
/// check failed.
pub(crate) fn decode<NID: NodeId>(bytes: &[u8]) -> std::result::Result<Meta<NID>, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "{} bytes, shorter than the {HEADER_BYTES}-byte header",
            bytes.len()
        ));
    }
    if &bytes[..8] != MAGIC {
        return Err("bad magic".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!("unknown version {version}"));
    }
    let payload_bytes = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    let stored_crc = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let payload = &bytes[HEADER_BYTES..];
    if payload_bytes > PAYLOAD_BYTES_MAX || payload.len() != payload_bytes as usize {
        return Err(format!("payload length {payload_bytes}, file holds {}", payload.len()));
    }
    let crc = checksum(&bytes[8..16], payload);
    if crc != stored_crc {
        return Err(format!(
            "checksum mismatch: stored {stored_crc:#010x}, computed {crc:#010x}"
        ));
    }
    postcard::from_bytes(payload).map_err(|e| format!("payload: {e}"))
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header);
    hasher.update(payload);
    hasher.finalize()
}

/// Reads the metadata file at `path`: `Ok(None)` if it does not exist.
///
/// # Errors
///
/// [`Error::MetaCorrupt`] if it fails a check, [`Error::MetaIo`].
pub(crate) fn load<NID: NodeId>(path: &Path) -> Result<Option<Meta<NID>>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path, e)),
    };
    decode(&bytes).map(Some).map_err(|reason| Error::MetaCorrupt {
        path: path.to_owned(),
        reason,
    })
}

/// Replaces the metadata file at `path` with `meta`, durably: temp file,
/// fsync, rename, directory fsync. On error `path` is untouched (or, if the
/// directory fsync failed, holds the new contents that may not survive a
/// crash; the caller treats the store as poisoned then).
pub(crate) fn store<NID: NodeId>(path: &Path, meta: &Meta<NID>) -> Result<()> {
    let bytes = encode(meta);
    let tmp = temp_path(path);
    let written = (|| {
        let mut file = File::create(&tmp).map_err(|e| io_error("create", &tmp, e))?;
        file.write_all(&bytes).map_err(|e| io_error("write", &tmp, e))?;
        file.sync_all().map_err(|e| io_error("fsync", &tmp, e))
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path).map_err(|e| io_error("rename", path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("fsync directory", dir, e))
}

/// Removes a temporary file left by a crash during [`store`].
pub(crate) fn remove_leftover(path: &Path) -> Result<()> {
    let tmp = temp_path(path);
    match fs::remove_file(&tmp) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("remove", &tmp, e)),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

fn io_error(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::MetaIo {
        op,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;

    fn sample() -> Meta<u64> {
        Meta {
            log_id: 0xfeed,
            vote: Some(Vote::new_committed(3, 2)),
            committed: Some(LogId::new(CommittedLeaderId::new(3, 2), 41)),
            purged: Some(LogId::new(CommittedLeaderId::new(2, 1), 7)),
        }
    }

    #[test]
    fn round_trips() {
        assert_eq!(decode::<u64>(&encode(&sample())), Ok(sample()));
        assert_eq!(decode::<u64>(&encode(&Meta::<u64>::new(1))), Ok(Meta::new(1)));
    }

    #[test]
    fn every_flipped_bit_and_every_cut_is_refused() {
        let bytes = encode(&sample());
        for i in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[i / 8] ^= 1 << (i % 8);
            assert!(decode::<u64>(&damaged).is_err(), "bit {i} flipped was accepted");
        }
        for len in 0..bytes.len() {
            assert!(decode::<u64>(&bytes[..len]).is_err(), "cut at {len} was accepted");
        }
    }

    #[test]
    fn store_replaces_and_load_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta");
        assert_eq!(load::<u64>(&path).unwrap(), None);
        store(&path, &Meta::<u64>::new(1)).unwrap();
        store(&path, &sample()).unwrap();
        assert_eq!(load::<u64>(&path).unwrap(), Some(sample()));
        assert!(!temp_path(&path).exists());
    }
}
