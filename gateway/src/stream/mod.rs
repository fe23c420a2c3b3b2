//! Live streams: one task owns each stream's packager state and publishes
//! immutable snapshots through a `watch` channel; HTTP handlers only read them.

mod carriage;
pub mod hub;
mod ladder;
mod publishers;
pub mod registry;
mod renditions;
pub mod task;
pub mod uplink;

use std::sync::Arc;

use packager::rendition::RenditionSnapshot;
use packager::units::WallTime;

/// The video rendition's name: its objects are under `/{stream}/main/`.
pub const VIDEO_RENDITION: &str = "main";
/// The audio rendition's name (`EXT-X-MEDIA:TYPE=AUDIO`), when the source has audio.
pub const AUDIO_RENDITION: &str = "audio";

/// The renditions cut from the source itself; ladder rungs take other names.
pub const SOURCE_RENDITIONS: [&str; 2] = [VIDEO_RENDITION, AUDIO_RENDITION];

/// What the multivariant playlist says about the variant (rfc8216bis §4.4.6.2).
#[derive(Clone, Debug, PartialEq)]
pub struct VariantInfo {
    /// RFC 6381 codec strings of every rendition it plays, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: String,
    /// Peak segment bit rate, bits per second: video and audio peaks together.
    pub bandwidth: u64,
    /// Average segment bit rate, bits per second: video and audio together.
    pub average_bandwidth: u64,
    pub resolution: Option<(u16, u16)>,
    pub frame_rate: Option<f64>,
    /// The source's audio channel count when it has audio; its rendition may
    /// not have published yet ([`StreamSnapshot::audio`] says).
    pub audio_channels: Option<u16>,
}

/// One published state of a stream: all its renditions at one instant.
#[derive(Clone, Debug)]
pub struct StreamSnapshot {
    pub name: String,
    /// When this stream started: tells it apart from earlier and later
    /// streams of the same name, which may reuse object names.
    pub incarnation: WallTime,
    /// The video rendition ([`VIDEO_RENDITION`]), once its first part is cut;
    /// the stream plays from then on.
    pub main: Option<Arc<RenditionSnapshot>>,
    /// The audio rendition ([`AUDIO_RENDITION`]), cut on the video's MSN and
    /// part boundaries, when the source has audio.
    pub audio: Option<Arc<RenditionSnapshot>>,
    pub variant: Option<VariantInfo>,
    /// The ABR ladder's renditions that have published (`[hls] ladder`).
    pub ladder: Vec<RungSnapshot>,
    /// Rungs being made (their transcoder runs), published or not yet.
    pub ladder_expected: usize,
    /// `EXT-X-DATERANGE` lines of the overlay's cues in the playlist window,
    /// written in every media playlist (empty without an overlay).
    pub dateranges: Arc<[String]>,
    /// The uplink whose media is packaged now (none before the first keyframe).
    pub uplink: Option<uplink::Role>,
    /// The stream is gone: blocked requests must answer now.
    pub closed: bool,
}

/// A ladder rung's rendition: transcoded video on the source's MSN and part
/// grid, played with the source's audio.
#[derive(Clone, Debug)]
pub struct RungSnapshot {
    /// Its objects are under `/{stream}/{name}/`.
    pub name: Arc<str>,
    pub rendition: Arc<RenditionSnapshot>,
    /// Its variant; the source's audio counts in its BANDWIDTH.
    pub variant: Option<VariantInfo>,
}

impl StreamSnapshot {
    /// A stream that has published nothing yet.
    #[must_use]
    pub fn empty(name: &str, incarnation: WallTime) -> Self {
        Self {
            name: name.to_owned(),
            incarnation,
            main: None,
            audio: None,
            variant: None,
            ladder: Vec::new(),
            ladder_expected: 0,
            dateranges: Arc::from([]),
            uplink: None,
            closed: false,
        }
    }

    /// Every rendition published so far, by name: video, audio, ladder rungs.
    pub fn renditions(&self) -> impl Iterator<Item = (&str, &Arc<RenditionSnapshot>)> {
        let video = self.main.iter().map(|r| (VIDEO_RENDITION, r));
        let rungs = self.ladder.iter().map(|r| (&*r.name, &r.rendition));
        video
            .chain(self.audio.iter().map(|r| (AUDIO_RENDITION, r)))
            .chain(rungs)
    }

    #[must_use]
    pub fn rendition(&self, name: &str) -> Option<&Arc<RenditionSnapshot>> {
        self.renditions().find(|(n, _)| *n == name).map(|(_, r)| r)
    }
}

/// Stream names are path segments and metric labels: keep them plain.
#[must_use]
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
