//! `EXT-X-PRELOAD-HINT` (rfc8216bis §4.4.5.3).
//!
//! Only `TYPE=PART` is hinted, naming the next part by its `PartSeq`, which is
//! the URI that part will have in its `EXT-X-PART` whichever segment it ends
//! up in. rfc8216bis §4.4.5.3 (URI): "It MUST match the URI that will be
//! subsequently added to the Playlist as a non-hinted resource."
//! At most one hint is written (rfc8216bis §6.2.6: "The Server SHOULD NOT add
//! more than one EXT-X-PRELOAD-HINT tag with the same TYPE to a Playlist"), and
//! none once the playlist has ended (rfc8216bis §4.4.5.3: "A Playlist
//! containing an EXT-X-ENDLIST tag MUST NOT contain an EXT-X-PRELOAD-HINT
//! tag").

use std::fmt;

use crate::playlist::names::ObjectName;
use crate::units::PartSeq;

/// `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part<seq>.m4s"`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PreloadHintPart(pub(crate) PartSeq);

impl fmt::Display for PreloadHintPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
            ObjectName::Part(self.0)
        )
    }
}
