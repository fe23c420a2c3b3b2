//! A sans-IO SRTLA sender (the bonding side): datagrams from a local SRT
//! caller are spread over N links, each weighted by its SRTLA ACK feedback,
//! as BELABOX's srtla_send and Moblin do (`shared/notes/srtla.md` §4.2, §7).
//! The wire format is the gateway's own codec (`gateway::ingest::srtla::packet`).
//!
//! Inputs carry `now`; outputs are drained with `poll_*`. The binary
//! `srtla-send` (src/bin/srtla_send.rs) is the UDP shell.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway::ingest::srtla::packet::{
    self, GROUP_ID_HALF, GROUP_ID_LEN, GroupId, LinkReport, Packet, REG1, REG2, SeqNo,
};
use serde::Serialize;

use crate::srtla_link_health::LinkHealth;

/// srtla.md §7.1: "window (scaled ×1000): initial 20 000, min 1 000, max 60 000".
const WINDOW_DEFAULT: i32 = 20_000;
const WINDOW_MIN: i32 = 1_000;
const WINDOW_MAX: i32 = 60_000;
const WINDOW_MULT: i32 = 1_000;
/// srtla.md §7.1: "NAK penalty −100; ACK bonus +29 (+1 general)".
const WINDOW_NAK: i32 = 100;
const WINDOW_ACK: i32 = 29;
const WINDOW_GENERAL: i32 = 1;
/// srtla.md §7.1: BB keeps "a 256-entry ring of sent SNs per link".
const IN_FLIGHT_LOG: usize = 256;
/// The longest NAK range acted on (a hostile range must not spin).
const NAK_RANGE_MAX: u32 = 1024;
/// How many NAKed SNs remember the link that lost them (a few seconds of
/// losses at the rates tested).
const LOST_ON_LOG: usize = 1024;

#[derive(Clone, Debug)]
pub struct SenderConfig {
    /// srtla.md §7.1: link timeout "4 s (BB)".
    pub link_timeout: Duration,
    /// srtla.md §7.1: "REG1 answer 4 s; post-REG2 NGP guard 4 s".
    pub reg_timeout: Duration,
    /// srtla.md §7.1: "housekeeping 1 s"; also the keepalive period (MOB:
    /// "every registered link sends a … keepalive each second").
    pub housekeeping: Duration,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            link_timeout: Duration::from_secs(4),
            reg_timeout: Duration::from_secs(4),
            housekeeping: Duration::from_secs(1),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct LinkId(pub u32);

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Over one link, to the receiver (or that link's relay).
    Link { link: LinkId, payload: Bytes },
    /// Back to the local SRT caller.
    Caller { payload: Bytes },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The receiver created our group.
    Registered,
    /// The receiver no longer knows our group; registering again.
    GroupLost,
    LinkUp(LinkId),
    LinkDown(LinkId),
    /// Its SRTLA ACKs stopped: no new data over it, keepalive probes only.
    LinkStalled(LinkId),
    /// ACKs or a probe's echo came back after a stall.
    LinkResumed(LinkId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Not registered yet (no REG3).
    Pending,
    Up,
    /// Silent for the link timeout; re-registering.
    Failed,
}

struct Link {
    id: LinkId,
    state: LinkState,
    window: i32,
    /// SNs (and datagram sizes) sent over this link and not yet
    /// acknowledged, oldest first.
    in_flight: VecDeque<(SeqNo, u32)>,
    health: LinkHealth,
    last_rx: Option<Instant>,
    rtt_ms: Option<u32>,
    naks: u32,
    packets: u64,
    bytes: u64,
    bytes_this_second: u64,
    bitrate: u32,
}

/// One link's state, for `stats` output and tests.
#[derive(Clone, Debug, Serialize)]
pub struct LinkStats {
    pub id: LinkId,
    pub state: LinkState,
    pub window: i32,
    pub in_flight: usize,
    pub rtt_ms: Option<u32>,
    pub naks: u32,
    pub packets: u64,
    pub bytes: u64,
    /// SRTLA ACKs stopped: no new data over it.
    pub stalled: bool,
    /// Bytes per second the receiver ACKed (best recent interval).
    pub delivery_bytes_per_s: Option<u64>,
}

pub struct Sender<R> {
    config: SenderConfig,
    random: R,
    /// The sender clock keepalives carry (srtla.md §3.1: "ms since the
    /// link object was created"; here, since the sender was).
    epoch: Instant,
    id: GroupId,
    registered: bool,
    /// The link that sent REG1 and until when it waits for REG2.
    reg1: Option<(LinkId, Instant)>,
    /// srtla.md §4.2: after REG2, "set the deadline to now + 4 s so stray
    /// NGPs from earlier probes cannot trigger a second REG1".
    ngp_guard: Option<Instant>,
    links: Vec<Link>,
    next_link: u32,
    next_housekeeping: Instant,
    /// NAKed SNs and the link that carried them: SRT's retransmission of
    /// such an SN goes over another link (that one may be dying).
    lost_on: VecDeque<(SeqNo, LinkId)>,
    /// Caller datagrams that found no usable link.
    pub dropped: u64,
    out: VecDeque<Output>,
    events: VecDeque<Event>,
}

impl<R: FnMut(&mut [u8])> Sender<R> {
    pub fn new(now: Instant, config: SenderConfig, mut random: R) -> Self {
        // srtla.md §3.2: "Sender fills all 256 bytes of REG1 with random bytes".
        let mut id = GroupId([0; GROUP_ID_LEN]);
        random(&mut id.0);
        Self {
            config,
            random,
            epoch: now,
            id,
            registered: false,
            reg1: None,
            ngp_guard: None,
            links: Vec::new(),
            next_link: 0,
            next_housekeeping: now,
            lost_on: VecDeque::new(),
            dropped: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// A new link; it registers at the next `handle_timeout` (due now).
    pub fn add_link(&mut self, now: Instant) -> LinkId {
        let id = LinkId(self.next_link);
        self.next_link += 1;
        self.links.push(Link {
            id,
            state: LinkState::Pending,
            window: WINDOW_DEFAULT,
            in_flight: VecDeque::new(),
            health: LinkHealth::new(now),
            last_rx: None,
            rtt_ms: None,
            naks: 0,
            packets: 0,
            bytes: 0,
            bytes_this_second: 0,
            bitrate: 0,
        });
        self.next_housekeeping = now;
        id
    }

    pub fn remove_link(&mut self, id: LinkId) {
        self.links.retain(|l| l.id != id);
        if self.reg1.is_some_and(|(l, _)| l == id) {
            self.reg1 = None;
        }
    }

    #[must_use]
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// A datagram from the local SRT caller (new data, a retransmission or
    /// SRT control): over the best link.
    pub fn handle_caller_datagram(&mut self, now: Instant, d: &[u8]) {
        self.check_stalls(now);
        // srtla.md §7.2: "score = window / (in_flight + 1) …; skip links that
        // are timed out (BB) or not registered (MOB); pick the highest score,
        // ties → first in list order". Before the score come tiers, worst
        // first: a link whose ACKs stopped (stalled) gets nothing while any
        // other is up; one that lost this very SN before (a retransmission,
        // possibly NAKed again while on its way) only if every other did
        // too; one over its bandwidth-delay product only when every live
        // link is, so no link is offered much more than it delivers.
        let data_sn = match packet::classify(d) {
            Packet::SrtData { sn, .. } => Some(sn),
            _ => None,
        };
        let lost_on = &self.lost_on;
        let lost_here =
            |id: LinkId| data_sn.is_some_and(|sn| lost_on.iter().any(|&e| e == (sn, id)));
        let mut best: Option<(usize, (u8, i64))> = None;
        for (i, l) in self.links.iter_mut().enumerate() {
            if l.state != LinkState::Up {
                continue;
            }
            let in_flight_bytes: u64 = l.in_flight.iter().map(|&(_, b)| u64::from(b)).sum();
            let tier = if l.health.is_stalled() {
                0
            } else if lost_here(l.id) {
                1
            } else if l
                .health
                .in_flight_cap(now)
                .is_some_and(|cap| in_flight_bytes >= cap)
            {
                2
            } else {
                3
            };
            let rank = (tier, i64::from(l.window) / (l.in_flight.len() as i64 + 1));
            if best.is_none_or(|(_, r)| rank > r) {
                best = Some((i, rank));
            }
        }
        let Some(link) = best.and_then(|(i, _)| self.links.get_mut(i)) else {
            self.dropped += 1;
            return;
        };
        // "a data packet's SN is then logged as in flight on that link".
        if let Some(sn) = data_sn {
            if link.in_flight.len() >= IN_FLIGHT_LOG {
                link.in_flight.pop_front();
            }
            link.in_flight
                .push_back((sn, u32::try_from(d.len()).unwrap_or(u32::MAX)));
            link.health.on_data_sent(now, d.len());
        }
        link.packets += 1;
        link.bytes += d.len() as u64;
        link.bytes_this_second += d.len() as u64;
        self.out.push_back(Output::Link {
            link: link.id,
            payload: Bytes::copy_from_slice(d),
        });
    }

    /// A datagram from the receiver arrived on `link`.
    pub fn handle_link_datagram(&mut self, now: Instant, link: LinkId, d: &[u8]) {
        let Some(i) = self.links.iter().position(|l| l.id == link) else {
            return;
        };
        let kind = packet::classify(d);
        // srtla.md §7.4: "any datagram from the receiver (except REG_NGP and
        // REG2, deliberately) refreshes last-received".
        if !matches!(kind, Packet::RegNgp | Packet::Reg2(_))
            && let Some(l) = self.links.get_mut(i)
        {
            l.last_rx = Some(now);
        }
        match kind {
            Packet::RegNgp => self.on_ngp(now, link),
            Packet::Reg2(body) => self.on_reg2(now, body),
            Packet::Reg3 => {
                if let Some(l) = self.links.get_mut(i)
                    && self.registered
                    && l.state != LinkState::Up
                {
                    // srtla.md §7.3: "on socket ready: window = 20 000, in-flight cleared".
                    l.state = LinkState::Up;
                    l.window = WINDOW_DEFAULT;
                    l.in_flight.clear();
                    l.health = LinkHealth::new(now);
                    self.events.push_back(Event::LinkUp(link));
                }
            }
            Packet::Ack(sns) => {
                // srtla.md §5.2: the receiver sends a link's ACKs "to that
                // link's address only": they are this link's delivery.
                let mut n = 0;
                for sn in sns.iter() {
                    self.on_srtla_ack(sn);
                    n += 1;
                }
                if let Some(l) = self.links.get_mut(i)
                    && l.health.on_srtla_ack(now, n)
                {
                    self.events.push_back(Event::LinkResumed(link));
                }
            }
            Packet::Keepalive(bytes) => {
                // srtla.md §3.1: "RTT = now − echoed value (MOB clamps to 0–10000 ms)".
                let now_ms = self.ms(now);
                if let (Some(sent_ms), Some(l)) =
                    (packet::keepalive_timestamp(bytes), self.links.get_mut(i))
                {
                    let rtt = now_ms.saturating_sub(sent_ms).min(10_000);
                    l.rtt_ms = u32::try_from(rtt).ok();
                    let sent = now - Duration::from_millis(rtt);
                    if l.state == LinkState::Up && l.health.on_keepalive_echo(now, sent) {
                        self.events.push_back(Event::LinkResumed(link));
                    }
                }
            }
            Packet::SrtData { .. } | Packet::SrtControl { .. } => {
                self.on_srt_feedback(d);
                // srtla.md §7.3: "ACKs and NAKs from the receiver are also
                // passed on, unchanged, to the local SRT caller".
                self.out.push_back(Output::Caller {
                    payload: Bytes::copy_from_slice(d),
                });
            }
            // srtla.md §4.3: REG_ERR "temporarily failed, back off and
            // retry" — the link keeps retrying REG2 at housekeeping.
            Packet::RegErr | Packet::RegNak | Packet::Reg1(_) | Packet::Invalid => {}
        }
    }

    /// Stall checks and probes of stalled links when due, housekeeping once
    /// per period; an early call is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.check_stalls(now);
        let now_ms = self.ms(now);
        for i in 0..self.links.len() {
            if let Some(l) = self.links.get_mut(i)
                && l.state == LinkState::Up
                && l.health.take_probe(now)
            {
                let ka = packet::keepalive(now_ms, &Self::report(l));
                let id = l.id;
                self.send(id, &ka);
            }
        }
        if now < self.next_housekeeping {
            return;
        }
        self.next_housekeeping = now + self.config.housekeeping;
        let timeout = self.config.link_timeout;
        for l in &mut self.links {
            l.bitrate = u32::try_from(l.bytes_this_second).unwrap_or(u32::MAX);
            l.bytes_this_second = 0;
            let silent = l
                .last_rx
                .is_none_or(|t| now.saturating_duration_since(t) >= timeout);
            if l.state == LinkState::Up && silent {
                // srtla.md §7.3: "Link failed: window = 1 000, in-flight 0, log cleared".
                l.state = LinkState::Failed;
                l.window = WINDOW_MIN;
                l.in_flight.clear();
                l.health = LinkHealth::new(now);
                self.events.push_back(Event::LinkDown(l.id));
            }
        }
        if !self.registered {
            match self.reg1 {
                // srtla.md §4.2: "that link re-sends REG1 each second and
                // other failed links stay quiet".
                Some((link, deadline)) if now < deadline => {
                    self.send(link, &packet::registration(REG1, &self.id));
                }
                _ => {
                    self.reg1 = None;
                    // Probes: "each failed link sends REG2 with the current id".
                    let probe = packet::registration(REG2, &self.id);
                    for id in self.link_ids() {
                        self.send(id, &probe);
                    }
                }
            }
            return;
        }
        let now_ms = self.ms(now);
        let reg2 = packet::registration(REG2, &self.id);
        for i in 0..self.links.len() {
            let Some(l) = self.links.get(i) else { continue };
            let id = l.id;
            if l.state == LinkState::Up {
                // srtla.md §7.4 (MOB): a timestamped keepalive every second,
                // extended with this link's figures (§3.1).
                let ka = packet::keepalive(now_ms, &Self::report(l));
                self.send(id, &ka);
            } else {
                // srtla.md §4.3: "REG2(G) every second until anything arrives".
                self.send(id, &reg2);
            }
        }
    }

    /// The next housekeeping, stall check or probe.
    #[must_use]
    pub fn poll_timeout(&self) -> Instant {
        self.links
            .iter()
            .filter(|l| l.state == LinkState::Up)
            .flat_map(|l| [l.health.stall_deadline(), l.health.next_probe()])
            .flatten()
            .fold(self.next_housekeeping, Instant::min)
    }

    /// Marks links whose SRTLA ACKs stopped as stalled.
    fn check_stalls(&mut self, now: Instant) {
        for l in &mut self.links {
            if l.state == LinkState::Up && l.health.check_stall(now) {
                self.events.push_back(Event::LinkStalled(l.id));
            }
        }
    }

    /// srtla.md §3.1 extended keepalive figures.
    fn report(l: &Link) -> LinkReport {
        LinkReport {
            link_id: l.id.0,
            window: l.window,
            in_flight: i32::try_from(l.in_flight.len()).unwrap_or(i32::MAX),
            rtt_ms: l.rtt_ms.unwrap_or(0),
            naks: l.naks,
            bitrate_bytes_per_s: l.bitrate,
        }
    }

    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// `now` rolls the delivery-rate estimate.
    #[must_use]
    pub fn stats(&mut self, now: Instant) -> Vec<LinkStats> {
        self.links
            .iter_mut()
            .map(|l| LinkStats {
                stalled: l.health.is_stalled(),
                delivery_bytes_per_s: l.health.delivery_rate(now).map(|r| r.0),
                id: l.id,
                state: l.state,
                window: l.window,
                in_flight: l.in_flight.len(),
                rtt_ms: l.rtt_ms,
                naks: l.naks,
                packets: l.packets,
                bytes: l.bytes,
            })
            .collect()
    }

    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn link_ids(&self) -> Vec<LinkId> {
        self.links.iter().map(|l| l.id).collect()
    }

    fn send(&mut self, link: LinkId, payload: &[u8]) {
        self.out.push_back(Output::Link {
            link,
            payload: Bytes::copy_from_slice(payload),
        });
    }

    fn guarded(&self, now: Instant) -> bool {
        self.ngp_guard.is_some_and(|g| now < g)
    }

    /// srtla.md §4.2 and §4.3, REG_NGP.
    fn on_ngp(&mut self, now: Instant, link: LinkId) {
        if self.guarded(now) {
            return;
        }
        if self.registered {
            // srtla.md §4.3: "Receiver restarted / group reaped … the first
            // NGP triggers REG1 → a new G".
            self.registered = false;
            (self.random)(&mut self.id.0);
            for l in &mut self.links {
                l.state = LinkState::Pending;
                l.in_flight.clear();
            }
            self.events.push_back(Event::GroupLost);
        } else if self.reg1.is_some_and(|(_, deadline)| now < deadline) {
            return;
        }
        // "The first REG_NGP that arrives while (no link active) ∧ (no REG1
        // pending) … makes that link send REG1; pending deadline = now + 4 s".
        self.reg1 = Some((link, now + self.config.reg_timeout));
        self.send(link, &packet::registration(REG1, &self.id));
    }

    /// srtla.md §4.2: "On a matching REG2: adopt id, send REG2 on all links,
    /// clear pending, and set the deadline to now + 4 s".
    fn on_reg2(&mut self, now: Instant, body: &[u8]) {
        if self.registered || self.reg1.is_none() {
            return;
        }
        // srtla.md §3.2: "accepts the REG2 reply only if its first 128 bytes
        // equal what it sent, then adopts all 256 bytes".
        if body.get(..GROUP_ID_HALF) != Some(self.id.sender_half()) {
            return;
        }
        self.id
            .0
            .copy_from_slice(body.get(..GROUP_ID_LEN).unwrap_or(&[0; GROUP_ID_LEN]));
        self.registered = true;
        self.reg1 = None;
        self.ngp_guard = Some(now + self.config.reg_timeout);
        self.events.push_back(Event::Registered);
        let reg2 = packet::registration(REG2, &self.id);
        for id in self.link_ids() {
            self.send(id, &reg2);
        }
    }

    /// srtla.md §7.3, SRTLA ACK (BB): the first link logging the SN frees
    /// it and grows its window if it is busy; then every live link +1.
    fn on_srtla_ack(&mut self, sn: SeqNo) {
        for l in &mut self.links {
            if let Some(pos) = l.in_flight.iter().position(|&(s, _)| s == sn) {
                l.in_flight.remove(pos);
                let in_flight = i32::try_from(l.in_flight.len()).unwrap_or(i32::MAX);
                if in_flight.saturating_mul(WINDOW_MULT) > l.window {
                    l.window = (l.window + WINDOW_ACK).min(WINDOW_MAX);
                }
                break;
            }
        }
        for l in &mut self.links {
            if l.state != LinkState::Failed {
                l.window = (l.window + WINDOW_GENERAL).min(WINDOW_MAX);
            }
        }
    }

    /// srtla.md §7.3, SRT ACK and NAK from the listener.
    fn on_srt_feedback(&mut self, d: &[u8]) {
        if let Some(ack) = packet::srt_ack_sn(d) {
            // Every SN before the ACK is delivered, whichever link took it
            // (MOB's wrap-aware rule).
            for l in &mut self.links {
                l.in_flight.retain(|(sn, _)| sn.diff(ack) >= 0);
            }
            return;
        }
        for (first, last) in packet::srt_nak_ranges(d) {
            let n = last
                .diff(first)
                .clamp(0, NAK_RANGE_MAX as i32)
                .unsigned_abs();
            for k in 0..=n {
                let sn = first.add(k);
                // "first link whose log holds it: entry cleared,
                // window = max(window − 100, 1 000)".
                if let Some(l) = self
                    .links
                    .iter_mut()
                    .find(|l| l.in_flight.iter().any(|&(s, _)| s == sn))
                {
                    l.in_flight.retain(|&(s, _)| s != sn);
                    l.window = (l.window - WINDOW_NAK).max(WINDOW_MIN);
                    l.naks = l.naks.saturating_add(1);
                    if self.lost_on.len() >= LOST_ON_LOG {
                        self.lost_on.pop_front();
                    }
                    self.lost_on.push_back((sn, l.id));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway::ingest::srtla::packet::{REG_ERR, REG_NGP, REG3, bare};
    use gateway::ingest::srtla::receiver::{Receiver, ReceiverConfig, Transmit};
    use std::net::SocketAddr;

    type Random = Box<dyn FnMut(&mut [u8])>;
    type RxRandom = Box<dyn FnMut(&mut [u8]) -> bool>;

    fn counter_random(start: u8) -> Random {
        let mut c = start;
        Box::new(move |b: &mut [u8]| {
            c = c.wrapping_add(1);
            b.fill(c);
        })
    }

    fn srt_data(sn: u32) -> Vec<u8> {
        let mut p = vec![0u8; 16 + 100];
        p[..4].copy_from_slice(&sn.to_be_bytes());
        p
    }

    fn srt_control(kind: u16, cif: &[u32]) -> Vec<u8> {
        let mut p = vec![0u8; 16];
        p[..2].copy_from_slice(&(0x8000 | kind).to_be_bytes());
        for w in cif {
            p.extend_from_slice(&w.to_be_bytes());
        }
        p
    }

    /// The sender wired to the gateway's receiver core on a virtual clock:
    /// link i has source address 10.0.0.1:(1000 + i); `up[i]` false drops
    /// everything on that link.
    struct Pair {
        tx: Sender<Random>,
        rx: Receiver<RxRandom>,
        now: Instant,
        up: Vec<bool>,
        /// Drop this many REG2 answers from the receiver.
        lose_reg2: usize,
        to_srt: Vec<Bytes>,
        to_caller: Vec<Bytes>,
    }

    fn addr(link: LinkId) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], 1000 + link.0 as u16))
    }

    impl Pair {
        fn new(links: usize) -> Self {
            let now = Instant::now();
            let mut c = 100u8;
            let mut p = Self {
                tx: Sender::new(now, SenderConfig::default(), counter_random(0)),
                rx: Receiver::new(
                    ReceiverConfig::default(),
                    Box::new(move |b: &mut [u8]| {
                        c = c.wrapping_add(1);
                        b.fill(c);
                        true
                    }),
                ),
                now,
                up: vec![true; links],
                lose_reg2: 0,
                to_srt: Vec::new(),
                to_caller: Vec::new(),
            };
            for _ in 0..links {
                p.tx.add_link(now);
            }
            p
        }

        /// Delivers everything queued, both ways, until quiet.
        fn pump(&mut self) {
            loop {
                let mut moved = false;
                while let Some(o) = self.tx.poll_output() {
                    moved = true;
                    match o {
                        Output::Link { link, payload } => {
                            if self.up.get(link.0 as usize) == Some(&true) {
                                self.rx.handle_link_datagram(self.now, addr(link), &payload);
                            }
                        }
                        Output::Caller { payload } => self.to_caller.push(payload),
                    }
                }
                while let Some(t) = self.rx.poll_transmit() {
                    moved = true;
                    match t {
                        Transmit::Link { to, payload } => {
                            let link = LinkId(u32::from(to.port() - 1000));
                            if payload.len() == 258 && self.lose_reg2 > 0 {
                                self.lose_reg2 -= 1;
                                continue;
                            }
                            if self.up.get(link.0 as usize) == Some(&true) {
                                self.tx.handle_link_datagram(self.now, link, &payload);
                            }
                        }
                        Transmit::Srt { payload, .. } => self.to_srt.push(payload),
                        Transmit::CloseSrt { .. } => {}
                    }
                }
                if !moved {
                    return;
                }
            }
        }

        fn tick(&mut self, d: Duration) {
            self.now += d;
            self.tx.handle_timeout(self.now);
            self.rx.handle_timeout(self.now);
            self.pump();
        }

        fn events(&mut self) -> Vec<Event> {
            std::iter::from_fn(|| self.tx.poll_event()).collect()
        }

        fn states(&mut self) -> Vec<LinkState> {
            self.tx.stats(self.now).iter().map(|s| s.state).collect()
        }

        /// One caller datagram per ms for `ms`, both ways delivered at once;
        /// every 10 ms an SRT ACK of all sent so far (as once SRT has
        /// repaired what a dead link lost) clears every link's in-flight log.
        fn stream(&mut self, sn: &mut u32, ms: u32) {
            for _ in 0..ms {
                self.tx.handle_caller_datagram(self.now, &srt_data(*sn));
                *sn += 1;
                if (*sn).is_multiple_of(10) {
                    self.tx
                        .handle_link_datagram(self.now, LinkId(0), &srt_control(2, &[*sn]));
                }
                self.tick(Duration::from_millis(1));
            }
        }
    }

    #[test]
    fn registers_every_link_through_probe_reg1_reg2_reg3() {
        let mut p = Pair::new(3);
        p.tick(Duration::ZERO);
        assert!(p.tx.is_registered());
        assert_eq!(
            p.events(),
            vec![
                Event::Registered,
                Event::LinkUp(LinkId(0)),
                Event::LinkUp(LinkId(1)),
                Event::LinkUp(LinkId(2)),
            ]
        );
        assert_eq!(p.rx.size(), (1, 3));
    }

    #[test]
    fn a_lost_reg2_answer_costs_one_second() {
        let mut p = Pair::new(2);
        p.lose_reg2 = 1;
        p.tick(Duration::ZERO);
        assert!(!p.tx.is_registered());
        // REG1 is repeated a second later; the receiver answers it again.
        p.tick(Duration::from_secs(1));
        assert!(p.tx.is_registered());
        assert_eq!(p.states(), vec![LinkState::Up, LinkState::Up]);
        assert_eq!(p.rx.size(), (1, 2));
    }

    #[test]
    fn spreads_data_by_window_and_acks_keep_links_balanced() {
        let mut p = Pair::new(3);
        p.tick(Duration::ZERO);
        for sn in 0..300 {
            p.tx.handle_caller_datagram(p.now, &srt_data(sn));
            p.pump();
            // The listener's SRT ACK (every 10 ms in SRT) reaches every link.
            if sn % 5 == 4 {
                p.tx.handle_link_datagram(p.now, LinkId(0), &srt_control(2, &[sn + 1]));
            }
        }
        assert_eq!(p.to_srt.len(), 300);
        let counts: Vec<u64> = p.tx.stats(p.now).iter().map(|s| s.packets).collect();
        // Equal windows, little in flight: every link carries a fair part
        // (ties go to the first link, so not exactly a third each).
        assert!(
            counts.iter().all(|&c| (60..=140).contains(&c)),
            "{counts:?}"
        );
        assert!(p.tx.stats(p.now).iter().all(|s| s.in_flight < 5));
    }

    #[test]
    fn naks_shrink_a_window_and_shift_traffic() {
        let mut p = Pair::new(2);
        p.tick(Duration::ZERO);
        let mut sent = Vec::new();
        for sn in 0..100 {
            p.tx.handle_caller_datagram(p.now, &srt_data(sn));
            if let Some(Output::Link { link, .. }) = p.tx.out.back() {
                sent.push((sn, *link));
            }
            p.pump();
        }
        // The listener reports every SN of link 1 lost, one NAK each.
        for &(sn, link) in &sent {
            if link == LinkId(1) {
                p.tx.handle_link_datagram(p.now, LinkId(0), &srt_control(3, &[sn]));
            }
        }
        // NAKs for SNs already ACKed by SRTLA are no longer in flight: only
        // unacknowledged ones count. Send more, then NAK those on link 1.
        for round in 0..20 {
            for k in 0..10 {
                let sn = 1000 + round * 10 + k;
                p.tx.handle_caller_datagram(p.now, &srt_data(sn));
                let link = match p.tx.out.back() {
                    Some(Output::Link { link, .. }) => *link,
                    _ => continue,
                };
                let _ = p.tx.poll_output();
                if link == LinkId(1) {
                    p.tx.handle_link_datagram(p.now, LinkId(0), &srt_control(3, &[sn]));
                }
            }
        }
        let s = p.tx.stats(p.now);
        assert!(s[1].window < s[0].window, "{s:?}");
        assert!(s[1].naks > 0);
        // Link 1 then gets less of the traffic.
        let before: Vec<u64> = s.iter().map(|s| s.packets).collect();
        for sn in 2000..2100 {
            p.tx.handle_caller_datagram(p.now, &srt_data(sn));
            p.pump();
            if sn % 5 == 4 {
                p.tx.handle_link_datagram(p.now, LinkId(0), &srt_control(2, &[sn + 1]));
            }
        }
        let after: Vec<u64> = p.tx.stats(p.now).iter().map(|s| s.packets).collect();
        assert!(
            after[1] - before[1] < after[0] - before[0],
            "{before:?} → {after:?}"
        );
    }

    #[test]
    fn a_dead_link_fails_and_comes_back_by_reg2() {
        let mut p = Pair::new(2);
        p.tick(Duration::ZERO);
        let _ = p.events();
        p.up[1] = false;
        for _ in 0..5 {
            p.tick(Duration::from_secs(1));
        }
        assert_eq!(p.states(), vec![LinkState::Up, LinkState::Failed]);
        assert_eq!(p.events(), vec![Event::LinkDown(LinkId(1))]);
        // Traffic avoids it.
        for sn in 0..20 {
            p.tx.handle_caller_datagram(p.now, &srt_data(sn));
            p.pump();
        }
        assert_eq!(p.tx.stats(p.now)[1].packets, 0);
        p.up[1] = true;
        p.tick(Duration::from_secs(1));
        assert_eq!(p.states(), vec![LinkState::Up, LinkState::Up]);
        assert_eq!(p.events(), vec![Event::LinkUp(LinkId(1))]);
    }

    #[test]
    fn links_added_and_removed_at_run_time() {
        let mut p = Pair::new(2);
        p.tick(Duration::ZERO);
        p.tx.remove_link(LinkId(0));
        p.up.push(true);
        let new = p.tx.add_link(p.now);
        assert_eq!(new, LinkId(2));
        p.tick(Duration::ZERO);
        assert_eq!(p.states(), vec![LinkState::Up, LinkState::Up]);
        for sn in 0..40 {
            p.tx.handle_caller_datagram(p.now, &srt_data(sn));
            p.pump();
        }
        assert_eq!(p.to_srt.len(), 40);
        assert!(p.tx.stats(p.now).iter().all(|s| s.packets > 0));
        // The receiver drops the removed link after its timeout.
        p.tick(Duration::from_secs(11));
        assert_eq!(p.rx.size(), (1, 2));
    }

    #[test]
    fn a_lost_group_is_registered_again() {
        let mut p = Pair::new(2);
        p.tick(Duration::ZERO);
        // Receiver restart: a fresh receiver knows nothing.
        p.rx = Receiver::new(
            ReceiverConfig::default(),
            Box::new(|b: &mut [u8]| {
                b.fill(7);
                true
            }),
        );
        let _ = p.events();
        // Data is dropped silently; links fail after 4 s, then REG2 → NGP.
        for _ in 0..6 {
            p.tick(Duration::from_secs(1));
        }
        let ev = p.events();
        assert!(ev.contains(&Event::GroupLost), "{ev:?}");
        p.tick(Duration::from_secs(1));
        assert!(p.tx.is_registered());
        assert_eq!(p.states(), vec![LinkState::Up, LinkState::Up]);
        assert_eq!(p.rx.size(), (1, 2));
    }

    #[test]
    fn replies_it_must_tolerate() {
        let now = Instant::now();
        let mut tx = Sender::new(now, SenderConfig::default(), counter_random(0));
        let a = tx.add_link(now);
        tx.handle_timeout(now);
        while tx.poll_output().is_some() {}
        // Padded NGP (IRL pads to 32) triggers REG1.
        let mut ngp = [0u8; 32];
        ngp[..2].copy_from_slice(&bare(REG_NGP));
        tx.handle_link_datagram(now, a, &ngp);
        let Some(Output::Link { payload, .. }) = tx.poll_output() else {
            panic!("no REG1")
        };
        assert_eq!(packet::classify(&payload), Packet::Reg1(&payload[2..]));
        // A REG2 whose sender half is not ours is ignored.
        let mut wrong = GroupId([0xEE; 256]);
        tx.handle_link_datagram(now, a, &packet::registration(REG2, &wrong));
        assert!(!tx.is_registered());
        wrong.0[..128].copy_from_slice(&payload[2..130]);
        tx.handle_link_datagram(now, a, &packet::registration(REG2, &wrong));
        assert!(tx.is_registered());
        // REG_ERR, REG3 padded, junk: no panic, REG3 brings the link up.
        tx.handle_link_datagram(now, a, &bare(REG_ERR));
        let mut reg3 = [0u8; 32];
        reg3[..2].copy_from_slice(&bare(REG3));
        tx.handle_link_datagram(now, a, &reg3);
        tx.handle_link_datagram(now, a, &[0xFF; 3]);
        assert_eq!(tx.stats(now)[0].state, LinkState::Up);
        // RTT from the keepalive echo.
        let later = now + Duration::from_millis(1500);
        tx.handle_timeout(later);
        let ka = std::iter::from_fn(|| tx.poll_output())
            .find_map(|o| match o {
                Output::Link { payload, .. } if payload[0] == 0x90 => Some(payload),
                _ => None,
            })
            .unwrap();
        tx.handle_link_datagram(later + Duration::from_millis(80), a, &ka);
        assert_eq!(tx.stats(now)[0].rtt_ms, Some(80));
    }

    #[test]
    fn srt_acks_clear_in_flight_across_the_wrap() {
        let mut p = Pair::new(1);
        p.tick(Duration::ZERO);
        for sn in [0x7FFF_FFFE, 0x7FFF_FFFF, 0, 1, 2] {
            p.tx.handle_caller_datagram(p.now, &srt_data(sn));
        }
        while p.tx.poll_output().is_some() {}
        assert_eq!(p.tx.stats(p.now)[0].in_flight, 5);
        p.tx.handle_link_datagram(p.now, LinkId(0), &srt_control(2, &[1, 0]));
        assert_eq!(p.tx.stats(p.now)[0].in_flight, 2);
    }

    #[test]
    fn a_silent_link_is_excluded_within_500_ms_and_comes_back() {
        let mut p = Pair::new(2);
        p.tick(Duration::ZERO);
        let mut sn = 0;
        p.stream(&mut sn, 2_000);
        let _ = p.events();
        // Link 1 dies (both ways); the stream goes on.
        p.up[1] = false;
        p.stream(&mut sn, 500);
        assert_eq!(p.events(), vec![Event::LinkStalled(LinkId(1))]);
        let before = p.tx.stats(p.now)[1].packets;
        // Nothing more goes into it: new data, retransmissions (an SN it
        // carried, sent again) and SRT control all take link 0.
        p.stream(&mut sn, 100);
        p.tx.handle_caller_datagram(p.now, &srt_data(sn - 300));
        p.tx.handle_caller_datagram(p.now, &srt_control(6, &[]));
        // Even an SN that link 0 was NAKed for (a retransmission lost or
        // still on its way) goes to link 0 again, not to the stalled link.
        let again = sn - 1;
        p.tx.handle_link_datagram(p.now, LinkId(0), &srt_control(3, &[again]));
        p.tx.handle_caller_datagram(p.now, &srt_data(again));
        p.pump();
        let s = p.tx.stats(p.now);
        assert_eq!(s[1].packets, before, "{s:?}");
        assert!(s[1].stalled && s[1].state == LinkState::Up);
        // It is probed with keepalives; when it carries traffic again, the
        // first echo brings it back, well before the 4 s link timeout.
        p.up[1] = true;
        p.stream(&mut sn, 150);
        assert_eq!(p.events(), vec![Event::LinkResumed(LinkId(1))]);
        p.stream(&mut sn, 200);
        assert!(p.tx.stats(p.now)[1].packets > before + 50);
        assert!(p.events().is_empty());
    }

    /// Links with a rate cap and a one-way delay each: a datagram leaves a
    /// link's queue at its rate and arrives its delay later; the receiver's
    /// replies come back after the same delay. The listener NAKs every hole
    /// at once (no reorder tolerance, as srt-tokio) and ACKs every 10 ms
    /// past the highest SN it got (as if SRT had repaired the holes).
    struct Net {
        p: Pair,
        /// Per link: datagrams per second, queue, next departure.
        rate: Vec<u32>,
        up_queue: Vec<VecDeque<Bytes>>,
        next_departure: Vec<Instant>,
        in_transit: Vec<(Instant, LinkId, Bytes, bool)>,
        delay: Vec<Duration>,
        received: std::collections::BTreeSet<u32>,
        max_queue: usize,
    }

    impl Net {
        fn new(rates: &[u32], delay: &[Duration]) -> Self {
            let mut p = Pair::new(rates.len());
            p.tick(Duration::ZERO);
            Self {
                rate: rates.to_vec(),
                up_queue: vec![VecDeque::new(); rates.len()],
                next_departure: vec![p.now; rates.len()],
                in_transit: Vec::new(),
                delay: delay.to_vec(),
                received: std::collections::BTreeSet::new(),
                max_queue: 0,
                p,
            }
        }

        fn step(&mut self) {
            let now = self.p.now;
            while let Some(o) = self.p.tx.poll_output() {
                match o {
                    Output::Link { link, payload } => {
                        self.up_queue[link.0 as usize].push_back(payload);
                    }
                    Output::Caller { .. } => {}
                }
            }
            for (i, q) in self.up_queue.iter_mut().enumerate() {
                self.max_queue = self.max_queue.max(q.len());
                let gap = Duration::from_secs(1) / self.rate[i];
                while self.next_departure[i] <= now
                    && let Some(d) = q.pop_front()
                {
                    self.in_transit
                        .push((now + self.delay[i], LinkId(i as u32), d, true));
                    self.next_departure[i] += gap;
                }
                self.next_departure[i] = self.next_departure[i].max(now);
            }
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_transit)
                .into_iter()
                .partition(|t| t.0 <= now);
            self.in_transit = later;
            for (_, link, d, uplink) in due {
                if uplink {
                    self.p.rx.handle_link_datagram(now, addr(link), &d);
                } else {
                    self.p.tx.handle_link_datagram(now, link, &d);
                }
            }
            while let Some(t) = self.p.rx.poll_transmit() {
                match t {
                    Transmit::Link { to, payload } => {
                        let link = LinkId(u32::from(to.port() - 1000));
                        let at = now + self.delay[link.0 as usize];
                        self.in_transit.push((at, link, payload, false));
                    }
                    Transmit::Srt { payload, .. } => {
                        if let Packet::SrtData { sn, .. } = packet::classify(&payload) {
                            let sn = sn.value();
                            let next = self.received.last().map_or(0, |l| l + 1);
                            if sn > next {
                                let nak = srt_control(3, &[next | 0x8000_0000, sn - 1]);
                                let at = now + self.delay[0];
                                self.in_transit
                                    .push((at, LinkId(0), Bytes::from(nak), false));
                            }
                            self.received.insert(sn);
                        }
                    }
                    Transmit::CloseSrt { .. } => {}
                }
            }
        }

        /// Offers `per_s` datagrams per second, evenly, for `ms` ms.
        fn run(&mut self, sn: &mut u32, per_s: u32, ms: u32) {
            let mut credit = 0;
            for t in 0..ms {
                credit += per_s;
                while credit >= 1000 {
                    credit -= 1000;
                    self.p.tx.handle_caller_datagram(self.p.now, &srt_data(*sn));
                    *sn += 1;
                }
                if t.is_multiple_of(10) {
                    let next = self.received.last().map_or(0, |l| l + 1);
                    let ack = srt_control(2, &[next]);
                    let at = self.p.now + self.delay[0];
                    self.in_transit
                        .push((at, LinkId(0), Bytes::from(ack), false));
                }
                self.p.now += Duration::from_millis(1);
                self.p.tx.handle_timeout(self.p.now);
                self.p.rx.handle_timeout(self.p.now);
                self.step();
            }
        }
    }

    #[test]
    fn a_link_delivering_half_the_rate_gets_about_half_the_share() {
        // Link 0 carries 2000 datagrams/s, 60 ms each way; link 1 1000/s,
        // 20 ms. 2400/s are offered (80 % of the sum, more than twice link
        // 1's rate). Link 0's datagrams arrive late and are NAKed as lost
        // (reordering), so its window shrinks and the score alone would
        // push most of the stream onto link 1.
        let ms = Duration::from_millis;
        let mut net = Net::new(&[2000, 1000], &[ms(60), ms(20)]);
        let mut sn = 0;
        net.run(&mut sn, 2400, 3_000);
        let before: Vec<u64> = net
            .p
            .tx
            .stats(net.p.now)
            .iter()
            .map(|s| s.packets)
            .collect();
        net.max_queue = 0;
        net.run(&mut sn, 2400, 3_000);
        let s = net.p.tx.stats(net.p.now);
        let share1 = (s[1].packets - before[1]) as f64
            / ((s[0].packets - before[0]) + (s[1].packets - before[1])) as f64;
        assert!((0.25..=0.42).contains(&share1), "share {share1:.2} {s:?}");
        // Neither link queues long enough to tail-drop (an `impair` relay
        // holds 500 ms): at most ~300 ms of link 1's rate.
        assert!(net.max_queue <= 300, "queue {} {s:?}", net.max_queue);
        let rates: Vec<u64> = s.iter().filter_map(|s| s.delivery_bytes_per_s).collect();
        assert_eq!(rates.len(), 2, "{s:?}");
    }

    #[test]
    fn a_retransmission_avoids_the_link_that_lost_the_sn() {
        let mut p = Pair::new(2);
        p.tick(Duration::ZERO);
        let link_of = |p: &mut Pair, sn: u32| {
            p.tx.handle_caller_datagram(p.now, &srt_data(sn));
            let link = std::iter::from_fn(|| p.tx.poll_output()).find_map(|o| match o {
                Output::Link { link, .. } => Some(link),
                Output::Caller { .. } => None,
            });
            link.unwrap()
        };
        for sn in 0..6 {
            let first = link_of(&mut p, sn);
            p.tx.handle_link_datagram(p.now, LinkId(0), &srt_control(3, &[sn]));
            // Sent again (SRT's retransmission), twice: never the first link.
            assert_ne!(link_of(&mut p, sn), first, "sn {sn}");
        }
    }
}
