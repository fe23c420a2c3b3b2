//! Backup uplink with real peers: one ffmpeg encoder whose MPEG-TS goes
//! (tee muxer) to two UDP ports, each relayed to the gateway by its own
//! srt-live-transmit, as primary (`publish:bk`) and backup
//! (`publish:bk?role=backup`): the same encoder output over two paths, the
//! setup the seamless splice is for. The primary's relay is killed
//! mid-stream (its SRT connection goes silent), later a new one connects.
//!
//! Proven from the outside: the playlist keeps advancing through both
//! switches with no MSN reset and no discontinuity, every segment's parts add
//! up to its EXTINF, and the segments fetched over the whole run, joined
//! behind their init segment, decode with ffmpeg and have video frames
//! exactly one frame apart (nothing lost, nothing repeated).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::gateway::Gateway;
use support::peers::{self, encoder_to_udp, free_udp_port, publish_av, udp_relay};
use support::playlist::MediaPlaylist;

const SOON: Duration = Duration::from_secs(15);
const STREAM: &str = "bk";

const CONFIG: &str = r#"
[srt]
latency_ms = 120
video_timeout_ms = 5000
reconnect_grace_ms = 5000
handback_ms = 1500

[hls]
segment_duration_ms = 1000
part_target_ms = 200
"#;

/// Follows both renditions' playlists.
struct Watcher {
    video: Follow,
    audio: Follow,
}

/// Follows one rendition's playlist, checks every version of it and fetches
/// every complete segment while it is in the window.
struct Follow {
    rendition: &'static str,
    dir: String,
    last: Option<MediaPlaylist>,
    init: Option<String>,
    inits: Vec<Vec<u8>>,
    segments: BTreeMap<u64, Vec<u8>>,
    /// (EXTINF, sum of the listed part durations) per segment with parts.
    part_sums: BTreeMap<u64, (f64, f64)>,
}

impl Watcher {
    fn new() -> Self {
        Self {
            video: Follow::new("main"),
            audio: Follow::new("audio"),
        }
    }

    fn poll(&mut self, gw: &Gateway) {
        self.video.poll(gw);
        self.audio.poll(gw);
    }

    /// Keeps watching for `d`.
    fn watch(&mut self, gw: &Gateway, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.poll(gw);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Keeps watching until `n` log lines have all of `needles`; returns when.
    fn watch_for_log(
        &mut self,
        gw: &Gateway,
        needles: &[&str],
        n: usize,
        timeout: Duration,
    ) -> Instant {
        let end = Instant::now() + timeout;
        loop {
            if gw.log.lines_with(needles).len() >= n {
                return Instant::now();
            }
            if Instant::now() > end {
                gw.fail(&format!(
                    "not {n} log lines with {needles:?} within {timeout:?}"
                ));
            }
            self.poll(gw);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Follow {
    fn new(rendition: &'static str) -> Self {
        let url = Gateway::rendition_playlist_url(STREAM, rendition);
        let dir = url[..=url.rfind('/').unwrap()].to_owned();
        Self {
            rendition,
            dir,
            last: None,
            init: None,
            inits: Vec::new(),
            segments: BTreeMap::new(),
            part_sums: BTreeMap::new(),
        }
    }

    fn poll(&mut self, gw: &Gateway) {
        let Some(p) = gw.rendition_playlist(STREAM, self.rendition) else {
            return;
        };
        if p.ended {
            gw.fail(&format!("the stream ended:\n{}", p.text));
        }
        if p.text.contains("#EXT-X-DISCONTINUITY") {
            gw.fail(&format!("a discontinuity:\n{}", p.text));
        }
        if let Some(last) = &self.last
            && (p.media_sequence < last.media_sequence || p.progress() < last.progress())
        {
            gw.fail(&format!(
                "the playlist went back from {:?} to {:?}:\n{}",
                last.progress(),
                p.progress(),
                p.text
            ));
        }
        self.read_objects(gw, &p);
        self.last = Some(p);
    }

    fn read_objects(&mut self, gw: &Gateway, p: &MediaPlaylist) {
        let mut msn = p.media_sequence;
        let mut parts = 0.0;
        let mut extinf = None;
        for line in p.text.lines() {
            if let Some(attrs) = line.strip_prefix("#EXT-X-MAP:") {
                let uri = attr(attrs, "URI");
                if self.init.as_deref() != Some(uri.as_str()) {
                    let r = gw.get(&format!("{}{uri}", self.dir));
                    assert_eq!(r.status, 200, "init {uri}");
                    self.inits.push(r.body);
                    self.init = Some(uri);
                }
            } else if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
                parts += attr(attrs, "DURATION").parse::<f64>().unwrap();
            } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                extinf = Some(v.trim_end_matches(',').parse::<f64>().unwrap());
            } else if !line.starts_with('#') && !line.is_empty() {
                if parts > 0.0 {
                    self.part_sums.insert(msn, (extinf.unwrap(), parts));
                }
                if !self.segments.contains_key(&msn) {
                    let r = gw.get(&format!("{}{line}", self.dir));
                    assert_eq!(r.status, 200, "segment {line}");
                    self.segments.insert(msn, r.body);
                }
                msn += 1;
                parts = 0.0;
                extinf = None;
            }
        }
    }
}

/// The stream's `active_uplink` as `GET /api/v1/streams` reports it.
fn active_uplink(gw: &Gateway) -> String {
    let list: serde_json::Value = serde_json::from_str(&gw.get("/api/v1/streams").text()).unwrap();
    let stream = list["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == STREAM)
        .unwrap_or_else(|| panic!("{STREAM} not listed: {list}"));
    stream["active_uplink"]
        .as_str()
        .unwrap_or("null")
        .to_owned()
}

fn attr(attrs: &str, key: &str) -> String {
    attrs
        .split(',')
        .find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == key).then(|| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("no {key} in {attrs}"))
}

/// `ffprobe` packet times (seconds) of `stream` (`v:0`, `a:0`) in `file`.
fn packet_times(file: &std::path::Path, stream: &str) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", "packet=dts_time", "-of", "csv=p=0"])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("running ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

#[test]
fn backup_takes_over_a_dead_primary_and_hands_back_seamlessly() {
    let mut gw = Gateway::start(CONFIG);
    let ports = [free_udp_port(), free_udp_port()];
    let primary_id = format!("publish:{STREAM}");
    let backup_id = format!("publish:{STREAM}?role=backup");
    // The encoder first: until the relays listen its datagrams are lost.
    let mut encoder = encoder_to_udp(&ports);
    let mut primary = udp_relay(gw.srt, &primary_id, ports[0]);
    let mut backup = udp_relay(gw.srt, &backup_id, ports[1]);
    gw.wait_for_log_line(&["publisher connected", "role=primary"], SOON);
    gw.wait_for_log_line(&["publisher connected", "role=backup"], SOON);
    gw.wait_live(STREAM, Duration::from_secs(20));
    // Whichever relay's first keyframe comes first starts the stream; the
    // primary has it soon (straight away, or handed back once steady).
    gw.wait_for_log_line(&["uplink switched", "to=primary"], SOON);
    let first_switches = gw.log.count("uplink switched");

    let mut w = Watcher::new();
    w.watch(&gw, Duration::from_secs(3));
    let before = w.video.last.clone().unwrap();

    // A dead uplink: the primary's relay vanishes without closing SRT. (On
    // a loaded machine a relay may also pause longer than the failover
    // time before: that is a seamless switch and back too.)
    let failover = ["uplink switched", "from=primary", "to=backup", "Seamless"];
    let failovers = gw.log.lines_with(&failover).len();
    primary.kill();
    let killed = Instant::now();
    let switched = w.watch_for_log(&gw, &failover, failovers + 1, SOON);
    eprintln!(
        "failover logged {:?} after the primary's relay was killed \
         (SRT latency 120 ms + failover 200 ms)",
        switched - killed
    );
    w.watch(&gw, Duration::from_secs(2));
    let during = w.video.last.clone().unwrap();
    assert!(during.progress() > before.progress(), "{}", during.text);
    assert_eq!(active_uplink(&gw), "backup");

    // srt-tokio notices the silent connection after its idle timeout; then a
    // new primary connects and, once steady, gets the stream back.
    let gone = w.watch_for_log(
        &gw,
        &["publisher disconnected", "stream=bk", "role=primary"],
        1,
        Duration::from_secs(30),
    );
    eprintln!(
        "srt-tokio dropped the silent primary {:?} after the kill",
        gone - killed
    );
    let handback = ["uplink switched", "from=backup", "to=primary", "Seamless"];
    let handbacks = gw.log.lines_with(&handback).len();
    let mut primary = udp_relay(gw.srt, &primary_id, ports[0]);
    let connected = w.watch_for_log(
        &gw,
        &["publisher connected", "stream=bk", "role=primary"],
        2,
        SOON,
    );
    let handed_back = w.watch_for_log(&gw, &handback, handbacks + 1, SOON);
    eprintln!(
        "handed back {:?} after the new primary connected (handback_ms 1500)",
        handed_back - connected
    );
    w.watch(&gw, Duration::from_secs(3));
    let after = w.video.last.clone().unwrap();
    assert!(after.progress() > during.progress(), "{}", after.text);
    assert_eq!(active_uplink(&gw), "primary");
    assert_eq!(after.discontinuity_sequence, 0, "{}", after.text);
    // Every switch after the start was spliced seamlessly.
    let switches = gw.log.lines_with(&["uplink switched"]);
    assert!(
        switches[first_switches..]
            .iter()
            .all(|l| l.contains("splice=Seamless")),
        "{}",
        switches.join("\n")
    );
    encoder.assert_running();
    backup.assert_running();
    primary.assert_running();

    // Parts add up to their segment: none is missing.
    for (msn, (extinf, parts)) in w.video.part_sums.iter().chain(&w.audio.part_sums) {
        assert!(
            (extinf - parts).abs() < 0.002,
            "segment {msn}: EXTINF {extinf} but its parts add up to {parts}"
        );
    }
    // Every segment of the run was fetched, without a hole in the MSNs.
    let msns: Vec<u64> = w.video.segments.keys().copied().collect();
    let audio_msns: Vec<u64> = w.audio.segments.keys().copied().collect();
    assert_eq!(msns, audio_msns, "both renditions list the same segments");
    assert!(
        msns.windows(2).all(|p| p[1] == p[0] + 1),
        "segments missed: {msns:?}"
    );
    assert!(msns.len() >= 8, "{msns:?}");
    assert_eq!(w.video.inits.len(), 1, "the video init segment changed");
    assert_eq!(w.audio.inits.len(), 1, "the audio init segment changed");

    // The media: one init and all segments decode, frames one apart.
    let dir = tempfile::tempdir().unwrap();
    let join = |f: &Follow| {
        let file = dir.path().join(format!("{}.mp4", f.rendition));
        let mut bytes = f.inits[0].clone();
        for s in f.segments.values() {
            bytes.extend_from_slice(s);
        }
        std::fs::write(&file, &bytes).unwrap();
        file
    };
    let (video_file, audio_file) = (join(&w.video), join(&w.audio));
    let video = packet_times(&video_file, "v:0");
    assert!(video.len() > 200, "{} video frames", video.len());
    let steps: Vec<f64> = video.windows(2).map(|w| w[1] - w[0]).collect();
    let bad: Vec<(usize, f64)> = steps
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| (s - 1.0 / 30.0).abs() > 0.002)
        .collect();
    assert!(bad.is_empty(), "video steps off one frame: {bad:?}");
    let audio = packet_times(&audio_file, "a:0");
    assert!(!audio.is_empty());
    let audio_gaps: Vec<f64> = audio
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|s| *s > 1.5 * 1024.0 / 44_100.0 || *s <= 0.0)
        .collect();
    assert!(audio_gaps.is_empty(), "audio gaps: {audio_gaps:?}");
    for file in [&video_file, &audio_file] {
        let decode = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
            .arg(file)
            .args(["-f", "null", "-"])
            .output()
            .expect("running ffmpeg");
        let errors = String::from_utf8_lossy(&decode.stderr);
        assert!(
            decode.status.success() && errors.trim().is_empty(),
            "decode errors in {}:\n{errors}",
            file.display()
        );
    }
    eprintln!(
        "{} segments, {} video frames, {} audio frames checked",
        msns.len(),
        video.len(),
        audio.len()
    );
    gw.assert_healthy();
}

/// A second backup is refused like a second primary; a backup alone is
/// served; a publisher with an unknown role is refused.
#[test]
fn one_publisher_per_role() {
    let mut gw = Gateway::start(CONFIG);
    let mut backup = publish_av(gw.srt, "publish:solo?role=backup", "");
    gw.wait_live("solo", Duration::from_secs(20));
    gw.wait_for_log_line(&["uplink switched", "from=none", "to=backup"], SOON);
    let mut second = publish_av(gw.srt, "publish:solo?role=backup", "");
    peers::expect_refused(&mut second, SOON);
    gw.wait_for_log("already has a backup publisher", SOON);
    let mut odd = publish_av(gw.srt, "publish:solo?role=spare", "");
    peers::expect_refused(&mut odd, SOON);
    gw.wait_for_log("role \"spare\" is neither primary nor backup", SOON);
    gw.assert_advancing("solo", 3, SOON);
    backup.assert_running();
    gw.assert_healthy();
}

/// A backup uplink of a stream with a passphrase needs that passphrase too.
#[test]
fn a_backup_needs_the_streams_passphrase() {
    const PASSPHRASE: &str = "correct-horse-battery";
    let mut gw = Gateway::start(&format!(
        "{CONFIG}\n[streams.locked]\npassphrase = \"{PASSPHRASE}\"\n"
    ));
    let pass = format!("passphrase={PASSPHRASE}");
    let mut primary = publish_av(gw.srt, "publish:locked", &pass);
    gw.wait_live("locked", Duration::from_secs(20));
    for wrong in ["", "passphrase=not-the-passphrase"] {
        let mut b = publish_av(gw.srt, "publish:locked?role=backup", wrong);
        peers::expect_refused(&mut b, SOON);
    }
    assert!(
        gw.log
            .lines_with(&["publisher connected", "role=backup"])
            .is_empty(),
        "a backup without the passphrase was admitted"
    );
    let mut backup = publish_av(gw.srt, "publish:locked?role=backup", &pass);
    gw.wait_for_log_line(
        &["publisher connected", "stream=locked", "role=backup"],
        SOON,
    );
    gw.assert_advancing("locked", 3, SOON);
    primary.assert_running();
    backup.assert_running();
    gw.assert_healthy();
}
