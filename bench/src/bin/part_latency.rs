//! `part-latency`: how long after a part's last frame reaches the gateway is a
//! blocked playlist request for that part answered? See `bench/README.md`.
//!
//! The benchmark is publisher and player at once, so both ends of the
//! measurement are read from one monotonic clock:
//! - `t_last[k]`: the datagram with frame `k`'s last TS packet is handed to SRT;
//! - `t_answer`: the blocking reload `_HLS_msn=M&_HLS_part=P` that asked for
//!   the part ending with frame `k` has been read completely.
//!
//! Everything runs on 127.0.0.1 and stops by itself.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bench::fmp4::{self, VideoTrack};
use bench::gateway::{self, Gateway};
use bench::http1::Client;
use bench::playlist::{self, PartEntry};
use bench::source::{self, SourceSpec};
use bench::stats::Summary;
use bench::ts::{self, Packing, Source, TICKS_PER_SEC};
use bench::{cli, publish, sys};
use clap::Parser;
use futures::StreamExt;
use srt_tokio::SrtListener;
use tokio::net::UdpSocket;

const STREAM: &str = "bench";
/// The gateway's default PART-TARGET; the source is sized for parts this long.
const PART_TARGET_MS: u64 = 200;
/// Media beyond warm-up + N parts, in case some parts cannot be measured.
const SPARE_SECS: u64 = 10;
/// Frames sent after the player stops.
const TAIL_FRAMES: usize = 10;

/// How late is a part? (bench/README.md)
#[derive(Clone, Debug, Parser)]
#[command(
    name = "part-latency",
    after_help = gateway::BIN_HELP
)]
struct Args {
    /// Parts to measure after the warm-up (100 is a quick check).
    #[arg(long, default_value_t = 1000)]
    parts: usize,
    /// SRT receiver latency in ms, given to the gateway and to the publisher.
    #[arg(long = "srt-latency-ms", value_name = "MS", default_value = "20", value_parser = cli::millis)]
    srt_latency: Duration,
    /// Seconds of media whose parts are not measured.
    #[arg(long = "warmup-s", value_name = "S", default_value = "5", value_parser = cli::seconds)]
    warmup: Duration,
    /// aligned: a frame's last datagram is sent with the frame (ffmpeg-like); fill: always 7 TS
    /// packets, a frame's tail leaves with the next frame's head.
    #[arg(long, value_enum, default_value_t = Packing::Aligned)]
    packing: Packing,
    /// x264 preset for the generated source.
    #[arg(long, default_value = "veryfast")]
    preset: String,
    /// Do not measure SRT alone (a second srt-tokio connection to this process).
    #[arg(long)]
    no_srt_baseline: bool,
    /// Also write the JSON result line to FILE.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
    /// Write one line per measured part (times in ms from the first datagram).
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// A previous --json-out: print this run's ratios to it.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Keep the temporary directory (source TS, gateway log).
    #[arg(long)]
    keep: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.parts > 0, "--parts must be at least 1");
    bench::run_on_two_workers(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("dropline-bench-")
        .tempdir()
        .context("temporary directory")?;
    let media_secs = args.warmup.as_secs()
        + 1
        + (args.parts as u64 * PART_TARGET_MS).div_ceil(1000)
        + SPARE_SECS;
    let ts_path = dir.path().join("source.ts");
    let t0 = Instant::now();
    let spec = SourceSpec {
        secs: media_secs,
        size: "640x360",
        preset: args.preset.clone(),
        video_kbps: None,
    };
    source::generate(&ts_path, &spec).await?;
    let ts_bytes = tokio::fs::read(&ts_path).await.context("read source")?;
    let src = Arc::new(ts::packetize(&ts_bytes, args.packing)?);
    let frame_ticks = source::frame_ticks(&src)?;
    eprintln!(
        "source: {media_secs} s, {} frames, {} datagrams ({:.1} Mb/s), generated in {:.1} s",
        src.frames.len(),
        src.datagrams.len(),
        ts_bytes.len() as f64 * 8.0 / media_secs as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );

    let load_before = sys::load_average();
    let log_path = dir.path().join("gateway.log");
    let env = [
        (
            "DROPLINE_SRT_LATENCY_MS",
            args.srt_latency.as_millis().to_string(),
        ),
        ("DROPLINE_HLS_PART_TARGET_MS", PART_TARGET_MS.to_string()),
        ("DROPLINE_HLS_SEGMENT_DURATION_MS", "2000".to_owned()),
    ];
    let mut gateway = Gateway::start(&log_path, &env, None).await?;
    eprintln!("gateway: srt={} http={}", gateway.srt, gateway.http);

    let result = measure(&args, &src, frame_ticks, &gateway).await;
    gateway.stop().await;
    let warnings = gateway::log_warnings(&log_path);
    if args.keep {
        let kept = dir.keep();
        eprintln!("kept {}", kept.display());
    }
    let run = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gateway log (last lines):");
            for l in gateway::log_tail(&log_path, 20) {
                eprintln!("  {l}");
            }
            return Err(e);
        }
    };
    let load = (load_before, sys::load_average());
    report(&args, &src, frame_ticks, &run, warnings, load)
}

/// What a run recorded.
struct Run {
    /// When each datagram was handed to SRT (the gateway connection), in order.
    sent: Vec<Instant>,
    /// SRT alone: when each datagram was handed to / released by the second
    /// connection (to this process).
    baseline: Option<(Vec<Instant>, Vec<Instant>)>,
    player: PlayerLog,
}

async fn measure(
    args: &Args,
    src: &Arc<Source>,
    frame_ticks: i64,
    gw: &Gateway,
) -> anyhow::Result<Run> {
    let call = |addr: SocketAddr, sid: &'static str| publish::call(addr, sid, args.srt_latency);
    let publisher = call(gw.srt, "publish:bench").await?;

    let mut baseline = None;
    if !args.no_srt_baseline {
        let udp = UdpSocket::bind("127.0.0.1:0")
            .await
            .context("bind baseline SRT")?;
        let local = udp.local_addr()?;
        let (listener, mut incoming) = SrtListener::builder()
            .latency(args.srt_latency)
            .socket(udp)
            .bind(local)
            .await
            .context("baseline SRT listener")?;
        let accept = tokio::spawn(async move {
            let req = incoming
                .incoming()
                .next()
                .await
                .context("baseline listener closed")?;
            let sock = req.accept(None).await.context("baseline accept")?;
            anyhow::Ok((sock, incoming))
        });
        let caller = call(local, "baseline").await?;
        let (mut receiver, incoming) = accept.await.context("baseline accept task")??;
        let recv = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(Ok((_, data))) = receiver.next().await {
                got.push((Instant::now(), data.len()));
            }
            drop((listener, incoming));
            got
        });
        baseline = Some((caller, recv));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let source_done = Arc::new(AtomicBool::new(false));
    let player = {
        let cfg = PlayerConfig {
            http: gw.http,
            want: args.parts,
            warmup_frames: usize::try_from(
                (args.warmup.as_secs_f64() * TICKS_PER_SEC as f64 / frame_ticks as f64).ceil()
                    as u64,
            )?,
            frame_ticks,
        };
        let (src, stop, done) = (Arc::clone(src), Arc::clone(&stop), Arc::clone(&source_done));
        std::thread::Builder::new()
            .name("player".to_owned())
            .spawn(move || {
                let r = play(&cfg, &src, &stop, &done);
                // Whatever happened, the publisher has nothing more to do.
                stop.store(true, Ordering::SeqCst);
                r
            })
            .context("player thread")?
    };

    let (twin, twin_recv) = match baseline {
        Some((c, r)) => (Some(c), Some(r)),
        None => (None, None),
    };
    let published = publish::real_time(publisher, twin, src, &stop, TAIL_FRAMES).await;
    source_done.store(true, Ordering::SeqCst);
    let player = tokio::task::spawn_blocking(move || player.join())
        .await
        .context("join player")?
        .map_err(|_| anyhow::anyhow!("player thread panicked"))??;
    let (sent, twin_sent) = published?;
    let baseline = match (twin_sent, twin_recv) {
        (Some(s), Some(r)) => srt_alone(s, r, src).await,
        _ => None,
    };
    Ok(Run {
        sent,
        baseline,
        player,
    })
}

/// Pairs the second connection's send and release instants, in order; `None`
/// (with a warning) unless every datagram arrived: SRT alone is context, the
/// run does not fail for it.
async fn srt_alone(
    sent: Vec<Instant>,
    recv: tokio::task::JoinHandle<Vec<(Instant, usize)>>,
    src: &Source,
) -> Option<(Vec<Instant>, Vec<Instant>)> {
    let got = match tokio::time::timeout(Duration::from_secs(5), recv).await {
        Ok(Ok(got)) => got,
        Ok(Err(e)) => {
            eprintln!("warning: SRT alone: receiver failed: {e}");
            return None;
        }
        Err(_) => {
            eprintln!("warning: SRT alone: receiver did not finish");
            return None;
        }
    };
    let intact = got.len() == sent.len()
        && got
            .iter()
            .zip(&src.datagrams)
            .all(|(g, d)| g.1 == d.data.len());
    if !intact {
        eprintln!(
            "warning: SRT alone: sent {} datagrams, received {} (or sizes differ): no figures",
            sent.len(),
            got.len()
        );
        return None;
    }
    Some((sent, got.into_iter().map(|g| g.0).collect()))
}

struct PlayerConfig {
    http: SocketAddr,
    want: usize,
    warmup_frames: usize,
    frame_ticks: i64,
}

/// One new part, as the player learnt of it.
#[derive(Clone, Debug)]
struct PartRecord {
    seq: u64,
    msn: u64,
    index: u64,
    /// When the blocking request that returned it was sent.
    t_request: Instant,
    /// When that response had been read completely.
    t_answer: Instant,
    first_frame: usize,
    frames: usize,
    /// Every sample lasts one frame duration.
    even: bool,
    /// The first new part of its answer, i.e. the one the request asked for.
    requested: bool,
}

impl PartRecord {
    fn last_frame(&self) -> usize {
        self.first_frame + self.frames.saturating_sub(1)
    }
}

#[derive(Default)]
struct PlayerLog {
    parts: Vec<PartRecord>,
    /// 503 answers (the part did not come within 3 × target duration).
    timeouts: u32,
    /// 200 answers without a new part.
    empty_answers: u32,
    track: Option<VideoTrack>,
}

/// Plays like hls.js: read the playlist once, then always ask for the part
/// after the last one seen; fetch each new part to learn which frames it holds.
fn play(
    cfg: &PlayerConfig,
    src: &Source,
    stop: &AtomicBool,
    source_done: &AtomicBool,
) -> anyhow::Result<PlayerLog> {
    let base = format!("/{STREAM}/main/");
    let mut http = Client::new(cfg.http, Duration::from_secs(15));
    let mut log = PlayerLog::default();

    // The stream appears once the publisher is admitted, the playlist once a
    // first part exists.
    let deadline = Instant::now() + Duration::from_secs(30);
    let pl = loop {
        let r = http.get(&format!("{base}playlist.m3u8"))?;
        if r.status == 200 {
            let pl = playlist::parse(std::str::from_utf8(&r.body)?)?;
            if !pl.parts.is_empty() {
                break pl;
            }
        } else {
            ensure!(r.status == 404, "playlist: HTTP {}", r.status);
        }
        ensure!(
            Instant::now() < deadline,
            "no playlist with parts after 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let map = pl.map_uri.clone().context("playlist without EXT-X-MAP")?;
    let init = http.get(&format!("{base}{map}"))?;
    ensure!(init.status == 200, "init segment: HTTP {}", init.status);
    let track = fmp4::video_track(&init.body)?;
    ensure!(track.timescale > 0, "video timescale 0");
    log.track = Some(track);

    let mut last: PartEntry = pl.parts.last().cloned().context("no parts")?;
    let mut last_seq =
        playlist::part_seq(&last.uri).context("part URI without a sequence number")?;
    let mut measured = 0;
    while !stop.load(Ordering::SeqCst) {
        let path = format!(
            "{base}playlist.m3u8?_HLS_msn={}&_HLS_part={}",
            last.msn,
            last.index + 1
        );
        let t_request = Instant::now();
        let r = http.get(&path)?;
        let t_answer = Instant::now();
        match r.status {
            200 => {}
            503 => {
                log.timeouts += 1;
                if source_done.load(Ordering::SeqCst) {
                    break;
                }
                continue;
            }
            s => bail!(
                "{path}: HTTP {s}: {}",
                String::from_utf8_lossy(&r.body).trim()
            ),
        }
        let pl = playlist::parse(std::str::from_utf8(&r.body)?)?;
        let fresh: Vec<(u64, PartEntry)> = pl
            .parts
            .iter()
            .filter_map(|p| playlist::part_seq(&p.uri).map(|s| (s, p.clone())))
            .filter(|(s, _)| *s > last_seq)
            .collect();
        if fresh.is_empty() {
            log.empty_answers += 1;
            if pl.ended {
                break;
            }
            continue;
        }
        for (i, (seq, p)) in fresh.iter().enumerate() {
            let body = http.get(&format!("{base}{}", p.uri))?;
            ensure!(body.status == 200, "{}: HTTP {}", p.uri, body.status);
            let run = fmp4::video_run(&body.body, &track)?;
            let tfdt = i64::try_from(
                u128::from(run.base_decode_time) * 90_000 / u128::from(track.timescale),
            )?;
            let first_frame = src.frame_at(tfdt).with_context(|| {
                format!("{}: tfdt {tfdt} is no source frame's decode time", p.uri)
            })?;
            let frame_in_track =
                u32::try_from(cfg.frame_ticks * i64::from(track.timescale) / TICKS_PER_SEC)?;
            let rec = PartRecord {
                seq: *seq,
                msn: p.msn,
                index: p.index,
                t_request,
                t_answer,
                first_frame,
                frames: run.durations.len(),
                even: run.durations.iter().all(|d| *d == frame_in_track),
                requested: i == 0,
            };
            if rec.requested && rec.last_frame() >= cfg.warmup_frames {
                measured += 1;
            }
            log.parts.push(rec);
        }
        if let Some((seq, p)) = fresh.last() {
            last_seq = *seq;
            last = p.clone();
        }
        if measured >= cfg.want {
            break;
        }
        if pl.ended {
            break;
        }
    }
    Ok(log)
}

/// Per measured part: the figures the report is made of.
struct PartLatency {
    raw_us: u64,
    /// Answer − the moment the next frame's first packet was handed to SRT
    /// (negative when the answer came first).
    after_next_us: i64,
    before_next_sent: bool,
    before_next_arrival: bool,
    request_before_last_frame: bool,
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn report(
    args: &Args,
    src: &Source,
    frame_ticks: i64,
    run: &Run,
    gateway_warnings: usize,
    load: (Option<f64>, Option<f64>),
) -> anyhow::Result<()> {
    let frame_ms = frame_ticks as f64 * 1000.0 / TICKS_PER_SEC as f64;
    let latency_us = us(args.srt_latency) as f64;
    let warmup_frames = (args.warmup.as_secs_f64() * 1000.0 / frame_ms).ceil() as usize;
    let sent_at = |datagram: usize| run.sent.get(datagram).copied();

    // Sanity of the part → frame mapping: parts tile the frames without gaps.
    let parts = &run.player.parts;
    let mut per_part: BTreeMap<usize, usize> = BTreeMap::new();
    let mut gaps = 0;
    let mut uneven = 0;
    for w in parts.windows(2) {
        if w[1].first_frame != w[0].first_frame + w[0].frames {
            gaps += 1;
        }
    }
    for p in parts {
        *per_part.entry(p.frames).or_default() += 1;
        if !p.even {
            uneven += 1;
        }
    }

    let mut lat = Vec::new();
    let mut skipped_unsent = 0;
    let mut worst: Vec<(u64, &PartRecord)> = Vec::new();
    let origin = run.sent.first().copied().context("nothing was sent")?;
    let at = |t: Instant| t.saturating_duration_since(origin).as_secs_f64() * 1000.0;
    let mut csv = String::from(
        "seq,msn,part,first_frame,last_frame,last_sent_ms,next_sent_ms,request_ms,answer_ms,\
         gateway_added_ms,after_next_arrival_ms,srt_alone_last_datagram_ms\n",
    );
    for p in parts
        .iter()
        .filter(|p| p.requested && p.last_frame() >= warmup_frames)
    {
        let last = p.last_frame();
        let (Some(frame), Some(next)) = (src.frames.get(last), src.frames.get(last + 1)) else {
            skipped_unsent += 1;
            continue;
        };
        let (Some(t_last), Some(t_next)) =
            (sent_at(frame.last_datagram), sent_at(next.first_datagram))
        else {
            skipped_unsent += 1;
            continue;
        };
        ensure!(
            p.t_answer >= t_last,
            "part {} (frames {}..={last}) was answered before its last frame was sent: mapping is wrong",
            p.seq,
            p.first_frame
        );
        let raw = us(p.t_answer - t_last);
        worst.push((raw, p));
        let lat_ms = args.srt_latency.as_secs_f64() * 1000.0;
        let srt_alone = run
            .baseline
            .as_ref()
            .and_then(|(s, r)| {
                let (s, r) = (s.get(frame.last_datagram)?, r.get(frame.last_datagram)?);
                Some(format!("{:.3}", at(*r) - at(*s) - lat_ms))
            })
            .unwrap_or_default();
        csv.push_str(&format!(
            "{},{},{},{},{last},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{srt_alone}\n",
            p.seq,
            p.msn,
            p.index,
            p.first_frame,
            at(t_last),
            at(t_next),
            at(p.t_request),
            at(p.t_answer),
            at(p.t_answer) - at(t_last) - lat_ms,
            at(p.t_answer) - at(t_next) - lat_ms,
        ));
        lat.push(PartLatency {
            raw_us: raw,
            after_next_us: if p.t_answer >= t_next {
                i64::try_from(us(p.t_answer - t_next))?
            } else {
                -i64::try_from(us(t_next - p.t_answer))?
            },
            before_next_sent: p.t_answer < t_next,
            before_next_arrival: p.t_answer < t_next + args.srt_latency,
            request_before_last_frame: p.t_request <= t_last,
        });
    }
    ensure!(!lat.is_empty(), "no part could be measured");
    let raw = Summary::of(lat.iter().map(|l| l.raw_us))?;
    let added = raw.minus(latency_us);
    // Shifted by two frame intervals so that hdrhistogram sees no negative values
    // (an answer can precede the next frame by at most one interval).
    let shift = 2 * frame_ticks * 1_000_000 / TICKS_PER_SEC;
    let after_next = Summary::of(
        lat.iter()
            .map(|l| u64::try_from(l.after_next_us + shift).unwrap_or(0)),
    )?
    .minus(shift as f64 + latency_us);
    let share =
        |f: fn(&PartLatency) -> bool| lat.iter().filter(|l| f(l)).count() as f64 / lat.len() as f64;
    let before_next_sent = share(|l| l.before_next_sent);
    let before_next_arrival = share(|l| l.before_next_arrival);
    let blocked = share(|l| l.request_before_last_frame);
    let late_by_a_frame = lat
        .iter()
        .filter(|l| l.raw_us as f64 - latency_us >= frame_ms * 1000.0 * 0.9)
        .count();

    // SRT alone, for the same frames' last datagrams.
    let srt_alone = match &run.baseline {
        Some((s, r)) => {
            let delays = src.frames.iter().skip(warmup_frames).filter_map(|f| {
                Some(us(r
                    .get(f.last_datagram)?
                    .saturating_duration_since(*s.get(f.last_datagram)?)))
            });
            Some(Summary::of(delays)?)
        }
        None => None,
    };

    let measured = lat.len();
    let extra = parts.iter().filter(|p| !p.requested).count();
    println!();
    println!(
        "dropline part-latency: {measured} parts after a {} s warm-up; SRT latency {} ms (gateway and publisher); packing {}",
        args.warmup.as_secs_f64(),
        args.srt_latency.as_millis(),
        args.packing.name()
    );
    println!(
        "source: testsrc2 640x360, {:.2} fps H.264 (x264 {}, GOP 30, no B-frames) + AAC 48 kHz; {} frames, {} datagrams sent",
        1000.0 / frame_ms,
        args.preset,
        src.frames.len(),
        run.sent.len()
    );
    let shape: Vec<String> = per_part.iter().map(|(f, n)| format!("{n} × {f}")).collect();
    println!(
        "parts seen: {} ({} frames each); gaps in the frame sequence: {gaps}; parts with an uneven sample duration: {uneven}",
        parts.len(),
        shape.join(", ")
    );
    println!(
        "player: {extra} parts arrived beside the one asked for, {} blocked requests timed out (503), {} answers without a new part",
        run.player.timeouts, run.player.empty_answers
    );
    println!();
    println!("{}", Summary::header());
    println!("{}", raw.row("answer − last packet handed to SRT (raw)"));
    println!("{}", added.row("raw − SRT latency (gateway-added)"));
    println!(
        "{}",
        after_next.row("answer − next frame's 1st packet − SRT lat.")
    );
    if let Some(s) = &srt_alone {
        println!(
            "{}",
            s.minus(latency_us)
                .row("SRT alone: release − send − SRT latency")
        );
    }
    println!("frame interval: {frame_ms:.2} ms");
    println!();
    println!(
        "answered before the next frame was sent:                         {:>6.1} %",
        before_next_sent * 100.0
    );
    println!(
        "answered before the next frame could reach the gateway (+SRT):   {:>6.1} %",
        before_next_arrival * 100.0
    );
    println!(
        "gateway-added ≥ 0.9 frame interval:                              {:>6.1} %",
        late_by_a_frame as f64 * 100.0 / measured as f64
    );
    println!(
        "blocked request was sent before the part's last frame:           {:>6.1} %",
        blocked * 100.0
    );
    worst.sort_by_key(|w| std::cmp::Reverse(w.0));
    let worst_list: Vec<String> = worst
        .iter()
        .take(5)
        .map(|(raw, p)| {
            format!(
                "part{} (msn {} part {}, frames {}..={}) {:.2} ms",
                p.seq,
                p.msn,
                p.index,
                p.first_frame,
                p.last_frame(),
                *raw as f64 / 1000.0 - latency_us / 1000.0
            )
        })
        .collect();
    println!("slowest (gateway-added): {}", worst_list.join("; "));
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let fmt_load = |l: Option<f64>| l.map_or_else(|| "?".to_owned(), |l| format!("{l:.2}"));
    println!(
        "machine: {cores} cores, 1-min load average {} at start, {} at end",
        fmt_load(load.0),
        fmt_load(load.1)
    );
    if gateway_warnings > 0 {
        println!(
            "gateway logged {gateway_warnings} warnings/errors (run with --keep to read gateway.log)"
        );
    }

    let ms = |us: f64| (us / 10.0).round() / 100.0;
    let json = serde_json::json!({
        "bench": "part-latency",
        "parts": measured,
        "srt_latency_ms": args.srt_latency.as_millis() as u64,
        "packing": args.packing.name(),
        "frame_ms": ms(frame_ms * 1000.0),
        "raw": raw.json(),
        "gateway_added": added.json(),
        "after_next_frame_arrival": after_next.json(),
        "srt_alone_added": srt_alone.map(|s| s.minus(latency_us).json()),
        "answered_before_next_frame_sent": before_next_sent,
        "answered_before_next_frame_arrival": before_next_arrival,
        "late_by_a_frame": late_by_a_frame as f64 / measured as f64,
        "blocked_before_last_frame": blocked,
        "extra_parts": extra,
        "timeouts": run.player.timeouts,
        "mapping_gaps": gaps,
        "cores": cores,
        "load_start": load.0,
        "load_end": load.1,
    });

    if let Some(path) = &args.baseline {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let base: serde_json::Value = serde_json::from_str(text.trim()).context("baseline JSON")?;
        let ratio = |q: &str| -> Option<f64> {
            let b = base.get("gateway_added")?.get(q)?.as_f64()?;
            let c = json.get("gateway_added")?.get(q)?.as_f64()?;
            (b != 0.0).then(|| c / b)
        };
        let fmt = |r: Option<f64>| r.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}×"));
        println!(
            "gateway-added vs baseline {}: p50 {}, p90 {}, p99 {}",
            path.display(),
            fmt(ratio("p50_ms")),
            fmt(ratio("p90_ms")),
            fmt(ratio("p99_ms"))
        );
    }
    println!();
    let line = json.to_string();
    println!("{line}");
    if let Some(path) = &args.csv {
        std::fs::write(path, &csv).with_context(|| format!("write {}", path.display()))?;
    }
    if let Some(path) = &args.json_out {
        std::fs::write(path, format!("{line}\n"))
            .with_context(|| format!("write {}", path.display()))?;
    }
    ensure!(
        measured >= args.parts,
        "only {measured} of {} parts could be measured ({skipped_unsent} without a sent next frame)",
        args.parts
    );
    Ok(())
}
