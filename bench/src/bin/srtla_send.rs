//! `srtla-send`: a test SRTLA sender. An SRT caller (ffmpeg, GStreamer,
//! srt-live-transmit) connects to `--srt-listen`; its datagrams are spread
//! over the links, each its own UDP socket aimed at `--srtla` or at its own
//! `--link` destination (e.g. an impairment relay). See bench/README.md.
//!
//! stdin takes one command per line: `add [DEST]`, `remove ID`, `stats`.
//! stdout says what happened, one line each (stable, for tests):
//! `link added ID local=IP:PORT dest=IP:PORT`, `srtla-send ready srt=IP:PORT`,
//! `registered`, `group lost`, `link up ID`, `link down ID`, `link stalled ID`,
//! `link resumed ID`, `link removed ID`,
//! `stats [JSON]`, `error TEXT`.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bench::srtla_sender::{Event, LinkId, Output, Sender, SenderConfig};
use bytes::Bytes;
use clap::Parser;
use tokio::io::AsyncBufReadExt;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[derive(Parser)]
#[command(
    name = "srtla-send",
    about = "Test SRTLA sender: one SRT caller spread over N links"
)]
struct Args {
    /// Where the SRT caller connects (UDP); port 0 picks one.
    #[arg(long, default_value = "127.0.0.1:0")]
    srt_listen: SocketAddr,
    /// The SRTLA receiver (e.g. the gateway's `srtla=` address).
    #[arg(long)]
    srtla: SocketAddr,
    /// Links sent straight to `--srtla`.
    #[arg(long, default_value_t = 0)]
    links: usize,
    /// A link sent to DEST (a relay in front of the receiver); repeatable.
    #[arg(long = "link", value_name = "DEST")]
    link_dests: Vec<SocketAddr>,
    /// Print `stats [JSON]` this often (0: only on the `stats` command).
    #[arg(long, default_value_t = 0)]
    stats_ms: u64,
}

struct LinkSocket {
    socket: Arc<UdpSocket>,
    reader: JoinHandle<()>,
}

impl Drop for LinkSocket {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn random(buf: &mut [u8]) {
    // The group id is a credential (srtla.md §3.2); a test tool may still
    // go on with a weak one if the OS source fails.
    if getrandom::getrandom(buf).is_err() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8;
        }
    }
}

async fn open_link(
    id: LinkId,
    dest: SocketAddr,
    tx: mpsc::Sender<(LinkId, Bytes)>,
) -> anyhow::Result<LinkSocket> {
    let any = match dest.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0)).await?;
    socket.connect(dest).await?;
    let local = socket.local_addr()?;
    let socket = Arc::new(socket);
    let r = Arc::clone(&socket);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            match r.recv(&mut buf).await {
                Ok(n) => {
                    let d = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                    if tx.send((id, d)).await.is_err() {
                        return;
                    }
                }
                // ICMP unreachable while the far end is down: keep listening.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    say(&format!("link added {} local={local} dest={dest}", id.0));
    Ok(LinkSocket { socket, reader })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut dests: Vec<SocketAddr> = vec![args.srtla; args.links];
    dests.extend(&args.link_dests);
    anyhow::ensure!(
        !dests.is_empty(),
        "no links: give --links N and/or --link DEST"
    );

    let caller_socket = UdpSocket::bind(args.srt_listen)
        .await
        .with_context(|| format!("binding {}", args.srt_listen))?;
    let (link_tx, mut link_rx) = mpsc::channel::<(LinkId, Bytes)>(4096);
    let mut sender: Sender<fn(&mut [u8])> =
        Sender::new(Instant::now().into_std(), SenderConfig::default(), random);
    let mut sockets: HashMap<LinkId, LinkSocket> = HashMap::new();
    for dest in dests {
        let id = sender.add_link(Instant::now().into_std());
        sockets.insert(id, open_link(id, dest, link_tx.clone()).await?);
    }
    say(&format!(
        "srtla-send ready srt={}",
        caller_socket.local_addr()?
    ));

    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut caller: Option<SocketAddr> = None;
    let mut buf = vec![0u8; 2048];
    let mut stats_tick = tokio::time::interval(Duration::from_millis(args.stats_ms.max(1)));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            r = caller_socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    caller = Some(from);
                    let d = buf.get(..n).unwrap_or_default();
                    sender.handle_caller_datagram(Instant::now().into_std(), d);
                }
            }
            Some((id, d)) = link_rx.recv() => {
                sender.handle_link_datagram(Instant::now().into_std(), id, &d);
            }
            () = tokio::time::sleep_until(Instant::from_std(sender.poll_timeout())) => {
                sender.handle_timeout(Instant::now().into_std());
            }
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    command(&line, &args, &mut sender, &mut sockets, &link_tx).await;
                }
                _ => stdin_open = false,
            },
            _ = stats_tick.tick(), if args.stats_ms > 0 => print_stats(&mut sender),
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        while let Some(o) = sender.poll_output() {
            match o {
                Output::Link { link, payload } => {
                    if let Some(s) = sockets.get(&link) {
                        // UDP: a failed send is a lost datagram.
                        let _ = s.socket.try_send(&payload);
                    }
                }
                Output::Caller { payload } => {
                    if let Some(to) = caller {
                        let _ = caller_socket.try_send_to(&payload, to);
                    }
                }
            }
        }
        while let Some(e) = sender.poll_event() {
            say(&match e {
                Event::Registered => "registered".to_owned(),
                Event::GroupLost => "group lost".to_owned(),
                Event::LinkUp(id) => format!("link up {}", id.0),
                Event::LinkDown(id) => format!("link down {}", id.0),
                Event::LinkStalled(id) => format!("link stalled {}", id.0),
                Event::LinkResumed(id) => format!("link resumed {}", id.0),
            });
        }
    }
}

async fn command(
    line: &str,
    args: &Args,
    sender: &mut Sender<fn(&mut [u8])>,
    sockets: &mut HashMap<LinkId, LinkSocket>,
    link_tx: &mpsc::Sender<(LinkId, Bytes)>,
) {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("add"), dest) => {
            let dest = match dest.map(str::parse::<SocketAddr>) {
                None => args.srtla,
                Some(Ok(d)) => d,
                Some(Err(e)) => return say(&format!("error bad address: {e}")),
            };
            let id = sender.add_link(Instant::now().into_std());
            match open_link(id, dest, link_tx.clone()).await {
                Ok(s) => {
                    sockets.insert(id, s);
                }
                Err(e) => {
                    sender.remove_link(id);
                    say(&format!("error cannot open a link to {dest}: {e}"));
                }
            }
        }
        (Some("remove"), Some(id)) => match id.parse().map(LinkId) {
            Ok(id) if sockets.remove(&id).is_some() => {
                sender.remove_link(id);
                say(&format!("link removed {}", id.0));
            }
            _ => say(&format!("error no link {id}")),
        },
        (Some("stats"), None) => print_stats(sender),
        _ => say(&format!(
            "error unknown command {line:?} (add [DEST] | remove ID | stats)"
        )),
    }
}

fn print_stats<R: FnMut(&mut [u8])>(sender: &mut Sender<R>) {
    let json = serde_json::to_string(&sender.stats(Instant::now().into_std())).unwrap_or_default();
    say(&format!("stats {json}"));
}
