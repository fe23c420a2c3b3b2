//! `bonding-bench`: what SRTLA bonding delivers over bad links. See `bench/README.md`.
//!
//! Everything runs in this process on 127.0.0.1 except the sender: a numbered SRT stream
//! (`bench::probe`) is published by an srt-tokio caller into `srtla-send`, spread over N `impair`
//! relays (`bench::impair`, in-process) into the gateway's SRTLA receiver (`SrtlaIngest`, in-process,
//! the gateway's own code), which forwards it to an srt-tokio listener here. Sender and receiver
//! read one clock, so loss and latency are exact. Three measurements:
//! 1. added latency of the bonding layer: the same stream over one clean link, with and without
//!    SRTLA (without: caller → relay → listener);
//! 2. delivered throughput vs the sum of the links' rate caps, offered load swept across it;
//! 3. recovery after a link death (and a link added later).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bench::cli;
use bench::impair::{LinkState, Options, Relay, RelayConfig, Schedule};
use bench::probe::{self, Sink};
use bench::stats::Summary;
use clap::{Parser, ValueEnum};
use gateway::config::SrtlaConfig;
use gateway::ingest::srtla::io::SrtlaIngest;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

/// One measurement of the bonding benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Phase {
    Latency,
    Loss,
    Throughput,
    Recovery,
}

/// What bonding delivers over bad links (bench/README.md).
#[derive(Clone, Debug, Parser)]
#[command(
    name = "bonding-bench",
    after_help = "environment: DROPLINE_SRTLA_SEND_BIN (default: srtla-send next to this binary)"
)]
struct Args {
    /// Impaired links (one is killed: at least 2).
    #[arg(long, default_value_t = 3)]
    links: usize,
    /// Rate cap of each link, kb/s.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    link_kbps: u64,
    /// Loss of each link, both directions.
    #[arg(long, default_value_t = 0.03)]
    loss: f64,
    /// Base one-way delay, ms.
    #[arg(long, default_value_t = 40)]
    delay_ms: u64,
    /// Uniform jitter on top, in order, ms (110: 40-150 ms).
    #[arg(long, default_value_t = 110)]
    jitter_ms: u64,
    /// SRT latency of caller and listener, ms.
    #[arg(long = "srt-latency-ms", value_name = "MS", default_value = "1000", value_parser = cli::millis)]
    srt_latency: Duration,
    /// Length of each run, seconds (the sweep's steps last half of it).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(4..))]
    seconds: u64,
    /// The recovery run's load, kb/s (default: 70 % of what the surviving links carry).
    #[arg(long)]
    offered_kbps: Option<u64>,
    /// Run one measurement.
    #[arg(long, value_enum)]
    only: Option<Phase>,
    /// Also write the JSON result line to FILE.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
}

impl Args {
    /// One impaired link's settings.
    fn link(&self) -> anyhow::Result<Options> {
        let mut o = Options::default();
        o.set_all(&format!(
            "delay-ms={} jitter-ms={} loss={} rate-kbps={}",
            self.delay_ms, self.jitter_ms, self.loss, self.link_kbps
        ))?;
        Ok(o)
    }

    fn wants(&self, phase: Phase) -> bool {
        self.only.is_none_or(|o| o == phase)
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.links >= 2,
        "--links must be at least 2 (one is killed)"
    );
    bench::run_on_two_workers(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_owned))
            .unwrap_or_default()
    };
    let load_start = load();
    let mut json = serde_json::json!({
        "links": args.links, "link_kbps": args.link_kbps, "loss": args.loss,
        "delay_ms": args.delay_ms, "jitter_ms": args.jitter_ms,
        "srt_latency_ms": args.srt_latency.as_millis() as u64,
    });
    println!(
        "bonding-bench: {} links × {} kb/s, loss {} %, delay {}–{} ms, SRT latency {} ms",
        args.links,
        args.link_kbps,
        args.loss * 100.0,
        args.delay_ms,
        args.delay_ms + args.jitter_ms,
        args.srt_latency.as_millis()
    );
    if args.wants(Phase::Latency) {
        json["latency"] = latency(&args).await?;
    }
    if args.wants(Phase::Loss) {
        json["loss_repair"] = loss_repair(&args).await?;
    }
    if args.wants(Phase::Throughput) {
        json["throughput"] = throughput(&args).await?;
    }
    if args.wants(Phase::Recovery) {
        json["recovery"] = recovery(&args).await?;
    }
    json["load_1min"] = serde_json::json!([load_start, load()]);
    println!(
        "\nload (1 min) at start {load_start}, at end {}\n{json}",
        load()
    );
    if let Some(f) = &args.json_out {
        std::fs::write(f, format!("{json}\n")).with_context(|| format!("write {}", f.display()))?;
    }
    Ok(())
}

/// The receiving half of a path: the SRT listener that logs, and (bonded) the gateway's SRTLA
/// receiver in front of it.
struct Far {
    sink: Sink,
    srtla: Option<(SocketAddr, CancellationToken)>,
}

impl Far {
    async fn start(latency: Duration, bonded: bool) -> anyhow::Result<Self> {
        let sink = Sink::start(latency).await?;
        let srtla = if bonded {
            let ingest =
                SrtlaIngest::bind("127.0.0.1:0".parse()?, SrtlaConfig::default().receiver())
                    .await
                    .context("bind SRTLA receiver")?;
            let addr = ingest.local_addr();
            let stop = CancellationToken::new();
            tokio::spawn(ingest.run(sink.addr, stop.clone()));
            Some((addr, stop))
        } else {
            None
        };
        Ok(Self { sink, srtla })
    }

    /// Where links deliver: the SRTLA receiver, else the SRT listener itself.
    fn entry(&self) -> SocketAddr {
        self.srtla.as_ref().map_or(self.sink.addr, |s| s.0)
    }

    fn finish(self, sent: usize) -> probe::Received {
        if let Some((_, stop)) = self.srtla {
            stop.cancel();
        }
        self.sink.finish(sent)
    }
}

/// `srtla-send`, as a child process (killed when dropped).
struct SrtlaSend {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    srt: SocketAddr,
}

impl SrtlaSend {
    /// Starts it with one link per destination and waits until the group is registered.
    async fn start(receiver: SocketAddr, links: &[SocketAddr]) -> anyhow::Result<Self> {
        let bin = std::env::var_os("DROPLINE_SRTLA_SEND_BIN").map_or_else(
            || {
                std::env::current_exe()
                    .ok()
                    .and_then(|e| e.parent().map(|d| d.join("srtla-send")))
                    .unwrap_or_else(|| PathBuf::from("srtla-send"))
            },
            PathBuf::from,
        );
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.arg("--srtla").arg(receiver.to_string());
        for l in links {
            cmd.arg("--link").arg(l.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {} (cargo build -p bench)", bin.display()))?;
        let stdin = child.stdin.take().context("srtla-send stdin")?;
        let mut lines = BufReader::new(child.stdout.take().context("srtla-send stdout")?).lines();
        let mut srt = None;
        let ready = async {
            while let Some(line) = lines.next_line().await? {
                if let Some(a) = line.strip_prefix("srtla-send ready srt=") {
                    srt = Some(a.parse::<SocketAddr>()?);
                } else if line == "registered" {
                    return anyhow::Ok(());
                }
            }
            bail!("srtla-send exited before it registered")
        };
        tokio::time::timeout(Duration::from_secs(10), ready)
            .await
            .context("srtla-send did not register within 10 s")??;
        // Drain stdout so that it never blocks.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            stdin,
            srt: srt.context("no ready line before `registered`")?,
        })
    }

    async fn add_link(&mut self, dest: SocketAddr) -> anyhow::Result<()> {
        self.stdin
            .write_all(format!("add {dest}\n").as_bytes())
            .await
            .context("srtla-send stdin")
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

async fn relay(upstream: SocketAddr, link: &Options, seed: u64) -> anyhow::Result<Relay> {
    let p = link.params();
    Relay::start(RelayConfig {
        listen: "127.0.0.1:0".parse()?,
        upstream,
        up: p,
        down: p,
        schedule: Schedule::default(),
        seed,
    })
    .await
    .context("start relay")
}

/// One run: a probe stream at `kbps` for `duration` over `links` (bonded if more than one or if
/// `bonded`), with `during` running alongside (it gets the relays and the sender).
struct RunResult {
    sent: Vec<Instant>,
    got: probe::Received,
    marks: Vec<Instant>,
    /// What each relay did (client → receiver direction).
    links: Vec<bench::impair::Stats>,
}

async fn probe_run<F, Fut>(
    args: &Args,
    bonded: bool,
    links: &[Options],
    kbps: u64,
    duration: Duration,
    during: F,
) -> anyhow::Result<RunResult>
where
    F: FnOnce(Vec<Relay>, Option<SrtlaSend>, SocketAddr) -> Fut,
    Fut:
        std::future::Future<Output = anyhow::Result<(Vec<Instant>, Vec<Relay>, Option<SrtlaSend>)>>,
{
    let far = Far::start(args.srt_latency, bonded).await?;
    let mut relays = Vec::new();
    for (i, l) in links.iter().enumerate() {
        relays.push(relay(far.entry(), l, 1 + i as u64).await?);
    }
    let addrs: Vec<SocketAddr> = relays.iter().map(Relay::local_addr).collect();
    let sender = if bonded {
        Some(SrtlaSend::start(far.entry(), &addrs).await?)
    } else {
        None
    };
    let entry = sender.as_ref().map_or(addrs[0], |s| s.srt);
    let caller = probe::Caller::start(entry, "publish:bench", args.srt_latency, &far.sink).await?;
    let send = tokio::spawn(probe::send_paced(
        caller,
        kbps,
        duration,
        args.srt_latency * 2,
    ));
    let (marks, relays, sender) = during(relays, sender, far.entry()).await?;
    let sent = send.await.context("sender task")??;
    let got = far.finish(sent.len());
    if let Some(s) = sender {
        s.stop().await;
    }
    let mut links = Vec::new();
    for r in &relays {
        links.push(r.stats().await.context("relay stopped")?.up);
    }
    Ok(RunResult {
        sent,
        got,
        marks,
        links,
    })
}

async fn idle(
    relays: Vec<Relay>,
    sender: Option<SrtlaSend>,
    _: SocketAddr,
) -> anyhow::Result<(Vec<Instant>, Vec<Relay>, Option<SrtlaSend>)> {
    Ok((Vec::new(), relays, sender))
}

/// Per link (sender → receiver): datagrams in, delivered, and dropped by loss / queue / death.
fn print_links(links: &[bench::impair::Stats]) {
    for (i, l) in links.iter().enumerate() {
        println!(
            "  link {i}: {} datagrams in, {} delivered, dropped: {} loss, {} queue, {} dead",
            l.received,
            l.delivered,
            l.lost,
            l.dropped_queue,
            l.dropped_down + l.flushed
        );
    }
}

/// 1. Added latency: one clean link, with and without SRTLA.
async fn latency(args: &Args) -> anyhow::Result<serde_json::Value> {
    let kbps = 2000;
    let secs = Duration::from_secs(args.seconds.min(15));
    println!(
        "\n1. added latency: one clean link, {kbps} kb/s for {secs:?}, without and with SRTLA"
    );
    println!("{}", Summary::header());
    let mut out = serde_json::Map::new();
    let mut p50 = [0.0; 2];
    let mut p99 = [0.0; 2];
    for (k, bonded) in [false, true].into_iter().enumerate() {
        let r = probe_run(args, bonded, &[Options::default()], kbps, secs, idle).await?;
        let lost = r.got.at.iter().filter(|g| g.is_none()).count();
        let s = Summary::of(probe::added_latency_us(&r.sent, &r.got, args.srt_latency))?;
        let label = if bonded {
            "release − send − L, via SRTLA"
        } else {
            "release − send − L, plain SRT"
        };
        println!("{}", s.row(label));
        if lost > 0 {
            println!(
                "  ({lost} of {} messages lost on a clean link)",
                r.sent.len()
            );
        }
        (p50[k], p99[k]) = (s.p50, s.p99);
        out.insert(
            if bonded { "srtla" } else { "plain" }.to_owned(),
            serde_json::json!({"summary": s.json(), "lost": lost}),
        );
    }
    println!(
        "added by SRTLA (sender + receiver hops): p50 {:+.2} ms, p99 {:+.2} ms",
        (p50[1] - p50[0]) / 1000.0,
        (p99[1] - p99[0]) / 1000.0
    );
    out.insert(
        "added_ms".to_owned(),
        serde_json::json!({"p50": (p50[1] - p50[0]) / 1000.0, "p99": (p99[1] - p99[0]) / 1000.0}),
    );
    Ok(out.into())
}

/// 1b. Loss repair: the same lossy link carrying plain SRT and SRTLA; SRT should repair both.
async fn loss_repair(args: &Args) -> anyhow::Result<serde_json::Value> {
    // Half the cap: room for SRT's retransmissions.
    let kbps = args.link_kbps / 2;
    let secs = Duration::from_secs(args.seconds.min(15));
    let link = args.link()?;
    println!(
        "\n1b. loss repair: one link ({} % loss both ways, {}–{} ms), {kbps} kb/s for {secs:?}",
        args.loss * 100.0,
        args.delay_ms,
        args.delay_ms + args.jitter_ms
    );
    let mut out = serde_json::Map::new();
    for bonded in [false, true] {
        let r = probe_run(args, bonded, std::slice::from_ref(&link), kbps, secs, idle).await?;
        let lost = r.got.at.iter().filter(|g| g.is_none()).count();
        let name = if bonded { "srtla" } else { "plain" };
        println!(
            "  {name:<6} {} sent, {lost} never delivered ({:.2} %)",
            r.sent.len(),
            100.0 * lost as f64 / r.sent.len().max(1) as f64
        );
        print_links(&r.links);
        out.insert(
            name.to_owned(),
            serde_json::json!({"sent": r.sent.len(), "lost": lost}),
        );
    }
    Ok(out.into())
}

/// 2. Throughput: offered load swept across the sum of the rate caps.
async fn throughput(args: &Args) -> anyhow::Result<serde_json::Value> {
    let sum = args.links as u64 * args.link_kbps;
    let secs = Duration::from_secs(args.seconds / 2);
    let links = vec![args.link()?; args.links];
    println!(
        "\n2. throughput: {} impaired links, sum of caps {sum} kb/s, {secs:?} per step",
        args.links
    );
    println!(
        "{:>8} {:>12} {:>14} {:>12} {:>8}",
        "offered", "offered kb/s", "delivered kb/s", "of sum", "lost %"
    );
    let mut rows = Vec::new();
    // Reference: plain SRT over one link with the same impairment and the whole sum as its cap.
    let mut one_pipe = args.link()?;
    one_pipe.rate_kbps = sum;
    let steps = [0.5, 0.7, 0.85, 1.0, 1.2].map(|s| (s, true, &links[..]));
    let reference = (0.85, false, std::slice::from_ref(&one_pipe));
    for (share, bonded, path) in steps.into_iter().chain([reference]) {
        let kbps = (sum as f64 * share) as u64;
        let r = probe_run(args, bonded, path, kbps, secs, idle).await?;
        // The first second holds SRT's start; measure after it.
        let from = r.sent.first().copied().context("nothing sent")? + Duration::from_secs(1);
        let to = *r.sent.last().context("nothing sent")?;
        let d = probe::delivery(&r.sent, &r.got, from, to);
        let lost = 100.0 * (d.sent - d.delivered) as f64 / d.sent.max(1) as f64;
        let name = if bonded {
            ""
        } else {
            "  plain SRT, one link capped at the sum"
        };
        println!(
            "{:>7.0}% {:>12} {:>14.0} {:>11.1}% {:>8.2}{name}",
            share * 100.0,
            kbps,
            d.kbps,
            100.0 * d.kbps / sum as f64,
            lost
        );
        rows.push(serde_json::json!({
            "bonded": bonded, "offered_share": share, "offered_kbps": kbps,
            "delivered_kbps": d.kbps.round(), "of_sum": d.kbps / sum as f64, "lost_pct": lost,
        }));
    }
    Ok(serde_json::json!({"sum_kbps": sum, "steps": rows}))
}

/// 3. Recovery: kill link 0 a third of the way in, add a fresh link at two thirds.
async fn recovery(args: &Args) -> anyhow::Result<serde_json::Value> {
    let sum = args.links as u64 * args.link_kbps;
    // What the links left after the death can still carry, with a margin.
    let kbps = args
        .offered_kbps
        .unwrap_or(sum * (args.links as u64 - 1) / args.links as u64 * 7 / 10);
    let total = Duration::from_secs(args.seconds);
    let (kill_at, add_at) = (total / 3, total * 2 / 3);
    let link = args.link()?;
    println!(
        "\n3. recovery: {} impaired links, {kbps} kb/s offered, link 0 dies at {kill_at:?}, \
         a new link is added at {add_at:?}",
        args.links
    );
    let fresh = link.clone();
    let r = probe_run(
        args,
        true,
        &vec![link; args.links],
        kbps,
        total,
        |relays, sender, entry| async move {
            let t0 = Instant::now();
            let mut sender = sender.context("bonded run without a sender")?;
            tokio::time::sleep_until((t0 + kill_at).into()).await;
            relays[0].set_state(LinkState::Down);
            let killed = Instant::now();
            tokio::time::sleep_until((t0 + add_at).into()).await;
            let added_relay = relay(entry, &fresh, 99).await?;
            sender.add_link(added_relay.local_addr()).await?;
            let added = Instant::now();
            let mut relays = relays;
            relays.push(added_relay);
            Ok((vec![killed, added], relays, Some(sender)))
        },
    )
    .await?;
    let (killed, added) = (r.marks[0], r.marks[1]);
    let first = r.sent.first().copied().context("nothing sent")?;
    let last = *r.sent.last().context("nothing sent")?;
    let before = probe::delivery(&r.sent, &r.got, first + Duration::from_secs(1), killed);
    let between = probe::delivery(&r.sent, &r.got, killed, added);
    let after = probe::delivery(&r.sent, &r.got, added, last);
    let rec = probe::recovery(&r.sent, &r.got, killed);
    let rec_add = probe::recovery(&r.sent, &r.got, added);
    let lost = |d: &probe::Delivery| d.sent - d.delivered;
    println!(
        "{:<28} {:>8} {:>10} {:>14}",
        "span (by send time)", "sent", "lost", "delivered kb/s"
    );
    for (name, d) in [
        ("before the death", &before),
        ("death → link added", &between),
        ("after the new link", &after),
    ] {
        println!("{name:<28} {:>8} {:>10} {:>14.0}", d.sent, lost(d), d.kbps);
    }
    print_links(&r.links);
    println!(
        "recovery after the death: {:.0} ms (last message lost, by send time; 0 = nothing lost)",
        rec.as_secs_f64() * 1000.0
    );
    println!(
        "after the link was added: {:.0} ms",
        rec_add.as_secs_f64() * 1000.0
    );
    Ok(serde_json::json!({
        "offered_kbps": kbps,
        "recovery_ms": rec.as_secs_f64() * 1000.0,
        "after_add_ms": rec_add.as_secs_f64() * 1000.0,
        "lost": {"before": lost(&before), "death_to_add": lost(&between), "after_add": lost(&after)},
        "delivered_kbps": {"before": before.kbps.round(), "death_to_add": between.kbps.round(), "after_add": after.kbps.round()},
    }))
}
