//! A numbered SRT test stream: the sender paces fixed-size messages at a bit rate, each carrying
//! its sequence number; the receiver logs when each arrives. Both ends read one monotonic clock
//! in one process, so delivery, loss and latency are exact.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::{BufMut, Bytes, BytesMut};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use srt_tokio::SrtListener;
use tokio::net::UdpSocket;

/// Bytes per message: 7 TS packets, what live SRT publishers send.
pub const MESSAGE_BYTES: usize = 1316;

/// What the receiver saw: per sequence number, when it was released (first copy only).
#[derive(Debug, Default)]
pub struct Received {
    pub at: Vec<Option<Instant>>,
}

/// A listener with latency `latency` on 127.0.0.1; accepts one caller and logs its messages.
pub struct Sink {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<(u64, Instant)>>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Sink {
    pub async fn start(latency: Duration) -> anyhow::Result<Self> {
        let udp = UdpSocket::bind("127.0.0.1:0").await.context("bind sink")?;
        let addr = udp.local_addr()?;
        let (listener, mut incoming) = SrtListener::builder()
            .latency(latency)
            .socket(udp)
            .bind(addr)
            .await
            .context("SRT sink listener")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let got = Arc::clone(&log);
        let task = tokio::spawn(async move {
            let req = incoming
                .incoming()
                .next()
                .await
                .context("sink listener closed")?;
            let mut sock = req.accept(None).await.context("sink accept")?;
            while let Some(Ok((_, data))) = sock.next().await {
                let now = Instant::now();
                if let (Some(seq), Ok(mut g)) =
                    (data.get(..8).and_then(|b| b.try_into().ok()), got.lock())
                {
                    g.push((u64::from_be_bytes(seq), now));
                }
            }
            drop((listener, incoming));
            Ok(())
        });
        Ok(Self { addr, log, task })
    }

    /// Whether anything has arrived yet.
    fn heard(&self) -> bool {
        self.log.lock().is_ok_and(|g| !g.is_empty())
    }

    /// Stops listening and returns what arrived, for `sent` messages numbered from 0.
    #[must_use]
    pub fn finish(self, sent: usize) -> Received {
        self.task.abort();
        let mut r = Received {
            at: vec![None; sent],
        };
        let log = self.log.lock().map(|g| g.clone()).unwrap_or_default();
        for (seq, at) in log {
            if let Some(slot) = usize::try_from(seq).ok().and_then(|s| r.at.get_mut(s)) {
                slot.get_or_insert(at);
            }
        }
        r
    }
}

/// An SRT caller the way encoders send: `srt-live-transmit` (libsrt, as in ffmpeg and
/// GStreamer) reads UDP datagrams from this process and sends them as SRT messages to `addr`.
/// (srt-tokio's own sender repairs loss poorly and fails its handshake over reordering links,
/// so it would measure itself, not the path.) Killed when dropped.
pub struct Caller {
    child: tokio::process::Child,
    udp: UdpSocket,
}

impl Caller {
    /// Starts the caller towards `addr` and returns once `sink` has received from it: warm-up
    /// messages (numbered `u64::MAX`, not logged as stream) go out until the connection is up.
    pub async fn start(
        addr: SocketAddr,
        sid: &str,
        latency: Duration,
        sink: &Sink,
    ) -> anyhow::Result<Self> {
        let port = {
            let probe = std::net::UdpSocket::bind("127.0.0.1:0").context("pick a port")?;
            probe.local_addr()?.port()
        };
        let child = tokio::process::Command::new("srt-live-transmit")
            .args([
                "-q".to_owned(),
                format!("udp://127.0.0.1:{port}"),
                format!(
                    "srt://{addr}?mode=caller&streamid={sid}&latency={}",
                    latency.as_millis()
                ),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("start srt-live-transmit (package srt-tools)")?;
        let udp = UdpSocket::bind("127.0.0.1:0")
            .await
            .context("bind caller feed")?;
        udp.connect(("127.0.0.1", port)).await?;
        // srt-live-transmit connects the SRT side once the first datagram arrives, and drops
        // what comes before the connection is up.
        let mut warmup = vec![0u8; MESSAGE_BYTES];
        warmup[..8].copy_from_slice(&u64::MAX.to_be_bytes());
        let deadline = Instant::now() + Duration::from_secs(15);
        while !sink.heard() {
            ensure!(
                Instant::now() < deadline,
                "no SRT connection to {addr} within 15 s"
            );
            let _ = udp.send(&warmup).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Let the warm-up's stragglers arrive before the numbered stream starts.
        tokio::time::sleep(latency).await;
        Ok(Self { child, udp })
    }

    async fn send(&self, msg: &[u8]) -> anyhow::Result<()> {
        self.udp.send(msg).await.context("feed srt-live-transmit")?;
        Ok(())
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Sends `MESSAGE_BYTES` messages at `kbps` for `duration`, numbered from 0; returns when each
/// was handed over. Stops the caller after letting the tail drain for `drain`.
pub async fn send_paced(
    caller: Caller,
    kbps: u64,
    duration: Duration,
    drain: Duration,
) -> anyhow::Result<Vec<Instant>> {
    ensure!(kbps > 0, "rate must be positive");
    let interval = Duration::from_secs_f64((MESSAGE_BYTES * 8) as f64 / (kbps as f64 * 1000.0));
    let count = (duration.as_secs_f64() / interval.as_secs_f64()).ceil() as u64;
    let start = tokio::time::Instant::now();
    let mut sent = Vec::with_capacity(usize::try_from(count)?);
    let mut buf = BytesMut::with_capacity(MESSAGE_BYTES);
    for seq in 0..count {
        // Timer granularity is 1 ms: wake per millisecond, send whatever is due.
        tokio::time::sleep_until(start + interval.mul_f64(seq as f64)).await;
        buf.put_u64(seq);
        buf.resize(MESSAGE_BYTES, 0);
        let msg: Bytes = buf.split().freeze();
        let now = Instant::now();
        caller.send(&msg).await?;
        sent.push(now);
    }
    tokio::time::sleep(drain).await;
    caller.stop().await;
    Ok(sent)
}

/// Delivery over a span of send times.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Delivery {
    pub sent: usize,
    pub delivered: usize,
    /// Delivered payload rate over the span, kb/s.
    pub kbps: f64,
}

/// Messages sent in `[from, to)` and how many of them arrived.
#[must_use]
pub fn delivery(sent: &[Instant], got: &Received, from: Instant, to: Instant) -> Delivery {
    let idx: Vec<usize> = (0..sent.len())
        .filter(|i| sent[*i] >= from && sent[*i] < to)
        .collect();
    let delivered = idx.iter().filter(|i| got.at[**i].is_some()).count();
    let secs = to.saturating_duration_since(from).as_secs_f64().max(1e-9);
    Delivery {
        sent: idx.len(),
        delivered,
        kbps: (delivered * MESSAGE_BYTES * 8) as f64 / secs / 1000.0,
    }
}

/// Release − send − `latency` of every delivered message, µs (0 if earlier).
#[must_use]
pub fn added_latency_us(sent: &[Instant], got: &Received, latency: Duration) -> Vec<u64> {
    sent.iter()
        .zip(&got.at)
        .filter_map(|(s, r)| r.map(|r| r.saturating_duration_since(*s + latency)))
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .collect()
}

/// After an event at `at` (a link death): how long until the stream is whole again, by send
/// time, i.e. from `at` to just past the last message sent after it that never arrived
/// (`Duration::ZERO` when the event cost nothing). SRT releases every message exactly one latency
/// after its send time or never, so a dip in delivered rate shows only as messages lost.
#[must_use]
pub fn recovery(sent: &[Instant], got: &Received, at: Instant) -> Duration {
    (0..sent.len())
        .rev()
        .take_while(|i| sent[*i] >= at)
        .find(|i| got.at[*i].is_none())
        .map_or(Duration::ZERO, |i| sent[i] - at + Duration::from_micros(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_latency_and_recovery_from_logs() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let sent: Vec<Instant> = (0..1000).map(|i| t0 + ms * i).collect();
        // Every message arrives 120 ms after it was sent, except those sent 300–350 ms.
        let at = sent
            .iter()
            .enumerate()
            .map(|(i, s)| (!(300..350).contains(&i)).then_some(*s + 120 * ms))
            .collect();
        let got = Received { at };
        let d = delivery(&sent, &got, t0, t0 + 1000 * ms);
        assert_eq!((d.sent, d.delivered), (1000, 950));
        assert!((d.kbps - 950.0 * 1316.0 * 8.0 / 1000.0).abs() < 1e-6);
        let lat = added_latency_us(&sent, &got, 100 * ms);
        assert_eq!(lat.len(), 950);
        assert!(lat.iter().all(|l| *l == 20_000));
        // Death at 290 ms: last loss at 349 ms.
        let r = recovery(&sent, &got, t0 + 290 * ms);
        assert!(r >= 59 * ms && r <= 60 * ms, "{r:?}");
        // A death nobody noticed.
        assert_eq!(recovery(&sent, &got, t0 + 500 * ms), Duration::ZERO);
    }
}
