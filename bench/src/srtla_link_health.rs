//! What one SRTLA sender link's feedback says about it (sans-IO, fed `now`):
//! whether it still delivers (dead-link detection from SRTLA ACKs), its
//! round-trip time (keepalive echoes) and its delivery rate (bytes the
//! receiver ACKed per interval), hence how many bytes it may have in flight.
//! Used by `srtla_sender`; the receiver side is `shared/notes/srtla.md` §5.2.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// srtla.md §5.2: the receiver ACKs "every 10 packets" of a link, to that
/// link only. A batch and a bit (two datagrams may be lost) sent and not
/// answered within the stall time means the link stopped delivering. A lost
/// ACK makes a false stall, which the next probe's echo ends.
const STALL_PACKETS: u32 = 12;
/// The stall time is this many RTTs of the link (the batch's last datagram
/// out, its ACK back) …
const STALL_RTTS: u32 = 2;
/// … but never shorter (jitter, ACK batching on a slow link) …
const STALL_MIN: Duration = Duration::from_millis(300);
/// … and this long while the link has no RTT sample yet.
const STALL_NO_RTT: Duration = Duration::from_millis(500);
/// A stalled link is probed with a keepalive this often; the echo of one
/// sent after the stall began brings it back.
pub const PROBE_PERIOD: Duration = Duration::from_millis(100);
/// Delivery rate: bytes ACKed per interval; the estimate is the highest of
/// the last few intervals (ACKs come in batches of 10, so one interval may
/// see none).
const RATE_INTERVAL: Duration = Duration::from_millis(250);
const RATE_SAMPLES: usize = 4;
/// RTT samples kept for the minimum (keepalives come once a second).
const RTT_SAMPLES: usize = 8;
/// The in-flight cap is rate × (2 × min RTT + this): the sender's in-flight
/// log also holds packets waiting for their 10-packet SRTLA ACK batch or for
/// an SRT ACK held back by a hole on a slower link.
const CAP_ALLOWANCE: Duration = Duration::from_millis(200);
/// Never cap a link below this many of its datagrams (a link that carried
/// little has a low measured rate and must be able to grow).
const CAP_FLOOR_PACKETS: u64 = 20;

/// Bytes per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BytesPerSec(pub u64);

impl BytesPerSec {
    fn over(self, d: Duration) -> u64 {
        u64::try_from(u128::from(self.0) * d.as_micros() / 1_000_000).unwrap_or(u64::MAX)
    }
}

#[derive(Debug)]
pub struct LinkHealth {
    /// Data datagrams sent since the last SRTLA ACK on this link.
    sent_since_ack: u32,
    /// When the `STALL_PACKETS`-th of them was sent.
    stall_mark: Option<Instant>,
    stalled_since: Option<Instant>,
    next_probe: Option<Instant>,
    /// Smoothed RTT (RFC 6298 gain 1/8) and recent samples, in ms.
    srtt_ms: Option<u32>,
    rtt_samples: VecDeque<u32>,
    rate_start: Instant,
    rate_bytes: u64,
    rate_samples: VecDeque<BytesPerSec>,
    data_packets: u64,
    data_bytes: u64,
}

impl LinkHealth {
    #[must_use]
    pub fn new(now: Instant) -> Self {
        Self {
            sent_since_ack: 0,
            stall_mark: None,
            stalled_since: None,
            next_probe: None,
            srtt_ms: None,
            rtt_samples: VecDeque::new(),
            rate_start: now,
            rate_bytes: 0,
            rate_samples: VecDeque::new(),
            data_packets: 0,
            data_bytes: 0,
        }
    }

    /// A data datagram of `bytes` went out over the link.
    pub fn on_data_sent(&mut self, now: Instant, bytes: usize) {
        self.data_packets += 1;
        self.data_bytes += bytes as u64;
        self.sent_since_ack = self.sent_since_ack.saturating_add(1);
        if self.sent_since_ack == STALL_PACKETS {
            self.stall_mark = Some(now);
        }
    }

    /// An SRTLA ACK listing `sns` SNs arrived on the link: they were
    /// delivered (duplicates too, which also took the link's capacity).
    /// Returns true if this ends a stall.
    pub fn on_srtla_ack(&mut self, now: Instant, sns: usize) -> bool {
        self.roll_rate(now);
        self.rate_bytes += sns as u64 * self.mean_datagram();
        self.resume()
    }

    /// The echo of a keepalive sent at `sent` arrived at `now`. Returns true
    /// if this ends a stall (the probe went out after the stall began, so
    /// the link carries traffic both ways again).
    pub fn on_keepalive_echo(&mut self, now: Instant, sent: Instant) -> bool {
        let rtt =
            u32::try_from(now.saturating_duration_since(sent).as_millis()).unwrap_or(u32::MAX);
        self.srtt_ms = Some(self.srtt_ms.map_or(rtt, |s| (s * 7 + rtt) / 8));
        if self.rtt_samples.len() == RTT_SAMPLES {
            self.rtt_samples.pop_front();
        }
        self.rtt_samples.push_back(rtt);
        self.stalled_since.is_some_and(|s| sent >= s) && self.resume()
    }

    fn resume(&mut self) -> bool {
        self.sent_since_ack = 0;
        self.stall_mark = None;
        self.next_probe = None;
        self.stalled_since.take().is_some()
    }

    fn stall_time(&self) -> Duration {
        self.srtt_ms.map_or(STALL_NO_RTT, |ms| {
            (Duration::from_millis(u64::from(ms)) * STALL_RTTS).max(STALL_MIN)
        })
    }

    /// When the link counts as stalled unless an ACK arrives first.
    #[must_use]
    pub fn stall_deadline(&self) -> Option<Instant> {
        match self.stalled_since {
            Some(_) => None,
            None => self.stall_mark.map(|m| m + self.stall_time()),
        }
    }

    /// Marks the link stalled once its deadline passed; true if it just did.
    pub fn check_stall(&mut self, now: Instant) -> bool {
        if self.stall_deadline().is_some_and(|d| now >= d) {
            self.stalled_since = Some(now);
            self.next_probe = Some(now);
            return true;
        }
        false
    }

    #[must_use]
    pub fn is_stalled(&self) -> bool {
        self.stalled_since.is_some()
    }

    #[must_use]
    pub fn next_probe(&self) -> Option<Instant> {
        self.next_probe
    }

    /// True if a probe is due now (and schedules the next one).
    pub fn take_probe(&mut self, now: Instant) -> bool {
        if self.next_probe.is_some_and(|p| now >= p) {
            self.next_probe = Some(now + PROBE_PERIOD);
            return true;
        }
        false
    }

    #[must_use]
    pub fn srtt_ms(&self) -> Option<u32> {
        self.srtt_ms
    }

    fn roll_rate(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.rate_start);
        if elapsed < RATE_INTERVAL {
            return;
        }
        let per_s = u128::from(self.rate_bytes) * 1_000_000 / elapsed.as_micros().max(1);
        if self.rate_samples.len() == RATE_SAMPLES {
            self.rate_samples.pop_front();
        }
        self.rate_samples
            .push_back(BytesPerSec(u64::try_from(per_s).unwrap_or(u64::MAX)));
        self.rate_bytes = 0;
        self.rate_start = now;
    }

    /// The delivery rate: the best recent interval; None before the first.
    pub fn delivery_rate(&mut self, now: Instant) -> Option<BytesPerSec> {
        self.roll_rate(now);
        self.rate_samples.iter().max().copied()
    }

    fn mean_datagram(&self) -> u64 {
        self.data_bytes.checked_div(self.data_packets).unwrap_or(0)
    }

    /// How many bytes the link may have in flight: its bandwidth-delay
    /// product with headroom (see `CAP_ALLOWANCE`); None = no estimate yet.
    pub fn in_flight_cap(&mut self, now: Instant) -> Option<u64> {
        let rate = self.delivery_rate(now)?;
        let min_rtt = self.rtt_samples.iter().min().copied()?;
        let delay = Duration::from_millis(u64::from(min_rtt)) * 2 + CAP_ALLOWANCE;
        Some(
            rate.over(delay)
                .max(CAP_FLOOR_PACKETS * self.mean_datagram()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn stalls_after_an_unanswered_batch_and_resumes_on_a_later_probe() {
        let t0 = Instant::now();
        let mut h = LinkHealth::new(t0);
        for _ in 0..11 {
            h.on_data_sent(t0, 1316);
        }
        assert_eq!(h.stall_deadline(), None);
        h.on_data_sent(t0, 1316);
        assert_eq!(h.stall_deadline(), Some(t0 + STALL_NO_RTT));
        assert!(!h.check_stall(t0 + 499 * MS));
        assert!(h.check_stall(t0 + 500 * MS));
        assert!(h.is_stalled() && h.take_probe(t0 + 500 * MS));
        assert!(!h.take_probe(t0 + 550 * MS));
        // An echo of a keepalive sent before the stall proves nothing.
        assert!(!h.on_keepalive_echo(t0 + 560 * MS, t0 + 400 * MS));
        assert!(h.is_stalled());
        assert!(h.on_keepalive_echo(t0 + 700 * MS, t0 + 600 * MS));
        assert!(!h.is_stalled() && h.stall_deadline().is_none());
    }

    #[test]
    fn the_stall_time_follows_the_rtt_with_a_floor() {
        let t0 = Instant::now();
        let mut h = LinkHealth::new(t0);
        h.on_keepalive_echo(t0 + 20 * MS, t0);
        assert_eq!(h.stall_time(), STALL_MIN);
        for _ in 0..40 {
            h.on_keepalive_echo(t0 + 250 * MS, t0);
        }
        assert!(h.stall_time() > 480 * MS, "{:?}", h.stall_time());
        // An ACK clears the count.
        for _ in 0..12 {
            h.on_data_sent(t0, 1000);
        }
        assert!(h.stall_deadline().is_some());
        assert!(!h.on_srtla_ack(t0, 10));
        assert!(h.stall_deadline().is_none());
    }

    #[test]
    fn the_delivery_rate_and_cap_come_from_acked_bytes() {
        let t0 = Instant::now();
        let mut h = LinkHealth::new(t0);
        for _ in 0..100 {
            h.on_data_sent(t0, 1000);
        }
        assert_eq!(h.delivery_rate(t0), None);
        h.on_keepalive_echo(t0 + 50 * MS, t0);
        // 100 datagrams ACKed per 250 ms = 400 000 B/s.
        let mut t = t0;
        for _ in 0..8 {
            for _ in 0..10 {
                t += 25 * MS;
                h.on_srtla_ack(t, 10);
            }
        }
        let rate = h.delivery_rate(t + MS).map(|r| r.0);
        assert!(
            rate.is_some_and(|r| (360_000..=440_000).contains(&r)),
            "{rate:?}"
        );
        // rate × (2 × 50 ms + 200 ms) ≈ 120 000 B.
        let cap = h.in_flight_cap(t + MS);
        assert!(
            cap.is_some_and(|c| (108_000..=132_000).contains(&c)),
            "{cap:?}"
        );
    }
}
