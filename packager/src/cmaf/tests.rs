//! End-to-end check of the CMAF writers with real encoder output
//! (`fixtures/media/`, see its README): write init + fragments to a file and let
//! ffprobe, which shares no code with us, decode it.

use std::path::PathBuf;
use std::process::Command;

use bytes::Bytes;

use super::{FragmentSample, TrackRun, TrackSpec, fragment, init_segment};
use crate::sample::Codec;

const AVCC: &[u8] = include_bytes!("../../../fixtures/media/h264.avcc");
const ASC: &[u8] = include_bytes!("../../../fixtures/media/aac.asc");
const VIDEO: &[u8] = include_bytes!("../../../fixtures/media/video.bin");
const VIDEO_CSV: &str = include_str!("../../../fixtures/media/video.csv");
const AUDIO: &[u8] = include_bytes!("../../../fixtures/media/audio.bin");
const AUDIO_CSV: &str = include_str!("../../../fixtures/media/audio.csv");

const VIDEO_ID: u32 = 1;
const AUDIO_ID: u32 = 2;
const VIDEO_TIMESCALE: u64 = 90_000;
const AUDIO_RATE: u64 = 48_000;
/// PCM frames per AAC-LC access unit. The fixture's CSV keeps ffmpeg's priming-
/// adjusted first/last durations; a packager lays frames back to back at 1024.
const AAC_FRAME: u32 = 1024;

/// Samples from a fixture: the CSV gives `size,duration,composition_offset,keyframe`
/// per line, the bin file the data back to back.
fn load(bin: &[u8], csv: &str) -> Vec<FragmentSample> {
    let mut at = 0;
    let samples: Vec<FragmentSample> = csv
        .lines()
        .map(|line| {
            let f: Vec<i64> = line.split(',').map(|v| v.parse().unwrap()).collect();
            let [size, duration, cts, key] = f[..] else {
                panic!("bad fixture line {line:?}");
            };
            let size = usize::try_from(size).unwrap();
            at += size;
            FragmentSample {
                duration: u32::try_from(duration).unwrap(),
                composition_offset: i32::try_from(cts).unwrap(),
                keyframe: key == 1,
                data: Bytes::copy_from_slice(&bin[at - size..at]),
            }
        })
        .collect();
    assert_eq!(at, bin.len(), "CSV sizes must cover the whole bin file");
    samples
}

fn tracks() -> [TrackSpec; 2] {
    [
        TrackSpec {
            track_id: VIDEO_ID,
            codec: Codec::H264 {
                avcc: Bytes::from_static(AVCC),
                width: 320,
                height: 240,
            },
        },
        TrackSpec {
            track_id: AUDIO_ID,
            codec: Codec::Aac {
                audio_specific_config: Bytes::from_static(ASC),
                sample_rate: 48_000,
                channels: 2,
            },
        },
    ]
}

/// One fragment per `VIDEO_PER_FRAGMENT` video samples, each with the audio frames
/// that start before the fragment's video ends (as the segmenter interleaves them).
/// Fragments need not start on a keyframe for a decoder reading the whole file.
fn fragments() -> Vec<Bytes> {
    const VIDEO_PER_FRAGMENT: usize = 10;
    let video = load(VIDEO, VIDEO_CSV);
    let mut audio = load(AUDIO, AUDIO_CSV);
    for a in &mut audio {
        a.duration = AAC_FRAME;
    }

    let mut out = Vec::new();
    let (mut video_dts, mut audio_next) = (0u64, 0usize);
    for (seq, chunk) in video.chunks(VIDEO_PER_FRAGMENT).enumerate() {
        let video_end: u64 = video_dts + chunk.iter().map(|s| u64::from(s.duration)).sum::<u64>();
        let audio_start = audio_next;
        // Audio frame k starts at k·1024/48000 s; keep those before video_end/90000 s
        // (all of them in the last fragment).
        while audio_next < audio.len()
            && (u64::try_from(audio_next).unwrap() * u64::from(AAC_FRAME) * VIDEO_TIMESCALE
                < video_end * AUDIO_RATE
                || seq == video.len().div_ceil(VIDEO_PER_FRAGMENT) - 1)
        {
            audio_next += 1;
        }
        let runs = [
            TrackRun {
                track_id: VIDEO_ID,
                base_decode_time: video_dts,
                samples: chunk.to_vec(),
            },
            TrackRun {
                track_id: AUDIO_ID,
                base_decode_time: u64::try_from(audio_start).unwrap() * u64::from(AAC_FRAME),
                samples: audio[audio_start..audio_next].to_vec(),
            },
        ];
        out.push(fragment(u32::try_from(seq + 1).unwrap(), &runs).unwrap());
        video_dts = video_end;
    }
    assert_eq!(audio_next, audio.len());
    out
}

/// A per-test scratch directory (no tempfile crate: std is enough here).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("dropline-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ffprobe(args: &[&str], file: &std::path::Path) -> Option<(String, String)> {
    match Command::new("ffprobe").args(args).arg(file).output() {
        Ok(out) => {
            assert!(out.status.success(), "ffprobe failed: {out:?}");
            Some((
                String::from_utf8(out.stdout).unwrap(),
                String::from_utf8(out.stderr).unwrap(),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("cannot run ffprobe: {e}"),
    }
}

/// `key=value` lines of each `[TAG]…[/TAG]` section of ffprobe's default output.
fn sections(text: &str, tag: &str) -> Vec<Vec<(String, String)>> {
    let (open, close) = (format!("[{tag}]"), format!("[/{tag}]"));
    let mut out = Vec::new();
    let mut cur: Option<Vec<(String, String)>> = None;
    for line in text.lines() {
        if line == open {
            cur = Some(Vec::new());
        } else if line == close {
            out.extend(cur.take());
        } else if let (Some(c), Some((k, v))) = (cur.as_mut(), line.split_once('=')) {
            c.push((k.to_owned(), v.to_owned()));
        }
    }
    out
}

fn field<'a>(section: &'a [(String, String)], key: &str) -> &'a str {
    section
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {section:?}"))
}

#[test]
fn ffprobe_decodes_init_plus_fragments() {
    let init = init_segment(&tracks()).unwrap();
    let frags = fragments();
    assert_eq!(frags.len(), 3);

    let dir = ScratchDir::new("cmaf");
    let path = dir.0.join("av.mp4");
    let mut file = init.to_vec();
    for f in &frags {
        file.extend_from_slice(f);
    }
    std::fs::write(&path, &file).unwrap();

    let Some((out, err)) = ffprobe(&["-v", "error", "-show_streams", "-count_frames"], &path)
    else {
        eprintln!("NOTICE: ffprobe is not on PATH; skipping the ffprobe cross-check");
        return;
    };
    assert_eq!(err, "", "ffprobe reported errors");
    let streams = sections(&out, "STREAM");
    assert_eq!(streams.len(), 2, "{out}");
    let v = &streams[0];
    assert_eq!(field(v, "codec_name"), "h264");
    assert_eq!(field(v, "profile"), "High");
    assert_eq!((field(v, "width"), field(v, "height")), ("320", "240"));
    assert_eq!(field(v, "nb_read_frames"), "25");
    let a = &streams[1];
    assert_eq!(field(a, "codec_name"), "aac");
    assert_eq!(field(a, "profile"), "LC");
    assert_eq!(field(a, "sample_rate"), "48000");
    assert_eq!(field(a, "channels"), "2");
    assert_eq!(field(a, "nb_read_frames"), "48");

    // Packet level: every sample where we put it, with our timestamps and flags.
    let (out, _) = ffprobe(
        &[
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,pts,dts,size,flags",
        ],
        &path,
    )
    .unwrap();
    let packets = sections(&out, "PACKET");
    let video = load(VIDEO, VIDEO_CSV);
    let audio = load(AUDIO, AUDIO_CSV);
    let mut dts = 0i64;
    let got_video: Vec<_> = packets
        .iter()
        .filter(|p| field(p, "stream_index") == "0")
        .collect();
    assert_eq!(got_video.len(), video.len());
    for (p, s) in got_video.iter().zip(&video) {
        assert_eq!(field(p, "size"), s.data.len().to_string());
        assert_eq!(field(p, "dts"), dts.to_string());
        assert_eq!(
            field(p, "pts"),
            (dts + i64::from(s.composition_offset)).to_string()
        );
        assert_eq!(field(p, "flags").starts_with('K'), s.keyframe);
        dts += i64::from(s.duration);
    }
    let got_audio: Vec<_> = packets
        .iter()
        .filter(|p| field(p, "stream_index") == "1")
        .collect();
    assert_eq!(got_audio.len(), audio.len());
    for (k, (p, s)) in got_audio.iter().zip(&audio).enumerate() {
        assert_eq!(field(p, "size"), s.data.len().to_string());
        assert_eq!(field(p, "dts"), (k * 1024).to_string());
        assert!(field(p, "flags").starts_with('K'));
    }
}
