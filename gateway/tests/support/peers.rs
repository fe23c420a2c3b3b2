//! Real SRT peers: ffmpeg publishers and srt-live-transmit callers.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::gateway::LogBuffer;
use super::poll;

/// A child process whose stderr is kept; killed on drop.
pub struct Peer {
    pub name: String,
    child: Child,
    pub log: LogBuffer,
    status: Option<ExitStatus>,
}

impl Peer {
    pub fn spawn(name: &str, mut cmd: Command) -> Self {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        if cmd.get_program() == "ffmpeg" {
            cmd.stdin(Stdio::null());
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name} ({:?}): {e}", cmd.get_program()));
        let log = LogBuffer::default();
        log.capture(child.stderr.take().unwrap());
        Self {
            name: name.to_owned(),
            child,
            log,
            status: None,
        }
    }

    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    #[track_caller]
    pub fn assert_running(&mut self) {
        if let Some(s) = self.exit_status() {
            panic!(
                "{} exited ({s}); its stderr:\n{}",
                self.name,
                self.log.text()
            );
        }
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        poll(timeout, Duration::from_millis(50), || self.exit_status())
    }

    /// Kills the process without warning (SIGKILL): for a publisher, its
    /// SRT connection goes silent instead of closing, like a dead uplink.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
    }

    /// Asks the process to stop (SIGTERM: ffmpeg then closes its SRT
    /// connection properly), waits, and kills it if it lingers.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if self.is_running() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            if self.wait_exit(Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
            }
        }
        self.status = self.child.wait().ok();
        self.status
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An ffmpeg SRT URL (ffmpeg's `latency` is in microseconds).
pub fn ffmpeg_url(srt: SocketAddr, streamid: &str, extra: &str) -> String {
    let mut url = format!("srt://{srt}?latency=120000&connect_timeout=3000");
    if !streamid.is_empty() {
        url.push_str("&streamid=");
        url.push_str(streamid);
    }
    if !extra.is_empty() {
        url.push('&');
        url.push_str(extra);
    }
    url
}

fn ffmpeg() -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-nostdin", "-loglevel", "warning"]);
    c
}

/// ffmpeg encoding a live H.264 + AAC test pattern of `size` (WxH) with 1 s
/// GOPs and `b_frames` B-frames between references; the caller adds the
/// muxer and the output.
fn av_encoder(size: &str, b_frames: u32) -> Command {
    let mut c = ffmpeg();
    c.args(["-re", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=30"))
        .args(["-f", "lavfi", "-i", "sine"])
        .args(["-map", "0:v", "-map", "1:a"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "30", "-bf", &b_frames.to_string(), "-c:a", "aac"]);
    c
}

/// The good publisher of the brief: live H.264 + AAC test pattern, 1 s GOPs.
pub fn publish_av(srt: SocketAddr, streamid: &str, extra: &str) -> Peer {
    publish_av_sized(srt, streamid, extra, "320x240", 0)
}

/// [`publish_av`] with a picture of `size` (WxH) and `b_frames` B-frames.
pub fn publish_av_sized(
    srt: SocketAddr,
    streamid: &str,
    extra: &str,
    size: &str,
    b_frames: u32,
) -> Peer {
    let mut c = av_encoder(size, b_frames);
    c.args(["-f", "mpegts"])
        .arg(ffmpeg_url(srt, streamid, extra));
    Peer::spawn(&format!("ffmpeg {streamid}"), c)
}

/// MPEG-TS with AAC audio only.
pub fn publish_audio_only(srt: SocketAddr, streamid: &str) -> Peer {
    let mut c = ffmpeg();
    c.args([
        "-re", "-f", "lavfi", "-i", "sine", "-c:a", "aac", "-f", "mpegts",
    ])
    .arg(ffmpeg_url(srt, streamid, ""));
    Peer::spawn(&format!("ffmpeg audio-only {streamid}"), c)
}

/// Writes `seconds` of H.264 + AAC MPEG-TS (1 s GOPs) to `path`.
pub fn make_ts(path: &Path, seconds: u32) {
    let status = ffmpeg()
        .args(["-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-bf",
            "0",
        ])
        .args(["-c:a", "aac", "-f", "mpegts"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("running ffmpeg");
    assert!(
        status.success(),
        "ffmpeg could not write {}",
        path.display()
    );
}

/// Video packets (frames) in a TS file, as ffprobe counts them: an
/// independent reference for what a truncated file still holds.
pub fn video_packets(path: &Path) -> usize {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("running ffprobe");
    // ffprobe prints the count once per program and once for the stream.
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next_back()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("ffprobe said {text:?}"))
}

/// An srt-live-transmit SRT URL (its `latency` is in milliseconds).
pub fn slt_url(srt: SocketAddr, streamid: &str, extra: &str) -> String {
    let mut url = format!("srt://{srt}?latency=120&streamid={streamid}");
    if !extra.is_empty() {
        url.push('&');
        url.push_str(extra);
    }
    url
}

/// `srt-live-transmit -a:no file://con URL`, fed `data` through a pipe in
/// 1316-byte chunks at `bytes_per_sec` once it has connected. A burst (a
/// file fed at once, or data queued in the pipe while it connects) overruns
/// SRT's live mode and loses packets at any receiver, and srt-live-transmit
/// cannot poll a regular file on stdin. It does not exit at the end of its
/// input: stop it.
pub fn srt_live_transmit(
    srt: SocketAddr,
    streamid: &str,
    extra: &str,
    data: Vec<u8>,
    bytes_per_sec: usize,
) -> Peer {
    let mut c = Command::new("srt-live-transmit");
    // No auto-reconnect: it would retry a refused handshake every 10 ms.
    c.args(["-a:no", "file://con"])
        .arg(slt_url(srt, streamid, extra))
        .stdin(Stdio::piped());
    let mut peer = Peer::spawn(&format!("srt-live-transmit {streamid}"), c);
    let mut stdin = peer.child.stdin.take().unwrap();
    let pause = Duration::from_secs_f64(1316.0 / bytes_per_sec as f64);
    let log = peer.log.clone();
    std::thread::spawn(move || {
        use std::io::Write;
        let connected = poll(Duration::from_secs(15), Duration::from_millis(10), || {
            log.contains("SRT target connected").then_some(())
        });
        if connected.is_none() {
            return; // refused, or it never got through: nothing to send
        }
        for chunk in data.chunks(1316) {
            if stdin.write_all(chunk).is_err() {
                return; // refused: it exited
            }
            std::thread::sleep(pause);
        }
    });
    peer
}

/// Waits for a peer that must fail to connect; returns its log. ffmpeg exits
/// with an error; srt-live-transmit exits with 0 but reports the rejection.
#[track_caller]
pub fn expect_refused(peer: &mut Peer, timeout: Duration) -> String {
    let start = Instant::now();
    match peer.wait_exit(timeout) {
        Some(s) if !s.success() || peer.log.contains("REJECT") => peer.log.text(),
        Some(s) => panic!(
            "{} was expected to be refused but exited with {s}:\n{}",
            peer.name,
            peer.log.text()
        ),
        None => panic!(
            "{} still running after {:?}: it was not refused:\n{}",
            peer.name,
            start.elapsed(),
            peer.log.text()
        ),
    }
}

/// `srt-live-transmit udp://:PORT SRT-URL`: relays the MPEG-TS datagrams
/// that arrive on UDP `port` to the gateway as `streamid`. Restarts nothing
/// (`-a:no`): kill it to end the uplink.
pub fn udp_relay(srt: SocketAddr, streamid: &str, port: u16) -> Peer {
    let mut c = Command::new("srt-live-transmit");
    c.args(["-a:no", &format!("udp://:{port}")])
        .arg(slt_url(srt, streamid, ""))
        .stdin(Stdio::null());
    Peer::spawn(&format!("srt-live-transmit {streamid} from udp {port}"), c)
}

/// One live encoder (the `publish_av` test pattern) whose MPEG-TS goes to
/// every UDP port in `ports` on 127.0.0.1: ffmpeg's tee muxer writes the
/// same packets, so every copy has the same frames and timestamps.
pub fn encoder_to_udp(ports: &[u16]) -> Peer {
    let outputs: Vec<String> = ports
        .iter()
        .map(|p| format!("[f=mpegts:onfail=ignore]udp://127.0.0.1:{p}?pkt_size=1316"))
        .collect();
    let mut c = av_encoder("320x240", 0);
    c.args(["-f", "tee"]).arg(outputs.join("|"));
    Peer::spawn("ffmpeg encoder to udp", c)
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("binding a UDP port")
}
