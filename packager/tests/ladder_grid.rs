//! An ABR ladder rung is cut by a second segmenter fed the transcoded video:
//! the same frame times and keyframes, other bytes, no audio. The grid (MSNs,
//! part indices, part URI numbers, durations) is a function of media time
//! alone, so the rung's playlist lines up with the source's.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use bytes::Bytes;
use packager::sample::{Codec, Sample, TrackKind};
use packager::segmenter::{Output, Segmenter, SegmenterConfig};
use packager::units::{MediaTime, WallTime};

/// A Baseline-profile avcC with a 320x240 SPS: the grid does not depend on
/// the parameter sets, the init segment needs some.
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

fn video(width: u16, height: u16) -> Codec {
    Codec::H264 {
        avcc: avcc(),
        width,
        height,
    }
}

/// (kind, msn or part number, part index, duration) of every video output.
type Grid = Vec<(&'static str, u64, u32, i64)>;

fn collect(seg: &mut Segmenter, grid: &mut Grid) {
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
    source.push_codec(video(1280, 720)).unwrap();
    source
        .push_codec(Codec::Aac {
            audio_specific_config: Bytes::from_static(&[0x11, 0x90]),
            sample_rate: 48_000,
            channels: 2,
        })
        .unwrap();
    rung.push_codec(video(640, 360)).unwrap();
    let (mut a, mut b) = (Grid::new(), Grid::new());
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
        collect(&mut source, &mut a);
        collect(&mut rung, &mut b);
    }
    source.finish();
    rung.finish();
    collect(&mut source, &mut a);
    collect(&mut rung, &mut b);
    assert_eq!(
        source.params(),
        rung.params(),
        "TARGETDURATION, PART-TARGET"
    );
    assert!(a.iter().filter(|g| g.0 == "end").count() >= 10, "{a:?}");
    assert_eq!(a, b, "MSNs, part numbers, indices, durations and PDTs");
}
