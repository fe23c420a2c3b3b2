//! Cue carriage end to end: ffmpeg publishes H.264 + AAC over SRT to the real
//! `dropline` binary with the commerce overlay configured (API token from the
//! environment, store in a temp folder). A cue posted with anchor "now" must
//! land as an `emsg` (ID3, `https://aomedia.org/emsg/ID3`) before the `moof`
//! of the video part and of the audio part of the same number, at a
//! presentation time inside that part, and as the same `EXT-X-DATERANGE` in
//! both media playlists; the segment holding the part carries it too. A cue
//! cancelled before its time never appears; one anchored on the next
//! keyframe lands at the start of a segment; after an encoder restart (a
//! discontinuity, timestamps starting over) a cue lands on the new timeline.
//! An ABR ladder rung (`low`, transcoded from the source) carries every cue
//! in its part of the same number as well.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use packager::units::WallTime;
use serde_json::Value;
use support::gateway::{BASE_CONFIG, Gateway};
use support::http::{self, Response};
use support::peers::publish_av;
use support::poll;

const SOON: Duration = Duration::from_secs(30);
const TOKEN: &str = "carriage-test-token-0123";
const SCHEME: &str = "https://aomedia.org/emsg/ID3";
/// One small rung (160x120 from the 320x240 source), in `[hls]`.
const LADDER: &str = "ladder = [{ name = \"low\", height = 120, bitrate_kbps = 100 }]\n";
/// Every rendition of the stream.
const RENDITIONS: [&str; 3] = ["main", "audio", "low"];

fn api(gw: &Gateway, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r: Response = http::raw(gw.http, req.as_bytes(), Duration::from_secs(20))
        .unwrap_or_else(|e| gw.fail(&format!("{method} {path}: {e}")));
    let json = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, json)
}

fn playlist(gw: &Gateway, rendition: &str) -> String {
    let r = gw.get(&format!("/av/{rendition}/playlist.m3u8"));
    assert_eq!(r.status, 200, "{rendition}: {}", r.text());
    r.text()
}

/// `(msn, part index, URI, duration)` of every `EXT-X-PART` of a full playlist.
fn parts(text: &str) -> Vec<(u64, u32, String, f64)> {
    let mut msn = 0;
    let mut index = 0;
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            msn = v.parse().unwrap();
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
            let attr = |k: &str| {
                attrs
                    .split(',')
                    .find_map(|a| a.strip_prefix(&format!("{k}=")))
                    .unwrap()
                    .trim_matches('"')
                    .to_owned()
            };
            out.push((msn, index, attr("URI"), attr("DURATION").parse().unwrap()));
            index += 1;
        } else if !line.starts_with('#') && !line.is_empty() {
            msn += 1;
            index = 0;
        }
    }
    out
}

/// Top-level ISO BMFF boxes: (type, body).
fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 8 {
        let size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        assert!(size >= 8 && size <= rest.len(), "bad box size {size}");
        out.push((rest[4..8].try_into().unwrap(), &rest[8..size]));
        rest = &rest[size..];
    }
    assert!(rest.is_empty(), "trailing bytes");
    out
}

struct Emsg {
    timescale: u32,
    presentation_time: u64,
    scheme: String,
    value: String,
    message: Vec<u8>,
}

/// ISO/IEC 23009-1 §5.10.3.3, version 1 (parsed independently of mp4-atom).
fn parse_emsg(body: &[u8]) -> Emsg {
    assert_eq!(body[0], 1, "emsg version");
    let u32_at = |i: usize| u32::from_be_bytes(body[i..i + 4].try_into().unwrap());
    let timescale = u32_at(4);
    let presentation_time = u64::from_be_bytes(body[8..16].try_into().unwrap());
    let mut rest = &body[24..];
    let mut cstr = || {
        let end = rest.iter().position(|b| *b == 0).unwrap();
        let s = String::from_utf8(rest[..end].to_vec()).unwrap();
        rest = &rest[end + 1..];
        s
    };
    let scheme = cstr();
    let value = cstr();
    Emsg {
        timescale,
        presentation_time,
        scheme,
        value,
        message: rest.to_vec(),
    }
}

/// The emsgs of the cue `id` in a part or segment, all before its first moof.
fn cue_emsgs(data: &[u8], id: &str) -> Vec<Emsg> {
    let needle = format!("\"id\":\"{id}\"");
    let list = boxes(data);
    let first_moof = list.iter().position(|(t, _)| t == b"moof");
    let mut out = Vec::new();
    for (i, (t, body)) in list.iter().enumerate() {
        if t != b"emsg" {
            continue;
        }
        let e = parse_emsg(body);
        if !String::from_utf8_lossy(&e.message).contains(&needle) {
            continue;
        }
        assert!(first_moof.is_some_and(|m| i < m), "emsg after the moof");
        out.push(e);
    }
    out
}

/// `baseMediaDecodeTime` of the first `tfdt` of a fragment.
fn tfdt(data: &[u8]) -> u64 {
    let at = data.windows(4).position(|w| w == b"tfdt").unwrap() + 4;
    if data[at] == 1 {
        u64::from_be_bytes(data[at + 4..at + 12].try_into().unwrap())
    } else {
        u64::from(u32::from_be_bytes(data[at + 4..at + 8].try_into().unwrap()))
    }
}

/// The media timescale of an init segment's track (`mdhd`).
fn timescale(init: &[u8]) -> u64 {
    let at = init.windows(4).position(|w| w == b"mdhd").unwrap() + 4;
    // After version and flags: two times of 8 bytes (version 1) or 4.
    let at = at + if init[at] == 1 { 20 } else { 12 };
    u64::from(u32::from_be_bytes(init[at..at + 4].try_into().unwrap()))
}

fn daterange<'a>(text: &'a str, id: &str) -> Option<&'a str> {
    let prefix = format!("#EXT-X-DATERANGE:ID=\"{id}\",");
    text.lines().find(|l| l.starts_with(&prefix))
}

#[test]
fn a_posted_cue_is_carried_in_both_renditions_and_a_cancelled_one_never() {
    let data = tempfile::tempdir().unwrap();
    let config = format!(
        "{BASE_CONFIG}{LADDER}\n[storage]\ndata_dir = {:?}\n\n[streams.av]\n",
        data.path().to_str().unwrap()
    );
    let gw = Gateway::start_with_env(&config, &[("DROPLINE_STREAM_AV_API_TOKEN", TOKEN)]);
    let mut publisher = publish_av(gw.srt, "publish:av", "");
    poll(SOON, Duration::from_millis(200), || {
        let live = RENDITIONS.iter().all(|r| {
            let res = gw.get(&format!("/av/{r}/playlist.m3u8"));
            res.status == 200 && !parts(&res.text()).is_empty()
        });
        live.then_some(())
    })
    .unwrap_or_else(|| gw.fail("both renditions never went live"));

    // A cue far enough ahead to cancel safely, then cancelled.
    let later = WallTime(
        i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_micros(),
        )
        .unwrap()
            + 4_000_000,
    );
    let body = format!(
        r#"{{"id":"later-1","kind":"custom","payload":{{}},"anchor":{{"type":"wall-clock","at":"{}"}}}}"#,
        later.to_rfc3339_millis()
    );
    let (status, answer) = api(&gw, "POST", "/api/v1/streams/av/cues", Some(&body));
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = api(&gw, "DELETE", "/api/v1/streams/av/cues/later-1", None);
    assert_eq!(status, 200, "{answer}");

    let body = r#"{"id":"card-1","kind":"product-card","payload":{"sku":"tee-black-m"},"anchor":{"type":"now"},"duration_ms":5000}"#;
    let (status, answer) = api(&gw, "POST", "/api/v1/streams/av/cues", Some(body));
    assert_eq!(status, 201, "{answer}");

    let card = check_carried(&gw, "card-1");
    let msn = card.msn;

    // Anchored on the next keyframe: the first part of a segment, at its start.
    let body =
        r#"{"id":"kf-1","kind":"custom","payload":{"n":1},"anchor":{"type":"next-keyframe"}}"#;
    let (status, answer) = api(&gw, "POST", "/api/v1/streams/av/cues", Some(body));
    assert_eq!(status, 201, "{answer}");
    let kf = check_carried(&gw, "kf-1");
    assert_eq!(kf.index, 0, "a keyframe cue opens a segment");
    assert!(
        (kf.media_time as f64 / 90_000.0 - kf.video_part_start).abs() < 1e-6,
        "the keyframe cue sits at its part's start"
    );

    // The complete segment, its parts concatenated, carries the emsg too.
    for rendition in RENDITIONS {
        let seg = poll(SOON, Duration::from_millis(200), || {
            let r = gw.get(&format!("/av/{rendition}/seg{msn}.m4s"));
            (r.status == 200).then_some(r.body)
        })
        .unwrap_or_else(|| gw.fail(&format!("{rendition}: seg{msn} never completed")));
        assert_eq!(
            cue_emsgs_anywhere(&seg, "card-1"),
            1,
            "{rendition} seg{msn}"
        );
    }

    // Past the cancelled cue's time: it never airs.
    std::thread::sleep(Duration::from_secs(5));
    let (status, cue) = api(&gw, "GET", "/api/v1/streams/av/cues/later-1", None);
    assert_eq!((status, cue["state"].as_str()), (200, Some("cancelled")));
    for rendition in RENDITIONS {
        assert!(daterange(&playlist(&gw, rendition), "later-1").is_none());
    }
    publisher.assert_running();
    // With DROPLINE_TEST_LOG=info,gateway=debug: the time the stream task
    // spent asking the overlay for a part's cues (the store commit).
    for line in gw.log.lines_with(&["cues carried"]) {
        eprintln!("{line}");
    }
}

#[test]
fn cues_follow_the_new_timeline_after_a_reconnect() {
    let data = tempfile::tempdir().unwrap();
    let config = format!(
        "{BASE_CONFIG}{LADDER}\n[storage]\ndata_dir = {:?}\n\n[streams.av]\n",
        data.path().to_str().unwrap()
    );
    let gw = Gateway::start_with_env(&config, &[("DROPLINE_STREAM_AV_API_TOKEN", TOKEN)]);
    let mut first = publish_av(gw.srt, "publish:av", "");
    // Long enough that the restarted encoder's timestamps lie well behind.
    poll(SOON, Duration::from_millis(200), || {
        let r = gw.get("/av/main/playlist.m3u8");
        (r.status == 200 && r.text().matches("#EXTINF").count() >= 6).then_some(())
    })
    .unwrap_or_else(|| gw.fail("no six segments"));
    let body = r#"{"id":"before-1","kind":"custom","payload":{},"anchor":{"type":"now"}}"#;
    assert_eq!(
        api(&gw, "POST", "/api/v1/streams/av/cues", Some(body)).0,
        201
    );
    let before = check_carried(&gw, "before-1");

    // The encoder restarts within the reconnect grace: its timestamps start
    // over, behind a discontinuity.
    first.stop();
    let mut second = publish_av(gw.srt, "publish:av", "");
    poll(SOON, Duration::from_millis(200), || {
        let t = playlist(&gw, "main");
        let (_, after) = t.split_once("#EXT-X-DISCONTINUITY\n")?;
        (after.matches("#EXT-X-PART:").count() >= 2).then_some(())
    })
    .unwrap_or_else(|| gw.fail("no discontinuity after the reconnect"));
    let body = r#"{"id":"after-1","kind":"custom","payload":{},"anchor":{"type":"now"}}"#;
    assert_eq!(
        api(&gw, "POST", "/api/v1/streams/av/cues", Some(body)).0,
        201
    );
    let after = check_carried(&gw, "after-1");
    eprintln!(
        "before the reconnect at {} ticks (part {}.{}), after at {} ticks (part {}.{})",
        before.media_time, before.msn, before.index, after.media_time, after.msn, after.index
    );
    assert!(after.msn > before.msn);
    assert!(
        after.media_time < before.media_time,
        "the cue waited for the new timeline to pass the old one"
    );
    second.assert_running();
}

/// Emsgs of cue `id` among a segment's top-level boxes (one per part that
/// carried it; each before that part's moof).
fn cue_emsgs_anywhere(data: &[u8], id: &str) -> usize {
    let needle = format!("\"id\":\"{id}\"");
    boxes(data)
        .iter()
        .filter(|(t, body)| {
            t == b"emsg" && String::from_utf8_lossy(&parse_emsg(body).message).contains(&needle)
        })
        .count()
}

struct Carried {
    msn: u64,
    index: u32,
    media_time: u64,
    video_part_start: f64,
}

/// Waits for cue `id` to air, then checks both carriages in both renditions.
fn check_carried(gw: &Gateway, id: &str) -> Carried {
    let cue = poll(SOON, Duration::from_millis(100), || {
        let (status, cue) = api(gw, "GET", &format!("/api/v1/streams/av/cues/{id}"), None);
        (status == 200 && cue["aired"] == true).then_some(cue)
    })
    .unwrap_or_else(|| gw.fail(&format!("{id} never aired")));
    let media_time = cue["media_time"].as_u64().unwrap();
    let (msn, index) = (
        cue["part"]["msn"].as_u64().unwrap(),
        u32::try_from(cue["part"]["part"].as_u64().unwrap()).unwrap(),
    );
    eprintln!("{id} aired at media time {media_time} in part {msn}.{index}");

    let mut lines = Vec::new();
    let mut starts = Vec::new();
    for rendition in RENDITIONS {
        // The rung trails the source by its transcoder's delay.
        let text = poll(SOON, Duration::from_millis(100), || {
            let t = playlist(gw, rendition);
            let has_part = parts(&t).iter().any(|p| (p.0, p.1) == (msn, index));
            (daterange(&t, id).is_some() && has_part).then_some(t)
        })
        .unwrap_or_else(|| {
            gw.fail(&format!(
                "{rendition}: no DATERANGE or part {msn}.{index} for {id}:\n{}",
                playlist(gw, rendition)
            ))
        });
        let line = daterange(&text, id).unwrap().to_owned();
        assert!(
            line.contains(&format!(
                "START-DATE=\"{}\"",
                cue["start"].as_str().unwrap()
            )),
            "{line}"
        );
        assert!(
            daterange(&text, "later-1").is_none(),
            "cancelled cue in {rendition}"
        );
        lines.push(line);

        let init = gw.get(&format!("/av/{rendition}/init0.mp4")).body;
        let rate = timescale(&init);
        let listed = parts(&text);
        let mut carried = 0;
        for (m, i, uri, duration) in &listed {
            let r = gw.get(&format!("/av/{rendition}/{uri}"));
            if r.status != 200 {
                continue; // a GAP part
            }
            assert!(
                cue_emsgs(&r.body, "later-1").is_empty(),
                "cancelled cue aired"
            );
            let found = cue_emsgs(&r.body, id);
            if found.is_empty() {
                continue;
            }
            carried += found.len();
            assert_eq!(
                (*m, *i),
                (msn, index),
                "{rendition}: carried in another part"
            );
            let e = &found[0];
            assert_eq!(e.scheme, SCHEME);
            assert_eq!(e.value, "");
            assert_eq!(e.timescale, 90_000);
            assert_eq!(e.presentation_time, media_time);
            assert!(e.message.starts_with(b"ID3\x04"), "ID3v2.4 tag");
            // The part's span on its own track's timeline, in seconds; the
            // audio part of the same number may start up to a frame off.
            let start = tfdt(&r.body) as f64 / rate as f64;
            starts.push(start);
            let slack = if rendition == "audio" {
                1024.0 / rate as f64
            } else {
                0.0
            };
            let at = e.presentation_time as f64 / 90_000.0;
            eprintln!(
                "{rendition}: part {m}.{i} spans {start:.4}..{:.4} s, emsg at {at:.4} s",
                start + duration
            );
            assert!(
                at >= start - slack && at < start + duration + slack,
                "{rendition}: emsg at {at} outside the part {start}..{}",
                start + duration
            );
        }
        assert_eq!(carried, 1, "{rendition}: the cue is carried exactly once");
    }
    assert!(
        lines.iter().all(|l| *l == lines[0]),
        "the same DATERANGE in every playlist: {lines:?}"
    );
    Carried {
        msn,
        index,
        media_time,
        video_part_start: starts[0],
    }
}
