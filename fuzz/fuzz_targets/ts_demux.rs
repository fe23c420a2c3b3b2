//! The gateway's sans-IO MPEG-TS demultiplexer (`gateway/src/media/ts_demux.rs`,
//! which took over from `pes_tap.rs`) fed arbitrary bytes in arbitrary chunkings.
//!
//! `TsDemux` is `pub(crate)` inside a private module of `gateway`, so this
//! target compiles that very file as a module of its own (`#[path]`): no copy,
//! and it follows every edit of the file (but not a rename).
//!
//! Input: byte 0 = how many split points (0..=15), then two bytes per split
//! point (a position, modulo the stream length), then the stream.
//!
//! Invariants:
//! - split invariance: one `push` of the whole stream, the same bytes pushed in
//!   the chosen chunks and (for inputs up to 4 KiB) one byte at a time give the
//!   same PES, in the same order, with the same release reasons, the same
//!   `stats()` and `program_found()`, before and after `finish`;
//! - every PES: payload ≤ `MAX_PES`, PTS and DTS both present or both absent,
//!   |PTS − DTS| ≤ 2^32; per track, successive DTS move by −1 s ..= +10 s (the
//!   `Timeline` promise: anything else is smoothed into a continuous line);
//! - statistics only grow.
#![no_main]

#[allow(dead_code, unreachable_pub, clippy::all)]
#[path = "../../gateway/src/media/ts_demux.rs"]
mod ts_demux;

use libfuzzer_sys::fuzz_target;
use packager::sample::TrackKind;
use ts_demux::{MAX_PES, Release, Stats, TsDemux};

type Out = (TrackKind, u16, Option<i64>, Option<i64>, Vec<u8>, Release);

#[derive(Default)]
struct Run {
    demux: TsDemux,
    out: Vec<Out>,
    /// How many PES had come out before `finish`.
    before_finish: usize,
    stats: Stats,
}

impl Run {
    fn push(&mut self, data: &[u8]) {
        self.demux.push(data);
        self.drain();
    }

    fn finish(&mut self) {
        self.before_finish = self.out.len();
        self.demux.finish();
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(p) = self.demux.poll_pes() {
            self.out
                .push((p.kind, p.pid, p.pts, p.dts, p.payload, p.release));
        }
        let s = self.demux.stats();
        let old = self.stats;
        assert!(
            s.cc_errors >= old.cc_errors
                && s.dropped_pes >= old.dropped_pes
                && s.late_payload >= old.late_payload
                && s.bad_sections >= old.bad_sections
                && s.jumps >= old.jumps,
            "stats went down: {old:?} -> {s:?}"
        );
        self.stats = s;
    }
}

fn check_outputs(out: &[Out]) {
    let mut last: [Option<i64>; 2] = [None, None];
    for (kind, pid, pts, dts, payload, release) in out {
        assert!(payload.len() <= MAX_PES, "PES of {} bytes", payload.len());
        assert_eq!(pts.is_some(), dts.is_some(), "pid {pid}: {pts:?} {dts:?}");
        let (Some(pts), Some(dts)) = (pts, dts) else {
            continue;
        };
        assert!(
            (pts - dts).abs() <= 1 << 32,
            "pid {pid}: pts {pts} dts {dts}"
        );
        let slot = &mut last[usize::from(*kind == TrackKind::Audio)];
        if let Some(prev) = *slot {
            let step = dts - prev;
            assert!(
                (-90_000..=900_000).contains(&step),
                "{kind:?} DTS stepped by {step} ({prev} -> {dts}, {release:?})"
            );
        }
        *slot = Some(*dts);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16);
    let Some((splits, stream)) = rest.split_at_checked(2 * n) else {
        return;
    };
    let mut points: Vec<usize> = splits
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    points.sort_unstable();

    let mut whole = Run::default();
    whole.push(stream);

    let mut chunked = Run::default();
    let mut from = 0;
    for &p in &points {
        chunked.push(&stream[from..p]);
        from = p;
    }
    chunked.push(&stream[from..]);

    let mut runs = vec![chunked];
    if stream.len() <= 4096 {
        let mut bytewise = Run::default();
        for b in stream {
            bytewise.push(std::slice::from_ref(b));
        }
        runs.push(bytewise);
    }

    for r in &runs {
        assert!(r.out == whole.out, "PES differ, split at {points:?}");
        assert_eq!(r.stats, whole.stats, "split at {points:?}");
        assert_eq!(r.demux.program_found(), whole.demux.program_found());
    }

    whole.finish();
    for r in &mut runs {
        r.finish();
        assert_eq!(r.before_finish, whole.before_finish);
        assert!(
            r.out == whole.out,
            "PES differ after finish, split at {points:?}"
        );
        assert_eq!(r.stats, whole.stats, "after finish, split at {points:?}");
    }
    check_outputs(&whole.out);
});
