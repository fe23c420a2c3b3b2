//! Holds a segment's completion back from the part that ends it.
//!
//! hls.js (1.7.4) mishandles the playlist update that completes a segment when
//! it arrives while that segment's previous part is still loading: the part
//! never counts as buffered, the rendition stops loading and playback stalls at
//! the live edge until the next playlist slide (seen with the audio rendition
//! in about half of 30 s runs). That happens whenever the last parts of a
//! segment are cut in a burst, and TS muxers make bursts: ffmpeg sends AAC in
//! PES packets of about a quarter of a second (2930 bytes), so the audio of two
//! parts often arrives at once, and a video part waits for its audio part.
//! With one AAC frame per PES no run stalled.
//!
//! So a segment's end (`SegmentEnd`, which turns its parts into a segment with
//! EXTINF) goes out no sooner than one PART-TARGET after the rendition's last
//! part: by then a player has loaded that part, and the next segment's first
//! part, due about then anyway, goes out with it. Parts themselves are never
//! held, and a backlog (a source catching up after a freeze) goes out at once.
//! Renditions are independent: one track's held end never holds another's
//! parts. Shape (style.md convention 2): `push` in, `poll_output` out,
//! `poll_timeout` says when to poll again.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::sample::TrackKind;
use crate::segmenter::Output;
use crate::units::MediaTime;

/// Video parts waiting at which nothing is held any more.
const BACKLOG_PARTS: usize = 3;

#[derive(Debug, Default)]
pub struct PartPacer {
    queue: VecDeque<Output>,
    /// Video parts in `queue`.
    parts: usize,
    /// One PART-TARGET of the video rendition, once it started.
    gap: Option<Duration>,
    /// When each track's last part went out.
    last_part: [Option<Instant>; 2],
}

impl PartPacer {
    pub fn push(&mut self, out: Output) {
        match &out {
            Output::Start {
                track: TrackKind::Video,
                params,
                ..
            } => self.gap = Some(duration(params.part_target)),
            Output::Part {
                track: TrackKind::Video,
                ..
            } => self.parts += 1,
            _ => {}
        }
        self.queue.push_back(out);
    }

    /// The next output due at `now`, in order within each track. The caller
    /// publishes once this returns `None`.
    pub fn poll_output(&mut self, now: Instant) -> Option<Output> {
        let mut held = [false; 2];
        let at = self.queue.iter().position(|out| {
            let Some(track) = track(out) else {
                return true;
            };
            let due = !held[slot(track)] && self.due(out, track, now);
            held[slot(track)] |= !due;
            due
        })?;
        let out = self.queue.remove(at)?;
        if let Output::Part { track, .. } = &out {
            self.last_part[slot(*track)] = Some(now);
            if *track == TrackKind::Video {
                self.parts -= 1;
            }
        }
        Some(out)
    }

    /// When the first held segment end is due, if one is held.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue
            .iter()
            .filter_map(|out| match out {
                Output::SegmentEnd { track, .. } => self.release_at(*track),
                _ => None,
            })
            .min()
    }

    /// Releases everything held: the source ended or restarts.
    pub fn flush(&mut self) -> impl Iterator<Item = Output> + '_ {
        self.parts = 0;
        self.queue.drain(..)
    }

    fn due(&self, out: &Output, track: TrackKind, now: Instant) -> bool {
        match out {
            Output::SegmentEnd { .. } if self.parts < BACKLOG_PARTS => {
                self.release_at(track).is_none_or(|at| now >= at)
            }
            _ => true,
        }
    }

    /// When a segment end of `track` may go out.
    fn release_at(&self, track: TrackKind) -> Option<Instant> {
        Some(self.last_part[slot(track)]? + self.gap?)
    }
}

fn track(out: &Output) -> Option<TrackKind> {
    match out {
        Output::Start { track, .. }
        | Output::Init { track, .. }
        | Output::Part { track, .. }
        | Output::SegmentEnd { track, .. } => Some(*track),
        Output::Warning(_) => None,
    }
}

fn slot(track: TrackKind) -> usize {
    match track {
        TrackKind::Video => 0,
        TrackKind::Audio => 1,
    }
}

fn duration(t: MediaTime) -> Duration {
    Duration::from_micros(u64::try_from(t.as_micros()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::rendition::{Part, PlaylistParams};
    use crate::units::{PartIndex, PartSeq};
    use TrackKind::{Audio, Video};

    fn start() -> Output {
        Output::Start {
            track: Video,
            params: PlaylistParams {
                target_duration_secs: 4,
                part_target: MediaTime::from_millis(200),
            },
            init: Bytes::new(),
        }
    }

    fn part(track: TrackKind, seq: u64) -> Output {
        Output::Part {
            track,
            open: None,
            part: Part {
                seq: PartSeq(seq),
                index: PartIndex(0),
                duration: MediaTime::from_millis(200),
                independent: true,
                gap: false,
                data: Bytes::new(),
            },
            span: MediaTime::ZERO..MediaTime::ZERO,
        }
    }

    fn end(track: TrackKind) -> Output {
        Output::SegmentEnd {
            track,
            duration: MediaTime::from_millis(2000),
        }
    }

    /// What is due at `now`: `A3`/`V3` for parts, `A.`/`V.` for segment ends.
    fn drain(p: &mut PartPacer, now: Instant) -> Vec<String> {
        let name = |t: TrackKind| if t == Video { "V" } else { "A" };
        std::iter::from_fn(|| p.poll_output(now))
            .filter_map(|o| match o {
                Output::Part { track, part, .. } => Some(format!("{}{}", name(track), part.seq.0)),
                Output::SegmentEnd { track, .. } => Some(format!("{}.", name(track))),
                _ => None,
            })
            .collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn started(t0: Instant) -> PartPacer {
        let mut p = PartPacer::default();
        p.push(start());
        p.push(part(Audio, 1));
        p.push(part(Video, 1));
        assert_eq!(drain(&mut p, t0), ["A1", "V1"]);
        p
    }

    #[test]
    fn parts_are_never_held() {
        let t0 = Instant::now();
        let mut p = started(t0);
        for n in 2..5 {
            p.push(part(Audio, n));
            p.push(part(Video, n));
        }
        assert_eq!(drain(&mut p, t0), ["A2", "V2", "A3", "V3", "A4", "V4"]);
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn a_segment_ends_a_part_target_after_its_last_part() {
        let t0 = Instant::now();
        let mut p = started(t0);
        // The segmenter's order at a segment's end: the audio's end comes
        // before the video's last part.
        for out in [part(Audio, 2), end(Audio), part(Video, 2), end(Video)] {
            p.push(out);
        }
        let t1 = t0 + ms(50);
        assert_eq!(drain(&mut p, t1), ["A2", "V2"]);
        assert_eq!(p.poll_timeout(), Some(t1 + ms(200)));
        // The next segment's first parts wait behind their track's end...
        p.push(part(Audio, 3));
        p.push(part(Video, 3));
        assert_eq!(drain(&mut p, t1 + ms(199)), Vec::<String>::new());
        // ...and go out with it.
        assert_eq!(drain(&mut p, t1 + ms(200)), ["A.", "V.", "A3", "V3"]);
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn a_backlog_goes_out_at_once() {
        let t0 = Instant::now();
        let mut p = started(t0);
        for out in [part(Audio, 2), end(Audio), part(Video, 2), end(Video)] {
            p.push(out);
        }
        for n in 3..=5 {
            p.push(part(Audio, n));
            p.push(part(Video, n));
        }
        assert_eq!(drain(&mut p, t0).len(), 10);
    }

    #[test]
    fn flush_releases_everything() {
        let t0 = Instant::now();
        let mut p = started(t0);
        p.push(part(Video, 2));
        p.push(end(Video));
        assert_eq!(drain(&mut p, t0), ["V2"]);
        assert_eq!(p.flush().count(), 1);
        assert_eq!(p.poll_timeout(), None);
    }
}
