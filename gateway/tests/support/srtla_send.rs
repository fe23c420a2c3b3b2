//! `srtla-send` (bench/src/bin/srtla_send.rs), the test SRTLA sender: started
//! with N links, driven through its stdin, its stdout kept in a buffer.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use super::gateway::LogBuffer;
use super::poll;

/// The binary: `DROPLINE_SRTLA_SEND_BIN`, else next to `dropline` (built
/// here if `cargo build --workspace` has not built it yet).
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("DROPLINE_SRTLA_SEND_BIN") {
        return p.into();
    }
    let path = PathBuf::from(env!("CARGO_BIN_EXE_dropline")).with_file_name("srtla-send");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "bench", "--bin", "srtla-send"])
            .status()
            .expect("running cargo build for srtla-send");
        assert!(status.success(), "cannot build srtla-send");
    }
    path
}

pub struct SrtlaSend {
    child: Child,
    stdin: ChildStdin,
    /// Where the SRT caller connects.
    pub srt: SocketAddr,
    pub out: LogBuffer,
    pub err: LogBuffer,
}

impl SrtlaSend {
    /// `srtla-send --srtla RECEIVER --links N`; waits for its ready line.
    pub fn start(receiver: SocketAddr, links: usize) -> Self {
        let mut child = Command::new(binary())
            .arg("--srtla")
            .arg(receiver.to_string())
            .args(["--links", &links.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning srtla-send");
        let out = LogBuffer::default();
        let err = LogBuffer::default();
        err.capture(child.stderr.take().unwrap());
        out.capture(child.stdout.take().unwrap());
        let stdin = child.stdin.take().unwrap();
        let ready = poll(Duration::from_secs(10), Duration::from_millis(20), || {
            out.lines_with(&["srtla-send ready srt="])
                .into_iter()
                .next()
        })
        .unwrap_or_else(|| panic!("srtla-send not ready: {}{}", out.text(), err.text()));
        let srt = ready
            .trim()
            .strip_prefix("srtla-send ready srt=")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("bad ready line {ready:?}"));
        Self {
            child,
            stdin,
            srt,
            out,
            err,
        }
    }

    pub fn command(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("writing to srtla-send");
        self.stdin.flush().expect("writing to srtla-send");
    }

    /// Waits until stdout has a line equal to `line`.
    #[track_caller]
    pub fn wait_line(&self, line: &str, timeout: Duration) {
        let found = poll(timeout, Duration::from_millis(20), || {
            self.out
                .text()
                .lines()
                .any(|l| l.trim() == line)
                .then_some(())
        });
        if found.is_none() {
            panic!(
                "srtla-send did not say {line:?} within {timeout:?}; stdout:\n{}\nstderr:\n{}",
                self.out.text(),
                self.err.text()
            );
        }
    }

    /// The whole bonding sender dies: every link goes silent at once.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    #[track_caller]
    pub fn assert_running(&mut self) {
        if let Ok(Some(s)) = self.child.try_wait() {
            panic!(
                "srtla-send exited ({s}):\n{}\n{}",
                self.out.text(),
                self.err.text()
            );
        }
    }
}

impl Drop for SrtlaSend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
