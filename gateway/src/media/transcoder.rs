//! One rung of the ABR ladder: the source's H.264 access units in, the same
//! frames at a lower resolution out, as [`MediaEvent`]s like the demuxer's.
//!
//! ```text
//! appsrc (video/x-h264,stream-format=avc,alignment=au,codec_data=<source avcC>)
//!   ! h264parse ! avdec_h264 ! videoscale
//!   ! video/x-raw,width=W,height=H,pixel-aspect-ratio=1/1
//!   ! x264enc tune=zerolatency speed-preset=veryfast bframes=0 bitrate=KBPS
//!             key-int-max=<never> option-string=scenecut=0
//!   ! video/x-h264,stream-format=avc,alignment=au ! appsink
//! ```
//!
//! Every frame keeps its source PTS, and the encoder makes a keyframe exactly
//! where the source has one (a `GstForceKeyUnit` event is sent to it just
//! before each such frame) and nowhere else, so a segmenter fed the output
//! cuts the source's MSNs and parts (`packager/tests/ladder_grid.rs`).
//! `tune=zerolatency` has no lookahead and no frame threads: a frame leaves
//! the encoder as soon as it is encoded.
//!
//! Like the demuxer: no queue, everything runs on the `appsrc` streaming
//! thread, output goes out with `try_send` on a bounded channel, the bus is
//! read by a sync handler.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use packager::sample::{Codec, Sample, TrackKind};
use tokio::sync::mpsc;

use super::demux::{
    EVENT_CAPACITY, Shared, app_sink, live_app_src, pipeline, stop, ticks_to_clock,
};
use super::{MediaError, MediaEvent, init, make_element};

/// What a rung is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RungSpec {
    pub height: u16,
    pub bitrate_kbps: u32,
}

impl RungSpec {
    /// The output size for a `width`×`height` source: `height` lines, the
    /// source's aspect ratio, both even (4:2:0 chroma); `None` when the rung
    /// would not be smaller than the source.
    #[must_use]
    pub fn size_for(&self, width: u16, height: u16) -> Option<(u16, u16)> {
        if self.height >= height || height == 0 {
            return None;
        }
        // The nearest even width: round(width · h / height / 2) · 2.
        let (h, height) = (u32::from(self.height), u32::from(height));
        let half = (u32::from(width) * h + height) / (2 * height);
        let w = u16::try_from(half * 2).ok()?.max(2);
        Some((w, self.height))
    }
}

/// A running transcoder; its pipeline stops when this drops.
pub struct Transcoder {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    /// Source keyframe times (ns) not yet seen by the encoder.
    keyframes: Arc<Mutex<BTreeSet<u64>>>,
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder")
            .field("pipeline", &self.pipeline.name())
            .finish_non_exhaustive()
    }
}

impl Transcoder {
    /// Starts a transcoder for a source of `codec` (H.264) to `size`; its
    /// output arrives on the returned receiver.
    pub fn start(
        name: &str,
        codec: &Codec,
        size: (u16, u16),
        spec: RungSpec,
    ) -> Result<(Self, mpsc::Receiver<MediaEvent>), MediaError> {
        init()?;
        let Codec::H264 { avcc, .. } = codec else {
            return Err(MediaError::Build("a rung transcodes H.264 video".into()));
        };
        let (tx, rx) = mpsc::channel(EVENT_CAPACITY);
        let shared = Shared::new(name, tx);
        let pipeline = pipeline(&format!("rung-{name}"), &shared);
        let src = live_app_src(
            &gst::Caps::builder("video/x-h264")
                .field("stream-format", "avc")
                .field("alignment", "au")
                .field("codec_data", gst::Buffer::from_slice(avcc.clone()))
                .build(),
        );
        let parse = make_element("h264parse")?;
        let decode = make_element("avdec_h264")?;
        let scale = make_element("videoscale")?;
        let raw = make_element("capsfilter")?;
        raw.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("width", i32::from(size.0))
                .field("height", i32::from(size.1))
                .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                .build(),
        );
        let encode = make_element("x264enc")?;
        encode.set_property_from_str("tune", "zerolatency");
        encode.set_property_from_str("speed-preset", "veryfast");
        encode.set_property("bframes", 0u32);
        encode.set_property("bitrate", spec.bitrate_kbps);
        // Keyframes only where the source has them: never on a timer or a
        // scene cut, which would open a segment the source does not have.
        encode.set_property("key-int-max", i32::MAX.unsigned_abs());
        encode.set_property("option-string", "scenecut=0");
        let keyframes = Arc::new(Mutex::new(BTreeSet::new()));
        force_keyframes(&encode, Arc::clone(&keyframes))?;
        let out = make_element("capsfilter")?;
        out.set_property(
            "caps",
            gst::Caps::builder("video/x-h264")
                .field("stream-format", "avc")
                .field("alignment", "au")
                .build(),
        );
        running_time_out(&out)?;
        let sink = app_sink(TrackKind::Video, shared);
        let elements = [
            src.upcast_ref(),
            &parse,
            &decode,
            &scale,
            &raw,
            &encode,
            &out,
            sink.upcast_ref(),
        ];
        let build = |e: gst::glib::BoolError| MediaError::Build(e.to_string());
        pipeline.add_many(elements).map_err(build)?;
        gst::Element::link_many(elements).map_err(build)?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(MediaError::StateChange)?;
        Ok((
            Self {
                pipeline,
                src,
                keyframes,
            },
            rx,
        ))
    }

    /// Feeds one source access unit, in decode order.
    pub fn push(&self, sample: &Sample) -> Result<(), MediaError> {
        let mut buf = gst::Buffer::from_slice(sample.data.clone());
        let pts = ticks_to_clock(sample.pts.0);
        if let Some(b) = buf.get_mut() {
            b.set_pts(pts);
            b.set_dts(ticks_to_clock(sample.dts.0));
            if !sample.keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        if sample.keyframe
            && let Some(t) = pts
        {
            self.keyframes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(t.nseconds());
        }
        self.src
            .push_buffer(buf)
            .map(|_| ())
            .map_err(MediaError::Push)
    }

    /// No more input: the frames in the pipeline come out, then
    /// [`MediaEvent::Eos`].
    pub fn finish(&self) {
        // Fails only if the pipeline has stopped, which was reported.
        let _ = self.src.end_of_stream();
    }
}

/// Sends the encoder a `GstForceKeyUnit` event (the GstVideoEncoder API, as
/// `gst_video_event_new_downstream_force_key_unit` builds it) just before
/// each frame whose time is a source keyframe's. The decoder keeps each
/// frame's PTS, so the times match exactly.
fn force_keyframes(
    encode: &gst::Element,
    keyframes: Arc<Mutex<BTreeSet<u64>>>,
) -> Result<(), MediaError> {
    let pad = encode
        .static_pad("sink")
        .ok_or_else(|| MediaError::Build("x264enc has no sink pad".into()))?;
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
            return gst::PadProbeReturn::Ok;
        };
        let key = {
            let mut set = keyframes.lock().unwrap_or_else(PoisonError::into_inner);
            // Frames the decoder dropped never come: forget their times.
            let later = set.split_off(&pts.nseconds());
            *set = later;
            set.remove(&pts.nseconds())
        };
        if key {
            let none = u64::MAX; // GST_CLOCK_TIME_NONE: this very frame
            let s = gst::Structure::builder("GstForceKeyUnit")
                .field("timestamp", none)
                .field("stream-time", none)
                .field("running-time", none)
                .field("all-headers", true)
                .field("count", 0u32)
                .build();
            pad.send_event(gst::event::CustomDownstream::new(s));
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Rewrites output times to running time, which is the source time: x264enc
/// shifts its output segment and timestamps by 1000 hours (room for negative
/// DTS), and the appsink reads buffer times. The segment downstream becomes
/// the plain one those times are in.
fn running_time_out(out: &gst::Element) -> Result<(), MediaError> {
    let pad = out
        .static_pad("src")
        .ok_or_else(|| MediaError::Build("capsfilter has no src pad".into()))?;
    let segment = Mutex::new(gst::FormattedSegment::<gst::ClockTime>::new());
    let probe = gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM;
    pad.add_probe(probe, move |_, info| {
        let mut segment = segment.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut info.data {
            Some(gst::PadProbeData::Event(e)) => {
                if let gst::EventView::Segment(s) = e.view()
                    && let Some(s) = s.segment().downcast_ref::<gst::ClockTime>()
                {
                    *segment = s.clone();
                    // The appsink clips buffers to its segment: give it
                    // the one the rewritten times are in.
                    let plain = gst::FormattedSegment::<gst::ClockTime>::new();
                    *e = gst::event::Segment::new(&plain);
                }
            }
            Some(gst::PadProbeData::Buffer(buf)) => {
                let b = buf.make_mut();
                // No B-frames: decode order is presentation order.
                let t = b.pts().and_then(|p| segment.to_running_time(p));
                b.set_pts(t);
                b.set_dts(t);
            }
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

impl Drop for Transcoder {
    fn drop(&mut self) {
        stop(&self.pipeline);
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use bytes::Bytes;

    use super::*;
    use crate::media::Demuxer;

    /// The video samples and codec of `seconds` of a 640x480 ffmpeg test
    /// pattern with B-frames and 1 s GOPs, through our demuxer.
    async fn source(seconds: &str) -> (Codec, Vec<Sample>) {
        let out = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-nostdin", "-f", "lavfi"])
            .args(["-i", "testsrc2=size=640x480:rate=30", "-t", seconds])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"])
            .args(["-bf", "2", "-pix_fmt", "yuv420p", "-f", "mpegts", "pipe:1"])
            .output()
            .expect("ffmpeg must be installed for media tests");
        assert!(out.status.success());
        let (d, rx) = Demuxer::new("src").unwrap();
        d.push(Bytes::from(out.stdout)).unwrap();
        d.finish();
        let (tracks, samples) = drain(rx).await;
        (tracks.into_iter().next().unwrap(), samples)
    }

    async fn drain(mut rx: mpsc::Receiver<MediaEvent>) -> (Vec<Codec>, Vec<Sample>) {
        let (mut tracks, mut samples) = (Vec::new(), Vec::new());
        let wait = std::time::Duration::from_secs(20);
        while let Ok(Some(ev)) = tokio::time::timeout(wait, rx.recv()).await {
            match ev {
                MediaEvent::Track(c) => tracks.push(c),
                MediaEvent::Sample(s) => samples.push(s),
                MediaEvent::Error(e) => assert!(!e.is_fatal(), "{e}"),
                MediaEvent::Eos => break,
            }
        }
        (tracks, samples)
    }

    #[tokio::test]
    async fn every_frame_comes_out_smaller_with_the_source_keyframes() {
        let (codec, input) = source("3").await;
        let spec = RungSpec {
            height: 360,
            bitrate_kbps: 400,
        };
        let size = spec.size_for(640, 480).unwrap();
        let (t, rx) = Transcoder::start("test", &codec, size, spec).unwrap();
        for s in &input {
            t.push(s).unwrap();
        }
        t.finish();
        let (tracks, output) = drain(rx).await;
        let [Codec::H264 { width, height, .. }] = tracks.as_slice() else {
            panic!("one H.264 track: {tracks:?}");
        };
        assert_eq!((*width, *height), (480, 360));
        let times = |v: &[Sample], key: bool| {
            let mut t: Vec<i64> = v
                .iter()
                .filter(|s| !key || s.keyframe)
                .map(|s| s.pts.0)
                .collect();
            t.sort_unstable();
            t
        };
        assert_eq!(input.len(), 90);
        assert_eq!(times(&output, false), times(&input, false), "every PTS");
        assert_eq!(times(&output, true), times(&input, true), "keyframes");
        assert_eq!(times(&input, true).len(), 3);
    }

    #[test]
    fn rung_size_keeps_the_aspect_ratio_in_even_pixels() {
        let spec = RungSpec {
            height: 360,
            bitrate_kbps: 800,
        };
        assert_eq!(spec.size_for(1280, 720), Some((640, 360)));
        assert_eq!(spec.size_for(960, 540), Some((640, 360)));
        assert_eq!(spec.size_for(640, 480), Some((480, 360)));
        assert_eq!(spec.size_for(1000, 562), Some((640, 360)));
        assert_eq!(spec.size_for(640, 360), None, "not smaller than the source");
        assert_eq!(spec.size_for(320, 240), None);
    }
}
