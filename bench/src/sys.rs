//! What the benchmarks read from Linux about processes: CPU time and resident
//! memory from `/proc`, the load average, core pinning and the open-file
//! limit through util-linux (`taskset`, `prlimit`), so no unsafe code is needed.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};

/// The 1-minute load average: the benchmarks share the cores with whatever
/// else runs, which moves the tail.
#[must_use]
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The machine's cores (`/proc/cpuinfo`), whatever this process is pinned to.
#[must_use]
pub fn cores() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0)
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`).
pub fn clock_ticks() -> anyhow::Result<u64> {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .context("getconf CLK_TCK")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("CLK_TCK")
}

/// User + system CPU time of process `pid` (all its threads), from
/// `/proc/<pid>/stat` fields 14 and 15.
pub fn cpu_time(pid: u32, ticks_per_sec: u64) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; fields resume after its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .context("short stat")?
            .parse()
            .context("stat field")
    };
    let ticks = field(14)? + field(15)?;
    Ok(Duration::from_secs_f64(ticks as f64 / ticks_per_sec as f64))
}

/// Resident memory of process `pid` in bytes (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("VmRSS")?;
    Ok(kb * 1024)
}

/// Pins every thread of this process, and the threads it starts later, to `cpu`.
pub fn pin_self(cpu: usize) -> anyhow::Result<()> {
    taskset(cpu, &["-a"], &std::process::id().to_string())
}

/// Pins the calling thread (only) to `cpu`.
pub fn pin_thread(cpu: usize) -> anyhow::Result<()> {
    let tid = std::fs::read_link("/proc/thread-self").context("/proc/thread-self")?;
    let tid = tid
        .file_name()
        .and_then(|t| t.to_str())
        .context("thread id")?
        .to_owned();
    taskset(cpu, &[], &tid)
}

/// `taskset FLAGS -p -c CPU ID`: pins process or thread `id` to `cpu`.
fn taskset(cpu: usize, flags: &[&str], id: &str) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args(flags)
        .args(["-p", "-c", &cpu.to_string(), id])
        .stdout(std::process::Stdio::null())
        .status()
        .context("run taskset (util-linux)")?;
    ensure!(
        status.success(),
        "taskset -p -c {cpu} {id} failed: {status}"
    );
    Ok(())
}

/// Raises this process's soft open-file limit to its hard limit (children
/// inherit it); returns the limit now in effect.
pub fn raise_nofile() -> anyhow::Result<u64> {
    let pid = std::process::id().to_string();
    let read = || -> anyhow::Result<(u64, u64)> {
        let out = Command::new("prlimit")
            .args(["--pid", &pid, "--nofile", "--raw", "--noheadings"])
            .args(["--output", "SOFT,HARD"])
            .output()
            .context("run prlimit (util-linux)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace().map(|v| {
            if v == "unlimited" {
                Ok(u64::MAX)
            } else {
                v.parse::<u64>().context("prlimit output")
            }
        });
        let soft = it.next().context("prlimit: no soft limit")??;
        let hard = it.next().context("prlimit: no hard limit")??;
        Ok((soft, hard))
    };
    let (soft, hard) = read()?;
    if soft < hard {
        let limit = if hard == u64::MAX {
            "unlimited".to_owned()
        } else {
            hard.to_string()
        };
        let status = Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={limit}:{limit}")])
            .status()
            .context("run prlimit")?;
        ensure!(status.success(), "prlimit --nofile={limit} failed");
    }
    Ok(read()?.0)
}
