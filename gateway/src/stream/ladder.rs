//! The ABR ladder: lower video renditions transcoded from the source, each
//! cut by a segmenter of its own on the source's MSN and part grid.
//!
//! Each rung's transcoder (`media::Transcoder`) gets the source's video
//! access units and returns the same frames, smaller, with keyframes where
//! the source has them. The grid is a function of decode time and keyframes
//! alone (`packager/tests/ladder_grid.rs`), so the rung's frames are given
//! the source frames' decode times (the source's composition offset of the
//! frame's GOP: the encoder makes no B-frames, so its output comes in
//! presentation order) and arrival times (for PROGRAM-DATE-TIME): its
//! segmenter then cuts the source's MSNs, part numbers and durations.
//!
//! A rung's part is published once it exists and the source's part of the
//! same number is out, never before: the source holds its video parts for
//! their audio (`packager::segmenter`), and the cues a rung part carries are
//! the ones the source's part aired (`carriage.rs`). Nothing of the rung
//! holds the source back; players see each rendition's edge in the
//! rendition reports.
//!
//! When the source's timestamps start over (a discontinuity, new codec
//! parameters) the transcoder drains first: its last frames still belong in
//! the old segment, so that every rung has the source's parts, and the new
//! timeline's frames wait until it is done.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use packager::pacer::PartPacer;
use packager::rendition::{RenditionSnapshot, Retention};
use packager::sample::{Codec, Sample, TrackKind};
use packager::segmenter::{Output, Segmenter, SegmenterConfig};
use packager::units::{MediaTime, PartSeq, WallTime};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::carriage::Carriage;
use super::renditions::{Renditions, variant};
use super::{RungSnapshot, VariantInfo};
use crate::media::{MediaEvent, RungSpec, Transcoder};

/// Source frames remembered while their transcoded frames are due: far more
/// than a transcoder holds (it has no lookahead); a dead one stops growing it.
const MAX_IN_FLIGHT: usize = 256;

/// All rungs of one stream.
#[derive(Debug, Default)]
pub(super) struct Ladder {
    rungs: Vec<Rung>,
}

#[derive(Debug)]
struct Rung {
    name: Arc<str>,
    spec: RungSpec,
    /// The source codec the transcoder was built for.
    source: Option<Codec>,
    transcoder: Option<Transcoder>,
    events: Option<mpsc::Receiver<MediaEvent>>,
    /// Source frames given to the transcoder, in decode order: PTS, their
    /// GOP's composition offset, arrival.
    in_flight: VecDeque<(MediaTime, MediaTime, WallTime)>,
    /// The composition offset (PTS − DTS) of the source's last keyframe.
    offset: MediaTime,
    /// The transcoder is draining the old timeline; source frames of the
    /// new one wait here (at most `MAX_IN_FLIGHT`).
    draining: bool,
    backlog: VecDeque<Sample>,
    /// The transcoder has been given a frame (an idle one has nothing to drain).
    fed: bool,
    segmenter: Segmenter,
    /// Cut, waiting for the source's part of the same number.
    cut: VecDeque<Output>,
    pacer: PartPacer,
    /// Only its video slot is used.
    renditions: Renditions,
    codec: Option<Codec>,
}

impl Ladder {
    pub(super) fn new(rungs: &[(String, RungSpec)], config: SegmenterConfig) -> Self {
        let rungs = rungs
            .iter()
            .map(|(name, spec)| Rung {
                name: Arc::from(name.as_str()),
                spec: *spec,
                source: None,
                transcoder: None,
                events: None,
                in_flight: VecDeque::new(),
                offset: MediaTime::ZERO,
                draining: false,
                backlog: VecDeque::new(),
                fed: false,
                segmenter: Segmenter::new(config),
                cut: VecDeque::new(),
                pacer: PartPacer::default(),
                renditions: Renditions::default(),
                codec: None,
            })
            .collect();
        Self { rungs }
    }

    /// The source's video codec, announced before its samples: a rung's
    /// transcoder starts (or restarts, with new parameters) here.
    pub(super) fn push_codec(&mut self, codec: &Codec) {
        if codec.kind() != TrackKind::Video {
            return;
        }
        for r in &mut self.rungs {
            if r.source.as_ref() != Some(codec) {
                r.source = Some(codec.clone());
                // New parameters: a new timeline (the source's segmenter
                // makes one too); the first codec starts the transcoder.
                if r.transcoder.is_some() {
                    r.drain();
                } else {
                    r.restart();
                }
            }
        }
    }

    pub(super) fn push_sample(&mut self, sample: &Sample) {
        if sample.track != TrackKind::Video {
            return;
        }
        for r in &mut self.rungs {
            r.push_sample(sample);
        }
    }

    /// The source's timestamps do not continue: frames in flight belong to
    /// the old timeline, so each transcoder drains and starts over.
    pub(super) fn push_discontinuity(&mut self) {
        for r in &mut self.rungs {
            r.drain();
        }
    }

    /// The source ended: the transcoders drain, then each rung publishes
    /// what is open (on the transcoder's end of stream).
    pub(super) fn finish(&mut self) {
        for r in &mut self.rungs {
            match &r.transcoder {
                Some(t) if r.fed && !r.draining => t.finish(),
                Some(_) if r.draining => {} // ends after the drain's frames
                _ => r.segmenter.finish(),
            }
        }
    }

    /// The next event of any rung's transcoder.
    pub(super) async fn next(&mut self) -> (usize, MediaEvent) {
        poll_fn(|cx| {
            for (i, r) in self.rungs.iter_mut().enumerate() {
                let Some(rx) = &mut r.events else { continue };
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(ev)) => return Poll::Ready((i, ev)),
                    // The transcoder is gone (restarted or dropped).
                    Poll::Ready(None) => r.events = None,
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Hands a transcoder's event to its rung's segmenter and pacer.
    pub(super) fn on_event(&mut self, rung: usize, ev: MediaEvent) {
        let Some(r) = self.rungs.get_mut(rung) else {
            return;
        };
        match ev {
            MediaEvent::Track(codec) => {
                info!(rung = %r.name, codec = %codec.rfc6381(), "rung encoder started");
                r.codec = Some(codec.clone());
                if let Err(e) = r.segmenter.push_codec(codec) {
                    warn!(rung = %r.name, "codec: {e}");
                }
            }
            MediaEvent::Sample(s) => r.push_transcoded(s),
            MediaEvent::Error(e) if e.is_fatal() => {
                warn!(rung = %r.name, "transcoder failed: {e}");
                r.transcoder = None;
                if r.draining {
                    // Nothing more of the old timeline: on to the new one.
                    r.segmenter.push_discontinuity();
                    r.restart();
                }
            }
            MediaEvent::Error(e) => debug!(rung = %r.name, "transcoder: {e}"),
            MediaEvent::Eos => {
                if r.draining {
                    r.segmenter.push_discontinuity();
                } else {
                    r.segmenter.finish();
                }
                // A fresh one for what comes next: a new timeline, or the
                // same one continued by a publisher taking over.
                r.restart();
            }
        }
        while let Some(out) = r.segmenter.poll_output() {
            r.cut.push_back(out);
        }
    }

    /// When a rung's pacer next releases something.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.rungs
            .iter()
            .filter_map(|r| r.pacer.poll_timeout())
            .min()
    }

    /// Applies what the pacers let out now; returns whether anything was.
    /// `edge` is the number of the source's next video part (`None` when it
    /// has none to come): rung parts before it may go out.
    pub(super) fn release(
        &mut self,
        now: Instant,
        retention: Retention,
        carriage: Option<&Carriage>,
        edge: Option<PartSeq>,
    ) -> bool {
        let mut dirty = false;
        for r in &mut self.rungs {
            while let Some(out) = r.cut.front() {
                if let (Output::Part { part, .. }, Some(edge)) = (out, edge)
                    && part.seq >= edge
                {
                    break;
                }
                if let Some(out) = r.cut.pop_front() {
                    r.pacer.push(out);
                }
            }
            while let Some(mut out) = r.pacer.poll_output(now) {
                if let Some(c) = carriage {
                    c.carry_rung(&mut out);
                }
                r.renditions.apply(out, retention);
                dirty = true;
            }
        }
        dirty
    }

    /// Publishes everything held and writes `EXT-X-ENDLIST`.
    pub(super) fn end(&mut self, retention: Retention) {
        for r in &mut self.rungs {
            r.transcoder = None;
            r.events = None;
            r.segmenter.finish();
            while let Some(out) = r.segmenter.poll_output() {
                r.cut.push_back(out);
            }
            let held: Vec<Output> = r.pacer.flush().chain(r.cut.drain(..)).collect();
            for out in held {
                r.renditions.apply(out, retention);
            }
            r.renditions.end();
        }
    }

    /// The rungs being made: their transcoder runs.
    pub(super) fn expected(&self) -> usize {
        self.rungs.iter().filter(|r| r.transcoder.is_some()).count()
    }

    /// The rungs that have published a part, with their variants (whose
    /// bit rates are measured from the parts).
    pub(super) fn snapshot(
        &self,
        source: &Segmenter,
        audio: Option<&RenditionSnapshot>,
    ) -> Vec<RungSnapshot> {
        self.rungs
            .iter()
            .filter_map(|r| {
                let snap = r.renditions.video()?.snapshot();
                snap.last_part()?;
                let snap = Arc::new(snap.clone());
                let variant: Option<VariantInfo> = r
                    .codec
                    .as_ref()
                    .map(|c| variant(c, &snap, r.segmenter.frame_duration(), source, audio));
                Some(RungSnapshot {
                    name: Arc::clone(&r.name),
                    rendition: snap,
                    variant,
                })
            })
            .collect()
    }
}

impl Rung {
    /// Lets the transcoder finish the old timeline; [`MediaEvent::Eos`]
    /// then starts the new one.
    fn drain(&mut self) {
        match &self.transcoder {
            Some(t) if self.fed && !self.draining => {
                t.finish();
                self.draining = true;
            }
            Some(_) if self.draining => {}
            _ => {
                self.segmenter.push_discontinuity();
                self.restart();
            }
        }
    }

    /// A new transcoder for the source codec, fed the frames that waited.
    fn restart(&mut self) {
        self.transcoder = None;
        self.events = None;
        self.draining = false;
        self.fed = false;
        self.in_flight.clear();
        let backlog = std::mem::take(&mut self.backlog);
        let Some(source @ Codec::H264 { width, height, .. }) = &self.source else {
            return;
        };
        let Some(size) = self.spec.size_for(*width, *height) else {
            info!(rung = %self.name, source_height = height,
                "source not taller than the rung: rung not made");
            return;
        };
        match Transcoder::start(&self.name, source, size, self.spec) {
            Ok((t, rx)) => {
                self.transcoder = Some(t);
                self.events = Some(rx);
                for s in &backlog {
                    self.push_sample(s);
                }
            }
            Err(e) => warn!(rung = %self.name, "cannot start the transcoder: {e}"),
        }
    }

    fn push_sample(&mut self, s: &Sample) {
        if self.draining {
            if self.backlog.len() >= MAX_IN_FLIGHT {
                self.backlog.pop_front();
            }
            self.backlog.push_back(s.clone());
            return;
        }
        let Some(t) = &self.transcoder else { return };
        if s.keyframe {
            self.offset = s.pts - s.dts;
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.in_flight.pop_front();
        }
        self.in_flight.push_back((s.pts, self.offset, s.arrival));
        self.fed = true;
        if let Err(e) = t.push(s) {
            debug!(rung = %self.name, "frame not transcoded: {e}");
        }
    }

    /// A transcoded frame takes the decode and arrival time of its source frame.
    fn push_transcoded(&mut self, mut s: Sample) {
        let found = self.in_flight.iter().position(|f| f.0 == s.pts);
        let Some((at, (_, offset, arrival))) =
            found.and_then(|i| Some((i, self.in_flight.remove(i)?)))
        else {
            debug!(rung = %self.name, pts = s.pts.0, "transcoded frame of no source frame");
            return;
        };
        // Frames the decoder dropped never come out: forget those given
        // before this one that it presents earlier. (By PTS alone, a
        // timeline that starts over would lose its first frames.)
        let mut i = 0;
        self.in_flight.retain(|f| {
            i += 1;
            i > at || f.0 > s.pts
        });
        s.dts = s.pts - offset;
        s.arrival = arrival;
        if let Err(e) = self.segmenter.push_sample(s) {
            debug!(rung = %self.name, "sample dropped: {e}");
        }
    }
}
