//! The audio track as a rendition of its own, cut where the video is cut.
//!
//! The video segmenter decides every boundary (a keyframe opens a segment, the
//! part grid closes parts) and queues each published video part here as a
//! [`Cut`]. Audio frames are assigned by decode time: a frame belongs to the
//! part in which most of it lies (`dts + frame/2 <= end`), so an audio part ends
//! within half an AAC frame of its video part (within one frame when the video
//! part is shorter than a frame) and has the same MSN, part index and part URI
//! number. An audio part is published once the frame after it is
//! due beyond its end, so audio adds no latency beyond its own interleaving.
//!
//! rfc8216bis §6.2.4: "Each Media Playlist in each Variant Stream MUST have the
//! same target duration"; the audio playlist uses the video's. Its PART-TARGET
//! is its own (§4.4.3.7 declares it per Media Playlist): AAC frames cannot be
//! split, so an audio part is up to one frame longer than its video part.

use std::collections::VecDeque;

use crate::cmaf::{self, CmafError, FragmentSample, TrackRun, TrackSpec};
use crate::program_date_time;
use crate::rendition::{OpenSegment, Part, PlaylistParams};
use crate::sample::{Codec, Sample, TrackKind};
use crate::segmenter::Output;
use crate::units::{MediaTime, PartIndex, PartSeq, TS_TIMESCALE};

/// The only track of the audio rendition's fragments.
const TRACK_ID: u32 = 1;
/// PCM frames per AAC access unit (ISO/IEC 14496-3, AAC-LC).
pub(crate) const AAC_FRAME: i64 = 1024;
/// Audio missing for this much media time behind the video: its parts are cut
/// with what is there (or as gaps) so the audio playlist keeps its cadence.
/// Generous: the audio and video parsers run on their own threads, and on a
/// loaded machine one may run seconds behind the other without any loss.
const MAX_AUDIO_LAG: MediaTime = MediaTime(3 * TS_TIMESCALE as i64);

/// A boundary the video segmenter published.
#[derive(Debug)]
pub(crate) enum Cut {
    /// A video part spanning `start..end` of media time.
    Part {
        open: Option<OpenSegment>,
        seq: PartSeq,
        index: PartIndex,
        start: MediaTime,
        end: MediaTime,
    },
    /// The video segment that the preceding parts belong to is complete.
    SegmentEnd,
}

#[derive(Debug, Default)]
pub(crate) struct AudioCutter {
    codec: Option<Codec>,
    /// Set once `Output::Start` for the audio rendition went out.
    params: Option<PlaylistParams>,
    init_dirty: bool,
    cuts: VecDeque<Cut>,
    frames: VecDeque<Sample>,
    /// Next expected audio time, in the audio timescale.
    clock: Option<i64>,
    /// Sum of the published part durations of the open audio segment; `None`
    /// while no audio segment is open.
    segment: Option<MediaTime>,
}

impl AudioCutter {
    pub(crate) fn codec(&self) -> Option<&Codec> {
        self.codec.as_ref()
    }

    /// Declares the audio codec; returns whether a different one was replaced.
    pub(crate) fn set_codec(&mut self, codec: Codec) -> bool {
        if self.codec.as_ref() == Some(&codec) {
            return false;
        }
        let replaced = self.codec.is_some();
        self.codec = Some(codec);
        self.init_dirty = self.params.is_some();
        replaced
    }

    /// Video parts whose audio part is not cut yet.
    pub(crate) fn pending_parts(&self) -> usize {
        self.cuts
            .iter()
            .filter(|c| matches!(c, Cut::Part { .. }))
            .count()
    }

    pub(crate) fn push_frame(&mut self, frame: Sample) {
        if self.codec.is_some() {
            self.frames.push_back(frame);
        }
    }

    pub(crate) fn push_cut(&mut self, cut: Cut) {
        if self.codec.is_some() {
            self.cuts.push_back(cut);
        }
    }

    /// The source restarted or ended: cut what is queued with the audio at
    /// hand, and forget audio that no cut covers.
    pub(crate) fn flush(
        &mut self,
        video: PlaylistParams,
        out: &mut VecDeque<Output>,
    ) -> Result<(), CmafError> {
        let r = self.advance(video, true, out);
        self.cuts.clear();
        self.frames.clear();
        self.clock = None;
        r
    }

    /// Publishes every queued cut whose audio is complete.
    pub(crate) fn advance(
        &mut self,
        video: PlaylistParams,
        flush: bool,
        out: &mut VecDeque<Output>,
    ) -> Result<(), CmafError> {
        let Some(codec) = self.codec.clone() else {
            return Ok(());
        };
        let rate = codec.timescale();
        let half = MediaTime(frame_ticks(rate, 1).0 / 2);
        let latest = self.cuts.iter().rev().find_map(|c| match c {
            Cut::Part { end, .. } => Some(*end),
            Cut::SegmentEnd => None,
        });
        while let Some(cut) = self.cuts.front() {
            let (start, end) = match cut {
                Cut::SegmentEnd => {
                    self.cuts.pop_front();
                    if let Some(duration) = self.segment.take() {
                        out.push_back(Output::SegmentEnd {
                            track: TrackKind::Audio,
                            duration,
                        });
                    }
                    continue;
                }
                Cut::Part { start, end, .. } => (*start, *end),
            };
            // Complete once the next frame (arrived or due) lies beyond the end.
            let next_due = self.frames.back().map(|f| f.dts + frame_ticks(rate, 1));
            let complete = flush
                || next_due.is_some_and(|t| t + half > end)
                || latest.is_some_and(|l| l - end > MAX_AUDIO_LAG);
            if !complete {
                break;
            }
            let Some(Cut::Part {
                open, seq, index, ..
            }) = self.cuts.pop_front()
            else {
                break;
            };
            // Frames before the part's start arrived after their own part was
            // cut: placing them here would shift this part's audio in time.
            while self.frames.front().is_some_and(|f| f.dts + half <= start) {
                self.frames.pop_front();
            }
            let params = self.params.unwrap_or_else(|| audio_params(video, rate));
            let max_frames = max_frames(params.part_target, rate);
            let mut take = self
                .frames
                .iter()
                .take_while(|f| f.dts + half <= end)
                .count()
                .min(max_frames);
            // A video part shorter than an AAC frame (a segment's last frame)
            // may hold no frame's larger half; one that starts inside it goes
            // here rather than leave a gap (it ends within a frame of `end`).
            if take == 0 && self.frames.front().is_some_and(|f| f.dts < end) {
                take = 1;
            }
            let frames: Vec<Sample> = self.frames.drain(..take).collect();
            // A gap lasts as long as its video part, within PART-TARGET.
            let gap = (end - start).min(params.part_target);
            if let Some(mut open) = open {
                if frames.is_empty() && self.params.is_none() {
                    // The rendition starts with the first segment that starts with audio.
                    continue;
                }
                let init = || {
                    cmaf::init_segment(&[TrackSpec {
                        track_id: TRACK_ID,
                        codec: codec.clone(),
                    }])
                };
                if self.params.is_none() {
                    self.params = Some(params);
                    self.init_dirty = false;
                    out.push_back(Output::Start {
                        track: TrackKind::Audio,
                        params,
                        init: init()?,
                    });
                } else if std::mem::take(&mut self.init_dirty) {
                    out.push_back(Output::Init {
                        track: TrackKind::Audio,
                        init: init()?,
                    });
                }
                if let Some(first) = frames.first() {
                    open.program_date_time =
                        program_date_time::audio(open.program_date_time, first.dts - open.start);
                    open.start = first.dts;
                }
                self.segment = Some(MediaTime::ZERO);
                let part = self.part(out, (seq, index), &frames, rate, gap)?;
                out.push_back(Output::Part {
                    track: TrackKind::Audio,
                    open: Some(open),
                    part,
                    span: start..end,
                });
            } else if self.segment.is_some() {
                let part = self.part(out, (seq, index), &frames, rate, gap)?;
                out.push_back(Output::Part {
                    track: TrackKind::Audio,
                    open: None,
                    part,
                    span: start..end,
                });
            }
        }
        Ok(())
    }

    /// One audio part; without frames a gap of `gap_duration`.
    fn part(
        &mut self,
        out: &mut VecDeque<Output>,
        (seq, index): (PartSeq, PartIndex),
        frames: &[Sample],
        rate: u32,
        gap_duration: MediaTime,
    ) -> Result<Part, CmafError> {
        let (duration, data, gap) = match self.run(frames, rate) {
            Some(run) => {
                let n = i64::try_from(run.samples.len()).unwrap_or(i64::MAX);
                // mfhd sequence numbers only need to increase; they wrap at 2^32.
                let mfhd = u32::try_from(seq.0 % (1 << 32)).unwrap_or(0);
                (frame_ticks(rate, n), cmaf::fragment(mfhd, &[run])?, false)
            }
            None => {
                out.push_back(Output::Warning(format!(
                    "no audio for part {seq} ({:.3} s): listed as GAP=YES",
                    gap_duration.as_secs_f64()
                )));
                (gap_duration, Default::default(), true)
            }
        };
        if let Some(s) = self.segment.as_mut() {
            *s = *s + duration;
        }
        Ok(Part {
            seq,
            index,
            duration,
            // Every AAC frame is a sync sample.
            independent: true,
            gap,
            data,
        })
    }

    /// Lays audio frames on a continuous clock in the audio timescale, so that
    /// AAC frames are exactly 1024 ticks apart unless the source really jumps.
    fn run(&mut self, frames: &[Sample], rate: u32) -> Option<TrackRun> {
        let first = frames.first()?;
        let measured = first.dts.to_timescale(rate);
        let start = match self.clock {
            Some(expected) if (measured - expected).abs() < AAC_FRAME / 2 => expected,
            _ => measured,
        };
        // Within one run the frames are laid back to back; a real jump is
        // absorbed at the next run, which resyncs to the measured time.
        self.clock = Some(start + AAC_FRAME * i64::try_from(frames.len()).ok()?);
        let samples = frames
            .iter()
            .map(|s| FragmentSample {
                duration: AAC_FRAME as u32,
                composition_offset: 0,
                keyframe: true,
                data: s.data.clone(),
            })
            .collect();
        Some(TrackRun {
            track_id: TRACK_ID,
            base_decode_time: u64::try_from(start).ok()?,
            samples,
        })
    }
}

/// The duration of `n` AAC frames in 90 kHz ticks, rounded up.
fn frame_ticks(rate: u32, n: i64) -> MediaTime {
    let num = i128::from(n) * i128::from(AAC_FRAME) * i128::from(TS_TIMESCALE);
    let den = i128::from(rate.max(1));
    MediaTime(i64::try_from((num + den - 1) / den).unwrap_or(i64::MAX))
}

/// The most whole frames a part of at most `part_target` holds.
fn max_frames(part_target: MediaTime, rate: u32) -> usize {
    let mut n = 1;
    while frame_ticks(rate, i64::try_from(n + 1).unwrap_or(i64::MAX)) <= part_target {
        n += 1;
    }
    n
}

/// The audio playlist's parameters: the video's TARGETDURATION, and a
/// PART-TARGET of the most AAC frames whose start can fall within one video
/// part: a window of `p` holds at most `ceil(p / frame)` frame starts.
pub(crate) fn audio_params(video: PlaylistParams, rate: u32) -> PlaylistParams {
    let one = frame_ticks(rate, 1).0.max(1);
    let n = (video.part_target.0 + one - 1) / one;
    let mut part_target = frame_ticks(rate, n.max(1));
    // frame_ticks rounds up per call: make sure n frames fit the declared value.
    if part_target < video.part_target {
        part_target = frame_ticks(rate, n + 1);
    }
    PlaylistParams {
        target_duration_secs: video.target_duration_secs,
        part_target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_part_target_is_whole_frames_covering_the_video_part() {
        let video = PlaylistParams {
            target_duration_secs: 4,
            part_target: MediaTime(6 * 3003),
        };
        let a = audio_params(video, 48_000);
        // 200.2 ms of 21.33 ms frames: at most 10 frame starts.
        assert_eq!(a.part_target, MediaTime(19_200));
        assert_eq!(a.target_duration_secs, 4);
        assert_eq!(max_frames(a.part_target, 48_000), 10);
        let a = audio_params(video, 44_100);
        assert_eq!(max_frames(a.part_target, 44_100), 9);
        assert!(a.part_target >= video.part_target);
    }
}
