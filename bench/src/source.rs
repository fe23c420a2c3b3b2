//! The synthetic source the benchmarks publish: ffmpeg's `testsrc2` and a
//! sine, H.264 with a keyframe every 30 frames and no B-frames, AAC 48 kHz.

use std::path::Path;

use anyhow::{Context, ensure};

use crate::ts::Source;

/// What to encode.
#[derive(Clone, Debug)]
pub struct SourceSpec {
    pub secs: u64,
    /// `WIDTHxHEIGHT`.
    pub size: &'static str,
    /// x264 preset.
    pub preset: String,
    /// Video bit rate (kb/s); `None` leaves it to x264's default quality.
    pub video_kbps: Option<u32>,
}

/// ffmpeg encoding the source (reading its inputs in real time if
/// `realtime`); the caller adds the output.
fn encoder(spec: &SourceSpec, realtime: bool) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"]);
    if realtime {
        cmd.arg("-re");
    }
    cmd.args([
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={}:rate=30", spec.size),
    ])
    .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
    .args(["-map", "0:v", "-map", "1:a"])
    .args(["-c:v", "libx264", "-preset", &spec.preset])
    .args(["-tune", "zerolatency"])
    .args([
        "-g",
        "30",
        "-keyint_min",
        "30",
        "-sc_threshold",
        "0",
        "-bf",
        "0",
    ]);
    if let Some(kbps) = spec.video_kbps {
        let rate = format!("{kbps}k");
        cmd.args(["-b:v", &rate, "-maxrate", &rate, "-bufsize", &rate]);
    }
    cmd.args(["-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-ar", "48000", "-ac", "2", "-b:a", "128k"])
        .kill_on_drop(true);
    cmd
}

/// Encodes the source into an MPEG-TS file at `out`: 30 fps, GOP 30.
pub async fn generate(out: &Path, spec: &SourceSpec) -> anyhow::Result<()> {
    let status = encoder(spec, false)
        .args(["-t", &spec.secs.to_string(), "-f", "mpegts"])
        .arg(out)
        .status()
        .await
        .context("run ffmpeg (is it installed?)")?;
    ensure!(status.success(), "ffmpeg failed: {status}");
    Ok(())
}

/// A live encoder: ffmpeg encodes the source in real time and publishes it
/// as MPEG-TS to `srt_url` (an ffmpeg SRT URL). Killed when dropped.
pub fn publish_live(spec: &SourceSpec, srt_url: &str) -> anyhow::Result<tokio::process::Child> {
    encoder(spec, true)
        .args(["-f", "mpegts", srt_url])
        .stdin(std::process::Stdio::null())
        .spawn()
        .context("run ffmpeg (is it installed?)")
}

/// The source must be evenly spaced frames; returns the frame duration (90 kHz).
pub fn frame_ticks(src: &Source) -> anyhow::Result<i64> {
    let d: Vec<i64> = src.frames.windows(2).map(|w| w[1].dts - w[0].dts).collect();
    let first = *d.first().context("source has fewer than two frames")?;
    ensure!(
        first > 0 && d.iter().all(|x| *x == first),
        "source frames are not evenly spaced"
    );
    Ok(first)
}
