//! The SRTLA receiver core (`gateway::ingest::srtla::receiver`) fed an
//! arbitrary sequence of datagrams from up to 16 link addresses, datagrams
//! from the SRT side, socket errors and clock steps. Asserted as outputs come
//! out:
//! - no panic, and state stays within the configured limits (groups, links
//!   per group, the link index never larger than the groups' links);
//! - nothing larger than a 1500-byte datagram is ever sent, either way;
//! - a datagram to the SRT side is byte-identical to one a link sent;
//! - an address that never registered gets no reply but REG_ERR/REG_NGP/REG2
//!   (registration answers) — never an echo, ACK or SRT packet;
//! - the output queue is empty after draining (nothing accumulates).
//!
//! To reach registered states the harness can echo the last REG2 it saw back
//! from any address (`Reg2Echo`), as a sender would.
#![no_main]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use gateway::ingest::srtla::receiver::{GroupKey, Receiver, ReceiverConfig, Transmit};
use libfuzzer_sys::fuzz_target;

const MAX_GROUPS: usize = 4;
const MAX_LINKS: usize = 3;

#[derive(Arbitrary, Debug)]
enum Op {
    Link { from: u8, data: Vec<u8> },
    /// A well-formed REG1 from `from`.
    Reg1 { from: u8, fill: u8 },
    /// The most recent REG2 reply, sent back from `from`.
    Reg2Echo { from: u8 },
    /// An SRT data packet with this SN from `from`.
    Data { from: u8, sn: u32, retransmit: bool },
    Srt { group: u8, data: Vec<u8> },
    SrtError { group: u8 },
    Advance { ms: u16 },
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 1000 + u16::from(i % 16)))
}

fuzz_target!(|ops: Vec<Op>| {
    let mut counter = 0u64;
    let mut rx = Receiver::new(
        ReceiverConfig {
            max_groups: MAX_GROUPS,
            max_links_per_group: MAX_LINKS,
            registration_timeout: Duration::from_secs(10),
            link_timeout: Duration::from_secs(10),
            reorder_hold: Duration::from_millis(200),
        },
        move |buf: &mut [u8]| {
            counter += 1;
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (counter >> (8 * (i % 8))) as u8;
            }
            true
        },
    );
    let mut now = Instant::now();
    let mut last_reg2: Option<Vec<u8>> = None;
    let mut groups: Vec<GroupKey> = Vec::new();
    // Addresses that have sent a REG2 (so may be links).
    let mut registered: HashSet<SocketAddr> = HashSet::new();
    let mut sent_by_links: HashSet<Vec<u8>> = HashSet::new();
    for op in ops {
        match op {
            Op::Link { from, data } => {
                if data.len() == 258 && data[..2] == [0x92, 0x01] {
                    registered.insert(addr(from));
                }
                sent_by_links.insert(data.clone());
                rx.handle_link_datagram(now, addr(from), &data);
            }
            Op::Reg1 { from, fill } => {
                let mut d = vec![fill; 258];
                d[..2].copy_from_slice(&[0x92, 0x00]);
                rx.handle_link_datagram(now, addr(from), &d);
            }
            Op::Reg2Echo { from } => {
                if let Some(d) = &last_reg2 {
                    registered.insert(addr(from));
                    rx.handle_link_datagram(now, addr(from), d);
                }
            }
            Op::Data { from, sn, retransmit } => {
                let mut d = vec![0u8; 16 + 188];
                d[..4].copy_from_slice(&(sn & 0x7FFF_FFFF).to_be_bytes());
                if retransmit {
                    d[4] = 0x04;
                }
                sent_by_links.insert(d.clone());
                rx.handle_link_datagram(now, addr(from), &d);
            }
            Op::Srt { group, data } => {
                if let Some(&g) = groups.get(usize::from(group) % groups.len().max(1)) {
                    rx.handle_srt_datagram(g, &data);
                }
            }
            Op::SrtError { group } => {
                if let Some(&g) = groups.get(usize::from(group) % groups.len().max(1)) {
                    rx.handle_srt_error(g);
                }
            }
            Op::Advance { ms } => {
                now += Duration::from_millis(u64::from(ms));
                rx.handle_timeout(now);
            }
        }
        while let Some(t) = rx.poll_transmit() {
            match t {
                Transmit::Link { to, payload } => {
                    assert!(payload.len() <= 1500);
                    let registration_answer = payload.len() == 258
                        || (payload.len() == 2
                            && (payload[..] == [0x92, 0x10] || payload[..] == [0x92, 0x11]));
                    assert!(
                        registered.contains(&to) || registration_answer,
                        "{to} never registered but got {payload:02x?}"
                    );
                    if payload.len() == 258 {
                        let mut echo = payload.to_vec();
                        echo[1] = 0x01;
                        last_reg2 = Some(echo);
                    }
                }
                Transmit::Srt { group, payload } => {
                    assert!(sent_by_links.contains(&payload[..]), "forwarded bytes nobody sent");
                    if !groups.contains(&group) {
                        groups.push(group);
                    }
                }
                Transmit::CloseSrt { .. } => {}
            }
        }
        while rx.poll_event().is_some() {}
        let (g, l) = rx.size();
        assert!(g <= MAX_GROUPS && l <= g * MAX_LINKS, "{g} groups, {l} links");
        // The link-side set of "sent" datagrams is only for the assertion;
        // keep it from growing without bound on long inputs.
        if sent_by_links.len() > 10_000 {
            sent_by_links.clear();
        }
    }
});
