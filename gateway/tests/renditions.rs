//! Renditions with real peers: ffmpeg publishes H.264 + AAC over SRT; the real
//! `dropline` binary serves a video and an audio rendition. Checks that the
//! multivariant playlist declares the audio group, that both media playlists
//! have the same MSNs, part counts and part URIs, report each other, and that
//! each rendition's init + segments decode with ffprobe (an independent
//! demuxer) as a single-track file starting at the same media time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod support;

use std::process::Command;
use std::time::Duration;

use support::gateway::{BASE_CONFIG, Gateway};
use support::peers::publish_av;
use support::playlist::MediaPlaylist;
use support::poll;

const SOON: Duration = Duration::from_secs(30);

fn media(gw: &Gateway, rendition: &str) -> MediaPlaylist {
    let r = gw.get(&format!("/av/{rendition}/playlist.m3u8"));
    assert_eq!(r.status, 200, "{rendition}: {}", r.text());
    MediaPlaylist::parse(&r.text()).unwrap()
}

/// ffprobe on init + the given segments of a rendition, as a file (from a pipe
/// ffprobe only measures what it probed): (codec, start time, end time) of
/// each stream (ffprobe's `duration` of a fragmented MP4 counts from 0).
fn probe(gw: &Gateway, rendition: &str, msns: &[u64]) -> Vec<(String, f64, f64)> {
    let mut file = gw.get(&format!("/av/{rendition}/init0.mp4")).body;
    for msn in msns {
        let r = gw.get(&format!("/av/{rendition}/seg{msn}.m4s"));
        assert_eq!(r.status, 200, "{rendition} seg{msn}");
        file.extend_from_slice(&r.body);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{rendition}.mp4"));
    std::fs::write(&path, &file).unwrap();
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,start_time,duration",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe must be installed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].to_owned(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn audio_is_a_rendition_cut_on_the_video_boundaries() {
    let gw = Gateway::start(BASE_CONFIG);
    let mut publisher = publish_av(gw.srt, "publish:av", "");
    // Three complete segments in both renditions.
    poll(SOON, Duration::from_millis(200), || {
        let ok = ["main", "audio"].iter().all(|r| {
            let res = gw.get(&format!("/av/{r}/playlist.m3u8"));
            res.status == 200
                && MediaPlaylist::parse(&res.text()).is_ok_and(|p| p.segments.len() >= 3)
        });
        ok.then_some(())
    })
    .unwrap_or_else(|| gw.fail("no three complete segments in both renditions"));
    publisher.assert_running();

    let multivariant = gw.get("/av/index.m3u8").text();
    assert!(
        multivariant.contains(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,\
             CHANNELS=\"1\",URI=\"audio/playlist.m3u8\""
        ),
        "{multivariant}"
    );
    assert!(multivariant.contains(",mp4a.40.2\""), "{multivariant}");
    assert!(
        multivariant.contains(",AUDIO=\"audio\"\nmain/playlist.m3u8"),
        "{multivariant}"
    );

    let video = media(&gw, "main");
    let audio = media(&gw, "audio");
    assert!(
        video
            .text
            .contains("#EXT-X-RENDITION-REPORT:URI=\"../audio/playlist.m3u8\"")
    );
    assert!(
        audio
            .text
            .contains("#EXT-X-RENDITION-REPORT:URI=\"../main/playlist.m3u8\"")
    );
    // Same MSNs and part counts for every segment both list as complete.
    let mut shared = Vec::new();
    for a in &audio.segments {
        if let Some(v) = video.segments.iter().find(|v| v.msn == a.msn) {
            if v.parts > 0 && a.parts > 0 {
                assert_eq!(a.parts, v.parts, "parts of segment {}", a.msn);
            }
            assert!(
                (a.duration - v.duration).abs() < 0.05,
                "EXTINF of {}",
                a.msn
            );
            shared.push(a.msn);
        }
    }
    assert!(shared.len() >= 3, "segments in both: {shared:?}");
    // Same part URIs in the segment in progress (audio may trail by none: video
    // waits for its audio).
    let uris = |p: &MediaPlaylist| {
        p.text
            .lines()
            .filter(|l| l.starts_with("#EXT-X-PART:"))
            .filter_map(|l| {
                l.split("URI=\"")
                    .nth(1)?
                    .split('"')
                    .next()
                    .map(str::to_owned)
            })
            .collect::<Vec<_>>()
    };
    let (vu, au) = (uris(&video), uris(&audio));
    let common: Vec<_> = vu.iter().filter(|u| au.contains(u)).collect();
    assert!(
        common.len() >= 5,
        "part URIs in common: video {vu:?} audio {au:?}"
    );

    // Each rendition decodes as one track, and both start at the same time.
    let last3 = &shared[shared.len() - 3..];
    let v = probe(&gw, "main", last3);
    let a = probe(&gw, "audio", last3);
    eprintln!("video {v:?}\naudio {a:?}");
    assert_eq!(v.len(), 1, "video rendition: one track: {v:?}");
    assert_eq!(a.len(), 1, "audio rendition: one track: {a:?}");
    assert_eq!(v[0].0, "h264");
    assert_eq!(a[0].0, "aac");
    assert!((v[0].1 - a[0].1).abs() < 0.03, "start times {v:?} {a:?}");
    assert!((v[0].2 - a[0].2).abs() < 0.05, "end times {v:?} {a:?}");
    // Three segments of the 1 s grid: about 3 s of media in each.
    assert!((v[0].2 - v[0].1 - 3.0).abs() < 0.1, "video spans {v:?}");
    publisher.stop();
}
