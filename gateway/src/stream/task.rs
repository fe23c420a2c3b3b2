//! The task that owns one stream: it feeds publisher bytes to the demuxer,
//! samples to the segmenter, cut parts to the renditions (video, and audio
//! when the source has it), and publishes one snapshot holding all of them.

use std::future::pending;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use packager::pacer::PartPacer;
use packager::rendition::Retention;
use packager::sample::{Codec, TrackKind};
use packager::segmenter::{Output, Segmenter, SegmenterConfig};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::StreamSnapshot;
use super::carriage::Carriage;
use super::hub::{Hub, Publishing};
use super::ladder::Ladder;
use super::publishers::{Event, Publishers};
use super::renditions::Renditions;
use super::uplink::{self, Role, Uplink, UplinkConfig};
use crate::media::{MediaEvent, RungSpec};

/// What a stream needs to know from the configuration.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    pub segmenter: SegmenterConfig,
    pub retention: Retention,
    pub reconnect_grace: Duration,
    pub video_timeout: Duration,
    pub linger: Duration,
    pub uplink: UplinkConfig,
    /// ABR ladder rungs by rendition name (`[hls] ladder`).
    pub ladder: Vec<(String, RungSpec)>,
}

pub enum Command {
    /// A publisher was admitted as the `Role` uplink; its datagrams arrive on
    /// this channel.
    Publish(Role, mpsc::Receiver<Bytes>),
}

/// Starts the task for stream `name`; returns its control channel and the
/// flags that say whether a publisher is attached in each role.
pub(super) fn spawn(
    name: &str,
    settings: StreamSettings,
    hub: Hub,
) -> (mpsc::Sender<Command>, Arc<Publishing>) {
    let (control_tx, control) = mpsc::channel(4);
    let publishing = Arc::new(Publishing::default());
    let (snapshots, watch) = watch::channel(Arc::new(StreamSnapshot::empty(name, wall_now())));
    // The previous incarnation of a stream may still linger in the registry.
    hub.registry().remove(name);
    hub.registry().insert(name, watch);
    let task = StreamTask {
        name: name.to_owned(),
        segmenter: Segmenter::new(settings.segmenter),
        pacer: PartPacer::default(),
        uplink: Uplink::new(settings.uplink),
        ladder: Ladder::new(&settings.ladder, settings.segmenter),
        settings,
        renditions: Renditions::default(),
        snapshots,
        publishers: Publishers::default(),
        video: None,
        carriage: Carriage::new(hub.overlay(), name),
    };
    let flag = Arc::clone(&publishing);
    // A root span: the stream outlives the connection that started it.
    let span = info_span!(parent: None, "stream", name = %name);
    let name = name.to_owned();
    let supervised = tokio::spawn(task.run(control).instrument(span));
    // A panic ends this stream only; the registry entry goes with it.
    tokio::spawn(async move {
        if let Err(e) = supervised.await {
            error!(stream = %name, "stream task failed: {e}");
        }
        hub.registry().remove(&name);
        hub.forget(&name, &flag);
    });
    (control_tx, publishing)
}

struct StreamTask {
    name: String,
    settings: StreamSettings,
    segmenter: Segmenter,
    /// Holds a segment's end back one PART-TARGET after its last part (see `packager::pacer`).
    pacer: PartPacer,
    renditions: Renditions,
    /// Transcoded renditions on the segmenter's grid, each paced on its own.
    ladder: Ladder,
    snapshots: watch::Sender<Arc<StreamSnapshot>>,
    publishers: Publishers,
    /// Which publisher's samples reach the segmenter.
    uplink: Uplink,
    video: Option<Codec>,
    /// The overlay's cues into parts and playlists, when it knows the stream.
    carriage: Option<Carriage>,
}

enum Deadline {
    /// Every publisher must have sent H.264 video by then.
    Video,
    /// The publisher left; end the stream unless one comes back.
    Grace,
    /// The ended stream disappears.
    Linger,
}

impl StreamTask {
    async fn run(mut self, mut control: mpsc::Receiver<Command>) {
        let mut deadline: Option<(Instant, Deadline)> = None;
        loop {
            let timer = async {
                match &deadline {
                    Some((at, _)) => sleep_until(*at).await,
                    None => pending().await,
                }
            };
            let failover_at = self.uplink.poll_timeout();
            let failover = async move {
                match failover_at {
                    Some(at) => sleep_until(at.into()).await,
                    None => pending().await,
                }
            };
            let pace_at = [self.pacer.poll_timeout(), self.ladder.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let paced = async move {
                match pace_at {
                    Some(at) => sleep_until(at.into()).await,
                    None => pending().await,
                }
            };
            tokio::select! {
                cmd = control.recv() => match cmd {
                    Some(Command::Publish(role, rx)) => {
                        self.attach(role, rx);
                        deadline = Some((Instant::now() + self.settings.video_timeout, Deadline::Video));
                    }
                    None => break,
                },
                (role, event) = self.publishers.next() => {
                    let dirty = match event {
                        Event::Media(ev) => self.on_media(role, ev),
                        Event::Hangup => {
                            info!(%role, "publisher disconnected");
                            false
                        }
                        Event::Drained => self.source_gone(role),
                    };
                    if dirty {
                        self.publish();
                    }
                    if !self.publishers.connected() && !matches!(deadline, Some((_, Deadline::Grace | Deadline::Linger))) {
                        deadline = Some((Instant::now() + self.settings.reconnect_grace, Deadline::Grace));
                    } else if self.publishers.without_video().is_empty() && matches!(deadline, Some((_, Deadline::Video))) {
                        deadline = None;
                    }
                },
                (rung, event) = self.ladder.next() => {
                    self.ladder.on_event(rung, event);
                    if self.release() {
                        self.publish();
                    }
                },
                () = paced => {
                    if self.release() {
                        self.publish();
                    }
                },
                () = failover => {
                    self.uplink.handle_timeout(Instant::now().into_std());
                    if self.feed_segmenter() {
                        self.publish();
                    }
                },
                () = timer => match deadline.take() {
                    Some((_, Deadline::Video)) => {
                        for role in self.publishers.without_video() {
                            error!(
                                %role,
                                "no H.264 video from the publisher after {:?}: dropping it \
                                 (dropline needs MPEG-TS with H.264 video and optional AAC audio)",
                                self.settings.video_timeout
                            );
                            self.publishers.detach(role);
                        }
                        if !self.publishers.connected() {
                            deadline = Some((Instant::now() + self.settings.reconnect_grace, Deadline::Grace));
                        }
                    }
                    Some((_, Deadline::Grace)) => {
                        info!("publisher did not come back: ending the stream");
                        self.end();
                        deadline = Some((Instant::now() + self.settings.linger, Deadline::Linger));
                    }
                    Some((_, Deadline::Linger)) | None => break,
                },
            }
        }
        self.snapshots
            .send_modify(|s| Arc::make_mut(s).closed = true);
        debug!("stream task exits");
    }

    fn attach(&mut self, role: Role, rx: mpsc::Receiver<Bytes>) {
        if self.renditions.ended() {
            // An ended playlist never continues; start over under the same name.
            self.renditions = Renditions::default();
            self.segmenter = Segmenter::new(self.settings.segmenter);
            self.pacer = PartPacer::default();
            self.ladder = Ladder::new(&self.settings.ladder, self.settings.segmenter);
            self.uplink = Uplink::new(self.settings.uplink);
            self.video = None;
            if let Some(c) = &mut self.carriage {
                c.restart();
            }
            // The new stream reuses object names: its ETags must differ.
            self.snapshots
                .send_modify(|s| Arc::make_mut(s).incarnation = wall_now());
        }
        match self.publishers.attach(&self.name, role, rx) {
            Ok(()) => {
                info!(%role, "publisher attached");
                // Whether its samples continue the timeline (or need a
                // discontinuity) is the uplink's decision.
                self.uplink.attach(Instant::now().into_std(), role);
            }
            Err(e) => error!("cannot start the demuxer: {e}"),
        }
    }

    /// The `role` publisher's last samples have been handled.
    fn source_gone(&mut self, role: Role) -> bool {
        self.uplink.detach(Instant::now().into_std(), role);
        if self.uplink.active().is_none() {
            // Nobody takes over: publish what is open.
            self.segmenter.finish();
            self.ladder.finish();
        }
        self.feed_segmenter()
    }

    /// Returns whether something was published.
    fn on_media(&mut self, role: Role, ev: MediaEvent) -> bool {
        let now = Instant::now().into_std();
        match ev {
            MediaEvent::Track(codec) => self.uplink.push_codec(role, codec),
            MediaEvent::Sample(sample) => self.uplink.push_sample(now, role, sample),
            MediaEvent::Error(e) if e.is_fatal() => {
                warn!(%role, "media error, dropping the publisher: {e}");
                self.publishers.detach(role);
            }
            MediaEvent::Error(e) => debug!(%role, "media: {e}"),
            MediaEvent::Eos => return self.source_gone(role),
        }
        self.feed_segmenter()
    }

    /// Hands the selected publisher's codecs and samples to the segmenter.
    fn feed_segmenter(&mut self) -> bool {
        while let Some(out) = self.uplink.poll_output() {
            match out {
                uplink::Output::Codec(codec) => {
                    if codec.kind() == TrackKind::Video {
                        self.video = Some(codec.clone());
                    }
                    self.ladder.push_codec(&codec);
                    if let Err(e) = self.segmenter.push_codec(codec) {
                        warn!("codec: {e}");
                    }
                }
                uplink::Output::Sample(sample) => {
                    self.ladder.push_sample(&sample);
                    if let Err(e) = self.segmenter.push_sample(sample) {
                        debug!("sample dropped: {e}");
                    }
                }
                // rfc8216bis §4.4.4.3: the new source's timestamps do not
                // continue the old ones.
                uplink::Output::Discontinuity => {
                    self.segmenter.push_discontinuity();
                    self.ladder.push_discontinuity();
                }
                uplink::Output::Switched { from, to, splice } => {
                    let from = from.map_or("none", Role::as_str);
                    info!(%from, %to, ?splice, "uplink switched");
                    self.snapshots
                        .send_modify(|s| Arc::make_mut(s).uplink = Some(to));
                }
            }
        }
        self.drain()
    }

    /// Moves what the segmenter cut to the pacer; returns whether something
    /// is due for publication now.
    fn drain(&mut self) -> bool {
        while let Some(out) = self.segmenter.poll_output() {
            self.pacer.push(out);
        }
        self.release()
    }

    /// Applies what the pacer lets out now; returns whether anything was.
    fn release(&mut self) -> bool {
        let now = Instant::now().into_std();
        let mut dirty = false;
        while let Some(out) = self.pacer.poll_output(now) {
            self.apply(out);
            dirty = true;
        }
        let retention = self.settings.retention;
        let edge = self.renditions.video().and_then(|r| r.snapshot().next_part);
        dirty
            | self
                .ladder
                .release(now, retention, self.carriage.as_ref(), edge)
    }

    fn apply(&mut self, mut out: Output) {
        if let Some(c) = &mut self.carriage {
            c.carry(&mut out);
        }
        self.renditions.apply(out, self.settings.retention);
    }

    fn end(&mut self) {
        self.segmenter.finish();
        self.drain();
        let held: Vec<Output> = self.pacer.flush().collect();
        for out in held {
            self.apply(out);
        }
        self.renditions.end();
        self.ladder.end(self.settings.retention);
        self.publish();
    }

    fn publish(&mut self) {
        let incarnation = self.snapshots.borrow().incarnation;
        // Without an overlay the (empty) list is shared, never rebuilt.
        let dateranges = match &mut self.carriage {
            Some(c) => c.dateranges(self.renditions.daterange_horizon(
                self.settings.retention,
                self.settings.segmenter.segment_duration,
            )),
            None => Arc::clone(&self.snapshots.borrow().dateranges),
        };
        if let Some(mut next) = self.renditions.snapshot(
            &self.name,
            incarnation,
            self.video.as_ref(),
            &self.segmenter,
            dateranges,
        ) {
            next.ladder = self.ladder.snapshot(&self.segmenter, next.audio.as_deref());
            next.ladder_expected = self.ladder.expected();
            next.uplink = self.uplink.active();
            self.snapshots.send_replace(Arc::new(next));
            // The edge moved: cues due at it are placed for the next parts.
            if let Some(c) = &self.carriage {
                c.advance();
            }
        }
    }
}

/// The wall clock for media arrival stamps, as the packager wants it.
#[must_use]
pub fn wall_now() -> packager::units::WallTime {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    packager::units::WallTime(micros)
}
