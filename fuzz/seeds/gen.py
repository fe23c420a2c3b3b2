#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/ from the project's table tests.

Run from anywhere: `python3 fuzz/seeds/gen.py`. Text targets take the strings of
the table tests (read from the Rust sources, so they follow the tables); the
binary targets get inputs built here in the layout their fuzz target decodes:
- ts_demux: byte 0 = number of split points, two bytes each, then MPEG-TS
  packetised as in the tests of gateway/src/media/ts_demux.rs;
- segmenter / media_playlist: the `arbitrary` 1.x encoding of their `Input`
  (integers little-endian, bool = low bit of a byte, enum variant =
  (u32 * variants) >> 32, the trailing Vec<Op> as "1, op" repeated), so each
  seed replays a scenario of packager/tests/timeline.rs or of the playlist
  golden tests.
"""
import hashlib
import os
import re
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    if name is None:
        name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def rust_strings(path, pattern):
    """The string literals captured by `pattern` in a Rust file, unescaped."""
    src = open(os.path.join(ROOT, path), encoding="utf-8").read()
    out = []
    for s in re.findall(pattern, src, re.M):
        s = re.sub(r"\\u\{([0-9a-fA-F]+)\}", lambda m: chr(int(m.group(1), 16)), s)
        s = s.replace('\\"', '"').replace("\\\\", "\\")
        out.append(s)
    return out


def text_seeds():
    # `("query", want)` rows of directives.rs `table` and the messages test.
    for q in sorted(set(rust_strings("packager/src/directives.rs", r'^\s*\(\s*"((?:[^"\\]|\\.)*)",'))):
        write("directives", None, q)
    write("directives", None, "_HLS_msn=12&_HLS_part=3&_HLS_skip=v2")
    # names.rs: both tables (the ones that parse and the ones that must not).
    names = rust_strings("packager/src/playlist/names.rs", r'^\s*\(?\s*"((?:[^"\\]|\\.)*)",')
    for n in sorted(set(names)):
        write("object_name", None, n)
    # streamid.rs table.
    for s in sorted(set(rust_strings("gateway/src/ingest/streamid.rs", r'(?:ok|Some)\("((?:[^"\\]|\\.)*)"\)'))):
        write("streamid", None, s)
    write("streamid", None, "publish:" + "a" * 64)
    write("streamid", None, "publish:" + "a" * 65)


# --- ts_demux ----------------------------------------------------------------

SYNC = 0x47
VPID, APID, PMT_PID = 0x100, 0x101, 0x1000


def ts_bytes(prefix, t):
    return bytes([
        (prefix << 4) | (((t >> 30) & 0x07) << 1) | 1,
        (t >> 22) & 0xFF,
        (((t >> 15) & 0x7F) << 1) | 1,
        (t >> 7) & 0xFF,
        ((t & 0x7F) << 1) | 1,
    ])


def packet(pid, pusi, cc, payload):
    """A TS packet; a payload under 184 bytes is padded by adaptation-field stuffing."""
    p = bytearray([SYNC, (0x40 if pusi else 0) | ((pid >> 8) & 0x1F), pid & 0xFF, 0x10 | (cc & 0x0F)])
    if len(payload) < 184:
        p[3] |= 0x20
        af = 183 - len(payload)
        p.append(af)
        if af > 0:
            p += bytes([0]) + bytes([0xFF] * (af - 1))
    p += payload
    assert len(p) == 188
    return bytes(p)


def crc32_mpeg2(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def section(table_id, body):
    n = 5 + len(body) + 4
    s = bytes([table_id, 0xB0 | (n >> 8), n & 0xFF, 0, 1, 0xC1, 0, 0]) + body
    return s + struct.pack(">I", crc32_mpeg2(s))


def psi(pid, cc, sec):
    payload = (bytes([0]) + sec).ljust(184, b"\xff")
    return packet(pid, True, cc, payload)


def pat():
    return psi(0, 0, section(0, bytes([0, 1, 0xE0 | (PMT_PID >> 8), PMT_PID & 0xFF])))


def pmt(streams):
    body = bytearray([0xE0 | (VPID >> 8), VPID & 0xFF, 0xF0, 0])
    for ty, pid in streams:
        body += bytes([ty, 0xE0 | (pid >> 8), pid & 0xFF, 0xF0, 0])
    return psi(PMT_PID, 0, section(2, bytes(body)))


def pes(pid, cc, pts, dts, payload, video):
    """Video style (PES_packet_length 0, PTS and DTS) or audio style (length, PTS)."""
    if video:
        h = bytes([0, 0, 1, 0xE0, 0, 0, 0x80, 0xC0, 10]) + ts_bytes(3, pts) + ts_bytes(1, dts)
    else:
        n = 3 + 5 + len(payload)
        h = bytes([0, 0, 1, 0xC0, n >> 8, n & 0xFF, 0x80, 0x80, 5]) + ts_bytes(2, pts)
    data = h + payload
    out = bytearray()
    for i in range(0, len(data), 184):
        out += packet(pid, i == 0, cc, data[i:i + 184])
        cc = (cc + 1) & 0x0F
    return bytes(out), cc


def body(n, seed):
    return bytes(((i * 7 + seed + i // 251) & 0xFF) for i in range(n))


def splits(*points):
    return bytes([len(points)]) + b"".join(struct.pack("<H", p) for p in points)


def ts_demux_seeds():
    head = pat() + pmt([(0x1B, VPID), (0x0F, APID)])
    vcc = acc = 0
    v1, vcc = pes(VPID, vcc, 9000, 6000, body(1500, 1), True)
    a1, acc = pes(APID, acc, 5000, 5000, body(300, 2), False)
    v2, vcc = pes(VPID, vcc, 12000, 9000, body(184 * 3 - 19, 3), True)
    v3, vcc = pes(VPID, vcc, 15000, 12000, body(10, 4), True)
    # The table test's stream (a shorter first frame), whole and split.
    stream = head + v1 + a1 + v2 + v3
    write("ts_demux", "pat_pmt_video_audio", splits() + stream)
    write("ts_demux", "split_187_189_1316", splits(187, 189, 1316) + bytes([1, 2, 3, SYNC, 9]) + stream)
    # Timestamps across the 33-bit wrap, and a jump the timeline smooths over.
    vcc = 0
    w1, vcc = pes(VPID, vcc, (1 << 33) - 3000, (1 << 33) - 6000, body(200, 5), True)
    w2, vcc = pes(VPID, vcc, 0, (1 << 33) - 3000, body(200, 6), True)
    w3, vcc = pes(VPID, vcc, 3000, 0, body(200, 7), True)
    j1, vcc = pes(VPID, vcc, 900_000_000, 900_000_000, body(100, 8), True)
    write("ts_demux", "wrap_and_jump", splits(300) + pat() + pmt([(0x1B, VPID)]) + w1 + w2 + w3 + j1)
    # A lost packet (continuity gap) and a duplicate one.
    vcc = 0
    g1, vcc = pes(VPID, vcc, 3000, 3000, body(600, 9), True)
    g2, vcc = pes(VPID, vcc, 6000, 6000, body(600, 10), True)
    write("ts_demux", "cc_gap_and_duplicate",
          splits() + pat() + pmt([(0x1B, VPID)]) + g1[:188] + g1[376:] + g2[:188] + g2[:188] + g2[188:])
    # No PAT/PMT: nothing is demultiplexed.
    write("ts_demux", "no_program", splits(1) + v1 + a1)


# --- segmenter ---------------------------------------------------------------

def variant(index, count):
    """The smallest u32 that `arbitrary` maps to variant `index` of `count`."""
    v = -(-(index << 32) // count)
    return struct.pack("<I", v)


def u8(v): return struct.pack("<B", v & 0xFF)
def u16(v): return struct.pack("<H", v)
def u32(v): return struct.pack("<I", v)
def i32(v): return struct.pack("<i", v)
def i8(v): return struct.pack("<b", v)
def u64(v): return struct.pack("<Q", v)


FRAMES = [1500, 1800, 3000, 3003, 3600, 3750]
SEGMENTS_MS = [1000, 2000, 3000, 4000]


def seg_input(frame, seg_ms, part_ms, origin, audio, ops, near_wrap=False, gop=30):
    seg_i = SEGMENTS_MS.index(seg_ms)
    part_field = part_ms - 100
    assert 0 <= part_field < seg_ms // 2 - 99
    if near_wrap:
        origin_field = (1 << 63) | origin  # origin = ticks below 2^33
    else:
        origin_field = origin
    out = (u8(FRAMES.index(frame)) + u8(seg_i) + u16(part_field) + u64(origin_field) + u8(int(audio))
           + u8(gop))
    for op in ops:
        out += b"\x01" + op
    return out + b"\x00"


def video(keyframe, step=None, pts_offset=0, length=100):
    if step is None:
        st = variant(0, 3)
    elif step[0] == "frames":
        st = variant(1, 3) + u8(step[1])
    else:
        st = variant(2, 3) + i32(step[1])
    return variant(0, 4) + st + u8(pts_offset) + u8(int(keyframe)) + u8(length)


def audio(jitter=0, length=20):
    return variant(1, 4) + i8(jitter) + u8(length)


def discontinuity(jump):
    return variant(2, 4) + i32(jump)


FINISH = variant(3, 4)


def regular(frame, gop, frames, with_audio, first=0, audio_from=0):
    """Video `first..first+frames` (keyframe every `gop`) interleaved with audio
    by decode time, as timeline.rs's Source does. Returns (ops, audio count)."""
    ops = []
    n_audio = audio_from
    for n in range(first, first + frames):
        vt = n * frame
        while with_audio and n_audio * 1920 < vt:
            ops.append(audio())
            n_audio += 1
        ops.append(video(n % gop == 0))
    return ops, n_audio


def segmenter_seeds():
    ops, _ = regular(3000, 30, 130, True)
    write("segmenter", "regular_30fps_gop1s", seg_input(3000, 2000, 200, 9_000_000, True, ops + [FINISH]))
    ops, _ = regular(3003, 30, 130, True)
    write("segmenter", "ntsc", seg_input(3003, 2000, 200, 0, True, ops + [FINISH]))
    ops, _ = regular(3000, 45, 200, False)
    write("segmenter", "gop_1500ms_on_2s_grid", seg_input(3000, 2000, 200, 0, False, ops + [FINISH], gop=45))
    ops, _ = regular(3000, 120, 250, False)
    write("segmenter", "long_gop", seg_input(3000, 2000, 200, 0, False, ops + [FINISH], gop=120))
    ops, _ = regular(3000, 30, 100, True)
    write("segmenter", "near_33bit_wrap", seg_input(3000, 2000, 200, 90_000, True, ops + [FINISH], near_wrap=True))
    a, _ = regular(3000, 30, 70, True)
    b, _ = regular(3000, 30, 70, True)
    write("segmenter", "reconnect", seg_input(3000, 2000, 200, 50_000_000, True,
                                             a + [discontinuity(-49_000_000)] + b + [FINISH]))
    a, _ = regular(3000, 30, 70, False)
    b = [video(True, ("ticks", 90_000 * 60))] + regular(3000, 30, 69, False, first=1)[0]
    write("segmenter", "timestamp_jump", seg_input(3000, 2000, 200, 0, False, a + b + [FINISH]))
    ops, _ = regular(3000, 30, 80, True, first=10, audio_from=16)
    write("segmenter", "join_mid_gop", seg_input(3000, 2000, 200, 0, True, ops + [FINISH]))
    # B-frames (pts ahead of dts), 25 fps, 4 s segments, 1 s parts.
    ops = [video(n % 25 == 0, pts_offset=2) for n in range(110)]
    write("segmenter", "bframes_25fps", seg_input(3600, 4000, 1000, 0, False, ops + [FINISH], gop=25))


# --- media_playlist ----------------------------------------------------------

def mp_input(target_secs, part_target_ms, window, first_msn, first_seq, wall_start, delta, ops):
    max_pt = min(target_secs, 2) * 1000
    field = part_target_ms - 100
    assert 0 <= field < max_pt - 99
    out = (u8(target_secs - 1) + u16(field) + u8(window - 1) + u32(first_msn) + u32(first_seq)
           + u32(wall_start) + u8(int(delta)))
    for op in ops:
        out += b"\x01" + op
    return out + b"\x00"


def part(ticks, new_segment=False, discontinuity=False, independent=False, part_target=45_000):
    return variant(0, 4) + u32((ticks - 1) % part_target) + u8(int(new_segment)) + u8(int(discontinuity)) + u8(int(independent))


COMPLETE = variant(1, 4)
END = variant(2, 4)


def set_init(b):
    return variant(3, 4) + u8(b)


def segment(parts=4, discontinuity=False):
    return [part(45_000, new_segment=True, discontinuity=discontinuity)] + [part(45_000) for _ in range(parts - 1)]


def playlist_seeds():
    # golden live_window: 2 s target, 0.5 s parts, window 3, segments 0..5 + 2 open parts.
    ops = sum((segment() for _ in range(5)), []) + [part(45_000, new_segment=True), part(45_000)]
    write("media_playlist", "live_window", mp_input(2, 500, 3, 0, 0, 826_000_000, False, ops))
    ops = sum((segment(discontinuity=(i == 3)) for i in range(6)), []) + [part(40_000, new_segment=True)]
    write("media_playlist", "discontinuity_mid_window", mp_input(2, 500, 4, 100, 400, 826_000_000, False, ops))
    ops = sum((segment(discontinuity=(i in (1, 2))) for i in range(7)), []) + [COMPLETE]
    write("media_playlist", "discontinuity_sequence", mp_input(2, 500, 3, 0, 0, 826_000_000, False, ops))
    ops = sum((segment() for _ in range(3)), []) + [part(45_000, new_segment=True), END]
    write("media_playlist", "ended", mp_input(2, 500, 6, 7, 28, 826_000_000, False, ops))
    write("media_playlist", "empty_open", mp_input(2, 500, 3, 0, 0, 826_000_000, False, []))
    ops = sum((segment() for _ in range(14)), []) + [part(45_000, new_segment=True)]
    write("media_playlist", "delta_capable", mp_input(2, 500, 12, 0, 0, 826_000_000, True, ops))
    ops = (sum((segment() for _ in range(3)), []) + [set_init(1)]
           + segment(discontinuity=True) + segment() + [part(45_000, new_segment=True)])
    write("media_playlist", "new_codec_after_reconnect", mp_input(2, 500, 3, 0, 0, 826_000_000, False, ops))
    # 6 s target, 1 s parts of uneven length: the part window spans 3 target durations.
    pt = 90_000
    ops = []
    for s in range(8):
        ops.append(part(pt, new_segment=True, part_target=pt))
        ops += [part(pt - 7 * k, independent=(k == 2), part_target=pt) for k in range(1, 6)]
    write("media_playlist", "part_window", mp_input(6, 1000, 10, 3, 9, 1, False, ops))


def write_regression(target, name, data):
    d = os.path.join(ROOT, "fuzz", "regressions", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def segmenter_regressions():
    """Inputs that violated an invariant when found; they fail until fixed, so
    they are kept out of seeds/ (libFuzzer stops on a failing seed). Replay:
    cargo fuzz run segmenter fuzz/regressions/segmenter/NAME"""
    # A: a frame gap longer than a part stretches the frame before it: part > PART-TARGET.
    # 30 fps, 2 s segments, 200 ms parts; keyframes at frames 0 and 1, then a
    # frame 7 frames later (6 frames = 200 ms lost).
    write_regression("segmenter", "a_min_gap_part_over_target",
                     seg_input(3000, 2000, 200, 0, False, [video(True), video(True), video(False, ("frames", 7)), FINISH]))
    # A, as a live source would: 30 fps, GOP 1 s, with 6 frames lost 1.3 s in.
    ops, _ = regular(3000, 30, 40, False)
    ops += [video(False, ("frames", 7))] + regular(3000, 30, 30, False, first=47)[0]
    write_regression("segmenter", "a_dropped_frames_part_over_target",
                     seg_input(3000, 2000, 200, 0, False, ops + [FINISH]))
    # B: the keyframe interval grows after the probe (1 s -> 2.5 s): the first
    # segment lasts 2.5 s under TARGETDURATION 2 (rfc8216bis §4.4.3.1).
    ops = [video(n in (0, 30, 75)) for n in range(76)]
    write_regression("segmenter", "b_gop_change_segment_over_target",
                     seg_input(3000, 2000, 200, 0, False, ops + [FINISH]))
    # C: DTS jitter. The nominal frame is the smallest DTS step of the probe, so
    # PART-TARGET (a whole number of those) is below what parts really last.
    # Smallest: one step of 3001 ticks among 3000s makes part 0 last 18001 > 18000.
    ops = [video(True), video(False), video(False, ("ticks", 3001))] + [video(False)] * 3
    write_regression("segmenter", "c_min_one_tick_jitter_part_over_target",
                     seg_input(3000, 2000, 200, 0, False, ops + [FINISH]))
    # C, as sources with millisecond timestamps send 30 fps: 33, 33, 34 ms.
    ops = [video(True)] + [video(n % 30 == 0, ("ticks", (2970, 2970, 3060)[n % 3])) for n in range(1, 120)]
    write_regression("segmenter", "c_millisecond_timestamps_part_over_target",
                     seg_input(3000, 2000, 200, 0, False, ops + [FINISH]))


def srtla_seeds():
    """fuzz_targets/srtla.rs `Vec<Op>`: a group registered by REG1 and two
    echoed REG2s, data spread over both links (ACKs at every 10th), a link
    timing out, then the group ending with its last link."""
    n = 7  # Link, Reg1, Reg2Echo, Data, Srt, SrtError, Advance

    def reg1(frm, fill): return variant(1, n) + u8(frm) + u8(fill)
    def echo(frm): return variant(2, n) + u8(frm)
    def data(frm, sn, re=False): return variant(3, n) + u8(frm) + u32(sn) + u8(int(re))
    def advance(ms): return variant(6, n) + u16(ms)

    def seq(ops): return b"".join(b"\x01" + op for op in ops)
    ops = [reg1(0, 7), echo(1), echo(2)]
    ops += [data(1 + i % 2, 0x7FFFFFF0 + i) for i in range(30)]
    ops += [data(1, 0x7FFFFFF5), data(2, 0x7FFFFFF6, True)]
    ops += [advance(6000), data(2, 3), advance(6000), advance(11000)]
    write("srtla", "register_spread_expire", seq(ops))
    # Floods: REG1 from every address, more links than allowed.
    ops = [reg1(i, i) for i in range(8)] + [echo(i) for i in range(16)]
    write("srtla", "reg_floods", seq(ops))


if __name__ == "__main__":
    text_seeds()
    ts_demux_seeds()
    segmenter_seeds()
    playlist_seeds()
    segmenter_regressions()
    srtla_seeds()
