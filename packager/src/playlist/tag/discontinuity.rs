//! `EXT-X-DISCONTINUITY` (rfc8216bis §4.4.4.3) and `EXT-X-DISCONTINUITY-SEQUENCE`
//! (rfc8216bis §4.4.3.3).
//!
//! `RenditionSnapshot::discontinuity_sequence` is the Discontinuity Sequence
//! Number of the first segment in the window (`Rendition::evict` raises it when
//! the segment that becomes first carries a discontinuity). The playlist
//! therefore never writes `EXT-X-DISCONTINUITY` before its first segment: that
//! segment's number is the tag value itself, and the discontinuity it marked
//! (against a segment no longer listed) is carried by the number. rfc8216bis
//! §6.2.2: "If the server removes an EXT-X-DISCONTINUITY tag from the Media
//! Playlist, it MUST increment the value of the EXT-X-DISCONTINUITY-SEQUENCE tag
//! so that the Discontinuity Sequence Numbers of the segments still in the Media
//! Playlist remain unchanged."

use std::fmt;

/// `#EXT-X-DISCONTINUITY`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Discontinuity;

impl fmt::Display for Discontinuity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("#EXT-X-DISCONTINUITY")
    }
}

/// `#EXT-X-DISCONTINUITY-SEQUENCE:<n>`.
///
/// Written when n > 0 or when the playlist contains an `EXT-X-DISCONTINUITY`:
/// a live playlist removes segments, and rfc8216bis §6.2.2: "If the server
/// wishes to remove segments from a Media Playlist containing an
/// EXT-X-DISCONTINUITY tag, the Media Playlist MUST contain an
/// EXT-X-DISCONTINUITY-SEQUENCE tag." Placement, rfc8216bis §4.4.3.3: "The
/// EXT-X-DISCONTINUITY-SEQUENCE tag MUST appear before the first Media Segment
/// in the Playlist."
#[derive(Clone, Copy, Debug)]
pub(crate) struct DiscontinuitySequence(pub(crate) u64);

impl fmt::Display for DiscontinuitySequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", self.0)
    }
}
