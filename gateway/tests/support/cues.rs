//! The commerce overlay's cues as a player sees them, for tests that drive
//! the real binary: stream "av" with a cue API token and a store folder, the
//! cue API, and both carriages (`EXT-X-DATERANGE` in the media playlists,
//! ID3 `emsg` before a part's `moof`) parsed independently of the gateway.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use packager::units::WallTime;
use serde_json::Value;

use super::gateway::{BASE_CONFIG, Gateway};
use super::http::{self, Response};
use super::poll;

pub const SOON: Duration = Duration::from_secs(30);
pub const TOKEN: &str = "carriage-test-token-0123";
pub const SCHEME: &str = "https://aomedia.org/emsg/ID3";

pub fn api(gw: &Gateway, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let (r, json) = api_with(gw, method, path, &[], body);
    (r.status, json)
}

/// A cue API call with extra request headers; the response and its JSON body.
pub fn api_with(
    gw: &Gateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (Response, Value) {
    let body = body.unwrap_or("");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n{extra}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r: Response = http::raw(gw.http, req.as_bytes(), Duration::from_secs(20))
        .unwrap_or_else(|e| gw.fail(&format!("{method} {path}: {e}")));
    let json = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r, json)
}

/// `POST /api/v1/streams/av/cues` with `Idempotency-Key: key`: the status,
/// whether the answer was a replay, and the cue.
pub fn post_cue_once(gw: &Gateway, key: &str, body: &str) -> (u16, bool, Value) {
    let (r, json) = api_with(
        gw,
        "POST",
        "/api/v1/streams/av/cues",
        &[("Idempotency-Key", key)],
        Some(body),
    );
    let replayed = r.header("idempotent-replayed") == Some("true");
    (r.status, replayed, json)
}

/// How many parts and segments listed in `rendition`'s playlist carry an
/// emsg of cue `id`.
pub fn emsgs_in_window(gw: &Gateway, rendition: &str, id: &str) -> usize {
    let text = playlist(gw, rendition);
    let segments = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty());
    let parts = parts(&text).into_iter().map(|(_, _, uri, _)| uri);
    segments
        .map(str::to_owned)
        .chain(parts)
        .map(|uri| gw.get(&format!("/av/{rendition}/{uri}")))
        .filter(|r| r.status == 200)
        .map(|r| cue_emsgs_anywhere(&r.body, id))
        .sum()
}

pub fn playlist(gw: &Gateway, rendition: &str) -> String {
    let r = gw.get(&format!("/av/{rendition}/playlist.m3u8"));
    assert_eq!(r.status, 200, "{rendition}: {}", r.text());
    r.text()
}

/// `(msn, part index, URI, duration)` of every `EXT-X-PART` of a full playlist.
pub fn parts(text: &str) -> Vec<(u64, u32, String, f64)> {
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
pub fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
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

pub struct Emsg {
    pub timescale: u32,
    pub presentation_time: u64,
    pub scheme: String,
    pub value: String,
    pub message: Vec<u8>,
}

/// ISO/IEC 23009-1 §5.10.3.3, version 1 (parsed independently of mp4-atom).
pub fn parse_emsg(body: &[u8]) -> Emsg {
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
pub fn cue_emsgs(data: &[u8], id: &str) -> Vec<Emsg> {
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
pub fn tfdt(data: &[u8]) -> u64 {
    let at = data.windows(4).position(|w| w == b"tfdt").unwrap() + 4;
    if data[at] == 1 {
        u64::from_be_bytes(data[at + 4..at + 12].try_into().unwrap())
    } else {
        u64::from(u32::from_be_bytes(data[at + 4..at + 8].try_into().unwrap()))
    }
}

/// The media timescale of an init segment's track (`mdhd`).
pub fn timescale(init: &[u8]) -> u64 {
    let at = init.windows(4).position(|w| w == b"mdhd").unwrap() + 4;
    // After version and flags: two times of 8 bytes (version 1) or 4.
    let at = at + if init[at] == 1 { 20 } else { 12 };
    u64::from(u32::from_be_bytes(init[at..at + 4].try_into().unwrap()))
}

pub fn daterange<'a>(text: &'a str, id: &str) -> Option<&'a str> {
    let prefix = format!("#EXT-X-DATERANGE:ID=\"{id}\",");
    text.lines().find(|l| l.starts_with(&prefix))
}

/// Emsgs of cue `id` among a segment's top-level boxes (one per part that
/// carried it; each before that part's moof).
pub fn cue_emsgs_anywhere(data: &[u8], id: &str) -> usize {
    let needle = format!("\"id\":\"{id}\"");
    boxes(data)
        .iter()
        .filter(|(t, body)| {
            t == b"emsg" && String::from_utf8_lossy(&parse_emsg(body).message).contains(&needle)
        })
        .count()
}

pub struct Carried {
    pub msn: u64,
    pub index: u32,
    pub media_time: u64,
    pub video_part_start: f64,
}

/// The renditions of "av": the source's video and audio.
pub const AV: [&str; 2] = ["main", "audio"];
/// With [`LOW_RUNG`] configured: an ABR ladder rung as well.
pub const AV_LOW: [&str; 3] = ["main", "audio", "low"];
/// One small rung (160x120 from the 320x240 source), for `[hls]`.
pub const LOW_RUNG: &str = "ladder = [{ name = \"low\", height = 120, bitrate_kbps = 100 }]\n";

/// Waits for cue `id` to air, then checks both carriages in every one of
/// `renditions` (and that none of the cues `never` is in the playlists or
/// their parts).
pub fn check_carried(gw: &Gateway, id: &str, never: &[&str], renditions: &[&str]) -> Carried {
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
    for &rendition in renditions {
        // A rung trails the source by its transcoder's delay.
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
        for other in never {
            assert!(
                daterange(&text, other).is_none(),
                "{other}: listed in {rendition}"
            );
        }
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
            for other in never {
                assert!(cue_emsgs(&r.body, other).is_empty(), "{other}: carried");
            }
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

/// `BASE_CONFIG` plus `hls` (lines of its `[hls]` table), with the
/// overlay's store in `data_dir` and stream "av".
pub fn config(data_dir: &Path, hls: &str) -> String {
    format!(
        "{BASE_CONFIG}{hls}\n[storage]\ndata_dir = {:?}\n\n[streams.av]\n",
        data_dir.to_str().unwrap()
    )
}

/// A gateway whose stream "av" has the cue API (token from the environment)
/// and keeps its cues in `data_dir`; `hls` as in [`config`].
pub fn start(data_dir: &Path, hls: &str) -> Gateway {
    Gateway::start_with_env(
        &config(data_dir, hls),
        &[("DROPLINE_STREAM_AV_API_TOKEN", TOKEN)],
    )
}

/// Waits until every one of the `renditions` of "av" lists parts.
pub fn wait_live(gw: &Gateway, renditions: &[&str]) {
    poll(SOON, Duration::from_millis(200), || {
        let live = renditions.iter().all(|r| {
            let res = gw.get(&format!("/av/{r}/playlist.m3u8"));
            res.status == 200 && !parts(&res.text()).is_empty()
        });
        live.then_some(())
    })
    .unwrap_or_else(|| gw.fail(&format!("{renditions:?} never all went live")));
}

/// The wall clock `ahead` from now.
pub fn wall_in(ahead: Duration) -> WallTime {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + ahead;
    WallTime(i64::try_from(now.as_micros()).unwrap())
}
