//! `EXT-X-PART-INF` (rfc8216bis §4.4.3.7).
//!
//! rfc8216bis §4.4.3.7: "It is REQUIRED if a Playlist contains one or more
//! EXT-X-PART tags." We write it in every media playlist, also when the part
//! window happens to be empty, so the set of header tags (and the
//! EXT-X-SERVER-CONTROL that must accompany it) never changes between reloads.

use std::fmt;

use crate::playlist::decimal::Secs;
use crate::units::MediaTime;

/// `#EXT-X-PART-INF:PART-TARGET=<s>`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PartInf {
    pub(crate) part_target: MediaTime,
}

impl fmt::Display for PartInf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#EXT-X-PART-INF:PART-TARGET={}", Secs(self.part_target))
    }
}
