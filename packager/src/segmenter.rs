//! The part/segment timeline: cuts access units into CMAF parts and segments on
//! media time, never on a timer.
//!
//! Rules, all decided from media time so that two gateways fed the same source
//! publish the same timeline:
//! - A segment starts at the first video keyframe whose decode time falls in a
//!   new *slot* of the segment-duration grid (`slot = dts / segment_duration`).
//!   The first MSN is the slot of the first segment; later MSNs count up by one.
//!   Should the source's keyframes come further apart than its first GOP, a
//!   segment that would outgrow TARGETDURATION is cut at a frame that is not a
//!   keyframe (`must_cut`): rfc8216bis §4.4.3.1 makes the EXTINF limit a MUST.
//! - Parts are laid on a grid of `part_duration` from their segment's start; the
//!   part duration is a whole number of frames closest to the configured
//!   PART-TARGET, so that every part but a segment's last one is exactly as long
//!   as the declared target (rfc8216bis §4.4.4.9 asks for ≥ 85 % of it).
//! - A part is published as soon as its last frame arrives (the next frame's
//!   expected time crosses the part grid), not when the next frame shows up.
//!
//! - Audio is a rendition of its own, cut on the video's boundaries
//!   (`audio_cutter.rs`): same MSNs, part indices and part URI numbers. A
//!   video part is released once the audio part of the same number is cut, so
//!   both playlists end at the same part: TS muxers send audio a few hundred
//!   milliseconds behind the video, and a player holding back PART-HOLD-BACK
//!   from the video's end would find the audio missing.
//!
//! - Program date-times: `program_date_time.rs` says how they are rounded so
//!   that players line the audio rendition up with the video.
//!
//! Shape (style.md convention 2): `push_*` in, `poll_output` out.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::Bytes;

use crate::audio_cutter::{AudioCutter, Cut};
use crate::cmaf::{self, CmafError, FragmentSample, TrackRun, TrackSpec};
use crate::program_date_time;
use crate::rendition::{OpenSegment, Part, PlaylistParams};
use crate::sample::{Codec, Sample, TrackKind};
use crate::units::{InitId, MediaTime, Msn, PartIndex, PartSeq, TS_TIMESCALE, WallTime};

/// The only track of the video rendition's fragments.
const VIDEO_TRACK_ID: u32 = 1;
/// Without a second keyframe within this much media time the stream cannot be
/// segmented sensibly (e.g. intra-refresh encoders); start anyway.
const MAX_PROBE: MediaTime = MediaTime(10 * TS_TIMESCALE as i64);
/// Video frames the probe needs besides a second keyframe: the frame duration
/// is the mean of the steps around their median, and with a handful of steps
/// one gap (dropped frames) is the median. A source of nothing but keyframes
/// ended the probe at its second frame: one step 4.3 s long became the frame
/// duration, and PART-TARGET with it (segmenter fuzz target).
const MIN_PROBE_FRAMES: usize = 9;
/// Audio frames kept from before the first keyframe (1.4 s of 48 kHz AAC).
const MAX_PREROLL: usize = 64;
/// A decode-time jump larger than this (or any step back) is a discontinuity.
const MAX_JUMP: MediaTime = MediaTime(5 * TS_TIMESCALE as i64);
/// Room kept under TARGETDURATION for the audio rendition, whose segments end
/// within one AAC frame of the video's (1024 samples: 128 ms at 8 kHz).
const AUDIO_SLACK: MediaTime = MediaTime(11_520);

/// Timeline settings, fixed for the life of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// The segment grid; segments are this long when the GOP divides it.
    pub segment_duration: MediaTime,
    /// The wanted PART-TARGET; the declared one is the nearest whole number of frames.
    pub part_target: MediaTime,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            segment_duration: MediaTime::from_millis(2000),
            part_target: MediaTime::from_millis(200),
        }
    }
}

/// What the segmenter asks its owner to publish, in order. `track` names the
/// rendition: video, or audio when the source has it; both share MSNs, part
/// indices and part URI numbers.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// The rendition's playlist parameters are decided and its init segment is ready.
    Start {
        track: TrackKind,
        params: PlaylistParams,
        init: Bytes,
    },
    /// New codec parameters after a discontinuity: a new init segment.
    Init { track: TrackKind, init: Bytes },
    /// A complete part; `open` is set when the part opens a new segment.
    Part {
        track: TrackKind,
        open: Option<OpenSegment>,
        part: Part,
        /// The media time the video part of this number spans, from its
        /// first frame's decode time to the next part's: the parts of one
        /// number in every track share it (an audio part's own frames may
        /// start up to a frame away). Timed metadata at a time in it belongs
        /// in this part.
        span: Range<MediaTime>,
    },
    /// The rendition's open segment is complete.
    SegmentEnd {
        track: TrackKind,
        duration: MediaTime,
    },
    /// Something the operator should know (not an error of the stream).
    Warning(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SegmenterError {
    #[error("sample for a track whose codec is unknown")]
    UnknownTrack,
    #[error("video codec changed without a discontinuity")]
    CodecChanged,
    #[error("could not write a CMAF box")]
    Cmaf(#[from] CmafError),
}

/// Everything fixed once the first GOP has been seen.
#[derive(Clone, Copy, Debug)]
struct Grid {
    /// Nominal frame duration (mean frame step).
    frame: MediaTime,
    /// A longer step between frames is a gap (dropped frames), not a long frame.
    max_step: MediaTime,
    /// The part grid: a whole number of nominal frames.
    part: MediaTime,
    params: PlaylistParams,
}

#[derive(Debug)]
struct OpenPart {
    index: PartIndex,
    /// Samples with `dts + frame/2` before this belong to the part.
    end: MediaTime,
    video: Vec<Sample>,
}

impl OpenPart {
    fn empty(index: PartIndex) -> Self {
        Self {
            index,
            end: MediaTime::ZERO,
            video: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct SegmentState {
    slot: i64,
    /// Decode time of the segment's first frame.
    start: MediaTime,
    /// Sum of the published parts' durations: the EXTINF.
    published: MediaTime,
    part: Option<OpenPart>,
    next_index: u32,
    /// Not yet announced: the `open` of the next `Output::Part`.
    announce: Option<OpenSegment>,
    /// Where the part grid starts: the segment's keyframe, or the first frame
    /// after a gap.
    grid_origin: MediaTime,
    last_dts: Option<MediaTime>,
}

/// Cuts one stream (one video track, optionally one audio track) into parts.
#[derive(Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    video: Option<Codec>,
    audio: AudioCutter,
    /// Samples held until the grid is known (first GOP).
    probe: Vec<Sample>,
    /// Audio that arrived before the first keyframe: TS muxers send audio
    /// ahead of the video of the same time, and the first audio part wants it.
    preroll: VecDeque<Sample>,
    grid: Option<Grid>,
    segment: Option<SegmentState>,
    last_msn: Option<Msn>,
    next_seq: Option<PartSeq>,
    /// The next segment follows a discontinuity.
    discontinuity: bool,
    /// Wall clock of media time zero for PROGRAM-DATE-TIME: (pts, arrival).
    anchor: Option<(MediaTime, WallTime)>,
    last_video_dts: Option<MediaTime>,
    /// The video init segment changed; announced when the next segment opens.
    init_dirty: bool,
    /// Video outputs waiting for the audio parts of the same numbers.
    held: VecDeque<Output>,
    out: VecDeque<Output>,
}

impl Segmenter {
    #[must_use]
    pub fn new(config: SegmenterConfig) -> Self {
        Self {
            config,
            video: None,
            audio: AudioCutter::default(),
            probe: Vec::new(),
            preroll: VecDeque::new(),
            grid: None,
            segment: None,
            last_msn: None,
            next_seq: None,
            discontinuity: false,
            anchor: None,
            last_video_dts: None,
            init_dirty: false,
            held: VecDeque::new(),
            out: VecDeque::new(),
        }
    }

    /// The declared playlist parameters, once decided.
    #[must_use]
    pub fn params(&self) -> Option<PlaylistParams> {
        self.grid.map(|g| g.params)
    }

    /// The nominal video frame duration, once measured.
    #[must_use]
    pub fn frame_duration(&self) -> Option<MediaTime> {
        self.grid.map(|g| g.frame)
    }

    #[must_use]
    pub fn audio_codec(&self) -> Option<&Codec> {
        self.audio.codec()
    }

    /// Declares (or re-declares) a track's codec.
    pub fn push_codec(&mut self, codec: Codec) -> Result<(), SegmenterError> {
        let changed = match codec.kind() {
            TrackKind::Audio => self.audio.set_codec(codec),
            TrackKind::Video => {
                if self.video.as_ref() == Some(&codec) {
                    return Ok(());
                }
                let changed = self.video.replace(codec).is_some();
                self.init_dirty |= changed;
                changed
            }
        };
        // A new publisher announces its codecs before its first sample; the
        // shell calls `push_discontinuity` first. Anything else is a mid-stream
        // codec switch we cannot splice without one.
        if changed && self.segment.is_some() && !self.discontinuity {
            self.push_discontinuity();
        }
        Ok(())
    }

    /// The source restarted (new publisher, or timestamps jumped): close what is
    /// open and start the next segment, with `EXT-X-DISCONTINUITY`, at the next keyframe.
    pub fn push_discontinuity(&mut self) {
        self.finish_segment();
        // Audio of the old source cannot open a segment of the new one.
        self.flush_audio();
        self.discontinuity = self.last_msn.is_some();
        self.anchor = None;
        self.last_video_dts = None;
        if self.grid.is_none() {
            self.probe.clear();
            self.preroll.clear();
        }
    }

    /// The source ended: publish what is open.
    pub fn finish(&mut self) {
        if self.grid.is_none()
            && !self.probe.is_empty()
            && let Err(e) = self.start_grid()
        {
            self.out
                .push_back(Output::Warning(format!("last samples: {e}")));
        }
        self.finish_segment();
        self.flush_audio();
    }

    pub fn push_sample(&mut self, sample: Sample) -> Result<(), SegmenterError> {
        let codec = match sample.track {
            TrackKind::Video => self.video.as_ref(),
            TrackKind::Audio => self.audio.codec(),
        };
        if codec.is_none() {
            return Err(SegmenterError::UnknownTrack);
        }
        if sample.track == TrackKind::Video {
            if let Some(last) = self.last_video_dts {
                let step = sample.dts - last;
                if step <= MediaTime::ZERO || step > MAX_JUMP {
                    self.out.push_back(Output::Warning(format!(
                        "video decode time jumped by {:.3} s: discontinuity",
                        step.as_secs_f64()
                    )));
                    self.push_discontinuity();
                }
            }
            self.last_video_dts = Some(sample.dts);
        }
        if self.grid.is_none() {
            return self.probe_sample(sample);
        }
        self.place(sample)
    }

    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.release_video();
        self.out.pop_front()
    }

    /// Moves held video outputs to the output queue, in order, up to the
    /// first video part whose audio part is not cut yet. Every video part
    /// queued a cut in the audio cutter (when there is audio), in the same
    /// order, so the last `pending` held parts are the ones still waiting.
    fn release_video(&mut self) {
        let pending = self.audio.pending_parts();
        let mut parts = self
            .held
            .iter()
            .filter(|o| matches!(o, Output::Part { .. }))
            .count();
        while let Some(front) = self.held.front() {
            if matches!(front, Output::Part { .. }) {
                if parts <= pending {
                    break;
                }
                parts -= 1;
            }
            if let Some(o) = self.held.pop_front() {
                self.out.push_back(o);
            }
        }
    }

    fn probe_sample(&mut self, sample: Sample) -> Result<(), SegmenterError> {
        let is_key = sample.track == TrackKind::Video && sample.keyframe;
        if self.probe.is_empty() && !is_key {
            // Nothing is decodable before the first keyframe, but audio of the
            // same time may come first; the audio cutter drops what is older.
            if sample.track == TrackKind::Audio {
                if self.preroll.len() == MAX_PREROLL {
                    self.preroll.pop_front();
                }
                self.preroll.push_back(sample);
            }
            return Ok(());
        }
        if self.probe.is_empty() {
            self.probe.extend(self.preroll.drain(..));
        }
        let first = self.probe.first().map(|s| s.dts);
        let video = self
            .probe
            .iter()
            .filter(|s| s.track == TrackKind::Video)
            .count();
        let second_key = is_key
            && video >= MIN_PROBE_FRAMES
            && self
                .probe
                .iter()
                .any(|s| s.track == TrackKind::Video && s.keyframe);
        let too_long = first.is_some_and(|f| sample.dts - f > MAX_PROBE);
        self.probe.push(sample);
        if second_key || too_long {
            self.start_grid()?;
        }
        Ok(())
    }

    /// Decides frame duration, part duration and TARGETDURATION from the probe,
    /// then places the samples held during it.
    fn start_grid(&mut self) -> Result<(), SegmenterError> {
        let video: Vec<MediaTime> = self
            .probe
            .iter()
            .filter(|s| s.track == TrackKind::Video)
            .map(|s| s.dts)
            .collect();
        let (frame, jitter) = frame_rate(&video);
        let keys: Vec<MediaTime> = self
            .probe
            .iter()
            .filter(|s| s.track == TrackKind::Video && s.keyframe)
            .map(|s| s.dts)
            .collect();
        let gop = match keys.as_slice() {
            [a, b, ..] => *b - *a,
            _ => video
                .last()
                .zip(video.first())
                .map_or(MAX_PROBE, |(l, f)| *l - *f + frame),
        };
        let frames = ((self.config.part_target.0 + frame.0 / 2) / frame.0).max(1);
        let part = MediaTime(frames * frame.0);
        // Frames sit within `jitter` of their ideal time, so a part of whole
        // frames on the grid lasts at most `part + 2 × jitter`.
        let declared = MediaTime(part.0 + 2 * jitter.0);
        let seg = self.config.segment_duration;
        // A segment runs from its keyframe to the first keyframe of the next
        // slot: at most one grid step plus one keyframe interval. The interval
        // seen in the probe may be one shortened by a scene cut (x264 restarts
        // its GOP there), so count at least one grid step for it.
        let longest = seg + gop.max(seg);
        // The smallest TARGETDURATION whose `max_segment` leaves room for one
        // more part after the last frame of such a segment, so that
        // `must_cut` never fires while the keyframe interval is the probed one.
        let room = longest - frame + declared + AUDIO_SLACK - half_second();
        let target = room.0.div_euclid(i64::from(TS_TIMESCALE)) + 1;
        if gop > seg {
            self.out.push_back(Output::Warning(format!(
                "encoder keyframe interval {:.3} s exceeds the segment duration {:.3} s: \
                 segments follow the keyframes; set the encoder's GOP to {:.3} s or less",
                gop.as_secs_f64(),
                seg.as_secs_f64(),
                seg.as_secs_f64()
            )));
        }
        let params = PlaylistParams {
            target_duration_secs: u32::try_from(target.max(1)).unwrap_or(u32::MAX),
            part_target: declared,
        };
        self.grid = Some(Grid {
            frame,
            max_step: MediaTime(frame.0 + frame.0 / 2 + jitter.0),
            part,
            params,
        });
        let init = self.init_segment()?;
        self.held.push_back(Output::Start {
            track: TrackKind::Video,
            params,
            init,
        });
        self.init_dirty = false;
        for s in std::mem::take(&mut self.probe) {
            self.place(s)?;
        }
        Ok(())
    }

    fn init_segment(&self) -> Result<Bytes, CmafError> {
        let tracks: Vec<TrackSpec> = self
            .video
            .iter()
            .map(|v| TrackSpec {
                track_id: VIDEO_TRACK_ID,
                codec: v.clone(),
            })
            .collect();
        cmaf::init_segment(&tracks)
    }

    fn place(&mut self, sample: Sample) -> Result<(), SegmenterError> {
        let Some(grid) = self.grid else {
            return Ok(());
        };
        match sample.track {
            TrackKind::Video => self.place_video(grid, sample),
            TrackKind::Audio => {
                self.audio.push_frame(sample);
                self.advance_audio()
            }
        }
    }

    fn place_video(&mut self, grid: Grid, sample: Sample) -> Result<(), SegmenterError> {
        let slot = sample
            .dts
            .0
            .div_euclid(self.config.segment_duration.0.max(1));
        let new_segment = sample.keyframe && self.segment.as_ref().is_none_or(|s| slot > s.slot);
        let forced = !new_segment
            && self
                .segment
                .as_ref()
                .is_some_and(|s| must_cut(grid, s, sample.dts));
        if forced {
            self.out.push_back(Output::Warning(format!(
                "no keyframe for {:.3} s: segment cut at a frame that is not one, \
                 to keep EXTINF within TARGETDURATION {} s; set the encoder's GOP to {:.3} s or less",
                self.segment
                    .as_ref()
                    .map_or(0.0, |s| (sample.dts - s.start).as_secs_f64()),
                grid.params.target_duration_secs,
                self.config.segment_duration.as_secs_f64()
            )));
        }
        if new_segment || forced {
            if self.init_dirty {
                self.init_dirty = false;
                self.held.push_back(Output::Init {
                    track: TrackKind::Video,
                    init: self.init_segment()?,
                });
            }
            self.publish_part(Some(sample.dts))?;
            self.finish_segment();
            self.open_segment(slot, &sample);
        }
        let half = MediaTime(grid.frame.0 / 2);
        // Does this frame start the next part?
        let crosses = self
            .segment
            .as_ref()
            .and_then(|s| s.part.as_ref())
            .is_some_and(|p| !p.video.is_empty() && sample.dts + half >= p.end);
        if crosses {
            self.publish_part(Some(sample.dts))?;
        }
        let Some(seg) = self.segment.as_mut() else {
            return Ok(()); // waiting for a keyframe after a discontinuity
        };
        let part = seg
            .part
            .get_or_insert_with(|| OpenPart::empty(PartIndex(seg.next_index)));
        if part.video.is_empty() {
            let after_gap = seg.last_dts.is_some_and(|l| sample.dts - l > grid.max_step);
            part.end = if after_gap {
                // Frames were lost: lay a full part from here rather than a
                // short one up to the old grid point (§4.4.4.9's 85 % rule).
                seg.grid_origin = sample.dts;
                sample.dts + grid.part
            } else {
                // The next point of the part grid after this frame.
                let cell = (sample.dts - seg.grid_origin + half)
                    .0
                    .div_euclid(grid.part.0)
                    + 1;
                seg.grid_origin + MediaTime(grid.part.0 * cell)
            };
            part.index = PartIndex(seg.next_index);
        }
        seg.last_dts = Some(sample.dts);
        let expected_next = sample.dts + grid.frame;
        let end = part.end;
        part.video.push(sample);
        // Publish now if the next frame, when it comes, belongs to the next part:
        // waiting for it would add a frame of latency.
        if expected_next + half >= end {
            self.publish_part(None)?;
        }
        Ok(())
    }

    /// Opens a segment at keyframe `key`.
    fn open_segment(&mut self, slot: i64, key: &Sample) {
        let msn = match self.last_msn {
            Some(m) => m.next(),
            None => Msn(u64::try_from(slot).unwrap_or(0)),
        };
        self.last_msn = Some(msn);
        let anchor = *self
            .anchor
            .get_or_insert((key.pts, program_date_time::anchor(key.arrival)));
        let pdt = anchor.1.offset(key.pts - anchor.0);
        let announce = OpenSegment {
            msn,
            start: key.dts,
            program_date_time: pdt,
            discontinuity: std::mem::take(&mut self.discontinuity),
            init: InitId::default(),
            parts: Vec::new(),
        };
        if self.next_seq.is_none() {
            // Deterministic first part number: the part grid cell of the first
            // segment's start, so gateways that join a source at the same
            // keyframe agree on part URIs.
            let part = self.grid.map_or(1, |g| g.part.0.max(1));
            self.next_seq = Some(PartSeq(u64::try_from(key.dts.0 / part).unwrap_or(0)));
        }
        self.segment = Some(SegmentState {
            slot,
            start: key.dts,
            published: MediaTime::ZERO,
            part: None,
            next_index: 0,
            announce: Some(announce),
            grid_origin: key.dts,
            last_dts: None,
        });
    }

    /// Publishes the open part. `next_dts` is the decode time of the frame after
    /// it when known; otherwise its last frame gets the nominal frame duration.
    fn publish_part(&mut self, next_dts: Option<MediaTime>) -> Result<(), SegmenterError> {
        let Some(seg) = self.segment.as_mut() else {
            return Ok(());
        };
        let Some(part) = seg.part.take() else {
            return Ok(());
        };
        let Some(first) = part.video.first() else {
            return Ok(());
        };
        let Some(grid) = self.grid else {
            return Ok(());
        };
        let base = u64::try_from(first.dts.0).unwrap_or(0);
        let independent = first.keyframe;
        let mut video = Vec::with_capacity(part.video.len());
        let mut duration = MediaTime::ZERO;
        for (s, d) in part
            .video
            .iter()
            .zip(frame_durations(grid, &part, next_dts))
        {
            duration = duration + d;
            video.push(FragmentSample {
                duration: u32::try_from(d.0).unwrap_or(0),
                composition_offset: i32::try_from((s.pts - s.dts).0).unwrap_or(0),
                keyframe: s.keyframe,
                data: s.data.clone(),
            });
        }
        let runs = [TrackRun {
            track_id: VIDEO_TRACK_ID,
            base_decode_time: base,
            samples: video,
        }];
        let span = (first.dts, first.dts + duration);
        // rfc8216bis §4.4.4.9: part durations MUST NOT exceed PART-TARGET;
        // jitter beyond what the probe saw is absorbed here, by a few ticks.
        let duration = duration.min(grid.params.part_target);
        let seq = self.next_seq.unwrap_or(PartSeq(0));
        self.next_seq = Some(seq.next());
        // mfhd sequence numbers only need to increase; they wrap at 2^32.
        let mfhd = u32::try_from(seq.0 % (1 << 32)).unwrap_or(0);
        let data = cmaf::fragment(mfhd, &runs)?;
        let Some(seg) = self.segment.as_mut() else {
            return Ok(());
        };
        seg.next_index += 1;
        seg.published = seg.published + duration;
        let open = seg.announce.take();
        self.audio.push_cut(Cut::Part {
            open: open.clone(),
            seq,
            index: part.index,
            start: span.0,
            end: span.1,
        });
        self.held.push_back(Output::Part {
            track: TrackKind::Video,
            span: span.0..span.1,
            open: open.map(|o| OpenSegment {
                program_date_time: program_date_time::video(o.program_date_time),
                ..o
            }),
            part: Part {
                seq,
                index: part.index,
                duration,
                independent,
                gap: false,
                data,
            },
        });
        self.advance_audio()
    }

    /// Publishes the audio parts whose frames are all in.
    fn advance_audio(&mut self) -> Result<(), SegmenterError> {
        match self.grid {
            Some(g) => Ok(self.audio.advance(g.params, false, &mut self.out)?),
            None => Ok(()),
        }
    }

    /// Cuts every audio part still waiting with the audio at hand.
    fn flush_audio(&mut self) {
        if let Some(g) = self.grid
            && let Err(e) = self.audio.flush(g.params, &mut self.out)
        {
            self.out
                .push_back(Output::Warning(format!("last audio parts: {e}")));
        }
    }

    /// Closes the open segment.
    fn finish_segment(&mut self) {
        if let Err(e) = self.publish_part(None) {
            self.out
                .push_back(Output::Warning(format!("last part: {e}")));
        }
        let Some(seg) = self.segment.take() else {
            return;
        };
        if seg.announce.is_none() {
            self.held.push_back(Output::SegmentEnd {
                track: TrackKind::Video,
                duration: seg.published,
            });
            self.audio.push_cut(Cut::SegmentEnd);
            if let Err(e) = self.advance_audio() {
                self.out
                    .push_back(Output::Warning(format!("audio part: {e}")));
            }
        }
    }
}

/// How long each frame of `part` lasts; `next_dts` is the decode time of the
/// frame after it when known, otherwise its last frame gets the nominal frame
/// duration.
fn frame_durations<'a>(
    grid: Grid,
    part: &'a OpenPart,
    next_dts: Option<MediaTime>,
) -> impl Iterator<Item = MediaTime> + 'a {
    part.video.iter().enumerate().map(move |(i, s)| {
        let next = part.video.get(i + 1).map(|n| n.dts).or(next_dts);
        // Before a gap (dropped frames) the last frame is held to the end
        // of its part, no further: the rest of the gap stays a gap rather
        // than stretching the part past PART-TARGET.
        match next.map(|n| n - s.dts) {
            Some(d) if d > MediaTime::ZERO && d <= grid.max_step => d,
            Some(d) if d > grid.max_step => (part.end - s.dts).max(grid.frame).min(d),
            _ => grid.frame,
        }
    })
}

fn half_second() -> MediaTime {
    MediaTime(i64::from(TS_TIMESCALE) / 2)
}

/// The longest EXTINF the video rendition may publish: rfc8216bis §4.4.3.1,
/// "The EXTINF duration of each Media Segment in a Playlist file, when rounded
/// to the nearest integer, MUST be less than or equal to the Target Duration."
/// Less `AUDIO_SLACK`, as the audio segment of the same MSN may be that much longer.
fn max_segment(params: PlaylistParams) -> MediaTime {
    let target = MediaTime(i64::from(params.target_duration_secs) * i64::from(TS_TIMESCALE));
    target + half_second() - MediaTime(1) - AUDIO_SLACK
}

/// Whether the open segment must end before a frame at `dts` that is not a
/// keyframe of a new slot: with that frame, whose part may add up to
/// PART-TARGET, it could outgrow `max_segment`. This happens only when the
/// source's keyframes are further apart than the probe saw (a GOP that grew,
/// a new publisher with a longer one): the next segment then starts without a
/// keyframe (its first part is INDEPENDENT=NO), which is why the multivariant
/// playlist does not declare EXT-X-INDEPENDENT-SEGMENTS.
fn must_cut(grid: Grid, seg: &SegmentState, dts: MediaTime) -> bool {
    let open = seg.part.as_ref().map_or(MediaTime::ZERO, |p| {
        frame_durations(grid, p, Some(dts))
            .fold(MediaTime::ZERO, |a, d| a + d)
            .min(grid.params.part_target)
    });
    // The EXTINF if the segment closed before `dts`.
    seg.published + open + grid.params.part_target > max_segment(grid.params)
}

/// Nominal frame duration and jitter from the probe's video decode times: the
/// mean of the steps that are not gaps (dropped frames), and the largest
/// deviation from it. Millisecond timestamps at 30 fps step 33/33/34 ms: the
/// mean is exact, the minimum would make every part too long.
fn frame_rate(dts: &[MediaTime]) -> (MediaTime, MediaTime) {
    let mut steps: Vec<i64> = dts
        .windows(2)
        .filter_map(|w| match w {
            [a, b] if b > a => Some((*b - *a).0),
            _ => None,
        })
        .collect();
    steps.sort_unstable();
    let Some(&median) = steps.get(steps.len() / 2) else {
        return (MediaTime::from_millis(33), MediaTime::ZERO);
    };
    let regular: Vec<i64> = steps.into_iter().filter(|d| *d <= median * 3 / 2).collect();
    let count = i64::try_from(regular.len()).unwrap_or(1).max(1);
    let frame = (regular.iter().sum::<i64>() + count / 2) / count;
    let jitter = regular.iter().map(|d| (d - frame).abs()).max().unwrap_or(0);
    // Timestamps rounded to milliseconds jitter by under a millisecond; beyond a
    // quarter frame the source is variable-rate, and widening PART-TARGET would
    // not help: parts are clamped to it instead.
    let frame = frame.max(1);
    (MediaTime(frame), MediaTime(jitter.min(frame / 4)))
}
