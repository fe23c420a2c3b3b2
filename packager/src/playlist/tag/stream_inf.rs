//! `EXT-X-STREAM-INF` (rfc8216bis §4.4.6.2) and the URI line that follows it.

use std::fmt;

use crate::playlist::decimal::FrameRate;
use crate::playlist::multivariant::Variant;

/// `#EXT-X-STREAM-INF:BANDWIDTH=…[,AVERAGE-BANDWIDTH=…],CODECS="…"[,RESOLUTION=WxH][,FRAME-RATE=…][,AUDIO="…"]`
/// followed by the variant's URI line. Written only for variants that passed
/// `Variant::validate`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamInf<'a>(pub(crate) &'a Variant);

impl fmt::Display for StreamInf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        // rfc8216bis §4.4.6.2: "Every EXT-X-STREAM-INF tag MUST include the
        // BANDWIDTH attribute."
        write!(f, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth)?;
        if let Some(avg) = v.average_bandwidth {
            write!(f, ",AVERAGE-BANDWIDTH={avg}")?;
        }
        // rfc8216bis §4.4.6.2: "Every EXT-X-STREAM-INF tag SHOULD include a CODECS
        // attribute."
        write!(f, ",CODECS=\"{}\"", v.codecs)?;
        // rfc8216bis §4.4.6.2: RESOLUTION and FRAME-RATE are "OPTIONAL but ...
        // recommended if the Variant Stream includes video."
        if let Some((w, h)) = v.resolution {
            write!(f, ",RESOLUTION={w}x{h}")?;
        }
        if let Some(fps) = v.frame_rate {
            write!(f, ",FRAME-RATE={}", FrameRate(fps))?;
        }
        // rfc8216bis §4.4.6.2 (AUDIO): "It MUST match the value of the
        // GROUP-ID attribute of an EXT-X-MEDIA tag elsewhere in the
        // Multivariant Playlist whose TYPE attribute is AUDIO" (checked by
        // `render_multivariant`).
        if let Some(group) = &v.audio_group {
            write!(f, ",AUDIO=\"{group}\"")?;
        }
        // rfc8216bis §4.4.6.2: "The URI line that follows the EXT-X-STREAM-INF tag
        // specifies a Media Playlist that carries a Rendition of the Variant
        // Stream. The URI line is REQUIRED."
        write!(f, "\n{}", v.uri)
    }
}
