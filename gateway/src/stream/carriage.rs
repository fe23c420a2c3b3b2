//! Cue carriage: the commerce overlay's cues go into the parts the stream
//! task cuts, as an `emsg` before the part's `moof`, and into every media
//! playlist as `EXT-X-DATERANGE` lines published with the snapshot
//! (`overlay/CARRIAGE.md`). The packager stays overlay-agnostic: the emsg
//! bytes are prepended to a cut part before it reaches its rendition, and a
//! complete segment, the concatenation of its parts, carries them too.
//!
//! Only a stream the overlay knows has a [`Carriage`]; without one the task
//! does nothing more than before.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use overlay::{PartRef, TimelineView};
use packager::rendition::Part;
use packager::sample::TrackKind;
use packager::segmenter::Output;
use packager::units::{MediaTime, Msn, WallTime};
use tracing::{debug, warn};

use crate::overlay::Overlay;

pub(super) struct Carriage {
    overlay: Overlay,
    name: String,
    /// The MSN of the open segment, per track (video, audio).
    msn: [Option<Msn>; 2],
    /// The last segment-starting keyframe handed to the overlay.
    keyframe: Option<MediaTime>,
    /// The next segment starts a new media timeline: the stream's first, or
    /// one after a restart.
    fresh: bool,
    /// The lines last published, shared by snapshots until they change.
    dateranges: Arc<[String]>,
    /// The window start they were rendered for, and whether a cue aired
    /// since: only then can they differ.
    rendered_for: Option<WallTime>,
    aired: bool,
}

impl Carriage {
    /// `None` when the overlay has no cue state for stream `name`.
    pub(super) fn new(overlay: Option<&Overlay>, name: &str) -> Option<Self> {
        let overlay = overlay.filter(|o| o.knows(name))?.clone();
        Some(Self {
            overlay,
            name: name.to_owned(),
            msn: [None; 2],
            keyframe: None,
            fresh: true,
            dateranges: Arc::from([]),
            rendered_for: None,
            aired: false,
        })
    }

    /// Adds the emsg of every cue due in the part of `out` before its moof.
    ///
    /// The parts of one number share their span (the video part's), so each
    /// asks the overlay for the cues in the same `[start, end)`: the first
    /// ask airs them, the other track's gets the same cues. A segment starts
    /// with a keyframe at the start of its first span: cues anchored on the
    /// next keyframe are placed there first, so they land in that very part.
    pub(super) fn carry(&mut self, out: &mut Output) {
        let Output::Part {
            track,
            open,
            part,
            span,
        } = out
        else {
            return;
        };
        let slot = &mut self.msn[usize::from(*track == TrackKind::Audio)];
        if let Some(o) = open {
            *slot = Some(o.msn);
        }
        let Some(msn) = *slot else {
            return;
        };
        if let Some(o) = open
            && self.keyframe != Some(span.start)
        {
            self.keyframe = Some(span.start);
            // rfc8216bis §4.4.4.3: across a discontinuity timestamps need not
            // continue; what was carried on the old timeline says nothing
            // about the new one (nor does an earlier stream's of this name).
            if o.discontinuity || std::mem::take(&mut self.fresh) {
                let view = TimelineView {
                    edge: span.start,
                    edge_pdt: o.program_date_time.offset(span.start - o.start),
                };
                if let Err(e) = self.overlay.handle_discontinuity(&self.name, view) {
                    debug!("overlay discontinuity: {e}");
                }
            } else if let Err(e) = self.overlay.handle_timeline(&self.name, Some(span.start)) {
                debug!("overlay keyframe: {e}");
            }
        }
        // rfc8216bis §4.4.4.9: a GAP part "is not available"; it has no
        // bytes to carry anything in.
        if part.gap {
            return;
        }
        let at = PartRef {
            msn,
            part: part.index,
        };
        // The first ask for a cue commits it as aired to the store, on this
        // task: the time it took is logged.
        let asked = Instant::now();
        let cues = match self.overlay.carry(&self.name, span.clone(), at) {
            Ok(cues) => cues,
            Err(e) => {
                debug!("overlay carriage: {e}");
                return;
            }
        };
        if !cues.is_empty() {
            self.aired = true;
            let micros = asked.elapsed().as_micros();
            debug!(
                ?track,
                msn = msn.0,
                part = part.index.0,
                cues = cues.len(),
                micros,
                "cues carried"
            );
        }
        embed(part, &cues);
    }

    /// Adds to a ladder rung's part the emsg of the cues the source's part
    /// of the same span carried. The rung trails the source, which has
    /// aired them by then: they are looked up, not aired again, and the
    /// rung's segments never move the overlay's timeline.
    pub(super) fn carry_rung(&self, out: &mut Output) {
        let Output::Part { part, span, .. } = out else {
            return;
        };
        // rfc8216bis §4.4.4.9: a GAP part has no bytes to carry anything in.
        if !part.gap {
            embed(part, &self.overlay.cues_in(&self.name, span.clone()));
        }
    }

    /// The `EXT-X-DATERANGE` lines of the cues aired since `horizon`
    /// (`Renditions::daterange_horizon`): the same lines for every rendition.
    pub(super) fn dateranges(&mut self, horizon: Option<WallTime>) -> Arc<[String]> {
        // Rendering every line (payloads up to 16 KiB) on each publication
        // would cost the most when cues are most frequent.
        if std::mem::take(&mut self.aired) || self.rendered_for != horizon {
            self.rendered_for = horizon;
            let lines = horizon
                .map(|w| self.overlay.dateranges(&self.name, w))
                .unwrap_or_default();
            if *self.dateranges != *lines {
                self.dateranges = Arc::from(lines);
            }
        }
        Arc::clone(&self.dateranges)
    }

    /// The stream's edge moved (a snapshot was published): cues anchored on
    /// "now", a program date-time or a wall-clock time are placed when due.
    pub(super) fn advance(&self) {
        if let Err(e) = self.overlay.handle_timeline(&self.name, None) {
            debug!("overlay timeline: {e}");
        }
    }

    /// A new timeline (a new stream after an ended one): nothing carries over.
    pub(super) fn restart(&mut self) {
        self.msn = [None; 2];
        self.keyframe = None;
        self.fresh = true;
    }
}

/// Prepends the emsg of each placed cue to `part`.
fn embed(part: &mut Part, cues: &[overlay::Cue]) {
    let mut boxes = Vec::new();
    for cue in cues {
        // The emsg's own 90 kHz timescale is the media clock of both
        // tracks' tfdt (the audio's in its sample rate), so the same
        // presentation_time places it in either.
        let Some(p) = cue.placement() else { continue };
        match cue.emsg(u64::try_from(p.media_time.0).unwrap_or(0)) {
            Ok(b) => boxes.extend_from_slice(&b),
            Err(e) => warn!(cue = %cue.id, "cue not carried: {e}"),
        }
    }
    if !boxes.is_empty() {
        prepend(part, &boxes);
    }
}

/// The event message goes in the part whose span contains its time (AOM
/// "Carriage of ID3 Timed Metadata in CMAF"), before its `moof`: CMAF lets
/// `emsg` boxes precede a chunk's `moof`.
fn prepend(part: &mut Part, boxes: &[u8]) {
    let mut data = BytesMut::with_capacity(boxes.len() + part.data.len());
    data.extend_from_slice(boxes);
    data.extend_from_slice(&part.data);
    part.data = data.freeze();
}
