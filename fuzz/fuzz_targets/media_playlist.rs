//! `packager::playlist::render_media_playlist` on a `Rendition` built from an
//! arbitrary sequence of `push_part` / `complete_segment` / `end` / `set_init`,
//! with sane, monotone numbers (MSN +1 per segment, part sequence +1 per part,
//! part durations in 1..=PART-TARGET, segments no longer than TARGETDURATION,
//! program date-times following media time). After every operation the
//! playlist is rendered and checked:
//! - `m3u8-rs` (6.x, shares no code with ours) parses all of it, and what it
//!   reads (target duration, version, media sequence, discontinuity sequence,
//!   segment URIs, EXTINF, discontinuities, PROGRAM-DATE-TIME, ENDLIST) matches
//!   the model (after every 8th part and every other operation: that parse is
//!   most of the cost of a run);
//! - every `#EXT-X-PART` URI appears once, names a part the snapshot serves,
//!   with the model's duration (≤ PART-TARGET as written) and INDEPENDENT flag;
//!   listed parts are consecutive and end with the last part pushed;
//! - `#EXT-X-PRELOAD-HINT` is there exactly while live after the first part, and
//!   names part<last + 1>, which is not listed yet;
//! - DISCONTINUITY, MAP and PROGRAM-DATE-TIME come before a segment's first
//!   EXT-X-PART (rfc8216bis §4.4.4.9); every segment, and the open one, is under
//!   the `init{n}.mp4` MAP of the init current when it opened, served with the
//!   bytes that were set; parts are listed for a suffix of the complete
//!   segments; every segment URI is served with its parts' bytes.
#![no_main]

use std::collections::HashSet;

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use packager::playlist::{
    MediaRenderOptions, ObjectName, parse_object_name, render_media_playlist,
};
use packager::rendition::{
    OpenSegment, Part, PlaylistParams, Rendition, RenditionSnapshot, Retention,
};
use packager::units::{InitId, MediaTime, Msn, PartIndex, PartSeq, WallTime};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    /// A part of `duration` (taken modulo PART-TARGET, plus one tick); it opens
    /// a new segment when asked to, when none is open, or when the open one
    /// would grow past TARGETDURATION (closing that one first).
    Part {
        duration: u32,
        new_segment: bool,
        discontinuity: bool,
        independent: bool,
    },
    /// `complete_segment` with the sum of the open segment's parts (a no-op
    /// when none is open, which is allowed).
    Complete,
    /// `end`, with the open segment's duration if one is open; nothing follows.
    End,
    /// `set_init` with one of a few byte strings (equal bytes: same init).
    SetInit(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    target_secs: u8,
    part_target_ms: u16,
    window: u8,
    first_msn: u32,
    first_seq: u32,
    /// Seconds after 2000-01-01 of the first PROGRAM-DATE-TIME.
    wall_start: u32,
    delta_updates: bool,
    ops: Vec<Op>,
}

#[derive(Debug)]
struct ModelSegment {
    msn: Msn,
    pdt: WallTime,
    discontinuity: bool,
    init: InitId,
    /// (seq, duration, independent)
    parts: Vec<(PartSeq, MediaTime, bool)>,
}

impl ModelSegment {
    fn duration(&self) -> MediaTime {
        self.parts.iter().fold(MediaTime::ZERO, |a, p| a + p.1)
    }
}

#[derive(Debug)]
struct Model {
    params: PlaylistParams,
    window: usize,
    complete: Vec<ModelSegment>,
    open: Option<ModelSegment>,
    next_msn: Msn,
    next_seq: PartSeq,
    any_part: bool,
    media_time: MediaTime,
    wall_start: WallTime,
    ended: bool,
    /// The init segments set so far, the current one last.
    inits: Vec<(InitId, u8)>,
    first_seq: PartSeq,
    /// Every part pushed, in order: (seq, duration, independent).
    all_parts: Vec<(PartSeq, MediaTime, bool)>,
}

impl Model {
    /// The complete segments still in the playlist, and how many were evicted.
    fn window(&self) -> (&[ModelSegment], usize) {
        let evicted = self.complete.len().saturating_sub(self.window);
        (&self.complete[evicted..], evicted)
    }

    /// EXT-X-DISCONTINUITY-SEQUENCE: discontinuities before the first listed segment.
    fn discontinuity_sequence(&self) -> u64 {
        let (_, evicted) = self.window();
        self.complete
            .iter()
            .take(evicted + 1)
            .skip(1)
            .filter(|s| s.discontinuity)
            .count() as u64
    }
}

fn secs(t: MediaTime) -> f64 {
    t.0 as f64 / 90_000.0
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(name)? + name.len();
    let rest = &line[at..];
    if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next()
    } else {
        rest.split(',').next()
    }
}

/// `full`: also parse with m3u8-rs (most of the time of a run goes there, in
/// coverage hooks on nom's byte comparisons, so not after every operation).
fn check(model: &Model, rendition: &Rendition, opts: &MediaRenderOptions, full: bool) {
    let snapshot = rendition.snapshot();
    let text = render_media_playlist(snapshot, opts);
    // An independent parser reads it all, and reads what we meant.
    if full {
        independent_parse(model, snapshot, opts, &text);
    }
    own_checks(model, snapshot, &text);
}

fn independent_parse(
    model: &Model,
    snapshot: &RenditionSnapshot,
    opts: &MediaRenderOptions,
    text: &str,
) {
    let params = model.params;
    let (window, _) = model.window();
    let live_open = if model.ended {
        None
    } else {
        model.open.as_ref()
    };
    let (rest, pl) = match m3u8_rs::parse_media_playlist(text.as_bytes()) {
        Ok(v) => v,
        Err(e) => panic!("m3u8-rs rejects the playlist: {e:?}\n{text}"),
    };
    assert!(
        rest.is_empty(),
        "m3u8-rs stopped at {:?}\n{text}",
        String::from_utf8_lossy(rest)
    );
    assert_eq!(pl.target_duration, u64::from(params.target_duration_secs));
    let media_sequence = window.first().or(live_open).map_or(0, |s| s.msn.0);
    assert_eq!(pl.media_sequence, media_sequence, "{text}");
    assert_eq!(
        pl.discontinuity_sequence,
        model.discontinuity_sequence(),
        "{text}"
    );
    assert_eq!(pl.end_list, model.ended, "{text}");
    assert_eq!(
        pl.version,
        Some(if opts.can_skip_until().is_some() {
            9
        } else {
            6
        })
    );
    assert_eq!(pl.segments.len(), window.len(), "{text}");
    for (i, (got, want)) in pl.segments.iter().zip(window).enumerate() {
        assert_eq!(got.uri, format!("seg{}.m4s", want.msn), "{text}");
        let d = secs(want.duration());
        assert!(
            (f64::from(got.duration) - d).abs() <= 1e-5 + d * 1e-6,
            "EXTINF {} for {d}\n{text}",
            got.duration
        );
        // rfc8216bis §4.4.3.1: EXTINF rounded to the nearest integer ≤ TARGETDURATION.
        assert!(
            f64::from(got.duration).round() <= f64::from(params.target_duration_secs),
            "{text}"
        );
        assert_eq!(got.discontinuity, i > 0 && want.discontinuity, "{text}");
        let pdt = got
            .program_date_time
            .expect("PROGRAM-DATE-TIME on every segment");
        assert_eq!(pdt.timestamp_millis(), want.pdt.as_millis(), "{text}");
        assert_eq!(
            parse_object_name(&got.uri),
            Some(ObjectName::Segment(want.msn))
        );
        let seg = snapshot
            .segment(want.msn)
            .expect("listed segment is served");
        let data: Vec<u8> = want
            .parts
            .iter()
            .flat_map(|p| p.0.0.to_le_bytes())
            .collect();
        assert_eq!(&seg.data[..], &data[..], "segment {} bytes", want.msn);
    }
}

fn own_checks(model: &Model, snapshot: &RenditionSnapshot, text: &str) {
    let (window, _) = model.window();
    let live_open = if model.ended {
        None
    } else {
        model.open.as_ref()
    };

    // Line structure.
    assert!(
        text.starts_with("#EXTM3U\n") && text.ends_with('\n'),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().all(|l| !l.is_empty() && !l.ends_with(' ')),
        "{text}"
    );
    let part_target = lines
        .iter()
        .find_map(|l| l.strip_prefix("#EXT-X-PART-INF:PART-TARGET="))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("PART-TARGET");

    // Per block of lines up to a segment URI: PDT and DISCONTINUITY before the
    // first EXT-X-PART; whether the block lists parts.
    let mut seen_pdt = false;
    let mut seen_map = false;
    let mut map: Option<InitId> = None;
    let mut segment_inits: Vec<InitId> = Vec::new();
    let mut block_parts = 0_usize;
    let mut blocks_listing: Vec<bool> = Vec::new();
    let mut uris = HashSet::new();
    let mut listed: Vec<PartSeq> = Vec::new();
    let mut hints = Vec::new();
    let all_parts = &model.all_parts;
    for line in &lines {
        if let Some(tag) = line.strip_prefix("#EXT-X-PART:") {
            assert!(seen_pdt, "EXT-X-PART before PROGRAM-DATE-TIME\n{text}");
            block_parts += 1;
            let uri = attr(tag, "URI=").expect("URI");
            assert!(uris.insert(uri.to_owned()), "{uri} listed twice\n{text}");
            let Some(ObjectName::Part(seq)) = parse_object_name(uri) else {
                panic!("{uri} is not a part name");
            };
            // Sequence numbers are consecutive from the first part pushed.
            let (pushed, d, independent) = seq
                .0
                .checked_sub(model.first_seq.0)
                .and_then(|i| all_parts.get(usize::try_from(i).ok()?))
                .copied()
                .unwrap_or_else(|| panic!("{uri} was never pushed\n{text}"));
            assert_eq!(pushed, seq);
            let served = snapshot.part(seq).expect("listed part is served");
            assert_eq!(served.duration, d);
            let got_d: f64 = attr(tag, "DURATION=")
                .and_then(|v| v.parse().ok())
                .expect("DURATION");
            assert!((got_d - secs(d)).abs() <= 1e-5, "{line} for {d:?}");
            assert!(got_d <= part_target, "{line} > PART-TARGET {part_target}");
            assert_eq!(tag.contains(",INDEPENDENT=YES"), independent, "{line}");
            listed.push(seq);
        } else if line.starts_with("#EXT-X-PROGRAM-DATE-TIME:") {
            assert!(!seen_pdt && block_parts == 0, "PDT after parts\n{text}");
            seen_pdt = true;
        } else if *line == "#EXT-X-DISCONTINUITY" {
            assert!(
                !seen_pdt && !seen_map && block_parts == 0,
                "DISCONTINUITY after MAP, PDT or parts\n{text}"
            );
        } else if let Some(m) = line.strip_prefix("#EXT-X-MAP:") {
            // rfc8216bis §4.4.4.9: EXT-X-MAP before the first EXT-X-PART of its segment.
            assert!(
                !seen_pdt && block_parts == 0,
                "MAP after PDT or parts\n{text}"
            );
            seen_map = true;
            let uri = attr(m, "URI=").expect("MAP URI");
            let Some(ObjectName::Init(id)) = parse_object_name(uri) else {
                panic!("{uri} is not an init name");
            };
            assert!(snapshot.init(id).is_some(), "{uri} is not served\n{text}");
            map = Some(id);
        } else if let Some(h) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            hints.push(h);
        } else if !line.starts_with('#') {
            blocks_listing.push(block_parts > 0);
            segment_inits.push(map.expect("EXT-X-MAP before the first segment"));
            seen_pdt = false;
            seen_map = false;
            block_parts = 0;
        }
    }
    // Parts are listed for the last segments only, newest kept longest.
    if let Some(first) = blocks_listing.iter().position(|l| *l) {
        assert!(
            blocks_listing[first..].iter().all(|l| *l),
            "part window has a hole\n{text}"
        );
    }
    // The open segment lists all its parts; the list is consecutive and ends at the newest part.
    for w in listed.windows(2) {
        assert_eq!(w[1], w[0].next(), "listed parts skip\n{text}");
    }
    // Every segment, and the open one, under the MAP of its own init, served
    // with the bytes that were set.
    let want_inits: Vec<InitId> = window.iter().map(|s| s.init).collect();
    assert_eq!(segment_inits, want_inits, "EXT-X-MAP\n{text}");
    for seg in window.iter().chain(live_open) {
        let bytes = model
            .inits
            .iter()
            .find(|i| i.0 == seg.init)
            .expect("model init")
            .1;
        assert_eq!(
            snapshot.init(seg.init).map(|b| &b[..]),
            Some(&[bytes; 4][..]),
            "init{}",
            seg.init
        );
    }
    if let Some(open) = live_open {
        assert_eq!(map, Some(open.init), "MAP of the open segment\n{text}");
        assert_eq!(block_parts, open.parts.len(), "open segment parts\n{text}");
    } else {
        assert_eq!(block_parts, 0, "parts after the last segment\n{text}");
    }
    if model.any_part {
        let last = all_parts.last().map(|p| p.0);
        assert_eq!(
            listed.last().copied(),
            last,
            "newest part not listed\n{text}"
        );
    }
    // rfc8216bis §4.4.5.3: the hint names the next part while live.
    if model.ended || !model.any_part {
        assert!(hints.is_empty(), "{text}");
    } else {
        assert_eq!(hints.len(), 1, "{text}");
        assert_eq!(hints[0].split(',').next(), Some("TYPE=PART"));
        let uri = attr(hints[0], "URI=").expect("hint URI");
        assert_eq!(uri, format!("part{}.m4s", model.next_seq), "{text}");
        assert!(!uris.contains(uri), "hinted part already listed\n{text}");
    }
    if model.ended {
        assert_eq!(lines.last(), Some(&"#EXT-X-ENDLIST"));
    }
}

fuzz_target!(|input: Input| {
    let target_secs = 1 + u32::from(input.target_secs % 10);
    // 0.1 s ..= TARGETDURATION (and at most 2 s).
    let max_pt = i64::from(target_secs).min(2) * 1000;
    let part_target = MediaTime::from_millis(100 + i64::from(input.part_target_ms) % (max_pt - 99));
    let params = PlaylistParams {
        target_duration_secs: target_secs,
        part_target,
    };
    let td = MediaTime(i64::from(target_secs) * 90_000);
    let opts = if input.delta_updates {
        MediaRenderOptions::new(
            &params,
            MediaTime(part_target.0 * 3),
            Some(MediaTime(td.0 * 3)),
            Some(MediaTime(td.0 * 6)),
        )
        .expect("options at the recommended values")
    } else {
        MediaRenderOptions::for_params(&params)
    };
    let window = 1 + usize::from(input.window % 12);
    let mut rendition = Rendition::new(
        params,
        Bytes::from(vec![0_u8; 4]),
        Retention { segments: window },
    );
    let mut model = Model {
        params,
        window,
        complete: Vec::new(),
        open: None,
        next_msn: Msn(u64::from(input.first_msn)),
        next_seq: PartSeq(u64::from(input.first_seq)),
        any_part: false,
        media_time: MediaTime::ZERO,
        wall_start: WallTime(946_684_800_000_000 + i64::from(input.wall_start) * 1_000_000),
        ended: false,
        inits: vec![(InitId(0), 0)],
        first_seq: PartSeq(u64::from(input.first_seq)),
        all_parts: Vec::new(),
    };
    check(&model, &rendition, &opts, true);

    let ops = &input.ops[..input.ops.len().min(2000)];
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Part {
                duration,
                new_segment,
                discontinuity,
                independent,
            } => {
                let d = MediaTime(1 + i64::from(duration) % part_target.0);
                let too_long = model
                    .open
                    .as_ref()
                    .is_some_and(|o| (o.duration() + d).0 > td.0);
                let open = if new_segment || too_long || model.open.is_none() {
                    if let Some(o) = model.open.take() {
                        rendition.complete_segment(o.duration());
                        model.complete.push(o);
                    }
                    let msn = model.next_msn;
                    model.next_msn = msn.next();
                    let pdt = model.wall_start.offset(model.media_time);
                    let init = model.inits.last().expect("an init").0;
                    model.open = Some(ModelSegment {
                        msn,
                        pdt,
                        discontinuity,
                        init,
                        parts: Vec::new(),
                    });
                    Some(OpenSegment {
                        msn,
                        start: model.media_time,
                        program_date_time: pdt,
                        discontinuity,
                        // Rendition::push_part sets it; a wrong value here must not matter.
                        init: InitId(u32::MAX),
                        parts: Vec::new(),
                    })
                } else {
                    None
                };
                let seg = model.open.as_mut().expect("a segment is open");
                let index = PartIndex(u32::try_from(seg.parts.len()).expect("index"));
                let independent = independent || index.0 == 0;
                let seq = model.next_seq;
                model.next_seq = seq.next();
                seg.parts.push((seq, d, independent));
                model.all_parts.push((seq, d, independent));
                model.any_part = true;
                model.media_time = model.media_time + d;
                rendition.push_part(
                    open,
                    Part {
                        seq,
                        index,
                        duration: d,
                        independent,
                        gap: false,
                        data: Bytes::copy_from_slice(&seq.0.to_le_bytes()),
                    },
                );
            }
            Op::Complete => {
                if let Some(o) = model.open.take() {
                    rendition.complete_segment(o.duration());
                    model.complete.push(o);
                } else {
                    rendition.complete_segment(MediaTime::ZERO);
                }
            }
            Op::End => {
                let last = model.open.take();
                rendition.end(last.as_ref().map(ModelSegment::duration));
                model.complete.extend(last);
                model.ended = true;
            }
            Op::SetInit(b) => {
                let b = b % 3;
                rendition.set_init(Bytes::from(vec![b; 4]));
                let &(last, bytes) = model.inits.last().expect("an init");
                if bytes != b {
                    model.inits.push((InitId(last.0 + 1), b));
                }
            }
        }
        let full = i % 8 == 7 || i + 1 == ops.len() || !matches!(op, Op::Part { .. });
        check(&model, &rendition, &opts, full);
        if model.ended {
            break;
        }
    }
});
