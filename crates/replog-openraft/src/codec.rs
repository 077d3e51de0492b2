//! How an openraft entry becomes a replog record's value: postcard.
//!
//! postcard (1.x) has a stable, documented wire format, encodes integers as
//! varints (a log id's term, node and index take a few bytes each, not 8),
//! and is actively maintained. Measured against bincode 1.3 in
//! `benches/cluster.rs` (group `codec`) and the crate README.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Encodes `entry`, the entry at Raft index `index`, into a record value.
pub(crate) fn encode<E: Serialize>(index: u64, entry: &E) -> Result<Vec<u8>> {
    postcard::to_allocvec(entry).map_err(|source| Error::Codec { index, source })
}

/// Decodes the entry stored at Raft index `index`.
pub(crate) fn decode<E: DeserializeOwned>(index: u64, bytes: &[u8]) -> Result<E> {
    postcard::from_bytes(bytes).map_err(|source| Error::Codec { index, source })
}
