//! Records inside a batch: a 16-byte header, then the key, then the value.
//!
//! ```text
//!  0  i64 timestamp, ms
//!  8  u32 key length, or u32::MAX for "no key"
//! 12  u32 value length
//! 16  key bytes, then value bytes
//! ```

use std::ops::Range;

use super::{ByteSink, RECORD_HEADER_BYTES, read_u32, read_u64};
use crate::error::Damage;

const NO_KEY: u32 = u32::MAX;

/// One record to append: a value, an optional key, an optional timestamp
/// (the append's clock time when absent).
///
/// ```
/// let record = replog::NewRecord::new(b"hello").key(b"user-42").timestamp_ms(1_700_000_000_000);
/// assert_eq!(record.value, b"hello");
/// assert_eq!(record.key, Some(&b"user-42"[..]));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewRecord<'a> {
    /// The key, if any (for example, the author of a post).
    pub key: Option<&'a [u8]>,
    /// The value.
    pub value: &'a [u8],
    /// The timestamp in milliseconds since the Unix epoch; `None` takes the
    /// time of the append from the log's clock.
    pub timestamp_ms: Option<i64>,
}

impl<'a> NewRecord<'a> {
    /// A record with this value, no key, and the append time as timestamp.
    /// Takes anything that is bytes: `b"..."`, `&[u8]`, `&str`, `&String`,
    /// `&Vec<u8>`, `&Bytes`.
    ///
    /// ```
    /// let post = String::from("hello");
    /// let author = vec![b'a', b'l'];
    /// let record = replog::NewRecord::new(&post).key(&author);
    /// assert_eq!(record.value, b"hello");
    /// ```
    pub fn new<V: AsRef<[u8]> + ?Sized>(value: &'a V) -> Self {
        NewRecord {
            key: None,
            value: value.as_ref(),
            timestamp_ms: None,
        }
    }

    /// Sets the key (any bytes, as for [`NewRecord::new`]).
    #[must_use]
    pub fn key<K: AsRef<[u8]> + ?Sized>(mut self, key: &'a K) -> Self {
        self.key = Some(key.as_ref());
        self
    }

    /// Sets the timestamp, in milliseconds since the Unix epoch.
    #[must_use]
    pub fn timestamp_ms(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// Key plus value length: what `record_bytes_max` limits.
    pub(crate) fn payload_bytes(&self) -> u64 {
        self.key.map_or(0, |k| k.len() as u64) + self.value.len() as u64
    }

    /// Bytes this record takes inside a batch.
    pub(crate) fn encoded_bytes(&self) -> u64 {
        RECORD_HEADER_BYTES as u64 + self.payload_bytes()
    }

    /// Writes the record to `sink`, with `now_ms` for a missing timestamp.
    #[inline]
    pub(crate) fn encode(&self, sink: &mut impl ByteSink, now_ms: i64) {
        let mut header = [0u8; RECORD_HEADER_BYTES];
        header[0..8].copy_from_slice(&self.timestamp_ms.unwrap_or(now_ms).to_le_bytes());
        let key_len = self.key.map_or(NO_KEY, |k| k.len() as u32);
        header[8..12].copy_from_slice(&key_len.to_le_bytes());
        header[12..16].copy_from_slice(&(self.value.len() as u32).to_le_bytes());
        sink.put(&header);
        if let Some(key) = self.key {
            sink.put(key);
        }
        sink.put(self.value);
    }
}

/// A record's fields as ranges into its batch's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFields {
    /// Timestamp, ms.
    pub timestamp_ms: i64,
    /// Where the key is, if there is one.
    pub key: Option<Range<usize>>,
    /// Where the value is.
    pub value: Range<usize>,
}

impl RecordFields {
    /// The record as input for encoding again (same key, value and
    /// timestamp), borrowing from `batch`, the bytes the ranges point into.
    pub fn to_new_record<'a>(&self, batch: &'a [u8]) -> NewRecord<'a> {
        NewRecord {
            key: self.key.clone().map(|key| &batch[key]),
            value: &batch[self.value.clone()],
            timestamp_ms: Some(self.timestamp_ms),
        }
    }
}

/// Decodes the record starting at `position` in `batch`; returns it and the
/// position of the next record. Every length is checked against `batch`.
///
/// # Errors
///
/// [`Damage::Truncated`] if the record runs past the end of `batch`.
#[inline]
pub fn decode_record(batch: &[u8], position: usize) -> Result<(RecordFields, usize), Damage> {
    let within = |end: Option<usize>| end.filter(|&end| end <= batch.len()).ok_or(Damage::Truncated);
    let header_end = within(position.checked_add(RECORD_HEADER_BYTES))?;
    let timestamp_ms = read_u64(batch, position) as i64;
    let key_len = read_u32(batch, position + 8);
    let value_len = read_u32(batch, position + 12) as usize;
    let (key, key_end) = if key_len == NO_KEY {
        (None, header_end)
    } else {
        let end = within(header_end.checked_add(key_len as usize))?;
        (Some(header_end..end), end)
    };
    let value_end = within(key_end.checked_add(value_len))?;
    let fields = RecordFields {
        timestamp_ms,
        key,
        value: key_end..value_end,
    };
    Ok((fields, value_end))
}

/// The records of a batch's bytes from a position on, decoded one by one:
/// the one loop that steps over records. Ends after the first error.
#[derive(Debug, Clone)]
pub(crate) struct RecordDecoder<'a> {
    batch: &'a [u8],
    position: usize,
    failed: bool,
}

impl<'a> RecordDecoder<'a> {
    /// Decodes the records of `batch` (one batch's bytes, or a view that
    /// ends where the batch does) from `position` on.
    #[inline]
    pub(crate) fn new(batch: &'a [u8], position: usize) -> RecordDecoder<'a> {
        RecordDecoder {
            batch,
            position,
            failed: false,
        }
    }

    /// Where the next record starts.
    pub(crate) fn position(&self) -> usize {
        self.position
    }

    /// Steps over `count` records; returns where the next one starts.
    pub(crate) fn skip_records(&mut self, count: u64) -> Result<usize, Damage> {
        for _ in 0..count {
            self.next().ok_or(Damage::Truncated)??;
        }
        Ok(self.position)
    }
}

impl Iterator for RecordDecoder<'_> {
    type Item = Result<RecordFields, Damage>;

    #[inline]
    fn next(&mut self) -> Option<Result<RecordFields, Damage>> {
        if self.failed || self.position >= self.batch.len() {
            return None;
        }
        match decode_record(self.batch, self.position) {
            Ok((fields, next)) => {
                self.position = next;
                Some(Ok(fields))
            }
            Err(damage) => {
                self.failed = true;
                Some(Err(damage))
            }
        }
    }
}
