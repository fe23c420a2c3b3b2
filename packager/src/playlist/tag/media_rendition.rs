//! `EXT-X-MEDIA` (rfc8216bis §4.4.6.1) for an audio rendition.

use std::fmt;

use crate::playlist::multivariant::AudioRendition;

/// `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="…",NAME="…",DEFAULT=YES|NO,AUTOSELECT=YES,CHANNELS="n",URI="…"`.
/// Written only for renditions that passed `AudioRendition::validate`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MediaTag<'a>(pub(crate) &'a AudioRendition);

impl fmt::Display for MediaTag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        // rfc8216bis §4.4.6.1: TYPE, GROUP-ID and NAME are REQUIRED.
        write!(
            f,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{}\",NAME=\"{}\"",
            a.group_id, a.name
        )?;
        // §4.4.6.1 (AUTOSELECT): "If the AUTOSELECT attribute is present, its
        // value MUST be YES if the value of the DEFAULT attribute is YES."
        let default = if a.default { "YES" } else { "NO" };
        write!(f, ",DEFAULT={default},AUTOSELECT=YES")?;
        // §4.4.6.1 (CHANNELS): "All audio EXT-X-MEDIA tags SHOULD have a
        // CHANNELS attribute."
        write!(f, ",CHANNELS=\"{}\"", a.channels)?;
        // §4.4.6.1 (URI): the Media Playlist of the rendition; without it the
        // audio would be expected inside the variant's own playlist.
        write!(f, ",URI=\"{}\"", a.uri)
    }
}
