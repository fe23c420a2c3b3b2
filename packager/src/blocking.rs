//! The blocking-playlist-reload decision (rfc8216bis §6.2.5.2), as a pure
//! function of a snapshot and the request's directives.
//!
//! The HTTP shell calls [`decide`] on every new snapshot of the rendition: on
//! [`Decision::Ready`] it renders and answers, on [`Decision::Wait`] it waits
//! for the next snapshot (with its own 3 × target-duration deadline, then 503:
//! rfc8216bis §6.2.5.2: "A Server that cannot provide the requested Playlist
//! after blocking for more than three Target Durations SHOULD return Service
//! Unavailable, such as HTTP 503"), on [`Decision::Reject`] it answers 400 with
//! the reason.
//!
//! Definitions used below, for a snapshot `s`:
//! - *L*, the last Media Segment: the last complete segment. The segment in
//!   progress is not a Media Segment yet (it has no EXTINF and URI); only its
//!   parts are listed.
//! - *live MSN*: `s.live_msn()`, the segment in progress or, between segments,
//!   the one after L. It is L + 1 whenever L exists.
//! - *first MSN*: the MSN of the first segment listed (complete, or else in
//!   progress).
//!
//! Ready is monotone: once a request is Ready for a snapshot it is Ready for
//! every later snapshot of the same rendition (more parts, more segments, old
//! segments evicted, or ended); and a request that waits, once anything has
//! been published, is never rejected later (the limits only move forward).
//! Both are property-tested below.

use thiserror::Error;

use crate::directives::Directives;
use crate::rendition::RenditionSnapshot;
use crate::units::{Msn, PartIndex, TS_TIMESCALE};

/// What to do with a playlist request now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Answer with the current playlist.
    Ready,
    /// Hold the request until the next snapshot, then decide again.
    Wait,
    /// Answer 400 Bad Request.
    Reject(RejectReason),
}

/// Why a request is refused; the message is a client-safe 400 body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum RejectReason {
    /// rfc8216bis §6.2.5.2: "If the Playlist URI contains an _HLS_part directive
    /// but no _HLS_msn directive, the Server MUST return Bad Request, such as
    /// HTTP 400." (`directives::parse` already refuses this; a hand-built
    /// `Directives` gets the same answer here.)
    #[error("_HLS_part requires _HLS_msn")]
    PartWithoutMsn,
    /// `_HLS_msn` is more than two beyond the last Media Segment.
    #[error(
        "_HLS_msn={requested} is too far ahead: the playlist can be awaited up to segment {max}"
    )]
    MsnTooFarAhead { requested: Msn, max: Msn },
    /// `_HLS_part` is beyond the Advance Part Limit.
    #[error("_HLS_msn={msn}&_HLS_part={part} is too far ahead of the last part")]
    PartTooFarAhead { msn: Msn, part: PartIndex },
}

/// Decides a playlist request with directives `d` against snapshot `s`.
#[must_use]
pub fn decide(s: &RenditionSnapshot, d: &Directives) -> Decision {
    // rfc8216bis §6.2.5.2: "A Server MUST ignore _HLS_msn and _HLS_part if the
    // Playlist contains an EXT-X-ENDLIST tag."
    if s.ended {
        return Decision::Ready;
    }
    let Some(msn) = d.msn else {
        return if d.part.is_some() {
            Decision::Reject(RejectReason::PartWithoutMsn)
        } else if s.segments.is_empty() {
            // A first load (no `_HLS_msn`) before the first segment is
            // complete would list parts but no Media Segment; players start
            // from a segment (hls.js: "No Segments found in Playlist", an
            // error it turns fatal after a few retries), so it waits for one.
            Decision::Wait
        } else {
            Decision::Ready
        };
    };
    // Nothing published yet: nothing to measure a request against. The shell's
    // 3 × target-duration deadline bounds the wait.
    let Some(live) = s.live_msn() else {
        return Decision::Wait;
    };

    // rfc8216bis §6.2.5.2: "If the _HLS_msn is greater than the Media Sequence
    // Number of the last Media Segment in the current Playlist plus two, or if the
    // _HLS_part exceeds the last Partial Segment in the current Playlist by the
    // Advance Part Limit, then the server SHOULD immediately return Bad Request,
    // such as HTTP 400." L + 2 is live + 1 (also when no segment is complete yet
    // and the one in progress is the first: L would be its predecessor).
    let max = Msn(live.0.saturating_add(1));
    if msn > max {
        return Decision::Reject(RejectReason::MsnTooFarAhead {
            requested: msn,
            max,
        });
    }

    match d.part {
        None => {
            // rfc8216bis §6.2.5.2: "When the Playlist URI contains an _HLS_msn
            // directive and no _HLS_part directive, the Server MUST defer responding
            // to the request until the Playlist contains a Media Segment with a Media
            // Sequence Number of M or later or it responds with an error."
            if has_segment(s, msn) {
                Decision::Ready
            } else {
                Decision::Wait
            }
        }
        Some(part) => {
            let (msn, part) = roll_over(s, msn, part);
            // rfc8216bis §6.2.5.2: "When the Playlist URI contains both an _HLS_msn
            // directive and an _HLS_part directive, the Server MUST defer responding
            // to the request until the Playlist contains the Partial Segment with Part
            // Index N and with a Media Sequence Number of M or later or it responds
            // with an error."
            if has_part(s, msn, part) {
                Decision::Ready
            } else if beyond_advance_part_limit(s, msn, part) {
                Decision::Reject(RejectReason::PartTooFarAhead { msn, part })
            } else {
                Decision::Wait
            }
        }
    }
}

fn first_msn(s: &RenditionSnapshot) -> Option<Msn> {
    s.segments
        .first()
        .map(|seg| seg.msn)
        .or_else(|| s.open.as_ref().map(|o| o.msn))
}

fn last_complete(s: &RenditionSnapshot) -> Option<Msn> {
    s.segments.last().map(|seg| seg.msn)
}

/// A segment that has already left the window. rfc8216bis §6.2.5.2: "The Server
/// MUST deliver the entire Playlist, even if the requested Media Segment is not
/// the last one in the Playlist, and even if it is no longer in the Playlist."
fn passed(s: &RenditionSnapshot, msn: Msn) -> bool {
    first_msn(s).is_some_and(|first| msn < first)
}

/// The playlist has Media Segment `msn` or a later one, complete.
fn has_segment(s: &RenditionSnapshot, msn: Msn) -> bool {
    passed(s, msn) || last_complete(s).is_some_and(|last| msn <= last)
}

/// rfc8216bis §6.2.5.2: "If the Client requests a Part Index greater than that
/// of the final Partial Segment of the Parent Segment, the Server MUST treat the
/// request as one for Part Index 0 of the following Parent Segment." The final
/// part is known once the segment is complete; for the segment in progress
/// every index may still come.
fn roll_over(s: &RenditionSnapshot, msn: Msn, part: PartIndex) -> (Msn, PartIndex) {
    match s.segment(msn) {
        Some(seg) if usize::try_from(part.0).map_or(true, |p| p >= seg.parts.len()) => {
            (msn.next(), PartIndex(0))
        }
        _ => (msn, part),
    }
}

/// The playlist has part `part` of segment `msn`, or a later part. A complete
/// segment has all of its parts (after [`roll_over`], `part` is one of them).
fn has_part(s: &RenditionSnapshot, msn: Msn, part: PartIndex) -> bool {
    if passed(s, msn) || last_complete(s).is_some_and(|last| msn <= last) {
        return true;
    }
    s.open.as_ref().is_some_and(|open| {
        msn < open.msn || (msn == open.msn && open.parts.last().is_some_and(|p| p.index >= part))
    })
}

/// rfc8216bis §6.2.5.2: "The Advance Part Limit is three divided by the Part
/// Target Duration if the Part Target Duration is less than one second, or three
/// otherwise."
///
/// The advance is counted in parts from the last part listed, (Ml, Pl), to the
/// request (M, P) after [`roll_over`]:
/// - M = Ml: P − Pl;
/// - M > Ml: at least P + 1 (part 0 of M is one past the last part even if Ml
///   ended right now; the parts Ml may still get only add to it). Using this
///   lower bound, only requests that are certainly too far ahead are refused.
/// - M < Ml cannot reach here (such a request is already satisfied).
///
/// "exceeds ... by the limit" is read as advance > limit. With the limit
/// 3 / PART-TARGET, advance > 3 / PART-TARGET ⇔ advance × PART-TARGET > 3 s, which
/// is compared in ticks without division. No limit applies while no part exists,
/// or if PART-TARGET is not positive.
fn beyond_advance_part_limit(s: &RenditionSnapshot, msn: Msn, part: PartIndex) -> bool {
    let Some((last_msn, last_part)) = s.last_part() else {
        return false;
    };
    let advance: u128 = if msn == last_msn {
        u128::from(part.0.saturating_sub(last_part.0))
    } else if msn > last_msn {
        u128::from(part.0) + 1
    } else {
        0
    };
    let part_target = s.params.part_target.0;
    let Ok(part_target) = u128::try_from(part_target) else {
        return false;
    };
    if part_target == 0 {
        return false;
    }
    let three_secs = 3 * u128::from(TS_TIMESCALE);
    if part_target < u128::from(TS_TIMESCALE) {
        advance * part_target > three_secs
    } else {
        advance > 3
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::directives::Skip;
    use crate::rendition::{OpenSegment, Part, PlaylistParams, Rendition, Retention};
    use crate::units::{MediaTime, PartSeq, WallTime};

    const PART_MS: i64 = 500;

    fn params(part_ms: i64) -> PlaylistParams {
        PlaylistParams {
            target_duration_secs: 2,
            part_target: MediaTime::from_millis(part_ms),
        }
    }

    /// Drives a real `Rendition` through `layout` (parts per segment; the last
    /// entry is left in progress) and returns it.
    fn rendition(first_msn: u64, layout: &[u32], retention: usize) -> Rendition {
        let mut r = Rendition::new(
            params(PART_MS),
            Bytes::new(),
            Retention {
                segments: retention,
            },
        );
        let mut seq = 0;
        for (k, &parts) in layout.iter().enumerate() {
            let msn = Msn(first_msn + k as u64);
            for i in 0..parts {
                let open = (i == 0).then(|| open_segment(msn));
                r.push_part(open, part(seq, i));
                seq += 1;
            }
            if k + 1 < layout.len() {
                r.complete_segment(MediaTime::from_millis(PART_MS * i64::from(parts)));
            }
        }
        r
    }

    fn open_segment(msn: Msn) -> OpenSegment {
        OpenSegment {
            msn,
            start: MediaTime::ZERO,
            program_date_time: WallTime(0),
            discontinuity: false,
            init: crate::units::InitId(0),
            parts: Vec::new(),
        }
    }

    fn part(seq: u64, index: u32) -> Part {
        Part {
            seq: PartSeq(seq),
            index: PartIndex(index),
            duration: MediaTime::from_millis(PART_MS),
            independent: index == 0,
            gap: false,
            data: Bytes::new(),
        }
    }

    fn req(msn: Option<u64>, part: Option<u32>) -> Directives {
        Directives {
            msn: msn.map(Msn),
            part: part.map(PartIndex),
            skip: None,
        }
    }

    fn too_far(msn: u64, max: u64) -> Decision {
        Decision::Reject(RejectReason::MsnTooFarAhead {
            requested: Msn(msn),
            max: Msn(max),
        })
    }

    fn part_too_far(msn: u64, part: u32) -> Decision {
        Decision::Reject(RejectReason::PartTooFarAhead {
            msn: Msn(msn),
            part: PartIndex(part),
        })
    }

    #[test]
    fn table() {
        use Decision::{Ready, Wait};
        // Segments 10, 11, 12 complete with 4 parts each; 13 in progress with parts
        // 0 and 1. L = 12, live = 13, max MSN = 14. PART-TARGET 0.5 s: limit 6 parts.
        let live = rendition(10, &[4, 4, 4, 2], 8);
        let s = live.snapshot();
        let table: &[(&str, Directives, Decision)] = &[
            ("no directives", req(None, None), Ready),
            (
                "part without msn",
                req(None, Some(0)),
                Decision::Reject(RejectReason::PartWithoutMsn),
            ),
            ("complete segment", req(Some(12), None), Ready),
            ("older segment", req(Some(10), None), Ready),
            ("evicted segment", req(Some(3), None), Ready),
            (
                "segment in progress is not a Media Segment",
                req(Some(13), None),
                Wait,
            ),
            ("L + 2 may be awaited", req(Some(14), None), Wait),
            ("L + 3 is refused", req(Some(15), None), too_far(15, 14)),
            (
                "huge msn",
                req(Some(u64::MAX), Some(0)),
                too_far(u64::MAX, 14),
            ),
            ("part of a complete segment", req(Some(12), Some(3)), Ready),
            ("listed part in progress", req(Some(13), Some(1)), Ready),
            ("hinted part", req(Some(13), Some(2)), Wait),
            (
                "past the last part of complete 12: part 0 of 13",
                req(Some(12), Some(4)),
                Ready,
            ),
            (
                "far past the last part of 12: still part 0 of 13",
                req(Some(12), Some(1000)),
                Ready,
            ),
            ("next segment, part 0", req(Some(14), Some(0)), Wait),
            ("advance exactly 6 parts", req(Some(13), Some(7)), Wait),
            (
                "advance 7 parts",
                req(Some(13), Some(8)),
                part_too_far(13, 8),
            ),
            ("next segment, advance >= 6", req(Some(14), Some(5)), Wait),
            (
                "next segment, advance >= 7",
                req(Some(14), Some(6)),
                part_too_far(14, 6),
            ),
            (
                "part index overflow",
                req(Some(13), Some(u32::MAX)),
                part_too_far(13, u32::MAX),
            ),
        ];
        for (name, d, want) in table {
            assert_eq!(decide(s, d), *want, "{name}");
        }
    }

    #[test]
    fn between_segments() {
        use Decision::{Ready, Wait};
        // 10 and 11 complete; nothing of 12 yet. L = 11, live = 12, max = 13.
        let mut r = rendition(10, &[4, 4], 8);
        r.complete_segment(MediaTime::from_millis(2000));
        let s = r.snapshot();
        assert!(s.open.is_none());
        assert_eq!(decide(s, &req(Some(11), None)), Ready);
        assert_eq!(decide(s, &req(Some(12), None)), Wait);
        assert_eq!(decide(s, &req(Some(13), None)), Wait);
        assert_eq!(decide(s, &req(Some(14), None)), too_far(14, 13));
        assert_eq!(decide(s, &req(Some(11), Some(3))), Ready);
        // Part 4 of 11 does not exist: part 0 of 12, not yet there.
        assert_eq!(decide(s, &req(Some(11), Some(4))), Wait);
        assert_eq!(decide(s, &req(Some(12), Some(0))), Wait);
        assert_eq!(decide(s, &req(Some(12), Some(5))), Wait);
        assert_eq!(decide(s, &req(Some(12), Some(6))), part_too_far(12, 6));
    }

    #[test]
    fn only_a_segment_in_progress() {
        use Decision::{Ready, Wait};
        // Segment 0 in progress with one part; no complete segment.
        let r = rendition(0, &[1], 8);
        let s = r.snapshot();
        assert_eq!(decide(s, &req(Some(0), Some(0))), Ready);
        assert_eq!(decide(s, &req(Some(0), Some(1))), Wait);
        assert_eq!(decide(s, &req(Some(0), None)), Wait);
        assert_eq!(decide(s, &req(Some(1), None)), Wait);
        assert_eq!(decide(s, &req(Some(2), None)), too_far(2, 1));
    }

    #[test]
    fn nothing_published_waits() {
        let r = Rendition::new(params(PART_MS), Bytes::new(), Retention::default());
        assert_eq!(decide(r.snapshot(), &req(Some(0), Some(0))), Decision::Wait);
        assert_eq!(decide(r.snapshot(), &req(Some(99), None)), Decision::Wait);
        assert_eq!(decide(r.snapshot(), &req(None, None)), Decision::Wait);
    }

    #[test]
    fn a_first_load_waits_for_the_first_segment() {
        // Parts of segment 0, not yet complete: a plain load would list no
        // Media Segment.
        assert_eq!(
            decide(rendition(0, &[3], 8).snapshot(), &req(None, None)),
            Decision::Wait
        );
        assert_eq!(
            decide(rendition(0, &[4, 1], 8).snapshot(), &req(None, None)),
            Decision::Ready
        );
    }

    /// Kept from a proptest failure (layout [1], msn 2): before anything is
    /// published a request waits, whatever it asks for; once the first part is
    /// out the same request can be refused. This is the one way from Wait to
    /// Reject.
    #[test]
    fn limits_start_with_the_first_part() {
        let empty = Rendition::new(params(PART_MS), Bytes::new(), Retention::default());
        assert_eq!(
            decide(empty.snapshot(), &req(Some(2), None)),
            Decision::Wait
        );
        let first = rendition(0, &[1], 1);
        assert_eq!(decide(first.snapshot(), &req(Some(2), None)), too_far(2, 1));
    }

    #[test]
    fn ended_ignores_directives() {
        let mut r = rendition(10, &[4, 2], 8);
        r.end(Some(MediaTime::from_millis(1000)));
        let s = r.snapshot();
        for d in [
            req(Some(99), Some(99)),
            req(Some(u64::MAX), None),
            req(None, Some(3)),
            Directives {
                skip: Some(Skip::V2),
                ..req(Some(12), None)
            },
        ] {
            assert_eq!(decide(s, &d), Decision::Ready, "{d:?}");
        }
    }

    #[test]
    fn advance_part_limit_follows_the_part_target() {
        // PART-TARGET 0.2 s: limit 15 parts. 1.0 s or more: limit 3.
        let r = rendition(0, &[1], 8);
        let check = |part_ms: i64, ok: u32, refused: u32| {
            let mut s = r.snapshot().clone();
            s.params = params(part_ms);
            assert_eq!(
                decide(&s, &req(Some(0), Some(ok))),
                Decision::Wait,
                "{part_ms}"
            );
            assert_eq!(
                decide(&s, &req(Some(0), Some(refused))),
                part_too_far(0, refused)
            );
        };
        check(200, 15, 16);
        check(1000, 3, 4);
        check(2000, 3, 4);
        // 0.33367 s (30030 ticks): 3 / 0.33367 = 8.99, so 8 parts pass, 9 do not.
        let mut s = r.snapshot().clone();
        s.params.part_target = MediaTime(30_030);
        assert_eq!(decide(&s, &req(Some(0), Some(8))), Decision::Wait);
        assert_eq!(decide(&s, &req(Some(0), Some(9))), part_too_far(0, 9));
    }

    #[test]
    fn messages() {
        assert_eq!(
            RejectReason::MsnTooFarAhead {
                requested: Msn(15),
                max: Msn(14)
            }
            .to_string(),
            "_HLS_msn=15 is too far ahead: the playlist can be awaited up to segment 14"
        );
        assert_eq!(
            RejectReason::PartTooFarAhead {
                msn: Msn(13),
                part: PartIndex(8)
            }
            .to_string(),
            "_HLS_msn=13&_HLS_part=8 is too far ahead of the last part"
        );
    }

    /// Every snapshot a rendition publishes for `layout`, in order, optionally
    /// ending with `end()`.
    fn history(layout: &[u32], retention: usize, end: bool) -> Vec<RenditionSnapshot> {
        let mut r = Rendition::new(
            params(PART_MS),
            Bytes::new(),
            Retention {
                segments: retention,
            },
        );
        let mut out = vec![r.snapshot().clone()];
        let mut seq = 0;
        for (k, &parts) in layout.iter().enumerate() {
            for i in 0..parts {
                let open = (i == 0).then(|| open_segment(Msn(k as u64)));
                r.push_part(open, part(seq, i));
                seq += 1;
                out.push(r.snapshot().clone());
            }
            if k + 1 < layout.len() {
                r.complete_segment(MediaTime::from_millis(PART_MS * i64::from(parts)));
                out.push(r.snapshot().clone());
            }
        }
        if end {
            r.end(Some(MediaTime::from_millis(PART_MS)));
            out.push(r.snapshot().clone());
        }
        out
    }

    proptest! {
        /// Once Ready, Ready for every later snapshot; once Wait, never Reject later.
        #[test]
        fn ready_is_monotone(
            layout in proptest::collection::vec(1_u32..=6, 1..10),
            retention in 1_usize..=4,
            end in any::<bool>(),
            msn in 0_u64..14,
            part in proptest::option::of(0_u32..16),
        ) {
            let snapshots = history(&layout, retention, end);
            let d = req(Some(msn), part);
            let mut seen_ready = false;
            let mut seen_wait = false;
            for (i, s) in snapshots.iter().enumerate() {
                let decision = decide(s, &d);
                if seen_ready {
                    prop_assert_eq!(decision, Decision::Ready, "snapshot {} of {:?}", i, layout);
                }
                if seen_wait {
                    prop_assert!(
                        !matches!(decision, Decision::Reject(_)),
                        "snapshot {} of {:?}: {:?} after Wait", i, layout, decision
                    );
                }
                seen_ready |= decision == Decision::Ready;
                // Before anything is published every request waits; the limits
                // exist from the first part on.
                seen_wait |= decision == Decision::Wait && s.live_msn().is_some();
            }
            if end {
                let last = snapshots.last().map(|s| decide(s, &d));
                prop_assert_eq!(last, Some(Decision::Ready));
            }
        }

        /// A request for the next part after the last one listed (what players
        /// send) is never refused: at most it waits.
        #[test]
        fn next_part_is_never_refused(
            layout in proptest::collection::vec(1_u32..=6, 1..10),
            retention in 1_usize..=4,
        ) {
            for s in history(&layout, retention, false) {
                if let Some((msn, last)) = s.last_part() {
                    for d in [
                        req(Some(msn.0), Some(last.0 + 1)),
                        req(Some(msn.0 + 1), Some(0)),
                        req(Some(msn.0 + 1), None),
                    ] {
                        prop_assert!(!matches!(decide(&s, &d), Decision::Reject(_)), "{:?}", d);
                    }
                }
            }
        }
    }
}
