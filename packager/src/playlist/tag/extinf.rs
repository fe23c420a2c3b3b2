//! `EXTINF` (rfc8216bis §4.4.4.1) and the segment URI line it describes.
//!
//! The rule that each EXTINF rounded to the nearest second is ≤ TARGETDURATION
//! belongs to the segmenter, which cuts the segments; the writer only reports
//! their durations.

use std::fmt;

use crate::playlist::decimal::Secs;
use crate::playlist::names::ObjectName;
use crate::rendition::Segment;

/// `#EXTINF:<s>,` followed by the line `seg<msn>.m4s`.
///
/// The title after the comma is left empty (rfc8216bis §4.4.4.1: "If title is
/// zero length or entirely whitespace, the title is considered to be missing").
#[derive(Clone, Copy, Debug)]
pub(crate) struct ExtInf<'a>(pub(crate) &'a Segment);

impl fmt::Display for ExtInf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let segment = self.0;
        write!(
            f,
            "#EXTINF:{},\n{}",
            Secs(segment.duration),
            ObjectName::Segment(segment.msn)
        )
    }
}
