//! The HTTP origin without sockets: requests go through `tower::ServiceExt::oneshot`
//! against a registry whose stream snapshots the test publishes by hand, on
//! paused (virtual) time. Every request is also sent as HTTP/1.1 bytes over an
//! in-memory pipe to `server::serve_connection` (the HLS fast path, and hyper
//! for the rest), and both answers must be the same.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use bytes::Bytes;
use gateway::http::{AppState, router, server};
use gateway::stream::registry::Registry;
use gateway::stream::{StreamSnapshot, VariantInfo};
use packager::rendition::{OpenSegment, Part, PlaylistParams, Rendition, Retention};
use packager::units::{MediaTime, Msn, PartIndex, PartSeq, WallTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// One rendition fed by hand: 0.5 s parts, four to a segment, from MSN 10
/// and part 100.
struct Track {
    rendition: Rendition,
    next_seq: u64,
    msn: u64,
    index: u32,
}

struct Fixture {
    app: axum::Router,
    state: AppState,
    tx: watch::Sender<Arc<StreamSnapshot>>,
    video: Track,
    audio: Option<Track>,
}

impl Track {
    fn new(retention: Retention, init: &'static [u8]) -> Self {
        let params = PlaylistParams {
            target_duration_secs: 2,
            part_target: MediaTime::from_millis(500),
        };
        Self {
            rendition: Rendition::new(params, Bytes::from_static(init), retention),
            next_seq: 100,
            msn: 10,
            index: 0,
        }
    }

    /// Publishes one 0.5 s part; every fourth part closes its segment.
    fn push_part(&mut self, prefix: &str) {
        let open = (self.index == 0).then(|| OpenSegment {
            msn: Msn(self.msn),
            start: MediaTime::from_millis(i64::try_from(self.msn).unwrap() * 2000),
            program_date_time: WallTime::from_millis(1_795_000_000_000),
            discontinuity: false,
            init: packager::units::InitId(0),
            parts: Vec::new(),
        });
        self.rendition.push_part(
            open,
            Part {
                seq: PartSeq(self.next_seq),
                index: PartIndex(self.index),
                duration: MediaTime::from_millis(500),
                independent: self.index == 0,
                gap: false,
                data: Bytes::from(format!("{prefix}{}", self.next_seq)),
            },
        );
        self.next_seq += 1;
        self.index += 1;
        if self.index == 4 {
            self.rendition
                .complete_segment(MediaTime::from_millis(2000));
            self.index = 0;
            self.msn += 1;
        }
    }
}

impl Fixture {
    fn new() -> Self {
        Self::with_retention(Retention::default())
    }

    fn with_retention(retention: Retention) -> Self {
        let registry = Registry::default();
        let (tx, rx) = watch::channel(Arc::new(StreamSnapshot::empty("show", WallTime(7))));
        registry.insert("show", rx);
        let state = AppState::new(registry, std::env::temp_dir());
        Self {
            app: router(state.clone()),
            state,
            tx,
            video: Track::new(retention, b"INIT"),
            audio: None,
        }
    }

    /// A stream with a separate audio rendition.
    fn with_audio() -> Self {
        let mut f = Self::new();
        f.audio = Some(Track::new(Retention::default(), b"AUDIOINIT"));
        f
    }

    /// Publishes one video part.
    fn push_part(&mut self) {
        self.video.push_part("part");
        self.publish();
    }

    /// Publishes one audio part.
    fn push_audio_part(&mut self) {
        if let Some(a) = self.audio.as_mut() {
            a.push_part("audio");
        }
        self.publish();
    }

    fn publish(&self) {
        self.tx.send_replace(Arc::new(StreamSnapshot {
            main: Some(Arc::new(self.video.rendition.snapshot().clone())),
            // As in the stream task: the audio rendition exists from its first part.
            audio: self
                .audio
                .as_ref()
                .filter(|a| a.rendition.snapshot().last_part().is_some())
                .map(|a| Arc::new(a.rendition.snapshot().clone())),
            variant: Some(VariantInfo {
                codecs: "avc1.64001f,mp4a.40.2".into(),
                bandwidth: 2_000_000,
                average_bandwidth: 1_500_000,
                resolution: Some((1280, 720)),
                frame_rate: Some(30.0),
                audio_channels: self.audio.as_ref().map(|_| 2),
            }),
            ..StreamSnapshot::empty("show", WallTime(7))
        }));
    }

    fn get(
        &self,
        uri: &str,
    ) -> impl Future<Output = (StatusCode, axum::http::HeaderMap, String)> + use<> {
        self.get_with(uri, &[])
    }

    /// GET `uri` through the router and over HTTP/1.1; the two answers must
    /// agree. Gzip bodies come back inflated.
    fn get_with(
        &self,
        uri: &str,
        headers: &[(header::HeaderName, &str)],
    ) -> impl Future<Output = (StatusCode, axum::http::HeaderMap, String)> + use<> {
        let mut req = Request::get(uri).header(header::ORIGIN, "https://player.example");
        for (name, value) in headers {
            req = req.header(name, *value);
        }
        let req = req.body(Body::empty()).unwrap();
        let over_h1 = self.get_h1(&req);
        let app = self.app.clone();
        let uri = uri.to_owned();
        async move {
            let routed = async {
                let res = app.oneshot(req).await.unwrap();
                let (parts, body) = res.into_parts();
                (parts, to_bytes(body, 1 << 20).await.unwrap())
            };
            let ((parts, body), h1) = tokio::join!(routed, over_h1);
            assert_eq!(comparable(parts.status, &parts.headers, &body), h1, "{uri}");
            let (status, headers) = (parts.status, parts.headers);
            let gzip = headers
                .get(header::CONTENT_ENCODING)
                .is_some_and(|v| v == "gzip");
            let body = if gzip {
                let mut text = String::new();
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_string(&mut text)
                    .unwrap();
                text
            } else {
                String::from_utf8_lossy(&body).into_owned()
            };
            (status, headers, body)
        }
    }

    /// A new HTTP/1.1 connection to `server::serve_connection` (the fast path,
    /// then hyper) over an in-memory pipe, and the task serving it.
    fn connect(&self, shutdown: CancellationToken) -> (DuplexStream, JoinHandle<()>) {
        let (client, conn) = tokio::io::duplex(1 << 16);
        let (state, app) = (self.state.clone(), self.app.clone());
        let served = tokio::spawn(server::serve_connection(conn, true, state, app, shutdown));
        (client, served)
    }

    /// `req` written as HTTP/1.1 to a new connection of `server::serve_connection`;
    /// its answer as `comparable` makes it.
    fn get_h1(&self, req: &Request<Body>) -> impl Future<Output = Answer> + use<> {
        let mut raw = format!("GET {} HTTP/1.1\r\nhost: origin.test\r\n", req.uri());
        for (name, value) in req.headers() {
            raw.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
        }
        raw.push_str("connection: close\r\n\r\n");
        let (mut client, _) = self.connect(CancellationToken::new());
        async move {
            client.write_all(raw.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            let mut fields = [httparse::EMPTY_HEADER; 32];
            let mut res = httparse::Response::new(&mut fields);
            let httparse::Status::Complete(len) = res.parse(&answer).unwrap() else {
                panic!("incomplete answer: {}", String::from_utf8_lossy(&answer));
            };
            let mut headers = axum::http::HeaderMap::new();
            for f in &*res.headers {
                let name = header::HeaderName::from_bytes(f.name.as_bytes()).unwrap();
                headers.append(name, f.value.try_into().unwrap());
            }
            let body = &answer[len..];
            if let Some(length) = headers.get(header::CONTENT_LENGTH) {
                assert_eq!(length.to_str().unwrap(), body.len().to_string());
            }
            assert!(headers.contains_key(header::DATE));
            let status = StatusCode::from_u16(res.code.unwrap()).unwrap();
            comparable(status, &headers, body)
        }
    }
}

/// Status, headers (sorted; without those the transport adds) and body.
type Answer = (StatusCode, Vec<(String, String)>, Vec<u8>);

fn comparable(status: StatusCode, headers: &axum::http::HeaderMap, body: &[u8]) -> Answer {
    let transport = [header::DATE, header::CONTENT_LENGTH, header::CONNECTION];
    let mut fields: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| !transport.contains(name))
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    fields.sort();
    (status, fields, body.to_vec())
}

#[tokio::test(start_paused = true)]
async fn playlists_parts_and_headers() {
    let mut f = Fixture::new();
    for _ in 0..6 {
        f.push_part();
    }
    let (status, h, body) = f.get("/show/main/playlist.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/vnd.apple.mpegurl");
    assert_eq!(h[header::CACHE_CONTROL], "public, max-age=1");
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert!(
        body.contains("#EXT-X-PART:DURATION=0.5,URI=\"part105.m4s\""),
        "{body}"
    );
    assert!(
        body.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part106.m4s\""),
        "{body}"
    );

    let (status, h, body) = f.get("/show/index.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/vnd.apple.mpegurl");
    assert!(body.contains("CODECS=\"avc1.64001f,mp4a.40.2\""), "{body}");
    assert!(body.contains("main/playlist.m3u8"), "{body}");

    let (status, h, body) = f.get("/show/main/part103.m4s").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "video/mp4");
    assert_eq!(body, "part103");
    let (status, _, body) = f.get("/show/main/seg10.m4s").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "part100part101part102part103");
    let (status, _, body) = f.get("/show/main/init0.mp4").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "INIT"));
}

#[tokio::test(start_paused = true)]
async fn audio_rendition_is_served_blocks_and_is_reported() {
    let mut f = Fixture::with_audio();
    for _ in 0..5 {
        f.push_part();
    }
    for _ in 0..4 {
        f.push_audio_part(); // audio trails the video by a part
    }
    let (status, _, body) = f.get("/show/index.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,\
             AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/playlist.m3u8\""
        ),
        "{body}"
    );
    assert!(
        body.contains(",AUDIO=\"audio\"\nmain/playlist.m3u8"),
        "{body}"
    );

    // Each media playlist reports the other rendition's last part.
    let (_, _, video) = f.get("/show/main/playlist.m3u8").await;
    assert!(
        video.ends_with(
            "#EXT-X-RENDITION-REPORT:URI=\"../audio/playlist.m3u8\",LAST-MSN=10,LAST-PART=3\n"
        ),
        "{video}"
    );
    let (status, _, audio) = f.get("/show/audio/playlist.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        audio.ends_with(
            "#EXT-X-RENDITION-REPORT:URI=\"../main/playlist.m3u8\",LAST-MSN=11,LAST-PART=0\n"
        ),
        "{audio}"
    );
    assert!(audio.contains("URI=\"part103.m4s\""), "{audio}");
    assert!(
        !audio.contains("#EXT-X-PART:DURATION=0.5,URI=\"part104.m4s\""),
        "{audio}"
    );

    // Blocking requests wait per rendition: audio MSN 11 part 0 exists in
    // the video rendition only.
    let pending = tokio::spawn(f.get("/show/audio/playlist.m3u8?_HLS_msn=11&_HLS_part=0"));
    let hinted = tokio::spawn(f.get("/show/audio/part104.m4s"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished() && !hinted.is_finished());
    f.push_audio_part();
    let (status, _, body) = pending.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("URI=\"part104.m4s\""), "{body}");
    assert!(body.contains("LAST-MSN=11,LAST-PART=0"), "{body}");
    let (status, _, body) = hinted.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "audio104"));
    let (_, _, body) = f.get("/show/audio/init0.mp4").await;
    assert_eq!(body, "AUDIOINIT");
    let (_, _, body) = f.get("/show/audio/seg10.m4s").await;
    assert_eq!(body, "audio100audio101audio102audio103");
}

#[tokio::test(start_paused = true)]
async fn multivariant_waits_for_the_audio_rendition_of_a_source_with_audio() {
    let mut f = Fixture::with_audio();
    f.push_part(); // video starts first
    let pending = tokio::spawn(f.get("/show/index.m3u8"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pending.is_finished(),
        "a variant without the audio group would stay silent"
    );
    f.push_audio_part();
    let (status, _, body) = pending.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("#EXT-X-MEDIA:TYPE=AUDIO"), "{body}");
    assert!(body.contains("AUDIO=\"audio\""), "{body}");
}

#[tokio::test(start_paused = true)]
async fn video_only_streams_have_no_audio_rendition() {
    let mut f = Fixture::new();
    f.push_part();
    let (_, _, body) = f.get("/show/index.m3u8").await;
    assert!(
        !body.contains("EXT-X-MEDIA") && !body.contains("AUDIO="),
        "{body}"
    );
    let (_, _, body) = f.get("/show/main/playlist.m3u8").await;
    assert!(!body.contains("EXT-X-RENDITION-REPORT"), "{body}");
    let (status, _, _) = f.get("/show/audio/playlist.m3u8").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(start_paused = true)]
async fn unknown_objects_are_404() {
    let mut f = Fixture::new();
    f.push_part();
    for uri in [
        "/nope/index.m3u8",
        "/nope/main/playlist.m3u8",
        "/show/other/playlist.m3u8",
        "/show/main/seg9.m4s",
        "/show/main/init.mp4",
        "/show/main/init1.mp4",
        "/show/main/seg11.m4s",
        "/show/main/part50.m4s",
        "/show/main/part999.m4s",
        "/show/main/part-1.m4s",
        "/show/main/../../etc/passwd",
        "/sh%2Fow/index.m3u8",
    ] {
        let (status, _, _) = f.get(uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test(start_paused = true)]
async fn malformed_directives_are_400() {
    let mut f = Fixture::new();
    f.push_part();
    for q in [
        "_HLS_part=1",
        "_HLS_msn=abc",
        "_HLS_msn=-1",
        "_HLS_msn=99999999999999999999999",
        "_HLS_msn=10&_HLS_msn=11",
        "_HLS_msn=10&_HLS_part=x",
        "_HLS_skip=MAYBE",
        // More than two beyond the last MSN: refused at once.
        "_HLS_msn=50",
    ] {
        let (status, h, body) = f.get(&format!("/show/main/playlist.m3u8?{q}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        assert!(!body.is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn blocking_reload_answers_when_the_part_appears() {
    let mut f = Fixture::new();
    f.push_part(); // msn 10 part 0
    let pending = tokio::spawn(f.get("/show/main/playlist.m3u8?_HLS_msn=10&_HLS_part=2"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "part 2 does not exist yet");
    f.push_part(); // part 1: not enough
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished());
    f.push_part(); // part 2
    let (status, h, body) = pending.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CACHE_CONTROL], "public, max-age=12");
    assert!(body.contains("URI=\"part102.m4s\""), "{body}");
}

#[tokio::test(start_paused = true)]
async fn part_index_past_the_segment_means_next_segment() {
    let mut f = Fixture::new();
    for _ in 0..4 {
        f.push_part(); // segment 10 complete with parts 0..3
    }
    let pending = tokio::spawn(f.get("/show/main/playlist.m3u8?_HLS_msn=10&_HLS_part=7"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished());
    f.push_part(); // segment 11 part 0
    let (status, _, body) = pending.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("URI=\"part104.m4s\""), "{body}");
}

#[tokio::test(start_paused = true)]
async fn blocking_reload_times_out_with_503() {
    let mut f = Fixture::new();
    f.push_part();
    let started = tokio::time::Instant::now();
    let (status, h, _) = f
        .get("/show/main/playlist.m3u8?_HLS_msn=11&_HLS_part=0")
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // Three target durations of virtual time.
    assert_eq!(started.elapsed().as_secs(), 6);
    // Appendix B.1: an unsuccessful blocking request is cacheable for 4 × TD.
    assert_eq!(h[header::CACHE_CONTROL], "public, max-age=8");
}

#[tokio::test(start_paused = true)]
async fn late_hinted_part_is_503_and_not_cached() {
    let mut f = Fixture::new();
    f.push_part(); // hint part101, which never comes
    let (status, h, _) = f.get("/show/main/part101.m4s").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h[header::CACHE_CONTROL], "no-cache");
}

#[tokio::test(start_paused = true)]
async fn hinted_part_is_answered_when_complete() {
    let mut f = Fixture::new();
    f.push_part(); // part100; hint part101
    let pending = tokio::spawn(f.get("/show/main/part101.m4s"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished());
    f.push_part();
    let (status, _, body) = pending.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "part101"));
    // Two beyond the hint is not a part anyone announced.
    let (status, _, _) = f.get("/show/main/part104.m4s").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(start_paused = true)]
async fn ended_stream_ignores_directives() {
    let mut f = Fixture::new();
    f.push_part();
    f.video.rendition.end(Some(MediaTime::from_millis(500)));
    f.publish();
    let (status, _, body) = f
        .get("/show/main/playlist.m3u8?_HLS_msn=11&_HLS_part=3")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("#EXT-X-ENDLIST"));
    assert!(!body.contains("PRELOAD-HINT"));

    // rfc8216bis §6.2.5.1: "A Server MUST ignore the _HLS_skip directive if
    // the Playlist ... contains an EXT-X-ENDLIST tag."
    let (status, _, delta) = f.get("/show/main/playlist.m3u8?_HLS_skip=YES").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!delta.contains("#EXT-X-SKIP"), "{delta}");
    assert!(delta.contains("#EXT-X-ENDLIST"), "{delta}");
}

/// Twelve complete 2 s segments (MSN 10..=21, the gateway's default window)
/// and two parts of MSN 22. CAN-SKIP-UNTIL is 12 s: the ends of 10..=14 lie
/// more than 12 s before the end of 21, so a delta update skips those five.
fn delta_fixture() -> Fixture {
    let mut f = Fixture::with_retention(Retention { segments: 12 });
    for _ in 0..12 * 4 + 2 {
        f.push_part();
    }
    f
}

#[tokio::test(start_paused = true)]
async fn skip_yes_answers_with_a_delta_update() {
    let f = delta_fixture();
    let (status, h, full) = f.get("/show/main/playlist.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    assert!(full.contains("#EXT-X-VERSION:9\n"), "{full}");
    assert!(full.contains(",CAN-SKIP-UNTIL=12.0\n"), "{full}");
    assert!(!full.contains("#EXT-X-SKIP"), "{full}");
    let full_cache = h[header::CACHE_CONTROL].clone();

    let (status, h, delta) = f.get("/show/main/playlist.m3u8?_HLS_skip=YES").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/vnd.apple.mpegurl");
    assert_eq!(h[header::CACHE_CONTROL], full_cache);
    assert!(
        delta.contains(
            "#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-SKIP:SKIPPED-SEGMENTS=5\n\
             #EXT-X-MAP:URI=\"init0.mp4\"\n"
        ),
        "{delta}"
    );
    assert!(!delta.contains("seg14.m4s"), "{delta}");
    // From the first listed segment on, the delta is the full playlist.
    let from = |text: &str| text[text.find("#EXT-X-PROGRAM-DATE-TIME").unwrap()..].to_owned();
    let kept = full[full.find("seg14.m4s\n").unwrap() + "seg14.m4s\n".len()..].to_owned();
    assert_eq!(from(&delta), kept);
    assert!(delta.len() < full.len());

    // v2 is answered alike: no date ranges, no CAN-SKIP-DATERANGES.
    let (status, _, v2) = f.get("/show/main/playlist.m3u8?_HLS_skip=v2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v2, delta);
    assert!(!v2.contains("DATERANGE"), "{v2}");
}

#[tokio::test(start_paused = true)]
async fn blocking_reload_with_skip_answers_a_delta_when_the_part_appears() {
    let mut f = delta_fixture();
    // Directive order does not matter.
    let pending =
        tokio::spawn(f.get("/show/main/playlist.m3u8?_HLS_skip=YES&_HLS_part=2&_HLS_msn=22"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "part 22.2 does not exist yet");
    f.push_part(); // 22.2 = part150
    let (status, h, body) = pending.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CACHE_CONTROL], "public, max-age=12");
    assert!(body.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=5\n"), "{body}");
    assert!(body.contains("URI=\"part150.m4s\""), "{body}");
    assert!(body.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part151.m4s\"\n"));

    // The same request answered at once, now that the part exists, is the same
    // delta update.
    let (_, _, again) = f
        .get("/show/main/playlist.m3u8?_HLS_msn=22&_HLS_part=2&_HLS_skip=YES")
        .await;
    assert_eq!(again, body);
}

#[tokio::test(start_paused = true)]
async fn stream_list_reports_streams() {
    let mut f = Fixture::new();
    let (status, _, body) = f.get("/api/v1/streams").await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["streams"][0]["name"], "show");
    assert_eq!(v["streams"][0]["live"], false);
    f.push_part();
    let (_, _, body) = f.get("/api/v1/streams").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["streams"][0]["live"], true);
}

#[tokio::test(start_paused = true)]
async fn playlists_are_gzipped_when_accepted_media_is_not() {
    let mut f = Fixture::new();
    for _ in 0..6 {
        f.push_part();
    }
    let gzip = [(header::ACCEPT_ENCODING, "gzip")];
    let (status, h, body) = f.get_with("/show/main/playlist.m3u8", &gzip).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_ENCODING], "gzip");
    assert!(body.starts_with("#EXTM3U\n"), "{body}");
    let (_, h, body) = f.get_with("/show/main/part103.m4s", &gzip).await;
    assert!(h.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(body, "part103");
    let (_, h, _) = f.get("/show/main/playlist.m3u8").await;
    assert!(h.get(header::CONTENT_ENCODING).is_none());
    let refused = [(header::ACCEPT_ENCODING, "br, gzip;q=0")];
    let (_, h, body) = f.get_with("/show/main/playlist.m3u8", &refused).await;
    assert!(h.get(header::CONTENT_ENCODING).is_none());
    assert!(body.starts_with("#EXTM3U\n"), "{body}");
}

#[tokio::test(start_paused = true)]
async fn immutable_objects_have_strong_etags_and_answer_304() {
    let mut f = Fixture::new();
    for _ in 0..6 {
        f.push_part();
    }
    for (uri, etag) in [
        ("/show/main/part103.m4s", "\"7-main/part103.m4s\""),
        ("/show/main/seg10.m4s", "\"7-main/seg10.m4s\""),
        ("/show/main/init0.mp4", "\"7-main/init0.mp4\""),
    ] {
        let (status, h, _) = f.get(uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(h[header::ETAG], etag, "{uri}");
        let cache = h[header::CACHE_CONTROL].clone();

        let (status, h, body) = f.get_with(uri, &[(header::IF_NONE_MATCH, etag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{uri}");
        assert!(body.is_empty(), "{uri}: {body}");
        assert_eq!(h[header::ETAG], etag, "{uri}");
        assert_eq!(h[header::CACHE_CONTROL], cache, "{uri}");

        // Another incarnation of the stream (or another object) is not this one.
        let (status, _, _) = f
            .get_with(uri, &[(header::IF_NONE_MATCH, "\"6-main/part103.m4s\"")])
            .await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }

    // A segment is complete at PDT + duration: 1_795_000_000 s + 2 s.
    let (_, h, _) = f.get("/show/main/seg10.m4s").await;
    assert_eq!(h[header::LAST_MODIFIED], "Wed, 18 Nov 2026 11:06:42 GMT");
    let since = [(header::IF_MODIFIED_SINCE, "Wed, 18 Nov 2026 11:06:42 GMT")];
    let (status, _, _) = f.get_with("/show/main/seg10.m4s", &since).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let before = [(header::IF_MODIFIED_SINCE, "Wed, 18 Nov 2026 11:06:41 GMT")];
    let (status, _, _) = f.get_with("/show/main/seg10.m4s", &before).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn playlists_revalidate_with_weak_etags() {
    let mut f = Fixture::new();
    for _ in 0..6 {
        f.push_part();
    }
    for uri in ["/show/main/playlist.m3u8", "/show/index.m3u8"] {
        let (status, h, _) = f.get(uri).await;
        assert_eq!(status, StatusCode::OK);
        let etag = h[header::ETAG].to_str().unwrap().to_owned();
        assert!(etag.starts_with("W/\""), "{uri}: {etag}");
        assert!(h.get(header::LAST_MODIFIED).is_none(), "{uri}");
        // The compressed body is the same playlist: same (weak) validator.
        let (_, gz, _) = f.get_with(uri, &[(header::ACCEPT_ENCODING, "gzip")]).await;
        assert_eq!(gz[header::CONTENT_ENCODING], "gzip");
        assert_eq!(gz[header::ETAG], etag.as_str());

        let (status, h304, body) = f
            .get_with(
                uri,
                &[
                    (header::IF_NONE_MATCH, &etag),
                    (header::ACCEPT_ENCODING, "gzip"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{uri}");
        assert!(body.is_empty());
        assert_eq!(h304[header::CACHE_CONTROL], h[header::CACHE_CONTROL]);
        assert_eq!(h304[header::VARY], "accept-encoding");
        assert!(h304.get(header::CONTENT_ENCODING).is_none());
    }

    let (_, h, _) = f.get("/show/main/playlist.m3u8").await;
    let old = h[header::ETAG].to_str().unwrap().to_owned();
    f.push_part();
    let (status, h, _) = f
        .get_with("/show/main/playlist.m3u8", &[(header::IF_NONE_MATCH, &old)])
        .await;
    assert_eq!(status, StatusCode::OK, "a new part makes a new playlist");
    assert_ne!(h[header::ETAG], old.as_str());

    // A blocking request that is already satisfied revalidates alike.
    let blocking = "/show/main/playlist.m3u8?_HLS_msn=11&_HLS_part=2";
    let (status, h, _) = f.get(blocking).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CACHE_CONTROL], "public, max-age=12");
    let etag = h[header::ETAG].to_str().unwrap().to_owned();
    let (status, _, _) = f
        .get_with(blocking, &[(header::IF_NONE_MATCH, &etag)])
        .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
}

#[tokio::test(start_paused = true)]
async fn player_sdk_is_served_as_a_javascript_module() {
    let f = Fixture::new();
    let (status, h, body) = f.get("/sdk/dropline-overlay.mjs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript"),
        "{h:?}"
    );
    assert!(body.contains("export function attachOverlay("), "{body}");
}

/// Reads one HTTP/1.1 answer from `conn`: its status, the head as text and
/// the body (by Content-Length; none for a 304 or when `head_only`).
async fn read_answer(
    conn: &mut DuplexStream,
    buf: &mut Vec<u8>,
    head_only: bool,
) -> (u16, String, Vec<u8>) {
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut res = httparse::Response::new(&mut fields);
        if let httparse::Status::Complete(len) = res.parse(buf).unwrap() {
            let code = res.code.unwrap();
            let length = res
                .headers
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case("content-length"))
                .map_or(0, |f| {
                    std::str::from_utf8(f.value).unwrap().parse().unwrap()
                });
            let length = if head_only || code == 304 { 0 } else { length };
            while buf.len() < len + length {
                assert_ne!(conn.read_buf(buf).await.unwrap(), 0, "closed mid-body");
            }
            let head = String::from_utf8_lossy(&buf[..len]).into_owned();
            let body = buf[len..len + length].to_vec();
            buf.drain(..len + length);
            return (code, head, body);
        }
        assert_ne!(conn.read_buf(buf).await.unwrap(), 0, "closed mid-head");
    }
}

#[tokio::test(start_paused = true)]
async fn http1_connections_keep_alive_pipeline_and_hand_over_to_hyper() {
    let mut f = Fixture::new();
    for _ in 0..6 {
        f.push_part();
    }
    let shutdown = CancellationToken::new();
    let (mut client, served) = f.connect(shutdown.clone());
    let mut buf = Vec::new();
    // Pipelined: answered in order, on the fast path.
    client
        .write_all(
            b"GET /show/main/part103.m4s HTTP/1.1\r\nhost: o\r\n\r\n\
              HEAD /show/main/part104.m4s HTTP/1.1\r\nhost: o\r\n\r\n\
              GET /show/main/playlist.m3u8?_HLS_msn=11&_HLS_part=3 HTTP/1.1\r\nhost: o\r\n\r\n",
        )
        .await
        .unwrap();
    let (code, _, body) = read_answer(&mut client, &mut buf, false).await;
    assert_eq!((code, &body[..]), (200, &b"part103"[..]));
    let (code, head, body) = read_answer(&mut client, &mut buf, true).await;
    assert_eq!(code, 200);
    assert!(head.contains("content-length: 7\r\n"), "{head}");
    assert!(body.is_empty());
    // The blocking reload waits for its part, on the same connection.
    tokio::time::sleep(Duration::from_millis(100)).await;
    f.push_part();
    f.push_part();
    let (code, _, body) = read_answer(&mut client, &mut buf, false).await;
    assert_eq!(code, 200);
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("URI=\"part107.m4s\""), "{body}");
    // Another route: the connection goes on with hyper, the bytes read so far
    // included.
    client
        .write_all(
            b"GET /healthz HTTP/1.1\r\nhost: o\r\n\r\nGET /show/main/part105.m4s HTTP/1.1\r\n",
        )
        .await
        .unwrap();
    let (code, _, body) = read_answer(&mut client, &mut buf, false).await;
    assert_eq!((code, &body[..]), (200, &b"ok\n"[..]));
    client.write_all(b"host: o\r\n\r\n").await.unwrap();
    let (code, _, body) = read_answer(&mut client, &mut buf, false).await;
    assert_eq!((code, &body[..]), (200, &b"part105"[..]));
    // At shutdown an idle connection closes.
    shutdown.cancel();
    served.await.unwrap();
    assert_eq!(client.read_buf(&mut buf).await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn connection_close_ends_a_fast_path_connection() {
    let mut f = Fixture::new();
    f.push_part();
    let (mut client, served) = f.connect(CancellationToken::new());
    let mut buf = Vec::new();
    client
        .write_all(b"GET /show/main/init0.mp4 HTTP/1.1\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let (code, head, _) = read_answer(&mut client, &mut buf, false).await;
    assert_eq!(code, 200);
    assert!(head.contains("connection: close\r\n"), "{head}");
    served.await.unwrap();
    assert_eq!(client.read_buf(&mut buf).await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_player_that_leaves_frees_its_blocking_reload_at_once() {
    let mut f = Fixture::new();
    for _ in 0..6 {
        f.push_part();
    }
    let (mut client, served) = f.connect(CancellationToken::new());
    client
        .write_all(
            b"GET /show/main/playlist.m3u8?_HLS_msn=12&_HLS_part=0 HTTP/1.1\r\nhost: o\r\n\r\n",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!served.is_finished(), "the reload waits for its part");
    drop(client);
    // Well before the request's own deadline (3 × TD = 6 s).
    tokio::time::timeout(Duration::from_secs(1), served)
        .await
        .expect("the connection's task ends when the player leaves")
        .unwrap();
}
