//! An embedded SRT publisher (test pattern + sine) for `make run` and tests.
//!
//! ```text
//! videotestsrc is-live=true pattern=ball
//!   ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1
//!   ! clockoverlay (wall clock) ! timeoverlay (running time, ms)
//!   ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=<gop·30> bitrate=2500
//!   ! h264parse ! mpegtsmux alignment=7 name=mux
//! audiotestsrc is-live=true wave=sine volume=0.1 ! audioconvert ! audioresample
//!   ! audio/x-raw,rate=48000,channels=2 ! avenc_aac bitrate=128000 ! aacparse ! mux.
//! mux. ! srtsink uri=srt://HOST:PORT streamid=publish:NAME [passphrase=…]
//!        latency=120 wait-for-connection=false
//! ```
//!
//! There is no reconnect: with no listener (libsrt gives up after 3 s) or a
//! dropped connection, `srtsink` fails, the pipeline stops and
//! [`TestSource::take_error`] says why. Start the gateway first.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::{MediaError, init, make_element};

const WIDTH: i32 = 1280;
const HEIGHT: i32 = 720;
const FPS: i32 = 30;
const VIDEO_KBPS: u32 = 2500;
const AUDIO_BPS: i32 = 128_000;
/// SRT receive latency the sender asks for (the larger of both sides wins).
const SRT_LATENCY_MS: i32 = 120;
/// AAC encoders in order of preference; the first one installed is used.
const AAC_ENCODERS: [&str; 3] = ["avenc_aac", "voaacenc", "fdkaacenc"];

/// A running test publisher; stops when dropped.
pub struct TestSource {
    pipeline: gst::Pipeline,
    error: Arc<Mutex<Option<MediaError>>>,
}

impl std::fmt::Debug for TestSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSource")
            .field("pipeline", &self.pipeline.name())
            .finish_non_exhaustive()
    }
}

fn set_str(e: &gst::Element, name: &str, value: &str) {
    e.set_property_from_str(name, value);
}

impl TestSource {
    /// Starts publishing 720p30 H.264 + AAC in MPEG-TS to `target` as SRT
    /// caller, stream id `publish:<stream_name>`, with a keyframe every `gop`.
    pub fn start(
        target: SocketAddr,
        stream_name: &str,
        passphrase: Option<&str>,
        gop: Duration,
    ) -> Result<Self, MediaError> {
        init()?;
        let pipeline = gst::Pipeline::with_name(&format!("testsrc-{stream_name}"));
        let build = |e: gst::glib::BoolError| MediaError::Build(e.to_string());

        // Video.
        let vsrc = make_element("videotestsrc")?;
        vsrc.set_property("is-live", true);
        set_str(&vsrc, "pattern", "ball");
        let vcaps = make_element("capsfilter")?;
        vcaps.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .field("width", WIDTH)
                .field("height", HEIGHT)
                .field("framerate", gst::Fraction::new(FPS, 1))
                .build(),
        );
        let clock = make_element("clockoverlay")?;
        clock.set_property("time-format", "%H:%M:%S");
        set_str(&clock, "halignment", "left");
        set_str(&clock, "valignment", "top");
        clock.set_property("font-desc", "Sans 40");
        let running = make_element("timeoverlay")?;
        set_str(&running, "halignment", "right");
        set_str(&running, "valignment", "top");
        running.set_property("font-desc", "Sans 40");
        let venc = make_element("x264enc")?;
        set_str(&venc, "tune", "zerolatency");
        // ultrafast: the source shares two cores with the gateway and a browser in tests.
        set_str(&venc, "speed-preset", "ultrafast");
        venc.set_property("key-int-max", gop_frames(gop));
        venc.set_property("bitrate", VIDEO_KBPS);
        let vparse = make_element("h264parse")?;

        // Audio.
        let asrc = make_element("audiotestsrc")?;
        asrc.set_property("is-live", true);
        set_str(&asrc, "wave", "sine");
        asrc.set_property("volume", 0.1f64);
        let aconv = make_element("audioconvert")?;
        let ares = make_element("audioresample")?;
        let acaps = make_element("capsfilter")?;
        acaps.set_property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("rate", 48_000i32)
                .field("channels", 2i32)
                .build(),
        );
        let aenc = AAC_ENCODERS
            .iter()
            .find_map(|f| make_element(f).ok())
            .ok_or(MediaError::MissingElement("avenc_aac"))?;
        if aenc.find_property("bitrate").is_some() {
            aenc.set_property_from_str("bitrate", &AUDIO_BPS.to_string());
        }
        let aparse = make_element("aacparse")?;

        // Mux and send.
        let mux = make_element("mpegtsmux")?;
        // Seven 188-byte packets per buffer: one 1316-byte SRT payload.
        mux.set_property("alignment", 7i32);
        let sink = make_element("srtsink")?;
        sink.set_property("uri", format!("srt://{target}"));
        sink.set_property("streamid", format!("publish:{stream_name}"));
        if let Some(p) = passphrase {
            sink.set_property("passphrase", p);
        }
        sink.set_property("latency", SRT_LATENCY_MS);
        sink.set_property("wait-for-connection", false);

        let video = [&vsrc, &vcaps, &clock, &running, &venc, &vparse];
        let audio = [&asrc, &aconv, &ares, &acaps, &aenc, &aparse];
        pipeline.add_many(video).map_err(build)?;
        pipeline.add_many(audio).map_err(build)?;
        pipeline.add_many([&mux, &sink]).map_err(build)?;
        gst::Element::link_many(video).map_err(build)?;
        gst::Element::link_many(audio).map_err(build)?;
        vparse.link(&mux).map_err(build)?;
        aparse.link(&mux).map_err(build)?;
        mux.link(&sink).map_err(build)?;

        let error = Arc::new(Mutex::new(None));
        if let Some(bus) = pipeline.bus() {
            let error = Arc::clone(&error);
            let name = stream_name.to_owned();
            bus.set_sync_handler(move |_, msg| {
                if let gst::MessageView::Error(e) = msg.view() {
                    let err = MediaError::Pipeline {
                        element: msg
                            .src()
                            .map_or_else(String::new, |s| s.path_string().to_string()),
                        message: e.error().to_string(),
                        debug: e.debug().map(|d| d.to_string()),
                    };
                    tracing::warn!(stream = %name, error = %err, "test source failed");
                    let mut slot = error.lock().unwrap_or_else(PoisonError::into_inner);
                    slot.get_or_insert(err);
                }
                gst::BusSyncReply::Drop
            });
        }

        let source = Self { pipeline, error };
        source
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(MediaError::StateChange)?;
        Ok(source)
    }

    /// The first error the pipeline reported, if any (it has stopped then).
    pub fn take_error(&self) -> Option<MediaError> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Stops publishing and releases the pipeline.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for TestSource {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(bus) = self.pipeline.bus() {
            bus.unset_sync_handler();
        }
    }
}

/// Keyframe interval in frames at 30 fps, at least 1.
fn gop_frames(gop: Duration) -> u32 {
    let frames = (gop.as_secs_f64() * f64::from(FPS)).round();
    if frames >= 1.0 && frames < f64::from(u32::MAX) {
        frames as u32
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{Ipv4Addr, UdpSocket};
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    use bytes::Bytes;
    use packager::sample::{Codec, TrackKind};

    use super::*;
    use crate::media::{Demuxer, MediaEvent};

    /// `srt-live-transmit` as an SRT listener writing the TS to its stdout.
    struct Listener {
        child: Child,
        addr: SocketAddr,
    }

    impl Listener {
        fn start(passphrase: Option<&str>) -> Self {
            let port = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut uri = format!("srt://:{port}?mode=listener");
            if let Some(p) = passphrase {
                uri.push_str(&format!("&passphrase={p}"));
            }
            let child = Command::new("srt-live-transmit")
                .args([uri.as_str(), "file://con"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("srt-live-transmit (srt-tools) must be installed");
            // Ready once the port is taken.
            let deadline = Instant::now() + Duration::from_secs(5);
            while UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                assert!(
                    Instant::now() < deadline,
                    "srt-live-transmit did not listen"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Self {
                child,
                addr: (Ipv4Addr::LOCALHOST, port).into(),
            }
        }

        /// Calls `each` with what arrives for `window`, then stops the listener.
        fn read_for(mut self, window: Duration, mut each: impl FnMut(&[u8]) + Send) {
            let mut out = self.child.stdout.take().unwrap();
            std::thread::scope(|scope| {
                scope.spawn(move || {
                    let mut buf = vec![0; 1316 * 8];
                    // Ends with EOF when the listener is killed below.
                    while let Ok(n @ 1..) = out.read(&mut buf) {
                        each(&buf[..n]);
                    }
                });
                std::thread::sleep(window);
                let _ = self.child.kill();
            });
            let _ = self.child.wait();
        }
    }

    impl Drop for Listener {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn ffprobe_streams(ts: &[u8]) -> String {
        super::super::ffprobe_csv("stream=codec_name,width,height,sample_rate,channels", ts)
    }

    #[test]
    fn publishes_h264_and_aac_over_encrypted_srt() {
        let passphrase = "dropline-test-secret";
        let listener = Listener::start(Some(passphrase));
        let source = TestSource::start(
            listener.addr,
            "probe",
            Some(passphrase),
            Duration::from_secs(1),
        )
        .unwrap();
        let mut ts = Vec::new();
        listener.read_for(Duration::from_secs(3), |b| ts.extend_from_slice(b));
        assert!(source.take_error().is_none());
        source.stop();
        let streams = ffprobe_streams(&ts);
        assert!(streams.contains("h264,1280,720"), "{streams}");
        assert!(streams.contains("aac,48000,2"), "{streams}");
    }

    /// The whole ingest path: test source → SRT → demuxer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn demuxer_reads_the_test_source() {
        let listener = Listener::start(None);
        let source = TestSource::start(listener.addr, "e2e", None, Duration::from_secs(1)).unwrap();
        let (demuxer, mut rx) = Demuxer::new("e2e").unwrap();
        let feeder = std::thread::spawn(move || {
            listener.read_for(Duration::from_secs(4), |b| {
                demuxer.push(Bytes::copy_from_slice(b)).unwrap();
            });
            demuxer.finish();
            demuxer
        });
        let (mut tracks, mut video, mut audio) = (Vec::new(), Vec::new(), 0);
        let collected = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(ev) = rx.recv().await {
                match ev {
                    MediaEvent::Track(c) => tracks.push(c),
                    MediaEvent::Sample(s) if s.track == TrackKind::Video => video.push(s),
                    MediaEvent::Sample(_) => audio += 1,
                    MediaEvent::Error(e) => assert!(!e.is_fatal(), "{e}"),
                    MediaEvent::Eos => break,
                }
            }
        })
        .await;
        assert!(collected.is_ok(), "no EOS");
        let _demuxer = feeder.join().unwrap();
        assert!(source.take_error().is_none());
        source.stop();

        assert!(
            tracks.iter().any(|c| matches!(
                c,
                Codec::H264 {
                    width: 1280,
                    height: 720,
                    ..
                }
            )),
            "{tracks:?}"
        );
        assert!(tracks.iter().any(|c| matches!(
            c,
            Codec::Aac {
                sample_rate: 48_000,
                channels: 2,
                ..
            }
        )));
        assert!(video.len() > 60, "{} frames", video.len());
        assert!(audio > 100, "{audio} audio frames");
        for w in video.windows(2) {
            assert_eq!(w[1].dts.0 - w[0].dts.0, 3000);
        }
        let keys: Vec<usize> = video
            .iter()
            .enumerate()
            .filter(|(_, s)| s.keyframe)
            .map(|(i, _)| i)
            .collect();
        for w in keys.windows(2) {
            assert_eq!(w[1] - w[0], 30, "GOP of 1 s: keyframes at {keys:?}");
        }
    }
}
