//! The published state of one rendition: its init segment, the window of
//! complete segments, the segment in progress and its parts.
//!
//! The stream task owns a [`Rendition`] and feeds it what the segmenter cuts;
//! readers (HTTP handlers, edge pushers) get cheap immutable [`RenditionSnapshot`]s.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use crate::units::{InitId, MediaTime, Msn, PartIndex, PartSeq, WallTime};

/// One partial segment (`EXT-X-PART`): a CMAF fragment (moof + mdat).
#[derive(Debug, PartialEq, Eq)]
pub struct Part {
    pub seq: PartSeq,
    pub index: PartIndex,
    pub duration: MediaTime,
    /// Starts with an independent frame: `INDEPENDENT=YES`.
    pub independent: bool,
    /// No media for this span (`GAP=YES`, empty `data`): the audio of a
    /// rendition cut on another track's boundaries may be missing.
    pub gap: bool,
    pub data: Bytes,
}

/// A complete media segment: the concatenation of its parts.
#[derive(Debug, PartialEq, Eq)]
pub struct Segment {
    pub msn: Msn,
    pub start: MediaTime,
    pub duration: MediaTime,
    pub program_date_time: WallTime,
    /// `EXT-X-DISCONTINUITY` precedes this segment.
    pub discontinuity: bool,
    /// The init segment (`EXT-X-MAP`) this segment needs.
    pub init: InitId,
    pub parts: Vec<Arc<Part>>,
    pub data: Bytes,
}

/// The segment being cut; its parts are already published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSegment {
    pub msn: Msn,
    pub start: MediaTime,
    pub program_date_time: WallTime,
    pub discontinuity: bool,
    /// Set by [`Rendition::push_part`] to the init segment current at the time.
    pub init: InitId,
    pub parts: Vec<Arc<Part>>,
}

/// Fixed parameters of a media playlist, decided before its first publication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlaylistParams {
    /// `EXT-X-TARGETDURATION`, whole seconds; never changes (rfc8216bis §4.4.3.1).
    pub target_duration_secs: u32,
    /// `EXT-X-PART-INF:PART-TARGET`: every part is at most this long.
    pub part_target: MediaTime,
}

/// An immutable view of a rendition, shared with readers.
#[derive(Clone, Debug)]
pub struct RenditionSnapshot {
    pub params: PlaylistParams,
    /// Init segments still referenced by a listed segment, plus the current
    /// one (last), oldest first.
    pub inits: Vec<(InitId, Bytes)>,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` of the first segment in `segments`.
    pub discontinuity_sequence: u64,
    /// Complete segments in the playlist window, oldest first.
    pub segments: Vec<Arc<Segment>>,
    /// The segment in progress, if any part of it exists or is expected.
    pub open: Option<OpenSegment>,
    /// Parts that left the window but must stay fetchable (rfc8216bis §6.2.2:
    /// "the server MUST keep serving ... for at least 3 target durations").
    pub retired_parts: Vec<Arc<Part>>,
    /// The URI sequence number of the next part (`EXT-X-PRELOAD-HINT`), while live.
    pub next_part: Option<PartSeq>,
    /// `EXT-X-ENDLIST` has been written.
    pub ended: bool,
}

impl RenditionSnapshot {
    #[must_use]
    pub fn init(&self, id: InitId) -> Option<&Bytes> {
        self.inits.iter().find(|(i, _)| *i == id).map(|(_, b)| b)
    }

    /// The init segment new parts use.
    #[must_use]
    pub fn current_init(&self) -> InitId {
        self.inits.last().map_or(InitId(0), |(i, _)| *i)
    }

    /// The MSN that a new part would belong to if it opened no new segment:
    /// the open segment's, or the one after the last complete segment.
    #[must_use]
    pub fn live_msn(&self) -> Option<Msn> {
        match (&self.open, self.segments.last()) {
            (Some(open), _) => Some(open.msn),
            (None, Some(last)) => Some(last.msn.next()),
            (None, None) => None,
        }
    }

    /// The last published part, as (MSN, index).
    #[must_use]
    pub fn last_part(&self) -> Option<(Msn, PartIndex)> {
        if let Some(open) = &self.open
            && let Some(p) = open.parts.last()
        {
            return Some((open.msn, p.index));
        }
        let last = self.segments.last()?;
        Some((last.msn, last.parts.last()?.index))
    }

    #[must_use]
    pub fn segment(&self, msn: Msn) -> Option<&Arc<Segment>> {
        let first = self.segments.first()?.msn;
        let i = usize::try_from(msn.0.checked_sub(first.0)?).ok()?;
        self.segments.get(i)
    }

    /// Finds a part by its URI sequence number, including retired parts.
    #[must_use]
    pub fn part(&self, seq: PartSeq) -> Option<&Arc<Part>> {
        let open = self.open.iter().flat_map(|o| o.parts.iter());
        let complete = self.segments.iter().rev().flat_map(|s| s.parts.iter());
        open.chain(complete)
            .chain(self.retired_parts.iter())
            .find(|p| p.seq == seq)
    }
}

/// How long complete segments and retired parts are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Complete segments kept in the playlist (and fetchable).
    pub segments: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self { segments: 8 }
    }
}

/// The mutable state behind the snapshots; owned by one task.
#[derive(Debug)]
pub struct Rendition {
    snapshot: RenditionSnapshot,
    retention: Retention,
    retired: VecDeque<(Msn, Arc<Part>)>,
}

impl Rendition {
    #[must_use]
    pub fn new(params: PlaylistParams, init: Bytes, retention: Retention) -> Self {
        Self {
            snapshot: RenditionSnapshot {
                params,
                inits: vec![(InitId(0), init)],
                discontinuity_sequence: 0,
                segments: Vec::new(),
                open: None,
                retired_parts: Vec::new(),
                next_part: None,
                ended: false,
            },
            retention,
            retired: VecDeque::new(),
        }
    }

    #[must_use]
    pub fn snapshot(&self) -> &RenditionSnapshot {
        &self.snapshot
    }

    /// Sets the init segment for segments opened from now on (a new publisher
    /// may bring new codec parameters); a changed one gets a new [`InitId`].
    pub fn set_init(&mut self, init: Bytes) {
        let inits = &mut self.snapshot.inits;
        if inits.last().is_some_and(|(_, b)| *b == init) {
            return;
        }
        let id = inits
            .last()
            .map_or(InitId(0), |(i, _)| InitId(i.0.wrapping_add(1)));
        inits.push((id, init));
    }

    /// Publishes a part; opens its segment first when `open` is given.
    pub fn push_part(&mut self, open: Option<OpenSegment>, part: Part) {
        if let Some(mut o) = open {
            o.init = self.snapshot.current_init();
            self.snapshot.open = Some(o);
        }
        let next = part.seq.next();
        if let Some(o) = self.snapshot.open.as_mut() {
            o.parts.push(Arc::new(part));
        }
        self.snapshot.next_part = Some(next);
    }

    /// Closes the open segment with its final duration.
    pub fn complete_segment(&mut self, duration: MediaTime) {
        let Some(open) = self.snapshot.open.take() else {
            return;
        };
        let mut data = Vec::with_capacity(open.parts.iter().map(|p| p.data.len()).sum());
        for p in &open.parts {
            data.extend_from_slice(&p.data);
        }
        self.snapshot.segments.push(Arc::new(Segment {
            msn: open.msn,
            start: open.start,
            duration,
            program_date_time: open.program_date_time,
            discontinuity: open.discontinuity,
            init: open.init,
            parts: open.parts,
            data: data.into(),
        }));
        self.evict();
    }

    /// Writes `EXT-X-ENDLIST`: no more parts, no preload hint.
    pub fn end(&mut self, last_duration: Option<MediaTime>) {
        if let Some(d) = last_duration {
            self.complete_segment(d);
        }
        self.snapshot.open = None;
        self.snapshot.next_part = None;
        self.snapshot.ended = true;
    }

    fn evict(&mut self) {
        while self.snapshot.segments.len() > self.retention.segments {
            let old = self.snapshot.segments.remove(0);
            if self
                .snapshot
                .segments
                .first()
                .is_some_and(|s| s.discontinuity)
            {
                self.snapshot.discontinuity_sequence += 1;
            }
            for p in &old.parts {
                self.retired.push_back((old.msn, Arc::clone(p)));
            }
        }
        // Parts of evicted segments stay fetchable for about three more target
        // durations' worth of segments; keep a bounded number of them.
        let keep_from = self
            .snapshot
            .segments
            .first()
            .map_or(0, |s| s.msn.0.saturating_sub(3));
        while self.retired.front().is_some_and(|(m, _)| m.0 < keep_from) {
            self.retired.pop_front();
        }
        self.snapshot.retired_parts = self.retired.iter().map(|(_, p)| Arc::clone(p)).collect();
        // Keep the init segments that listed segments still name, and the current one.
        let oldest = self.snapshot.segments.first().map(|s| s.init);
        let current = self.snapshot.current_init();
        self.snapshot
            .inits
            .retain(|(id, _)| Some(*id) >= oldest || *id == current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(seq: u64, index: u32) -> Part {
        Part {
            seq: PartSeq(seq),
            index: PartIndex(index),
            duration: MediaTime::from_millis(500),
            independent: index == 0,
            gap: false,
            data: Bytes::from(vec![u8::try_from(seq % 256).unwrap(); 4]),
        }
    }

    fn open(msn: u64, discontinuity: bool) -> OpenSegment {
        OpenSegment {
            msn: Msn(msn),
            start: MediaTime::from_millis(i64::try_from(msn).unwrap() * 1000),
            program_date_time: WallTime::from_millis(0),
            discontinuity,
            init: InitId(0),
            parts: Vec::new(),
        }
    }

    fn rendition(window: usize) -> Rendition {
        let params = PlaylistParams {
            target_duration_secs: 1,
            part_target: MediaTime::from_millis(500),
        };
        Rendition::new(
            params,
            Bytes::from_static(b"init"),
            Retention { segments: window },
        )
    }

    /// Pushes segment `msn` with two parts and completes it.
    fn segment(r: &mut Rendition, msn: u64, discontinuity: bool) {
        r.push_part(Some(open(msn, discontinuity)), part(msn * 2, 0));
        r.push_part(None, part(msn * 2 + 1, 1));
        r.complete_segment(MediaTime::from_millis(1000));
    }

    #[test]
    fn segments_are_parts_concatenated() {
        let mut r = rendition(3);
        r.push_part(Some(open(7, false)), part(14, 0));
        assert_eq!(r.snapshot().last_part(), Some((Msn(7), PartIndex(0))));
        assert_eq!(r.snapshot().next_part, Some(PartSeq(15)));
        assert_eq!(r.snapshot().live_msn(), Some(Msn(7)));
        r.push_part(None, part(15, 1));
        r.complete_segment(MediaTime::from_millis(1000));
        let s = r.snapshot();
        assert!(s.open.is_none());
        assert_eq!(s.live_msn(), Some(Msn(8)));
        let seg = s.segment(Msn(7)).unwrap();
        assert_eq!(&seg.data[..], &[14, 14, 14, 14, 15, 15, 15, 15]);
        assert!(s.segment(Msn(8)).is_none());
        assert!(s.segment(Msn(6)).is_none());
    }

    #[test]
    fn eviction_keeps_window_and_counts_discontinuities() {
        let mut r = rendition(3);
        for msn in 0..10 {
            segment(&mut r, msn, msn == 4 || msn == 5);
        }
        let s = r.snapshot();
        assert_eq!(s.segments.len(), 3);
        assert_eq!(s.segments[0].msn, Msn(7));
        assert_eq!(s.discontinuity_sequence, 2);
        // Parts of segments that left the window stay fetchable for a while…
        assert!(s.part(PartSeq(12)).is_some());
        // … but not forever.
        assert!(s.part(PartSeq(2)).is_none());
        assert!(s.retired_parts.len() <= 6);
    }

    #[test]
    fn new_codec_parameters_get_a_new_init_and_old_ones_expire() {
        let mut r = rendition(2);
        segment(&mut r, 0, false);
        r.set_init(Bytes::from_static(b"init"));
        assert_eq!(r.snapshot().inits.len(), 1, "same bytes, same init");
        r.set_init(Bytes::from_static(b"other"));
        segment(&mut r, 1, true);
        let s = r.snapshot();
        assert_eq!(s.segment(Msn(0)).unwrap().init, InitId(0));
        assert_eq!(s.segment(Msn(1)).unwrap().init, InitId(1));
        assert_eq!(s.init(InitId(1)).unwrap(), &Bytes::from_static(b"other"));
        assert!(s.init(InitId(0)).is_some(), "segment 0 still listed");
        segment(&mut r, 2, false);
        segment(&mut r, 3, false);
        assert!(r.snapshot().init(InitId(0)).is_none());
        assert_eq!(r.snapshot().current_init(), InitId(1));
    }

    #[test]
    fn end_removes_the_hint() {
        let mut r = rendition(3);
        r.push_part(Some(open(0, false)), part(0, 0));
        r.end(Some(MediaTime::from_millis(500)));
        let s = r.snapshot();
        assert!(s.ended);
        assert_eq!(s.next_part, None);
        assert_eq!(s.segments.len(), 1);
        assert_eq!(s.last_part(), Some((Msn(0), PartIndex(0))));
    }
}
