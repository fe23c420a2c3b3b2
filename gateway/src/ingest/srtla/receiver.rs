//! The SRTLA receiver core: groups of links, fed `(now, from, datagram)`,
//! polled for datagrams to send. No sockets, no clock (see `io.rs`).
//!
//! Rules and their sources are in `shared/notes/srtla.md`; each rule below
//! cites the section it comes from.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::packet::{
    self, ACK_SNS, GROUP_ID_HALF, GroupId, Packet, REG_ERR, REG_NGP, REG2, REG3, SeqNo, control,
};
use super::reorder::ReorderBuffer;
use super::stats::{GroupStats, LinkCounters, LinkStats, ReceiverCounters, ReceiverStats, ratio};

/// Limits and timeouts (srtla.md §6).
#[derive(Clone, Debug)]
pub struct ReceiverConfig {
    /// Groups at once (BB and IRL: 200).
    pub max_groups: usize,
    /// Links per group (IRL: 16).
    pub max_links_per_group: usize,
    /// A group that has had no link this long after its REG1 is removed.
    pub registration_timeout: Duration,
    /// A link silent this long is removed (BB 10 s, IRL 15 s).
    pub link_timeout: Duration,
    /// How long SRT data that arrived ahead of a gap waits for the gap to
    /// fill before the listener sees it (`reorder.rs`); zero: no waiting.
    pub reorder_hold: Duration,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            max_groups: 200,
            max_links_per_group: 16,
            registration_timeout: Duration::from_secs(10),
            link_timeout: Duration::from_secs(10),
            reorder_hold: Duration::from_millis(200),
        }
    }
}

/// A group's local handle; never reused, so a late event for a removed
/// group cannot reach a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey(u64);

impl GroupKey {
    #[must_use]
    pub fn number(self) -> u64 {
        self.0
    }
}

/// Something for the IO shell to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Send `payload` to a sender's link.
    Link { to: SocketAddr, payload: Bytes },
    /// Send `payload` to the SRT listener through the group's own socket,
    /// opening it first if the group has none (srtla.md §5.1: "a UDP socket
    /// connect()ed to the SRT server, one per group").
    Srt { group: GroupKey, payload: Bytes },
    /// Close the group's SRT socket: the group ended, or the encoder starts a
    /// new SRT session and the next `Srt` must come from a new port.
    CloseSrt { group: GroupKey },
}

/// Something worth logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    LinkAdded {
        group: GroupKey,
        addr: SocketAddr,
    },
    LinkTimedOut {
        group: GroupKey,
        addr: SocketAddr,
    },
    /// `had_links`: false for a registration that never completed.
    GroupRemoved {
        group: GroupKey,
        had_links: bool,
    },
}

/// srtla.md §6: "Datagram buffer 1500 B"; anything longer is no SRT packet
/// of a 1500-byte MTU and is dropped rather than forwarded.
pub const MAX_DATAGRAM: usize = 1500;

/// The SRTLA receiver state machine.
pub struct Receiver<R> {
    config: ReceiverConfig,
    /// Fills a buffer with unpredictable bytes (a CSPRNG in production);
    /// `false` if it could not.
    random: R,
    next_key: u64,
    groups: BTreeMap<GroupKey, Group>,
    /// Every registered link's address → its group.
    links: HashMap<SocketAddr, GroupKey>,
    out: VecDeque<Transmit>,
    events: VecDeque<Event>,
    counters: ReceiverCounters,
}

struct Group {
    id: GroupId,
    created: Instant,
    /// The REG1 source, known before it registers as a link (srtla.md §4.1
    /// rule 3: a known address may not create another group).
    reg_addr: SocketAddr,
    links: Vec<Link>,
    /// The link that delivered the latest SRT packet: replies that are not
    /// ACK/NAK go there. srtla.md §9.3: keepalives and REG2 do not move it
    /// ("MOB's own receiver only updates it on SRT traffic — prefer that").
    last_active: Option<SocketAddr>,
    had_link: bool,
    srt_open: bool,
    /// SRT data went through the current SRT socket: a session is up.
    srt_data: bool,
    seen: SeenWindow,
    reorder: ReorderBuffer,
    forwarded_packets: u64,
    forwarded_bytes: u64,
    downstream_packets: u64,
}

struct Link {
    addr: SocketAddr,
    added: Instant,
    last_rx: Instant,
    /// srtla.md §5.2: "Per link: a 10-slot log and a counter".
    ack_log: [SeqNo; ACK_SNS],
    ack_count: usize,
    stats: LinkCounters,
}

impl<R: FnMut(&mut [u8]) -> bool> Receiver<R> {
    pub fn new(config: ReceiverConfig, random: R) -> Self {
        Self {
            config,
            random,
            next_key: 0,
            groups: BTreeMap::new(),
            links: HashMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            counters: ReceiverCounters::default(),
        }
    }

    /// A datagram from a sender's link arrived at the SRTLA port.
    pub fn handle_link_datagram(&mut self, now: Instant, from: SocketAddr, d: &[u8]) {
        if d.len() > MAX_DATAGRAM {
            self.counters.invalid += 1;
            return;
        }
        match packet::classify(d) {
            // srtla.md §2.1: registration is recognised before the source
            // address is looked up.
            Packet::Reg1(body) => self.reg1(now, from, body),
            Packet::Reg2(body) => self.reg2(now, from, body),
            kind => self.link_datagram(now, from, d, &kind),
        }
    }

    /// A datagram from the SRT listener arrived on `group`'s socket.
    pub fn handle_srt_datagram(&mut self, group: GroupKey, d: &[u8]) {
        if d.len() > MAX_DATAGRAM {
            return;
        }
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        let kind = match packet::classify(d) {
            Packet::SrtControl { kind } => Some(kind),
            Packet::SrtData { .. } => None,
            _ => return,
        };
        g.downstream_packets += 1;
        let payload = Bytes::copy_from_slice(d);
        match kind {
            // srtla.md §5.3: SRT ACK to every link; §9.2: NAKs too, "because
            // last-active can point at a dead link".
            Some(control::ACK | control::NAK) => {
                for l in &g.links {
                    self.out.push_back(Transmit::Link {
                        to: l.addr,
                        payload: payload.clone(),
                    });
                }
            }
            // srtla.md §5.3 and §9.3: everything else to the last-active
            // link only ("Do not broadcast handshakes").
            _ => {
                if let Some(to) = g.reply_link() {
                    self.out.push_back(Transmit::Link { to, payload });
                }
            }
        }
    }

    /// Sending to or receiving from `group`'s SRT socket failed (e.g. ICMP
    /// port unreachable): srtla.md §5.1, "BB/IRL destroy the whole group".
    pub fn handle_srt_error(&mut self, group: GroupKey) {
        self.remove_group(group);
    }

    /// Removes dead links and groups; an early call is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        let link_timeout = self.config.link_timeout;
        let registration_timeout = self.config.registration_timeout;
        let mut dead_groups = Vec::new();
        for (&key, g) in &mut self.groups {
            let before = g.links.len();
            g.links.retain(|l| {
                let alive = now.saturating_duration_since(l.last_rx) < link_timeout;
                if !alive {
                    self.links.remove(&l.addr);
                    self.events.push_back(Event::LinkTimedOut {
                        group: key,
                        addr: l.addr,
                    });
                }
                alive
            });
            self.counters.links_timed_out += (before - g.links.len()) as u64;
            // The issue: "group removed when its last link dies"; a group
            // that never had one lives for the registration timeout
            // (srtla.md §6 "Group removal").
            if g.links.is_empty()
                && (g.had_link || now.saturating_duration_since(g.created) >= registration_timeout)
            {
                dead_groups.push(key);
            }
        }
        for key in dead_groups {
            self.remove_group(key);
        }
        for (&key, g) in &mut self.groups {
            g.reorder.handle_timeout(now);
            g.forward_ready(key, &mut self.out);
        }
    }

    /// The next instant `handle_timeout` has work, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.groups
            .values()
            .flat_map(|g| {
                let reg = g
                    .links
                    .is_empty()
                    .then_some(g.created + self.config.registration_timeout);
                g.links
                    .iter()
                    .map(|l| l.last_rx + self.config.link_timeout)
                    .chain(reg)
                    .chain(g.reorder.poll_timeout())
            })
            .min()
    }

    /// The next thing to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// The next thing to log.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn stats(&self, now: Instant) -> ReceiverStats {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let groups = self
            .groups
            .iter()
            .map(|(key, g)| {
                let total: u64 = g.links.iter().map(|l| l.stats.data_bytes).sum();
                GroupStats {
                    group: key.0,
                    age_ms: ms(now.saturating_duration_since(g.created)),
                    forwarded_packets: g.forwarded_packets,
                    forwarded_bytes: g.forwarded_bytes,
                    downstream_packets: g.downstream_packets,
                    reorder: g.reorder.counters(),
                    links: g
                        .links
                        .iter()
                        .map(|l| {
                            let s = &l.stats;
                            LinkStats {
                                addr: l.addr,
                                age_ms: ms(now.saturating_duration_since(l.added)),
                                idle_ms: ms(now.saturating_duration_since(l.last_rx)),
                                packets: s.packets,
                                bytes: s.bytes,
                                data_packets: s.data_packets,
                                retransmits: s.retransmits,
                                duplicates: s.duplicates,
                                keepalives: s.keepalives,
                                acks_sent: s.acks_sent,
                                share: ratio(s.data_bytes, total),
                                retransmit_ratio: ratio(s.retransmits, s.data_packets),
                                loss_estimate: s
                                    .report
                                    .map(|r| ratio(u64::from(r.naks), s.data_packets)),
                                rtt_ms: s.report.map(|r| r.rtt_ms),
                                window: s.report.map(|r| r.window),
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        ReceiverStats {
            groups,
            counters: self.counters.clone(),
        }
    }

    /// Groups and links held now (for bounds checks).
    #[must_use]
    pub fn size(&self) -> (usize, usize) {
        (self.groups.len(), self.links.len())
    }

    fn reply(&mut self, to: SocketAddr, payload: &[u8]) {
        match packet::classify(payload) {
            Packet::RegErr => self.counters.reg_err_sent += 1,
            Packet::RegNgp => self.counters.reg_ngp_sent += 1,
            _ => {}
        }
        self.out.push_back(Transmit::Link {
            to,
            payload: Bytes::copy_from_slice(payload),
        });
    }

    /// An address that is a link, or the REG1 source of a group.
    fn owner_of(&self, addr: SocketAddr) -> Option<GroupKey> {
        self.links.get(&addr).copied().or_else(|| {
            self.groups
                .iter()
                .find(|(_, g)| g.reg_addr == addr)
                .map(|(k, _)| *k)
        })
    }

    /// srtla.md §4.1, REG1.
    fn reg1(&mut self, now: Instant, from: SocketAddr, body: &[u8]) {
        // Rule 3: "Source address already known … → REG_ERR" (so a
        // retransmitted REG1 does not make a second group). Our one
        // deviation: the same REG1 again from the socket that created a
        // group still without links gets that group's REG2 again. Senders
        // repeat REG1 every second while they wait (srtla.md §4.2), so a
        // lost REG2 would otherwise cost a registration timeout; the answer
        // goes only to the address that already received it.
        if let Some(key) = self.owner_of(from) {
            let again = self.groups.get(&key).and_then(|g| {
                (g.reg_addr == from
                    && g.links.is_empty()
                    && body.get(..GROUP_ID_HALF) == Some(g.id.sender_half()))
                .then(|| packet::registration(REG2, &g.id))
            });
            match again {
                Some(reply) => self.reply(from, &reply),
                None => self.reply(from, &packet::bare(REG_ERR)),
            }
            return;
        }
        // Rule 2: table full → REG_ERR, after trying IRL's eviction of the
        // oldest group that never had a link (srtla.md §9.7: "evict ghost
        // groups when the table is full").
        if self.groups.len() >= self.config.max_groups {
            let ghost = self
                .groups
                .iter()
                .filter(|(_, g)| !g.had_link)
                .min_by_key(|(k, g)| (g.created, **k))
                .map(|(k, _)| *k);
            match ghost {
                Some(k) => {
                    self.remove_group(k);
                    self.counters.groups_evicted += 1;
                }
                None => {
                    self.reply(from, &packet::bare(REG_ERR));
                    return;
                }
            }
        }
        // srtla.md §3.2: keep the sender's [0..128), fill [128..256) with
        // random bytes until the whole id is unique.
        let mut id = GroupId([0; packet::GROUP_ID_LEN]);
        let (mine, _) = id.0.split_at_mut(GROUP_ID_HALF);
        mine.copy_from_slice(body.get(..GROUP_ID_HALF).unwrap_or(&[0; GROUP_ID_HALF]));
        let mut unique = false;
        // A few tries: 128 random bytes collide only if the source is broken.
        for _ in 0..4 {
            let (_, theirs) = id.0.split_at_mut(GROUP_ID_HALF);
            if !(self.random)(theirs) {
                break;
            }
            if self.find_group(&id).is_none() {
                unique = true;
                break;
            }
        }
        if !unique {
            self.reply(from, &packet::bare(REG_ERR));
            return;
        }
        let key = GroupKey(self.next_key);
        self.next_key += 1;
        let reply = packet::registration(REG2, &id);
        self.groups.insert(
            key,
            Group {
                id,
                created: now,
                reg_addr: from,
                links: Vec::new(),
                last_active: None,
                had_link: false,
                srt_open: false,
                srt_data: false,
                seen: SeenWindow::default(),
                reorder: ReorderBuffer::new(self.config.reorder_hold),
                forwarded_packets: 0,
                forwarded_bytes: 0,
                downstream_packets: 0,
            },
        );
        self.counters.groups_created += 1;
        // Rule 4: "reply REG2 to the source. The REG1 socket is not a member yet".
        self.reply(from, &reply);
    }

    /// srtla.md §4.1, REG2.
    fn reg2(&mut self, now: Instant, from: SocketAddr, body: &[u8]) {
        let mut id = GroupId([0; packet::GROUP_ID_LEN]);
        id.0.copy_from_slice(body.get(..packet::GROUP_ID_LEN).unwrap_or(&[0; 256]));
        // Rule 1: "No group with this exact 256-byte id → REG_NGP".
        let Some(key) = self.find_group(&id) else {
            self.reply(from, &packet::bare(REG_NGP));
            return;
        };
        // Rule 2: "Source address is a link of (or last-active address of)
        // a different group → REG_ERR".
        if self.owner_of(from).is_some_and(|k| k != key) {
            self.reply(from, &packet::bare(REG_ERR));
            return;
        }
        let max_links = self.config.max_links_per_group;
        let Some(g) = self.groups.get_mut(&key) else {
            return;
        };
        if let Some(l) = g.links.iter_mut().find(|l| l.addr == from) {
            // Rule 3: "Address already a link of this group → just reply REG3 again".
            l.last_rx = now;
        } else if g.links.len() >= max_links {
            // Rule 4: "the group already has the maximum links → REG_ERR".
            self.reply(from, &packet::bare(REG_ERR));
            return;
        } else {
            g.links.push(Link {
                addr: from,
                added: now,
                last_rx: now,
                ack_log: [SeqNo::new(0); ACK_SNS],
                ack_count: 0,
                stats: LinkCounters::default(),
            });
            g.had_link = true;
            self.links.insert(from, key);
            self.events.push_back(Event::LinkAdded {
                group: key,
                addr: from,
            });
        }
        self.reply(from, &packet::bare(REG3));
    }

    fn find_group(&self, id: &GroupId) -> Option<GroupKey> {
        // Every id is compared (in constant time), not just until a match.
        let mut found = None;
        for (k, g) in &self.groups {
            if g.id.ct_eq(id) {
                found = Some(*k);
            }
        }
        found
    }

    /// A non-registration datagram (srtla.md §2 steps 2–5, §5.1).
    fn link_datagram(&mut self, now: Instant, from: SocketAddr, d: &[u8], kind: &Packet<'_>) {
        // Step 2: "unknown address → drop silently (no reply of any kind)".
        let Some(&key) = self.links.get(&from) else {
            self.counters.unknown_source += 1;
            return;
        };
        let Some(g) = self.groups.get_mut(&key) else {
            return;
        };
        let Some(link) = g.links.iter_mut().find(|l| l.addr == from) else {
            return;
        };
        // srtla.md §5.1: "refresh the link's last-received time".
        link.last_rx = now;
        link.stats.packets += 1;
        link.stats.bytes += d.len() as u64;
        match *kind {
            Packet::Keepalive(bytes) => {
                // srtla.md §3.1: "echo the datagram verbatim to the source
                // address; never forward to SRT"; it does not move last-active.
                link.stats.keepalives += 1;
                if let Some(r) = packet::keepalive_report(bytes) {
                    link.stats.report = Some(r);
                }
                self.out.push_back(Transmit::Link {
                    to: from,
                    payload: Bytes::copy_from_slice(d),
                });
            }
            Packet::SrtData { sn, retransmitted } => {
                link.stats.data_packets += 1;
                link.stats.data_bytes += d.len() as u64;
                if retransmitted {
                    link.stats.retransmits += 1;
                }
                // srtla.md §5.2: every data packet, "retransmissions and
                // duplicates included", goes into the link's ACK log; the
                // 10th sends one ACK to that link only. §5.4: "If you add
                // dedup, still count the copy in the arriving link's ACK log".
                if let Some(slot) = link.ack_log.get_mut(link.ack_count) {
                    *slot = sn;
                }
                link.ack_count += 1;
                if link.ack_count == ACK_SNS {
                    link.ack_count = 0;
                    link.stats.acks_sent += 1;
                    self.out.push_back(Transmit::Link {
                        to: from,
                        payload: Bytes::copy_from_slice(&packet::ack(&link.ack_log)),
                    });
                }
                g.last_active = Some(from);
                // A copy of a packet already forwarded is dropped; a
                // retransmission is forwarded even so, as the listener asked
                // for it (its first copy may have been lost after us).
                if g.seen.check_and_set(sn) && !retransmitted {
                    if let Some(l) = g.links.iter_mut().find(|l| l.addr == from) {
                        l.stats.duplicates += 1;
                    }
                    return;
                }
                g.srt_data = true;
                g.reorder
                    .push(now, sn, retransmitted, Bytes::copy_from_slice(d));
                g.forward_ready(key, &mut self.out);
            }
            Packet::SrtControl { .. } => {
                g.last_active = Some(from);
                // srtla.md §5.5 (OIRL): an induction handshake on a group with
                // an open SRT socket is the encoder reconnecting; a new socket
                // makes the listener see a fresh peer. Only after data has
                // flowed: callers repeat the induction every 250 ms until
                // answered, and a new port for a repeat would make the
                // cookie of the first answer useless.
                if g.srt_data && packet::is_srt_induction(d) {
                    g.srt_open = false;
                    g.srt_data = false;
                    g.seen = SeenWindow::default();
                    g.reorder.reset();
                    self.out.push_back(Transmit::CloseSrt { group: key });
                }
                g.forward(key, Bytes::copy_from_slice(d), &mut self.out);
            }
            // srtla.md §2: REG3/ERR/NGP/NAK/ACK have no meaning towards the
            // receiver, and a datagram < 16 bytes is dropped.
            _ => {
                self.counters.invalid += 1;
            }
        }
    }

    fn remove_group(&mut self, key: GroupKey) {
        let Some(g) = self.groups.remove(&key) else {
            return;
        };
        for l in &g.links {
            self.links.remove(&l.addr);
        }
        if g.srt_open {
            self.out.push_back(Transmit::CloseSrt { group: key });
        }
        self.events.push_back(Event::GroupRemoved {
            group: key,
            had_links: g.had_link,
        });
        self.counters.groups_removed += 1;
    }
}

impl Group {
    fn forward(&mut self, key: GroupKey, payload: Bytes, out: &mut VecDeque<Transmit>) {
        self.srt_open = true;
        self.forwarded_packets += 1;
        self.forwarded_bytes += payload.len() as u64;
        out.push_back(Transmit::Srt {
            group: key,
            payload,
        });
    }

    /// Forwards what the reorder buffer released.
    fn forward_ready(&mut self, key: GroupKey, out: &mut VecDeque<Transmit>) {
        while let Some(p) = self.reorder.pop_ready() {
            self.forward(key, p, out);
        }
    }

    /// The last-active link while it is still a link, else the link heard
    /// from most recently (srtla.md §9.2: last-active "can point at a dead link").
    fn reply_link(&self) -> Option<SocketAddr> {
        self.last_active
            .filter(|a| self.links.iter().any(|l| l.addr == *a))
            .or_else(|| self.links.iter().max_by_key(|l| l.last_rx).map(|l| l.addr))
    }
}

/// Which recent SRT sequence numbers were forwarded: a 4096-SN window below
/// the highest seen. Older SNs count as unseen (the listener drops them).
struct SeenWindow {
    top: Option<SeqNo>,
    bits: Box<[u64; Self::WORDS]>,
}

impl Default for SeenWindow {
    fn default() -> Self {
        Self {
            top: None,
            bits: Box::new([0; Self::WORDS]),
        }
    }
}

impl SeenWindow {
    const WORDS: usize = 64;
    const SPAN: u32 = 64 * 64;

    fn slot(sn: SeqNo) -> (usize, u64) {
        let i = (sn.value() % Self::SPAN) as usize;
        (i / 64, 1 << (i % 64))
    }

    fn flip(&mut self, sn: SeqNo, set: bool) -> bool {
        let (w, mask) = Self::slot(sn);
        let Some(word) = self.bits.get_mut(w) else {
            return false;
        };
        let was = *word & mask != 0;
        if set {
            *word |= mask;
        } else {
            *word &= !mask;
        }
        was
    }

    /// Marks `sn` seen; returns whether it was seen before.
    fn check_and_set(&mut self, sn: SeqNo) -> bool {
        let Some(top) = self.top else {
            self.top = Some(sn);
            return self.flip(sn, true);
        };
        let ahead = sn.diff(top);
        if ahead > 0 {
            let ahead = ahead.unsigned_abs();
            if ahead >= Self::SPAN {
                self.bits.fill(0);
            } else {
                // The slots between the old top and `sn` now stand for new SNs.
                for k in 1..=ahead {
                    self.flip(top.add(k), false);
                }
            }
            self.top = Some(sn);
            self.flip(sn, true)
        } else if ahead.unsigned_abs() >= Self::SPAN {
            false
        } else {
            self.flip(sn, true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::srtla::packet::{GROUP_ID_LEN, REG1, bare, registration};

    type Random = Box<dyn FnMut(&mut [u8]) -> bool>;

    /// A virtual clock and a deterministic "random" source.
    struct Harness {
        rx: Receiver<Random>,
        t0: Instant,
        now: Instant,
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    fn srt_data(sn: u32) -> Vec<u8> {
        let mut p = vec![0u8; 16 + 1316];
        p[..4].copy_from_slice(&sn.to_be_bytes());
        p
    }

    fn srt_control(kind: u16, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len.max(16)];
        p[..2].copy_from_slice(&(0x8000 | kind).to_be_bytes());
        p
    }

    impl Harness {
        fn new(config: ReceiverConfig) -> Self {
            let mut counter = 0u8;
            let random: Random = Box::new(move |buf: &mut [u8]| {
                counter = counter.wrapping_add(1);
                buf.fill(counter);
                true
            });
            let t0 = Instant::now();
            Self {
                rx: Receiver::new(config, random),
                t0,
                now: t0,
            }
        }

        fn advance(&mut self, d: Duration) {
            self.now += d;
            self.rx.handle_timeout(self.now);
        }

        fn send(&mut self, from: SocketAddr, d: &[u8]) -> Vec<Transmit> {
            self.rx.handle_link_datagram(self.now, from, d);
            self.drain()
        }

        fn drain(&mut self) -> Vec<Transmit> {
            std::iter::from_fn(|| self.rx.poll_transmit()).collect()
        }

        /// REG1 from `reg`, then REG2 from every address; returns the id.
        fn group(&mut self, sender_byte: u8, reg: SocketAddr, links: &[SocketAddr]) -> GroupId {
            let out = self.send(reg, &registration(REG1, &GroupId([sender_byte; 256])));
            let [Transmit::Link { to, payload }] = &out[..] else {
                panic!("REG1 answered {out:?}")
            };
            assert_eq!(*to, reg);
            let Packet::Reg2(body) = packet::classify(payload) else {
                panic!("not a REG2: {payload:?}")
            };
            let id = GroupId(body.try_into().unwrap());
            for &l in links {
                assert_eq!(
                    self.send(l, &registration(REG2, &id)),
                    vec![link(l, &bare(REG3))]
                );
            }
            id
        }
    }

    fn link(to: SocketAddr, payload: &[u8]) -> Transmit {
        Transmit::Link {
            to,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn srt(group: u64, payload: &[u8]) -> Transmit {
        Transmit::Srt {
            group: GroupKey(group),
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn reg1_answers_reg2_with_the_sender_half_kept() {
        let mut h = Harness::new(ReceiverConfig::default());
        let mut req = [0u8; GROUP_ID_LEN];
        for (i, b) in req.iter_mut().enumerate() {
            *b = i as u8;
        }
        let out = h.send(addr(1), &registration(REG1, &GroupId(req)));
        let [Transmit::Link { to, payload }] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!((*to, payload.len()), (addr(1), 258));
        assert_eq!(&payload[..2], &[0x92, 0x01]);
        assert_eq!(&payload[2..130], &req[..128]);
        // Same sender half from another address: another group, another id.
        let out2 = h.send(addr(2), &registration(REG1, &GroupId(req)));
        let [Transmit::Link { payload: p2, .. }] = &out2[..] else {
            panic!("{out2:?}")
        };
        assert_ne!(&p2[..], &payload[..]);
        assert_eq!(h.rx.size(), (2, 0));
    }

    #[test]
    fn known_addresses_and_full_tables_get_reg_err() {
        let mut h = Harness::new(ReceiverConfig {
            max_groups: 2,
            ..ReceiverConfig::default()
        });
        // The same REG1 again before any link joined: the same REG2 again
        // (its answer may have been lost), and still one group.
        let first = h.send(addr(1), &registration(REG1, &GroupId([1; 256])));
        assert_eq!(
            h.send(addr(1), &registration(REG1, &GroupId([1; 256]))),
            first
        );
        assert_eq!(h.rx.size(), (1, 0));
        // Another sender half from that address: refused.
        assert_eq!(
            h.send(addr(1), &registration(REG1, &GroupId([9; 256]))),
            vec![link(addr(1), &bare(REG_ERR))]
        );
        let [Transmit::Link { payload, .. }] = &first[..] else {
            panic!("{first:?}")
        };
        let id = GroupId(payload[2..].try_into().unwrap());
        assert_eq!(
            h.send(addr(10), &registration(REG2, &id)),
            vec![link(addr(10), &bare(REG3))]
        );
        // Once the group has a link, a REG1 from its REG1 socket or from a
        // link is refused.
        assert_eq!(
            h.send(addr(1), &registration(REG1, &GroupId([1; 256]))),
            vec![link(addr(1), &bare(REG_ERR))]
        );
        assert_eq!(
            h.send(addr(10), &registration(REG1, &GroupId([1; 256]))),
            vec![link(addr(10), &bare(REG_ERR))]
        );
        // Second group fills the table; a third REG1 evicts the link-less one.
        let _ = h.send(addr(2), &registration(REG1, &GroupId([2; 256])));
        let out = h.send(addr(3), &registration(REG1, &GroupId([3; 256])));
        assert!(matches!(&out[..], [Transmit::Link { payload, .. }] if payload.len() == 258));
        assert_eq!(h.rx.stats(h.now).counters.groups_evicted, 1);
        // Now both groups... the new one has no link either: evicted next.
        let _ = h.group(4, addr(4), &[addr(40)]);
        // Two groups with links: nothing to evict.
        assert_eq!(
            h.send(addr(5), &registration(REG1, &GroupId([5; 256]))),
            vec![link(addr(5), &bare(REG_ERR))]
        );
        assert_eq!(h.rx.size(), (2, 2));
    }

    #[test]
    fn reg2_rules() {
        let mut h = Harness::new(ReceiverConfig {
            max_links_per_group: 2,
            ..ReceiverConfig::default()
        });
        // Unknown id: NGP, no state change.
        assert_eq!(
            h.send(addr(9), &registration(REG2, &GroupId([9; 256]))),
            vec![link(addr(9), &bare(REG_NGP))]
        );
        assert_eq!(h.rx.size(), (0, 0));
        let a = h.group(1, addr(1), &[addr(1), addr(11)]);
        // Again: REG3, link count unchanged.
        assert_eq!(
            h.send(addr(11), &registration(REG2, &a)),
            vec![link(addr(11), &bare(REG3))]
        );
        assert_eq!(h.rx.size(), (1, 2));
        // Beyond the maximum.
        assert_eq!(
            h.send(addr(12), &registration(REG2, &a)),
            vec![link(addr(12), &bare(REG_ERR))]
        );
        // A link of another group.
        let b = h.group(2, addr(2), &[addr(21)]);
        assert_eq!(
            h.send(addr(21), &registration(REG2, &a)),
            vec![link(addr(21), &bare(REG_ERR))]
        );
        // A near miss of a real id (one byte off in the receiver half).
        let mut guess = b.clone();
        guess.0[200] ^= 1;
        assert_eq!(
            h.send(addr(22), &registration(REG2, &guess)),
            vec![link(addr(22), &bare(REG_NGP))]
        );
        assert_eq!(h.rx.size(), (2, 3));
    }

    #[test]
    fn unknown_sources_get_nothing() {
        let mut h = Harness::new(ReceiverConfig::default());
        let _ = h.group(1, addr(1), &[addr(10)]);
        for d in [
            srt_data(1),
            vec![0x90, 0],
            srt_control(control::HANDSHAKE, 64),
        ] {
            assert_eq!(h.send(addr(99), &d), vec![]);
        }
        // The REG1 socket is not a link until it sends REG2.
        assert_eq!(h.send(addr(1), &srt_data(1)), vec![]);
        assert_eq!(h.rx.stats(h.now).counters.unknown_source, 4);
    }

    #[test]
    fn keepalives_are_echoed_verbatim_and_keep_the_link() {
        let mut h = Harness::new(ReceiverConfig::default());
        let _ = h.group(1, addr(1), &[addr(10), addr(11)]);
        // last-active = 11 via an SRT packet.
        let _ = h.send(addr(11), &srt_control(control::ACKACK, 16));
        let report = packet::LinkReport {
            rtt_ms: 55,
            naks: 3,
            ..Default::default()
        };
        for k in [
            vec![0x90, 0x00],
            packet::keepalive(7, &report)[..10].to_vec(),
            packet::keepalive(7, &report).to_vec(),
        ] {
            h.advance(Duration::from_secs(6));
            assert_eq!(h.send(addr(10), &k), vec![link(addr(10), &k)]);
        }
        // Link 11 timed out (18 s of silence); 10 lives on keepalives alone.
        assert_eq!(h.rx.size(), (1, 1));
        // A handshake reply goes to 10: the dead link cannot take it.
        h.rx.handle_srt_datagram(GroupKey(0), &srt_control(control::HANDSHAKE, 64));
        assert_eq!(h.drain(), vec![link(addr(10), &srt_control(0, 64))]);
        let st = h.rx.stats(h.now);
        assert_eq!(st.groups[0].links[0].rtt_ms, Some(55));
        assert_eq!(st.groups[0].links[0].keepalives, 3);
    }

    #[test]
    fn an_ack_every_ten_data_packets_per_link() {
        let mut h = Harness::new(ReceiverConfig::default());
        let _ = h.group(1, addr(1), &[addr(10), addr(11)]);
        let mut acks = Vec::new();
        let sns: Vec<u32> = (0x7FFF_FFF8..=0x7FFF_FFFF).chain(0..12).collect();
        for (i, &sn) in sns.iter().enumerate() {
            // Link 10 gets every packet; 11 gets every third, plus a control
            // packet that must not count.
            let mut out = h.send(addr(10), &srt_data(sn));
            if i % 3 == 0 {
                out.extend(h.send(addr(11), &srt_control(control::KEEPALIVE, 16)));
                out.extend(h.send(addr(11), &srt_data(sn)));
            }
            acks.extend(
                out.into_iter()
                    .filter(|t| matches!(t, Transmit::Link { payload, .. } if payload[0] == 0x91)),
            );
        }
        // 20 packets on 10 → two ACKs; 7 on 11 → none.
        let expect = |from: usize| {
            let mut p = vec![0x91, 0, 0, 0];
            for sn in &sns[from..from + 10] {
                p.extend_from_slice(&sn.to_be_bytes());
            }
            link(addr(10), &p)
        };
        assert_eq!(acks, vec![expect(0), expect(10)]);
        // Three more on 11: its 10th packet, a duplicate, is still ACKed.
        let mut more = Vec::new();
        for sn in [100, 101, 0] {
            more.extend(h.send(addr(11), &srt_data(sn)));
        }
        let Some(Transmit::Link { to, payload }) = more.last() else {
            panic!("{more:?}")
        };
        assert_eq!((*to, payload.len()), (addr(11), 44));
        assert_eq!(&payload[40..], &[0, 0, 0, 0]);
    }

    #[test]
    fn srt_packets_are_forwarded_unchanged_and_duplicates_dropped() {
        let mut h = Harness::new(ReceiverConfig::default());
        let _ = h.group(1, addr(1), &[addr(10), addr(11)]);
        let _ = h.group(2, addr(2), &[addr(20)]);
        assert_eq!(h.send(addr(10), &srt_data(5)), vec![srt(0, &srt_data(5))]);
        assert_eq!(h.send(addr(11), &srt_data(6)), vec![srt(0, &srt_data(6))]);
        assert_eq!(h.send(addr(20), &srt_data(5)), vec![srt(1, &srt_data(5))]);
        // The same SN again on another link: dropped, counted.
        assert_eq!(h.send(addr(11), &srt_data(5)), vec![]);
        // A retransmission of it is forwarded (the listener asked for it).
        let mut re = srt_data(5);
        re[4] = 0x04;
        assert_eq!(h.send(addr(10), &re), vec![srt(0, &re)]);
        // Short or meaningless datagrams from a link: dropped.
        assert_eq!(h.send(addr(10), &[0u8; 15]), vec![]);
        assert_eq!(h.send(addr(10), &bare(REG3)), vec![]);
        let st = h.rx.stats(h.now);
        assert_eq!(st.groups[0].links[1].duplicates, 1);
        assert_eq!(st.groups[0].forwarded_packets, 3);
        assert_eq!(st.counters.invalid, 2);
        // Old SNs far below the window are forwarded (the listener decides).
        let _ = h.send(addr(10), &srt_data(100_000));
        assert_eq!(h.send(addr(10), &srt_data(6)), vec![srt(0, &srt_data(6))]);
    }

    #[test]
    fn data_crossing_links_reaches_the_listener_in_order() {
        let mut h = Harness::new(ReceiverConfig::default());
        let hold = ReceiverConfig::default().reorder_hold;
        let _ = h.group(1, addr(1), &[addr(10), addr(11)]);
        assert_eq!(h.send(addr(10), &srt_data(1)), vec![srt(0, &srt_data(1))]);
        // 3 overtakes 2 on the faster link: it waits for 2.
        assert_eq!(h.send(addr(11), &srt_data(3)), vec![]);
        assert_eq!(h.rx.poll_timeout(), Some(h.now + hold));
        assert_eq!(
            h.send(addr(10), &srt_data(2)),
            vec![srt(0, &srt_data(2)), srt(0, &srt_data(3))]
        );
        // 5 waits for 4, which never comes: after `hold` it goes on alone.
        assert_eq!(h.send(addr(11), &srt_data(5)), vec![]);
        h.advance(hold - Duration::from_millis(1));
        assert_eq!(h.drain(), vec![]);
        h.advance(Duration::from_millis(1));
        assert_eq!(h.drain(), vec![srt(0, &srt_data(5))]);
        let r = h.rx.stats(h.now).groups[0].reorder;
        assert_eq!((r.held, r.absorbed, r.gaps_given_up), (2, 1, 1));
    }

    #[test]
    fn replies_from_the_listener_take_the_right_links() {
        let mut h = Harness::new(ReceiverConfig::default());
        let _ = h.group(1, addr(1), &[addr(10), addr(11), addr(12)]);
        let _ = h.send(addr(11), &srt_data(1));
        // A keepalive does not move last-active.
        let _ = h.send(addr(12), &[0x90, 0]);
        for kind in [control::ACK, control::NAK] {
            let p = srt_control(kind, 20);
            h.rx.handle_srt_datagram(GroupKey(0), &p);
            assert_eq!(
                h.drain(),
                vec![link(addr(10), &p), link(addr(11), &p), link(addr(12), &p)]
            );
        }
        for kind in [
            control::HANDSHAKE,
            control::KEEPALIVE,
            control::SHUTDOWN,
            control::ACKACK,
        ] {
            let p = srt_control(kind, 16);
            h.rx.handle_srt_datagram(GroupKey(0), &p);
            assert_eq!(h.drain(), vec![link(addr(11), &p)]);
        }
        let data = srt_data(3);
        h.rx.handle_srt_datagram(GroupKey(0), &data);
        assert_eq!(h.drain(), vec![link(addr(11), &data)]);
        // Garbage from the listener side, or for an unknown group: nothing.
        h.rx.handle_srt_datagram(GroupKey(0), &[1, 2, 3]);
        h.rx.handle_srt_datagram(GroupKey(7), &srt_control(control::ACK, 20));
        assert_eq!(h.drain(), vec![]);
    }

    #[test]
    fn dead_links_and_groups_are_removed() {
        let config = ReceiverConfig::default();
        let mut h = Harness::new(config.clone());
        let a = h.group(1, addr(1), &[addr(10), addr(11)]);
        let _ = h.send(addr(10), &srt_data(1));
        // A group that never gets a link expires after the registration timeout.
        let _ = h.send(addr(2), &registration(REG1, &GroupId([2; 256])));
        assert_eq!(h.rx.poll_timeout(), Some(h.t0 + config.link_timeout));
        h.advance(config.link_timeout / 2);
        let _ = h.send(addr(11), &[0x90, 0]);
        h.advance(config.link_timeout / 2);
        // 10 is gone, 11 is alive; the link-less group is gone too.
        assert_eq!(h.rx.size(), (1, 1));
        assert_eq!(h.send(addr(10), &srt_data(2)), vec![]);
        // An early timeout is a no-op.
        h.rx.handle_timeout(h.now);
        assert_eq!(h.rx.size(), (1, 1));
        h.advance(config.link_timeout);
        // The last link died: the group went, and its SRT socket with it.
        assert_eq!(h.rx.size(), (0, 0));
        assert_eq!(h.drain(), vec![Transmit::CloseSrt { group: GroupKey(0) }]);
        assert_eq!(
            h.send(addr(11), &registration(REG2, &a)),
            vec![link(addr(11), &bare(REG_NGP))]
        );
        assert_eq!(h.rx.poll_timeout(), None);
    }

    #[test]
    fn srt_socket_errors_end_the_group() {
        let mut h = Harness::new(ReceiverConfig::default());
        let _ = h.group(1, addr(1), &[addr(10)]);
        let _ = h.send(addr(10), &srt_data(1));
        h.rx.handle_srt_error(GroupKey(0));
        assert_eq!(h.drain(), vec![Transmit::CloseSrt { group: GroupKey(0) }]);
        assert_eq!(h.send(addr(10), &srt_data(2)), vec![]);
    }

    #[test]
    fn an_induction_handshake_reopens_the_srt_socket() {
        let mut h = Harness::new(ReceiverConfig::default());
        let _ = h.group(1, addr(1), &[addr(10)]);
        let mut hs = srt_control(control::HANDSHAKE, 64);
        hs[39] = 1;
        // The first one opens the socket; there is nothing to close. A
        // repeat before any data is the same handshake: same socket.
        assert_eq!(h.send(addr(10), &hs), vec![srt(0, &hs)]);
        assert_eq!(h.send(addr(10), &hs), vec![srt(0, &hs)]);
        let _ = h.send(addr(10), &srt_data(9));
        assert_eq!(
            h.send(addr(10), &hs),
            vec![Transmit::CloseSrt { group: GroupKey(0) }, srt(0, &hs)]
        );
        assert_eq!(h.send(addr(10), &hs), vec![srt(0, &hs)]);
        // The new session may reuse SNs: nothing counts as a duplicate.
        assert_eq!(h.send(addr(10), &srt_data(9)), vec![srt(0, &srt_data(9))]);
    }

    #[test]
    fn per_link_shares() {
        let mut h = Harness::new(ReceiverConfig::default());
        let _ = h.group(1, addr(1), &[addr(10), addr(11)]);
        for sn in 0..40 {
            let from = if sn % 4 == 0 { addr(11) } else { addr(10) };
            let _ = h.send(from, &srt_data(sn));
        }
        let st = h.rx.stats(h.now);
        let shares: Vec<f64> = st.groups[0].links.iter().map(|l| l.share).collect();
        assert_eq!(shares, vec![0.75, 0.25]);
        assert_eq!(st.groups[0].links[0].acks_sent, 3);
    }

    #[test]
    fn oversized_datagrams_are_dropped_and_events_say_what_happened() {
        let mut h = Harness::new(ReceiverConfig::default());
        let _ = h.group(1, addr(1), &[addr(10)]);
        let mut big = srt_data(1);
        big.resize(MAX_DATAGRAM + 1, 0);
        assert_eq!(h.send(addr(10), &big), vec![]);
        h.rx.handle_srt_datagram(GroupKey(0), &big);
        assert_eq!(h.drain(), vec![]);
        h.advance(Duration::from_secs(60));
        let events: Vec<Event> = std::iter::from_fn(|| h.rx.poll_event()).collect();
        assert_eq!(
            events,
            vec![
                Event::LinkAdded {
                    group: GroupKey(0),
                    addr: addr(10)
                },
                Event::LinkTimedOut {
                    group: GroupKey(0),
                    addr: addr(10)
                },
                Event::GroupRemoved {
                    group: GroupKey(0),
                    had_links: true
                },
            ]
        );
    }

    #[test]
    fn seen_window_wraps() {
        let mut w = SeenWindow::default();
        assert!(!w.check_and_set(SeqNo::new(0x7FFF_FFFE)));
        assert!(!w.check_and_set(SeqNo::new(1)));
        assert!(w.check_and_set(SeqNo::new(0x7FFF_FFFE)));
        assert!(!w.check_and_set(SeqNo::new(0)));
        // Slots reused after the window moves on are fresh.
        assert!(!w.check_and_set(SeqNo::new(4096 + 1)));
        assert!(!w.check_and_set(SeqNo::new(4096 + 2)));
        assert!(w.check_and_set(SeqNo::new(4096 + 1)));
    }
}
