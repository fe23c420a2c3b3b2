//! Primary and backup uplink: decides which publisher's samples reach the
//! segmenter, so that a stalled primary is replaced within `failover` and
//! handed back to once it has been steady for `handback`.
//!
//! Sans-IO (style.md convention 2): the stream task feeds codecs, samples,
//! attach/detach and `handle_timeout(now)`; it drains [`Output`]s with
//! `poll_output` and services `poll_timeout`. Both publishers are demuxed all
//! the time, so the standby's recent samples are at hand when it takes over.
//!
//! How a switch is spliced:
//! - **Seamless**: the two publishers carry the same encoder output (the usual
//!   setup: one encoder sending over two networks), recognised by a video frame
//!   with the same decode time and the same bytes on both. The new source then
//!   continues right after the last forwarded frame of each track, from its
//!   recent samples if it is ahead, or once it catches up if it is behind: the
//!   segmenter sees one unbroken timeline (same MSNs, parts, no discontinuity).
//! - **At a keyframe**: otherwise the new source may be another encoder, whose
//!   frames cannot follow the old source's frames (they reference pictures the
//!   decoder never saw), so it starts at its next keyframe. Its timestamps get
//!   an `EXT-X-DISCONTINUITY` only if they do not continue the timeline
//!   (rfc8216bis §4.4.4.3: required on a change of "timestamp sequence";
//!   a codec change is caught by the segmenter, which adds one itself).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use packager::sample::{Codec, Sample, TrackKind};
use packager::units::MediaTime;

/// A new source's first keyframe continues the timeline if its decode time is
/// this close to where the old source would be by now. Paths of the same
/// source differ by their SRT latencies, well below this; another encoder's
/// clock is almost never this close.
const CONTINUITY_TOLERANCE: MediaTime = MediaTime(90_000);
/// How long each source's samples are kept for a seamless switch: more than
/// the difference between the two paths' delays (their SRT latencies).
const RECENT: Duration = Duration::from_secs(3);

/// Which uplink a publisher is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Primary,
    Backup,
}

impl Role {
    pub const ALL: [Self; 2] = [Self::Primary, Self::Backup];

    #[must_use]
    pub fn index(self) -> usize {
        match self {
            Self::Primary => 0,
            Self::Backup => 1,
        }
    }

    #[must_use]
    pub fn other(self) -> Self {
        match self {
            Self::Primary => Self::Backup,
            Self::Backup => Self::Primary,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Backup => "backup",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UplinkConfig {
    /// The active source is replaced after this long without a video frame.
    pub failover: Duration,
    /// The primary takes over again after delivering steadily this long.
    pub handback: Duration,
}

/// How a switch was spliced (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Splice {
    Seamless,
    Keyframe,
    Discontinuity,
}

/// What the segmenter gets, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    Codec(Codec),
    Sample(Sample),
    /// Call `Segmenter::push_discontinuity` (before the codecs that follow).
    Discontinuity,
    /// For the log: the segmenter's input now comes from `to`.
    Switched {
        from: Option<Role>,
        to: Role,
        splice: Splice,
    },
}

#[derive(Debug, Default)]
struct Source {
    attached: bool,
    video: Option<Codec>,
    audio: Option<Codec>,
    /// Samples that arrived within [`RECENT`], with their arrival time.
    recent: VecDeque<(Instant, Sample)>,
    /// Arrival of the last video frame.
    last_frame: Option<Instant>,
    /// Since when video frames have come without a gap of `failover`.
    steady_since: Option<Instant>,
}

/// Selects between a primary and a backup publisher of one stream.
#[derive(Debug)]
pub struct Uplink {
    config: UplinkConfig,
    sources: [Source; 2],
    active: Option<Role>,
    /// Switching to this source at its next keyframe.
    pending: Option<Role>,
    /// The last comparison of a frame both sources delivered found them equal.
    same_output: bool,
    /// Decode time and arrival of the last forwarded video frame.
    last_video: Option<(MediaTime, Instant)>,
    /// Only audio samples after this decode time are forwarded.
    audio_floor: Option<MediaTime>,
    out: VecDeque<Output>,
}

impl Uplink {
    #[must_use]
    pub fn new(config: UplinkConfig) -> Self {
        Self {
            config,
            sources: [Source::default(), Source::default()],
            active: None,
            pending: None,
            same_output: false,
            last_video: None,
            audio_floor: None,
            out: VecDeque::new(),
        }
    }

    /// The source whose samples are forwarded now.
    #[must_use]
    pub fn active(&self) -> Option<Role> {
        self.active
    }

    /// A publisher in `role` was admitted (replacing any earlier one in it).
    pub fn attach(&mut self, now: Instant, role: Role) {
        self.detach(now, role);
        self.sources[role.index()].attached = true;
        if self.active.is_none() && self.pending.is_none() {
            self.pending = Some(role);
        }
    }

    /// The publisher in `role` is gone (its last samples were pushed).
    pub fn detach(&mut self, now: Instant, role: Role) {
        let was_attached = self.sources[role.index()].attached;
        self.sources[role.index()] = Source::default();
        if self.pending == Some(role) {
            self.pending = None;
        }
        if was_attached && self.active == Some(role) {
            self.active = None;
            let other = role.other();
            if self.sources[other.index()].attached {
                self.begin_switch(now, other);
            }
        }
        // Whoever comes next in this role must prove it is the same output.
        self.same_output = false;
    }

    pub fn push_codec(&mut self, role: Role, codec: Codec) {
        let src = &mut self.sources[role.index()];
        if !src.attached {
            return;
        }
        match codec.kind() {
            TrackKind::Video => src.video = Some(codec.clone()),
            TrackKind::Audio => src.audio = Some(codec.clone()),
        }
        if self.active == Some(role) {
            self.out.push_back(Output::Codec(codec));
        }
    }

    pub fn push_sample(&mut self, now: Instant, role: Role, sample: Sample) {
        if !self.sources[role.index()].attached {
            return;
        }
        let video = sample.track == TrackKind::Video;
        // A video frame after a gap of `failover` or more.
        let mut resumed = false;
        if video {
            self.compare(role, &sample);
            let failover = self.config.failover;
            let src = &mut self.sources[role.index()];
            resumed = src.last_frame.is_none_or(|t| now - t >= failover);
            if resumed {
                src.steady_since = Some(now);
            }
            src.last_frame = Some(now);
        }
        let src = &mut self.sources[role.index()];
        src.recent.push_back((now, sample.clone()));
        while src.recent.front().is_some_and(|(t, _)| now - *t > RECENT) {
            src.recent.pop_front();
        }
        if self.active == Some(role) {
            if resumed {
                // The stalled source delivers again before the other's
                // keyframe: no reason to leave it.
                self.pending = None;
            }
            self.forward(now, sample);
        } else if self.pending == Some(role) && video && sample.keyframe {
            self.switch_at_keyframe(now, role, sample);
        }
        self.handle_timeout(now);
    }

    /// Fails over or hands back when due; an early call does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(active) = self.active else {
            return;
        };
        if self.pending.is_some() {
            return;
        }
        let other = active.other();
        if self.stalled(active, now) && !self.stalled(other, now) {
            self.begin_switch(now, other);
            return;
        }
        if active == Role::Backup {
            let primary = &mut self.sources[Role::Primary.index()];
            if primary
                .last_frame
                .is_none_or(|t| now - t >= self.config.failover)
            {
                // Not steady any more: its next frame starts the count again.
                primary.steady_since = None;
            } else if primary
                .steady_since
                .is_some_and(|s| now - s >= self.config.handback)
            {
                self.begin_switch(now, Role::Primary);
            }
        }
    }

    /// The next instant at which `handle_timeout` would act.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let active = self.active?;
        if self.pending.is_some() {
            return None;
        }
        let last = |r: Role| self.sources[r.index()].last_frame;
        // Failing over needs the other source alive then, i.e. its last frame
        // newer than the active one's.
        let failover = last(active)
            .zip(last(active.other()))
            .filter(|(a, o)| o > a)
            .map(|(a, _)| a + self.config.failover);
        let handback = (active == Role::Backup)
            .then(|| self.sources[Role::Primary.index()].steady_since)
            .flatten()
            .map(|s| s + self.config.handback);
        failover.into_iter().chain(handback).min()
    }

    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn stalled(&self, role: Role, now: Instant) -> bool {
        let src = &self.sources[role.index()];
        !src.attached
            || src
                .last_frame
                .is_none_or(|t| now - t >= self.config.failover)
    }

    /// Records whether `sample` and the other source's frame with the same
    /// decode time, if it has one, are the same bytes.
    fn compare(&mut self, role: Role, sample: &Sample) {
        let other = &self.sources[role.other().index()];
        let twin = other
            .recent
            .iter()
            .rev()
            .map(|(_, s)| s)
            .find(|s| s.track == TrackKind::Video && s.dts == sample.dts);
        if let Some(twin) = twin {
            self.same_output = twin.data == sample.data;
        }
    }

    fn begin_switch(&mut self, now: Instant, to: Role) {
        if !self.same_output || self.active.is_none() && self.last_video.is_none() {
            self.pending = Some(to);
            return;
        }
        let from = self.active.replace(to);
        self.pending = None;
        self.push_codecs(to);
        self.out.push_back(Output::Switched {
            from,
            to,
            splice: Splice::Seamless,
        });
        // Continue right after the last forwarded frame of each track with
        // what the new source already has; `forward` drops the overlap.
        let recent: Vec<Sample> = self.sources[to.index()]
            .recent
            .iter()
            .map(|(_, s)| s.clone())
            .collect();
        for s in recent {
            self.forward(now, s);
        }
    }

    fn switch_at_keyframe(&mut self, now: Instant, to: Role, key: Sample) {
        let splice = match self.last_video {
            None => Splice::Keyframe,
            Some((dts, at)) => {
                let elapsed = MediaTime::from_millis(
                    i64::try_from((now - at).as_millis()).unwrap_or(i64::MAX / 90),
                );
                let expected = dts + elapsed;
                let off = (key.dts - expected).0.abs();
                if key.dts <= dts || off > CONTINUITY_TOLERANCE.0 {
                    Splice::Discontinuity
                } else {
                    Splice::Keyframe
                }
            }
        };
        if splice == Splice::Discontinuity {
            self.out.push_back(Output::Discontinuity);
            self.last_video = None;
        }
        // Audio before the keyframe goes with frames that were not taken.
        let floor = MediaTime(key.dts.0 - 1);
        self.audio_floor = Some(match (splice, self.audio_floor) {
            (Splice::Keyframe, Some(f)) => f.max(floor),
            _ => floor,
        });
        let from = self.active.replace(to);
        self.pending = None;
        self.push_codecs(to);
        self.out.push_back(Output::Switched { from, to, splice });
        self.forward(now, key);
    }

    fn push_codecs(&mut self, role: Role) {
        let src = &self.sources[role.index()];
        for codec in [&src.video, &src.audio].into_iter().flatten() {
            self.out.push_back(Output::Codec(codec.clone()));
        }
    }

    /// Forwards `sample` if it comes after what was forwarded on its track.
    fn forward(&mut self, now: Instant, sample: Sample) {
        match sample.track {
            TrackKind::Video => {
                if self.last_video.is_some_and(|(d, _)| sample.dts <= d) {
                    return;
                }
                self.last_video = Some((sample.dts, now));
            }
            TrackKind::Audio => {
                if self.audio_floor.is_some_and(|d| sample.dts <= d) {
                    return;
                }
                self.audio_floor = Some(sample.dts);
            }
        }
        self.out.push_back(Output::Sample(sample));
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use packager::units::WallTime;

    use super::*;

    const FRAME: i64 = 3000; // 30 fps in 90 kHz ticks
    const FRAME_MS: u64 = 33;

    fn codec(tag: u8) -> Codec {
        Codec::H264 {
            avcc: Bytes::from(vec![1, 0x64, 0, 0x1f, tag]),
            width: 320,
            height: 240,
        }
    }

    /// Frame `n` of an encoder tagged `enc` (keyframe every 30), at `base` ticks.
    fn frame(enc: u8, base: i64, n: i64) -> Sample {
        let dts = MediaTime(base + n * FRAME);
        Sample {
            track: TrackKind::Video,
            dts,
            pts: dts,
            keyframe: n % 30 == 0,
            data: Bytes::from(format!("{enc}:{n}")),
            arrival: WallTime(0),
        }
    }

    fn audio(base: i64, n: i64) -> Sample {
        let dts = MediaTime(base + n * 1920);
        Sample {
            track: TrackKind::Audio,
            dts,
            pts: dts,
            keyframe: true,
            data: Bytes::from(format!("a{n}")),
            arrival: WallTime(0),
        }
    }

    /// A virtual clock and an uplink; collects the forwarded outputs.
    struct Harness {
        t0: Instant,
        now: Instant,
        up: Uplink,
        out: Vec<Output>,
    }

    impl Harness {
        fn new() -> Self {
            let t0 = Instant::now();
            Self {
                t0,
                now: t0,
                up: Uplink::new(UplinkConfig {
                    failover: Duration::from_millis(200),
                    handback: Duration::from_millis(1000),
                }),
                out: Vec::new(),
            }
        }

        fn ms(&self) -> u128 {
            (self.now - self.t0).as_millis()
        }

        /// Advances the clock, servicing every deadline on the way.
        fn advance(&mut self, d: Duration) {
            let end = self.now + d;
            while let Some(t) = self.up.poll_timeout().filter(|t| *t <= end) {
                self.now = self.now.max(t);
                self.up.handle_timeout(self.now);
                self.drain();
            }
            self.now = end;
        }

        fn push(&mut self, role: Role, s: Sample) {
            self.up.push_sample(self.now, role, s);
            self.drain();
        }

        fn drain(&mut self) {
            while let Some(o) = self.up.poll_output() {
                self.out.push(o);
            }
        }

        fn video_dts(&self) -> Vec<i64> {
            self.out
                .iter()
                .filter_map(|o| match o {
                    Output::Sample(s) if s.track == TrackKind::Video => Some(s.dts.0),
                    _ => None,
                })
                .collect()
        }

        fn switches(&self) -> Vec<(Role, Splice)> {
            self.out
                .iter()
                .filter_map(|o| match o {
                    Output::Switched { to, splice, .. } => Some((*to, *splice)),
                    _ => None,
                })
                .collect()
        }

        fn discontinuities(&self) -> usize {
            self.out
                .iter()
                .filter(|o| matches!(o, Output::Discontinuity))
                .count()
        }
    }

    fn both_attached() -> Harness {
        let mut h = Harness::new();
        h.up.attach(h.now, Role::Primary);
        h.up.attach(h.now, Role::Backup);
        h.up.push_codec(Role::Primary, codec(1));
        h.up.push_codec(Role::Backup, codec(1));
        h
    }

    /// Frames `range` of the same encoder over both paths, the backup's path
    /// `lag` frames slower; the primary stops sending after frame `cut`.
    fn same_source(h: &mut Harness, range: std::ops::Range<i64>, lag: i64, cut: Option<i64>) {
        let base = (1 << 33) - 100 * FRAME; // near the 33-bit wrap
        for n in range {
            if cut.is_none_or(|c| n <= c) {
                h.push(Role::Primary, frame(1, base, n));
                h.push(Role::Primary, audio(base, n));
            }
            if n >= lag {
                h.push(Role::Backup, frame(1, base, n - lag));
                h.push(Role::Backup, audio(base, n - lag));
            }
            h.advance(Duration::from_millis(FRAME_MS));
        }
    }

    fn assert_continuous(dts: &[i64]) {
        for w in dts.windows(2) {
            assert_eq!(w[1] - w[0], FRAME, "gap or repeat in {dts:?}");
        }
    }

    #[test]
    fn first_source_starts_at_its_keyframe_without_discontinuity() {
        let mut h = Harness::new();
        h.up.attach(h.now, Role::Backup);
        h.up.push_codec(Role::Backup, codec(1));
        for n in 25..40 {
            h.push(Role::Backup, frame(1, 0, n));
        }
        assert_eq!(h.up.active(), Some(Role::Backup));
        assert_eq!(h.video_dts().first(), Some(&(30 * FRAME)));
        assert_eq!(h.switches(), vec![(Role::Backup, Splice::Keyframe)]);
        assert_eq!(h.discontinuities(), 0);
        assert!(matches!(h.out[0], Output::Codec(_)), "{:?}", h.out);
    }

    #[test]
    fn same_output_fails_over_within_failover_and_hands_back_seamlessly() {
        let mut h = both_attached();
        // Backup 3 frames behind; the primary stalls after frame 60.
        same_source(&mut h, 0..64, 3, Some(60));
        assert_eq!(h.up.active(), Some(Role::Primary));
        let stalled_at = h.ms();
        same_source(&mut h, 64..70, 3, Some(60));
        assert_eq!(h.up.active(), Some(Role::Backup), "{:?}", h.switches());
        // The switch came one failover after the primary's last frame.
        assert!(h.ms() - stalled_at <= 300);
        // The primary comes back (ahead of the backup again) and stays steady.
        same_source(&mut h, 70..140, 3, None);
        assert_eq!(h.up.active(), Some(Role::Primary));
        assert_eq!(
            h.switches(),
            vec![
                (Role::Primary, Splice::Keyframe),
                (Role::Backup, Splice::Seamless),
                (Role::Primary, Splice::Seamless)
            ]
        );
        assert_eq!(h.discontinuities(), 0);
        let dts = h.video_dts();
        assert_continuous(&dts);
        // Nothing lost: the last frame the backup delivered made it.
        assert_eq!(*dts.last().unwrap() - dts[0], 139 * FRAME);
        let audio: Vec<i64> = h
            .out
            .iter()
            .filter_map(|o| match o {
                Output::Sample(s) if s.track == TrackKind::Audio => Some(s.dts.0),
                _ => None,
            })
            .collect();
        assert!(audio.windows(2).all(|w| w[1] - w[0] == 1920), "{audio:?}");
    }

    #[test]
    fn backup_ahead_replays_what_the_primary_did_not_deliver() {
        let mut h = both_attached();
        // Backup ahead by 2 frames: feed it first with a negative lag.
        let base = 0;
        for n in 0..50 {
            if n <= 40 {
                h.push(Role::Primary, frame(1, base, n));
            }
            h.push(Role::Backup, frame(1, base, n + 2));
            h.advance(Duration::from_millis(FRAME_MS));
        }
        assert_eq!(h.up.active(), Some(Role::Backup));
        assert_continuous(&h.video_dts());
        assert_eq!(h.discontinuities(), 0);
    }

    #[test]
    fn another_encoder_takes_over_at_its_keyframe_with_a_discontinuity() {
        let mut h = both_attached();
        h.up.push_codec(Role::Backup, codec(2));
        for n in 0..100 {
            if n <= 40 {
                h.push(Role::Primary, frame(1, 0, n));
            }
            // Another encoder whose clock is 10 s away.
            h.push(Role::Backup, frame(2, 900_000, n));
            h.advance(Duration::from_millis(FRAME_MS));
        }
        assert_eq!(
            h.switches(),
            vec![
                (Role::Primary, Splice::Keyframe),
                (Role::Backup, Splice::Discontinuity)
            ]
        );
        assert_eq!(h.discontinuities(), 1);
        let pos = h
            .out
            .iter()
            .position(|o| matches!(o, Output::Discontinuity))
            .unwrap();
        // Discontinuity, then the backup's codec, then its keyframe.
        assert_eq!(h.out[pos + 1], Output::Codec(codec(2)));
        let Output::Sample(k) = &h.out[pos + 3] else {
            panic!("{:?}", &h.out[pos..]);
        };
        assert!(k.keyframe && k.dts.0 == 900_000 + 60 * FRAME);
    }

    #[test]
    fn another_encoders_handback_waits_for_the_primarys_keyframe() {
        let mut h = both_attached();
        h.up.push_codec(Role::Backup, codec(2));
        let backup_base = 900_000;
        for n in 0..200 {
            // The primary is silent for frames 41..=79, then steady again.
            if !(41..80).contains(&n) {
                h.push(Role::Primary, frame(1, 0, n));
            }
            h.push(Role::Backup, frame(2, backup_base, n));
            h.advance(Duration::from_millis(FRAME_MS));
        }
        assert_eq!(
            h.switches(),
            vec![
                (Role::Primary, Splice::Keyframe),
                (Role::Backup, Splice::Discontinuity),
                (Role::Primary, Splice::Discontinuity)
            ]
        );
        // Handed back at the first keyframe after 1 s of steady frames
        // (frames 80.. are steady, 1 s is 30 frames: frame 120 is the key).
        let back = h
            .out
            .iter()
            .rposition(|o| matches!(o, Output::Switched { .. }))
            .unwrap();
        let Output::Sample(k) = &h.out[back + 1] else {
            panic!("{:?}", &h.out[back..]);
        };
        assert_eq!(k.dts.0, 120 * FRAME);
        assert!(k.keyframe);
        // Every forwarded frame of each run is continuous.
        let dts = h.video_dts();
        assert!(dts.windows(2).all(|w| w[1] != w[0]), "{dts:?}");
    }

    #[test]
    fn another_encoder_on_the_same_clock_continues_without_discontinuity() {
        let mut h = both_attached();
        for n in 0..100 {
            if n <= 40 {
                h.push(Role::Primary, frame(1, 0, n));
            }
            h.push(Role::Backup, frame(2, 0, n));
            h.advance(Duration::from_millis(FRAME_MS));
        }
        assert_eq!(h.switches()[1], (Role::Backup, Splice::Keyframe));
        assert_eq!(h.discontinuities(), 0);
        let dts = h.video_dts();
        assert!(dts.windows(2).all(|w| w[1] > w[0]), "{dts:?}");
    }

    #[test]
    fn a_flapping_primary_is_not_handed_back_to() {
        let mut h = both_attached();
        same_source(&mut h, 0..40, 1, Some(30));
        assert_eq!(h.up.active(), Some(Role::Backup));
        // The primary delivers in bursts with gaps longer than the failover.
        let base = (1 << 33) - 100 * FRAME;
        for n in 40..200 {
            if n % 10 < 3 {
                h.push(Role::Primary, frame(1, base, n));
            }
            h.push(Role::Backup, frame(1, base, n - 1));
            h.advance(Duration::from_millis(FRAME_MS));
        }
        assert_eq!(h.up.active(), Some(Role::Backup));
        assert_continuous(&h.video_dts());
    }

    #[test]
    fn detaching_the_active_source_switches_at_once() {
        let mut h = both_attached();
        same_source(&mut h, 0..40, 2, None);
        h.up.detach(h.now, Role::Primary);
        h.drain();
        assert_eq!(h.up.active(), Some(Role::Backup));
        same_source(&mut h, 40..45, 2, Some(0));
        assert_continuous(&h.video_dts());
        // A reconnecting primary is a new source: it starts at a keyframe
        // once steady, and hands back seamlessly once its frames match.
        h.up.attach(h.now, Role::Primary);
        h.up.push_codec(Role::Primary, codec(1));
        same_source(&mut h, 45..120, 2, None);
        assert_eq!(h.up.active(), Some(Role::Primary));
        assert_continuous(&h.video_dts());
        assert_eq!(h.discontinuities(), 0);
    }

    #[test]
    fn no_deadline_spins_when_both_sources_stall() {
        let mut h = both_attached();
        same_source(&mut h, 0..40, 1, None);
        // Nothing arrives for a while: deadlines are serviced, then none is due.
        h.advance(Duration::from_secs(5));
        assert!(h.up.poll_timeout().is_none_or(|t| t > h.now));
    }

    #[test]
    fn a_reconnect_with_restarted_timestamps_is_a_discontinuity() {
        let mut h = Harness::new();
        h.up.attach(h.now, Role::Primary);
        h.up.push_codec(Role::Primary, codec(1));
        for n in 0..100 {
            h.push(Role::Primary, frame(1, 0, n));
            h.advance(Duration::from_millis(FRAME_MS));
        }
        h.up.detach(h.now, Role::Primary);
        h.advance(Duration::from_millis(500));
        h.up.attach(h.now, Role::Primary);
        h.up.push_codec(Role::Primary, codec(1));
        for n in 0..40 {
            h.push(Role::Primary, frame(1, 0, n));
        }
        assert_eq!(h.discontinuities(), 1);
        assert_eq!(h.switches()[1], (Role::Primary, Splice::Discontinuity));
    }
}
