//! Puts a group's SRT data back in sequence-number order before the SRT
//! listener sees it (the issue: data from all links is merged with
//! "reordering absorbed"). Links have different delays, so packets cross;
//! srt-tokio has no reorder tolerance (srtla.md §9.1) and NAKs every gap at
//! once, and each spurious NAK costs a retransmission and, at the sender, a
//! window cut on the link that was merely slower. A packet that arrives
//! ahead of a gap waits here until the gap fills or until it has waited
//! `hold`; then the gap is given up and the listener sees it (and NAKs it)
//! as before. Sans-IO: every input carries `now`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

use super::packet::SeqNo;

/// A packet this far ahead of the next expected one is no reordering (the
/// sender restarted or skipped): everything held is released with it.
const MAX_SPAN: u32 = 8192;

/// What the buffer saw, for `/api/v1/srtla`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReorderCounters {
    /// Packets that arrived ahead of a gap and waited.
    pub held: u64,
    /// Gaps filled while packets waited: reorderings the listener never saw.
    pub absorbed: u64,
    /// Gaps given up after `hold` (lost, or reordered deeper than `hold`).
    pub gaps_given_up: u64,
    /// Packets first sent (not retransmitted) that came after their gap was
    /// given up: reordering deeper than `hold`, which the listener NAKed.
    pub late: u64,
    /// The longest a filled gap kept packets waiting, in ms.
    pub max_wait_ms: u64,
}

/// The reorder buffer of one group.
#[derive(Debug)]
pub struct ReorderBuffer {
    hold: Duration,
    /// The SN after the last one released in order; `None` before the first.
    next: Option<SeqNo>,
    /// `slots[i]` holds SN `next + i` with its arrival time; `slots[0]` is
    /// always empty (else it would have been released).
    slots: VecDeque<Option<(Instant, Bytes)>>,
    /// (arrival, SN) of held packets in arrival order; entries for packets
    /// already released are skipped when met.
    arrivals: VecDeque<(Instant, SeqNo)>,
    ready: VecDeque<Bytes>,
    counters: ReorderCounters,
}

impl ReorderBuffer {
    /// `hold` zero: every packet passes at once.
    #[must_use]
    pub fn new(hold: Duration) -> Self {
        Self {
            hold,
            next: None,
            slots: VecDeque::new(),
            arrivals: VecDeque::new(),
            ready: VecDeque::new(),
            counters: ReorderCounters::default(),
        }
    }

    /// A data packet with sequence number `sn` arrived (duplicates already
    /// removed); what may go on is in [`Self::pop_ready`].
    pub fn push(&mut self, now: Instant, sn: SeqNo, retransmitted: bool, packet: Bytes) {
        let Some(next) = self.next else {
            self.next = Some(sn.add(1));
            self.ready.push_back(packet);
            return;
        };
        let ahead = sn.diff(next);
        if ahead < 0 {
            // Behind the gaps already given up: the listener decides.
            if !retransmitted {
                self.counters.late += 1;
            }
            self.ready.push_back(packet);
            return;
        }
        let ahead = ahead.unsigned_abs();
        if ahead >= MAX_SPAN || self.hold.is_zero() {
            self.release_through(sn.add(1));
            self.ready.push_back(packet);
            self.prune();
            return;
        }
        if ahead == 0 {
            if !self.slots.is_empty() {
                self.counters.absorbed += 1;
                let waited = self
                    .oldest_arrival()
                    .map(|t| now.saturating_duration_since(t));
                let ms = waited.map_or(0, |w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX));
                self.counters.max_wait_ms = self.counters.max_wait_ms.max(ms);
            }
            self.ready.push_back(packet);
            self.next = Some(sn.add(1));
            self.slots.pop_front();
            self.release_contiguous();
            self.prune();
            return;
        }
        let i = ahead as usize;
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        if let Some(slot @ None) = self.slots.get_mut(i) {
            *slot = Some((now, packet));
            self.arrivals.push_back((now, sn));
            self.counters.held += 1;
        }
    }

    /// The next packet to forward, in order.
    pub fn pop_ready(&mut self) -> Option<Bytes> {
        self.ready.pop_front()
    }

    /// When the oldest waiting packet has waited `hold`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.oldest_arrival().map(|t| t + self.hold)
    }

    /// Gives up every gap before a packet that has waited `hold`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.prune();
        while let Some(&(t, sn)) = self.arrivals.front() {
            if now < t + self.hold {
                break;
            }
            self.counters.gaps_given_up += 1;
            self.release_through(sn.add(1));
            self.release_contiguous();
            self.prune();
        }
    }

    #[must_use]
    pub fn counters(&self) -> ReorderCounters {
        self.counters
    }

    /// Forgets everything (a new SRT session starts).
    pub fn reset(&mut self) {
        *self = Self {
            counters: self.counters,
            ..Self::new(self.hold)
        };
    }

    /// Kept pruned: the front of `arrivals` is the oldest packet still held.
    fn oldest_arrival(&self) -> Option<Instant> {
        self.arrivals.front().map(|&(t, _)| t)
    }

    /// Drops the entries of released packets from the front of `arrivals`.
    fn prune(&mut self) {
        while let Some(&(t, sn)) = self.arrivals.front() {
            if self.is_held(t, sn) {
                break;
            }
            self.arrivals.pop_front();
        }
    }

    fn is_held(&self, t: Instant, sn: SeqNo) -> bool {
        let Some(next) = self.next else {
            return false;
        };
        let ahead = sn.diff(next);
        ahead > 0
            && matches!(
                self.slots.get(ahead.unsigned_abs() as usize),
                Some(Some((at, _))) if *at == t
            )
    }

    /// Releases every held packet below `end` in order, gaps skipped, and
    /// makes `end` the next expected SN.
    fn release_through(&mut self, end: SeqNo) {
        let Some(next) = self.next else {
            return;
        };
        let n = end.diff(next).max(0).unsigned_abs() as usize;
        let released = self.slots.drain(..n.min(self.slots.len())).flatten();
        self.ready.extend(released.map(|(_, p)| p));
        self.next = Some(end);
    }

    /// Releases the run of held packets that starts at `next`.
    fn release_contiguous(&mut self) {
        while let Some(Some(_)) = self.slots.front() {
            if let Some(Some((_, p))) = self.slots.pop_front() {
                self.ready.push_back(p);
            }
            self.next = self.next.map(|n| n.add(1));
        }
        if self.slots.is_empty() {
            self.arrivals.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_millis(100);

    fn pkt(sn: u32) -> Bytes {
        Bytes::copy_from_slice(&sn.to_be_bytes())
    }

    fn ready(b: &mut ReorderBuffer) -> Vec<u32> {
        std::iter::from_fn(|| b.pop_ready())
            .map(|p| u32::from_be_bytes(p[..4].try_into().unwrap()))
            .collect()
    }

    fn push(b: &mut ReorderBuffer, now: Instant, sn: u32) -> Vec<u32> {
        b.push(now, SeqNo::new(sn), false, pkt(sn));
        ready(b)
    }

    #[test]
    fn in_order_packets_pass_at_once() {
        let t = Instant::now();
        let mut b = ReorderBuffer::new(HOLD);
        for sn in 10..20 {
            assert_eq!(push(&mut b, t, sn), vec![sn]);
        }
        assert_eq!(b.poll_timeout(), None);
    }

    #[test]
    fn a_crossed_packet_is_put_back_in_order() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut b = ReorderBuffer::new(HOLD);
        assert_eq!(push(&mut b, t, 1), vec![1]);
        assert_eq!(push(&mut b, t, 3), Vec::<u32>::new());
        assert_eq!(push(&mut b, t + ms(10), 4), Vec::<u32>::new());
        assert_eq!(b.poll_timeout(), Some(t + HOLD));
        assert_eq!(push(&mut b, t + ms(30), 2), vec![2, 3, 4]);
        assert_eq!(b.poll_timeout(), None);
        assert_eq!(push(&mut b, t + ms(30), 5), vec![5]);
        let c = b.counters();
        assert_eq!(
            (c.held, c.absorbed, c.gaps_given_up, c.late, c.max_wait_ms),
            (2, 1, 0, 0, 30)
        );
    }

    #[test]
    fn a_gap_is_given_up_after_hold_and_its_late_packet_still_passes() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut b = ReorderBuffer::new(HOLD);
        assert_eq!(push(&mut b, t, 1), vec![1]);
        assert_eq!(push(&mut b, t, 3), Vec::<u32>::new());
        assert_eq!(push(&mut b, t + ms(50), 5), Vec::<u32>::new());
        assert_eq!(push(&mut b, t + ms(50), 6), Vec::<u32>::new());
        // Too early: nothing moves.
        b.handle_timeout(t + ms(99));
        assert_eq!(ready(&mut b), Vec::<u32>::new());
        // 3 has waited `hold`: gap 2 is given up, 3 goes; 5 and 6 still
        // wait for 4, until their own hold ends.
        b.handle_timeout(t + HOLD);
        assert_eq!(ready(&mut b), vec![3]);
        assert_eq!(b.poll_timeout(), Some(t + ms(50) + HOLD));
        b.handle_timeout(t + ms(150));
        assert_eq!(ready(&mut b), vec![5, 6]);
        assert_eq!(b.poll_timeout(), None);
        // The late original of 2, and a retransmission of 4: passed on.
        assert_eq!(push(&mut b, t + ms(160), 2), vec![2]);
        b.push(t + ms(160), SeqNo::new(4), true, pkt(4));
        assert_eq!(ready(&mut b), vec![4]);
        assert_eq!(push(&mut b, t + ms(160), 7), vec![7]);
        let c = b.counters();
        assert_eq!((c.held, c.absorbed, c.gaps_given_up, c.late), (3, 0, 2, 1));
    }

    #[test]
    fn a_jump_far_ahead_releases_everything_and_wraps() {
        let t = Instant::now();
        let mut b = ReorderBuffer::new(HOLD);
        let top = 0x7FFF_FFFF;
        assert_eq!(push(&mut b, t, top - 1), vec![top - 1]);
        assert_eq!(push(&mut b, t, 0), Vec::<u32>::new());
        assert_eq!(push(&mut b, t, top), vec![top, 0]);
        assert_eq!(push(&mut b, t, 2), Vec::<u32>::new());
        assert_eq!(push(&mut b, t, 2 + MAX_SPAN), vec![2, 2 + MAX_SPAN]);
        assert_eq!(b.poll_timeout(), None);
    }

    #[test]
    fn zero_hold_passes_everything_at_once() {
        let t = Instant::now();
        let mut b = ReorderBuffer::new(Duration::ZERO);
        assert_eq!(push(&mut b, t, 1), vec![1]);
        assert_eq!(push(&mut b, t, 3), vec![3]);
        assert_eq!(push(&mut b, t, 2), vec![2]);
        assert_eq!(b.poll_timeout(), None);
    }
}
