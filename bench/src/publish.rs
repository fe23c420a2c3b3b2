//! The publisher: an srt-tokio caller that sends a [`Source`] in real time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::SinkExt;
use srt_tokio::SrtSocket;

use crate::ts::{Source, TICKS_PER_SEC};

/// Connects an SRT caller with stream id `sid` and receiver latency `latency`.
pub async fn call(addr: SocketAddr, sid: &str, latency: Duration) -> anyhow::Result<SrtSocket> {
    tokio::time::timeout(
        Duration::from_secs(5),
        SrtSocket::builder().latency(latency).call(addr, Some(sid)),
    )
    .await
    .with_context(|| format!("SRT call to {addr} timed out"))?
    .with_context(|| format!("SRT call to {addr}"))
}

/// When each datagram was handed to SRT: to the gateway, and to the twin.
pub type Published = (Vec<Instant>, Option<Vec<Instant>>);

/// Sends the source in real time: each datagram at its frame's decode time
/// after the start; every datagram also goes to `twin` right after, if given.
/// Once `stop` is set, `tail_frames` more frames go out (so that the last
/// frames measured have a successor). Returns when each datagram was sent.
pub async fn real_time(
    mut sock: SrtSocket,
    mut twin: Option<SrtSocket>,
    src: &Source,
    stop: &AtomicBool,
    tail_frames: usize,
) -> anyhow::Result<Published> {
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let first_dts = src.frames.first().map_or(0, |f| f.dts);
    let mut sent = Vec::with_capacity(src.datagrams.len());
    let mut twin_sent = twin
        .as_ref()
        .map(|_| Vec::with_capacity(src.datagrams.len()));
    let mut due_frame = usize::MAX;
    let mut last_frame = usize::MAX;
    for d in &src.datagrams {
        if d.send_frame != due_frame {
            if last_frame == usize::MAX && stop.load(Ordering::SeqCst) {
                last_frame = d.send_frame + tail_frames;
            }
            if d.send_frame > last_frame {
                break;
            }
            due_frame = d.send_frame;
            let dts = src.frames.get(due_frame).map_or(first_dts, |f| f.dts);
            let offset = Duration::from_nanos(u64::try_from(
                (dts - first_dts) * 1_000_000_000 / TICKS_PER_SEC,
            )?);
            tokio::time::sleep_until(start + offset).await;
        }
        // The SRT source time is the moment of handing over: the receiver
        // releases the packet one SRT latency after it.
        let now = Instant::now();
        sock.send((now, d.data.clone()))
            .await
            .context("SRT send to the gateway")?;
        sent.push(now);
        if let (Some(t), Some(ts)) = (twin.as_mut(), twin_sent.as_mut()) {
            let now = Instant::now();
            t.send((now, d.data.clone()))
                .await
                .context("SRT send (baseline)")?;
            ts.push(now);
        }
    }
    // Let the last datagrams be delivered before closing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), sock.close_and_finish()).await;
    if let Some(t) = twin.as_mut() {
        let _ = tokio::time::timeout(Duration::from_secs(2), t.close_and_finish()).await;
    }
    Ok((sent, twin_sent))
}
