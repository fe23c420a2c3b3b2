//! The LL-HLS media playlist of one rendition.
//!
//! Layout (every line ends with `\n`):
//!
//! ```text
//! #EXTM3U
//! #EXT-X-VERSION:6                      (9 when delta updates are offered)
//! #EXT-X-TARGETDURATION:<s>
//! #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=…[,HOLD-BACK=…][,CAN-SKIP-UNTIL=…]
//! #EXT-X-PART-INF:PART-TARGET=<s>
//! #EXT-X-MEDIA-SEQUENCE:<msn of the first segment>
//! #EXT-X-DISCONTINUITY-SEQUENCE:<n>     (when n > 0 or a discontinuity is listed)
//! #EXT-X-SKIP:SKIPPED-SEGMENTS=<n>      (delta updates only, see below)
//! #EXT-X-MAP:URI="init.mp4"
//! #EXT-X-DATERANGE:…                    (timed metadata in the window, given pre-rendered)
//! per complete segment:
//!   #EXT-X-DISCONTINUITY                (flagged, and not the first segment)
//!   #EXT-X-PROGRAM-DATE-TIME:…
//!   #EXT-X-PART:…                       (only near the live end, see below)
//!   #EXTINF:<s>,
//!   seg<msn>.m4s
//! the segment in progress (while live):
//!   #EXT-X-DISCONTINUITY / #EXT-X-PROGRAM-DATE-TIME / #EXT-X-PART:…
//! #EXT-X-PRELOAD-HINT:TYPE=PART,URI="part<seq>.m4s"   (while live)
//! #EXT-X-ENDLIST                        (once ended)
//! #EXT-X-RENDITION-REPORT:URI="../<name>/playlist.m3u8",LAST-MSN=…,LAST-PART=…
//!                                       (one per other rendition of the stream)
//! ```
//!
//! A Playlist Delta Update ([`render_media_playlist_delta`]) is the same text
//! with the first n complete segments (every line from the first EXT-X-MAP
//! through the n-th segment URI) replaced by `#EXT-X-SKIP`, followed by the
//! tags the first listed segment still needs: its EXT-X-DISCONTINUITY when
//! flagged, then the EXT-X-MAP in effect for it. Every EXT-X-DATERANGE is
//! kept in a delta update (see [`render_media_playlist_delta`]).
//!
//! `EXT-X-INDEPENDENT-SEGMENTS` is not written: a segment may start without a
//! keyframe when the source's keyframes are too far apart (see the
//! multivariant playlist); `INDEPENDENT=YES` on parts says where they are.

use std::fmt;
use std::sync::Arc;

use thiserror::Error;

use crate::directives::Skip;
use crate::playlist::names::ObjectName;
use crate::playlist::tag::discontinuity::{Discontinuity, DiscontinuitySequence};
use crate::playlist::tag::extinf::ExtInf;
use crate::playlist::tag::map::Map;
use crate::playlist::tag::part::PartTag;
use crate::playlist::tag::part_inf::PartInf;
use crate::playlist::tag::preload_hint::PreloadHintPart;
use crate::playlist::tag::program_date_time::ProgramDateTime;
use crate::playlist::tag::rendition_report::{RenditionReport, RenditionReportTag};
use crate::playlist::tag::server_control::{
    ServerControl, min_can_skip_until, min_hold_back, min_part_hold_back,
    recommended_part_hold_back,
};
use crate::playlist::tag::skip::SkipTag;
use crate::playlist::tag::version::media_playlist_version;
use crate::rendition::{OpenSegment, Part, PlaylistParams, RenditionSnapshot};
use crate::units::{InitId, MediaTime, Msn, TS_TIMESCALE};

/// Parts are listed for segments whose end lies at most this many target
/// durations before the live end of the playlist; older segments are listed by
/// their EXTINF alone. rfc8216bis §6.2.2: "EXT-X-PART tags SHOULD be removed
/// from the Playlist after they are greater than three Target Durations from the
/// end of the Playlist." Whole segments are dropped from the part window, oldest
/// first, which keeps removal in playlist order (§6.2.2: "Media Segments and
/// EXT-X-PART tags MUST be removed from the Playlist in the order that they
/// appear in the Playlist"). Removed parts stay fetchable through
/// `RenditionSnapshot::retired_parts`.
const PART_WINDOW_TARGET_DURATIONS: i64 = 3;

/// Server-control values of a media playlist, checked against the spec's lower
/// bounds for the [`PlaylistParams`] they were built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaRenderOptions {
    part_hold_back: MediaTime,
    hold_back: Option<MediaTime>,
    can_skip_until: Option<MediaTime>,
}

/// A server-control value below what rfc8216bis §4.4.3.8 allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum MediaOptionsError {
    #[error(
        "PART-HOLD-BACK {:.5}s is below twice PART-TARGET ({:.5}s)",
        .got.as_secs_f64(),
        .min.as_secs_f64()
    )]
    PartHoldBackTooSmall { got: MediaTime, min: MediaTime },
    #[error(
        "HOLD-BACK {:.5}s is below three times TARGETDURATION ({:.5}s)",
        .got.as_secs_f64(),
        .min.as_secs_f64()
    )]
    HoldBackTooSmall { got: MediaTime, min: MediaTime },
    #[error(
        "CAN-SKIP-UNTIL {:.5}s is below six times TARGETDURATION ({:.5}s)",
        .got.as_secs_f64(),
        .min.as_secs_f64()
    )]
    CanSkipUntilTooSmall { got: MediaTime, min: MediaTime },
}

impl MediaRenderOptions {
    /// Defaults for a rendition: PART-HOLD-BACK = 3 × PART-TARGET (the SHOULD of
    /// rfc8216bis §4.4.3.8), HOLD-BACK = 3 × TARGETDURATION (its minimum, and
    /// the value its absence implies), delta updates offered with
    /// CAN-SKIP-UNTIL = 6 × TARGETDURATION (its minimum: §4.4.3.8, "The Skip
    /// Boundary MUST be at least six times the Target Duration").
    ///
    /// The smallest boundary skips the most. A delta update only skips segments
    /// lying entirely more than the boundary before the end of the last
    /// segment, so a window must hold more than 6 × TARGETDURATION of complete
    /// segments (at least 7 full ones) before anything is skipped; the gateway's
    /// default window is sized for that (`hls.window_segments`).
    #[must_use]
    pub fn for_params(params: &PlaylistParams) -> Self {
        let td = target_duration(params);
        Self {
            part_hold_back: recommended_part_hold_back(params.part_target),
            hold_back: Some(min_hold_back(td)),
            can_skip_until: Some(min_can_skip_until(td)),
        }
    }

    /// Explicit values, checked against the MUSTs of rfc8216bis §4.4.3.8:
    /// PART-HOLD-BACK ≥ 2 × PART-TARGET, HOLD-BACK ≥ 3 × TARGETDURATION,
    /// CAN-SKIP-UNTIL ≥ 6 × TARGETDURATION.
    ///
    /// When several renditions share a multivariant playlist, pass the same
    /// values to each: rfc8216bis §6.2.4 requires EXT-X-SERVER-CONTROL to be
    /// identical in all of them, and PART-HOLD-BACK "SHOULD be at least three
    /// times the maximum Part Target Duration" (§4.4.3.8).
    ///
    /// # Errors
    /// The first value below its bound, in the order above.
    pub fn new(
        params: &PlaylistParams,
        part_hold_back: MediaTime,
        hold_back: Option<MediaTime>,
        can_skip_until: Option<MediaTime>,
    ) -> Result<Self, MediaOptionsError> {
        let min = min_part_hold_back(params.part_target);
        if part_hold_back < min {
            return Err(MediaOptionsError::PartHoldBackTooSmall {
                got: part_hold_back,
                min,
            });
        }
        let td = target_duration(params);
        if let Some(got) = hold_back {
            let min = min_hold_back(td);
            if got < min {
                return Err(MediaOptionsError::HoldBackTooSmall { got, min });
            }
        }
        if let Some(got) = can_skip_until {
            let min = min_can_skip_until(td);
            if got < min {
                return Err(MediaOptionsError::CanSkipUntilTooSmall { got, min });
            }
        }
        Ok(Self {
            part_hold_back,
            hold_back,
            can_skip_until,
        })
    }

    #[must_use]
    pub fn part_hold_back(&self) -> MediaTime {
        self.part_hold_back
    }

    #[must_use]
    pub fn hold_back(&self) -> Option<MediaTime> {
        self.hold_back
    }

    /// The Skip Boundary, when delta updates (`_HLS_skip`) are offered.
    #[must_use]
    pub fn can_skip_until(&self) -> Option<MediaTime> {
        self.can_skip_until
    }

    /// The values to write for a snapshot with `params`. Options are checked when
    /// built, but against the params they were built for; if a snapshot's params
    /// differ, each value is raised to its bound rather than written below it.
    fn server_control(&self, params: &PlaylistParams) -> ServerControl {
        let td = target_duration(params);
        ServerControl {
            part_hold_back: self
                .part_hold_back
                .max(min_part_hold_back(params.part_target)),
            hold_back: self.hold_back.map(|v| v.max(min_hold_back(td))),
            can_skip_until: self.can_skip_until.map(|v| v.max(min_can_skip_until(td))),
        }
    }
}

/// Renders the media playlist of `s`. Deterministic: equal snapshots give equal
/// bytes.
#[must_use]
pub fn render_media_playlist(s: &RenditionSnapshot, opts: &MediaRenderOptions) -> String {
    render_media_playlist_with_reports(s, opts, None, &[])
}

/// Renders the media playlist of `s` as [`render_media_playlist`] does, or as
/// [`render_media_playlist_delta`] does when `skip` is given, with one
/// `EXT-X-RENDITION-REPORT` per entry of `reports` at the end: the other
/// renditions of the stream (rfc8216bis Appendix B.1). Reports whose rendition
/// name would not be a plain path segment are left out.
#[must_use]
pub fn render_media_playlist_with_reports(
    s: &RenditionSnapshot,
    opts: &MediaRenderOptions,
    skip: Option<Skip>,
    reports: &[RenditionReport],
) -> String {
    render_media_playlist_with_metadata(s, opts, skip, reports, &[])
}

/// Renders the media playlist of `s` as [`render_media_playlist_with_reports`]
/// does, with the `EXT-X-DATERANGE` lines of `dateranges` (pre-rendered,
/// without line end) after the header, in the given order. The caller passes
/// the same lines to every rendition of a stream (rfc8216bis §4.4.5.1: "If a
/// Playlist contains two EXT-X-DATERANGE tags with the same ID attribute
/// value, then any AttributeName that appears in both tags MUST have the same
/// AttributeValue.") and keeps a line while its START-DATE lies in the
/// window. A line that is not one tag on one line is left out.
///
/// §4.4.5.1: "If a Playlist contains an EXT-X-DATERANGE tag, it MUST also
/// contain at least one EXT-X-PROGRAM-DATE-TIME tag." Every listed segment
/// and the segment in progress carry one; a playlist listing none gets no
/// date range either.
#[must_use]
pub fn render_media_playlist_with_metadata(
    s: &RenditionSnapshot,
    opts: &MediaRenderOptions,
    skip: Option<Skip>,
    reports: &[RenditionReport],
    dateranges: &[String],
) -> String {
    MediaPlaylist {
        s,
        opts,
        // Both values are answered alike (see `render_media_playlist_delta`);
        // a new one needs a decision.
        delta: match skip {
            Some(Skip::Yes | Skip::V2) => true,
            None => false,
        },
        reports,
        dateranges,
    }
    .to_string()
}

/// Renders the answer to a request carrying `_HLS_skip=<skip>`: a Playlist
/// Delta Update when `opts` offer one and the rendition is live, otherwise the
/// full playlist ([`render_media_playlist`]).
///
/// rfc8216bis §6.2.5.1: "When a Server receives a request for a Playlist
/// containing the CAN-SKIP-UNTIL attribute but no EXT-X-ENDLIST tag, and the
/// requested URI contains an _HLS_skip directive whose value is YES or v2, it
/// MUST respond with a Playlist Delta Update." and "A Server MUST ignore the
/// _HLS_skip directive if the Playlist does not contain the CAN-SKIP-UNTIL
/// attribute, or if it contains an EXT-X-ENDLIST tag."
///
/// `v2` is answered like `YES`. It asks to skip EXT-X-DATERANGE tags as well,
/// which only a playlist offering `CAN-SKIP-DATERANGES=YES` may be asked for
/// (§6.3.7); we do not offer it, so a delta update skips no date range and
/// lists no RECENTLY-REMOVED-DATERANGES: every EXT-X-DATERANGE of the full
/// playlist stays (§6.2.5.1: "All tags that were not skipped MUST remain in
/// the Playlist Delta Update"; §4.4.5.2 lets only a v2 delta of a
/// CAN-SKIP-DATERANGES playlist leave out EXT-X-DATERANGE tags).
///
/// When no segment lies beyond the Skip Boundary the answer is still a delta
/// update, with `SKIPPED-SEGMENTS=0`: the MUST above asks for one, and clients
/// (hls.js `mergeDetails`) treat a zero count as a complete playlist.
#[must_use]
pub fn render_media_playlist_delta(
    s: &RenditionSnapshot,
    opts: &MediaRenderOptions,
    skip: Skip,
) -> String {
    render_media_playlist_with_reports(s, opts, Some(skip), &[])
}

fn target_duration(params: &PlaylistParams) -> MediaTime {
    MediaTime(i64::from(params.target_duration_secs) * i64::from(TS_TIMESCALE))
}

struct MediaPlaylist<'a> {
    s: &'a RenditionSnapshot,
    opts: &'a MediaRenderOptions,
    /// A delta update was asked for (it is written only when allowed).
    delta: bool,
    reports: &'a [RenditionReport],
    /// Pre-rendered `EXT-X-DATERANGE` lines.
    dateranges: &'a [String],
}

impl MediaPlaylist<'_> {
    /// The segment in progress, if it is to be listed: only while live. An
    /// ended rendition has no segment in progress (`Rendition::end` closes it);
    /// should a snapshot still carry one, its parts would follow the last EXTINF
    /// with nothing to close them, so it is left out.
    fn open(&self) -> Option<&OpenSegment> {
        if self.s.ended {
            None
        } else {
            self.s.open.as_ref()
        }
    }

    /// rfc8216bis §4.4.3.2: "The EXT-X-MEDIA-SEQUENCE tag indicates the Media
    /// Sequence Number of the first Media Segment that appears in a Playlist
    /// file." The segment in progress counts when no complete one is listed, so
    /// that its parts carry its MSN.
    fn media_sequence(&self) -> Msn {
        self.s
            .segments
            .first()
            .map(|seg| seg.msn)
            .or_else(|| self.open().map(|o| o.msn))
            .unwrap_or(Msn(0))
    }

    /// Index into `segments` of the first segment whose parts are listed.
    fn part_window_start(&self) -> usize {
        let window = MediaTime(
            target_duration(&self.s.params)
                .0
                .saturating_mul(PART_WINDOW_TARGET_DURATIONS),
        );
        // Distance from the live end back to the end of the segment at hand:
        // what is listed after it. Summed from durations, not from `start`
        // times, which may jump at a discontinuity.
        let mut after = self
            .open()
            .map_or(MediaTime::ZERO, |o| sum_durations(&o.parts));
        let mut start = self.s.segments.len();
        for (i, seg) in self.s.segments.iter().enumerate().rev() {
            if after > window {
                break;
            }
            start = i;
            after = MediaTime(after.0.saturating_add(seg.duration.0));
        }
        start
    }

    /// The number of leading complete segments an EXT-X-SKIP replaces, or
    /// `None` when the full playlist is to be written.
    ///
    /// rfc8216bis §6.2.5.1: "The Playlist Delta Update is a version of the
    /// Playlist in which Media Segments that are further from the end of the
    /// last (Parent) Media Segment in the Playlist than the Skip Boundary
    /// (Section 4.4.3.8), as well as their associated tags, are replaced by an
    /// EXT-X-SKIP tag (Section 4.4.5.2)." A segment is "further" when all of it
    /// is: the distance from its end to the end of the last complete segment
    /// (the parts in progress do not count) exceeds the boundary. A segment
    /// straddling the boundary stays, so the delta always spans at least the
    /// boundary, which is what a client merging it relies on (§6.3.7: "A
    /// Client SHOULD NOT request a Playlist Delta Update unless it already has
    /// a version of the Playlist that is no older than one-half of the Skip
    /// Boundary.").
    fn skipped_segments(&self, can_skip_until: Option<MediaTime>) -> Option<usize> {
        let boundary = can_skip_until?;
        if !self.delta || self.s.ended {
            return None;
        }
        // Summed from durations, not from `start` times, which may jump at a
        // discontinuity.
        let mut after = MediaTime::ZERO;
        let mut kept = 0;
        for seg in self.s.segments.iter().rev() {
            if after > boundary {
                break;
            }
            kept += 1;
            after = MediaTime(after.0.saturating_add(seg.duration.0));
        }
        Some(self.s.segments.len() - kept)
    }

    fn lists_discontinuity(&self) -> bool {
        let complete = self.s.segments.iter().map(|seg| seg.discontinuity);
        let open = self.open().map(|o| o.discontinuity);
        // The first segment's flag is carried by the sequence number instead.
        complete.chain(open).skip(1).any(|d| d)
    }
}

/// Writes `EXT-X-MAP` for init segment `id` unless it is the one in effect.
fn write_map(f: &mut fmt::Formatter<'_>, id: InitId, current: &mut Option<InitId>) -> fmt::Result {
    if *current == Some(id) {
        return Ok(());
    }
    *current = Some(id);
    writeln!(
        f,
        "{}",
        Map {
            uri: &ObjectName::Init(id).to_string()
        }
    )
}

/// One `EXT-X-DATERANGE` tag on one line: anything else would break the
/// playlist's line structure.
fn is_daterange_line(line: &str) -> bool {
    line.starts_with("#EXT-X-DATERANGE:") && !line.contains(['\n', '\r'])
}

fn sum_durations(parts: &[Arc<Part>]) -> MediaTime {
    MediaTime(
        parts
            .iter()
            .fold(0_i64, |acc, p| acc.saturating_add(p.duration.0)),
    )
}

impl fmt::Display for MediaPlaylist<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.s;
        let params = &s.params;
        let server_control = self.opts.server_control(params);

        // rfc8216bis §4.4.1.1: "It MUST be the first line of every Media Playlist
        // and every Multivariant Playlist."
        writeln!(f, "#EXTM3U")?;
        writeln!(
            f,
            "{}",
            media_playlist_version(server_control.can_skip_until.is_some())
        )?;
        // rfc8216bis §4.4.3.1: "The EXTINF duration of each Media Segment in a
        // Playlist file, when rounded to the nearest integer, MUST be less than or
        // equal to the Target Duration." Fixed for the life of the rendition
        // (`PlaylistParams`); §6.2.1: "The value of the EXT-X-TARGETDURATION tag in
        // the Media Playlist MUST NOT change."
        writeln!(f, "#EXT-X-TARGETDURATION:{}", params.target_duration_secs)?;
        writeln!(f, "{server_control}")?;
        writeln!(
            f,
            "{}",
            PartInf {
                part_target: params.part_target
            }
        )?;
        // rfc8216bis §4.4.3.2: "The EXT-X-MEDIA-SEQUENCE tag MUST appear before the
        // first Media Segment in the Playlist."
        // A delta update keeps both sequence numbers of the full playlist:
        // EXT-X-MEDIA-SEQUENCE still numbers its first segment, skipped or not
        // (hls.js and Shaka add SKIPPED-SEGMENTS to it), and rfc8216bis
        // §4.4.5.2: "Replacing segments with the EXT-X-SKIP tag does not change
        // the value of the EXT-X-DISCONTINUITY-SEQUENCE tag."
        writeln!(f, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence())?;
        if s.discontinuity_sequence > 0 || self.lists_discontinuity() {
            writeln!(f, "{}", DiscontinuitySequence(s.discontinuity_sequence))?;
        }
        let skipped = self.skipped_segments(server_control.can_skip_until);
        let mut first = true;
        if let Some(skipped_segments) = skipped {
            writeln!(f, "{}", SkipTag { skipped_segments })?;
            // The skipped segments stay in the client's copy: the first listed
            // one is not the first of the playlist.
            first = skipped_segments == 0;
        }
        let skipped = skipped.unwrap_or(0);
        // The init segment the last written EXT-X-MAP names.
        let mut init = None;
        // With segments skipped, the EXT-X-MAP that opened the playlist went
        // with them (§4.4.5.2: the tag replaces "all Media Segment Tags that
        // are applied to those segments"); the first listed segment writes the
        // one in effect for it below. rfc8216bis §6.2.5.1: "All tags that were
        // not skipped MUST remain in the Playlist Delta Update."
        if skipped == 0 {
            let id = s
                .segments
                .first()
                .map(|seg| seg.init)
                .or_else(|| self.open().map(|o| o.init))
                .unwrap_or_else(|| s.current_init());
            write_map(f, id, &mut init)?;
        }

        // Only with a PROGRAM-DATE-TIME below to anchor them (§4.4.5.1).
        if !s.segments.is_empty() || self.open().is_some() {
            for line in self.dateranges.iter().filter(|l| is_daterange_line(l)) {
                writeln!(f, "{line}")?;
            }
        }

        let parts_from = self.part_window_start();
        for (i, seg) in s.segments.iter().enumerate().skip(skipped) {
            if seg.discontinuity && !first {
                writeln!(f, "{Discontinuity}")?;
            }
            first = false;
            // rfc8216bis §4.4.4.5: EXT-X-MAP applies "until the next EXT-X-MAP
            // tag"; a new one follows the discontinuity that brought new codecs.
            write_map(f, seg.init, &mut init)?;
            // rfc8216bis §4.4.4.9: "When the Media Segment Tags (Section 4.4.4)
            // EXT-X-DISCONTINUITY, EXT-X-KEY, EXT-X-MAP, or EXT-X-PROGRAM-DATE-TIME
            // are applied to a Parent Segment, they also necessarily apply to the
            // first Partial Segment, so they MUST appear before the first EXT-X-PART
            // tag of that Parent Segment."
            writeln!(f, "{}", ProgramDateTime(seg.program_date_time))?;
            if i >= parts_from {
                for part in &seg.parts {
                    writeln!(f, "{}", PartTag(part))?;
                }
            }
            writeln!(f, "{}", ExtInf(seg))?;
        }

        if let Some(open) = self.open() {
            if open.discontinuity && !first {
                writeln!(f, "{Discontinuity}")?;
            }
            write_map(f, open.init, &mut init)?;
            writeln!(f, "{}", ProgramDateTime(open.program_date_time))?;
            for part in &open.parts {
                writeln!(f, "{}", PartTag(part))?;
            }
        }

        if s.ended {
            // rfc8216bis §6.2.1: "If the Media Playlist contains the final Media
            // Segment of the presentation, then the Playlist file MUST contain the
            // EXT-X-ENDLIST tag."
            writeln!(f, "#EXT-X-ENDLIST")?;
        } else if let Some(next) = s.next_part {
            writeln!(f, "{}", PreloadHintPart(next))?;
        }
        for r in self.reports.iter().filter(|r| r.is_valid()) {
            writeln!(f, "{}", RenditionReportTag(r))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::rendition::Segment;
    use crate::units::{PartIndex, PartSeq, WallTime};

    fn params() -> PlaylistParams {
        PlaylistParams {
            target_duration_secs: 2,
            part_target: MediaTime::from_millis(500),
        }
    }

    fn part(seq: u64, index: u32, ms: i64) -> Arc<Part> {
        Arc::new(Part {
            seq: PartSeq(seq),
            index: PartIndex(index),
            duration: MediaTime::from_millis(ms),
            independent: index == 0,
            gap: false,
            data: Bytes::new(),
        })
    }

    fn segment(msn: u64, parts: u32, discontinuity: bool) -> Arc<Segment> {
        let parts: Vec<_> = (0..parts)
            .map(|i| part(msn * 4 + u64::from(i), i, 500))
            .collect();
        Arc::new(Segment {
            msn: Msn(msn),
            start: MediaTime::ZERO,
            duration: sum_durations(&parts),
            program_date_time: WallTime::from_millis(0),
            discontinuity,
            init: crate::units::InitId(0),
            parts,
            data: Bytes::new(),
        })
    }

    fn snapshot(segments: Vec<Arc<Segment>>, open: Option<OpenSegment>) -> RenditionSnapshot {
        RenditionSnapshot {
            params: params(),
            inits: vec![(crate::units::InitId(0), Bytes::new())],
            discontinuity_sequence: 0,
            segments,
            open,
            retired_parts: Vec::new(),
            next_part: None,
            ended: false,
        }
    }

    #[test]
    fn options_default_to_the_recommended_values() {
        let o = MediaRenderOptions::for_params(&params());
        assert_eq!(o.part_hold_back(), MediaTime::from_millis(1500));
        assert_eq!(o.hold_back(), Some(MediaTime::from_millis(6000)));
        assert_eq!(o.can_skip_until(), Some(MediaTime::from_millis(12_000)));
    }

    #[test]
    fn options_reject_values_below_the_spec_bounds() {
        let p = params();
        let ms = MediaTime::from_millis;
        assert_eq!(
            MediaRenderOptions::new(&p, ms(999), None, None),
            Err(MediaOptionsError::PartHoldBackTooSmall {
                got: ms(999),
                min: ms(1000)
            })
        );
        assert!(MediaRenderOptions::new(&p, ms(1000), None, None).is_ok());
        assert_eq!(
            MediaRenderOptions::new(&p, ms(1000), Some(ms(5999)), None),
            Err(MediaOptionsError::HoldBackTooSmall {
                got: ms(5999),
                min: ms(6000)
            })
        );
        assert_eq!(
            MediaRenderOptions::new(&p, ms(1000), None, Some(ms(11_999))),
            Err(MediaOptionsError::CanSkipUntilTooSmall {
                got: ms(11_999),
                min: ms(12_000)
            })
        );
        let ok = MediaRenderOptions::new(&p, ms(1000), Some(ms(6000)), Some(ms(12_000)));
        assert!(ok.is_ok());
        let msg = MediaOptionsError::PartHoldBackTooSmall {
            got: ms(999),
            min: ms(1000),
        }
        .to_string();
        assert_eq!(
            msg,
            "PART-HOLD-BACK 0.99900s is below twice PART-TARGET (1.00000s)"
        );
    }

    #[test]
    fn options_built_for_other_params_are_raised_to_the_bounds() {
        let small = PlaylistParams {
            target_duration_secs: 1,
            part_target: MediaTime::from_millis(200),
        };
        let opts = MediaRenderOptions::for_params(&small);
        let text = render_media_playlist(&snapshot(vec![segment(0, 4, false)], None), &opts);
        assert!(
            text.contains("PART-HOLD-BACK=1.0,HOLD-BACK=6.0,CAN-SKIP-UNTIL=12.0\n"),
            "{text}"
        );
    }

    #[test]
    fn version_is_nine_only_when_delta_updates_are_offered() {
        let p = params();
        let s = snapshot(vec![segment(0, 4, false)], None);
        let ms = MediaTime::from_millis;
        let plain = MediaRenderOptions::new(&p, ms(1500), None, None);
        let plain = render_media_playlist(&s, &plain.expect("valid options"));
        assert!(plain.contains("#EXT-X-VERSION:6\n"));
        let delta = MediaRenderOptions::new(&p, ms(1500), None, Some(ms(12_000)));
        let delta = render_media_playlist(&s, &delta.expect("valid options"));
        assert!(delta.contains("#EXT-X-VERSION:9\n"));
        assert!(delta.contains(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,CAN-SKIP-UNTIL=12.0\n"
        ));
    }

    #[test]
    fn delta_updates_need_more_than_six_target_durations_of_segments() {
        // CAN-SKIP-UNTIL defaults to 12 s with 2 s segments. Seven segments:
        // the first ends exactly 12 s before the last one does, nothing is
        // skipped; the old 8-segment window skipped one, the 12-segment
        // default skips five. The gateway's segmenter declares TARGETDURATION 4
        // for 2 s segments (room for a late keyframe): the boundary is 24 s,
        // 12 segments skip none and its 16-segment default skips three.
        let loose = PlaylistParams {
            target_duration_secs: 4,
            ..params()
        };
        let cases = [
            (params(), (3, 0)),
            (params(), (7, 0)),
            (params(), (8, 1)),
            (params(), (12, 5)),
            (loose, (12, 0)),
            (loose, (16, 3)),
        ];
        for (params, (window, skipped)) in cases {
            let opts = MediaRenderOptions::for_params(&params);
            let segments = (0..window).map(|m| segment(m, 4, false)).collect();
            let mut s = snapshot(segments, None);
            s.params = params;
            let view = MediaPlaylist {
                s: &s,
                opts: &opts,
                delta: true,
                reports: &[],
                dateranges: &[],
            };
            assert_eq!(
                view.skipped_segments(opts.can_skip_until()),
                Some(skipped),
                "{window} segments"
            );
            let text = render_media_playlist_delta(&s, &opts, Skip::Yes);
            assert!(
                text.contains(&format!("#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}\n")),
                "{text}"
            );
        }
    }

    #[test]
    fn first_segment_discontinuity_is_carried_by_the_sequence_number() {
        let mut s = snapshot(vec![segment(5, 4, true), segment(6, 4, false)], None);
        s.discontinuity_sequence = 1;
        let text = render_media_playlist(&s, &MediaRenderOptions::for_params(&params()));
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
        assert!(!text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");

        // A discontinuity only on the first segment, sequence 0: nothing to write.
        s.discontinuity_sequence = 0;
        let text = render_media_playlist(&s, &MediaRenderOptions::for_params(&params()));
        assert!(!text.contains("DISCONTINUITY"), "{text}");
    }

    #[test]
    fn open_segment_is_first_when_nothing_is_complete() {
        let open = OpenSegment {
            msn: Msn(9),
            start: MediaTime::ZERO,
            program_date_time: WallTime(0),
            discontinuity: true,
            init: crate::units::InitId(0),
            parts: vec![part(36, 0, 500)],
        };
        let mut s = snapshot(Vec::new(), Some(open));
        s.next_part = Some(PartSeq(37));
        let text = render_media_playlist(&s, &MediaRenderOptions::for_params(&params()));
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:9\n"));
        assert!(!text.contains("DISCONTINUITY"), "{text}");
        assert!(text.ends_with(
            "#EXT-X-PART:DURATION=0.5,URI=\"part36.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part37.m4s\"\n"
        ));
    }

    #[test]
    fn ended_playlist_has_no_hint_and_no_open_segment() {
        let open = OpenSegment {
            msn: Msn(1),
            start: MediaTime::ZERO,
            program_date_time: WallTime(0),
            discontinuity: false,
            init: crate::units::InitId(0),
            parts: vec![part(4, 0, 500)],
        };
        let mut s = snapshot(vec![segment(0, 4, false)], Some(open));
        s.next_part = Some(PartSeq(5));
        s.ended = true;
        let text = render_media_playlist(&s, &MediaRenderOptions::for_params(&params()));
        assert!(text.ends_with("seg0.m4s\n#EXT-X-ENDLIST\n"), "{text}");
        assert!(!text.contains("PRELOAD-HINT"));
        assert!(!text.contains("part4.m4s"));
    }

    #[test]
    fn part_window_is_three_target_durations_from_the_live_end() {
        // Six 2 s segments and 0.5 s in progress: segment ends lie 0.5, 2.5, 4.5,
        // 6.5, 8.5 and 10.5 s before the live end; the window is 6 s.
        let segments = (0..6).map(|m| segment(m, 4, false)).collect();
        let open = OpenSegment {
            msn: Msn(6),
            start: MediaTime::ZERO,
            program_date_time: WallTime(0),
            discontinuity: false,
            init: crate::units::InitId(0),
            parts: vec![part(24, 0, 500)],
        };
        let s = snapshot(segments, Some(open));
        let view = MediaPlaylist {
            s: &s,
            opts: &MediaRenderOptions::for_params(&params()),
            delta: false,
            reports: &[],
            dateranges: &[],
        };
        assert_eq!(view.part_window_start(), 3);

        // Exactly 3 TD still counts as within.
        let segments = (0..4).map(|m| segment(m, 4, false)).collect();
        let s = snapshot(segments, None);
        let view = MediaPlaylist {
            s: &s,
            opts: &MediaRenderOptions::for_params(&params()),
            delta: false,
            reports: &[],
            dateranges: &[],
        };
        assert_eq!(view.part_window_start(), 0);
    }
}
