//! The task that owns one stream: it feeds publisher bytes to the demuxer,
//! samples to the segmenter, cut parts to the renditions (video, and audio
//! when the source has it), and publishes one snapshot holding all of them.

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use packager::rendition::Retention;
use packager::sample::{Codec, TrackKind};
use packager::segmenter::{Segmenter, SegmenterConfig};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::StreamSnapshot;
use super::hub::Hub;
use super::renditions::Renditions;
use crate::media::{Demuxer, MediaEvent};

/// What a stream needs to know from the configuration.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    pub segmenter: SegmenterConfig,
    pub retention: Retention,
    pub reconnect_grace: Duration,
    pub video_timeout: Duration,
    pub linger: Duration,
}

pub enum Command {
    /// A publisher was admitted; its datagrams arrive on this channel.
    Publish(mpsc::Receiver<Bytes>),
}

/// Starts the task for stream `name`; returns its control channel and the
/// flag that says whether a publisher is attached.
pub(super) fn spawn(
    name: &str,
    settings: StreamSettings,
    hub: Hub,
) -> (mpsc::Sender<Command>, Arc<AtomicBool>) {
    let (control_tx, control) = mpsc::channel(4);
    let publishing = Arc::new(AtomicBool::new(false));
    let (snapshots, watch) = watch::channel(Arc::new(StreamSnapshot {
        name: name.to_owned(),
        main: None,
        audio: None,
        variant: None,
        closed: false,
    }));
    // The previous incarnation of a stream may still linger in the registry.
    hub.registry().remove(name);
    hub.registry().insert(name, watch);
    let task = StreamTask {
        name: name.to_owned(),
        segmenter: Segmenter::new(settings.segmenter),
        settings,
        renditions: Renditions::default(),
        snapshots,
        publisher: None,
        demuxer: None,
        media: None,
        video: None,
        had_publisher: false,
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
    renditions: Renditions,
    snapshots: watch::Sender<Arc<StreamSnapshot>>,
    publisher: Option<mpsc::Receiver<Bytes>>,
    demuxer: Option<Demuxer>,
    media: Option<mpsc::Receiver<MediaEvent>>,
    video: Option<Codec>,
    had_publisher: bool,
}

enum Deadline {
    /// The publisher must have sent H.264 video by then.
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
            tokio::select! {
                cmd = control.recv() => match cmd {
                    Some(Command::Publish(rx)) => {
                        self.attach(rx);
                        deadline = Some((Instant::now() + self.settings.video_timeout, Deadline::Video));
                    }
                    None => break,
                },
                data = recv_opt(&mut self.publisher) => match data {
                    Some(datagram) => {
                        if let Some(d) = &self.demuxer
                            && let Err(e) = d.push(datagram)
                        {
                            warn!("demuxer refused input: {e}");
                            self.detach();
                        }
                    }
                    None => {
                        info!("publisher disconnected");
                        self.detach();
                        deadline = Some((Instant::now() + self.settings.reconnect_grace, Deadline::Grace));
                    }
                },
                event = recv_opt(&mut self.media) => match event {
                    Some(ev) => {
                        let mut dirty = self.on_media(ev);
                        // Drain what is already queued before publishing once.
                        while let Some(ev) = self.media.as_mut().and_then(|m| m.try_recv().ok()) {
                            dirty |= self.on_media(ev);
                        }
                        if dirty {
                            self.publish();
                        }
                        if self.video.is_some() && matches!(deadline, Some((_, Deadline::Video))) {
                            deadline = None;
                        }
                    }
                    None => self.media = None,
                },
                () = timer => match deadline.take() {
                    Some((_, Deadline::Video)) => {
                        error!(
                            "no H.264 video from the publisher after {:?}: dropping it \
                             (dropline needs MPEG-TS with H.264 video and optional AAC audio)",
                            self.settings.video_timeout
                        );
                        self.detach();
                        deadline = Some((Instant::now() + self.settings.reconnect_grace, Deadline::Grace));
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

    fn attach(&mut self, rx: mpsc::Receiver<Bytes>) {
        if self.renditions.ended() {
            // An ended playlist never continues; start over under the same name.
            self.renditions = Renditions::default();
            self.segmenter = Segmenter::new(self.settings.segmenter);
            self.video = None;
            self.had_publisher = false;
        }
        match Demuxer::new(&self.name) {
            Ok((demuxer, media)) => {
                info!("publisher attached");
                if self.had_publisher {
                    // rfc8216bis §4.4.4.3: the new source's timestamps and
                    // encoder state differ, so the next segment gets a discontinuity.
                    self.segmenter.push_discontinuity();
                }
                self.had_publisher = true;
                self.demuxer = Some(demuxer);
                self.media = Some(media);
                self.publisher = Some(rx);
            }
            Err(e) => error!("cannot start the demuxer: {e}"),
        }
    }

    fn detach(&mut self) {
        self.publisher = None;
        if let Some(d) = self.demuxer.take() {
            d.finish();
        }
        // Samples still queued in `media` are drained before it closes.
    }

    /// Returns whether something was published.
    fn on_media(&mut self, ev: MediaEvent) -> bool {
        match ev {
            MediaEvent::Track(codec) => {
                if codec.kind() == TrackKind::Video {
                    self.video = Some(codec.clone());
                }
                if let Err(e) = self.segmenter.push_codec(codec) {
                    warn!("codec: {e}");
                }
            }
            MediaEvent::Sample(sample) => {
                if let Err(e) = self.segmenter.push_sample(sample) {
                    debug!("sample dropped: {e}");
                }
            }
            MediaEvent::Error(e) if e.is_fatal() => {
                warn!("media error, dropping the publisher: {e}");
                self.detach();
            }
            MediaEvent::Error(e) => debug!("media: {e}"),
            MediaEvent::Eos => {
                self.segmenter.finish();
            }
        }
        self.drain()
    }

    fn drain(&mut self) -> bool {
        let mut dirty = false;
        while let Some(out) = self.segmenter.poll_output() {
            dirty = true;
            self.renditions.apply(out, self.settings.retention);
        }
        dirty
    }

    fn end(&mut self) {
        self.segmenter.finish();
        self.drain();
        self.renditions.end();
        self.publish();
    }

    fn publish(&self) {
        if let Some(next) =
            self.renditions
                .snapshot(&self.name, self.video.as_ref(), &self.segmenter)
        {
            self.snapshots.send_replace(Arc::new(next));
        }
    }
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(r) => r.recv().await,
        None => pending().await,
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
