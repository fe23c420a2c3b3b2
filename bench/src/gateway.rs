//! The gateway under test: `dropline serve` on 127.0.0.1 with both listeners
//! on port 0, its addresses read from the `dropline ready` line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, ensure};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The gateway process; killed when dropped.
pub struct Gateway {
    child: tokio::process::Child,
    pub srt: SocketAddr,
    pub http: SocketAddr,
}

/// `--help`'s last line for a benchmark that starts the gateway ([`binary`]).
pub const BIN_HELP: &str =
    "environment: DROPLINE_BIN (default: the workspace's target/release/dropline)";

/// `DROPLINE_BIN`, or the workspace's `target/release/dropline`.
#[must_use]
pub fn binary() -> PathBuf {
    std::env::var_os("DROPLINE_BIN").map_or_else(
        // The workspace's target directory, wherever this is run from.
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/dropline"),
        PathBuf::from,
    )
}

impl Gateway {
    /// Starts the gateway with `env` added to its environment, its log in
    /// `log`; `cpu` pins it (all its threads) to that core with `taskset`,
    /// which execs the gateway, so the child's pid is the gateway's.
    pub async fn start(
        log: &Path,
        env: &[(&str, String)],
        cpu: Option<usize>,
    ) -> anyhow::Result<Self> {
        let bin = binary();
        let log_file = std::fs::File::create(log).context("gateway log file")?;
        let mut cmd = match cpu {
            Some(c) => {
                let mut t = tokio::process::Command::new("taskset");
                t.arg("-c").arg(c.to_string()).arg(&bin);
                t
            }
            None => tokio::process::Command::new(&bin),
        };
        cmd.args([
            "serve",
            "--srt-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "start {} (build it: cargo build --release -p gateway)",
                bin.display()
            )
        })?;
        let stdout = child.stdout.take().context("gateway stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("gateway did not print its ready line within 30 s")??
            .context("gateway exited before its ready line")?;
        let addr = |key: &str| -> anyhow::Result<SocketAddr> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .with_context(|| format!("no {key} in {line:?}"))?
                .parse()
                .with_context(|| format!("bad {key} in {line:?}"))
        };
        ensure!(
            line.starts_with("dropline ready "),
            "unexpected first line {line:?}"
        );
        let (srt, http) = (addr("srt=")?, addr("http=")?);
        // Drain stdout so that the gateway never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, srt, http })
    }

    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// The last `n` lines of a log, for error reports.
#[must_use]
pub fn log_tail(log: &Path, n: usize) -> Vec<String> {
    std::fs::read_to_string(log)
        .map(|l| {
            let tail: Vec<String> = l.lines().rev().take(n).map(str::to_owned).collect();
            tail.into_iter().rev().collect()
        })
        .unwrap_or_default()
}

/// How many warnings and errors the gateway logged.
#[must_use]
pub fn log_warnings(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .map(|l| {
            l.lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .count()
        })
        .unwrap_or(0)
}
