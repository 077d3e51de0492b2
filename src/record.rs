//! [`Record`]: one record read back from the log.

use bytes::Bytes;

use crate::format::RecordFields;

/// One record read from the log. Key and value share the memory-mapped
/// segment (zero-copy): cloning or slicing them is a reference-count
/// increment, and they stay valid after the log is closed or truncated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    offset: u64,
    timestamp_ms: i64,
    leader_epoch: u64,
    key: Option<Bytes>,
    value: Bytes,
}

impl Record {
    /// Builds a record from its fields, whose ranges index `bytes`.
    #[inline]
    pub(crate) fn from_batch(bytes: &Bytes, offset: u64, leader_epoch: u64, fields: RecordFields) -> Record {
        Record {
            offset,
            timestamp_ms: fields.timestamp_ms,
            leader_epoch,
            key: fields.key.map(|k| bytes.slice(k)),
            value: bytes.slice(fields.value),
        }
    }

    /// A record from its parts (sharing the batch's bytes).
    pub(crate) fn from_parts(
        offset: u64,
        timestamp_ms: i64,
        leader_epoch: u64,
        key: Option<Bytes>,
        value: Bytes,
    ) -> Record {
        Record {
            offset,
            timestamp_ms,
            leader_epoch,
            key,
            value,
        }
    }

    /// The record's offset: its position in the log, starting at 0.
    #[inline]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Timestamp in milliseconds since the Unix epoch (caller-supplied, or
    /// the time of the append).
    #[inline]
    pub fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    /// Epoch of the leader that appended the record's batch.
    #[inline]
    pub fn leader_epoch(&self) -> u64 {
        self.leader_epoch
    }

    /// The key, if the record has one: bytes, as
    /// [`RecordRef::key`](crate::RecordRef::key) returns them.
    #[inline]
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The key as a shared, zero-copy [`Bytes`] (clone it to keep it).
    #[inline]
    pub fn key_bytes(&self) -> Option<&Bytes> {
        self.key.as_ref()
    }

    /// The value.
    #[inline]
    pub fn value(&self) -> &Bytes {
        &self.value
    }

    /// Takes the value out of the record.
    #[inline]
    pub fn into_value(self) -> Bytes {
        self.value
    }
}
