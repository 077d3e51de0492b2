//! The set of segments readers snapshot: replaced as a whole (copy on
//! write) on roll, retention and truncation, so readers never wait for the
//! writer.

use std::sync::Arc;

use parking_lot::RwLock;

use super::segment::Segment;

/// A snapshot of the log's segments, oldest first; the last is the active one.
pub(crate) type SegmentList = Arc<Vec<Arc<Segment>>>;

/// The current segment list, swapped whole.
#[derive(Debug)]
pub(crate) struct SegmentSet {
    current: RwLock<SegmentList>,
}

impl SegmentSet {
    /// A set holding `segments` (at least one).
    pub(crate) fn new(segments: Vec<Arc<Segment>>) -> SegmentSet {
        assert!(!segments.is_empty(), "a log always has a segment");
        SegmentSet {
            current: RwLock::new(Arc::new(segments)),
        }
    }

    /// The segments as they are now; later changes do not affect it.
    pub(crate) fn snapshot(&self) -> SegmentList {
        Arc::clone(&self.current.read())
    }

    /// Replaces the list (the writer only, under the log's writer lock).
    pub(crate) fn replace(&self, segments: Vec<Arc<Segment>>) {
        assert!(!segments.is_empty(), "a log always has a segment");
        *self.current.write() = Arc::new(segments);
    }
}

/// The segment that would hold `offset`: the last one based at or below it.
pub(crate) fn find_segment(segments: &[Arc<Segment>], offset: u64) -> Option<&Arc<Segment>> {
    segment_index(segments, offset).map(|i| &segments[i])
}

/// Index of the segment that would hold `offset`.
pub(crate) fn segment_index(segments: &[Arc<Segment>], offset: u64) -> Option<usize> {
    segments.partition_point(|s| s.base_offset() <= offset).checked_sub(1)
}
