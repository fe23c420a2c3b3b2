//! The ABR ladder with real peers: ffmpeg publishes 960x540 H.264 with
//! B-frames (as many venue encoders send: frames arrive out of presentation
//! order) + AAC over SRT; the real `dropline` binary, configured with one 360p
//! rung (no B-frames), serves it besides the source. Checks the multivariant playlist's two variants, that
//! the rung's media playlist has the source's MSNs, part counts and durations,
//! that every media playlist reports every other rendition, and that ffprobe
//! (an independent decoder) reads a rung segment as 640x360 H.264.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod support;

use std::process::Command;
use std::time::Duration;

use support::gateway::{BASE_CONFIG, Gateway};
use support::peers::publish_av_sized;
use support::playlist::MediaPlaylist;
use support::poll;

const SOON: Duration = Duration::from_secs(30);

fn media(gw: &Gateway, rendition: &str) -> MediaPlaylist {
    let r = gw.get(&format!("/lad/{rendition}/playlist.m3u8"));
    assert_eq!(r.status, 200, "{rendition}: {}", r.text());
    MediaPlaylist::parse(&r.text()).unwrap()
}

/// ffprobe on a rendition's init segment and one of its segments, as a
/// file, showing `entries` (`-show_entries`) of its one stream, one line each.
fn probe(gw: &Gateway, rendition: &str, msn: u64, entries: &str) -> String {
    let mut file = gw.get(&format!("/lad/{rendition}/init0.mp4")).body;
    let seg = gw.get(&format!("/lad/{rendition}/seg{msn}.m4s"));
    assert_eq!(seg.status, 200, "{rendition} seg{msn}");
    file.extend_from_slice(&seg.body);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rung.mp4");
    std::fs::write(&path, &file).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries", entries])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe must be installed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_ladder_rung_is_cut_on_the_source_grid() {
    let config = format!(
        "{BASE_CONFIG}ladder = [{{ name = \"360p\", height = 360, bitrate_kbps = 500 }}]\n"
    );
    let gw = Gateway::start(&config);
    let mut publisher = publish_av_sized(gw.srt, "publish:lad", "", "960x540", 2);
    // Asked for as soon as the stream exists, the multivariant playlist
    // already lists the rung: players read it once.
    let first = poll(SOON, Duration::from_millis(100), || {
        let r = gw.get("/lad/index.m3u8");
        (r.status == 200).then(|| r.text())
    })
    .unwrap_or_else(|| gw.fail("no multivariant playlist"));
    assert!(first.contains("\n360p/playlist.m3u8"), "{first}");
    poll(SOON, Duration::from_millis(200), || {
        let ok = ["main", "audio", "360p"].iter().all(|r| {
            let res = gw.get(&format!("/lad/{r}/playlist.m3u8"));
            res.status == 200
                && MediaPlaylist::parse(&res.text()).is_ok_and(|p| p.segments.len() >= 4)
        });
        ok.then_some(())
    })
    .unwrap_or_else(|| gw.fail("no four complete segments in every rendition"));
    publisher.assert_running();

    let multivariant = gw.get("/lad/index.m3u8").text();
    let inf: Vec<&str> = multivariant
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .collect();
    assert_eq!(inf.len(), 2, "{multivariant}");
    assert!(inf[0].contains("RESOLUTION=960x540"), "{multivariant}");
    assert!(inf[1].contains("RESOLUTION=640x360"), "{multivariant}");
    for l in &inf {
        for attr in ["BANDWIDTH=", "AVERAGE-BANDWIDTH=", "FRAME-RATE=30.000"] {
            assert!(l.contains(attr), "{attr} in {l}");
        }
        assert!(l.contains(",mp4a.40.2\""), "{l}");
        assert!(l.contains("AUDIO=\"audio\""), "{l}");
    }
    assert!(
        multivariant.contains("\n360p/playlist.m3u8"),
        "{multivariant}"
    );
    let bandwidth = |l: &str| -> u64 {
        l.split("BANDWIDTH=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        bandwidth(inf[1]) < bandwidth(inf[0]),
        "the rung is the lighter variant: {multivariant}"
    );

    let main = media(&gw, "main");
    let rung = media(&gw, "360p");
    let audio = media(&gw, "audio");
    // Every media playlist reports every other rendition.
    for (p, others) in [
        (&main, ["audio", "360p"]),
        (&rung, ["main", "audio"]),
        (&audio, ["main", "360p"]),
    ] {
        for o in others {
            let report = format!("#EXT-X-RENDITION-REPORT:URI=\"../{o}/playlist.m3u8\"");
            assert!(p.text.contains(&report), "{report} in\n{}", p.text);
        }
    }
    // Same MSNs, part counts and durations for the segments both list as complete.
    let mut shared = Vec::new();
    for r in &rung.segments {
        if let Some(m) = main.segments.iter().find(|m| m.msn == r.msn) {
            if m.parts > 0 && r.parts > 0 {
                assert_eq!(r.parts, m.parts, "parts of segment {}", r.msn);
            }
            assert!(
                (r.duration - m.duration).abs() < 0.001,
                "EXTINF of {}",
                r.msn
            );
            shared.push(r.msn);
        }
    }
    assert!(shared.len() >= 3, "segments in both: {shared:?}");
    // Same PROGRAM-DATE-TIME for the same MSN.
    let pdt = |p: &MediaPlaylist| -> Vec<String> {
        p.text
            .lines()
            .filter(|l| l.starts_with("#EXT-X-PROGRAM-DATE-TIME:"))
            .map(str::to_owned)
            .collect()
    };
    let (mp, rp) = (pdt(&main), pdt(&rung));
    assert!(
        rp.iter().filter(|l| mp.contains(l)).count() >= 3,
        "main {mp:?}\nrung {rp:?}"
    );

    // An independent decoder reads a rung segment as 360-line H.264: one
    // second of the 30 fps source.
    let msn = shared[shared.len() - 1];
    let stream = "stream=codec_name,width,height,nb_read_frames";
    let probed = probe(&gw, "360p", msn, stream);
    assert_eq!(probed, "h264,640,360,30", "ffprobe of 360p seg{msn}");
    // The source's segment has B-frames; the rung is encoded without.
    let b_frames = |rendition| {
        let types = probe(&gw, rendition, msn, "frame=pict_type");
        types.lines().filter(|t| t.trim() == "B").count()
    };
    assert!(b_frames("main") >= 10, "B-frames in main seg{msn}");
    assert_eq!(b_frames("360p"), 0, "B-frames in 360p seg{msn}");
    publisher.stop();
}
