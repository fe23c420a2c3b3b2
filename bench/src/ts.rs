//! Just enough MPEG-TS reading to play publisher: find the H.264 PID from the
//! PAT/PMT, the start (payload_unit_start_indicator) and decode time of every
//! video PES, and cut the stream into SRT datagrams of at most seven packets.
//!
//! Video PES from ffmpeg (and most encoders) have `PES_packet_length` 0, so a
//! frame's end is only visible as the start of the next video PES: frame `k`'s
//! last packet is the last video packet before frame `k + 1`'s first one.

use anyhow::{Context, bail, ensure};
use bytes::Bytes;

pub const TS_PACKET: usize = 188;
/// SRT's customary payload: seven TS packets (1316 bytes).
pub const PACKETS_PER_DATAGRAM: usize = 7;
const SYNC: u8 = 0x47;
/// MPEG-TS timestamps tick at 90 kHz.
pub const TICKS_PER_SEC: i64 = 90_000;
/// ISO/IEC 13818-1 Table 2-34: AVC video stream.
const STREAM_TYPE_H264: u8 = 0x1b;
const PTS_WRAP: i64 = 1 << 33;

/// How TS packets are grouped into datagrams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Packing {
    /// A datagram never spans two frames' packet groups: the last datagram of a
    /// frame may be short. This is what ffmpeg's SRT output does
    /// (`flush_packets`: each muxed packet is flushed), and what a live encoder
    /// that sends a frame as soon as it is encoded does.
    Aligned,
    /// Always seven packets; a datagram is sent once full, so a frame's tail
    /// waits for the next frame's head (GStreamer `mpegtsmux alignment=7`).
    Fill,
}

impl Packing {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Aligned => "aligned",
            Self::Fill => "fill",
        }
    }
}

/// One video access unit of the source, as the publisher sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Decode time, 90 kHz, unwrapped across the 2^33 wrap.
    pub dts: i64,
    /// The datagram that carries this frame's first video packet (the PES start).
    pub first_datagram: usize,
    /// The datagram that carries this frame's last video packet.
    pub last_datagram: usize,
}

#[derive(Clone, Debug)]
pub struct Datagram {
    pub data: Bytes,
    /// The frame at whose time this datagram is sent (the frame group of its
    /// last packet).
    pub send_frame: usize,
}

/// A source stream cut for sending.
#[derive(Clone, Debug)]
pub struct Source {
    pub video_pid: u16,
    pub frames: Vec<Frame>,
    pub datagrams: Vec<Datagram>,
}

impl Source {
    /// Frame index by decode time modulo 2^33 (as a part's `tfdt` may be
    /// unwrapped differently).
    #[must_use]
    pub fn frame_at(&self, dts: i64) -> Option<usize> {
        let want = dts.rem_euclid(PTS_WRAP);
        let first = self.frames.first()?.dts;
        // Frames are evenly spaced in the sources we generate; fall back to a
        // search when they are not.
        let guess = self
            .frames
            .get(1)
            .map(|f| f.dts - first)
            .filter(|d| *d > 0)
            .and_then(|d| usize::try_from((want - first.rem_euclid(PTS_WRAP)).div_euclid(d)).ok());
        if let Some(i) = guess
            && self
                .frames
                .get(i)
                .is_some_and(|f| f.dts.rem_euclid(PTS_WRAP) == want)
        {
            return Some(i);
        }
        self.frames
            .iter()
            .position(|f| f.dts.rem_euclid(PTS_WRAP) == want)
    }
}

/// What one TS packet says, as far as we care.
struct Packet<'a> {
    pid: u16,
    pusi: bool,
    payload: &'a [u8],
}

fn packet(p: &[u8]) -> anyhow::Result<Packet<'_>> {
    ensure!(
        p.len() == TS_PACKET && p.first() == Some(&SYNC),
        "lost TS sync"
    );
    let (b1, b2, b3) = (p[1], p[2], p[3]);
    let pid = (u16::from(b1 & 0x1f) << 8) | u16::from(b2);
    let afc = (b3 >> 4) & 0x3;
    let start = if afc & 0x2 != 0 {
        5 + usize::from(p[4])
    } else {
        4
    };
    let payload = if afc & 0x1 != 0 {
        p.get(start..).unwrap_or(&[])
    } else {
        &[]
    };
    Ok(Packet {
        pid,
        pusi: b1 & 0x40 != 0,
        payload,
    })
}

/// The section in a PSI packet that starts one (pointer_field skipped).
fn section<'a>(pkt: &Packet<'a>) -> Option<&'a [u8]> {
    if !pkt.pusi {
        return None;
    }
    let pointer = usize::from(*pkt.payload.first()?);
    let s = pkt.payload.get(1 + pointer..)?;
    let len = usize::from(u16::from_be_bytes([*s.get(1)?, *s.get(2)?]) & 0x0fff);
    // Without the trailing CRC_32.
    s.get(3..(3 + len).checked_sub(4)?)
}

/// PAT (ISO/IEC 13818-1 §2.4.4.3): the first program's PMT PID.
fn pmt_pid(sec: &[u8]) -> Option<u16> {
    sec.get(5..)?.chunks_exact(4).find_map(|e| {
        let program = u16::from_be_bytes([e[0], e[1]]);
        (program != 0).then(|| u16::from_be_bytes([e[2], e[3]]) & 0x1fff)
    })
}

/// PMT (§2.4.4.8): the first H.264 elementary stream's PID.
fn h264_pid(sec: &[u8]) -> Option<u16> {
    let info_len = usize::from(u16::from_be_bytes([*sec.get(7)?, *sec.get(8)?]) & 0x0fff);
    let mut es = sec.get(9 + info_len..)?;
    while es.len() >= 5 {
        let pid = u16::from_be_bytes([es[1], es[2]]) & 0x1fff;
        let es_info = usize::from(u16::from_be_bytes([es[3], es[4]]) & 0x0fff);
        if es[0] == STREAM_TYPE_H264 {
            return Some(pid);
        }
        es = es.get(5 + es_info..)?;
    }
    None
}

/// A 33-bit PTS/DTS in its 5-byte marker-bit layout.
fn timestamp(b: &[u8]) -> Option<i64> {
    let [b0, b1, b2, b3, b4] = *b else {
        return None;
    };
    Some(
        (i64::from((b0 >> 1) & 0x07) << 30)
            | (i64::from(b1) << 22)
            | (i64::from(b2 >> 1) << 15)
            | (i64::from(b3) << 7)
            | i64::from(b4 >> 1),
    )
}

/// Decode time of a PES that starts in this payload: the DTS, or the PTS when
/// there is no DTS (no B-frames: ffmpeg omits a DTS equal to the PTS).
fn pes_dts(payload: &[u8]) -> Option<i64> {
    if !payload.starts_with(&[0, 0, 1]) || payload.get(6)? & 0xc0 != 0x80 {
        return None;
    }
    match payload.get(7)? >> 6 {
        0b11 => timestamp(payload.get(14..19)?),
        0b10 => timestamp(payload.get(9..14)?),
        _ => None,
    }
}

/// Reads `ts` (whole packets) and cuts it into datagrams.
pub fn packetize(ts: &[u8], packing: Packing) -> anyhow::Result<Source> {
    ensure!(
        !ts.is_empty() && ts.len().is_multiple_of(TS_PACKET),
        "not whole TS packets"
    );
    let mut pmt = None;
    let mut video_pid = None;
    // Per packet: the frame group it belongs to; per frame: its PES start
    // packet, last video packet and decode time.
    let mut group_of = Vec::with_capacity(ts.len() / TS_PACKET);
    let mut starts: Vec<(usize, usize, i64)> = Vec::new();
    let mut last_dts: Option<i64> = None;
    for (i, raw) in ts.chunks_exact(TS_PACKET).enumerate() {
        let p = packet(raw).with_context(|| format!("packet {i}"))?;
        if p.pid == 0 && pmt.is_none() {
            pmt = section(&p).and_then(pmt_pid);
        } else if Some(p.pid) == pmt && video_pid.is_none() {
            video_pid = section(&p).and_then(h264_pid);
        } else if video_pid == Some(p.pid) {
            if p.pusi {
                let raw_dts = pes_dts(p.payload)
                    .with_context(|| format!("video PES without PTS at packet {i}"))?;
                // Unwrap: a step back by more than half the range is a wrap.
                let dts = match last_dts {
                    Some(prev) => {
                        let mut d = raw_dts + prev.div_euclid(PTS_WRAP) * PTS_WRAP;
                        if d < prev - PTS_WRAP / 2 {
                            d += PTS_WRAP;
                        }
                        d
                    }
                    None => raw_dts,
                };
                last_dts = Some(dts);
                starts.push((i, i, dts));
            } else if let Some(s) = starts.last_mut() {
                s.1 = i;
            }
        }
        // Packets before the first video PES go out with frame 0.
        group_of.push(starts.len().saturating_sub(1));
    }
    let Some(video_pid) = video_pid else {
        bail!("no H.264 stream in the PMT");
    };
    ensure!(!starts.is_empty(), "no video PES");

    // Datagram cuts: every 7 packets, and (aligned) at every frame group start.
    let mut datagrams = Vec::new();
    let mut dgram_of = vec![0usize; group_of.len()];
    let mut begin = 0;
    for i in 0..=group_of.len() {
        let cut = i == group_of.len()
            || i - begin == PACKETS_PER_DATAGRAM
            || (packing == Packing::Aligned && i > begin && group_of[i] != group_of[i - 1]);
        if cut && i > begin {
            for d in &mut dgram_of[begin..i] {
                *d = datagrams.len();
            }
            datagrams.push(Datagram {
                data: Bytes::copy_from_slice(&ts[begin * TS_PACKET..i * TS_PACKET]),
                send_frame: group_of[i - 1],
            });
            begin = i;
        }
    }
    let frames = starts
        .iter()
        .map(|&(first, last, dts)| Frame {
            dts,
            first_datagram: dgram_of[first],
            last_datagram: dgram_of[last],
        })
        .collect();
    Ok(Source {
        video_pid,
        frames,
        datagrams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts_bytes(marker: u8, t: i64) -> [u8; 5] {
        [
            marker | (((t >> 30) & 0x07) as u8) << 1 | 1,
            (t >> 22) as u8,
            (((t >> 15) & 0x7f) as u8) << 1 | 1,
            (t >> 7) as u8,
            ((t & 0x7f) as u8) << 1 | 1,
        ]
    }

    fn pkt(pid: u16, pusi: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            SYNC,
            (pid >> 8) as u8 | if pusi { 0x40 } else { 0 },
            pid as u8,
            0x10,
        ];
        p.extend_from_slice(payload);
        p.resize(TS_PACKET, 0xff);
        p
    }

    fn psi(pid: u16, table: &[u8]) -> Vec<u8> {
        let mut payload = vec![0];
        payload.extend_from_slice(table);
        payload.extend_from_slice(&[0, 0, 0, 0]); // CRC, unchecked
        pkt(pid, true, &payload)
    }

    /// PAT → PMT 0x1000 → H.264 on 0x100 (after an AAC entry), then `frames`
    /// video PES of `len` packets each, an audio packet after each frame.
    fn stream(frames: usize, len: usize, first_dts: i64) -> Vec<u8> {
        let mut ts = psi(0, &[0x00, 0xb0, 13, 0, 1, 0xc1, 0, 0, 0, 1, 0xf0, 0x00]);
        ts.extend(psi(
            0x1000,
            &[
                0x02, 0xb0, 23, 0, 1, 0xc1, 0, 0, 0xe1, 0x00, 0xf0,
                0, // header, PCR PID, no info
                0x0f, 0xe1, 0x01, 0xf0, 0, // AAC on 0x101
                0x1b, 0xe1, 0x00, 0xf0, 0, // H.264 on 0x100
            ],
        ));
        for k in 0..frames {
            let dts = (first_dts + 3000 * k as i64) % PTS_WRAP;
            let mut pes = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0xc0, 10];
            pes.extend_from_slice(&ts_bytes(0x30, dts));
            pes.extend_from_slice(&ts_bytes(0x10, dts));
            ts.extend(pkt(0x100, true, &pes));
            for _ in 1..len {
                ts.extend(pkt(0x100, false, &[1, 2, 3]));
            }
            ts.extend(pkt(0x101, false, &[9]));
        }
        ts
    }

    #[test]
    fn finds_frames_and_aligns_datagrams() {
        let ts = stream(4, 9, 126_000);
        let s = packetize(&ts, Packing::Aligned).unwrap();
        assert_eq!(s.video_pid, 0x100);
        assert_eq!(s.frames.len(), 4);
        // Frame 0's group: PAT, PMT, 9 video, 1 audio = 12 packets → 7 + 5.
        assert_eq!(s.frames[0].first_datagram, 0);
        assert_eq!(s.frames[0].last_datagram, 1);
        assert_eq!(s.datagrams[1].data.len(), 5 * TS_PACKET);
        // Later groups: 10 packets → 7 + 3; the last video packet is in the second.
        assert_eq!(s.frames[1].first_datagram, 2);
        assert_eq!(s.frames[1].last_datagram, 3);
        assert!(s.datagrams.iter().all(|d| d.data.len() <= 7 * TS_PACKET));
        for (k, f) in s.frames.iter().enumerate() {
            assert_eq!(s.datagrams[f.first_datagram].send_frame, k);
            assert_eq!(s.datagrams[f.last_datagram].send_frame, k);
            assert_eq!(s.frame_at(f.dts), Some(k));
        }
        let total: usize = s.datagrams.iter().map(|d| d.data.len()).sum();
        assert_eq!(total, ts.len());
    }

    #[test]
    fn fill_packing_sends_a_frame_tail_with_the_next_head() {
        let ts = stream(3, 9, 0);
        let s = packetize(&ts, Packing::Fill).unwrap();
        assert!(
            s.datagrams[..s.datagrams.len() - 1]
                .iter()
                .all(|d| d.data.len() == 7 * TS_PACKET)
        );
        // Frame 0 ends at packet 10 (0-based), in datagram 1 (packets 7..14),
        // which also holds frame 1's start (packet 12): sent at frame 1's time.
        assert_eq!(s.frames[0].last_datagram, 1);
        assert_eq!(s.frames[1].first_datagram, 1);
        assert_eq!(s.datagrams[1].send_frame, 1);
    }

    #[test]
    fn unwraps_decode_time() {
        let s = packetize(&stream(3, 2, PTS_WRAP - 3000), Packing::Aligned).unwrap();
        let dts: Vec<i64> = s.frames.iter().map(|f| f.dts).collect();
        assert_eq!(dts, [PTS_WRAP - 3000, PTS_WRAP, PTS_WRAP + 3000]);
        assert_eq!(s.frame_at(3000), Some(2));
    }
}
