//! Golden playlists: hand-built snapshots rendered and compared byte for byte
//! with `fixtures/golden/playlist/*.m3u8`. `UPDATE_GOLDEN=1 cargo test -p
//! packager` rewrites the files; review the diff. The same files are checked by
//! an independent parser (`fixtures/golden/playlist/check_m3u8.py`, Python
//! `m3u8`).

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use crate::directives::Skip;
use crate::playlist::{
    AudioRendition, MediaRenderOptions, RenditionReport, Variant, render_media_playlist,
    render_media_playlist_delta, render_media_playlist_with_metadata,
    render_media_playlist_with_reports, render_multivariant,
};
use crate::rendition::{OpenSegment, Part, PlaylistParams, RenditionSnapshot, Segment};
use crate::units::{InitId, MediaTime, Msn, PartIndex, PartSeq, WallTime};

/// 2026-11-26T07:00:00.000Z
const T0_MS: i64 = 1_795_676_400_000;

const CASES: &[&str] = &[
    "empty_open.m3u8",
    "live_window.m3u8",
    "discontinuity_mid_window.m3u8",
    "discontinuity_sequence.m3u8",
    "ended.m3u8",
    "part_window.m3u8",
    "delta_capable.m3u8",
    "new_codec_after_reconnect.m3u8",
    "delta_live.m3u8",
    "delta_discontinuity_skipped.m3u8",
    "delta_none_skippable.m3u8",
    "delta_dateranges.m3u8",
    "multivariant.m3u8",
    "multivariant_audio.m3u8",
    "video_with_rendition_report.m3u8",
    "audio_rendition.m3u8",
];

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/golden/playlist")
}

fn check(name: &str, actual: &str) {
    assert!(CASES.contains(&name), "{name} is missing from CASES");
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(golden_dir()).expect("create golden dir");
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run `UPDATE_GOLDEN=1 cargo test -p packager` to create it)",
            path.display()
        )
    });
    assert!(
        actual == expected,
        "{} differs from the rendering (UPDATE_GOLDEN=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// Builds a snapshot segment by segment, keeping media time, wall time and
/// part sequence numbers consistent.
pub(super) struct Builder {
    params: PlaylistParams,
    msn: u64,
    seq: u64,
    media: MediaTime,
    wall: WallTime,
    segments: Vec<Arc<Segment>>,
    open: Option<OpenSegment>,
    init: InitId,
}

impl Builder {
    pub(super) fn new(
        target_duration_secs: u32,
        part_target: MediaTime,
        msn: u64,
        seq: u64,
    ) -> Self {
        Self {
            params: PlaylistParams {
                target_duration_secs,
                part_target,
            },
            msn,
            seq,
            media: MediaTime(900_000),
            wall: WallTime::from_millis(T0_MS),
            segments: Vec::new(),
            open: None,
            init: InitId(0),
        }
    }

    /// Segments from now on use a new init segment (new codec parameters).
    pub(super) fn new_init(&mut self) -> &mut Self {
        self.init = InitId(self.init.0 + 1);
        self
    }

    /// Wall clock moves on without media (an encoder reconnect before a
    /// discontinuity).
    pub(super) fn gap_ms(&mut self, ms: i64) -> &mut Self {
        self.wall = self.wall.offset(MediaTime::from_millis(ms));
        self
    }

    fn parts(&mut self, durations: &[i64]) -> Vec<Arc<Part>> {
        durations
            .iter()
            .enumerate()
            .map(|(i, &ticks)| {
                let p = Arc::new(Part {
                    seq: PartSeq(self.seq),
                    index: PartIndex(u32::try_from(i).expect("few parts")),
                    duration: MediaTime(ticks),
                    independent: i == 0,
                    gap: false,
                    data: Bytes::new(),
                });
                self.seq += 1;
                p
            })
            .collect()
    }

    pub(super) fn segment(&mut self, durations: &[i64], discontinuity: bool) -> &mut Self {
        let parts = self.parts(durations);
        let duration = MediaTime(durations.iter().sum());
        self.segments.push(Arc::new(Segment {
            msn: Msn(self.msn),
            start: self.media,
            duration,
            program_date_time: self.wall,
            discontinuity,
            init: self.init,
            parts,
            data: Bytes::new(),
        }));
        self.msn += 1;
        self.media = self.media + duration;
        self.wall = self.wall.offset(duration);
        self
    }

    pub(super) fn open(&mut self, durations: &[i64], discontinuity: bool) -> &mut Self {
        let parts = self.parts(durations);
        self.open = Some(OpenSegment {
            msn: Msn(self.msn),
            start: self.media,
            program_date_time: self.wall,
            discontinuity,
            init: self.init,
            parts,
        });
        self
    }

    pub(super) fn live(&self, discontinuity_sequence: u64) -> RenditionSnapshot {
        RenditionSnapshot {
            params: self.params,
            inits: (0..=self.init.0)
                .map(|i| (InitId(i), Bytes::new()))
                .collect(),
            discontinuity_sequence,
            segments: self.segments.clone(),
            open: self.open.clone(),
            retired_parts: Vec::new(),
            next_part: Some(PartSeq(self.seq)),
            ended: false,
        }
    }

    pub(super) fn ended(&self) -> RenditionSnapshot {
        RenditionSnapshot {
            open: None,
            next_part: None,
            ended: true,
            ..self.live(0)
        }
    }
}

/// 0.5 s parts and 2 s target duration: four parts per segment.
pub(super) const HALF: i64 = 45_000;
pub(super) const FULL: [i64; 4] = [HALF; 4];

fn render(s: &RenditionSnapshot) -> String {
    render_media_playlist(s, &MediaRenderOptions::for_params(&s.params))
}

#[test]
fn empty_open() {
    // First part of a stream: 0.2002 s (six frames at 29.97 fps), 1 s target.
    let part_target = MediaTime(18_018);
    let s = Builder::new(1, part_target, 0, 0)
        .open(&[18_018], false)
        .live(0);
    check("empty_open.m3u8", &render(&s));
}

#[test]
fn live_window() {
    let s = Builder::new(2, MediaTime(HALF), 10, 40)
        .segment(&FULL, false)
        .segment(&FULL, false)
        .segment(&FULL, false)
        .open(&[HALF, HALF], false)
        .live(0);
    check("live_window.m3u8", &render(&s));
}

#[test]
fn discontinuity_mid_window() {
    // Segment 22 follows a publisher reconnect: 1.5 s of wall time without media.
    // The last part of each segment is short (0.33367 s).
    let uneven = [HALF, HALF, HALF, 30_030];
    let s = Builder::new(2, MediaTime(HALF), 20, 80)
        .segment(&uneven, false)
        .segment(&uneven, false)
        .gap_ms(1500)
        .segment(&uneven, true)
        .segment(&uneven, false)
        .open(&[HALF], false)
        .live(0);
    check("discontinuity_mid_window.m3u8", &render(&s));
}

#[test]
fn discontinuity_sequence() {
    // Three discontinuities already left the window; the first listed segment
    // carried the third (its number, 3, is the tag value; no tag before it), and
    // the segment in progress starts a fourth.
    let s = Builder::new(2, MediaTime(HALF), 100, 400)
        .segment(&FULL, true)
        .segment(&FULL, false)
        .segment(&FULL, false)
        .gap_ms(800)
        .open(&[HALF, HALF, HALF], true)
        .live(3);
    check("discontinuity_sequence.m3u8", &render(&s));
}

#[test]
fn new_codec_after_reconnect() {
    // The publisher came back with other codec parameters: the discontinuity
    // carries a new EXT-X-MAP, before the segment's first part.
    let s = Builder::new(2, MediaTime(HALF), 30, 120)
        .segment(&FULL, false)
        .segment(&FULL, false)
        .gap_ms(500)
        .new_init()
        .segment(&FULL, true)
        .open(&[HALF], false)
        .live(0);
    check("new_codec_after_reconnect.m3u8", &render(&s));
}

#[test]
fn ended() {
    let s = Builder::new(2, MediaTime(HALF), 0, 0)
        .segment(&FULL, false)
        .segment(&FULL, false)
        .segment(&[HALF, 20_000], false)
        .ended();
    check("ended.m3u8", &render(&s));
}

#[test]
fn part_window() {
    // Six complete 2 s segments: the ends of 50, 51 and 52 lie more than 6 s
    // (3 × target duration) before the live end, so their parts are not listed.
    let mut b = Builder::new(2, MediaTime(HALF), 50, 200);
    for _ in 0..6 {
        b.segment(&FULL, false);
    }
    let s = b.open(&[HALF], false).live(0);
    check("part_window.m3u8", &render(&s));
}

#[test]
fn delta_capable() {
    let s = Builder::new(2, MediaTime(HALF), 10, 40)
        .segment(&FULL, false)
        .segment(&FULL, false)
        .open(&[HALF], false)
        .live(0);
    let opts = MediaRenderOptions::new(
        &s.params,
        MediaTime::from_millis(1500),
        Some(MediaTime::from_millis(6000)),
        Some(MediaTime::from_millis(12_000)),
    )
    .expect("valid options");
    check("delta_capable.m3u8", &render_media_playlist(&s, &opts));
}

fn render_delta(s: &RenditionSnapshot) -> String {
    render_media_playlist_delta(s, &MediaRenderOptions::for_params(&s.params), Skip::Yes)
}

#[test]
fn delta_live() {
    // Ten 2 s segments, CAN-SKIP-UNTIL 12 s: the ends of 60, 61 and 62 lie 18,
    // 16 and 14 s before the end of the last segment (69), so they are skipped;
    // 63 ends exactly 12 s before it and stays.
    let mut b = Builder::new(2, MediaTime(HALF), 60, 240);
    for _ in 0..10 {
        b.segment(&FULL, false);
    }
    let s = b.open(&[HALF, HALF], false).live(0);
    check("delta_live.m3u8", &render_delta(&s));
}

#[test]
fn delta_dateranges() {
    // delta_live with two cues, as the overlay renders them: one that started
    // in skipped segment 61 and one in the segment in progress. With
    // _HLS_skip=YES both stay (no CAN-SKIP-DATERANGES is offered), with the
    // same attributes as in the full playlist and the other renditions'.
    let mut b = Builder::new(2, MediaTime(HALF), 60, 240);
    for _ in 0..10 {
        b.segment(&FULL, false);
    }
    let s = b.open(&[HALF, HALF], false).live(0);
    let dateranges = [
        "#EXT-X-DATERANGE:ID=\"card-1\",CLASS=\"com.dropline.product-card\",\
         START-DATE=\"2026-11-26T07:00:02.500Z\",X-PAYLOAD=\"eyJpZCI6ImNhcmQtMSJ9\""
            .to_owned(),
        "#EXT-X-DATERANGE:ID=\"offer-7\",CLASS=\"com.dropline.offer-open\",\
         START-DATE=\"2026-11-26T07:00:20.250Z\",DURATION=30.0,X-PAYLOAD=\"eyJpZCI6Im9mZmVyLTcifQ\""
            .to_owned(),
        // Not one tag on one line: left out.
        "#EXT-X-DATERANGE:ID=\"x\"\n#EXT-X-ENDLIST".to_owned(),
    ];
    let opts = MediaRenderOptions::for_params(&s.params);
    let text = render_media_playlist_with_metadata(&s, &opts, Some(Skip::Yes), &[], &dateranges);
    let full = render_media_playlist_with_metadata(&s, &opts, None, &[], &dateranges);
    for line in &dateranges[..2] {
        assert_eq!(
            full.matches(line.as_str()).count(),
            1,
            "full playlist: {line}"
        );
    }
    assert!(!full.contains("ID=\"x\""));
    check("delta_dateranges.m3u8", &text);
}

#[test]
fn no_daterange_without_a_program_date_time() {
    let s = Builder::new(2, MediaTime(HALF), 0, 0).live(0);
    let line = ["#EXT-X-DATERANGE:ID=\"a\",START-DATE=\"2026-11-26T07:00:00.000Z\"".to_owned()];
    let opts = MediaRenderOptions::for_params(&s.params);
    let text = render_media_playlist_with_metadata(&s, &opts, None, &[], &line);
    assert!(!text.contains("DATERANGE"), "{text}");
}

#[test]
fn delta_discontinuity_skipped() {
    // A reconnect with new codec parameters at 71 (skipped) and another at 73,
    // the first listed segment: the skipped discontinuity leaves
    // EXT-X-DISCONTINUITY-SEQUENCE as it was, and 73 writes its
    // EXT-X-DISCONTINUITY and then the EXT-X-MAP in effect for it.
    let mut b = Builder::new(2, MediaTime(HALF), 70, 280);
    b.segment(&FULL, false)
        .gap_ms(700)
        .new_init()
        .segment(&FULL, true)
        .segment(&FULL, false)
        .gap_ms(300)
        .new_init()
        .segment(&FULL, true);
    for _ in 0..6 {
        b.segment(&FULL, false);
    }
    let s = b.open(&[HALF], false).live(2);
    check("delta_discontinuity_skipped.m3u8", &render_delta(&s));
}

#[test]
fn delta_none_skippable() {
    // Three segments cannot reach past a 12 s boundary: nothing is skipped, the
    // answer is still a delta update (SKIPPED-SEGMENTS=0).
    let s = Builder::new(2, MediaTime(HALF), 10, 40)
        .segment(&FULL, false)
        .segment(&FULL, false)
        .segment(&FULL, false)
        .open(&[HALF], false)
        .live(0);
    check("delta_none_skippable.m3u8", &render_delta(&s));
}

#[test]
fn multivariant() {
    let variants = [
        Variant {
            uri: "main/playlist.m3u8".to_owned(),
            bandwidth: 3_200_000,
            average_bandwidth: Some(2_800_000),
            codecs: "avc1.64001f,mp4a.40.2".to_owned(),
            resolution: Some((1280, 720)),
            frame_rate: Some(30_000.0 / 1001.0),
            audio_group: None,
        },
        Variant {
            uri: "low/playlist.m3u8".to_owned(),
            bandwidth: 900_000,
            average_bandwidth: None,
            codecs: "avc1.42e01e,mp4a.40.2".to_owned(),
            resolution: Some((640, 360)),
            frame_rate: Some(25.0),
            audio_group: None,
        },
    ];
    let text = render_multivariant(&variants, &[]).expect("valid variants");
    check("multivariant.m3u8", &text);
}

#[test]
fn multivariant_with_an_audio_rendition() {
    // Video and audio as separate renditions: BANDWIDTH is the sum of the
    // video and audio peaks, CODECS lists both.
    let variants = [Variant {
        uri: "main/playlist.m3u8".to_owned(),
        bandwidth: 3_328_000,
        average_bandwidth: Some(2_928_000),
        codecs: "avc1.64001f,mp4a.40.2".to_owned(),
        resolution: Some((1280, 720)),
        frame_rate: Some(30_000.0 / 1001.0),
        audio_group: Some("audio".to_owned()),
    }];
    let audio = [AudioRendition {
        group_id: "audio".to_owned(),
        name: "audio".to_owned(),
        uri: "audio/playlist.m3u8".to_owned(),
        channels: 2,
        default: true,
    }];
    let text = render_multivariant(&variants, &audio).expect("valid variants");
    check("multivariant_audio.m3u8", &text);
}

#[test]
fn video_with_rendition_report() {
    // The video playlist reports where the audio rendition stands: the same
    // MSN, and a part behind (its frames trail the video's in the TS mux).
    let s = Builder::new(2, MediaTime(HALF), 10, 40)
        .segment(&FULL, false)
        .segment(&FULL, false)
        .open(&[HALF, HALF], false)
        .live(0);
    let audio = Builder::new(2, MediaTime(46_080), 10, 40)
        .segment(&[46_080, 44_160, 44_160, 46_080], false)
        .segment(&[44_160, 46_080, 44_160, 46_080], false)
        .open(&[44_160], false)
        .live(0);
    let reports = [RenditionReport::of("audio", &audio).expect("parts")];
    let opts = MediaRenderOptions::for_params(&audio.params);
    let text = render_media_playlist_with_reports(&s, &opts, None, &reports);
    check("video_with_rendition_report.m3u8", &text);
}

#[test]
fn audio_rendition() {
    // The audio playlist: whole AAC frames (48 kHz: 1920 ticks each), so its
    // PART-TARGET is its own; a part with no audio is a GAP; the video
    // rendition is reported.
    let mut b = Builder::new(2, MediaTime(46_080), 10, 40);
    b.segment(&[46_080, 44_160, 44_160, 46_080], false)
        .segment(&[44_160, 46_080, 44_160, 46_080], false)
        .open(&[44_160, 46_080], false);
    let mut s = b.live(0);
    if let Some(open) = s.open.as_mut()
        && let Some(last) = open.parts.last_mut()
    {
        *last = Arc::new(Part {
            seq: last.seq,
            index: last.index,
            duration: MediaTime(HALF),
            independent: true,
            gap: true,
            data: Bytes::new(),
        });
    }
    let video = Builder::new(2, MediaTime(HALF), 10, 40)
        .segment(&FULL, false)
        .segment(&FULL, false)
        .open(&[HALF, HALF, HALF], false)
        .live(0);
    let reports = [RenditionReport::of("main", &video).expect("parts")];
    // The same EXT-X-SERVER-CONTROL in every rendition, from the longest
    // PART-TARGET (the audio's).
    let opts = MediaRenderOptions::for_params(&s.params);
    let text = render_media_playlist_with_reports(&s, &opts, None, &reports);
    check("audio_rendition.m3u8", &text);
}

#[test]
fn every_golden_file_has_a_case() {
    let Ok(entries) = std::fs::read_dir(golden_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".m3u8") {
            assert!(CASES.contains(&name.as_str()), "stale golden file {name}");
        }
    }
}
