//! Recovers the original MPEG-TS timestamps that `tsdemux` rewrites.
//!
//! `tsdemux` (GStreamer 1.22, push mode) outputs `PTS − first PCR of the
//! group + group offset`, so the first frame comes out near 0.7 s whatever the
//! encoder wrote, and the value depends on where the gateway joined the stream.
//! No property turns that off. Segment numbers derived from media time are only
//! deterministic (same numbers after a reconnect, or on a second origin) on the
//! encoder's own timeline, so we put it back:
//!
//! 1. [`PesTap`] reads the bytes *before* they enter the pipeline and records,
//!    per PID, each PES payload's length, a hash of it and its 33-bit PTS/DTS.
//! 2. A pad probe on `tsdemux`'s source pads hashes each output buffer (one PES
//!    payload) and looks it up; the first hit anchors a [`TimeMap`]: from then on
//!    every `tsdemux` timestamp is shifted by the same amount, so the anchored
//!    PES gets its original PTS back and the timeline continues unwrapped across
//!    the 2^33 wrap (which `tsdemux` already handles).
//!
//! The offset is program-wide in `tsdemux` (one PCR clock), so one anchor serves
//! audio and video. Once anchored the tap stops looking at data.
#![deny(clippy::indexing_slicing)]

use std::collections::{HashMap, VecDeque};

const TS_PACKET: usize = 188;
const SYNC: u8 = 0x47;
/// Completed PES fingerprints kept per PID while waiting for `tsdemux` output.
/// The *first* ones are kept: the anchor must be found on the first buffers
/// `tsdemux` outputs (before any sample is converted), and the tap may be far
/// ahead of the pipeline when input arrives in a burst.
const KEEP_PER_PID: usize = 64;
/// PIDs with PES we keep state for; garbage input must not grow memory.
const MAX_PIDS: usize = 32;
const NS_PER_SEC: i128 = 1_000_000_000;
const TICKS_PER_SEC: i128 = 90_000;

/// What the tap remembers of one complete PES.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct PesPrint {
    /// Payload bytes after the PES header.
    pub(crate) len: usize,
    pub(crate) hash: u64,
    /// Raw 33-bit PTS, 90 kHz.
    pub(crate) pts: u64,
}

/// FNV-1a, 64 bit: streaming, so payload split over TS packets hashes the
/// same as the reassembled buffer `tsdemux` outputs.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// The PES being reassembled on one PID.
#[derive(Debug)]
struct OpenPes {
    pts: u64,
    /// Payload length announced by `PES_packet_length`, if non-zero.
    expected: Option<usize>,
    len: usize,
    hash: Fnv,
}

#[derive(Debug, Default)]
struct PidState {
    open: Option<OpenPes>,
    last_cc: Option<u8>,
    done: VecDeque<PesPrint>,
}

impl PidState {
    fn close(&mut self) {
        if let Some(p) = self.open.take()
            && self.done.len() < KEEP_PER_PID
        {
            self.done.push_back(PesPrint {
                len: p.len,
                hash: p.hash.finish(),
                pts: p.pts,
            });
        }
    }
}

/// Watches an MPEG-TS byte stream for PES headers; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct PesTap {
    /// Bytes of an incomplete TS packet from the previous push.
    carry: Vec<u8>,
    pids: HashMap<u16, PidState>,
}

impl PesTap {
    /// Feeds bytes in stream order; any chunking, any garbage.
    pub(crate) fn push(&mut self, data: &[u8]) {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(data);
        let mut pos = 0;
        while let Some(rest) = buf.get(pos..) {
            if rest.len() < TS_PACKET {
                break;
            }
            if rest.first() != Some(&SYNC) {
                // Lost sync: skip to the next sync byte.
                pos += rest.iter().position(|&b| b == SYNC).unwrap_or(rest.len());
                continue;
            }
            if let Some(packet) = rest.get(..TS_PACKET) {
                self.packet(packet);
            }
            pos += TS_PACKET;
        }
        buf.drain(..pos.min(buf.len()));
        self.carry = buf;
    }

    /// End of stream: what is open is complete (`tsdemux` drains it too).
    pub(crate) fn finish(&mut self) {
        for s in self.pids.values_mut() {
            s.close();
        }
    }

    /// Finds the PES `tsdemux` just output on `pid`; forgets it and everything
    /// older on that PID (`tsdemux` outputs each PID in order).
    pub(crate) fn take_match(&mut self, pid: u16, len: usize, hash: u64) -> Option<PesPrint> {
        let s = self.pids.get_mut(&pid)?;
        let i = s.done.iter().position(|p| p.len == len && p.hash == hash)?;
        let found = s.done.get(i).copied();
        s.done.drain(..=i);
        found
    }

    /// Drops all state, e.g. once the timeline is anchored.
    pub(crate) fn clear(&mut self) {
        self.carry = Vec::new();
        self.pids = HashMap::new();
    }

    fn packet(&mut self, p: &[u8]) {
        let (Some(&b1), Some(&b2), Some(&b3)) = (p.get(1), p.get(2), p.get(3)) else {
            return;
        };
        if b1 & 0x80 != 0 {
            // transport_error_indicator: the demodulator says this is damaged.
            return;
        }
        let pusi = b1 & 0x40 != 0;
        let pid = (u16::from(b1 & 0x1f) << 8) | u16::from(b2);
        let afc = (b3 >> 4) & 0x3;
        let cc = b3 & 0x0f;
        if pid == 0x1fff || afc & 0x1 == 0 {
            return; // null packet, or no payload
        }
        let payload_start = if afc & 0x2 != 0 {
            match p.get(4) {
                Some(&n) => 5 + usize::from(n),
                None => return,
            }
        } else {
            4
        };
        let Some(payload) = p.get(payload_start..) else {
            return;
        };
        if !self.pids.contains_key(&pid) {
            // Only PIDs carrying PES headers are worth tracking.
            if !(pusi && payload.starts_with(&[0, 0, 1])) || self.pids.len() >= MAX_PIDS {
                return;
            }
        }
        let s = self.pids.entry(pid).or_default();

        // ISO/IEC 13818-1 §2.4.3.3: continuity_counter increments per packet
        // with payload; a repeat is a duplicate packet, a gap loses data.
        match s.last_cc {
            Some(last) if last == cc => return,
            Some(last) if (last + 1) & 0x0f != cc => s.open = None,
            _ => {}
        }
        s.last_cc = Some(cc);

        if pusi {
            s.close();
            s.open = parse_pes_header(payload);
        } else if let Some(open) = s.open.as_mut() {
            open.append(payload);
        }
        if let Some(open) = &s.open
            && open.expected.is_some_and(|e| open.len >= e)
        {
            s.close();
        }
    }
}

impl OpenPes {
    fn append(&mut self, data: &[u8]) {
        let take = match self.expected {
            Some(e) => data.len().min(e.saturating_sub(self.len)),
            None => data.len(),
        };
        if let Some(d) = data.get(..take) {
            self.hash.update(d);
            self.len += take;
        }
    }
}

/// Parses a PES header at the start of a payload (ISO/IEC 13818-1 §2.4.3.6).
/// `None` when there is no PTS or the header does not fit in this packet.
fn parse_pes_header(p: &[u8]) -> Option<OpenPes> {
    if !p.starts_with(&[0, 0, 1]) {
        return None;
    }
    let stream_id = *p.get(3)?;
    // Streams without the optional PES header (program_stream_map, padding,
    // private_stream_2, ECM, EMM, DSMCC, H.222.1 type E, directory).
    if matches!(stream_id, 0xbc | 0xbe | 0xbf | 0xf0 | 0xf1 | 0xf2 | 0xf8 | 0xff) {
        return None;
    }
    let pes_len = usize::from(u16::from_be_bytes([*p.get(4)?, *p.get(5)?]));
    if p.get(6)? & 0xc0 != 0x80 {
        return None;
    }
    let pts_dts_flags = p.get(7)? >> 6;
    let header_len = usize::from(*p.get(8)?);
    if pts_dts_flags & 0x2 == 0 {
        return None;
    }
    let pts = parse_timestamp(p.get(9..14)?)?;
    let body_start = 9 + header_len;
    let body = p.get(body_start..)?;
    let expected = if pes_len == 0 {
        None
    } else {
        // PES_packet_length counts the bytes after itself: 3 header bytes,
        // the optional fields, then the payload.
        Some(pes_len.checked_sub(3 + header_len)?)
    };
    let mut open = OpenPes {
        pts,
        expected,
        len: 0,
        hash: Fnv::new(),
    };
    open.append(body);
    Some(open)
}

/// A 33-bit PTS or DTS in its 5-byte marker-bit layout.
fn parse_timestamp(b: &[u8]) -> Option<u64> {
    let [b0, b1, b2, b3, b4] = *b else {
        return None;
    };
    Some(
        (u64::from((b0 >> 1) & 0x07) << 30)
            | (u64::from(b1) << 22)
            | (u64::from(b2 >> 1) << 15)
            | (u64::from(b3) << 7)
            | u64::from(b4 >> 1),
    )
}

/// Maps `tsdemux` timestamps (ns) back onto the encoder's 90 kHz timeline.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum TimeMap {
    /// Nothing matched yet.
    #[default]
    Unanchored,
    /// Original time = `tsdemux` time + `offset_ns`.
    Anchored { offset_ns: i128 },
    /// A sample had to be converted before any anchor: stay on the `tsdemux`
    /// timeline rather than jump later.
    Unmapped,
}

impl TimeMap {
    /// Anchors on the first matched PES: `out_ns` is `tsdemux`'s PTS for it,
    /// `raw_pts` the 33-bit PTS in its header. Returns whether it anchored.
    pub(crate) fn anchor(&mut self, out_ns: u64, raw_pts: u64) -> bool {
        if *self != Self::Unanchored {
            return false;
        }
        // floor(ticks · 10^9 / 90 000), as GStreamer converts.
        let raw_ns = (i128::from(raw_pts) * NS_PER_SEC).div_euclid(TICKS_PER_SEC);
        *self = Self::Anchored {
            offset_ns: raw_ns - i128::from(out_ns),
        };
        true
    }

    /// Whether samples can still be anchored.
    pub(crate) fn is_pending(self) -> bool {
        self == Self::Unanchored
    }

    /// Converts a `tsdemux`-timeline time to 90 kHz ticks, rounding to the
    /// nearest tick (GStreamer truncates, so plain truncation would lose one).
    /// The first conversion before any anchor freezes the map unanchored.
    pub(crate) fn to_ticks(&mut self, ns: u64) -> i64 {
        let offset = match *self {
            Self::Anchored { offset_ns } => offset_ns,
            Self::Unanchored => {
                *self = Self::Unmapped;
                0
            }
            Self::Unmapped => 0,
        };
        ns_to_ticks(i128::from(ns) + offset)
    }
}

/// Nanoseconds to 90 kHz ticks, rounded to nearest, saturating.
pub(crate) fn ns_to_ticks(ns: i128) -> i64 {
    let t = (ns * TICKS_PER_SEC + NS_PER_SEC / 2).div_euclid(NS_PER_SEC);
    i64::try_from(t).unwrap_or(if t < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts_bytes(pts: u64) -> [u8; 5] {
        [
            0x21 | (((pts >> 30) & 0x07) as u8) << 1,
            (pts >> 22) as u8,
            (((pts >> 15) & 0x7f) as u8) << 1 | 1,
            (pts >> 7) as u8,
            ((pts & 0x7f) as u8) << 1 | 1,
        ]
    }

    /// Packetises one PES (PES_packet_length 0, video-style) on `pid`,
    /// stuffing the last packet with an adaptation field.
    fn pes_packets(pid: u16, cc: &mut u8, pts: u64, payload: &[u8]) -> Vec<u8> {
        let mut pes = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5];
        pes.extend_from_slice(&ts_bytes(pts));
        pes.extend_from_slice(payload);
        let mut out = Vec::new();
        let mut first = true;
        for chunk in pes.chunks(184) {
            let mut pkt = vec![SYNC, (pid >> 8) as u8 & 0x1f, pid as u8, 0x10 | *cc];
            if first {
                pkt[1] |= 0x40;
            }
            first = false;
            *cc = (*cc + 1) & 0x0f;
            if chunk.len() < 184 {
                pkt[3] |= 0x20;
                let af_len = 183 - chunk.len();
                pkt.push(af_len as u8);
                if af_len > 0 {
                    pkt.push(0);
                    pkt.extend(std::iter::repeat_n(0xff, af_len - 1));
                }
            }
            pkt.extend_from_slice(chunk);
            assert_eq!(pkt.len(), TS_PACKET);
            out.extend(pkt);
        }
        out
    }

    fn hash(data: &[u8]) -> u64 {
        let mut h = Fnv::new();
        h.update(data);
        h.finish()
    }

    #[test]
    fn parses_timestamps() {
        for pts in [0, 1, 126_000, (1 << 33) - 1, 0x1_2345_6789] {
            assert_eq!(parse_timestamp(&ts_bytes(pts)), Some(pts));
        }
    }

    #[test]
    fn matches_pes_at_every_split_point() {
        let payload_a: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let payload_b: Vec<u8> = (0..300u32).map(|i| (i * 13) as u8).collect();
        let mut cc = 0;
        let mut stream = pes_packets(0x100, &mut cc, 8_589_000_000, &payload_a);
        stream.extend(pes_packets(0x100, &mut cc, 8_589_003_000, &payload_b));
        stream.extend(pes_packets(0x100, &mut cc, 2_000, &payload_b));
        for split in [1, 100, 187, 188, 189, 1316, stream.len() - 1] {
            let mut tap = PesTap::default();
            // Leading garbage must not disturb sync.
            tap.push(&[1, 2, 3, SYNC, 9]);
            let (a, b) = stream.split_at(split);
            tap.push(a);
            tap.push(b);
            // The last PES is open until the next PUSI or the end.
            assert_eq!(
                tap.take_match(0x100, payload_a.len(), hash(&payload_a)),
                Some(PesPrint {
                    len: 1000,
                    hash: hash(&payload_a),
                    pts: 8_589_000_000
                }),
                "split {split}"
            );
            let m = tap.take_match(0x100, payload_b.len(), hash(&payload_b));
            assert_eq!(m.map(|p| p.pts), Some(8_589_003_000), "split {split}");
            assert_eq!(tap.take_match(0x100, payload_b.len(), hash(&payload_b)), None);
            tap.finish();
            let m = tap.take_match(0x100, payload_b.len(), hash(&payload_b));
            assert_eq!(m.map(|p| p.pts), Some(2_000), "split {split}");
        }
    }

    #[test]
    fn continuity_gap_drops_the_open_pes() {
        let payload: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        let mut cc = 0;
        let mut stream = pes_packets(0x101, &mut cc, 1000, &payload);
        // Lose the second packet.
        stream.drain(TS_PACKET..2 * TS_PACKET);
        stream.extend(pes_packets(0x101, &mut cc, 4000, &payload));
        let mut tap = PesTap::default();
        tap.push(&stream);
        tap.finish();
        let m = tap.take_match(0x101, payload.len(), hash(&payload));
        assert_eq!(m.map(|p| p.pts), Some(4000));
    }

    #[test]
    fn garbage_is_harmless() {
        let mut tap = PesTap::default();
        let mut x: u32 = 12345;
        let garbage: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        tap.push(&garbage);
        tap.finish();
        assert!(tap.pids.len() <= MAX_PIDS);
    }

    #[test]
    fn time_map_restores_original_pts_across_wrap() {
        // tsdemux says 0.7 s for a PES whose header said PTS 2^33 − 90 000.
        let raw = (1u64 << 33) - 90_000;
        let mut map = TimeMap::default();
        assert!(map.anchor(700_000_000, raw));
        assert!(!map.anchor(1, 2));
        let raw_i = i64::try_from(raw).unwrap();
        assert_eq!(map.to_ticks(700_000_000), raw_i);
        // 1/30 s later, truncated to ns as GStreamer does.
        assert_eq!(map.to_ticks(733_333_333), raw_i + 3000);
        // Two seconds later the 33-bit value has wrapped (the header says
        // 90 000); the timeline keeps counting.
        assert_eq!(map.to_ticks(2_700_000_000), raw_i + 180_000);
        assert_eq!((raw_i + 180_000) % (1 << 33), 90_000);
    }

    #[test]
    fn time_map_freezes_when_used_before_anchoring() {
        let mut map = TimeMap::default();
        assert_eq!(map.to_ticks(1_000_000_000), 90_000);
        assert!(!map.is_pending());
        assert!(!map.anchor(1_000_000_000, 5));
        assert_eq!(map.to_ticks(1_000_011_111), 90_001);
    }
}
