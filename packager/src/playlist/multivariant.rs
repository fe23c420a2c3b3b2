//! The multivariant playlist: one `EXT-X-MEDIA` per audio rendition, one
//! `EXT-X-STREAM-INF` per variant.
//!
//! ```text
//! #EXTM3U
//! #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="audio/playlist.m3u8"
//! #EXT-X-STREAM-INF:BANDWIDTH=…,AVERAGE-BANDWIDTH=…,CODECS="…",RESOLUTION=WxH,FRAME-RATE=29.970,AUDIO="audio"
//! main/playlist.m3u8
//! ```
//!
//! No `EXT-X-VERSION` is written: nothing here needs more than version 1, the
//! implicit one. rfc8216bis §4.4.1.2: the tag "MUST appear in all Playlists
//! containing tags or attributes that are not compatible with protocol version
//! 1"; §8 lists no multivariant tag or attribute we use (EXT-X-STREAM-INF with
//! BANDWIDTH, AVERAGE-BANDWIDTH, CODECS, RESOLUTION, FRAME-RATE, AUDIO;
//! EXT-X-MEDIA); and §6.2.1: the value "SHOULD NOT be greater than
//! what is required for the tags and attributes in the Playlist". Each media
//! playlist carries its own version (6 or 9).

use std::fmt;

use thiserror::Error;

use crate::playlist::tag::media_rendition::MediaTag;
use crate::playlist::tag::stream_inf::StreamInf;

/// One variant stream: a media playlist and what a player needs to choose it.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// The media playlist, relative to the multivariant playlist, e.g.
    /// `main/playlist.m3u8`.
    pub uri: String,
    /// `BANDWIDTH`: peak segment bit rate, bits per second; with an audio
    /// group, video and audio peaks together (rfc8216bis §4.4.6.2: "the largest
    /// sum of peak segment bit rates that is produced by any playable
    /// combination of Renditions").
    pub bandwidth: u64,
    /// `AVERAGE-BANDWIDTH`: average segment bit rate, bits per second.
    pub average_bandwidth: Option<u64>,
    /// `CODECS`: comma-separated RFC 6381 codec strings of every track
    /// (`Codec::rfc6381`), e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: String,
    /// `RESOLUTION`: width × height in pixels.
    pub resolution: Option<(u16, u16)>,
    /// `FRAME-RATE`: maximum frame rate, written with three decimals.
    pub frame_rate: Option<f64>,
    /// `AUDIO`: the `GROUP-ID` of the audio renditions that play with it.
    pub audio_group: Option<String>,
}

/// An audio rendition (`EXT-X-MEDIA:TYPE=AUDIO`) of a group that variants
/// name in their `AUDIO` attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioRendition {
    pub group_id: String,
    /// `NAME`: "a human-readable description of the Rendition" (§4.4.6.1).
    pub name: String,
    /// The rendition's media playlist, relative to the multivariant playlist.
    pub uri: String,
    /// `CHANNELS`: the number of audio channels.
    pub channels: u16,
    /// `DEFAULT=YES`: played when the user expresses no preference.
    pub default: bool,
}

impl AudioRendition {
    /// Checks that the rendition can be written without breaking the syntax.
    ///
    /// # Errors
    /// [`VariantError::BadAudioRendition`] with `index`.
    pub fn validate(&self, index: usize) -> Result<(), VariantError> {
        let ok = quoted_string_ok(&self.group_id)
            && quoted_string_ok(&self.name)
            && quoted_string_ok(&self.uri)
            && self.channels > 0;
        if ok {
            Ok(())
        } else {
            Err(VariantError::BadAudioRendition { index })
        }
    }
}

/// rfc8216bis §4.2 (quoted-string): "The following characters MUST NOT
/// appear in a quoted-string: line feed (0xA), carriage return (0xD), or
/// double quote (0x22). The string MUST be non-empty, unless specifically
/// allowed."
fn quoted_string_ok(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c == '"' || c.is_control())
}

/// A variant that cannot be written as it is. `index` is its position in the
/// slice given to [`render_multivariant`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum VariantError {
    #[error("a multivariant playlist needs at least one variant")]
    NoVariants,
    #[error("variant {index}: the URI is empty, starts with '#' or contains a control character")]
    BadUri { index: usize },
    #[error("variant {index}: CODECS is empty or contains a double quote or control character")]
    BadCodecs { index: usize },
    #[error("variant {index}: AVERAGE-BANDWIDTH exceeds BANDWIDTH")]
    AverageAboveBandwidth { index: usize },
    #[error("variant {index}: RESOLUTION has a zero dimension")]
    ZeroResolution { index: usize },
    #[error("variant {index}: FRAME-RATE is not a positive finite number")]
    BadFrameRate { index: usize },
    #[error("variant {index}: AUDIO names no audio rendition's GROUP-ID")]
    UnknownAudioGroup { index: usize },
    #[error(
        "audio rendition {index}: an attribute is empty or not a quoted-string, or CHANNELS is 0"
    )]
    BadAudioRendition { index: usize },
}

impl Variant {
    /// Checks that the variant can be written without breaking the playlist's
    /// syntax.
    ///
    /// # Errors
    /// The first problem found, in field order.
    pub fn validate(&self, index: usize) -> Result<(), VariantError> {
        // The URI is a line of its own: a line break would inject lines, and a
        // line starting with '#' is read as a tag or comment (rfc8216bis §4.1:
        // "Lines that start with the character '#' are either comments or tags").
        let uri_ok = !self.uri.is_empty()
            && !self.uri.starts_with('#')
            && !self.uri.chars().any(char::is_control);
        if !uri_ok {
            return Err(VariantError::BadUri { index });
        }
        if !quoted_string_ok(&self.codecs) {
            return Err(VariantError::BadCodecs { index });
        }
        // Peak and average as rfc8216bis §4.4.6.2 defines them: an average above
        // the peak is a caller bug.
        if self
            .average_bandwidth
            .is_some_and(|avg| avg > self.bandwidth)
        {
            return Err(VariantError::AverageAboveBandwidth { index });
        }
        if self.resolution.is_some_and(|(w, h)| w == 0 || h == 0) {
            return Err(VariantError::ZeroResolution { index });
        }
        // A decimal-floating-point is non-negative and positional (rfc8216bis
        // §4.2): no NaN, infinity or sign.
        if self
            .frame_rate
            .is_some_and(|fps| !fps.is_finite() || fps <= 0.0)
        {
            return Err(VariantError::BadFrameRate { index });
        }
        Ok(())
    }
}

/// Renders the multivariant playlist listing `audio` renditions and
/// `variants` in the given order.
///
/// # Errors
/// [`VariantError`] when there is no variant, a variant fails
/// [`Variant::validate`] or names an audio group not in `audio`, or an audio
/// rendition fails [`AudioRendition::validate`]; nothing is rendered then.
pub fn render_multivariant(
    variants: &[Variant],
    audio: &[AudioRendition],
) -> Result<String, VariantError> {
    if variants.is_empty() {
        return Err(VariantError::NoVariants);
    }
    for (index, a) in audio.iter().enumerate() {
        a.validate(index)?;
    }
    for (index, v) in variants.iter().enumerate() {
        v.validate(index)?;
        // rfc8216bis §4.4.6.2 (AUDIO): "It MUST match the value of the
        // GROUP-ID attribute of an EXT-X-MEDIA tag elsewhere in the
        // Multivariant Playlist whose TYPE attribute is AUDIO."
        if let Some(group) = &v.audio_group
            && !audio.iter().any(|a| a.group_id == *group)
        {
            return Err(VariantError::UnknownAudioGroup { index });
        }
    }
    Ok(Multivariant { variants, audio }.to_string())
}

struct Multivariant<'a> {
    variants: &'a [Variant],
    audio: &'a [AudioRendition],
}

impl fmt::Display for Multivariant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // rfc8216bis §4.4.1.1: "It MUST be the first line of every Media Playlist
        // and every Multivariant Playlist."
        writeln!(f, "#EXTM3U")?;
        // No EXT-X-INDEPENDENT-SEGMENTS: a segment starts with a keyframe unless
        // the source's keyframes come further apart than TARGETDURATION allows,
        // and then the segmenter cuts without one (segmenter.rs `must_cut`).
        // rfc8216bis §4.4.2.1: the tag "indicates that all media samples in a
        // Media Segment can be decoded without information from other segments"
        // and applies to every segment of every Media Playlist. Parts still say
        // INDEPENDENT=YES where they start with a keyframe.
        for a in self.audio {
            writeln!(f, "{}", MediaTag(a))?;
        }
        for v in self.variants {
            writeln!(f, "{}", StreamInf(v))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant() -> Variant {
        Variant {
            uri: "main/playlist.m3u8".to_owned(),
            bandwidth: 3_000_000,
            average_bandwidth: Some(2_500_000),
            codecs: "avc1.64001f,mp4a.40.2".to_owned(),
            resolution: Some((1280, 720)),
            frame_rate: Some(30_000.0 / 1001.0),
            audio_group: None,
        }
    }

    #[test]
    fn renders_all_attributes() {
        let text = render_multivariant(&[variant()], &[]).expect("valid variant");
        assert_eq!(
            text,
            "#EXTM3U\n\
             #EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2500000,\
             CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=29.970\n\
             main/playlist.m3u8\n"
        );
    }

    #[test]
    fn optional_attributes_are_omitted() {
        let v = Variant {
            uri: "audio/playlist.m3u8".to_owned(),
            bandwidth: 128_000,
            average_bandwidth: None,
            codecs: "mp4a.40.2".to_owned(),
            resolution: None,
            frame_rate: None,
            audio_group: None,
        };
        let text = render_multivariant(&[v], &[]).expect("valid variant");
        assert!(text.ends_with(
            "#EXT-X-STREAM-INF:BANDWIDTH=128000,CODECS=\"mp4a.40.2\"\naudio/playlist.m3u8\n"
        ));
    }

    #[test]
    fn rejects_what_would_break_the_syntax() {
        let with = |f: fn(&mut Variant)| {
            let mut v = variant();
            f(&mut v);
            render_multivariant(&[variant(), v], &[])
        };
        type Mutation = fn(&mut Variant);
        let table: [(Mutation, VariantError); 10] = [
            (|v| v.uri.clear(), VariantError::BadUri { index: 1 }),
            (
                |v| v.uri = "a.m3u8\n#EXT-X-ENDLIST".to_owned(),
                VariantError::BadUri { index: 1 },
            ),
            (
                |v| v.uri = "a.m3u8\r".to_owned(),
                VariantError::BadUri { index: 1 },
            ),
            (
                |v| v.uri = "#a.m3u8".to_owned(),
                VariantError::BadUri { index: 1 },
            ),
            (|v| v.codecs.clear(), VariantError::BadCodecs { index: 1 }),
            (
                |v| v.codecs = "avc1\",X=\"".to_owned(),
                VariantError::BadCodecs { index: 1 },
            ),
            (
                |v| v.average_bandwidth = Some(v.bandwidth + 1),
                VariantError::AverageAboveBandwidth { index: 1 },
            ),
            (
                |v| v.resolution = Some((0, 720)),
                VariantError::ZeroResolution { index: 1 },
            ),
            (
                |v| v.frame_rate = Some(f64::NAN),
                VariantError::BadFrameRate { index: 1 },
            ),
            (
                |v| v.frame_rate = Some(-25.0),
                VariantError::BadFrameRate { index: 1 },
            ),
        ];
        for (mutate, want) in table {
            assert_eq!(with(mutate), Err(want));
        }
        assert_eq!(render_multivariant(&[], &[]), Err(VariantError::NoVariants));
    }

    fn audio() -> AudioRendition {
        AudioRendition {
            group_id: "audio".to_owned(),
            name: "audio".to_owned(),
            uri: "audio/playlist.m3u8".to_owned(),
            channels: 2,
            default: true,
        }
    }

    #[test]
    fn audio_group_is_declared_and_named() {
        let v = Variant {
            audio_group: Some("audio".to_owned()),
            ..variant()
        };
        let text = render_multivariant(std::slice::from_ref(&v), &[audio()]).expect("valid");
        assert_eq!(
            text,
            "#EXTM3U\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,\
             AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/playlist.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2500000,\
             CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=29.970,\
             AUDIO=\"audio\"\n\
             main/playlist.m3u8\n"
        );
        assert_eq!(
            render_multivariant(std::slice::from_ref(&v), &[]),
            Err(VariantError::UnknownAudioGroup { index: 0 })
        );
        let bad = AudioRendition {
            name: "a\"b".to_owned(),
            ..audio()
        };
        assert_eq!(
            render_multivariant(&[v], &[bad]),
            Err(VariantError::BadAudioRendition { index: 0 })
        );
    }
}
