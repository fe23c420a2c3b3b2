//! The SRTLA UDP shell: one socket for every sender link, one socket per
//! group towards the gateway's own SRT listener. It only moves datagrams and
//! time in and out of [`Receiver`]; every decision is made there.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::receiver::{Event, GroupKey, MAX_DATAGRAM, Receiver, ReceiverConfig, Transmit};
use super::stats::ReceiverStats;

/// How often `/api/v1/srtla` gets a fresh snapshot.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Datagrams from SRT sockets waiting for the receiver loop.
const DOWNSTREAM_QUEUE: usize = 4096;

/// A bound SRTLA listener, ready to serve.
pub struct SrtlaIngest {
    socket: UdpSocket,
    addr: SocketAddr,
    config: ReceiverConfig,
    stats: watch::Sender<Arc<ReceiverStats>>,
}

/// What a group's SRT socket reader reports.
enum Downstream {
    Datagram(GroupKey, Bytes),
    Failed(GroupKey, std::io::Error),
}

struct SrtSocket {
    socket: Arc<UdpSocket>,
    reader: JoinHandle<()>,
}

impl Drop for SrtSocket {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl SrtlaIngest {
    /// Binds now so that the ready line can print the address.
    pub async fn bind(listen: SocketAddr, config: ReceiverConfig) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(listen).await?;
        Ok(Self {
            addr: socket.local_addr()?,
            socket,
            config,
            stats: watch::Sender::new(Arc::default()),
        })
    }

    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Live per-group and per-link statistics, refreshed every second.
    #[must_use]
    pub fn stats(&self) -> watch::Receiver<Arc<ReceiverStats>> {
        self.stats.subscribe()
    }

    /// Serves until `shutdown`, relaying every group to the SRT listener at `srt`.
    pub async fn run(self, srt: SocketAddr, shutdown: CancellationToken) {
        let mut receiver = Receiver::new(self.config, fill_random);
        let (down_tx, mut down_rx) = mpsc::channel(DOWNSTREAM_QUEUE);
        let mut srt_sockets: HashMap<GroupKey, SrtSocket> = HashMap::new();
        // One byte more than the largest datagram accepted, so that an
        // oversized one is seen as such instead of silently truncated.
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        let mut stats_tick = tokio::time::interval(STATS_EVERY);
        loop {
            let deadline = receiver.poll_timeout();
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let d = buf.get(..n).unwrap_or_default();
                        receiver.handle_link_datagram(Instant::now().into_std(), from, d);
                    }
                    // e.g. ICMP errors for an earlier send to a vanished link.
                    Err(e) => debug!("srtla receive error: {e}"),
                },
                Some(d) = down_rx.recv() => match d {
                    Downstream::Datagram(group, payload) => {
                        receiver.handle_srt_datagram(group, &payload);
                    }
                    Downstream::Failed(group, e) => {
                        warn!(group = group.number(), "srtla: SRT socket failed ({e}); dropping the group");
                        receiver.handle_srt_error(group);
                    }
                },
                () = sleep_until(deadline) => receiver.handle_timeout(Instant::now().into_std()),
                _ = stats_tick.tick() => {
                    let now = Instant::now().into_std();
                    self.stats.send_replace(Arc::new(receiver.stats(now)));
                }
                () = shutdown.cancelled() => return,
            }
            while let Some(t) = receiver.poll_transmit() {
                match t {
                    Transmit::Link { to, payload } => {
                        // UDP: a full send buffer loses the datagram, as the
                        // network would; SRT recovers.
                        if let Err(e) = self.socket.try_send_to(&payload, to) {
                            debug!(%to, "srtla send failed: {e}");
                        }
                    }
                    Transmit::Srt { group, payload } => {
                        let socket = match srt_sockets.get(&group) {
                            Some(s) => Arc::clone(&s.socket),
                            None => match open_srt_socket(srt, group, down_tx.clone()).await {
                                Ok(s) => {
                                    let socket = Arc::clone(&s.socket);
                                    srt_sockets.insert(group, s);
                                    socket
                                }
                                Err(e) => {
                                    warn!(
                                        group = group.number(),
                                        "srtla: cannot open an SRT socket: {e}"
                                    );
                                    receiver.handle_srt_error(group);
                                    continue;
                                }
                            },
                        };
                        match socket.try_send(&payload) {
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(e) => {
                                warn!(
                                    group = group.number(),
                                    "srtla: SRT send failed ({e}); dropping the group"
                                );
                                receiver.handle_srt_error(group);
                            }
                        }
                    }
                    Transmit::CloseSrt { group } => {
                        srt_sockets.remove(&group);
                    }
                }
            }
            while let Some(e) = receiver.poll_event() {
                match e {
                    Event::LinkAdded { group, addr } => {
                        info!(group = group.number(), %addr, "srtla link registered");
                    }
                    Event::LinkTimedOut { group, addr } => {
                        info!(group = group.number(), %addr, "srtla link timed out");
                    }
                    Event::GroupRemoved {
                        group,
                        had_links: true,
                    } => {
                        info!(group = group.number(), "srtla group ended");
                    }
                    Event::GroupRemoved {
                        group,
                        had_links: false,
                    } => {
                        debug!(group = group.number(), "srtla registration expired");
                    }
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// srtla.md §5.1: "a UDP socket connect()ed to the SRT server, one per group,
/// so the SRT server sees each group as a distinct … peer".
async fn open_srt_socket(
    srt: SocketAddr,
    group: GroupKey,
    tx: mpsc::Sender<Downstream>,
) -> std::io::Result<SrtSocket> {
    let any = match srt.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0)).await?;
    socket.connect(srt).await?;
    let socket = Arc::new(socket);
    let reader_socket = Arc::clone(&socket);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        loop {
            let msg = match reader_socket.recv(&mut buf).await {
                Ok(n) => Downstream::Datagram(
                    group,
                    Bytes::copy_from_slice(buf.get(..n).unwrap_or_default()),
                ),
                Err(e) => Downstream::Failed(group, e),
            };
            let failed = matches!(msg, Downstream::Failed(..));
            if tx.send(msg).await.is_err() || failed {
                return;
            }
        }
    });
    Ok(SrtSocket { socket, reader })
}

/// The receiver half of every group id comes from the OS CSPRNG
/// (srtla.md §3.2: "The id is the only credential … → use a CSPRNG").
fn fill_random(buf: &mut [u8]) -> bool {
    match getrandom::getrandom(buf) {
        Ok(()) => true,
        Err(e) => {
            warn!("srtla: the OS random source failed ({e}); refusing registrations");
            false
        }
    }
}
