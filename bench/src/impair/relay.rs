//! The tokio shell: a UDP relay that impairs both directions of one link.
//!
//! Clients send to [`Relay::local_addr`]; each client source address gets its own upstream socket
//! (connected to the upstream address), so the upstream sees one peer per client and its replies
//! flow back to the right client through the same impairment, reversed.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::link::{Impairment, LinkParams, Stats};
use super::schedule::{LinkState, Schedule};

/// Largest datagram relayed (UDP's maximum).
const MAX_DATAGRAM: usize = 65_535;
/// Distinct clients one relay serves; datagrams from more are dropped.
const MAX_CLIENTS: usize = 64;

/// How to start a relay.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    /// Client → upstream.
    pub up: LinkParams,
    /// Upstream → client.
    pub down: LinkParams,
    /// Applies to both directions, from the relay's start.
    pub schedule: Schedule,
    pub seed: u64,
}

/// Counters of both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub up: Stats,
    pub down: Stats,
    pub clients: usize,
}

enum Command {
    State(LinkState),
    /// Up, down.
    Params(Box<(LinkParams, LinkParams)>),
    Stats(oneshot::Sender<RelayStats>),
}

/// A running relay; stops when dropped.
pub struct Relay {
    local_addr: SocketAddr,
    commands: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Binds `config.listen` and starts relaying.
    pub async fn start(config: RelayConfig) -> io::Result<Self> {
        let socket = UdpSocket::bind(config.listen).await?;
        let local_addr = socket.local_addr()?;
        let (commands, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(config, socket, rx));
        Ok(Self {
            local_addr,
            commands,
            task,
        })
    }

    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Kills (`Down`) or revives (`Up`) the link now.
    pub fn set_state(&self, state: LinkState) {
        let _ = self.commands.send(Command::State(state));
    }

    /// New parameters for both directions, from now on.
    pub fn set_params(&self, up: LinkParams, down: LinkParams) {
        let _ = self.commands.send(Command::Params(Box::new((up, down))));
    }

    /// The counters so far (`None` if the relay has stopped).
    pub async fn stats(&self) -> Option<RelayStats> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Stats(tx)).ok()?;
        rx.await.ok()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client: its upstream socket and the task reading replies from it.
struct Flow {
    upstream: Arc<UdpSocket>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn run(
    config: RelayConfig,
    listener: UdpSocket,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let start = Instant::now();
    // Different streams for the two directions, both from the one seed.
    let mut up: Impairment<(SocketAddr, Bytes)> =
        Impairment::new(config.up, config.schedule.clone(), config.seed, start);
    let mut down: Impairment<(SocketAddr, Bytes)> = Impairment::new(
        config.down,
        config.schedule,
        config.seed ^ 0x9e37_79b9_7f4a_7c15,
        start,
    );
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let (replies_tx, mut replies) = mpsc::unbounded_channel::<(SocketAddr, Bytes)>();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let unspecified: SocketAddr = if config.upstream.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    loop {
        let deadline = up
            .poll_timeout()
            .into_iter()
            .chain(down.poll_timeout())
            .min();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = listener.recv_from(&mut buf) => {
                let Ok((n, client)) = received else { continue };
                if !flows.contains_key(&client) {
                    if flows.len() >= MAX_CLIENTS {
                        continue;
                    }
                    let Ok(flow) = open_flow(unspecified, config.upstream, client, &replies_tx).await
                    else {
                        continue;
                    };
                    flows.insert(client, flow);
                }
                let _ = up.handle_datagram(
                    Instant::now(),
                    n,
                    (client, Bytes::copy_from_slice(&buf[..n])),
                );
            }
            Some((client, data)) = replies.recv() => {
                let _ = down.handle_datagram(Instant::now(), data.len(), (client, data));
            }
            command = commands.recv() => {
                let now = Instant::now();
                match command {
                    None => return,
                    Some(Command::State(s)) => {
                        up.set_state(now, s);
                        down.set_state(now, s);
                    }
                    Some(Command::Params(p)) => {
                        up.set_params(now, p.0);
                        down.set_params(now, p.1);
                    }
                    Some(Command::Stats(tx)) => {
                        let _ = tx.send(RelayStats {
                            up: up.stats(),
                            down: down.stats(),
                            clients: flows.len(),
                        });
                    }
                }
            }
            () = sleep => {}
        }
        let now = Instant::now();
        while let Some((client, data)) = up.poll_transmit(now) {
            if let Some(flow) = flows.get(&client) {
                // A refused send (nothing listening upstream yet) is a lost datagram.
                let _ = flow.upstream.send(&data).await;
            }
        }
        while let Some((client, data)) = down.poll_transmit(now) {
            let _ = listener.send_to(&data, client).await;
        }
    }
}

async fn open_flow(
    bind: SocketAddr,
    upstream: SocketAddr,
    client: SocketAddr,
    replies: &mpsc::UnboundedSender<(SocketAddr, Bytes)>,
) -> io::Result<Flow> {
    let socket = Arc::new(UdpSocket::bind(bind).await?);
    socket.connect(upstream).await?;
    let reader_socket = Arc::clone(&socket);
    let replies = replies.clone();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            match reader_socket.recv(&mut buf).await {
                Ok(n) => {
                    if replies
                        .send((client, Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
                // ICMP port unreachable surfaces here on a connected socket: keep reading.
                Err(_) => continue,
            }
        }
    });
    Ok(Flow {
        upstream: socket,
        reader,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;
    use crate::impair::link::{Loss, Probability};

    async fn echo_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                let _ = s.send_to(&buf[..n], from).await;
            }
        });
        (addr, task)
    }

    fn config(upstream: SocketAddr, params: LinkParams, schedule: &str) -> RelayConfig {
        RelayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream,
            up: params,
            down: params,
            schedule: Schedule::parse(schedule).unwrap(),
            seed: 1,
        }
    }

    async fn echo(client: &UdpSocket, msg: &[u8], wait: Duration) -> Option<Vec<u8>> {
        client.send(msg).await.unwrap();
        let mut buf = [0u8; 2048];
        let n = tokio::time::timeout(wait, client.recv(&mut buf))
            .await
            .ok()?
            .unwrap();
        Some(buf[..n].to_vec())
    }

    #[tokio::test]
    async fn relays_both_ways_per_client_with_delay() {
        let (server, _task) = echo_server().await;
        let params = LinkParams {
            delay: Duration::from_millis(30),
            ..LinkParams::default()
        };
        let relay = Relay::start(config(server, params, "")).await.unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        a.connect(relay.local_addr()).await.unwrap();
        b.connect(relay.local_addr()).await.unwrap();
        let t = Instant::now();
        assert_eq!(
            echo(&a, b"from a", Duration::from_secs(5)).await.unwrap(),
            b"from a"
        );
        assert!(t.elapsed() >= Duration::from_millis(60), "delay both ways");
        assert_eq!(
            echo(&b, b"from b", Duration::from_secs(5)).await.unwrap(),
            b"from b"
        );
        let stats = relay.stats().await.unwrap();
        assert_eq!(
            (stats.clients, stats.up.delivered, stats.down.delivered),
            (2, 2, 2)
        );
    }

    #[tokio::test]
    async fn link_death_on_command_and_on_schedule() {
        let (server, _task) = echo_server().await;
        // Waits for answers that must come are generous (a loaded machine); for those that
        // must not, short.
        let (must, must_not) = (Duration::from_secs(5), Duration::from_millis(300));
        let dead = Relay::start(config(server, LinkParams::default(), "down@0s"))
            .await
            .unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.connect(dead.local_addr()).await.unwrap();
        assert_eq!(echo(&c, b"0", must_not).await, None, "dead on schedule");

        let relay = Relay::start(config(server, LinkParams::default(), ""))
            .await
            .unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.connect(relay.local_addr()).await.unwrap();
        assert!(echo(&c, b"1", must).await.is_some());
        // Commands share one queue with `stats`: once it answers, they have been applied.
        relay.set_state(LinkState::Down);
        relay.stats().await.unwrap();
        assert_eq!(echo(&c, b"2", must_not).await, None, "dead on command");
        relay.set_state(LinkState::Up);
        relay.stats().await.unwrap();
        assert!(echo(&c, b"3", must).await.is_some());
        relay.set_params(
            LinkParams {
                loss: Loss::Bernoulli(Probability::ONE),
                ..LinkParams::default()
            },
            LinkParams::default(),
        );
        relay.stats().await.unwrap();
        assert_eq!(echo(&c, b"4", must_not).await, None, "all lost");
        let stats = relay.stats().await.unwrap();
        assert_eq!((stats.up.dropped_down, stats.up.lost), (1, 1));
    }
}
