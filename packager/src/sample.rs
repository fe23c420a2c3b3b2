//! What the IO shell feeds the packager: track descriptions and access units.

use bytes::Bytes;

use crate::units::{MediaTime, WallTime};

/// Which elementary stream a sample belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

/// Codec configuration, as the parsers deliver it out of band.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Codec {
    /// H.264 with its `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1);
    /// samples are length-prefixed NAL units (AVCC), one access unit each.
    H264 {
        avcc: Bytes,
        width: u16,
        height: u16,
    },
    /// AAC with its `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1);
    /// samples are raw access units of 1024 PCM frames, no ADTS header.
    Aac {
        audio_specific_config: Bytes,
        sample_rate: u32,
        channels: u16,
    },
}

impl Codec {
    #[must_use]
    pub fn kind(&self) -> TrackKind {
        match self {
            Self::H264 { .. } => TrackKind::Video,
            Self::Aac { .. } => TrackKind::Audio,
        }
    }

    /// The RFC 6381 codec string for the `CODECS` attribute.
    #[must_use]
    pub fn rfc6381(&self) -> String {
        match self {
            // avc1.PPCCLL: profile_idc, constraint flags, level_idc from the avcC header.
            Self::H264 { avcc, .. } => match avcc.get(1..4) {
                Some([p, c, l]) => format!("avc1.{p:02x}{c:02x}{l:02x}"),
                _ => "avc1".to_owned(),
            },
            // mp4a.40.N where N is the audioObjectType (top 5 bits of the config).
            Self::Aac {
                audio_specific_config,
                ..
            } => {
                let aot = audio_specific_config.first().map_or(2, |b| b >> 3);
                format!("mp4a.40.{aot}")
            }
        }
    }

    /// The timescale of this track in CMAF: 90 kHz for video (as in MPEG-TS, so
    /// no rounding), the sample rate for audio (so every AAC frame lasts exactly 1024).
    #[must_use]
    pub fn timescale(&self) -> u32 {
        match self {
            Self::H264 { .. } => crate::units::TS_TIMESCALE,
            Self::Aac { sample_rate, .. } => *sample_rate,
        }
    }
}

/// One access unit (a video frame or an AAC frame).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub track: TrackKind,
    /// Decode time on the unwrapped 90 kHz media timeline.
    pub dts: MediaTime,
    /// Presentation time; `pts >= dts` for well-formed streams.
    pub pts: MediaTime,
    /// A sync sample (IDR for H.264; every AAC frame).
    pub keyframe: bool,
    pub data: Bytes,
    /// Wall-clock time when the last byte of this sample reached the gateway.
    pub arrival: WallTime,
}
