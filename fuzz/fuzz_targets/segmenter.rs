//! `packager::segmenter::Segmenter` driven by an arbitrary sequence of
//! operations, with the invariants of `packager/tests/timeline.rs` `check()`
//! asserted on its outputs as they come out:
//! - `Start` comes once, before any part;
//! - MSNs count up by one (across discontinuities too), part indices count
//!   0, 1, 2… inside a segment, part sequence numbers count up by one;
//! - the first part of every segment is independent, but for a segment cut
//!   short of a keyframe because its predecessor would otherwise outgrow
//!   TARGETDURATION (a keyframe interval longer than the probed one);
//! - 0 < part duration ≤ PART-TARGET, and ≥ 85 % of it but for a segment's last
//!   part (rfc8216bis §4.4.4.9);
//! - a segment is closed (`SegmentEnd`) before the next opens and by `finish`;
//!   its duration is the sum of its parts and rounds to ≤ TARGETDURATION
//!   (rfc8216bis §4.4.3.1);
//! - `push_sample` never fails once the codecs are declared, and refuses audio
//!   when no audio codec was.
//!
//! The codecs are fixed: the Baseline avcC of `timeline.rs` and AAC-LC 48 kHz.
//!
//! To look past a known class of violation, `DROPLINE_FUZZ_SEGMENTER` in the
//! environment takes comma-separated flags:
//! - `cfr`: constant frame rate, every video step is one nominal frame (no
//!   dropped frames); keyframes still anywhere;
//! - `gop`: a keyframe exactly every `gop` frames (counted from the start and
//!   from each discontinuity), as the proptest in timeline.rs;
//! - `skip-part-max`, `skip-85`, `skip-td`: skip the check that parts are
//!   ≤ PART-TARGET (and > 0), that all but a segment's last are ≥ 85 % of it,
//!   that segments round to ≤ TARGETDURATION; `structure` skips all three and
//!   keeps the numbering, independence and open/close checks.
//!
//! B-frame offsets, audio jitter, discontinuities and `finish` stay arbitrary.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use packager::rendition::PlaylistParams;
use packager::sample::{Codec, Sample, TrackKind};
use packager::segmenter::{Output, Segmenter, SegmenterConfig, SegmenterError};
use packager::units::{MediaTime, Msn, PartIndex, PartSeq, WallTime};

#[derive(Clone, Copy, Default)]
struct Mode {
    cfr: bool,
    gop: bool,
    skip_part_max: bool,
    skip_85: bool,
    skip_td: bool,
}

fn mode() -> Mode {
    static MODE: OnceLock<Mode> = OnceLock::new();
    *MODE.get_or_init(|| {
        let flags = std::env::var("DROPLINE_FUZZ_SEGMENTER").unwrap_or_default();
        let mut m = Mode::default();
        for f in flags.split(',').filter(|f| !f.is_empty()) {
            match f {
                "cfr" => m.cfr = true,
                "gop" => m.gop = true,
                "skip-part-max" => m.skip_part_max = true,
                "skip-85" => m.skip_85 = true,
                "skip-td" => m.skip_td = true,
                "structure" => (m.skip_part_max, m.skip_85, m.skip_td) = (true, true, true),
                other => panic!("DROPLINE_FUZZ_SEGMENTER: unknown flag {other:?}"),
            }
        }
        m
    })
}

/// A Baseline-profile avcC with a 320x240 SPS (as in `packager/tests/timeline.rs`).
fn avcc() -> Bytes {
    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x20,
    ];
    const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
    let mut v = vec![1, SPS[1], SPS[2], SPS[3], 0xff, 0xe1];
    v.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
    v.extend_from_slice(SPS);
    v.push(1);
    v.extend_from_slice(&(PPS.len() as u16).to_be_bytes());
    v.extend_from_slice(PPS);
    v.into()
}

/// 90 kHz ticks per AAC frame at 48 kHz (1024 × 90000 / 48000).
const AAC_TICKS: i64 = 1920;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Step {
    /// Exactly one nominal frame later: a regular source.
    OneFrame,
    /// n nominal frames later (0: the same time again; >1: dropped frames).
    Frames(u8),
    /// Any step, in 90 kHz ticks.
    Ticks(i32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    PushVideo {
        dts_delta: Step,
        /// PTS − DTS in nominal frames (B-frame reordering).
        pts_offset: u8,
        keyframe: bool,
        len: u8,
    },
    /// The next AAC frame on the audio clock, off by `jitter` ticks.
    PushAudio { jitter: i8, len: u8 },
    /// `push_discontinuity`, then both clocks jump by `jump` ticks.
    Discontinuity { jump: i32 },
    /// `finish`: the source ended (no operation after it is run).
    Finish,
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Index into FRAMES.
    frame: u8,
    /// Index into SEGMENTS_MS.
    segment: u8,
    part_ms: u16,
    /// Start of the media timeline; high bit: start just below 2^33.
    origin: u64,
    audio: bool,
    /// Keyframe interval in frames (used by `cfr-gop` only).
    gop: u8,
    ops: Vec<Op>,
}

const FRAMES: [i64; 6] = [1500, 1800, 3000, 3003, 3600, 3750];
const SEGMENTS_MS: [i64; 4] = [1000, 2000, 3000, 4000];

/// What has come out of one rendition so far, checked as it comes.
#[derive(Debug, Default)]
struct Checker {
    /// The audio rendition: parts may be gaps, and whole AAC frames cannot
    /// always reach 85 % of PART-TARGET.
    audio: bool,
    params: Option<PlaylistParams>,
    last_msn: Option<Msn>,
    last_seq: Option<PartSeq>,
    /// The segment whose parts are coming out: (msn, durations of its parts).
    open: Option<(Msn, Vec<MediaTime>)>,
    /// EXTINF of the last segment, unless a discontinuity followed it.
    last_duration: Option<MediaTime>,
}

/// The longest video EXTINF rounding to TARGETDURATION, less one 8 kHz AAC
/// frame of room for the audio rendition (as `segmenter.rs` cuts).
fn max_video_segment(params: &PlaylistParams) -> MediaTime {
    MediaTime(i64::from(params.target_duration_secs) * 90_000 + 45_000 - 1 - 11_520)
}

impl Checker {
    fn output(&mut self, out: Output) {
        match out {
            Output::Start { params, init, .. } => {
                assert!(self.params.is_none(), "second Start");
                assert!(!init.is_empty());
                assert!(params.part_target > MediaTime::ZERO);
                assert!(params.target_duration_secs >= 1);
                self.params = Some(params);
            }
            Output::Init { init, .. } => {
                assert!(self.params.is_some(), "Init before Start");
                assert!(!init.is_empty());
            }
            Output::Part { open, part, .. } => {
                let params = self.params.expect("Part before Start");
                if let Some(o) = open {
                    if let Some((msn, _)) = &self.open {
                        panic!("segment {} opened while {msn} was not closed", o.msn);
                    }
                    if let Some(last) = self.last_msn {
                        assert_eq!(o.msn, last.next(), "MSNs count up by one");
                    }
                    self.last_msn = Some(o.msn);
                    let forced = !o.discontinuity
                        && self
                            .last_duration
                            .is_some_and(|d| d + params.part_target > max_video_segment(&params));
                    assert!(
                        part.independent || forced,
                        "segment {} starts without a keyframe",
                        o.msn
                    );
                    self.open = Some((o.msn, Vec::new()));
                }
                let Some((msn, parts)) = self.open.as_mut() else {
                    panic!("part {:?} outside any segment", part.seq);
                };
                let index = u32::try_from(parts.len()).expect("part count");
                assert_eq!(
                    part.index,
                    PartIndex(index),
                    "part indices are consecutive in {msn}"
                );
                if let Some(prev) = self.last_seq {
                    assert_eq!(part.seq, prev.next(), "part numbers are consecutive");
                }
                self.last_seq = Some(part.seq);
                let pt = params.part_target;
                let m = mode();
                assert!(
                    m.skip_part_max || part.duration > MediaTime::ZERO,
                    "part {:?} lasts {:?}",
                    part.seq,
                    part.duration
                );
                // rfc8216bis §4.4.4.9: part durations ≤ PART-TARGET …
                assert!(
                    m.skip_part_max || part.duration <= pt,
                    "part {:?} {:?} > PART-TARGET {:?}",
                    part.seq,
                    part.duration,
                    pt
                );
                // … and, but for a segment's last part, ≥ 85 % of it.
                if let Some(prev) = parts.last().filter(|_| !m.skip_85 && !self.audio) {
                    assert!(
                        prev.0 * 100 >= pt.0 * 85,
                        "short part {:?} ({:?} of {:?}) before the last",
                        part.seq.0 - 1,
                        prev,
                        pt
                    );
                }
                assert_eq!(part.data.is_empty(), part.gap);
                assert!(self.audio || !part.gap);
                parts.push(part.duration);
            }
            Output::SegmentEnd { duration, .. } => {
                let params = self.params.expect("SegmentEnd before Start");
                let Some((msn, parts)) = self.open.take() else {
                    panic!("SegmentEnd with no segment open");
                };
                let sum = parts.iter().fold(MediaTime::ZERO, |a, d| a + *d);
                self.last_duration = Some(duration);
                assert_eq!(duration, sum, "EXTINF of {msn} is the sum of its parts");
                // rfc8216bis §4.4.3.1: EXTINF rounded to the nearest integer ≤ TARGETDURATION.
                let rounded = (duration.0 + 45_000) / 90_000;
                assert!(
                    mode().skip_td || rounded <= i64::from(params.target_duration_secs),
                    "segment {msn} too long: {duration:?} > {} s",
                    params.target_duration_secs
                );
            }
            Output::Warning(_) => {}
        }
    }
}

fuzz_target!(|input: Input| {
    let frame = FRAMES[usize::from(input.frame) % FRAMES.len()];
    let seg_ms = SEGMENTS_MS[usize::from(input.segment) % SEGMENTS_MS.len()];
    // 100 ms ..= half a segment, as the proptest in timeline.rs.
    let part_ms = 100 + i64::from(input.part_ms) % (seg_ms / 2 - 99);
    let origin = if input.origin >> 63 == 1 {
        (1_i64 << 33) - i64::try_from(input.origin % 900_000).unwrap_or(0)
    } else {
        i64::try_from(input.origin % (1 << 34)).unwrap_or(0)
    };
    let mut seg = Segmenter::new(SegmenterConfig {
        segment_duration: MediaTime::from_millis(seg_ms),
        part_target: MediaTime::from_millis(part_ms),
    });
    seg.push_codec(Codec::H264 {
        avcc: avcc(),
        width: 320,
        height: 240,
    })
    .expect("video codec");
    if input.audio {
        seg.push_codec(Codec::Aac {
            audio_specific_config: Bytes::from_static(&[0x11, 0x90]),
            sample_rate: 48_000,
            channels: 2,
        })
        .expect("audio codec");
    }

    let mut video_checker = Checker::default();
    let mut audio_checker = Checker {
        audio: true,
        ..Checker::default()
    };
    let mut video = origin - frame; // the first OneFrame lands on `origin`
    let mut audio = origin;
    let arrival = |t: i64| WallTime(1_795_000_000_000_000 + MediaTime(t - origin).as_micros());
    let data = |len: u8| Bytes::from(vec![0_u8; usize::from(len)]);
    let mut finished = false;
    let mut frames_since_start = 0_u64;
    for op in input.ops.iter().take(4000) {
        match *op {
            Op::PushVideo {
                dts_delta,
                pts_offset,
                keyframe,
                len,
            } => {
                let step = match dts_delta {
                    _ if mode().cfr => frame,
                    Step::OneFrame => frame,
                    Step::Frames(n) => frame * i64::from(n),
                    Step::Ticks(t) => i64::from(t),
                };
                video += step;
                let keyframe = if mode().gop {
                    let key = frames_since_start % u64::from(input.gop.max(1)) == 0;
                    frames_since_start += 1;
                    key
                } else {
                    keyframe
                };
                let pts = video + frame * i64::from(pts_offset % 4);
                let r = seg.push_sample(Sample {
                    track: TrackKind::Video,
                    dts: MediaTime(video),
                    pts: MediaTime(pts),
                    keyframe,
                    data: data(len),
                    arrival: arrival(video),
                });
                assert_eq!(r, Ok(()), "video sample at {video}");
            }
            Op::PushAudio { jitter, len } => {
                let t = audio + i64::from(jitter);
                audio += AAC_TICKS;
                let r = seg.push_sample(Sample {
                    track: TrackKind::Audio,
                    dts: MediaTime(t),
                    pts: MediaTime(t),
                    keyframe: true,
                    data: data(len),
                    arrival: arrival(t),
                });
                if input.audio {
                    assert_eq!(r, Ok(()), "audio sample at {t}");
                } else {
                    assert_eq!(r, Err(SegmenterError::UnknownTrack));
                }
            }
            Op::Discontinuity { jump } => {
                seg.push_discontinuity();
                frames_since_start = 0;
                video += i64::from(jump);
                audio += i64::from(jump);
            }
            Op::Finish => {
                seg.finish();
                finished = true;
            }
        }
        while let Some(out) = seg.poll_output() {
            let track = match &out {
                Output::Start { track, .. }
                | Output::Init { track, .. }
                | Output::Part { track, .. }
                | Output::SegmentEnd { track, .. } => *track,
                Output::Warning(_) => TrackKind::Video,
            };
            match track {
                TrackKind::Video => video_checker.output(out),
                TrackKind::Audio => audio_checker.output(out),
            }
        }
        if finished {
            assert!(video_checker.open.is_none(), "finish left a segment open");
            assert!(
                audio_checker.open.is_none(),
                "finish left an audio segment open"
            );
            break;
        }
    }
});
