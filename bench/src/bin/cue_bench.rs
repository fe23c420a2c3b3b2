//! `cue-bench`: the commerce overlay's cue path, measured from outside. See
//! `bench/README.md`.
//!
//! A release gateway with the cue API on stream `bench`, a live ffmpeg
//! encoder publishing to it over SRT, and a player that follows the video
//! media playlist with blocking reloads (`_HLS_msn`/`_HLS_part`, like
//! hls.js) and fetches every new part. One process, one wall clock
//! (`SystemTime`, the clock the gateway stamps PROGRAM-DATE-TIME with):
//! 1. latency: cues posted one at a time; API accept → the reload that lists
//!    its DATERANGE, → the part whose `emsg` carries it, and → the moment a
//!    player at nominal latency presents it;
//! 2. placement: cues anchored on a program date-time or a wall-clock time;
//!    where they landed (DATERANGE START-DATE, and the emsg's time mapped
//!    through its part's PDT) against where they were asked for;
//! 3. throughput: N clients posting cues back to back for T seconds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use bench::gateway::{self, Gateway};
use bench::http1::Client;
use bench::playlist;
use bench::source::{self, SourceSpec};
use bench::stats::Summary;
use bench::{fmp4, sys};
use clap::Parser;
use packager::units::WallTime;
use serde_json::Value;

const STREAM: &str = "bench";
const TOKEN: &str = "cue-bench-token-0123456789";
const PART_TARGET_MS: i64 = 200;
const CUES_PATH: &str = "/api/v1/streams/bench/cues";
const ID3_SCHEME: &str = "https://aomedia.org/emsg/ID3";

/// The commerce overlay's cues, API to player (bench/README.md).
#[derive(Parser)]
#[command(
    name = "cue-bench",
    after_help = gateway::BIN_HELP
)]
struct Args {
    /// Cues of the latency/placement phase (at least 3: one per anchor kind).
    #[arg(long, default_value_t = 60)]
    cues: usize,
    /// One cue every this many ms in that phase.
    #[arg(long, default_value_t = 400)]
    every_ms: u64,
    /// API clients of the throughput phase.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Length of the throughput phase, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// SRT latency of the gateway and the encoder, ms.
    #[arg(long, default_value_t = 120)]
    srt_latency_ms: u64,
    /// Keep the temporary directory (gateway log, cue store).
    #[arg(long)]
    keep: bool,
}

/// Microseconds since the epoch: the gateway's PDT clock.
fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.cues >= 3 && args.clients >= 1 && args.seconds >= 1,
        "nothing to measure: --cues ≥ 3, --clients ≥ 1, --seconds ≥ 1"
    );
    bench::run_on_two_workers(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("dropline-cue-bench-")
        .tempdir()
        .context("temporary directory")?;
    let log_path = dir.path().join("gateway.log");
    let env = [
        ("DROPLINE_SRT_LATENCY_MS", args.srt_latency_ms.to_string()),
        ("DROPLINE_HLS_PART_TARGET_MS", PART_TARGET_MS.to_string()),
        ("DROPLINE_HLS_SEGMENT_DURATION_MS", "2000".to_owned()),
        (
            "DROPLINE_STORAGE_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("DROPLINE_STREAM_BENCH_API_TOKEN", TOKEN.to_owned()),
    ];
    let load_before = sys::load_average();
    let mut gw = Gateway::start(&log_path, &env, None).await?;
    let url = format!(
        "srt://{}?streamid=publish:{STREAM}&latency={}",
        gw.srt,
        args.srt_latency_ms * 1000
    );
    let spec = SourceSpec {
        secs: 0,
        size: "640x360",
        preset: "veryfast".to_owned(),
        video_kbps: None,
    };
    let mut encoder = source::publish_live(&spec, &url)?;
    eprintln!("gateway: srt={} http={}; encoder: {url}", gw.srt, gw.http);
    let (http, keep) = (gw.http, args.keep);
    let result = tokio::task::spawn_blocking(move || measure(&args, http))
        .await
        .context("join")?;
    let _ = encoder.start_kill();
    gw.stop().await;
    let warnings = gateway::log_warnings(&log_path);
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gateway log (last lines):");
            for l in gateway::log_tail(&log_path, 20) {
                eprintln!("  {l}");
            }
            return Err(e);
        }
    };
    print!("{report}");
    println!(
        "gateway warnings/errors logged: {warnings}; load average before/after: {:?}/{:?}",
        load_before,
        sys::load_average()
    );
    if keep {
        let kept = dir.keep();
        eprintln!("kept {}", kept.display());
    }
    Ok(())
}

/// What the player saw of one cue.
#[derive(Clone, Debug, Default)]
struct Sighting {
    /// Wall time (µs) of the first reload answer listing its DATERANGE.
    daterange_at: Option<i64>,
    start_us: Option<i64>,
    /// Wall time (µs) the first part carrying its emsg was read, and the
    /// emsg's time mapped to a PDT through that part's PDT and tfdt.
    emsg_at: Option<i64>,
    emsg_pdt_us: Option<i64>,
    /// Distinct parts that carried it.
    emsg_parts: Vec<String>,
}

#[derive(Default)]
struct PlayerLog {
    cues: HashMap<String, Sighting>,
    /// Per new part: answer wall time − PDT of the part's end (how far
    /// behind real time the live edge is when the player learns of it).
    edge_lag_us: Vec<u64>,
    part_hold_back_us: Option<i64>,
    errors: Vec<String>,
}

fn cue_id(message: &[u8]) -> Option<String> {
    let description = format!("{}\0", overlay::book::TXXX_DESCRIPTION);
    let at = message
        .windows(description.len())
        .position(|w| w == description.as_bytes())?;
    let json: Value = serde_json::from_slice(&message[at + description.len()..]).ok()?;
    Some(json["id"].as_str()?.to_owned())
}

/// Follows the video playlist like hls.js until `stop`: a blocking reload for
/// the part after the last one seen, then every new part fetched.
fn play(http: SocketAddr, log: &Mutex<PlayerLog>, stop: &AtomicBool) -> anyhow::Result<()> {
    let base = format!("/{STREAM}/main/");
    let mut client = Client::new(http, Duration::from_secs(15));
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let r = client.get(&format!("{base}playlist.m3u8"))?;
        if r.status == 200 {
            let pl = playlist::parse(std::str::from_utf8(&r.body)?)?;
            if !pl.parts.is_empty() {
                break pl;
            }
        }
        ensure!(
            Instant::now() < deadline,
            "no playlist with parts within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let init = client.get(&format!("{base}{}", first.map_uri.context("no EXT-X-MAP")?))?;
    let track = fmp4::video_track(&init.body)?;
    let mut last = first.parts.last().cloned().context("no parts")?;
    let mut last_seq = playlist::part_seq(&last.uri).context("part URI")?;
    while !stop.load(Ordering::SeqCst) {
        let r = client.get(&format!(
            "{base}playlist.m3u8?_HLS_msn={}&_HLS_part={}",
            last.msn,
            last.index + 1
        ))?;
        let answered = wall_us();
        if r.status != 200 {
            continue; // 503: the part did not come in time; ask again
        }
        let pl = playlist::parse(std::str::from_utf8(&r.body)?)?;
        let mut g = log
            .lock()
            .map_err(|_| anyhow::anyhow!("player log poisoned"))?;
        g.part_hold_back_us = pl.part_hold_back_us;
        for d in &pl.dateranges {
            let s = g.cues.entry(d.id.clone()).or_default();
            s.daterange_at.get_or_insert(answered);
            s.start_us.get_or_insert(d.start_us);
        }
        drop(g);
        let fresh: Vec<_> = pl
            .parts
            .iter()
            .filter(|p| playlist::part_seq(&p.uri).is_some_and(|s| s > last_seq))
            .cloned()
            .collect();
        for p in &fresh {
            let body = client.get(&format!("{base}{}", p.uri))?;
            let read = wall_us();
            ensure!(body.status == 200, "{}: HTTP {}", p.uri, body.status);
            let run = fmp4::video_run(&body.body, &track)?;
            let mut g = log
                .lock()
                .map_err(|_| anyhow::anyhow!("player log poisoned"))?;
            if let Some(pdt) = p.pdt_us {
                let lag = answered - (pdt + p.duration_us);
                g.edge_lag_us.push(u64::try_from(lag.max(0))?);
            }
            for e in fmp4::event_messages(&body.body)? {
                if e.scheme_id_uri != ID3_SCHEME || e.timescale == 0 {
                    continue;
                }
                let Some(id) = cue_id(&e.message_data) else {
                    g.errors.push(format!("{}: emsg without a cue", p.uri));
                    continue;
                };
                // emsg time and tfdt on the same track timeline: its offset
                // into the part, added to the part's PDT.
                let tfdt_us =
                    i128::from(run.base_decode_time) * 1_000_000 / i128::from(track.timescale);
                let at_us = i128::from(e.presentation_time) * 1_000_000 / i128::from(e.timescale);
                let s = g.cues.entry(id).or_default();
                s.emsg_at.get_or_insert(read);
                if let Some(pdt) = p.pdt_us {
                    s.emsg_pdt_us
                        .get_or_insert(pdt + i64::try_from(at_us - tfdt_us)?);
                }
                if !s.emsg_parts.contains(&p.uri) {
                    s.emsg_parts.push(p.uri.clone());
                }
            }
        }
        if let Some(p) = fresh.last() {
            last_seq = playlist::part_seq(&p.uri).context("part URI")?;
            last = p.clone();
        }
    }
    Ok(())
}

/// A cue posted in the latency phase.
struct Posted {
    id: String,
    kind: &'static str,
    accepted_us: i64,
    /// Where it was asked for (PDT, µs), for the anchored kinds.
    intended_us: Option<i64>,
}

fn post(client: &mut Client, key: &str, body: &str) -> anyhow::Result<(u16, Value)> {
    let auth = format!("Bearer {TOKEN}");
    let r = client.post(
        CUES_PATH,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key),
        ],
        body.as_bytes(),
    )?;
    Ok((
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    ))
}

fn rfc3339(us: i64) -> String {
    WallTime(us).to_rfc3339_millis()
}

/// Cues one at a time, cycling through anchors "now", a program date-time
/// and a wall-clock time, each 1 s ahead.
fn post_latency_cues(http: SocketAddr, args: &Args) -> anyhow::Result<Vec<Posted>> {
    let mut client = Client::new(http, Duration::from_secs(15));
    let mut edge_pdt_us: Option<i64> = None;
    let mut out = Vec::new();
    for i in 0..args.cues {
        let id = format!("lat-{i}");
        let kind = ["now", "program-date-time", "wall-clock"][i % 3];
        let (anchor, intended) = match (kind, edge_pdt_us) {
            ("program-date-time", Some(edge)) => {
                let at = edge + 1_000_000;
                (
                    format!(r#"{{"type":"program-date-time","at":"{}"}}"#, rfc3339(at)),
                    Some(at),
                )
            }
            ("wall-clock", _) => {
                let at = wall_us() + 1_000_000;
                (
                    format!(r#"{{"type":"wall-clock","at":"{}"}}"#, rfc3339(at)),
                    Some(at),
                )
            }
            _ => (r#"{"type":"now"}"#.to_owned(), None),
        };
        // PDTs are whole milliseconds on the wire.
        let intended = intended.map(|us| us / 1000 * 1000);
        let body =
            format!(r#"{{"id":"{id}","kind":"custom","payload":{{"i":{i}}},"anchor":{anchor}}}"#);
        let (status, answer) = post(&mut client, &id, &body)?;
        let accepted_us = wall_us();
        ensure!(status == 201, "{id}: HTTP {status}: {answer}");
        edge_pdt_us = answer["live_edge"]["pdt"]
            .as_str()
            .and_then(overlay::rfc3339::parse)
            .map(|t| t.0);
        out.push(Posted {
            id,
            kind: if intended.is_some() { kind } else { "now" },
            accepted_us,
            intended_us: intended,
        });
        std::thread::sleep(Duration::from_millis(args.every_ms));
    }
    Ok(out)
}

/// `clients` clients posting "now" cues back to back for `seconds`: the
/// answers (201) per second and the time each took.
fn throughput(http: SocketAddr, args: &Args) -> anyhow::Result<(usize, f64, Vec<u64>, usize)> {
    let start = Instant::now();
    let until = start + Duration::from_secs(args.seconds);
    let workers: Vec<_> = (0..args.clients)
        .map(|c| {
            std::thread::spawn(move || -> anyhow::Result<(Vec<u64>, usize)> {
                let mut client = Client::new(http, Duration::from_secs(15));
                let mut times = Vec::new();
                let mut refused = 0;
                let mut n = 0;
                while Instant::now() < until {
                    let key = format!("load-{c}-{n}");
                    let body = format!(r#"{{"kind":"custom","payload":{{"c":{c},"n":{n}}}}}"#);
                    let t = Instant::now();
                    let (status, _) = post(&mut client, &key, &body)?;
                    times.push(u64::try_from(t.elapsed().as_micros())?);
                    if status != 201 {
                        refused += 1;
                    }
                    n += 1;
                }
                Ok((times, refused))
            })
        })
        .collect();
    let mut times = Vec::new();
    let mut refused = 0;
    for w in workers {
        let (t, r) = w
            .join()
            .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
        times.extend(t);
        refused += r;
    }
    let secs = start.elapsed().as_secs_f64();
    let accepted = times.len() - refused;
    Ok((accepted, accepted as f64 / secs, times, refused))
}

fn ms(us: f64) -> f64 {
    us / 1000.0
}

fn measure(args: &Args, http: SocketAddr) -> anyhow::Result<String> {
    let log = Arc::new(Mutex::new(PlayerLog::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let player = {
        let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
        std::thread::spawn(move || play(http, &log, &stop))
    };
    // The player is live once it has seen a part; give it a few seconds of
    // steady state before the first cue.
    let deadline = Instant::now() + Duration::from_secs(40);
    while log.lock().map(|g| g.edge_lag_us.len()).unwrap_or(0) < 15 {
        if player.is_finished() || Instant::now() > deadline {
            stop.store(true, Ordering::SeqCst);
            let r = player
                .join()
                .map_err(|_| anyhow::anyhow!("player panicked"))?;
            r?;
            bail!("the player saw no parts within 40 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let posted = post_latency_cues(http, args)?;
    // Every cue is due within 1 s; a few parts more for the last ones.
    std::thread::sleep(Duration::from_secs(3));
    let (accepted, rate, answer_times, refused) = throughput(http, args)?;
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    player
        .join()
        .map_err(|_| anyhow::anyhow!("player panicked"))??;
    let log = log
        .lock()
        .map_err(|_| anyhow::anyhow!("player log poisoned"))?;
    report(args, &posted, &log, accepted, rate, &answer_times, refused)
}

fn report(
    args: &Args,
    posted: &[Posted],
    log: &PlayerLog,
    accepted: usize,
    rate: f64,
    answer_times: &[u64],
    refused: usize,
) -> anyhow::Result<String> {
    let phb_us = log.part_hold_back_us.context("no PART-HOLD-BACK")?;
    let edge = Summary::of(log.edge_lag_us.iter().copied())?;
    // A player at nominal latency stays PART-HOLD-BACK behind the live edge
    // it knows: it presents PDT p at about p + edge lag + PART-HOLD-BACK.
    let player_latency_us = edge.p50 + phb_us as f64;
    let mut to_daterange = Vec::new();
    let mut to_emsg = Vec::new();
    let mut to_event = Vec::new();
    let mut missing = Vec::new();
    let mut duplicated = Vec::new();
    let mut placement = Vec::new();
    let mut emsg_placement = Vec::new();
    let mut mismatched = 0;
    let since = |at: i64, from: i64| u64::try_from((at - from).max(0)).unwrap_or(0);
    for p in posted {
        let Some(s) = log.cues.get(&p.id) else {
            missing.push(p.id.as_str());
            continue;
        };
        let (Some(dr), Some(em), Some(start)) = (s.daterange_at, s.emsg_at, s.start_us) else {
            missing.push(p.id.as_str());
            continue;
        };
        if s.emsg_parts.len() != 1 {
            duplicated.push(p.id.as_str());
        }
        // The emsg's time, mapped through the part's PDT, is the START-DATE
        // (truncated to the millisecond) of its DATERANGE.
        if s.emsg_pdt_us
            .is_some_and(|e| (e / 1000 - start / 1000).abs() > 1)
        {
            mismatched += 1;
        }
        if let Some(intended) = p.intended_us {
            placement.push((p.kind, start - intended));
            if let Some(e) = s.emsg_pdt_us {
                emsg_placement.push((p.kind, e - intended));
            }
        } else {
            to_daterange.push(since(dr, p.accepted_us));
            to_emsg.push(since(em, p.accepted_us));
            let learnt = dr.min(em);
            let presented = (start as f64 + player_latency_us) as i64;
            to_event.push(since(learnt.max(presented), p.accepted_us));
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(
        &mut out,
        format!(
            "cue-bench: PART-TARGET {PART_TARGET_MS} ms, PART-HOLD-BACK {:.0} ms, SRT latency {} ms, {} cues every {} ms",
            ms(phb_us as f64),
            args.srt_latency_ms,
            posted.len(),
            args.every_ms
        ),
    );
    line(&mut out, Summary::header());
    line(
        &mut out,
        edge.row("live edge lag (answer − PDT of part end)"),
    );
    line(
        &mut out,
        format!(
            "{:<44} {:>6} {:>8.2}   (edge lag p50 + PART-HOLD-BACK)",
            "player latency at nominal latency",
            "",
            ms(player_latency_us)
        ),
    );
    for (label, v) in [
        ("accept → DATERANGE in a reload (\"now\")", &to_daterange),
        ("accept → emsg in a part (\"now\")", &to_emsg),
        ("accept → player event (\"now\")", &to_event),
    ] {
        if !v.is_empty() {
            line(&mut out, Summary::of(v.iter().copied())?.row(label));
        }
    }
    if !to_event.is_empty() {
        let ev = Summary::of(to_event.iter().copied())?;
        let goal = player_latency_us + (PART_TARGET_MS * 1000) as f64;
        line(
            &mut out,
            format!(
                "goal accept → event ≤ player latency + one part = {:.1} ms: p50 {:.1} ms, p95 {:.1} ms ({})",
                ms(goal),
                ms(ev.p50),
                ms(ev.p95),
                if ev.p95 <= goal { "met" } else { "NOT met" }
            ),
        );
    }
    for (label, v) in [
        ("DATERANGE START-DATE", &placement),
        ("emsg time via the part's PDT", &emsg_placement),
    ] {
        for kind in ["program-date-time", "wall-clock"] {
            let errs: Vec<i64> = v
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, e)| *e)
                .collect();
            if errs.is_empty() {
                continue;
            }
            let abs = Summary::of(errs.iter().map(|e| e.unsigned_abs()))?;
            line(
                &mut out,
                format!(
                    "placement error, {kind} anchor, {label}: n {} |p50| {:.2} ms |p99| {:.2} ms, signed min {:+.2} max {:+.2} ms",
                    errs.len(),
                    ms(abs.p50),
                    ms(abs.p99),
                    ms(errs.iter().copied().min().unwrap_or(0) as f64),
                    ms(errs.iter().copied().max().unwrap_or(0) as f64),
                ),
            );
        }
    }
    let answers = Summary::of(answer_times.iter().copied())?;
    line(
        &mut out,
        format!(
            "API throughput: {} clients × {} s: {accepted} cues accepted ({refused} refused), {rate:.0} cues/s (goal ≥ 50); answer p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            args.clients,
            args.seconds,
            ms(answers.p50),
            ms(answers.p99),
            ms(answers.max)
        ),
    );
    line(
        &mut out,
        format!(
            "carriage: {} of {} cues seen in both carriages; missing {:?}; in more than one part {:?}; emsg/DATERANGE time mismatches {mismatched}; player errors {:?}",
            posted.len() - missing.len(),
            posted.len(),
            missing,
            duplicated,
            log.errors.iter().take(3).collect::<Vec<_>>()
        ),
    );
    Ok(out)
}
