//! The part/segment timeline, driven by synthetic sources on virtual media time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use bytes::Bytes;
use packager::rendition::{OpenSegment, Part, PlaylistParams};
use packager::sample::{Codec, Sample, TrackKind};
use packager::segmenter::{Output, Segmenter, SegmenterConfig};
use packager::units::{MediaTime, Msn, PartIndex, WallTime};
use proptest::prelude::*;

/// A Baseline-profile avcC with a 320x240 SPS, as h264parse would deliver it.
fn avcc() -> Bytes {
    let sps: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x20,
    ];
    let pps: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
    let mut v = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    v.extend_from_slice(&u16::try_from(sps.len()).unwrap().to_be_bytes());
    v.extend_from_slice(sps);
    v.push(1);
    v.extend_from_slice(&u16::try_from(pps.len()).unwrap().to_be_bytes());
    v.extend_from_slice(pps);
    v.into()
}

fn video_codec() -> Codec {
    video_sized(320, 240)
}

/// The same parameter sets under another declared size: the grid depends on
/// neither.
fn video_sized(width: u16, height: u16) -> Codec {
    Codec::H264 {
        avcc: avcc(),
        width,
        height,
    }
}

fn audio_codec() -> Codec {
    Codec::Aac {
        audio_specific_config: Bytes::from_static(&[0x11, 0x90]),
        sample_rate: 48_000,
        channels: 2,
    }
}

/// A live source: video at `frame` ticks per frame with a keyframe every `gop`
/// frames, AAC at 48 kHz interleaved by decode time, arriving in real time.
struct Source {
    frame: i64,
    gop: u64,
    audio: bool,
    /// Audio arrives this many ticks after video of the same media time
    /// (negative: before), as TS muxers interleave it.
    audio_delay: i64,
    /// Microseconds past a whole millisecond the source's clock reads.
    arrival_us: i64,
    next_video: u64,
    next_audio: u64,
    origin: i64,
}

const AAC_TICKS_90K: f64 = 1024.0 * 90_000.0 / 48_000.0;

impl Source {
    fn new(frame: i64, gop: u64, origin: i64) -> Self {
        Self {
            frame,
            gop,
            audio: true,
            audio_delay: 0,
            arrival_us: 0,
            next_video: 0,
            next_audio: 0,
            origin,
        }
    }

    fn next(&mut self) -> Sample {
        let vt = self.origin + self.frame * i64::try_from(self.next_video).unwrap();
        let at = self.origin + (AAC_TICKS_90K * self.next_audio as f64).round() as i64;
        let (track, t, keyframe) = if self.audio && at + self.audio_delay < vt {
            self.next_audio += 1;
            (TrackKind::Audio, at, true)
        } else {
            let key = self.next_video.is_multiple_of(self.gop);
            self.next_video += 1;
            (TrackKind::Video, vt, key)
        };
        Sample {
            track,
            dts: MediaTime(t),
            pts: MediaTime(t),
            keyframe,
            data: Bytes::from(vec![0u8; 100]),
            // Arrival in step with media time, from an arbitrary epoch.
            arrival: WallTime(
                1_795_000_000_000_000 + self.arrival_us + MediaTime(t - self.origin).as_micros(),
            ),
        }
    }
}

/// (segment, its parts, its duration if complete)
type Segments = Vec<(OpenSegment, Vec<Part>, Option<MediaTime>)>;

#[derive(Debug, Default)]
struct Timeline {
    params: Option<PlaylistParams>,
    segments: Segments,
    warnings: Vec<String>,
    /// How many samples had been pushed when each video part came out.
    part_pushed_at: Vec<usize>,
    /// The audio rendition.
    audio_params: Option<PlaylistParams>,
    audio: Segments,
    /// Video parts that came out before the audio part of the same number.
    video_ahead: usize,
}

fn run(cfg: SegmenterConfig, source: &mut Source, samples: usize) -> Timeline {
    let mut seg = Segmenter::new(cfg);
    seg.push_codec(video_codec()).unwrap();
    seg.push_codec(audio_codec()).unwrap();
    let mut tl = Timeline::default();
    for i in 1..=samples {
        seg.push_sample(source.next()).unwrap();
        drain(&mut seg, &mut tl, i);
    }
    tl
}

fn drain(seg: &mut Segmenter, tl: &mut Timeline, pushed: usize) {
    while let Some(out) = seg.poll_output() {
        let audio = |t: TrackKind| t == TrackKind::Audio;
        match out {
            Output::Start {
                track,
                params,
                init,
            } => {
                assert!(!init.is_empty());
                if audio(track) {
                    assert!(tl.audio_params.is_none(), "second audio Start");
                    tl.audio_params = Some(params);
                } else {
                    tl.params = Some(params);
                }
            }
            Output::Init { .. } => {}
            Output::Part {
                track, open, part, ..
            } => {
                let segments = if audio(track) {
                    &mut tl.audio
                } else {
                    tl.part_pushed_at.push(pushed);
                    let last_audio = tl.audio.last().and_then(|s| s.1.last()).map(|p| p.seq);
                    if tl.audio_params.is_some() && last_audio < Some(part.seq) {
                        tl.video_ahead += 1;
                    }
                    &mut tl.segments
                };
                if let Some(o) = open {
                    segments.push((o, Vec::new(), None));
                }
                segments
                    .last_mut()
                    .expect("part before segment")
                    .1
                    .push(part);
            }
            Output::SegmentEnd { track, duration } => {
                let segments = if audio(track) {
                    &mut tl.audio
                } else {
                    &mut tl.segments
                };
                let last = segments.last_mut().expect("end before segment");
                assert!(last.2.is_none(), "segment {} ended twice", last.0.msn);
                last.2 = Some(duration);
            }
            Output::Warning(w) => tl.warnings.push(w),
        }
    }
}

/// Invariants of rfc8216bis that hold for every timeline, in both renditions.
fn check(tl: &Timeline) {
    let params = tl.params.expect("timeline started");
    check_rendition(params, &tl.segments, true);
    match tl.audio_params {
        Some(audio) => {
            assert_eq!(audio.target_duration_secs, params.target_duration_secs);
            check_rendition(audio, &tl.audio, false);
            check_audio_follows_video(tl);
            check_program_date_times(tl);
        }
        None => assert!(tl.audio.is_empty()),
    }
}

/// One AAC frame at 48 kHz, in 90 kHz ticks.
const AAC_FRAME_90K: i64 = 1920;

/// The audio rendition is cut on the video's boundaries: every audio segment
/// has the MSN, start (within one audio frame), part count, part indices and
/// part numbers of the video segment of the same MSN, and every audio part
/// ends within one audio frame of its video part.
fn check_audio_follows_video(tl: &Timeline) {
    let first_video = tl.segments[0].0.msn;
    let mut previous = None;
    for (open, parts, duration) in &tl.audio {
        let Some((vo, vparts, vduration)) = tl.segments.iter().find(|s| s.0.msn == open.msn) else {
            panic!("audio segment {} has no video segment", open.msn);
        };
        assert!(open.msn >= first_video);
        if let Some(p) = previous {
            assert_eq!(open.msn, Msn::next(p), "audio MSNs count up by one");
        }
        assert_eq!(open.discontinuity, vo.discontinuity);
        if duration.is_some() && vduration.is_some() {
            assert_eq!(parts.len(), vparts.len(), "part count of {}", open.msn);
        }
        let (mut a_end, mut v_end) = (open.start, vo.start);
        // Audio that arrived before the source's first keyframe was not kept:
        // the first segment of a source may start its audio later.
        let first = previous.is_none() || open.discontinuity;
        let lead = (a_end - v_end).0;
        assert!(
            lead.abs() <= AAC_FRAME_90K || (first && lead > 0),
            "start of {}",
            open.msn
        );
        previous = Some(open.msn);
        for (a, v) in parts.iter().zip(vparts) {
            assert_eq!((a.seq, a.index), (v.seq, v.index));
            assert!(a.independent);
            // A gap lasts as long as its video part.
            a_end = a_end + a.duration;
            v_end = v_end + v.duration;
            assert!(
                (a_end - v_end).0.abs() <= AAC_FRAME_90K,
                "audio part {:?} ends {} ticks from its video part",
                a.seq,
                (a_end - v_end).0
            );
        }
    }
}

/// Players place the audio rendition on the video's timeline by the
/// difference of their PROGRAM-DATE-TIMEs (written in whole milliseconds):
/// for any audio segment and any video segment of the same source, that
/// difference never exceeds the difference of their media times, and misses it
/// by less than 3 ms; for the segments of one MSN it is never exactly 1 ms
/// (`program_date_time.rs`: Shaka Player).
fn check_program_date_times(tl: &Timeline) {
    // Segments after a discontinuity have a new anchor: compare within one.
    let epochs = |segments: &Segments| {
        let mut epoch = 0;
        segments
            .iter()
            .map(|(open, ..)| {
                epoch += usize::from(open.discontinuity);
                (
                    epoch,
                    open.msn,
                    open.start,
                    open.program_date_time.as_millis(),
                )
            })
            .collect::<Vec<_>>()
    };
    let video = epochs(&tl.segments);
    for (epoch, a_msn, a_start, a_pdt) in epochs(&tl.audio) {
        for &(_, v_msn, v_start, v_pdt) in video.iter().filter(|v| v.0 == epoch) {
            let written = (a_pdt - v_pdt) * 90;
            let media = (a_start - v_start).0;
            assert!(
                written <= media && media - written < 3 * 90,
                "audio PDT {a_pdt} ms vs video {v_pdt} ms: {written} ticks apart, media {media}"
            );
            assert!(
                a_msn != v_msn || (a_pdt - v_pdt).abs() != 1,
                "segment {a_msn:?}: audio PDT {a_pdt} ms, video {v_pdt} ms"
            );
        }
    }
}

/// The longest EXTINF rounding to TARGETDURATION, less one 8 kHz AAC frame
/// (11,520 ticks) of room for the audio rendition.
fn max_video_segment(params: PlaylistParams) -> MediaTime {
    MediaTime(i64::from(params.target_duration_secs) * 90_000 + 45_000 - 1 - 11_520)
}

fn check_rendition(params: PlaylistParams, segments: &Segments, video: bool) {
    let pt = params.part_target;
    let mut last_seq = None;
    for (i, (open, parts, duration)) in segments.iter().enumerate() {
        if i > 0 {
            // MSNs count up by one.
            assert_eq!(open.msn, segments[i - 1].0.msn.next());
        }
        // A segment starts with a keyframe, but for one cut short of a
        // keyframe to keep its predecessor within TARGETDURATION (the source's
        // keyframes came further apart than its first GOP).
        let forced = i > 0
            && !open.discontinuity
            && segments[i - 1]
                .2
                .is_some_and(|d| d + pt > max_video_segment(params));
        assert!(
            parts[0].independent || forced,
            "segment {} starts without a keyframe",
            open.msn
        );
        for (j, p) in parts.iter().enumerate() {
            assert_eq!(p.index, PartIndex(u32::try_from(j).unwrap()));
            // rfc8216bis §4.4.4.9: part durations ≤ PART-TARGET …
            assert!(
                p.duration <= pt,
                "part {:?} {:?} > {:?}",
                p.seq,
                p.duration,
                pt
            );
            // … and, but for a segment's last part, ≥ 85 % of it (a SHOULD:
            // whole AAC frames cannot always meet it for short part targets).
            if video && j + 1 < parts.len() {
                assert!(p.duration.0 * 100 >= pt.0 * 85, "short part {:?}", p.seq);
            }
            if let Some(prev) = last_seq {
                assert_eq!(
                    p.seq,
                    packager::units::PartSeq(prev + 1),
                    "part numbers are consecutive"
                );
            }
            last_seq = Some(p.seq.0);
        }
        if let Some(d) = duration {
            let sum = parts.iter().fold(MediaTime::ZERO, |a, p| a + p.duration);
            assert_eq!(*d, sum, "EXTINF is the sum of the parts");
            // rfc8216bis §4.4.3.1: EXTINF rounded to the nearest integer ≤ TARGETDURATION.
            let rounded = (d.0 + 45_000) / 90_000;
            assert!(
                rounded <= i64::from(params.target_duration_secs),
                "segment {} too long: {d:?}",
                open.msn
            );
        }
    }
}

fn cfg(seg_ms: i64, part_ms: i64) -> SegmenterConfig {
    SegmenterConfig {
        segment_duration: MediaTime::from_millis(seg_ms),
        part_target: MediaTime::from_millis(part_ms),
    }
}

#[test]
fn regular_gop_gives_full_parts_and_grid_msns() {
    // 30 fps, keyframe every second, starting at 100 s of media time.
    let mut src = Source::new(3000, 30, 9_000_000);
    let tl = run(cfg(2000, 200), &mut src, 30 * 12 * 2);
    check(&tl);
    let params = tl.params.unwrap();
    assert_eq!(params.part_target, MediaTime::from_millis(200));
    // One grid step plus one keyframe interval (at least a grid step).
    assert_eq!(params.target_duration_secs, 4);
    // The first segment is the grid slot of its start: 100 s / 2 s.
    assert_eq!(tl.segments[0].0.msn, Msn(50));
    for (_, parts, d) in tl.segments.iter().filter(|s| s.2.is_some()) {
        assert_eq!(parts.len(), 10);
        assert_eq!(*d, Some(MediaTime::from_millis(2000)));
    }
}

#[test]
fn parts_are_published_with_their_last_frame() {
    let mut src = Source::new(3000, 30, 0);
    src.audio = false;
    let tl = run(cfg(2000, 200), &mut src, 300);
    check(&tl);
    // Without audio every sample is a frame: part k (6 frames) is out as soon as
    // frame 6k+6 — which includes the held probe for the first second.
    let steady: Vec<usize> = tl
        .part_pushed_at
        .iter()
        .copied()
        .filter(|n| *n > 31)
        .collect();
    for w in steady.windows(2) {
        assert_eq!(
            w[1] - w[0],
            6,
            "a part per 6 frames, published on its last frame"
        );
        assert_eq!(w[1] % 6, 0);
    }
}

#[test]
fn ntsc_rates_declare_a_whole_number_of_frames() {
    let mut src = Source::new(3003, 30, 0);
    let tl = run(cfg(2000, 200), &mut src, 1200);
    check(&tl);
    assert_eq!(tl.params.unwrap().part_target, MediaTime(6 * 3003));
}

#[test]
fn gop_not_dividing_the_grid_raises_target_duration() {
    // 1.5 s GOP on a 2 s grid: segments of 1.5 s and 3 s.
    let mut src = Source::new(3000, 45, 0);
    let tl = run(cfg(2000, 200), &mut src, 2400);
    check(&tl);
    assert_eq!(tl.params.unwrap().target_duration_secs, 4);
}

#[test]
fn long_gop_is_followed_and_reported() {
    let mut src = Source::new(3000, 120, 0);
    let tl = run(cfg(2000, 200), &mut src, 3000);
    check(&tl);
    assert_eq!(tl.params.unwrap().target_duration_secs, 6);
    assert!(tl.warnings.iter().any(|w| w.contains("keyframe interval")));
}

#[test]
fn timestamps_near_the_33_bit_wrap_are_plain_numbers() {
    // Unwrapped media time just past 2^33 ticks.
    let mut src = Source::new(3000, 30, (1 << 33) - 90_000);
    let tl = run(cfg(2000, 200), &mut src, 1000);
    check(&tl);
}

#[test]
fn reconnect_continues_numbering_with_a_discontinuity() {
    let mut seg = Segmenter::new(cfg(2000, 200));
    seg.push_codec(video_codec()).unwrap();
    seg.push_codec(audio_codec()).unwrap();
    let mut tl = Timeline::default();
    let mut src = Source::new(3000, 30, 50_000_000);
    for i in 0..600 {
        seg.push_sample(src.next()).unwrap();
        drain(&mut seg, &mut tl, i);
    }
    let before = tl.segments.len();
    let last_msn = tl.segments[before - 1].0.msn;
    // A new publisher: timestamps restart far lower.
    seg.push_discontinuity();
    let mut src = Source::new(3000, 30, 90_000);
    for i in 0..600 {
        seg.push_sample(src.next()).unwrap();
        drain(&mut seg, &mut tl, i);
    }
    check(&tl);
    let (first_new, _, _) = &tl.segments[before];
    assert_eq!(first_new.msn, last_msn.next());
    assert!(first_new.discontinuity);
    assert!(tl.segments[before + 1..].iter().all(|s| !s.0.discontinuity));
    assert!(
        tl.segments[before - 1].2.is_some(),
        "the old segment was closed"
    );
}

#[test]
fn timestamp_jump_without_notice_is_a_discontinuity() {
    let mut seg = Segmenter::new(cfg(2000, 200));
    seg.push_codec(video_codec()).unwrap();
    let mut tl = Timeline::default();
    let mut src = Source::new(3000, 30, 0);
    src.audio = false;
    for i in 0..200 {
        seg.push_sample(src.next()).unwrap();
        drain(&mut seg, &mut tl, i);
    }
    src.origin += 90_000 * 60; // the encoder's clock leaps a minute
    for i in 0..200 {
        seg.push_sample(src.next()).unwrap();
        drain(&mut seg, &mut tl, i);
    }
    check(&tl);
    assert!(tl.segments.iter().any(|s| s.0.discontinuity));
}

#[test]
fn audio_is_carried_and_nothing_before_the_first_keyframe() {
    let mut seg = Segmenter::new(cfg(2000, 200));
    seg.push_codec(video_codec()).unwrap();
    seg.push_codec(audio_codec()).unwrap();
    // A sample for an undeclared track is refused, not guessed.
    let mut fresh = Segmenter::new(cfg(2000, 200));
    assert!(fresh.push_sample(Source::new(3000, 30, 0).next()).is_err());
    let mut tl = Timeline::default();
    let mut src = Source::new(3000, 30, 0);
    src.next_video = 10; // join mid-GOP: the first frames are not decodable
    for i in 0..900 {
        seg.push_sample(src.next()).unwrap();
        drain(&mut seg, &mut tl, i);
    }
    seg.finish();
    drain(&mut seg, &mut tl, 900);
    check(&tl);
    assert!(
        tl.segments.iter().all(|s| s.2.is_some()),
        "finish closes the last segment"
    );
    let first_pdt = tl.segments[0].0.program_date_time;
    let second_pdt = tl.segments[1].0.program_date_time;
    let span = tl.segments[0].2.unwrap();
    assert_eq!(
        second_pdt.0 - first_pdt.0,
        span.as_micros(),
        "PDT follows media time"
    );
    // Audio is a rendition of its own, segment for segment and part for part.
    let msns = |s: &Segments| s.iter().map(|x| (x.0.msn, x.1.len())).collect::<Vec<_>>();
    assert_eq!(msns(&tl.audio), msns(&tl.segments));
    assert!(tl.audio.iter().flat_map(|s| &s.1).all(|p| !p.gap));
    for segments in [&tl.segments, &tl.audio] {
        let bytes: usize = segments
            .iter()
            .flat_map(|s| &s.1)
            .map(|p| p.data.len())
            .sum();
        assert!(bytes > 0);
    }
    assert_eq!(
        tl.audio_params.unwrap().part_target,
        MediaTime(10 * AAC_FRAME_90K),
        "200 ms video parts: at most 10 AAC frames of 21.3 ms"
    );
}

#[test]
fn an_audio_dropout_is_listed_as_gaps_and_audio_resumes_in_place() {
    let mut seg = Segmenter::new(cfg(2000, 200));
    seg.push_codec(video_codec()).unwrap();
    seg.push_codec(audio_codec()).unwrap();
    let mut tl = Timeline::default();
    let mut src = Source::new(3000, 30, 0);
    let lost = MediaTime::from_millis(4100)..MediaTime::from_millis(4900);
    for i in 0..1500 {
        let s = src.next();
        if s.track == TrackKind::Audio && lost.contains(&s.dts) {
            continue;
        }
        seg.push_sample(s).unwrap();
        drain(&mut seg, &mut tl, i);
    }
    // Not `check`: the part the audio stops in is short, so audio and video
    // part ends differ by more than a frame there.
    check_rendition(tl.params.unwrap(), &tl.segments, true);
    check_rendition(tl.audio_params.unwrap(), &tl.audio, false);
    let msns = |s: &Segments| s.iter().map(|x| (x.0.msn, x.1.len())).collect::<Vec<_>>();
    assert_eq!(msns(&tl.audio), msns(&tl.segments));
    let gaps: Vec<_> = tl
        .audio
        .iter()
        .flat_map(|s| &s.1)
        .filter(|p| p.gap)
        .map(|p| p.seq.0)
        .collect();
    // 4.1..4.9 s lost: the parts 4.2..4.4, 4.4..4.6 and 4.6..4.8 have no audio.
    assert_eq!(gaps, [21, 22, 23], "{:?}", tl.warnings);
    // Audio from 4.9 s goes where it belongs: the second half of part 24,
    // then full parts again.
    let part = |seq: u64| {
        tl.audio
            .iter()
            .flat_map(|s| &s.1)
            .find(|p| p.seq.0 == seq)
            .unwrap()
    };
    assert_eq!(part(24).duration, MediaTime(4 * AAC_FRAME_90K));
    assert!(part(25).duration >= MediaTime(9 * AAC_FRAME_90K));
    assert!(tl.warnings.iter().any(|w| w.contains("GAP=YES")));
}

#[test]
fn video_only_sources_have_no_audio_rendition() {
    let mut seg = Segmenter::new(cfg(2000, 200));
    seg.push_codec(video_codec()).unwrap();
    let mut tl = Timeline::default();
    let mut src = Source::new(3000, 30, 0);
    src.audio = false;
    for i in 0..300 {
        seg.push_sample(src.next()).unwrap();
        drain(&mut seg, &mut tl, i);
    }
    check(&tl);
    assert!(tl.audio_params.is_none() && tl.audio.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn invariants_hold_for_any_regular_source(
        frame in prop::sample::select(vec![1500i64, 1800, 3000, 3003, 3600, 3750]),
        gop_secs_x4 in 1u64..=12,
        seg_ms in prop::sample::select(vec![1000i64, 2000, 3000, 4000]),
        part_ms in 100i64..=500,
        origin in 0i64..(1 << 34),
        audio in any::<bool>(),
        audio_delay_ms in -500i64..500,
        arrival_us in 0i64..1000,
    ) {
        let fps = 90_000 / frame;
        let gop = (u64::try_from(fps).unwrap() * gop_secs_x4 / 4).max(1);
        prop_assume!(part_ms * 2 <= seg_ms);
        let mut src = Source::new(frame, gop, origin);
        src.audio = audio;
        src.audio_delay = audio_delay_ms * 90;
        src.arrival_us = arrival_us;
        let tl = run(cfg(seg_ms, part_ms), &mut src, 2000);
        check(&tl);
        // Audio starts with the first segment (and, arriving late, may not have
        // opened the newest one yet); it never misses a part.
        if audio {
            prop_assert_eq!(tl.audio[0].0.msn, tl.segments[0].0.msn);
            prop_assert!(tl.audio.len() + 1 >= tl.segments.len());
        } else {
            prop_assert!(tl.audio.is_empty());
        }
        prop_assert!(tl.audio.iter().flat_map(|s| &s.1).all(|p| !p.gap));
        // Both playlists end at the same part: video waits for its audio.
        prop_assert_eq!(tl.video_ahead, 0);
    }
}

/// Pushes a list of (dts, keyframe) video frames; returns the timeline.
fn run_frames(frames: &[(i64, bool)]) -> Timeline {
    let mut seg = Segmenter::new(cfg(2000, 200));
    seg.push_codec(video_codec()).unwrap();
    let mut tl = Timeline::default();
    for (i, (dts, key)) in frames.iter().enumerate() {
        seg.push_sample(Sample {
            track: TrackKind::Video,
            dts: MediaTime(*dts),
            pts: MediaTime(*dts),
            keyframe: *key,
            data: Bytes::from(vec![0u8; 10]),
            arrival: WallTime(*dts * 100 / 9),
        })
        .unwrap();
        drain(&mut seg, &mut tl, i);
    }
    tl
}

#[test]
fn millisecond_timestamps_keep_parts_within_part_target() {
    // 30 fps stamped in whole milliseconds: steps of 33, 33 and 34 ms
    // (found by the segmenter fuzz target).
    let frames: Vec<(i64, bool)> = (0..900i64)
        .map(|k| ((k * 1000 + 15) / 30 * 90, k % 60 == 0))
        .collect();
    let tl = run_frames(&frames);
    check(&tl);
    assert!(tl.segments.len() > 10);
}

#[test]
fn dropped_frames_leave_a_gap_not_a_long_part() {
    // Six frames lost 1.3 s in, and a longer loss later (fuzz reproducers).
    let frames: Vec<(i64, bool)> = (0..900i64)
        .filter(|k| !(39..45).contains(k) && !(300..340).contains(k))
        .map(|k| (k * 3000, k % 60 == 0))
        .collect();
    let tl = run_frames(&frames);
    check(&tl);
}

#[test]
fn a_scene_cut_keyframe_does_not_overrun_target_duration() {
    // x264 restarts its GOP at a scene cut: keyframes at 0, 1.3 s, then every
    // 2 s from there, on a 2 s grid (fuzz reproducer: 0, 1 s, 2.5 s).
    let keys = [0i64, 39, 99, 159, 219, 279, 339, 399];
    let frames: Vec<(i64, bool)> = (0..420i64).map(|k| (k * 3000, keys.contains(&k))).collect();
    let tl = run_frames(&frames);
    check(&tl);
    let frames: Vec<(i64, bool)> = (0..300i64)
        .map(|k| (k * 3000, [0, 30, 75, 135, 195].contains(&k)))
        .collect();
    check(&run_frames(&frames));
}

#[test]
fn two_gateways_joining_at_different_keyframes_agree() {
    // Gateway B joins the same source 7.5 s later (mid-GOP): every segment
    // both publish has the same MSN, start, part URIs and durations.
    let full = run(cfg(2000, 200), &mut Source::new(3000, 30, 9_000_000), 2400);
    let mut late = Source::new(3000, 30, 9_000_000);
    late.next_video = 225;
    late.next_audio = 352; // the same instant on the audio clock
    let joined = run(cfg(2000, 200), &mut late, 2000);
    check(&full);
    check(&joined);
    assert_eq!(full.params, joined.params);
    let mut shared = 0;
    for (open, parts, duration) in joined.segments.iter().filter(|s| s.2.is_some()) {
        let Some((o, p, d)) = full
            .segments
            .iter()
            .find(|s| s.0.msn == open.msn && s.2.is_some())
        else {
            continue;
        };
        assert_eq!(o.start, open.start, "segment {}", open.msn);
        assert_eq!(d, duration);
        let seqs = |v: &[Part]| v.iter().map(|x| (x.seq, x.duration)).collect::<Vec<_>>();
        assert_eq!(seqs(p), seqs(parts), "segment {}", open.msn);
        shared += 1;
    }
    assert!(shared >= 8, "only {shared} segments in common");
    let mut shared_audio = 0;
    for (open, parts, duration) in joined.audio.iter().filter(|s| s.2.is_some()) {
        let Some((o, p, d)) = full
            .audio
            .iter()
            .find(|s| s.0.msn == open.msn && s.2.is_some())
        else {
            continue;
        };
        assert_eq!((o.start, d), (open.start, duration), "audio {}", open.msn);
        let seqs = |v: &[Part]| v.iter().map(|x| (x.seq, x.duration)).collect::<Vec<_>>();
        assert_eq!(seqs(p), seqs(parts), "audio segment {}", open.msn);
        shared_audio += 1;
    }
    assert!(
        shared_audio >= 8,
        "only {shared_audio} audio segments in common"
    );
}

#[test]
fn a_keyframe_interval_longer_than_the_first_gop_still_keeps_target_duration() {
    // The first GOP is 1 s (TARGETDURATION 4 on a 2 s grid); then the encoder
    // sends a keyframe only every 20 s (segmenter fuzz reproducer: a later GOP
    // of 258 NTSC frames gave an 8.6 s segment under TARGETDURATION 6).
    let frames: Vec<(i64, bool)> = (0..1300i64)
        .map(|k| (k * 3003, k == 0 || k == 30 || k % 600 == 0))
        .collect();
    let tl = run_frames(&frames);
    check(&tl);
    let params = tl.params.unwrap();
    assert_eq!(params.target_duration_secs, 4);
    let cut = tl.segments.iter().filter(|s| !s.1[0].independent).count();
    assert!(cut >= 8, "only {cut} segments cut without a keyframe");
    assert!(tl.warnings.iter().any(|w| w.contains("no keyframe for")));
    // The keyframes still open segments of their own.
    for k in [600i64, 1200] {
        assert!(
            tl.segments
                .iter()
                .any(|s| s.0.start == MediaTime(k * 3003) && s.1[0].independent)
        );
    }
}

#[test]
fn a_probe_whose_only_step_is_a_gap_keeps_target_duration() {
    // Segmenter fuzz reproducer (fuzz/seeds/segmenter/d_probe_gap_frame_estimate_over_target):
    // every frame a keyframe, the second 129 NTSC frames (4.3 s) after the
    // first. The probe ended at that second frame, so the nominal frame was
    // 4.3 s; a part published early gave its last frame that duration while
    // the next frame came 33 ms later: two such parts made an 8.6 s segment
    // under TARGETDURATION 6. Now the probe waits for more frames, and
    // `must_cut` keeps EXTINF within TARGETDURATION whatever the estimate.
    let mut seg = Segmenter::new(cfg(2000, 200));
    seg.push_codec(video_codec()).unwrap();
    seg.push_codec(audio_codec()).unwrap();
    let mut tl = Timeline::default();
    let origin = 5_255_018_809;
    let frames = std::iter::once(0).chain(129..200);
    for (i, k) in frames.enumerate() {
        let dts = origin + k * 3003;
        seg.push_sample(Sample {
            track: TrackKind::Video,
            dts: MediaTime(dts),
            pts: MediaTime(dts + 3003),
            keyframe: true,
            data: Bytes::from(vec![0u8; 57]),
            arrival: WallTime(dts * 100 / 9),
        })
        .unwrap();
        drain(&mut seg, &mut tl, i);
    }
    seg.push_discontinuity();
    drain(&mut seg, &mut tl, 72);
    check(&tl);
    assert_eq!(tl.params.unwrap().part_target, MediaTime(6 * 3003));
    assert!(tl.segments.iter().all(|s| s.2.is_some()));
}

// An ABR ladder rung is cut by a second segmenter fed the transcoded video:
// the same frame times and keyframes, other bytes, no audio. The grid (MSNs,
// part indices, part URI numbers, durations) is a function of media time
// alone, so the rung's playlist lines up with the source's.

/// (kind, msn or part number, part index, duration) of every video output.
type LadderGrid = Vec<(&'static str, u64, u32, i64)>;

fn collect_video(seg: &mut Segmenter, grid: &mut LadderGrid) {
    while let Some(out) = seg.poll_output() {
        match out {
            Output::Part {
                track: TrackKind::Video,
                open,
                part,
                ..
            } => {
                if let Some(o) = open {
                    grid.push(("open", o.msn.0, 0, o.program_date_time.0));
                }
                grid.push(("part", part.seq.0, part.index.0, part.duration.0));
            }
            Output::SegmentEnd {
                track: TrackKind::Video,
                duration,
            } => grid.push(("end", 0, 0, duration.0)),
            _ => {}
        }
    }
}

#[test]
fn a_second_segmenter_fed_the_same_frame_times_cuts_the_same_grid() {
    let cfg = SegmenterConfig {
        segment_duration: MediaTime::from_millis(1000),
        part_target: MediaTime::from_millis(200),
    };
    let (mut source, mut rung) = (Segmenter::new(cfg), Segmenter::new(cfg));
    source.push_codec(video_sized(1280, 720)).unwrap();
    source.push_codec(audio_codec()).unwrap();
    rung.push_codec(video_sized(640, 360)).unwrap();
    let (mut a, mut b) = (LadderGrid::new(), LadderGrid::new());
    // 29.97 fps, a keyframe every 30 frames (not on the 1 s grid), from an
    // arbitrary origin; audio interleaved 150 ms late as TS muxers send it.
    let origin = 8_100_123;
    let frame = 3003;
    let aac = 1920;
    let mut next_audio = 0i64;
    for n in 0..400i64 {
        let dts = MediaTime(origin + n * frame);
        let arrival = WallTime(1_700_000_000_000_000 + n * 33_367);
        while origin + next_audio * aac + 13_500 <= dts.0 {
            let t = MediaTime(origin + next_audio * aac);
            source
                .push_sample(Sample {
                    track: TrackKind::Audio,
                    dts: t,
                    pts: t,
                    keyframe: true,
                    data: Bytes::from_static(&[0x21; 300]),
                    arrival,
                })
                .unwrap();
            next_audio += 1;
        }
        let keyframe = n % 30 == 0;
        let sample = |size: usize| Sample {
            track: TrackKind::Video,
            dts,
            pts: dts,
            keyframe,
            data: Bytes::from(vec![0x65; size]),
            arrival,
        };
        source
            .push_sample(sample(if keyframe { 9000 } else { 1200 }))
            .unwrap();
        // The transcoder's output arrives later, in another size.
        rung.push_sample(sample(if keyframe { 3000 } else { 400 }))
            .unwrap();
        collect_video(&mut source, &mut a);
        collect_video(&mut rung, &mut b);
    }
    source.finish();
    rung.finish();
    collect_video(&mut source, &mut a);
    collect_video(&mut rung, &mut b);
    assert_eq!(
        source.params(),
        rung.params(),
        "TARGETDURATION, PART-TARGET"
    );
    assert!(a.iter().filter(|g| g.0 == "end").count() >= 10, "{a:?}");
    assert_eq!(a, b, "MSNs, part numbers, indices, durations and PDTs");
}
