//! `EXT-X-VERSION` (rfc8216bis §4.4.1.2) and the lowest version each playlist needs.
//!
//! rfc8216bis §6.2.1: "The value of the EXT-X-VERSION tag (Section 4.4.1.2)
//! SHOULD NOT be greater than what is required for the tags and attributes in
//! the Playlist (see Section 8)."

use std::fmt;

/// `#EXT-X-VERSION:<n>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Version(pub(crate) u8);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#EXT-X-VERSION:{}", self.0)
    }
}

/// The version of a media playlist we write.
///
/// - 6 is the floor: every playlist has `EXT-X-MAP` and no
///   `EXT-X-I-FRAMES-ONLY`. rfc8216bis §8: "A Media Playlist MUST indicate an
///   EXT-X-VERSION of 6 or higher if it contains: The EXT-X-MAP tag in a Media
///   Playlist that does not contain EXT-X-I-FRAMES-ONLY." Everything else we
///   write (floating-point EXTINF: 3; the LL-HLS tags: no requirement listed)
///   needs no more.
/// - 9 when the playlist offers delta updates (`CAN-SKIP-UNTIL`). rfc8216bis
///   §8: "A Playlist MUST indicate an EXT-X-VERSION of 9 or higher if it
///   contains: The EXT-X-SKIP tag." Strictly only the delta responses contain
///   EXT-X-SKIP; we announce 9 in the full responses too, so a client reloading
///   one URI with and without `_HLS_skip` never sees the version change under it
///   (a full playlist is always a valid answer to a delta request, §6.2.5.1).
/// - 10 will be needed once delta updates skip date ranges (`_HLS_skip=v2`);
///   §8: "An EXT-X-SKIP tag that replaces EXT-X-DATERANGE tags in a Playlist
///   Delta Update." Not offered yet.
#[must_use]
pub(crate) fn media_playlist_version(offers_delta_updates: bool) -> Version {
    if offers_delta_updates {
        Version(9)
    } else {
        Version(6)
    }
}
