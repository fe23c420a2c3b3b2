//! `EXT-X-MAP` (rfc8216bis §4.4.4.5).
//!
//! Written once, before the first segment: it "applies to every Media Segment
//! that appears after it in the Playlist until the next EXT-X-MAP tag or until
//! the end of the Playlist" (rfc8216bis §4.4.4.5). Its presence sets the
//! version floor to 6 (see `version.rs`).

use std::fmt;

/// `#EXT-X-MAP:URI="<uri>"`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Map<'a> {
    pub(crate) uri: &'a str,
}

impl fmt::Display for Map<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#EXT-X-MAP:URI=\"{}\"", self.uri)
    }
}
