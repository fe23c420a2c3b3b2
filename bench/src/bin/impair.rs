//! `impair`: a UDP relay that behaves like one bad link (see `bench/README.md`).
//!
//! Prints `impair ready listen=IP:PORT` once bound; then reads commands on stdin, one per line:
//! `down`, `up`, `set key=value …` (the option names without `--`), `stats`.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use bench::impair::{LinkState, Options, Relay, RelayConfig, RelayStats, Schedule};
use tokio::io::{AsyncBufReadExt, BufReader};

const USAGE: &str =
    "usage: impair --upstream ADDR [--listen 127.0.0.1:0] [--delay-ms N] [--jitter-ms N]
  [--jitter-exp-ms N] [--reorder true] [--loss P] [--loss-burst N] [--rate-kbps N]
  [--burst-bytes N] [--queue-ms N] [--schedule down@10s,up@20s] [--seed N]
Both directions get the same impairment. stdin: down | up | set key=value ... | stats";

struct Args {
    listen: SocketAddr,
    upstream: SocketAddr,
    options: Options,
    schedule: Schedule,
    seed: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut upstream = None;
    let mut options = Options::default();
    let mut schedule = Schedule::default();
    let mut seed = 1;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--listen" => listen = value.parse().context("--listen")?,
            "--upstream" => upstream = Some(value.parse().context("--upstream")?),
            "--schedule" => schedule = Schedule::parse(&value)?,
            "--seed" => seed = value.parse().context("--seed")?,
            other => match other.strip_prefix("--") {
                Some(key) => options.set(key, &value).context(USAGE)?,
                None => bail!("unknown argument {other}\n{USAGE}"),
            },
        }
    }
    Ok(Args {
        listen,
        upstream: upstream.with_context(|| format!("--upstream is required\n{USAGE}"))?,
        options,
        schedule,
        seed,
    })
}

fn stats_line(s: &RelayStats) -> String {
    let dir = |name: &str, d: &bench::impair::Stats| {
        format!(
            "{name}: received={} delivered={} lost={} down={} queue={} flushed={}",
            d.received, d.delivered, d.lost, d.dropped_down, d.dropped_queue, d.flushed
        )
    };
    format!(
        "impair stats clients={} {} {}",
        s.clients,
        dir("up", &s.up),
        dir("down", &s.down)
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let Args {
        listen,
        upstream,
        mut options,
        schedule,
        seed,
    } = parse_args()?;
    let params = options.params();
    let relay = Relay::start(RelayConfig {
        listen,
        upstream,
        up: params,
        down: params,
        schedule,
        seed,
    })
    .await
    .with_context(|| format!("bind {listen}"))?;
    println!("impair ready listen={}", relay.local_addr());

    // Runs until stdin closes (the parent went away) or the process is killed.
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.context("stdin")? {
        let line = line.trim();
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        match cmd {
            "down" => relay.set_state(LinkState::Down),
            "up" => relay.set_state(LinkState::Up),
            "set" => match options.set_all(rest) {
                Ok(()) => {
                    let p = options.params();
                    relay.set_params(p, p);
                }
                Err(e) => eprintln!("impair: {e}"),
            },
            "stats" => {
                if let Some(s) = relay.stats().await {
                    println!("{}", stats_line(&s));
                }
            }
            "" => {}
            other => eprintln!("impair: unknown command {other:?} (down, up, set k=v, stats)"),
        }
    }
    Ok(())
}
