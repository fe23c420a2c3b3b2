//! The `dropline` binary under test: started with a config on 127.0.0.1
//! ports chosen by the OS, its stderr kept in a searchable buffer, killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::http::{self, Response};
use super::playlist::MediaPlaylist;
use super::{poll, strip_ansi, tail};

/// A shared, growing text buffer fed by a reader thread.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<String>>);

impl LogBuffer {
    /// Copies `reader` into the buffer line by line (lossy UTF-8, no ANSI).
    pub fn capture(&self, reader: impl Read + Send + 'static) {
        let buf = self.clone();
        thread::spawn(move || {
            let mut r = BufReader::new(reader);
            let mut line = Vec::new();
            while r
                .read_until(b'\n', &mut line)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                let text = strip_ansi(&String::from_utf8_lossy(&line));
                buf.0.lock().unwrap().push_str(&text);
                line.clear();
            }
        });
    }

    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.0.lock().unwrap().matches(needle).count()
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.0.lock().unwrap().contains(needle)
    }

    /// Lines containing every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned)
            .collect()
    }
}

pub struct Gateway {
    child: Child,
    pub srt: SocketAddr,
    pub http: SocketAddr,
    /// Listed in the ready line when the config sets up HTTPS.
    pub https: Option<SocketAddr>,
    /// The SRTLA listener, when the config enables one.
    pub srtla: Option<SocketAddr>,
    pub log: LogBuffer,
    _dir: tempfile::TempDir,
}

/// What most tests want: short segments and parts so that progress is quick
/// to observe, a short video timeout and a generous reconnect grace.
pub const BASE_CONFIG: &str = r#"
[srt]
latency_ms = 120
video_timeout_ms = 1500
reconnect_grace_ms = 5000

[hls]
segment_duration_ms = 1000
part_target_ms = 200
"#;

impl Gateway {
    /// Starts `dropline serve` with `config` (TOML) and waits for its ready line.
    pub fn start(config: &str) -> Self {
        Self::start_with_env(config, &[])
    }

    /// As [`Gateway::start`], with `env` (e.g. `DROPLINE_*` secrets) set.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("dropline.toml");
        std::fs::write(&cfg, config).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dropline"));
        cmd.args(["serve", "--srt-listen", "127.0.0.1:0"])
            .args(["--http-listen", "127.0.0.1:0"])
            .arg("--config")
            .arg(&cfg)
            .arg("--web-root")
            .arg(dir.path())
            // DROPLINE_TEST_LOG=debug,… overrides the filter when debugging.
            .env(
                "RUST_LOG",
                std::env::var("DROPLINE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("RUST_BACKTRACE", "0")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The environment overrides the file: keep the caller's DROPLINE_* out.
        for (k, _) in std::env::vars() {
            if k.starts_with("DROPLINE_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().expect("spawning dropline");
        let log = LogBuffer::default();
        log.capture(child.stderr.take().unwrap());
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {} // keep the pipe drained
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!(
                "no ready line from dropline; stderr:\n{}",
                tail(&log.text(), 40)
            );
        };
        let addr = |key: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("ready line {line:?} has no {key}ADDR"))
        };
        assert!(
            line.starts_with("dropline ready "),
            "unexpected first line {line:?}"
        );
        let (srt, http) = (addr("srt="), addr("http="));
        let https = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("https="))
            .map(|_| addr("https="));
        let srtla = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("srtla="))
            .and_then(|a| a.parse().ok());
        Self {
            child,
            srt,
            http,
            https,
            srtla,
            log,
            _dir: dir,
        }
    }

    /// Panics with `msg` and the end of the gateway's log.
    #[track_caller]
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "{msg}\n--- dropline stderr (tail) ---\n{}",
            tail(&self.log.text(), 60)
        );
    }

    /// Asks the process to stop (SIGTERM, its graceful shutdown) and waits
    /// for it to exit; panics if it lingers. Dropping the handle kills it
    /// instead (SIGKILL).
    #[track_caller]
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        match poll(Duration::from_secs(10), Duration::from_millis(50), || {
            self.child.try_wait().ok().flatten()
        }) {
            Some(status) => status,
            None => self.fail("dropline did not exit within 10 s of SIGTERM"),
        }
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process runs, nothing panicked and the SRT listener never had to
    /// be restarted.
    #[track_caller]
    pub fn assert_healthy(&mut self) {
        if !self.is_alive() {
            let status = self.child.try_wait();
            self.fail(&format!("dropline exited: {status:?}"));
        }
        for bad in ["panicked at", "listener task ended unexpectedly"] {
            if self.log.contains(bad) {
                let lines = self.log.lines_with(&[bad]).join("\n");
                self.fail(&format!("dropline logged {bad:?}:\n{lines}"));
            }
        }
        let r = self.get("/healthz");
        if r.status != 200 {
            self.fail(&format!("/healthz answered {}", r.status));
        }
    }

    /// Waits until a log line contains `needle`; returns that line.
    #[track_caller]
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_log_line(&[needle], timeout)
    }

    /// Waits until one log line contains all of `needles`; returns it.
    #[track_caller]
    pub fn wait_for_log_line(&self, needles: &[&str], timeout: Duration) -> String {
        match poll(timeout, Duration::from_millis(50), || {
            self.log.lines_with(needles).into_iter().next()
        }) {
            Some(l) => l,
            None => self.fail(&format!("no log line with {needles:?} within {timeout:?}")),
        }
    }

    /// Waits until `needle` occurs at least `n` times in the log.
    #[track_caller]
    pub fn wait_for_count(&self, needle: &str, n: usize, timeout: Duration) {
        if poll(timeout, Duration::from_millis(50), || {
            (self.log.count(needle) >= n).then_some(())
        })
        .is_none()
        {
            self.fail(&format!(
                "{needle:?} logged {} times, not {n}, within {timeout:?}",
                self.log.count(needle)
            ));
        }
    }

    /// `GET target` (sent byte for byte); panics on I/O errors.
    #[track_caller]
    pub fn get(&self, target: &str) -> Response {
        self.get_raw(target.as_bytes())
    }

    #[track_caller]
    pub fn get_raw(&self, target: &[u8]) -> Response {
        match http::get(self.http, target, Duration::from_secs(20)) {
            Ok(r) => r,
            Err(e) => self.fail(&format!(
                "GET {} failed: {e}",
                String::from_utf8_lossy(target)
            )),
        }
    }

    pub fn playlist_url(stream: &str) -> String {
        Self::rendition_playlist_url(stream, "main")
    }

    pub fn rendition_playlist_url(stream: &str, rendition: &str) -> String {
        format!("/{stream}/{rendition}/playlist.m3u8")
    }

    /// The (video) media playlist of `stream`, or `None` while it answers non-200.
    #[track_caller]
    pub fn playlist(&self, stream: &str) -> Option<MediaPlaylist> {
        self.rendition_playlist(stream, "main")
    }

    /// The media playlist of `rendition`, or `None` while it answers non-200.
    #[track_caller]
    pub fn rendition_playlist(&self, stream: &str, rendition: &str) -> Option<MediaPlaylist> {
        let r = self.get(&Self::rendition_playlist_url(stream, rendition));
        if r.status != 200 {
            return None;
        }
        match MediaPlaylist::parse(&r.text()) {
            Ok(p) => Some(p),
            Err(e) => self.fail(&format!("bad playlist for {stream}: {e}\n{}", r.text())),
        }
    }

    /// Waits until `stream`'s media playlist lists at least one part.
    #[track_caller]
    pub fn wait_live(&self, stream: &str, timeout: Duration) -> MediaPlaylist {
        poll(timeout, Duration::from_millis(100), || {
            self.playlist(stream).filter(MediaPlaylist::has_parts)
        })
        .unwrap_or_else(|| self.fail(&format!("stream {stream:?} not live within {timeout:?}")))
    }

    /// Waits until `check` accepts `stream`'s playlist; returns it.
    #[track_caller]
    pub fn wait_playlist(
        &self,
        stream: &str,
        timeout: Duration,
        what: &str,
        check: impl Fn(&MediaPlaylist) -> bool,
    ) -> MediaPlaylist {
        let mut last = None;
        let found = poll(timeout, Duration::from_millis(100), || {
            let p = self.playlist(stream)?;
            if check(&p) {
                return Some(p);
            }
            last = Some(p);
            None
        });
        found.unwrap_or_else(|| {
            self.fail(&format!(
                "{stream:?}: {what} not seen within {timeout:?}; last playlist:\n{}",
                last.map(|p| p.text).unwrap_or_default()
            ))
        })
    }

    /// Asserts that `stream`'s newest part moves forward `steps` times
    /// (each poll that sees a newer part counts once) within `timeout`.
    #[track_caller]
    pub fn assert_advancing(&self, stream: &str, steps: usize, timeout: Duration) -> MediaPlaylist {
        let start = Instant::now();
        let mut last = self.wait_live(stream, timeout);
        let first = last.progress();
        let mut seen = 0;
        while seen < steps {
            if start.elapsed() > timeout {
                self.fail(&format!(
                    "{stream:?} advanced only {seen}/{steps} times in {timeout:?} \
                     (from {first:?} to {:?}); last playlist:\n{}",
                    last.progress(),
                    last.text
                ));
            }
            thread::sleep(Duration::from_millis(100));
            if let Some(p) = self.playlist(stream) {
                if p.ended {
                    self.fail(&format!("{stream:?} ended:\n{}", p.text));
                }
                if p.progress() < last.progress() {
                    self.fail(&format!(
                        "{stream:?} went back from {:?} to {:?}:\n{}",
                        last.progress(),
                        p.progress(),
                        p.text
                    ));
                }
                if p.progress() > last.progress() {
                    seen += 1;
                    last = p;
                }
            }
        }
        last
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
