//! `EXT-X-SKIP` (rfc8216bis §4.4.5.2): the mark of a Playlist Delta Update.
//!
//! rfc8216bis §4.4.5.2: "A server produces a Playlist Delta Update (Section
//! 6.2.5.1), by replacing tags earlier than the Skip Boundary with an
//! EXT-X-SKIP tag. When replacing Media Segments, the EXT-X-SKIP tag replaces
//! the segment URI lines and all Media Segment Tags that are applied to those
//! segments. This tag MUST NOT appear more than once in a Playlist."
//!
//! `RECENTLY-REMOVED-DATERANGES` is "REQUIRED if the Client requested an update
//! that skips EXT-X-DATERANGE tags"; we offer no such update (no
//! `CAN-SKIP-DATERANGES`, no date ranges yet), so it is never written.

use std::fmt;

/// `#EXT-X-SKIP:SKIPPED-SEGMENTS=<n>`.
///
/// rfc8216bis §4.4.5.2 (SKIPPED-SEGMENTS): "The value is a decimal-integer
/// specifying the number of Media Segments replaced by the EXT-X-SKIP tag.
/// Replacing segments with the EXT-X-SKIP tag does not change the value of the
/// EXT-X-DISCONTINUITY-SEQUENCE tag. This attribute is REQUIRED."
#[derive(Clone, Copy, Debug)]
pub(crate) struct SkipTag {
    pub(crate) skipped_segments: usize,
}

impl fmt::Display for SkipTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#EXT-X-SKIP:SKIPPED-SEGMENTS={}", self.skipped_segments)
    }
}
