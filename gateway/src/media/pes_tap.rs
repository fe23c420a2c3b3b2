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
//!    per PID, each PES payload's length, a hash of its first bytes and its
//!    33-bit PTS.
//! 2. A pad probe on `tsdemux`'s source pads hashes each output buffer (one PES
//!    payload) and looks it up; the first hit anchors that track's
//!    [`Timeline`] offset, so the PES gets its original PTS back, and later
//!    `tsdemux` times continue from there, unwrapped across the 2^33 wrap
//!    (which `tsdemux` already handles). Later hits correct a tick of rounding
//!    (`tsdemux` adds one tick too many at the wrap) but do not follow jumps
//!    in the source timeline: `tsdemux` smooths those over, and so do we.
//!
//! Everything here is per PID and cheap: the PES header fields and one FNV
//! pass over the first 4 KiB of each payload.
#![deny(clippy::indexing_slicing)]

use std::collections::{HashMap, VecDeque};

use packager::sample::TrackKind;

const TS_PACKET: usize = 188;
const SYNC: u8 = 0x47;
/// Completed PES fingerprints kept per PID while waiting for `tsdemux` output.
/// When full, new ones are skipped rather than old ones dropped: the anchor
/// must be found on the first buffers `tsdemux` outputs (before any sample is
/// converted), even when a burst puts the tap far ahead of the pipeline.
/// Matches drain the queue, so later PES are recorded again.
const KEEP_PER_PID: usize = 64;
/// PIDs with PES we keep state for; garbage input must not grow memory.
const MAX_PIDS: usize = 32;
const NS_PER_SEC: i128 = 1_000_000_000;
/// PTS and DTS are 33-bit counters.
const PTS_MODULUS: i128 = 1 << 33;
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

/// Payload bytes hashed per PES: with the length, plenty to tell PES apart,
/// and the cost per PES stays bounded at any bit rate.
const HASH_PREFIX: usize = 4096;

/// The fingerprint of a reassembled PES payload, as `tsdemux` outputs it.
pub(crate) fn fingerprint(payload: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.update(payload.get(..HASH_PREFIX).unwrap_or(payload));
    h.finish()
}

/// FNV-1a, 64 bit: streaming, so payload split over TS packets hashes the
/// same as the reassembled buffer.
#[derive(Copy, Clone, Debug)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(self) -> u64 {
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
    /// Packet boundaries are known: two sync bytes 188 apart were seen.
    in_sync: bool,
    pids: HashMap<u16, PidState>,
}

impl PesTap {
    /// Feeds bytes in stream order; any chunking, any garbage.
    pub(crate) fn push(&mut self, data: &[u8]) {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(data);
        let mut pos = 0;
        while let Some(rest) = buf.get(pos..) {
            let Some(packet) = rest.get(..TS_PACKET) else {
                break;
            };
            let at_sync = rest.first() == Some(&SYNC);
            if self.in_sync && at_sync {
                self.packet(packet);
                pos += TS_PACKET;
                continue;
            }
            // (Re)gain sync: a sync byte confirmed by the next packet's.
            self.in_sync = false;
            if !at_sync {
                pos += rest.iter().position(|&b| b == SYNC).unwrap_or(rest.len());
                continue;
            }
            match rest.get(TS_PACKET) {
                None => break, // wait for the next packet to confirm
                Some(&SYNC) => self.in_sync = true,
                Some(_) => pos += 1,
            }
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
        let hashed = take.min(HASH_PREFIX.saturating_sub(self.len));
        if let Some(d) = data.get(..hashed) {
            self.hash.update(d);
        }
        self.len += take;
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
    if matches!(
        stream_id,
        0xbc | 0xbe | 0xbf | 0xf0 | 0xf1 | 0xf2 | 0xf8 | 0xff
    ) {
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

/// How one track's `tsdemux` times relate to its original timestamps.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
enum TrackMap {
    #[default]
    Unanchored,
    /// Original time = `tsdemux` time + `offset_ns`, except for a source
    /// timestamp jump of `jump` ticks that we do not follow.
    Anchored { offset_ns: i128, jump: i64 },
}

/// What one observation of a matched PES did to the [`Timeline`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Observed {
    /// First match on this track: its offset is now known.
    Anchored,
    /// The mapping already gave this PES its original PTS.
    Same,
    /// Off by this many ticks and corrected. `tsdemux` adds the PCR modulus
    /// (2^33 + 298/300 ticks) at a PTS wrap, one tick too many.
    Corrected(i64),
    /// The source timeline jumped by this many ticks; not followed, as
    /// `tsdemux` smooths it over and so do we. Reported once per jump.
    Jumped(i64),
    /// A sample was converted before any anchor; the map is frozen.
    Unmapped,
}

/// Larger differences are source discontinuities, not rounding.
const MAX_CORRECTION_TICKS: i64 = 2;

/// Maps `tsdemux` timestamps (ns) back onto the encoder's 90 kHz timeline,
/// per track (audio and video cross the 2^33 wrap at different moments).
#[derive(Clone, Debug, Default)]
pub(crate) struct Timeline {
    video: TrackMap,
    audio: TrackMap,
    /// A sample had to be converted before any track was anchored: every
    /// track stays on `tsdemux`'s own timeline rather than jump later.
    unmapped: bool,
}

impl Timeline {
    fn track(&mut self, kind: TrackKind) -> (&mut TrackMap, TrackMap) {
        match kind {
            TrackKind::Video => (&mut self.video, self.audio),
            TrackKind::Audio => (&mut self.audio, self.video),
        }
    }

    /// A matched PES: `out_ns` is `tsdemux`'s PTS for it, `raw_pts` the 33-bit
    /// PTS in its header.
    pub(crate) fn observe(&mut self, kind: TrackKind, out_ns: u64, raw_pts: u64) -> Observed {
        if self.unmapped {
            return Observed::Unmapped;
        }
        let out = i128::from(out_ns);
        let (map, _) = self.track(kind);
        let TrackMap::Anchored { offset_ns, jump } = *map else {
            *map = TrackMap::Anchored {
                offset_ns: ticks_to_ns(i128::from(raw_pts)) - out,
                jump: 0,
            };
            return Observed::Anchored;
        };
        let mapped = ns_to_ticks(out + offset_ns);
        let diff = pts_distance(i128::from(raw_pts) - i128::from(mapped));
        let error = pts_distance(i128::from(diff) - i128::from(jump));
        if error == 0 {
            Observed::Same
        } else if error.abs() <= MAX_CORRECTION_TICKS {
            *map = TrackMap::Anchored {
                offset_ns: ticks_to_ns(i128::from(mapped) + i128::from(error)) - out,
                jump,
            };
            Observed::Corrected(error)
        } else {
            *map = TrackMap::Anchored {
                offset_ns,
                jump: diff,
            };
            Observed::Jumped(error)
        }
    }

    /// Converts a `tsdemux` time to 90 kHz ticks on the original timeline.
    /// A track not yet anchored borrows the other track's offset; with no
    /// anchor at all the whole timeline is frozen on `tsdemux`'s values.
    pub(crate) fn ticks(&mut self, kind: TrackKind, ns: u64) -> i64 {
        let ns = i128::from(ns);
        if self.unmapped {
            return ns_to_ticks(ns);
        }
        let (map, other) = self.track(kind);
        if *map == TrackMap::Unanchored {
            *map = other;
        }
        match *map {
            TrackMap::Anchored { offset_ns, .. } => ns_to_ticks(ns + offset_ns),
            TrackMap::Unanchored => {
                self.unmapped = true;
                ns_to_ticks(ns)
            }
        }
    }

    /// Whether conversion uses `tsdemux`'s own timestamps (nothing matched).
    pub(crate) fn is_unmapped(&self) -> bool {
        self.unmapped
    }
}

/// A difference of 33-bit timestamps, as the shortest way round: (−2^32, 2^32].
fn pts_distance(d: i128) -> i64 {
    let d = d.rem_euclid(PTS_MODULUS);
    let d = if d > PTS_MODULUS / 2 {
        d - PTS_MODULUS
    } else {
        d
    };
    i64::try_from(d).unwrap_or(0)
}

/// 90 kHz ticks to ns, truncating as GStreamer does (`gst_util_uint64_scale`).
fn ticks_to_ns(ticks: i128) -> i128 {
    (ticks * NS_PER_SEC).div_euclid(TICKS_PER_SEC)
}

/// Nanoseconds to 90 kHz ticks, rounded to nearest, saturating.
fn ns_to_ticks(ns: i128) -> i64 {
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
        fingerprint(data)
    }

    #[test]
    fn parses_timestamps() {
        for pts in [0, 1, 126_000, (1 << 33) - 1, 0x1_2345_6789] {
            assert_eq!(parse_timestamp(&ts_bytes(pts)), Some(pts));
        }
    }

    #[test]
    fn matches_pes_at_every_split_point() {
        // Longer than the hashed prefix, to check the split there too.
        let payload_a: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 256) as u8).collect();
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
                    len: 5000,
                    hash: hash(&payload_a),
                    pts: 8_589_000_000
                }),
                "split {split}"
            );
            let m = tap.take_match(0x100, payload_b.len(), hash(&payload_b));
            assert_eq!(m.map(|p| p.pts), Some(8_589_003_000), "split {split}");
            assert_eq!(
                tap.take_match(0x100, payload_b.len(), hash(&payload_b)),
                None
            );
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
    fn timeline_restores_original_pts_across_wrap() {
        // tsdemux says 0.7 s for a PES whose header said PTS 2^33 − 6000.
        let raw = (1u64 << 33) - 6000;
        let raw_i = i64::try_from(raw).unwrap();
        let mut tl = Timeline::default();
        assert_eq!(
            tl.observe(TrackKind::Video, 700_000_000, raw),
            Observed::Anchored
        );
        assert_eq!(tl.ticks(TrackKind::Video, 700_000_000), raw_i);
        // 1/30 s later, truncated to ns as GStreamer does.
        assert_eq!(
            tl.observe(TrackKind::Video, 733_333_333, raw + 3000),
            Observed::Same
        );
        assert_eq!(tl.ticks(TrackKind::Video, 733_333_333), raw_i + 3000);
        // After the wrap tsdemux adds the PCR modulus: 11 037 ns too much.
        let out = 766_666_666 + 11_037;
        assert_eq!(tl.ticks(TrackKind::Video, out), raw_i + 6001);
        assert_eq!(
            tl.observe(TrackKind::Video, out, 0),
            Observed::Corrected(-1)
        );
        assert_eq!(tl.ticks(TrackKind::Video, out), 1 << 33);
        assert_eq!(
            tl.ticks(TrackKind::Video, out + 1_000_000_000),
            (1 << 33) + 90_000
        );
        // A jump in the source is not followed, and reported once.
        let later = out + 100_000_000;
        assert_eq!(
            tl.observe(TrackKind::Video, later, 5_000_000),
            Observed::Jumped(5_000_000 - 9000)
        );
        assert_eq!(tl.ticks(TrackKind::Video, later), (1 << 33) + 9000);
        let later = later + 33_333_333;
        assert_eq!(
            tl.observe(TrackKind::Video, later, 5_003_000),
            Observed::Same
        );
        // Rounding is still corrected relative to the jump.
        assert_eq!(
            tl.observe(TrackKind::Video, later, 5_003_001),
            Observed::Corrected(1)
        );
        assert_eq!(tl.ticks(TrackKind::Video, later), (1 << 33) + 12_001);
    }

    #[test]
    fn unanchored_track_borrows_the_other_offset() {
        let mut tl = Timeline::default();
        tl.observe(TrackKind::Video, 1_000_000_000, 900_000);
        // Audio never matched: it uses the video offset (+9 s).
        assert_eq!(tl.ticks(TrackKind::Audio, 2_000_000_000), 990_000);
        assert!(!tl.is_unmapped());
    }

    #[test]
    fn timeline_freezes_when_used_before_anchoring() {
        let mut tl = Timeline::default();
        assert_eq!(tl.ticks(TrackKind::Audio, 1_000_000_000), 90_000);
        assert!(tl.is_unmapped());
        assert_eq!(
            tl.observe(TrackKind::Video, 1_000_000_000, 5),
            Observed::Unmapped
        );
        assert_eq!(tl.ticks(TrackKind::Video, 1_000_011_111), 90_001);
    }
}
