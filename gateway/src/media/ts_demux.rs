//! A sans-IO MPEG-TS demultiplexer: TS packets in, complete PES out.
//!
//! Why not `tsdemux`: it outputs a PES whose `PES_packet_length` is 0 (the
//! norm for video) only when the next PES on that PID starts, so every frame
//! left the gateway one frame interval (≈33 ms at 30 fps) after its last
//! byte arrived. Here a PES is complete at the first of:
//!
//! 1. `PES_packet_length` is non-zero and that many bytes have arrived;
//! 2. a TS packet of the PID carries adaptation-field stuffing: a muxer pads
//!    a packet only when it has no more bytes of the current PES to put in it
//!    (ffmpeg and `mpegtsmux` do this for the last packet of every PES; in a
//!    measured capture 6,415 of 6,479 frame-ending packets and none of
//!    177,733 other video packets were stuffed);
//! 3. the next PES starts (PUSI) on the PID, for frames that end exactly on a
//!    packet boundary, or the stream ends.
//!
//! If (2) ever fires early (a muxer that stuffs mid-PES), payload then arrives
//! for a PES already released without a new PUSI: it is dropped and counted
//! in [`Stats::late_payload`] rather than glued onto the next frame, so one
//! frame is damaged and the stream carries on.
//!
//! Only the first H.264 (`stream_type` 0x1B) and the first AAC ADTS (0x0F)
//! elementary streams of the first program are demultiplexed. Timestamps come
//! straight from the PES headers, unwrapped past 2^33 into one continuous
//! 64-bit timeline shared by both tracks (see [`Timeline`]).
//!
//! Nothing here reads a clock or does I/O: [`TsDemux::push`] feeds bytes (any
//! chunking, any garbage), [`TsDemux::poll_pes`] drains what completed.
#![deny(clippy::indexing_slicing)]

use std::collections::VecDeque;

use packager::sample::TrackKind;

const TS_PACKET: usize = 188;
const SYNC: u8 = 0x47;
const PAT_PID: u16 = 0;
const NULL_PID: u16 = 0x1fff;
const STREAM_TYPE_H264: u8 = 0x1b;
const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;
/// A PES larger than this is dropped (an 8 MiB frame is not a sane stream).
pub(crate) const MAX_PES: usize = 8 << 20;
/// PSI sections are at most 1024 bytes after the length field.
const MAX_SECTION: usize = 3 + 1024;
/// PTS and DTS are 33-bit counters.
const PTS_MODULUS: i64 = 1 << 33;
const TICKS_PER_SEC: i64 = 90_000;
/// A DTS step outside this range is a source discontinuity (an encoder
/// restart, a splice), not media: the timeline is kept continuous over it.
const MAX_BACKWARD: i64 = TICKS_PER_SEC;
const MAX_FORWARD: i64 = 10 * TICKS_PER_SEC;

/// Why a PES was considered complete.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Release {
    /// `PES_packet_length` reached.
    Length,
    /// The packet ended with adaptation-field stuffing.
    Stuffing,
    /// The next PES started on the PID.
    NextStart,
    /// [`TsDemux::finish`].
    End,
}

/// One complete PES of a track we demultiplex.
#[derive(Debug)]
pub(crate) struct Pes {
    pub(crate) kind: TrackKind,
    pub(crate) pid: u16,
    /// 90 kHz ticks on the continuous timeline; `None` if the header had none.
    pub(crate) pts: Option<i64>,
    /// Equal to `pts` when the header has no separate DTS.
    pub(crate) dts: Option<i64>,
    /// The PES payload (the elementary stream bytes, header stripped).
    pub(crate) payload: Vec<u8>,
    pub(crate) release: Release,
}

/// Counters of damage seen; all only grow.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Continuity-counter gaps on a demultiplexed PID (the open PES is dropped).
    pub(crate) cc_errors: u64,
    /// PES dropped: damaged or missing header, incomplete at the end, too large.
    pub(crate) dropped_pes: u64,
    /// Packets with payload for a PES already released, without a new PUSI
    /// (a stuffed packet that was not the PES's last): the bytes are dropped.
    pub(crate) late_payload: u64,
    /// PSI sections rejected (CRC, syntax).
    pub(crate) bad_sections: u64,
    /// Source timestamp discontinuities smoothed over.
    pub(crate) jumps: u64,
}

/// Reassembly state of one elementary stream.
#[derive(Debug)]
struct Es {
    pid: u16,
    last_cc: Option<u8>,
    state: EsState,
}

#[derive(Debug)]
enum EsState {
    /// Waiting for a PUSI; `released` when the last PES was output, so
    /// payload before the next PUSI means a false end-of-PES signal.
    Idle { released: bool },
    /// Raw PES bytes so far (header included).
    Open(Vec<u8>),
}

impl Es {
    fn new(pid: u16) -> Self {
        Self {
            pid,
            last_cc: None,
            state: EsState::Idle { released: false },
        }
    }
}

/// A PSI section being reassembled on one PID.
#[derive(Debug, Default)]
struct Section {
    data: Vec<u8>,
    active: bool,
}

/// Packet-level view of a TS packet's header.
struct Header<'a> {
    pusi: bool,
    pid: u16,
    cc: u8,
    discontinuity: bool,
    stuffed: bool,
    /// `None` for a packet without payload.
    payload: Option<&'a [u8]>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct TsDemux {
    /// Bytes of an incomplete TS packet from the previous push.
    carry: Vec<u8>,
    /// Packet boundaries are known: two sync bytes 188 apart were seen.
    in_sync: bool,
    pat: Section,
    pmt_pid: Option<u16>,
    pmt: Section,
    video: Option<Es>,
    audio: Option<Es>,
    /// A PMT with a stream we demultiplex has been seen.
    program_found: bool,
    timeline: Timeline,
    out: VecDeque<Pes>,
    stats: Stats,
}

impl TsDemux {
    /// Feeds bytes in stream order; any chunking, any garbage. Completed PES
    /// are then available from [`Self::poll_pes`].
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

    /// End of input: open PES without a length are complete; others dropped.
    pub(crate) fn finish(&mut self) {
        // A last packet that no following sync byte could confirm.
        let carry = std::mem::take(&mut self.carry);
        if carry.len() == TS_PACKET && carry.first() == Some(&SYNC) {
            self.packet(&carry);
        }
        for kind in [TrackKind::Video, TrackKind::Audio] {
            self.release(kind, Release::End);
        }
    }

    /// The next completed PES, in completion order.
    #[must_use]
    pub(crate) fn poll_pes(&mut self) -> Option<Pes> {
        self.out.pop_front()
    }

    /// Whether a PMT announced an elementary stream we demultiplex.
    #[must_use]
    pub(crate) fn program_found(&self) -> bool {
        self.program_found
    }

    #[must_use]
    pub(crate) fn stats(&self) -> Stats {
        self.stats
    }

    fn es_mut(&mut self, kind: TrackKind) -> Option<&mut Es> {
        match kind {
            TrackKind::Video => self.video.as_mut(),
            TrackKind::Audio => self.audio.as_mut(),
        }
    }

    fn packet(&mut self, p: &[u8]) {
        let Some(h) = parse_header(p) else { return };
        if h.pid == NULL_PID {
            return;
        }
        if h.pid == PAT_PID {
            if let Some(payload) = h.payload {
                let sections = feed_section(&mut self.pat, h.pusi, payload);
                for s in sections {
                    self.on_pat(&s);
                }
            }
            return;
        }
        if Some(h.pid) == self.pmt_pid {
            if let Some(payload) = h.payload {
                let sections = feed_section(&mut self.pmt, h.pusi, payload);
                for s in sections {
                    self.on_pmt(&s);
                }
            }
            return;
        }
        let kind = match (&self.video, &self.audio) {
            (Some(v), _) if v.pid == h.pid => TrackKind::Video,
            (_, Some(a)) if a.pid == h.pid => TrackKind::Audio,
            _ => return,
        };
        self.es_packet(kind, &h);
    }

    fn es_packet(&mut self, kind: TrackKind, h: &Header<'_>) {
        // No payload: the CC does not advance, and the packet says nothing
        // about the PES (ffmpeg sends PCR-only packets, stuffed, mid-frame).
        let Some(payload) = h.payload else { return };
        let Some(es) = self.es_mut(kind) else { return };
        // ISO/IEC 13818-1 §2.4.3.3: the CC increments per packet with
        // payload; a repeat is a duplicate packet, a gap lost data.
        let mut cc_error = false;
        if !h.discontinuity {
            match es.last_cc {
                Some(last) if last == h.cc => return,
                Some(last) if (last + 1) & 0x0f != h.cc => cc_error = true,
                _ => {}
            }
        }
        es.last_cc = Some(h.cc);
        if cc_error {
            let had_open = matches!(es.state, EsState::Open(_));
            es.state = EsState::Idle { released: false };
            self.stats.cc_errors += 1;
            if had_open {
                self.stats.dropped_pes += 1;
            }
            tracing::debug!(pid = h.pid, ?kind, "continuity error, PES dropped");
        }

        if h.pusi {
            self.release(kind, Release::NextStart);
            let Some(es) = self.es_mut(kind) else { return };
            let mut buf = Vec::with_capacity(match kind {
                TrackKind::Video => 64 << 10,
                TrackKind::Audio => 2 << 10,
            });
            buf.extend_from_slice(payload);
            es.state = EsState::Open(buf);
        } else {
            let Some(es) = self.es_mut(kind) else { return };
            match &mut es.state {
                EsState::Open(buf) => {
                    if buf.len() + payload.len() > MAX_PES {
                        es.state = EsState::Idle { released: false };
                        self.stats.dropped_pes += 1;
                        tracing::debug!(
                            pid = h.pid,
                            ?kind,
                            max = MAX_PES,
                            "PES too large, dropped"
                        );
                        return;
                    }
                    buf.extend_from_slice(payload);
                }
                EsState::Idle { released: true } => {
                    // The PES was released on a stuffed packet that was not
                    // its last: drop the rest until the next PES starts.
                    es.state = EsState::Idle { released: false };
                    self.stats.late_payload += 1;
                    tracing::debug!(
                        pid = h.pid,
                        ?kind,
                        late = self.stats.late_payload,
                        "payload after a released PES without a new start; dropped"
                    );
                    return;
                }
                // Joined mid-PES, after damage, or the rest of a falsely
                // released PES: wait for the next start.
                EsState::Idle { released: false } => return,
            }
        }

        let Some(es) = self.es_mut(kind) else { return };
        let length_reached = match &es.state {
            EsState::Open(buf) => declared_len(buf).is_some_and(|n| buf.len() >= n),
            EsState::Idle { .. } => false,
        };
        if length_reached {
            self.release(kind, Release::Length);
        } else if h.stuffed {
            self.release(kind, Release::Stuffing);
        }
    }

    /// Outputs the open PES of a track, if any and if sound.
    fn release(&mut self, kind: TrackKind, why: Release) {
        let Some(es) = self.es_mut(kind) else { return };
        let EsState::Open(mut buf) =
            std::mem::replace(&mut es.state, EsState::Idle { released: true })
        else {
            return;
        };
        let pid = es.pid;
        let declared = declared_len(&buf);
        if let Some(n) = declared {
            if buf.len() < n {
                // Only the end of the stream or a new start cuts a PES that
                // announced its length short: it is damaged.
                self.stats.dropped_pes += 1;
                tracing::debug!(
                    pid,
                    ?kind,
                    have = buf.len(),
                    want = n,
                    "truncated PES dropped"
                );
                return;
            }
            buf.truncate(n);
        }
        let Some(h) = parse_pes_header(&buf) else {
            self.stats.dropped_pes += 1;
            tracing::debug!(pid, ?kind, "PES without a usable header dropped");
            return;
        };
        buf.drain(..h.payload_start.min(buf.len()));
        let (pts, dts) = match h.pts {
            Some(pts) => {
                let (pts, dts, jumped) = self.timeline.map(kind, pts, h.dts.unwrap_or(pts));
                if jumped {
                    self.stats.jumps += 1;
                    tracing::info!(
                        pid,
                        ?kind,
                        "source timestamps jumped; keeping a continuous timeline"
                    );
                }
                (Some(pts), Some(dts))
            }
            None => (None, None),
        };
        self.out.push_back(Pes {
            kind,
            pid,
            pts,
            dts,
            payload: buf,
            release: why,
        });
    }

    fn on_pat(&mut self, s: &[u8]) {
        let Some(body) = check_section(s, 0x00) else {
            self.stats.bad_sections += 1;
            return;
        };
        // program_number (16), reserved (3), PID (13); program 0 is the NIT.
        let pmt_pid = body.chunks_exact(4).find_map(|e| match *e {
            [n0, n1, p0, p1] if u16::from_be_bytes([n0, n1]) != 0 => {
                Some(u16::from_be_bytes([p0 & 0x1f, p1]))
            }
            _ => None,
        });
        if pmt_pid.is_some() && pmt_pid != self.pmt_pid {
            tracing::debug!(?pmt_pid, old = ?self.pmt_pid, "PMT PID");
            self.pmt_pid = pmt_pid;
            self.pmt = Section::default();
        }
    }

    fn on_pmt(&mut self, s: &[u8]) {
        let Some(body) = check_section(s, 0x02) else {
            self.stats.bad_sections += 1;
            return;
        };
        let (Some(&i0), Some(&i1)) = (body.get(2), body.get(3)) else {
            self.stats.bad_sections += 1;
            return;
        };
        let info_len = usize::from(u16::from_be_bytes([i0 & 0x0f, i1]));
        let mut rest = body.get(4 + info_len..).unwrap_or_default();
        let (mut video, mut audio) = (None, None);
        while let [stream_type, p0, p1, l0, l1, tail @ ..] = rest {
            let (stream_type, p0, p1, l0, l1) = (*stream_type, *p0, *p1, *l0, *l1);
            let pid = u16::from_be_bytes([p0 & 0x1f, p1]);
            match stream_type {
                STREAM_TYPE_H264 => _ = video.get_or_insert(pid),
                STREAM_TYPE_AAC_ADTS => _ = audio.get_or_insert(pid),
                _ => {}
            }
            let es_info = usize::from(u16::from_be_bytes([l0 & 0x0f, l1]));
            rest = tail.get(es_info..).unwrap_or_default();
        }
        self.program_found |= video.is_some() || audio.is_some();
        set_es(&mut self.video, video, TrackKind::Video);
        set_es(&mut self.audio, audio, TrackKind::Audio);
    }
}

/// Follows a PMT: a changed or removed PID drops its reassembly state.
fn set_es(slot: &mut Option<Es>, pid: Option<u16>, kind: TrackKind) {
    if slot.as_ref().map(|e| e.pid) == pid {
        return;
    }
    tracing::debug!(?kind, ?pid, old = ?slot.as_ref().map(|e| e.pid), "elementary stream PID");
    *slot = pid.map(Es::new);
}

fn parse_header(p: &[u8]) -> Option<Header<'_>> {
    let [SYNC, b1, b2, b3, ..] = *p else {
        return None;
    };
    if b1 & 0x80 != 0 {
        // transport_error_indicator: damaged; the CC gap shows on the next one.
        return None;
    }
    let afc = (b3 >> 4) & 0x3;
    let mut h = Header {
        pusi: b1 & 0x40 != 0,
        pid: u16::from_be_bytes([b1 & 0x1f, b2]),
        cc: b3 & 0x0f,
        discontinuity: false,
        stuffed: false,
        payload: None,
    };
    let payload_start = if afc & 0x2 != 0 {
        let af_len = usize::from(*p.get(4)?);
        let af = p.get(5..5 + af_len)?;
        if let Some(&flags) = af.first() {
            h.discontinuity = flags & 0x80 != 0;
        }
        h.stuffed = has_stuffing(af);
        5 + af_len
    } else {
        4
    };
    if afc & 0x1 != 0 {
        h.payload = Some(p.get(payload_start..)?);
    }
    Some(h)
}

/// Whether an adaptation field (after its length byte) is longer than the
/// fields its flags announce, i.e. pads the packet. An empty one is one byte
/// of stuffing (a muxer with 183 bytes left).
fn has_stuffing(af: &[u8]) -> bool {
    let Some((&flags, rest)) = af.split_first() else {
        return true;
    };
    let mut used = 0usize;
    if flags & 0x10 != 0 {
        used += 6; // PCR
    }
    if flags & 0x08 != 0 {
        used += 6; // OPCR
    }
    if flags & 0x04 != 0 {
        used += 1; // splice_countdown
    }
    if flags & 0x02 != 0 {
        let Some(&n) = rest.get(used) else {
            return false;
        };
        used += 1 + usize::from(n); // transport_private_data
    }
    if flags & 0x01 != 0 {
        let Some(&n) = rest.get(used) else {
            return false;
        };
        used += 1 + usize::from(n); // adaptation_field_extension
    }
    rest.len() > used
}

/// Feeds a PSI packet's payload; returns the sections it completed.
fn feed_section(s: &mut Section, pusi: bool, payload: &[u8]) -> Vec<Vec<u8>> {
    let mut done = Vec::new();
    let mut bytes = payload;
    if pusi {
        let Some((&pointer, rest)) = payload.split_first() else {
            return done;
        };
        let pointer = usize::from(pointer);
        let (Some(tail), Some(new)) = (rest.get(..pointer), rest.get(pointer..)) else {
            *s = Section::default();
            return done;
        };
        if s.active {
            s.data.extend_from_slice(tail);
            take_sections(s, &mut done);
        }
        *s = Section {
            data: Vec::new(),
            active: true,
        };
        bytes = new;
    } else if !s.active {
        return done;
    }
    s.data.extend_from_slice(bytes);
    take_sections(s, &mut done);
    done
}

fn take_sections(s: &mut Section, done: &mut Vec<Vec<u8>>) {
    while s.active {
        let (Some(&b1), Some(&b2)) = (s.data.get(1), s.data.get(2)) else {
            if s.data.first() == Some(&0xff) {
                *s = Section::default(); // stuffing after the last section
            }
            return;
        };
        if s.data.first() == Some(&0xff) {
            *s = Section::default();
            return;
        }
        let len = 3 + usize::from(u16::from_be_bytes([b1 & 0x0f, b2]));
        if len > MAX_SECTION {
            *s = Section::default();
            return;
        }
        if s.data.len() < len {
            return;
        }
        let rest = s.data.split_off(len);
        done.push(std::mem::replace(&mut s.data, rest));
        if s.data.is_empty() {
            s.active = false;
        }
    }
}

/// Checks a long-form section (syntax bit, current, CRC) of `table_id`;
/// returns the bytes between the 8-byte header and the CRC.
fn check_section(s: &[u8], table_id: u8) -> Option<&[u8]> {
    let [id, b1, _, _, _, b5, ..] = *s else {
        return None;
    };
    if id != table_id || b1 & 0x80 == 0 || b5 & 0x01 == 0 || s.len() < 12 || crc32_mpeg2(s) != 0 {
        return None;
    }
    s.get(8..s.len() - 4)
}

/// CRC-32/MPEG-2 (ISO/IEC 13818-1 Annex A); 0 over a section with its CRC.
fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Total PES bytes announced by `PES_packet_length`, once known and non-zero.
fn declared_len(buf: &[u8]) -> Option<usize> {
    let (Some(&l0), Some(&l1)) = (buf.get(4), buf.get(5)) else {
        return None;
    };
    match u16::from_be_bytes([l0, l1]) {
        0 => None,
        n => Some(6 + usize::from(n)),
    }
}

struct PesHeader {
    pts: Option<u64>,
    dts: Option<u64>,
    payload_start: usize,
}

/// Parses a PES header (ISO/IEC 13818-1 §2.4.3.6).
fn parse_pes_header(p: &[u8]) -> Option<PesHeader> {
    let [0, 0, 1, stream_id, _, _, b6, b7, header_len, ..] = *p else {
        return None;
    };
    // Streams without the optional PES header (program_stream_map, padding,
    // private_stream_2, ECM, EMM, DSMCC, H.222.1 type E, directory).
    if matches!(
        stream_id,
        0xbc | 0xbe | 0xbf | 0xf0 | 0xf1 | 0xf2 | 0xf8 | 0xff
    ) || b6 & 0xc0 != 0x80
    {
        return None;
    }
    let payload_start = 9 + usize::from(header_len);
    if p.len() < payload_start {
        return None;
    }
    let (pts, dts) = match b7 >> 6 {
        0b10 => (Some(parse_timestamp(p.get(9..14)?)?), None),
        0b11 => (
            Some(parse_timestamp(p.get(9..14)?)?),
            Some(parse_timestamp(p.get(14..19)?)?),
        ),
        _ => (None, None),
    };
    Some(PesHeader {
        pts,
        dts,
        payload_start,
    })
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

/// A difference of 33-bit timestamps, the shortest way round: (−2^32, 2^32].
fn pts_distance(d: i64) -> i64 {
    let d = d.rem_euclid(PTS_MODULUS);
    if d > PTS_MODULUS / 2 {
        d - PTS_MODULUS
    } else {
        d
    }
}

/// Turns 33-bit PES timestamps into one continuous 64-bit timeline.
///
/// The first timestamp is taken as is (so the same source gives the same
/// media times after a reconnect, which keeps segment numbers stable); each
/// later one is unwrapped against the previous, whatever its track. A DTS
/// step outside [−1 s, +10 s] on a track is a source discontinuity: an offset
/// then keeps that track's DTS one previous step after its last one, and the
/// other track follows through the shared offset.
#[derive(Clone, Debug, Default)]
pub(crate) struct Timeline {
    /// Last unwrapped source DTS (before `offset`).
    reference: Option<i64>,
    offset: i64,
    /// Per track: last output DTS and the last step between two of them.
    video: Option<(i64, i64)>,
    audio: Option<(i64, i64)>,
}

impl Timeline {
    /// Raw 33-bit PTS and DTS to (pts, dts, jumped).
    pub(crate) fn map(&mut self, kind: TrackKind, raw_pts: u64, raw_dts: u64) -> (i64, i64, bool) {
        let raw_pts = i64::try_from(raw_pts & 0x1_ffff_ffff).unwrap_or(0);
        let raw_dts = i64::try_from(raw_dts & 0x1_ffff_ffff).unwrap_or(0);
        let src_dts = match self.reference {
            None => raw_dts,
            Some(r) => r + pts_distance(raw_dts - r),
        };
        self.reference = Some(src_dts);
        let src_pts = src_dts + pts_distance(raw_pts - raw_dts);
        let last = match kind {
            TrackKind::Video => &mut self.video,
            TrackKind::Audio => &mut self.audio,
        };
        let mut dts = src_dts + self.offset;
        let mut jumped = false;
        if let Some((prev, step)) = *last {
            let d = dts - prev;
            if !(-MAX_BACKWARD..=MAX_FORWARD).contains(&d) {
                self.offset += prev + step - dts;
                dts = src_dts + self.offset;
                jumped = true;
            }
        }
        let step = match *last {
            Some((prev, _)) if dts > prev => dts - prev,
            Some((_, step)) => step,
            None => 1,
        };
        *last = Some((dts, step));
        (src_pts + self.offset, dts, jumped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VPID: u16 = 0x100;
    const APID: u16 = 0x101;
    const PMT: u16 = 0x1000;

    fn ts_bytes(prefix: u8, t: u64) -> [u8; 5] {
        [
            (prefix << 4) | (((t >> 30) & 0x07) as u8) << 1 | 1,
            (t >> 22) as u8,
            (((t >> 15) & 0x7f) as u8) << 1 | 1,
            (t >> 7) as u8,
            ((t & 0x7f) as u8) << 1 | 1,
        ]
    }

    /// A TS packet: `payload` (≤ 184 bytes) after an adaptation field that
    /// pads it to 188 bytes when shorter.
    fn packet(pid: u16, pusi: bool, cc: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            SYNC,
            (u8::from(pusi) << 6) | (pid >> 8) as u8 & 0x1f,
            pid as u8,
            0x10 | (cc & 0x0f),
        ];
        if payload.len() < 184 {
            p[3] |= 0x20;
            let af_len = 183 - payload.len();
            p.push(af_len as u8);
            if af_len > 0 {
                p.push(0);
                p.extend(std::iter::repeat_n(0xff, af_len - 1));
            }
        }
        p.extend_from_slice(payload);
        assert_eq!(p.len(), TS_PACKET);
        p
    }

    fn section(table_id: u8, body: &[u8]) -> Vec<u8> {
        let len = 5 + body.len() + 4;
        let mut s = vec![
            table_id,
            0xb0 | (len >> 8) as u8,
            len as u8,
            0,
            1,
            0xc1,
            0,
            0,
        ];
        s.extend_from_slice(body);
        let crc = crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        s
    }

    fn psi(pid: u16, cc: u8, section: &[u8]) -> Vec<u8> {
        let mut payload = vec![0];
        payload.extend_from_slice(section);
        payload.resize(184, 0xff);
        packet(pid, true, cc, &payload)
    }

    fn pat() -> Vec<u8> {
        psi(
            PAT_PID,
            0,
            &section(0, &[0, 1, 0xe0 | (PMT >> 8) as u8, PMT as u8]),
        )
    }

    fn pmt(streams: &[(u8, u16)]) -> Vec<u8> {
        let mut body = vec![0xe0 | (VPID >> 8) as u8, VPID as u8, 0xf0, 0];
        for &(ty, pid) in streams {
            body.extend_from_slice(&[ty, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0]);
        }
        psi(PMT, 0, &section(2, &body))
    }

    /// Packetises one PES: video style (`PES_packet_length` 0, PTS and DTS)
    /// or audio style (length set, PTS only).
    fn pes(pid: u16, cc: &mut u8, pts: u64, dts: u64, payload: &[u8], video: bool) -> Vec<u8> {
        let mut pes = if video {
            let mut h = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0xc0, 10];
            h.extend_from_slice(&ts_bytes(3, pts));
            h.extend_from_slice(&ts_bytes(1, dts));
            h
        } else {
            let len = 3 + 5 + payload.len();
            let mut h = vec![0, 0, 1, 0xc0, (len >> 8) as u8, len as u8, 0x80, 0x80, 5];
            h.extend_from_slice(&ts_bytes(2, pts));
            h
        };
        pes.extend_from_slice(payload);
        let mut out = Vec::new();
        for (i, chunk) in pes.chunks(184).enumerate() {
            out.extend(packet(pid, i == 0, *cc, chunk));
            *cc = (*cc + 1) & 0x0f;
        }
        out
    }

    fn body(n: usize, seed: u32) -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i * 7 + seed + i / 251) as u8)
            .collect()
    }

    type Out = (TrackKind, Option<i64>, Option<i64>, Vec<u8>, Release);

    fn drain(d: &mut TsDemux) -> Vec<Out> {
        std::iter::from_fn(|| d.poll_pes())
            .map(|p| (p.kind, p.pts, p.dts, p.payload, p.release))
            .collect()
    }

    /// PAT, PMT, three video PES (one ending exactly on a packet boundary:
    /// 184 * 3 − 19 header bytes), one audio PES between them.
    fn stream() -> Vec<u8> {
        let (mut vcc, mut acc) = (0, 0);
        let mut s = pat();
        s.extend(pmt(&[
            (STREAM_TYPE_H264, VPID),
            (STREAM_TYPE_AAC_ADTS, APID),
        ]));
        s.extend(pes(VPID, &mut vcc, 9000, 6000, &body(5000, 1), true));
        s.extend(pes(APID, &mut acc, 5000, 5000, &body(300, 2), false));
        s.extend(pes(
            VPID,
            &mut vcc,
            12000,
            9000,
            &body(184 * 3 - 19, 3),
            true,
        ));
        s.extend(pes(VPID, &mut vcc, 15000, 12000, &body(10, 4), true));
        s
    }

    #[test]
    fn parses_timestamps() {
        for t in [0, 1, 126_000, (1 << 33) - 1, 0x1_2345_6789] {
            assert_eq!(parse_timestamp(&ts_bytes(2, t)), Some(t));
        }
    }

    #[test]
    fn demuxes_at_every_split_point() {
        let s = stream();
        let mut whole = TsDemux::default();
        whole.push(&s);
        let before_finish = drain(&mut whole);
        whole.finish();
        let at_finish = drain(&mut whole);
        let releases: Vec<_> = before_finish.iter().map(|p| (p.0, p.1, p.4)).collect();
        assert_eq!(
            releases,
            [
                (TrackKind::Video, Some(9000), Release::Stuffing),
                (TrackKind::Audio, Some(5000), Release::Length),
                (TrackKind::Video, Some(12000), Release::NextStart),
                (TrackKind::Video, Some(15000), Release::Stuffing),
            ]
        );
        assert!(at_finish.is_empty());
        assert_eq!(before_finish[0].2, Some(6000));
        assert_eq!(before_finish[0].3, body(5000, 1));
        assert_eq!(before_finish[1].3, body(300, 2));
        assert_eq!(before_finish[2].3, body(184 * 3 - 19, 3));
        assert_eq!(whole.stats(), Stats::default());

        for split in 0..=s.len() {
            let mut d = TsDemux::default();
            // Leading garbage must not disturb sync.
            d.push(&[1, 2, 3, SYNC, 9]);
            let (a, b) = s.split_at(split);
            d.push(a);
            d.push(b);
            assert_eq!(drain(&mut d), before_finish, "split {split}");
        }
        let mut d = TsDemux::default();
        for b in s.chunks(1) {
            d.push(b);
        }
        assert_eq!(drain(&mut d), before_finish, "byte by byte");
    }

    #[test]
    fn a_stuffed_pes_is_released_on_its_last_packet() {
        let mut cc = 0;
        let mut d = TsDemux::default();
        d.push(&pat());
        d.push(&pmt(&[(STREAM_TYPE_H264, VPID)]));
        let frame = pes(VPID, &mut cc, 3000, 3000, &body(1000, 0), true);
        let packets: Vec<&[u8]> = frame.chunks(TS_PACKET).collect();
        let (last, head) = packets.split_last().unwrap();
        for p in head {
            d.push(p);
            assert!(d.poll_pes().is_none());
        }
        // The sync check wants the next packet's first byte; a packet on its
        // own is processed as soon as the stream is in sync.
        d.push(last);
        let p = d.poll_pes().expect("released with its last packet");
        assert_eq!((p.pts, p.release), (Some(3000), Release::Stuffing));
    }

    #[test]
    fn continuity_gap_drops_the_damaged_pes() {
        let mut cc = 0;
        let mut s = pat();
        s.extend(pmt(&[(STREAM_TYPE_H264, VPID)]));
        let first = pes(VPID, &mut cc, 3000, 3000, &body(600, 0), true);
        // Lose its second packet.
        s.extend_from_slice(&first[..TS_PACKET]);
        s.extend_from_slice(&first[2 * TS_PACKET..]);
        s.extend(pes(VPID, &mut cc, 6000, 6000, &body(600, 1), true));
        // A duplicate packet is ignored.
        let dup = s[s.len() - TS_PACKET..].to_vec();
        s.extend(dup);
        let mut d = TsDemux::default();
        d.push(&s);
        d.finish();
        let got = drain(&mut d);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].1, &got[0].3), (Some(6000), &body(600, 1)));
        assert_eq!(d.stats().cc_errors, 1);
        assert_eq!(d.stats().dropped_pes, 1);
        assert_eq!(d.stats().late_payload, 0);
    }

    #[test]
    fn false_stuffing_signal_drops_the_remainder() {
        let mut cc = 0;
        let mut s = pat();
        s.extend(pmt(&[(STREAM_TYPE_H264, VPID)]));
        // A muxer that stuffs a packet mid-PES: 100 bytes, then 300 more.
        let mut head = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5];
        head.extend_from_slice(&ts_bytes(2, 3000));
        head.extend_from_slice(&body(100, 0));
        s.extend(packet(VPID, true, 0, &head));
        s.extend(packet(VPID, false, 1, &body(184, 1)));
        s.extend(packet(VPID, false, 2, &body(116, 2)));
        cc += 3;
        s.extend(pes(VPID, &mut cc, 6000, 6000, &body(50, 3), true));
        let mut d = TsDemux::default();
        d.push(&s);
        let got = drain(&mut d);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].1, got[0].3.len()), (Some(3000), 100));
        assert_eq!((got[1].1, &got[1].3), (Some(6000), &body(50, 3)));
        assert_eq!(d.stats().late_payload, 1);
    }

    #[test]
    fn nothing_before_pat_and_pmt_and_audio_only_programs() {
        let mut vcc = 0;
        let mut acc = 0;
        // PES before the tables, and a PMT without video.
        let mut s = pes(APID, &mut acc, 1000, 1000, &body(200, 0), false);
        s.extend(pat());
        s.extend(pmt(&[(0x06, VPID), (STREAM_TYPE_AAC_ADTS, APID)]));
        s.extend(pes(VPID, &mut vcc, 2000, 2000, &body(200, 1), true));
        s.extend(pes(APID, &mut acc, 3000, 3000, &body(200, 2), false));
        let mut d = TsDemux::default();
        d.push(&s);
        d.finish();
        let got = drain(&mut d);
        assert!(d.program_found());
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].0, got[0].1), (TrackKind::Audio, Some(3000)));
    }

    #[test]
    fn pid_change_follows_the_pmt() {
        let (mut c1, mut c2) = (0, 0);
        let mut s = pat();
        s.extend(pmt(&[(STREAM_TYPE_H264, VPID)]));
        s.extend(pes(VPID, &mut c1, 3000, 3000, &body(400, 0), true));
        s.extend(pmt(&[(STREAM_TYPE_H264, 0x200)]));
        s.extend(pes(VPID, &mut c1, 6000, 6000, &body(400, 1), true));
        s.extend(pes(0x200, &mut c2, 9000, 9000, &body(400, 2), true));
        let mut d = TsDemux::default();
        d.push(&s);
        d.finish();
        let got: Vec<_> = std::iter::from_fn(|| d.poll_pes())
            .map(|p| (p.pid, p.pts))
            .collect();
        assert_eq!(got, [(VPID, Some(3000)), (0x200, Some(9000))]);
    }

    #[test]
    fn bad_crc_is_rejected() {
        let mut p = pat();
        p[10] ^= 0x01;
        let mut d = TsDemux::default();
        d.push(&p);
        d.push(&pat()[..1]);
        assert_eq!(d.stats().bad_sections, 1);
        assert_eq!(d.pmt_pid, None);
    }

    #[test]
    fn oversized_pes_is_dropped() {
        let mut s = pat();
        s.extend(pmt(&[(STREAM_TYPE_H264, VPID)]));
        let mut head = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5];
        head.extend_from_slice(&ts_bytes(2, 3000));
        head.resize(184, 0);
        s.extend(packet(VPID, true, 0, &head));
        let mut cc = 1;
        for _ in 0..=MAX_PES / 184 {
            s.extend(packet(VPID, false, cc, &[0; 184]));
            cc = (cc + 1) & 0x0f;
        }
        s.extend(pes(VPID, &mut cc, 6000, 6000, &body(10, 0), true));
        let mut d = TsDemux::default();
        d.push(&s);
        let got = drain(&mut d);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, Some(6000));
        assert_eq!(d.stats().dropped_pes, 1);
    }

    #[test]
    fn garbage_and_truncation_are_harmless() {
        let mut x: u32 = 12345;
        let mut garbage: Vec<u8> = (0..400_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        // Sync bytes every 188 so the garbage is parsed as packets too.
        for i in (0..garbage.len()).step_by(TS_PACKET) {
            garbage[i] = SYNC;
        }
        let mut d = TsDemux::default();
        d.push(&garbage);
        d.finish();
        let _ = drain(&mut d);
        // A stream cut anywhere, then resumed with a fresh copy.
        let s = stream();
        for cut in [1, 100, 188, 400, 1000, s.len() - 1] {
            let mut d = TsDemux::default();
            d.push(&s[..cut]);
            d.push(&s);
            d.finish();
            let got = drain(&mut d);
            assert!(got.iter().any(|p| p.1 == Some(15000)), "cut {cut}");
        }
    }

    #[test]
    fn timeline_unwraps_and_smooths_jumps() {
        let mut tl = Timeline::default();
        let near = (1u64 << 33) - 3000;
        assert_eq!(
            tl.map(TrackKind::Video, near + 3000, near),
            (1 << 33, (1 << 33) - 3000, false)
        );
        // PTS already wrapped, DTS not yet; then both.
        assert_eq!(
            tl.map(TrackKind::Audio, near + 100, near + 100),
            ((1 << 33) - 2900, (1 << 33) - 2900, false)
        );
        assert_eq!(
            tl.map(TrackKind::Video, 3000, 0),
            ((1 << 33) + 3000, 1 << 33, false)
        );
        // The source jumps 500 s: the timeline goes on one step later.
        assert_eq!(
            tl.map(TrackKind::Video, 45_000_000, 45_000_000),
            ((1 << 33) + 3000, (1 << 33) + 3000, true)
        );
        assert_eq!(
            tl.map(TrackKind::Audio, 45_000_100, 45_000_100),
            ((1 << 33) + 3100, (1 << 33) + 3100, false)
        );
    }
}
