//! `hls-load`: N players blocked on the next part of one live stream, over
//! HTTP/1.1 and HTTP/2, against the gateway on one core; and, in the same run,
//! the same parts served statically by nginx on that core. See `bench/README.md`.
//!
//! Per phase (server, protocol, N) it prints the delay from a part's
//! publication to each client's answer, the server's CPU time per answer and
//! its resident memory per connected client. With `memory` among the runs it
//! also measures the gateway's resident memory per published stream.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bench::gateway::{self, Gateway};
use bench::http1::Client;
use bench::load_client::{Conn, H1Conn, H2Conn};
use bench::playlist::{self, MediaPlaylist};
use bench::source::{self, SourceSpec};
use bench::stats::Summary;
use bench::ts::{self, Packing, Source};
use bench::{publish, sys};
use clap::{Parser, ValueEnum};
use tokio::sync::{Semaphore, watch};

const STREAM: &str = "load";
/// The gateway runs here, and so does nginx; the benchmark uses the other core.
const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;
/// The gateway's default PART-TARGET (the benchmark leaves the HLS settings
/// at their defaults).
const PART: Duration = Duration::from_millis(200);
/// Connections being opened at once while clients join.
const CONNECTING: usize = 256;
const SRT_LATENCY: Duration = Duration::from_millis(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Proto {
    /// One connection per client.
    H1,
    /// `--streams-per-connection` streams per connection (h2c, prior knowledge).
    H2,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Self::H1 => "h1",
            Self::H2 => "h2",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Server {
    Gateway,
    Nginx,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Nginx => "nginx",
        }
    }
}

/// What a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Run {
    /// Blocking playlist reloads on the gateway.
    Gateway,
    /// The same parts, written to files, fetched from nginx.
    Nginx,
    /// Gateway RSS with 1 and K published streams over time.
    Memory,
}

/// Many players blocked on one gateway core (bench/README.md).
#[derive(Clone, Debug, Parser)]
#[command(
    name = "hls-load",
    after_help = gateway::BIN_HELP
)]
struct Args {
    /// Waiting clients per phase.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 10_000])]
    clients: Vec<usize>,
    /// Protocols, one phase each per client count.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Proto::H1, Proto::H2])]
    protocols: Vec<Proto>,
    /// Runs to do.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Run::Gateway, Run::Nginx, Run::Memory])]
    runs: Vec<Run>,
    /// Parts measured per phase (50 = 10 s).
    #[arg(long, default_value_t = 50)]
    parts: u32,
    /// HTTP/2 streams per connection.
    #[arg(
        long = "streams-per-connection",
        value_name = "S",
        default_value_t = 100
    )]
    per_connection: usize,
    /// Before the first phase, wait until segment W exists so the playlist window is full
    /// (16 kept + 2 evicted).
    #[arg(long, value_name = "W", default_value_t = 18)]
    warmup_segments: u64,
    /// Streams of the memory run.
    #[arg(long, value_name = "K", default_value_t = 10)]
    memory_streams: usize,
    /// How long each memory run publishes, seconds.
    #[arg(long, value_name = "T", default_value_t = 90)]
    memory_secs: u64,
    /// Video bit rate of the generated source, kb/s.
    #[arg(long, default_value_t = 200)]
    video_kbps: u32,
    /// Clients send Accept-Encoding: gzip, as browsers do (and inflate each playlist: client
    /// CPU, so use it up to ~1k clients).
    #[arg(long)]
    accept_gzip: bool,
    /// Clients ask for delta updates (`_HLS_skip=YES`), as hls.js does when the playlist
    /// allows them: smaller playlists for both sides.
    #[arg(long)]
    skip: bool,
    /// Also write the JSON result line to FILE.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
    /// Keep the temporary directory (logs, nginx files).
    #[arg(long)]
    keep: bool,
}

impl Args {
    fn runs(&self, run: Run) -> bool {
        self.runs.contains(&run)
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.clients.iter().all(|n| *n > 0) && args.parts > 0 && args.per_connection > 0,
        "--clients, --parts and --streams-per-connection must be positive"
    );
    ensure!(
        args.memory_streams >= 2,
        "--memory-streams must be at least 2"
    );
    // Before any thread exists, so that every thread inherits the core.
    sys::pin_self(CLIENT_CPU)?;
    let nofile = sys::raise_nofile()?;
    let most = args.clients.iter().max().copied().unwrap_or(0);
    ensure!(
        nofile >= most as u64 + 256,
        "open-file limit {nofile} is too low for {most} clients: raise the hard limit \
         (ulimit -Hn, /etc/security/limits.conf) to at least {}",
        most + 256
    );
    // One thread: the clients, the publisher and the measurement share the
    // benchmark's core (the probe player has its own thread).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("dropline-load-")
        .tempdir()
        .context("temporary directory")?;
    let ticks = sys::clock_ticks()?;
    // Long enough for the longest single publication.
    let per_phase = 40 + u64::from(args.parts) * 200 / 1000;
    let phases = args.clients.len() as u64 * args.protocols.len() as u64;
    let load_secs = 2 * args.warmup_segments + 10 + per_phase * phases;
    let secs = load_secs.max(args.memory_secs + 10);
    let ts_path = dir.path().join("source.ts");
    let spec = SourceSpec {
        secs,
        size: "320x180",
        preset: "veryfast".to_owned(),
        video_kbps: Some(args.video_kbps),
    };
    let t0 = Instant::now();
    source::generate(&ts_path, &spec).await?;
    let ts_bytes = tokio::fs::read(&ts_path).await.context("read source")?;
    let src = Arc::new(ts::packetize(&ts_bytes, Packing::Aligned)?);
    source::frame_ticks(&src)?;
    let mbps = ts_bytes.len() as f64 * 8.0 / secs as f64 / 1e6;
    eprintln!(
        "source: {secs} s, 320x180 30 fps H.264 {} kb/s + AAC, {mbps:.2} Mb/s TS, generated in {:.1} s",
        args.video_kbps,
        t0.elapsed().as_secs_f64()
    );
    let load_start = sys::load_average();

    let mut results = Vec::new();
    if args.runs(Run::Gateway) {
        for &proto in &args.protocols {
            let log = dir.path().join(format!("gateway-{}.log", proto.name()));
            let r = gateway_run(&args, &src, proto, &log, ticks).await;
            results.extend(with_log(r, &log)?);
        }
    }
    if args.runs(Run::Nginx) {
        let log = dir.path().join("gateway-nginx.log");
        let r = nginx_run(&args, &src, dir.path(), &log, ticks).await;
        results.extend(with_log(r, &log)?);
    }
    let memory = if args.runs(Run::Memory) {
        Some(memory_run(&args, &src, dir.path()).await?)
    } else {
        None
    };
    let load = (load_start, sys::load_average());
    let json = report(&args, mbps, &results, memory.as_ref(), load);
    let line = json.to_string();
    println!();
    println!("{line}");
    if let Some(path) = &args.json_out {
        std::fs::write(path, format!("{line}\n"))
            .with_context(|| format!("write {}", path.display()))?;
    }
    if args.keep {
        let kept = dir.keep();
        eprintln!("kept {}", kept.display());
    }
    Ok(())
}

/// On failure, shows the end of the gateway's log.
fn with_log<T>(r: anyhow::Result<T>, log: &Path) -> anyhow::Result<T> {
    if r.is_err() {
        eprintln!("gateway log (last lines):");
        for l in gateway::log_tail(log, 20) {
            eprintln!("  {l}");
        }
    }
    r
}

/// The gateway pinned to the server core with one tokio worker.
async fn start_gateway(log: &Path) -> anyhow::Result<Gateway> {
    // tokio reads TOKIO_WORKER_THREADS for the gateway's multi-thread runtime.
    let env = [
        ("TOKIO_WORKER_THREADS", "1".to_owned()),
        (
            "DROPLINE_SRT_LATENCY_MS",
            SRT_LATENCY.as_millis().to_string(),
        ),
    ];
    Gateway::start(log, &env, Some(SERVER_CPU)).await
}

/// Publishers of `streams` streams, on their own thread and runtime so that
/// thousands of clients on the benchmark's runtime cannot starve SRT.
struct Publishers {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Publishers {
    fn start(srt: SocketAddr, src: &Arc<Source>, streams: usize) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (src, flag) = (Arc::clone(src), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("publishers".to_owned())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("publisher runtime")?;
                rt.block_on(async move {
                    let mut tasks = Vec::new();
                    for i in 0..streams {
                        let name = if streams == 1 {
                            STREAM.to_owned()
                        } else {
                            format!("{STREAM}{i}")
                        };
                        let sid = format!("publish:{name}");
                        let sock = publish::call(srt, &sid, SRT_LATENCY).await?;
                        let (src, stop) = (Arc::clone(&src), Arc::clone(&flag));
                        tasks.push(tokio::spawn(async move {
                            publish::real_time(sock, None, &src, &stop, 0)
                                .await
                                .with_context(|| format!("publisher of {name}"))
                        }));
                    }
                    for t in tasks {
                        t.await.context("publisher task")??;
                    }
                    anyhow::Ok(())
                })
            })
            .context("publisher thread")?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops publishing; an SRT connection lost on the way is reported.
    async fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            match tokio::task::spawn_blocking(move || t.join()).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => eprintln!("warning: {e:#}"),
                _ => eprintln!("warning: the publisher thread failed"),
            }
        }
    }
}

/// What the probe player saw.
#[derive(Default)]
struct ProbeState {
    /// The last part of the last playlist, (MSN, part index).
    latest: Option<(u64, u64)>,
    /// Each playlist answer: the key of its last part and when it was read.
    answers: Vec<(u64, Instant)>,
    /// nginx runs: each part written (sequence number, when it was renamed in place).
    written: Vec<(u64, Instant)>,
    playlist_bytes: usize,
    part_bytes: usize,
    error: Option<String>,
}

/// One (MSN, part index) as a number, for maps.
fn key(msn: u64, index: u64) -> u64 {
    (msn << 16) | index
}

/// A part written for nginx: its URI sequence number.
#[derive(Clone, Copy)]
struct Note {
    seq: u64,
}

/// Where the probe copies parts for nginx, and whom it tells.
struct Mirror {
    dir: PathBuf,
    notes: watch::Sender<Option<Note>>,
}

/// A single player on its own thread with blocking HTTP/1.1: it follows the
/// stream with blocking reloads at low load, so the earliest answer for each
/// playlist comes soon after its publication. With a mirror it also copies
/// every new part into the nginx root and announces it.
fn probe(
    http: SocketAddr,
    state: &Mutex<ProbeState>,
    stop: &AtomicBool,
    mirror: Option<&Mirror>,
) -> anyhow::Result<()> {
    let base = format!("/{STREAM}/main/");
    let mut client = Client::new(http, Duration::from_secs(15));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last: Option<(u64, u64)> = None;
    let mut last_seq = None;
    while !stop.load(Ordering::SeqCst) {
        let path = match last {
            Some((m, p)) => format!("{base}playlist.m3u8?_HLS_msn={m}&_HLS_part={}", p + 1),
            None => format!("{base}playlist.m3u8"),
        };
        let r = client.get(&path)?;
        let t = Instant::now();
        if r.status != 200 {
            ensure!(
                last.is_none() && r.status == 404 && t < deadline,
                "{path}: HTTP {}",
                r.status
            );
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let pl: MediaPlaylist = playlist::parse(std::str::from_utf8(&r.body)?)?;
        let Some(end) = pl.parts.last() else {
            ensure!(t < deadline, "no parts after 30 s");
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if let Some(m) = mirror {
            for p in &pl.parts {
                let Some(seq) = playlist::part_seq(&p.uri) else {
                    continue;
                };
                if last_seq.is_some_and(|l| seq <= l) {
                    continue;
                }
                let part = client.get(&format!("{base}{}", p.uri))?;
                ensure!(part.status == 200, "{}: HTTP {}", p.uri, part.status);
                let tmp = m.dir.join(format!(".{}", p.uri));
                std::fs::write(&tmp, &part.body).context("write part")?;
                std::fs::rename(&tmp, m.dir.join(&p.uri)).context("rename part")?;
                let written = Instant::now();
                last_seq = Some(seq);
                let mut s = state.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                s.written.push((seq, written));
                s.part_bytes = part.body.len();
                drop(s);
                m.notes.send_replace(Some(Note { seq }));
            }
        }
        let now = (end.msn, end.index);
        let mut s = state.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        if last.is_some() {
            s.answers.push((key(now.0, now.1), t));
        }
        s.latest = Some(now);
        s.playlist_bytes = r.body.len();
        drop(s);
        last = Some(now);
    }
    Ok(())
}

/// The probe thread and its shared state.
struct Probe {
    state: Arc<Mutex<ProbeState>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Probe {
    fn start(http: SocketAddr, mirror: Option<Mirror>) -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(ProbeState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (Arc::clone(&state), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("probe".to_owned())
            .spawn(move || {
                if let Err(e) = probe(http, &st, &sp, mirror.as_ref())
                    && let Ok(mut s) = st.lock()
                {
                    s.error = Some(format!("{e:#}"));
                }
            })
            .context("probe thread")?;
        Ok(Self {
            state,
            stop,
            thread: Some(thread),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&ProbeState) -> T) -> anyhow::Result<T> {
        let s = self
            .state
            .lock()
            .map_err(|_| anyhow::anyhow!("probe state poisoned"))?;
        if let Some(e) = &s.error {
            bail!("probe: {e}");
        }
        Ok(f(&s))
    }

    /// Waits until the probe's last part is in segment `msn` or later.
    async fn wait_for_segment(&self, msn: u64, within: Duration) -> anyhow::Result<(u64, u64)> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.with(|s| s.latest)?
                && l.0 >= msn
            {
                return Ok(l);
            }
            ensure!(
                Instant::now() < deadline,
                "the stream did not reach segment {msn} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            // The probe's pending blocking request ends within one part.
            let _ = t.join();
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the clients of one phase share.
struct Control {
    stop: watch::Sender<bool>,
    recording: AtomicBool,
    /// Successful answers, all clients, since the phase began.
    answers: AtomicU64,
    errors: AtomicU64,
    /// Clients that have had at least one answer.
    ready: AtomicUsize,
}

impl Control {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            stop: watch::channel(false).0,
            recording: AtomicBool::new(false),
            answers: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            ready: AtomicUsize::new(0),
        })
    }
}

/// The answers one client recorded while recording was on: (key, when read).
type ClientLog = Vec<(u64, Instant)>;

/// Opens the connections of a phase: one per client (HTTP/1.1), or one per
/// `per_connection` clients (HTTP/2). At most [`CONNECTING`] at once.
async fn connect_all(
    addr: SocketAddr,
    proto: Proto,
    clients: usize,
    per_connection: usize,
    accept_gzip: bool,
) -> anyhow::Result<Vec<Conn>> {
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let conns = match proto {
        Proto::H1 => clients,
        Proto::H2 => clients.div_ceil(per_connection),
    };
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let gate = Arc::clone(&gate);
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            anyhow::Ok(match proto {
                Proto::H1 => Conn::H1(H1Conn::connect(addr, accept_gzip).await?),
                Proto::H2 => Conn::H2(H2Conn::connect(addr, accept_gzip).await?),
            })
        }));
    }
    let mut opened = Vec::with_capacity(clients);
    for t in tasks {
        let c = t.await.context("connect task")??;
        match c {
            Conn::H1(_) => opened.push(c),
            Conn::H2(h2) => {
                for _ in 0..per_connection {
                    if opened.len() < clients {
                        opened.push(Conn::H2(h2.clone()));
                    }
                }
            }
        }
    }
    Ok(opened)
}

/// A player that always asks for the part after the last one it has seen,
/// with a blocking playlist reload (like hls.js).
async fn playlist_client(
    mut conn: Conn,
    mut last: (u64, u64),
    skip: bool,
    ctl: Arc<Control>,
    probe: Arc<Mutex<ProbeState>>,
) -> ClientLog {
    let base = format!("/{STREAM}/main/playlist.m3u8");
    let skip = if skip { "&_HLS_skip=YES" } else { "" };
    let mut stop = ctl.stop.subscribe();
    let mut log = Vec::new();
    let mut answered = false;
    loop {
        let path = format!("{base}?_HLS_msn={}&_HLS_part={}{skip}", last.0, last.1 + 1);
        let r = tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = conn.get(&path) => r,
        };
        let t = Instant::now();
        let end = match &r {
            Ok((200, body)) => inflated(body).and_then(|text| playlist::last_part(&text)),
            _ => None,
        };
        match end {
            Some(end) => {
                last = end;
                ctl.answers.fetch_add(1, Ordering::Relaxed);
                if !answered {
                    answered = true;
                    ctl.ready.fetch_add(1, Ordering::Relaxed);
                }
                if ctl.recording.load(Ordering::Relaxed) {
                    log.push((key(end.0, end.1), t));
                }
            }
            None => {
                ctl.errors.fetch_add(1, Ordering::Relaxed);
                // Start again from what the probe knows (after a 400, say).
                if let Some(l) = probe.lock().ok().and_then(|s| s.latest) {
                    last = l;
                }
                tokio::time::sleep(PART).await;
            }
        }
    }
    log
}

/// A playlist body as text, inflated if it came gzip-compressed.
fn inflated(body: &[u8]) -> Option<Cow<'_, str>> {
    if !body.starts_with(&[0x1f, 0x8b]) {
        return std::str::from_utf8(body).ok().map(Cow::Borrowed);
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(body), &mut text).ok()?;
    Some(Cow::Owned(text))
}

/// An nginx player: told that a part file exists, it fetches it at once.
async fn part_client(
    mut conn: Conn,
    mut notes: watch::Receiver<Option<Note>>,
    ctl: Arc<Control>,
) -> ClientLog {
    let mut stop = ctl.stop.subscribe();
    let mut log = Vec::new();
    let mut answered = false;
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = notes.changed() => if r.is_err() { break },
        }
        let Some(note) = *notes.borrow_and_update() else {
            continue;
        };
        let path = format!("/part{}.m4s", note.seq);
        let r = tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = conn.get(&path) => r,
        };
        let t = Instant::now();
        if matches!(r, Ok((200, _))) {
            ctl.answers.fetch_add(1, Ordering::Relaxed);
            if !answered {
                answered = true;
                ctl.ready.fetch_add(1, Ordering::Relaxed);
            }
            if ctl.recording.load(Ordering::Relaxed) {
                log.push((note.seq, t));
            }
        } else {
            ctl.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    log
}

/// One phase's figures.
#[derive(Clone, Debug)]
struct Phase {
    server: Server,
    proto: Proto,
    clients: usize,
    /// Clients with an answer before measuring began.
    ready: usize,
    answers: u64,
    errors: u64,
    /// Answer − the earliest answer for the same playlist / part.
    spread: Option<Summary>,
    /// nginx: answer − the part file's appearance.
    after_write: Option<Summary>,
    cpu_per_answer_us: f64,
    server_cpu: f64,
    client_cpu: f64,
    rss_idle: u64,
    rss: u64,
    body_bytes: usize,
}

impl Phase {
    fn bytes_per_client(&self) -> f64 {
        (self.rss as f64 - self.rss_idle as f64) / self.clients as f64
    }
}

/// Median of a few RSS readings over `span`.
async fn rss_median(pid: u32, samples: usize, span: Duration) -> anyhow::Result<u64> {
    let mut v = Vec::with_capacity(samples);
    for i in 0..samples {
        if i > 0 {
            tokio::time::sleep(span / samples as u32).await;
        }
        v.push(sys::rss_bytes(pid)?);
    }
    v.sort_unstable();
    Ok(v[v.len() / 2])
}

/// Which server a phase loads, and how its clients play.
enum Target<'a> {
    Gateway {
        probe: &'a Probe,
    },
    Nginx {
        notes: &'a watch::Sender<Option<Note>>,
    },
}

/// Connects `clients`, lets them all get an answer, then measures `parts`
/// part intervals: server CPU, answers, RSS; then stops the clients.
#[allow(clippy::too_many_arguments)]
async fn phase(
    args: &Args,
    target: &Target<'_>,
    addr: SocketAddr,
    server_pid: u32,
    proto: Proto,
    clients: usize,
    rss_idle: u64,
    ticks: u64,
) -> anyhow::Result<(Phase, Vec<ClientLog>)> {
    let (server, label) = match target {
        Target::Gateway { .. } => (Server::Gateway, "gateway"),
        Target::Nginx { .. } => (Server::Nginx, "nginx"),
    };
    eprintln!("{label} {}: connecting {clients} clients", proto.name());
    let conns = connect_all(addr, proto, clients, args.per_connection, args.accept_gzip).await?;
    let ctl = Control::new();
    let mut tasks = Vec::with_capacity(clients);
    for conn in conns {
        let ctl = Arc::clone(&ctl);
        tasks.push(match target {
            Target::Gateway { probe } => {
                let start = probe.with(|s| s.latest)?.context("probe has no part")?;
                let client = playlist_client(conn, start, args.skip, ctl, Arc::clone(&probe.state));
                tokio::spawn(client)
            }
            Target::Nginx { notes } => tokio::spawn(part_client(conn, notes.subscribe(), ctl)),
        });
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while ctl.ready.load(Ordering::Relaxed) < clients && Instant::now() < deadline {
        tokio::time::sleep(PART / 4).await;
    }
    let ready = ctl.ready.load(Ordering::Relaxed);
    eprintln!(
        "{label} {}: {ready} of {clients} clients answered; measuring {} parts",
        proto.name(),
        args.parts
    );
    // One more part so every client is blocked on the next one.
    tokio::time::sleep(PART).await;
    let me = std::process::id();
    let (cpu0, me0, answers0, t0) = (
        sys::cpu_time(server_pid, ticks)?,
        sys::cpu_time(me, ticks)?,
        ctl.answers.load(Ordering::Relaxed),
        Instant::now(),
    );
    ctl.recording.store(true, Ordering::SeqCst);
    let window = PART * args.parts;
    let rss = rss_median(server_pid, 9, window).await?;
    let elapsed = t0.elapsed();
    ctl.recording.store(false, Ordering::SeqCst);
    let (cpu1, me1, answers1) = (
        sys::cpu_time(server_pid, ticks)?,
        sys::cpu_time(me, ticks)?,
        ctl.answers.load(Ordering::Relaxed),
    );
    ctl.stop.send_replace(true);
    let mut logs = Vec::with_capacity(clients);
    for t in tasks {
        logs.push(t.await.context("client task")?);
    }
    let answers = answers1 - answers0;
    let server_cpu = (cpu1 - cpu0).as_secs_f64();
    let p = Phase {
        server,
        proto,
        clients,
        ready,
        answers,
        errors: ctl.errors.load(Ordering::Relaxed),
        spread: None,
        after_write: None,
        cpu_per_answer_us: if answers > 0 {
            server_cpu * 1e6 / answers as f64
        } else {
            f64::NAN
        },
        server_cpu: server_cpu / elapsed.as_secs_f64(),
        client_cpu: (me1 - me0).as_secs_f64() / elapsed.as_secs_f64(),
        rss_idle,
        rss,
        body_bytes: 0,
    };
    // Let the server notice the closed connections before the next phase.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok((p, logs))
}

/// `answer − first answer for the same key`, with the probe's answers among
/// the candidates for the first.
fn spread(logs: &[ClientLog], probe: &[(u64, Instant)]) -> anyhow::Result<Option<Summary>> {
    let mut first: HashMap<u64, Instant> = HashMap::new();
    for (k, t) in logs.iter().flatten().chain(probe) {
        first
            .entry(*k)
            .and_modify(|f| *f = (*f).min(*t))
            .or_insert(*t);
    }
    let delays: Vec<u64> = logs
        .iter()
        .flatten()
        .filter_map(|(k, t)| Some(us(t.saturating_duration_since(*first.get(k)?))))
        .collect();
    if delays.is_empty() {
        return Ok(None);
    }
    Ok(Some(Summary::of(delays)?))
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

async fn gateway_run(
    args: &Args,
    src: &Arc<Source>,
    proto: Proto,
    log: &Path,
    ticks: u64,
) -> anyhow::Result<Vec<Phase>> {
    let mut gw = start_gateway(log).await?;
    let publishers = Publishers::start(gw.srt, src, 1)?;
    let pid = gw.pid().context("gateway pid")?;
    eprintln!(
        "gateway {}: pid {pid} on core {SERVER_CPU}, http={}; waiting for segment {}",
        proto.name(),
        gw.http,
        args.warmup_segments
    );
    let mut probe = Probe::start(gw.http, None)?;
    let within = Duration::from_secs(2 * args.warmup_segments + 30);
    probe.wait_for_segment(args.warmup_segments, within).await?;
    // Memory with nobody waiting: the window is full, so it no longer grows.
    let rss_idle = rss_median(pid, 5, Duration::from_secs(2)).await?;
    let mut out = Vec::new();
    for &n in &args.clients {
        let target = Target::Gateway { probe: &probe };
        let measured = async {
            let (mut p, logs) =
                phase(args, &target, gw.http, pid, proto, n, rss_idle, ticks).await?;
            let probe_answers = probe.with(|s| s.answers.clone())?;
            p.spread = spread(&logs, &probe_answers)?;
            p.body_bytes = probe.with(|s| s.playlist_bytes)?;
            anyhow::Ok(p)
        };
        if !keep(&mut out, measured.await, Server::Gateway, proto, n) {
            break;
        }
    }
    probe.stop();
    publishers.stop().await;
    gw.stop().await;
    Ok(out)
}

/// nginx from Debian, one process pinned to the server core, serving `root`
/// on two ports: HTTP/1.1 and HTTP/2 with prior knowledge (h2c).
struct Nginx {
    child: tokio::process::Child,
    h1: SocketAddr,
    h2: SocketAddr,
}

impl Nginx {
    async fn start(dir: &Path, root: &Path, clients: usize) -> anyhow::Result<Self> {
        let free_port = || -> anyhow::Result<SocketAddr> {
            Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
        };
        let (h1, h2) = (free_port()?, free_port()?);
        let conf = dir.join("nginx.conf");
        let conns = clients + 1024;
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\n\
                 worker_rlimit_nofile {conns};\npid {pid};\nerror_log {err} warn;\n\
                 events {{ worker_connections {conns}; }}\n\
                 http {{\n  access_log off;\n  sendfile on;\n  tcp_nodelay on;\n\
                 keepalive_timeout 300s;\n  keepalive_requests 1000000;\n\
                 types {{ video/mp4 m4s; }}\n\
                 client_body_temp_path {tmp}/body;\n  proxy_temp_path {tmp}/proxy;\n\
                 fastcgi_temp_path {tmp}/fastcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n\
                 scgi_temp_path {tmp}/scgi;\n\
                 server {{ listen {h1}; root {root}; }}\n\
                 server {{ listen {h2} http2; http2_max_concurrent_streams 1000; root {root}; }}\n}}\n",
                pid = dir.join("nginx.pid").display(),
                err = dir.join("nginx-error.log").display(),
                tmp = dir.display(),
                root = root.display(),
            ),
        )
        .context("write nginx.conf")?;
        let child = tokio::process::Command::new("taskset")
            .args(["-c", &SERVER_CPU.to_string(), "nginx", "-c"])
            .arg(&conf)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("nginx-error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("start nginx (make deps installs it)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(h1).await.is_err() {
            ensure!(
                Instant::now() < deadline,
                "nginx did not listen within 10 s; see {}",
                dir.join("nginx-error.log").display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, h1, h2 })
    }
}

async fn nginx_run(
    args: &Args,
    src: &Arc<Source>,
    dir: &Path,
    log: &Path,
    ticks: u64,
) -> anyhow::Result<Vec<Phase>> {
    let root = dir.join("www");
    std::fs::create_dir_all(&root).context("nginx root")?;
    let most = args.clients.iter().max().copied().unwrap_or(0);
    let mut nginx = Nginx::start(dir, &root, most).await?;
    let pid = nginx.child.id().context("nginx pid")?;
    let mut gw = start_gateway(log).await?;
    let publishers = Publishers::start(gw.srt, src, 1)?;
    let (notes, _) = watch::channel(None);
    let mut probe = Probe::start(
        gw.http,
        Some(Mirror {
            dir: root.clone(),
            notes: notes.clone(),
        }),
    )?;
    eprintln!(
        "nginx: pid {pid} on core {SERVER_CPU}, h1={} h2={}; parts copied from the gateway",
        nginx.h1, nginx.h2
    );
    probe
        .wait_for_segment(1, Duration::from_secs(30))
        .await
        .context("parts for nginx")?;
    let rss_idle = rss_median(pid, 5, Duration::from_secs(1)).await?;
    let mut out = Vec::new();
    for &proto in &args.protocols {
        let addr = match proto {
            Proto::H1 => nginx.h1,
            Proto::H2 => nginx.h2,
        };
        for &n in &args.clients {
            let target = Target::Nginx { notes: &notes };
            let measured = async {
                let (mut p, logs) =
                    phase(args, &target, addr, pid, proto, n, rss_idle, ticks).await?;
                let written = probe.with(|s| s.written.clone())?;
                p.spread = spread(&logs, &[])?;
                let at: HashMap<u64, Instant> = written.into_iter().collect();
                let after: Vec<u64> = logs
                    .iter()
                    .flatten()
                    .filter_map(|(seq, t)| Some(us(t.saturating_duration_since(*at.get(seq)?))))
                    .collect();
                p.after_write = if after.is_empty() {
                    None
                } else {
                    Some(Summary::of(after)?)
                };
                p.body_bytes = probe.with(|s| s.part_bytes)?;
                anyhow::Ok(p)
            };
            if !keep(&mut out, measured.await, Server::Nginx, proto, n) {
                break;
            }
        }
    }
    probe.stop();
    publishers.stop().await;
    gw.stop().await;
    let _ = nginx.child.start_kill();
    let _ = nginx.child.wait().await;
    Ok(out)
}

/// Gateway RSS over time with one and with K published streams.
struct Memory {
    streams: usize,
    /// (seconds since the publishers started, RSS) for 1 and for K streams.
    one: Vec<(u64, u64)>,
    many: Vec<(u64, u64)>,
    /// The gateway's empty RSS (before any publisher).
    empty: u64,
}

async fn memory_run(args: &Args, src: &Arc<Source>, dir: &Path) -> anyhow::Result<Memory> {
    let mut series = Vec::new();
    let mut empty = 0;
    for streams in [1, args.memory_streams] {
        eprintln!(
            "memory: {streams} stream(s) for {} s, RSS every 5 s",
            args.memory_secs
        );
        let log = dir.join(format!("gateway-memory-{streams}.log"));
        // An idle gateway first: its RSS before anything is published.
        let mut gw = with_log(start_gateway(&log).await, &log)?;
        let pid = gw.pid().context("gateway pid")?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        empty = sys::rss_bytes(pid)?;
        let publishers = Publishers::start(gw.srt, src, streams)?;
        let t0 = Instant::now();
        let mut samples = Vec::new();
        let mut next = 5;
        while next <= args.memory_secs {
            tokio::time::sleep_until((t0 + Duration::from_secs(next)).into()).await;
            samples.push((next, sys::rss_bytes(pid)?));
            next += 5;
        }
        publishers.stop().await;
        gw.stop().await;
        series.push(samples);
    }
    let many = series.pop().unwrap_or_default();
    let one = series.pop().unwrap_or_default();
    Ok(Memory {
        streams: args.memory_streams,
        one,
        many,
        empty,
    })
}

/// One line of the results table.
/// Prints and keeps a measured phase; on a failed one says so and returns
/// `false`: the server's later phases are skipped, the figures of the phases
/// before stay (the server's log says more).
fn keep(
    out: &mut Vec<Phase>,
    measured: anyhow::Result<Phase>,
    server: Server,
    proto: Proto,
    n: usize,
) -> bool {
    match measured {
        Ok(p) => {
            eprintln!("{}", row(&p));
            out.push(p);
            true
        }
        Err(e) => {
            eprintln!(
                "{} {} N={n}: phase failed: {e:#}",
                server.name(),
                proto.name()
            );
            false
        }
    }
}

fn row(p: &Phase) -> String {
    let s = p.spread;
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{:.2}", v / 1000.0));
    format!(
        "{:<8} {:<3} {:>6} {:>6} {:>8} {:>6} {:>7} {:>7} {:>7} {:>7} {:>9.1} {:>6.0} {:>6.0} {:>9.0} {:>7}",
        p.server.name(),
        p.proto.name(),
        p.clients,
        p.ready,
        p.answers,
        p.errors,
        f(s.map(|s| s.p50)),
        f(s.map(|s| s.p90)),
        f(s.map(|s| s.p99)),
        f(s.map(|s| s.max)),
        p.cpu_per_answer_us,
        p.server_cpu * 100.0,
        p.client_cpu * 100.0,
        p.bytes_per_client(),
        p.body_bytes
    )
}

fn report(
    args: &Args,
    mbps: f64,
    phases: &[Phase],
    memory: Option<&Memory>,
    load: (Option<f64>, Option<f64>),
) -> serde_json::Value {
    let fmt_load = |l: Option<f64>| l.map_or_else(|| "?".to_owned(), |l| format!("{l:.2}"));
    println!();
    println!(
        "dropline hls-load: blocked clients on one core (server on core {SERVER_CPU}, clients on \
         core {CLIENT_CPU}); parts of 200 ms, {} measured per phase; source {mbps:.2} Mb/s; \
         clients accept gzip: {}, ask for delta updates: {}",
        args.parts,
        if args.accept_gzip { "yes" } else { "no" },
        if args.skip { "yes" } else { "no" }
    );
    println!(
        "delay = answer − the earliest answer to any client (or the probe) for the same playlist \
         (gateway) or part (nginx): the gateway does not say when it published a part"
    );
    println!(
        "{:<8} {:<3} {:>6} {:>6} {:>8} {:>6} {:>7} {:>7} {:>7} {:>7} {:>9} {:>6} {:>6} {:>9} {:>7}",
        "server",
        "",
        "N",
        "ready",
        "answers",
        "errors",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "CPU µs/ans",
        "srv %",
        "cli %",
        "B/client",
        "body B"
    );
    let mut rows = Vec::new();
    for p in phases {
        let s = p.spread;
        println!("{}", row(p));
        rows.push(serde_json::json!({
            "server": p.server.name(),
            "proto": p.proto.name(),
            "clients": p.clients,
            "ready": p.ready,
            "answers": p.answers,
            "errors": p.errors,
            "delay": s.map(|s| s.json()),
            "after_write": p.after_write.map(|s| s.json()),
            "cpu_us_per_answer": (p.cpu_per_answer_us * 10.0).round() / 10.0,
            "server_cpu_share": p.server_cpu,
            "client_cpu_share": p.client_cpu,
            "rss_idle": p.rss_idle,
            "rss": p.rss,
            "bytes_per_client": p.bytes_per_client().round(),
            "body_bytes": p.body_bytes,
        }));
    }
    for p in phases.iter().filter(|p| p.after_write.is_some()) {
        if let Some(a) = p.after_write {
            println!(
                "nginx {} N={}: answer − part file renamed into place: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                p.proto.name(),
                p.clients,
                a.p50 / 1000.0,
                a.p99 / 1000.0,
                a.max / 1000.0
            );
        }
    }
    // Gateway against nginx, same protocol and N.
    for g in phases.iter().filter(|p| p.server == Server::Gateway) {
        let Some(n) = phases
            .iter()
            .find(|n| n.server == Server::Nginx && n.proto == g.proto && n.clients == g.clients)
        else {
            continue;
        };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
            _ => "n/a".to_owned(),
        };
        println!(
            "gateway / nginx, {} N={}: p50 {}, p99 {}, CPU per answer {}, memory per client {}",
            g.proto.name(),
            g.clients,
            ratio(g.spread.map(|s| s.p50), n.spread.map(|s| s.p50)),
            ratio(g.spread.map(|s| s.p99), n.spread.map(|s| s.p99)),
            ratio(Some(g.cpu_per_answer_us), Some(n.cpu_per_answer_us)),
            ratio(Some(g.bytes_per_client()), Some(n.bytes_per_client())),
        );
    }
    for g in phases
        .iter()
        .filter(|p| p.server == Server::Gateway && p.clients >= 10_000)
    {
        let p99 = g.spread.map_or(f64::INFINITY, |s| s.p99 / 1000.0);
        let kb = g.bytes_per_client() / 1000.0;
        let met = p99 < 20.0 && kb < 10.0 && g.ready == g.clients;
        println!(
            "goal (10k waiting on one core, p99 < 20 ms, < 10 KB each), {} N={}: {} (p99 {p99:.1} ms, {kb:.1} KB)",
            g.proto.name(),
            g.clients,
            if met { "met" } else { "MISSED" }
        );
    }
    let mut mem_json = serde_json::Value::Null;
    if let Some(m) = memory {
        let at = |s: &[(u64, u64)], t: u64| s.iter().find(|x| x.0 == t).map(|x| x.1);
        let mb =
            |b: Option<u64>| b.map_or_else(|| "-".to_owned(), |b| format!("{:.1}", b as f64 / 1e6));
        println!();
        println!(
            "memory per stream (gateway RSS, MB; empty gateway {:.1} MB):",
            m.empty as f64 / 1e6
        );
        let times: Vec<u64> = m.one.iter().map(|x| x.0).collect();
        let head: Vec<String> = times.iter().map(|t| format!("{t:>6}s")).collect();
        println!("{:<12} {}", "streams", head.join(" "));
        for (label, s) in [("1".to_owned(), &m.one), (m.streams.to_string(), &m.many)] {
            let cells: Vec<String> = times
                .iter()
                .map(|t| format!("{:>7}", mb(at(s, *t))))
                .collect();
            println!("{label:<12} {}", cells.join(" "));
        }
        let last = times.last().copied().unwrap_or(0);
        let half = times.get(times.len() / 2).copied().unwrap_or(0);
        let per_stream = match (at(&m.many, last), at(&m.one, last)) {
            (Some(k), Some(one)) => Some((k as f64 - one as f64) / (m.streams - 1) as f64),
            _ => None,
        };
        let growth = |s: &[(u64, u64)]| match (at(s, half), at(s, last)) {
            (Some(a), Some(b)) => Some(b as f64 - a as f64),
            _ => None,
        };
        if let Some(ps) = per_stream {
            println!(
                "per stream at {last} s: {:.2} MB ((RSS with {} − RSS with 1) / {}); growth {half} s → {last} s: 1 stream {:+.2} MB, {} streams {:+.2} MB",
                ps / 1e6,
                m.streams,
                m.streams - 1,
                growth(&m.one).unwrap_or(0.0) / 1e6,
                m.streams,
                growth(&m.many).unwrap_or(0.0) / 1e6
            );
        }
        mem_json = serde_json::json!({
            "streams": m.streams,
            "empty_rss": m.empty,
            "one": m.one,
            "many": m.many,
            "per_stream_bytes": per_stream.map(f64::round),
        });
    }
    let cores = sys::cores();
    println!(
        "machine: {cores} cores, 1-min load average {} at start, {} at end",
        fmt_load(load.0),
        fmt_load(load.1)
    );
    serde_json::json!({
        "bench": "hls-load",
        "parts_per_phase": args.parts,
        "streams_per_connection": args.per_connection,
        "accept_gzip": args.accept_gzip,
        "skip": args.skip,
        "source_mbps": (mbps * 100.0).round() / 100.0,
        "phases": rows,
        "memory": mem_json,
        "load_start": load.0,
        "load_end": load.1,
    })
}
