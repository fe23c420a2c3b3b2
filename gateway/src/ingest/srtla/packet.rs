//! SRTLA wire format: the 0x9xxx control datagrams and the few SRT header
//! fields the receiver and the test sender look at.
//!
//! Line references ("srtla.md §N") point at `shared/notes/srtla.md`, which
//! describes the protocol from the public implementations (no code copied).
//! Everything here is pure: byte slices in, typed views or fixed arrays out.
#![deny(clippy::indexing_slicing)]

use std::fmt;

/// KEEPALIVE: echoed by the receiver (srtla.md §3).
pub const KEEPALIVE: u16 = 0x9000;
/// ACK: 10 SRT sequence numbers received on one link (srtla.md §3, §5.2).
pub const ACK: u16 = 0x9100;
pub const REG1: u16 = 0x9200;
pub const REG2: u16 = 0x9201;
pub const REG3: u16 = 0x9202;
pub const REG_ERR: u16 = 0x9210;
pub const REG_NGP: u16 = 0x9211;
pub const REG_NAK: u16 = 0x9212;

/// srtla.md §3.2: "the group id (256 bytes)".
pub const GROUP_ID_LEN: usize = 256;
/// srtla.md §3.2: the receiver keeps bytes [0..128) and fills [128..256).
pub const GROUP_ID_HALF: usize = GROUP_ID_LEN / 2;
/// srtla.md §3: REG1 and REG2 are "exactly 258" bytes.
pub const REG_LEN: usize = 2 + GROUP_ID_LEN;
/// srtla.md §5.2: "send one 44-byte ACK … listing the 10 SNs".
pub const ACK_SNS: usize = 10;
pub const ACK_LEN: usize = 4 + 4 * ACK_SNS;
/// srtla.md §3.1, extended keepalive: 38 bytes, magic 0xC01F, version 1.
pub const KEEPALIVE_EXT_LEN: usize = 38;
const KEEPALIVE_MAGIC: u16 = 0xC01F;
const KEEPALIVE_VERSION: u16 = 0x0001;
/// An SRT packet has a 16-byte header (srtla.md §2).
pub const SRT_HEADER_LEN: usize = 16;

/// SRT control types (srtla.md §2: "0x8000 handshake, 0x8001 keepalive, …").
pub mod control {
    pub const HANDSHAKE: u16 = 0;
    pub const KEEPALIVE: u16 = 1;
    pub const ACK: u16 = 2;
    pub const NAK: u16 = 3;
    pub const SHUTDOWN: u16 = 5;
    pub const ACKACK: u16 = 6;
}

/// An SRT packet sequence number: 31 bits that wrap.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeqNo(u32);

impl SeqNo {
    const MASK: u32 = 0x7FFF_FFFF;

    #[must_use]
    pub const fn new(v: u32) -> Self {
        Self(v & Self::MASK)
    }

    #[must_use]
    pub const fn value(self) -> u32 {
        self.0
    }

    /// `self - other` on the 31-bit circle, in `-2^30 ..= 2^30 - 1`.
    #[must_use]
    pub const fn diff(self, other: Self) -> i32 {
        // Sign-extend the 31-bit difference.
        let d = self.0.wrapping_sub(other.0) & Self::MASK;
        ((d << 1) as i32) >> 1
    }

    #[must_use]
    pub const fn add(self, n: u32) -> Self {
        Self::new(self.0.wrapping_add(n))
    }
}

impl fmt::Debug for SeqNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A 256-byte group id: the only credential that adds a link to a group
/// (srtla.md §3.2), so it is compared in constant time and never printed.
#[derive(Clone)]
pub struct GroupId(pub [u8; GROUP_ID_LEN]);

impl GroupId {
    /// Constant-time equality (srtla.md §3.2: "BB and IRL compare ids in
    /// constant time").
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// The sender's half, `[0..128)`.
    #[must_use]
    pub fn sender_half(&self) -> &[u8] {
        self.0.get(..GROUP_ID_HALF).unwrap_or_default()
    }
}

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupId(<secret>)")
    }
}

/// What one datagram is, in either direction (srtla.md §2 classification).
#[derive(Debug, PartialEq)]
pub enum Packet<'a> {
    /// Any length ≥ 2; the bytes are echoed verbatim.
    Keepalive(&'a [u8]),
    /// ACK; the body is a whole number of SNs (srtla.md §3: MOB rejects
    /// "ACKs unless length % 4 == 0").
    Ack(AckSns<'a>),
    Reg1(&'a [u8]),
    Reg2(&'a [u8]),
    Reg3,
    RegErr,
    RegNgp,
    RegNak,
    SrtData {
        sn: SeqNo,
        /// SRT "R" flag: the sender retransmits this packet.
        retransmitted: bool,
    },
    SrtControl {
        kind: u16,
    },
    /// Shorter than an SRT header, a mis-sized registration, or an SRTLA
    /// type that has no meaning here: dropped.
    Invalid,
}

/// The SN list of an ACK.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AckSns<'a>(&'a [u8]);

impl AckSns<'_> {
    pub fn iter(&self) -> impl Iterator<Item = SeqNo> + '_ {
        self.0
            .chunks_exact(4)
            .filter_map(|c| c.try_into().ok().map(u32::from_be_bytes))
            .map(SeqNo::new)
    }
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

fn be32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

/// Classifies a datagram (srtla.md §2 and §3).
#[must_use]
pub fn classify(d: &[u8]) -> Packet<'_> {
    let Some(kind) = be16(d, 0) else {
        return Packet::Invalid;
    };
    let body = d.get(2..).unwrap_or_default();
    match kind {
        // srtla.md §2.1: "A REG1/REG2 type with any other length is *not*
        // treated as registration"; §2 (BB would forward it): "drop it instead".
        REG1 if d.len() == REG_LEN => Packet::Reg1(body),
        REG2 if d.len() == REG_LEN => Packet::Reg2(body),
        // srtla.md §3: "KEEPALIVE … (any length ≥ 2)".
        KEEPALIVE => Packet::Keepalive(d),
        // srtla.md §3: senders "accept REG3/ERR/NGP … of length ≥ 2 with
        // trailing zero bytes" (IRL pads them to 32).
        REG3 => Packet::Reg3,
        REG_ERR => Packet::RegErr,
        REG_NGP => Packet::RegNgp,
        REG_NAK => Packet::RegNak,
        ACK if d.len() >= 4 && d.len().is_multiple_of(4) => {
            Packet::Ack(AckSns(d.get(4..).unwrap_or_default()))
        }
        // Every other value of the SRTLA range (MOB: control types
        // 0x1000..=0x1212) is no SRT packet either.
        0x9001..=0x92FF => Packet::Invalid,
        // srtla.md §2.4: "len < 16 → drop".
        _ if d.len() < SRT_HEADER_LEN => Packet::Invalid,
        _ if kind & 0x8000 == 0 => Packet::SrtData {
            sn: SeqNo::new(be32(d, 0).unwrap_or_default()),
            // SRT word 1: PP O KK R msgno; R is bit 26.
            retransmitted: be32(d, 4).unwrap_or_default() & (1 << 26) != 0,
        },
        _ => Packet::SrtControl {
            kind: kind & 0x7FFF,
        },
    }
}

/// A 258-byte REG1 or REG2.
#[must_use]
pub fn registration(kind: u16, id: &GroupId) -> [u8; REG_LEN] {
    let mut p = [0u8; REG_LEN];
    let (head, tail) = p.split_at_mut(2);
    head.copy_from_slice(&kind.to_be_bytes());
    tail.copy_from_slice(&id.0);
    p
}

/// REG3, REG_ERR, REG_NGP: the bare 2-byte type (BB's size; srtla.md §3).
#[must_use]
pub fn bare(kind: u16) -> [u8; 2] {
    kind.to_be_bytes()
}

/// A 44-byte ACK: `91 00 00 00`, then the SNs in arrival order (srtla.md §3, §5.2).
#[must_use]
pub fn ack(sns: &[SeqNo; ACK_SNS]) -> [u8; ACK_LEN] {
    let mut p = [0u8; ACK_LEN];
    let (head, tail) = p.split_at_mut(4);
    head.copy_from_slice(&[0x91, 0, 0, 0]);
    for (slot, sn) in tail.chunks_exact_mut(4).zip(sns) {
        slot.copy_from_slice(&sn.value().to_be_bytes());
    }
    p
}

/// What the extended keepalive reports about the sender's link
/// (srtla.md §3.1, "extended"; the receiver only reads it, for stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkReport {
    pub link_id: u32,
    pub window: i32,
    pub in_flight: i32,
    pub rtt_ms: u32,
    pub naks: u32,
    pub bitrate_bytes_per_s: u32,
}

/// The 38-byte extended keepalive: type, sender clock in ms, report.
#[must_use]
pub fn keepalive(sender_ms: u64, report: &LinkReport) -> [u8; KEEPALIVE_EXT_LEN] {
    let mut p = [0u8; KEEPALIVE_EXT_LEN];
    let fields: [&[u8]; 10] = [
        &KEEPALIVE.to_be_bytes(),
        &sender_ms.to_be_bytes(),
        &KEEPALIVE_MAGIC.to_be_bytes(),
        &KEEPALIVE_VERSION.to_be_bytes(),
        &report.link_id.to_be_bytes(),
        &report.window.to_be_bytes(),
        &report.in_flight.to_be_bytes(),
        &report.rtt_ms.to_be_bytes(),
        &report.naks.to_be_bytes(),
        &report.bitrate_bytes_per_s.to_be_bytes(),
    ];
    let mut at = 0;
    for f in fields {
        if let Some(slot) = p.get_mut(at..at + f.len()) {
            slot.copy_from_slice(f);
        }
        at += f.len();
    }
    p
}

/// The sender clock of a timestamped keepalive (≥ 10 bytes, srtla.md §3.1).
#[must_use]
pub fn keepalive_timestamp(d: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(d.get(2..10)?.try_into().ok()?))
}

/// The report of an extended keepalive: IRL "parses it only if len ≥ 38,
/// magic and version match" (srtla.md §3.1).
#[must_use]
pub fn keepalive_report(d: &[u8]) -> Option<LinkReport> {
    if d.len() < KEEPALIVE_EXT_LEN
        || be16(d, 10)? != KEEPALIVE_MAGIC
        || be16(d, 12)? != KEEPALIVE_VERSION
    {
        return None;
    }
    let i32_at = |at| be32(d, at).map(|v| v as i32);
    Some(LinkReport {
        link_id: be32(d, 14)?,
        window: i32_at(18)?,
        in_flight: i32_at(22)?,
        rtt_ms: be32(d, 26)?,
        naks: be32(d, 30)?,
        bitrate_bytes_per_s: be32(d, 34)?,
    })
}

/// The SRT control type of an SRT packet, if it is one.
#[must_use]
pub fn srt_control_type(d: &[u8]) -> Option<u16> {
    match classify(d) {
        Packet::SrtControl { kind } => Some(kind),
        _ => None,
    }
}

/// SRT ACK: the CIF word at offset 16 is "last acknowledged SN" (first SN
/// not yet received; srtla.md §2).
#[must_use]
pub fn srt_ack_sn(d: &[u8]) -> Option<SeqNo> {
    (srt_control_type(d)? == control::ACK).then_some(())?;
    be32(d, SRT_HEADER_LEN).map(SeqNo::new)
}

/// SRT NAK: the lost SNs as inclusive ranges. srtla.md §2: "a word with bit
/// 31 clear is one lost SN; a word with bit 31 set starts a range (low 31
/// bits) whose inclusive end is the next word". A dangling range start is
/// ignored.
pub fn srt_nak_ranges(d: &[u8]) -> impl Iterator<Item = (SeqNo, SeqNo)> + '_ {
    let words = if srt_control_type(d) == Some(control::NAK) {
        d.get(SRT_HEADER_LEN..).unwrap_or_default()
    } else {
        &[]
    };
    let mut it = words
        .chunks_exact(4)
        .filter_map(|c| c.try_into().ok().map(u32::from_be_bytes));
    std::iter::from_fn(move || {
        let w = it.next()?;
        if w & 0x8000_0000 == 0 {
            Some((SeqNo::new(w), SeqNo::new(w)))
        } else {
            let end = it.next()?;
            Some((SeqNo::new(w), SeqNo::new(end)))
        }
    })
}

/// An SRT induction handshake (handshake type 1 at offset 36 of a packet of
/// at least 64 bytes; srtla.md §5.5).
#[must_use]
pub fn is_srt_induction(d: &[u8]) -> bool {
    d.len() >= 64 && srt_control_type(d) == Some(control::HANDSHAKE) && be32(d, 36) == Some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srt_data(sn: u32, retransmitted: bool) -> Vec<u8> {
        let mut p = vec![0u8; 16 + 188];
        p[..4].copy_from_slice(&sn.to_be_bytes());
        if retransmitted {
            p[4] = 0x04;
        }
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

    #[test]
    fn registration_only_at_exactly_258_bytes() {
        let id = GroupId([7; GROUP_ID_LEN]);
        let r1 = registration(REG1, &id);
        assert_eq!(classify(&r1), Packet::Reg1(&[7; 256]));
        let r2 = registration(REG2, &id);
        assert_eq!(classify(&r2), Packet::Reg2(&[7; 256]));
        assert_eq!(classify(&r1[..257]), Packet::Invalid);
        let mut long = r2.to_vec();
        long.push(0);
        assert_eq!(classify(&long), Packet::Invalid);
    }

    #[test]
    fn keepalives_of_any_length_and_short_things() {
        for n in [2, 10, 38, 100] {
            let mut k = vec![0u8; n];
            k[..2].copy_from_slice(&[0x90, 0x00]);
            assert_eq!(classify(&k), Packet::Keepalive(&k[..]));
        }
        assert_eq!(classify(&[]), Packet::Invalid);
        assert_eq!(classify(&[0x90]), Packet::Invalid);
        assert_eq!(classify(&[0u8; 15]), Packet::Invalid);
        // Padded replies (IRL pads to 32).
        let mut ngp = [0u8; 32];
        ngp[..2].copy_from_slice(&bare(REG_NGP));
        assert_eq!(classify(&ngp), Packet::RegNgp);
        assert_eq!(classify(&bare(REG3)), Packet::Reg3);
        assert_eq!(classify(&bare(REG_ERR)), Packet::RegErr);
        assert_eq!(classify(&bare(REG_NAK)), Packet::RegNak);
        // Other SRTLA-range types are not SRT, whatever their length.
        assert_eq!(classify(&[0x91, 0x55, 0, 0, 0, 0]), Packet::Invalid);
        assert_eq!(classify(&[0x92, 0x20].repeat(20)), Packet::Invalid);
    }

    #[test]
    fn srt_data_and_control() {
        assert_eq!(
            classify(&srt_data(0x7FFF_FFFF, false)),
            Packet::SrtData {
                sn: SeqNo::new(0x7FFF_FFFF),
                retransmitted: false
            }
        );
        assert_eq!(
            classify(&srt_data(5, true)),
            Packet::SrtData {
                sn: SeqNo::new(5),
                retransmitted: true
            }
        );
        assert_eq!(
            classify(&srt_control(control::ACKACK, &[])),
            Packet::SrtControl {
                kind: control::ACKACK
            }
        );
    }

    #[test]
    fn ack_round_trip() {
        let sns: [SeqNo; 10] = std::array::from_fn(|i| SeqNo::new(0x7FFF_FFFA + i as u32));
        let p = ack(&sns);
        assert_eq!(&p[..4], &[0x91, 0, 0, 0]);
        let Packet::Ack(list) = classify(&p) else {
            panic!("not an ACK")
        };
        assert_eq!(list.iter().collect::<Vec<_>>(), sns.to_vec());
        // Not a whole number of words: MOB refuses it, so do we.
        assert_eq!(classify(&p[..43]), Packet::Invalid);
    }

    #[test]
    fn keepalive_round_trip() {
        let r = LinkReport {
            link_id: 3,
            window: 20_000,
            in_flight: -1,
            rtt_ms: 42,
            naks: 7,
            bitrate_bytes_per_s: 1_000_000,
        };
        let k = keepalive(0x0102_0304_0506_0708, &r);
        assert_eq!(classify(&k), Packet::Keepalive(&k[..]));
        assert_eq!(keepalive_timestamp(&k), Some(0x0102_0304_0506_0708));
        assert_eq!(keepalive_report(&k), Some(r));
        assert_eq!(keepalive_report(&k[..37]), None);
        assert_eq!(keepalive_timestamp(&k[..9]), None);
        let mut bad = k;
        bad[10] = 0;
        assert_eq!(keepalive_report(&bad), None);
    }

    #[test]
    fn srt_ack_and_nak_fields() {
        assert_eq!(
            srt_ack_sn(&srt_control(control::ACK, &[1234, 0])),
            Some(SeqNo::new(1234))
        );
        assert_eq!(srt_ack_sn(&srt_control(control::ACK, &[])), None);
        assert_eq!(srt_ack_sn(&srt_control(control::NAK, &[1])), None);
        let nak = srt_control(control::NAK, &[5, 0x8000_0009, 12, 20, 0x8000_0030]);
        let ranges: Vec<_> = srt_nak_ranges(&nak)
            .map(|(a, b)| (a.value(), b.value()))
            .collect();
        assert_eq!(ranges, vec![(5, 5), (9, 12), (20, 20)]);
        assert_eq!(srt_nak_ranges(&srt_data(1, false)).count(), 0);
    }

    #[test]
    fn induction_handshake() {
        let mut hs = srt_control(control::HANDSHAKE, &[4, 0, 0, 1500, 8192, 1]);
        hs.resize(64, 0);
        assert!(is_srt_induction(&hs));
        assert!(!is_srt_induction(&hs[..63]));
        hs[39] = 0xFF; // conclusion (-1)
        assert!(!is_srt_induction(&hs));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let top = SeqNo::new(0x7FFF_FFFF);
        assert_eq!(top.add(1), SeqNo::new(0));
        assert_eq!(SeqNo::new(0).diff(top), 1);
        assert_eq!(top.diff(SeqNo::new(0)), -1);
        assert_eq!(SeqNo::new(10).diff(SeqNo::new(3)), 7);
    }

    #[test]
    fn group_ids_compare_whole() {
        let a = GroupId([1; 256]);
        let mut b = a.clone();
        assert!(a.ct_eq(&b));
        b.0[255] = 2;
        assert!(!a.ct_eq(&b));
        assert_eq!(a.sender_half().len(), 128);
        assert_eq!(format!("{a:?}"), "GroupId(<secret>)");
    }
}
