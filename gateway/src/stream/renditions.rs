//! The renditions one stream task owns: video ("main") and, when the source
//! has audio, "audio"; both fed from the one segmenter, so they share MSNs and
//! part numbers.

use std::sync::Arc;

use packager::rendition::{Rendition, RenditionSnapshot, Retention};
use packager::sample::{Codec, TrackKind};
use packager::segmenter::{Output, Segmenter};
use packager::units::{MediaTime, WallTime};
use tracing::{info, warn};

use super::{StreamSnapshot, VariantInfo};

#[derive(Debug, Default)]
pub(super) struct Renditions {
    video: Option<Rendition>,
    audio: Option<Rendition>,
}

impl Renditions {
    fn slot(&mut self, track: TrackKind) -> &mut Option<Rendition> {
        match track {
            TrackKind::Video => &mut self.video,
            TrackKind::Audio => &mut self.audio,
        }
    }

    /// Applies one segmenter output.
    pub(super) fn apply(&mut self, out: Output, retention: Retention) {
        match out {
            Output::Start {
                track,
                params,
                init,
            } => {
                info!(
                    ?track,
                    target_duration = params.target_duration_secs,
                    part_target_ms = params.part_target.as_secs_f64() * 1000.0,
                    "timeline started"
                );
                match self.slot(track) {
                    Some(r) => r.set_init(init),
                    slot @ None => *slot = Some(Rendition::new(params, init, retention)),
                }
            }
            Output::Init { track, init } => {
                if let Some(r) = self.slot(track) {
                    r.set_init(init);
                }
            }
            Output::Part {
                track, open, part, ..
            } => {
                if let Some(r) = self.slot(track) {
                    r.push_part(open, part);
                }
            }
            Output::SegmentEnd { track, duration } => {
                if let Some(r) = self.slot(track) {
                    r.complete_segment(duration);
                }
            }
            Output::Warning(w) => warn!("{w}"),
        }
    }

    /// Writes `EXT-X-ENDLIST` in every rendition.
    pub(super) fn end(&mut self) {
        for r in [&mut self.video, &mut self.audio].into_iter().flatten() {
            r.end(None);
        }
    }

    /// Where the playlists' date ranges start: the first PROGRAM-DATE-TIME of
    /// the video playlist, reaching back by the segments the window still
    /// lacks while it fills. A full window lists what aired in it; a young
    /// one — a stream republished after a gateway restart — also lists what
    /// aired within a window's length before it, as the playlist would have
    /// without the restart.
    pub(super) fn daterange_horizon(
        &self,
        retention: Retention,
        segment_duration: MediaTime,
    ) -> Option<WallTime> {
        let s = self.video.as_ref()?.snapshot();
        let first = s.segments.first().map(|seg| seg.program_date_time);
        let first = first.or_else(|| s.open.as_ref().map(|o| o.program_date_time))?;
        let missing = retention.segments.saturating_sub(s.segments.len());
        let missing = i64::try_from(missing).unwrap_or(i64::MAX);
        Some(first.offset(MediaTime(-segment_duration.0.saturating_mul(missing))))
    }

    /// The video rendition, once started.
    pub(super) fn video(&self) -> Option<&Rendition> {
        self.video.as_ref()
    }

    pub(super) fn ended(&self) -> bool {
        self.video.as_ref().is_some_and(|r| r.snapshot().ended)
    }

    /// The snapshot readers get; `None` before the video rendition starts.
    pub(super) fn snapshot(
        &self,
        name: &str,
        incarnation: WallTime,
        video_codec: Option<&Codec>,
        segmenter: &Segmenter,
        dateranges: Arc<[String]>,
    ) -> Option<StreamSnapshot> {
        let video = Arc::new(self.video.as_ref()?.snapshot().clone());
        let audio = self.audio.as_ref().map(|r| Arc::new(r.snapshot().clone()));
        let variant = video_codec.map(|v| {
            variant(
                v,
                &video,
                segmenter.frame_duration(),
                segmenter,
                audio.as_deref(),
            )
        });
        Some(StreamSnapshot {
            main: Some(video),
            audio,
            variant,
            dateranges,
            ..StreamSnapshot::empty(name, incarnation)
        })
    }
}

/// The variant's attributes: rfc8216bis §4.4.6.2, BANDWIDTH "MUST be the
/// largest sum of peak segment bit rates that is produced by any playable
/// combination of Renditions" (AVERAGE-BANDWIDTH likewise with averages).
/// `video` is the variant's own rendition (the source's or a ladder rung's),
/// `frame` its frame duration; the audio is the source's (`segmenter`).
pub(super) fn variant(
    video: &Codec,
    snap: &RenditionSnapshot,
    frame: Option<MediaTime>,
    segmenter: &Segmenter,
    audio: Option<&RenditionSnapshot>,
) -> VariantInfo {
    let mut codecs = video.rfc6381();
    let (mut peak, mut average) = bit_rates(snap);
    let audio_codec = segmenter.audio_codec().filter(|_| audio.is_some());
    if let (Some(codec), Some(a)) = (audio_codec, audio) {
        codecs.push(',');
        codecs.push_str(&codec.rfc6381());
        let (p, avg) = bit_rates(a);
        peak += p;
        average += avg;
    }
    let resolution = match video {
        Codec::H264 { width, height, .. } => Some((*width, *height)),
        Codec::Aac { .. } => None,
    };
    // From the source's codec: known before the audio rendition publishes.
    let audio_channels = match segmenter.audio_codec() {
        Some(Codec::Aac { channels, .. }) => Some(*channels),
        _ => None,
    };
    VariantInfo {
        codecs,
        // Never advertise zero: players divide by it.
        bandwidth: peak.max(1),
        average_bandwidth: average.max(1),
        resolution,
        frame_rate: frame.map(|f| 1.0 / f.as_secs_f64()),
        audio_channels,
    }
}

/// Peak and average segment bit rates of a rendition, bits per second.
fn bit_rates(snap: &RenditionSnapshot) -> (u64, u64) {
    let rate = |bytes: usize, d: MediaTime| -> u64 {
        let secs = d.as_secs_f64();
        if secs <= 0.0 {
            0
        } else {
            (bytes as f64 * 8.0 / secs) as u64
        }
    };
    let (mut peak, mut total_bytes, mut total_time) = (0, 0, MediaTime::ZERO);
    for s in &snap.segments {
        peak = peak.max(rate(s.data.len(), s.duration));
        total_bytes += s.data.len();
        total_time = total_time + s.duration;
    }
    if snap.segments.is_empty() {
        // Before the first segment completes, estimate from its parts.
        for p in snap.open.iter().flat_map(|o| &o.parts) {
            total_bytes += p.data.len();
            total_time = total_time + p.duration;
        }
        peak = rate(total_bytes, total_time);
    }
    (peak, rate(total_bytes, total_time))
}
