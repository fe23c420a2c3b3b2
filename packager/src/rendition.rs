//! The published state of one rendition: its init segment, the window of
//! complete segments, the segment in progress and its parts.
//!
//! The stream task owns a [`Rendition`] and feeds it what the segmenter cuts;
//! readers (HTTP handlers, edge pushers) get cheap immutable [`RenditionSnapshot`]s.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use crate::units::{MediaTime, Msn, PartIndex, PartSeq, WallTime};

/// One partial segment (`EXT-X-PART`): a CMAF fragment (moof + mdat).
#[derive(Debug, PartialEq, Eq)]
pub struct Part {
    pub seq: PartSeq,
    pub index: PartIndex,
    pub duration: MediaTime,
    /// Starts with an independent frame: `INDEPENDENT=YES`.
    pub independent: bool,
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
    pub init: Bytes,
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
        if let Some(open) = &self.open {
            if let Some(p) = open.parts.last() {
                return Some((open.msn, p.index));
            }
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
                init,
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

    /// Replaces the init segment (a new publisher may bring new codec parameters).
    pub fn set_init(&mut self, init: Bytes) {
        self.snapshot.init = init;
    }

    /// Publishes a part; opens its segment first when `open` is given.
    pub fn push_part(&mut self, open: Option<OpenSegment>, part: Part) {
        if let Some(o) = open {
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
            if self.snapshot.segments.first().is_some_and(|s| s.discontinuity) {
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
    }
}
