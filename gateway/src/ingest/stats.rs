//! Per-publisher statistics for `/api/v1/streams`, and the bitrate meter
//! that enforces `srt.max_bitrate_kbps`.
//!
//! srt-tokio 0.4 reports some counters (retransmitted and dropped packets;
//! through our srt-protocol patch the RTT its receiver measures from ACK/ACK2
//! pairs and the receive buffer's span) and leaves others at zero (loss
//! detected, bandwidth, receive rate): the gateway computes the bitrate from
//! the bytes it is handed and the loss ratio from the packets SRT gave up on.
//! Sans-IO: every input carries `now`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;
use srt_tokio::SocketStatistics;

use crate::stream::uplink::Role;

/// Buckets per meter window: the window slides in steps of 1/20 of it.
const BUCKETS: u32 = 20;

/// Bytes received over a sliding window.
#[derive(Debug)]
pub struct RateMeter {
    window: Duration,
    start: Instant,
    /// (bucket start, bytes), oldest first.
    buckets: VecDeque<(Instant, u64)>,
    sum: u64,
}

impl RateMeter {
    #[must_use]
    pub fn new(now: Instant, window: Duration) -> Self {
        Self {
            window,
            start: now,
            buckets: VecDeque::new(),
            sum: 0,
        }
    }

    pub fn push(&mut self, now: Instant, bytes: usize) {
        self.expire(now);
        let bytes = bytes as u64;
        let step = self.window / BUCKETS;
        match self.buckets.back_mut() {
            Some((start, n)) if now - *start < step => *n += bytes,
            _ => self.buckets.push_back((now, bytes)),
        }
        self.sum += bytes;
    }

    /// Bits per second over the last window; `None` until one whole window
    /// has passed (the connection's first burst is not a rate).
    #[must_use]
    pub fn window_bps(&mut self, now: Instant) -> Option<u64> {
        if now - self.start < self.window {
            return None;
        }
        self.expire(now);
        Some(bps(self.sum, self.window))
    }

    /// Bits per second over the last window, or since the start if shorter
    /// (at least one second), for display.
    #[must_use]
    pub fn current_bps(&mut self, now: Instant) -> u64 {
        self.expire(now);
        let span = (now - self.start).clamp(Duration::from_secs(1), self.window);
        bps(self.sum, span)
    }

    fn expire(&mut self, now: Instant) {
        while let Some((start, n)) = self.buckets.front() {
            if now - *start < self.window {
                break;
            }
            self.sum -= n;
            self.buckets.pop_front();
        }
    }
}

fn bps(bytes: u64, span: Duration) -> u64 {
    let bits = u128::from(bytes) * 8 * 1000;
    u64::try_from(bits / span.as_millis().max(1)).unwrap_or(u64::MAX)
}

/// One publisher as `/api/v1/streams` shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PublisherStats {
    /// `primary` or `backup`.
    pub role: &'static str,
    /// The caller's address.
    pub peer: String,
    pub connected_ms: u64,
    /// MPEG-TS bytes handed to the gateway.
    pub bytes: u64,
    /// SRT data packets handed to the gateway.
    pub packets: u64,
    /// Over the last `BITRATE_WINDOW` (5 s).
    pub bitrate_kbps: u64,
    /// Smoothed round-trip time SRT measures (10 until the first ACK2).
    pub rtt_ms: f64,
    /// Packets that arrived as retransmissions (lost once, recovered).
    pub retransmitted_packets: u64,
    /// Packets SRT gave up on (not recovered within the latency): lost for good.
    pub lost_packets: u64,
    /// `lost_packets` per packet sent, in percent.
    pub loss_percent: f64,
    /// SRT receive latency negotiated with the caller: how long SRT buffers
    /// each packet for retransmission before handing it over.
    pub latency_ms: u64,
    /// Media time in SRT's receive buffer now (about `latency_ms` when data
    /// flows steadily).
    pub buffer_ms: u64,
    /// Datagrams waiting for the stream task (1024 at most).
    pub queued: usize,
}

/// Folds what the SRT connection reports into [`PublisherStats`].
#[derive(Debug)]
pub struct StatsTracker {
    start: Instant,
    meter: RateMeter,
    stats: PublisherStats,
}

impl StatsTracker {
    #[must_use]
    pub fn new(
        now: Instant,
        role: Role,
        peer: String,
        latency: Duration,
        window: Duration,
    ) -> Self {
        Self {
            start: now,
            meter: RateMeter::new(now, window),
            stats: PublisherStats {
                role: role.as_str(),
                peer,
                latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
                ..PublisherStats::default()
            },
        }
    }

    /// A datagram of `len` bytes was received; returns the bitrate over the
    /// last full window, once there is one.
    pub fn on_datagram(&mut self, now: Instant, len: usize) -> Option<u64> {
        self.stats.bytes += len as u64;
        self.stats.packets += 1;
        self.meter.push(now, len);
        self.meter.window_bps(now)
    }

    /// srt-tokio's periodic statistics.
    pub fn on_srt(&mut self, s: &SocketStatistics) {
        let st = &mut self.stats;
        st.rtt_ms = s.rx_average_rtt.as_secs_f64() * 1000.0;
        st.retransmitted_packets = s.rx_retransmit_data;
        st.lost_packets = s.rx_dropped_data;
        st.buffer_ms = u64::try_from(s.rx_acknowledged_time.as_millis()).unwrap_or(u64::MAX);
        let sent = s.rx_unique_data + s.rx_dropped_data;
        st.loss_percent = if sent == 0 {
            0.0
        } else {
            s.rx_dropped_data as f64 * 100.0 / sent as f64
        };
    }

    #[must_use]
    pub fn snapshot(&mut self, now: Instant, queued: usize) -> PublisherStats {
        self.stats.connected_ms = u64::try_from((now - self.start).as_millis()).unwrap_or(u64::MAX);
        self.stats.bitrate_kbps = self.meter.current_bps(now) / 1000;
        self.stats.queued = queued;
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_measures_whole_windows_only() {
        let t0 = Instant::now();
        let w = Duration::from_secs(5);
        let mut m = RateMeter::new(t0, w);
        // 1316-byte datagrams every 10 ms: 1.0528 Mb/s.
        let mut t = t0;
        for _ in 0..499 {
            m.push(t, 1316);
            t += Duration::from_millis(10);
            if t - t0 < w {
                assert_eq!(m.window_bps(t), None);
            }
        }
        m.push(t, 1316);
        t += Duration::from_millis(10);
        let bps = m.window_bps(t).unwrap();
        // Within one bucket (1/20 of the window) of the true rate.
        assert!((990_000..=1_060_000).contains(&bps), "{bps}");
        // Twice the rate for a whole window doubles it; silence brings it to zero.
        for _ in 0..1000 {
            m.push(t, 1316);
            t += Duration::from_millis(5);
        }
        let bps = m.window_bps(t).unwrap();
        assert!((1_850_000..=2_200_000).contains(&bps), "{bps}");
        assert_eq!(m.window_bps(t + w + Duration::from_millis(1)), Some(0));
    }

    #[test]
    fn the_display_rate_is_sensible_in_the_first_seconds() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(t0, Duration::from_secs(5));
        for i in 0..200 {
            m.push(t0 + Duration::from_millis(i * 10), 1250);
        }
        // 250 kB in 2 s: 1 Mb/s.
        let bps = m.current_bps(t0 + Duration::from_secs(2));
        assert!((950_000..=1_050_000).contains(&bps), "{bps}");
    }

    #[test]
    fn loss_is_what_srt_gave_up_on() {
        let t0 = Instant::now();
        let latency = Duration::from_millis(120);
        let window = Duration::from_secs(5);
        let mut t = StatsTracker::new(t0, Role::Backup, "1.2.3.4:5".into(), latency, window);
        let mut s = SocketStatistics::default();
        s.rx_unique_data = 990;
        s.rx_dropped_data = 10;
        s.rx_retransmit_data = 40;
        s.rx_average_rtt = Duration::from_millis(42);
        s.rx_acknowledged_time = Duration::from_millis(110);
        t.on_srt(&s);
        t.on_datagram(t0, 1316);
        let snap = t.snapshot(t0 + Duration::from_secs(1), 3);
        assert_eq!(snap.role, "backup");
        assert!((snap.loss_percent - 1.0).abs() < 1e-9);
        assert_eq!(snap.retransmitted_packets, 40);
        assert_eq!(snap.latency_ms, 120);
        assert!((snap.rtt_ms - 42.0).abs() < 1e-9);
        assert_eq!(snap.buffer_ms, 110);
        assert_eq!((snap.bytes, snap.packets, snap.queued), (1316, 1, 3));
        assert_eq!(snap.connected_ms, 1000);
    }
}
