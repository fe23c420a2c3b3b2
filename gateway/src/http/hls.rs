//! LL-HLS objects: multivariant and media playlists, init segment, parts, segments.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use packager::blocking::{self, Decision};
use packager::directives::{self, Directives};
use packager::playlist::{
    AudioRendition, MediaRenderOptions, ObjectName, PLAYLIST_NAME, RenditionReport, Variant,
    parse_object_name, render_media_playlist_with_metadata, render_multivariant,
};
use packager::rendition::RenditionSnapshot;
use packager::units::WallTime;
use tokio::time::{Instant, timeout_at};

use super::AppState;
use super::conditional::Validators;
use super::playlist_cache::{PlaylistCache, Rendered, gzip};
use crate::stream::registry::StreamWatch;
use crate::stream::{
    AUDIO_RENDITION, SOURCE_RENDITIONS, StreamSnapshot, VIDEO_RENDITION, valid_name,
};

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const MP4_TYPE: &str = "video/mp4";

/// An answer of this surface with its whole body: the axum handlers and the
/// HTTP/1.1 fast path (`h1.rs`) send the same one.
pub(super) type Answer = axum::http::Response<Bytes>;

/// Errors of this surface; each maps to a fixed status and a client-safe body.
#[derive(Debug, thiserror::Error)]
pub(super) enum HlsError {
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    /// rfc8216bis §6.2.5.2: "A Server that cannot provide the requested
    /// Playlist after blocking for more than three Target Durations SHOULD
    /// return Service Unavailable, such as HTTP 503".
    #[error("the playlist did not reach the requested segment/part in time")]
    Timeout { target_duration: u32 },
    /// A hinted part that did not appear within 3 × TD (same §6.2.5.2 rule).
    #[error("the part did not appear in time")]
    PartTimeout,
    #[error("internal error")]
    Internal,
}

impl HlsError {
    fn answer(&self) -> Answer {
        let (status, cache) = match self {
            Self::NotFound => (StatusCode::NOT_FOUND, "no-cache".to_owned()),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "no-cache".to_owned()),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "no-cache".to_owned()),
            // Appendix B.1 lifetimes for an unsuccessful blocking playlist
            // request: 4 × TD. (A 400 stays uncached: it refuses an MSN
            // beyond the live edge, and the same URL is valid a few parts
            // later; a part's 503 likewise, the part may still come.)
            Self::Timeout { target_duration } => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("public, max-age={}", target_duration * 4),
            ),
            Self::PartTimeout => (StatusCode::SERVICE_UNAVAILABLE, "no-cache".to_owned()),
        };
        let mut res = Answer::new(Bytes::from(format!("{self}\n")));
        *res.status_mut() = status;
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Ok(v) = HeaderValue::from_str(&cache) {
            h.insert(header::CACHE_CONTROL, v);
        }
        res
    }
}

impl IntoResponse for HlsError {
    fn into_response(self) -> Response {
        self.answer().map(Body::from)
    }
}

fn stream_watch(state: &AppState, name: &str) -> Result<StreamWatch, HlsError> {
    if !valid_name(name) {
        return Err(HlsError::NotFound);
    }
    state.registry.get(name).ok_or(HlsError::NotFound)
}

/// Waits until the stream has rendition `name`; a stream whose publisher has
/// not yet sent a full GOP has nothing to play.
async fn rendition(
    watch: &mut StreamWatch,
    name: &str,
    deadline: Instant,
) -> Result<(Arc<StreamSnapshot>, Arc<RenditionSnapshot>), HlsError> {
    loop {
        let snap = Arc::clone(&watch.borrow_and_update());
        if let Some(r) = snap.rendition(name) {
            let r = Arc::clone(r);
            return Ok((snap, r));
        }
        if snap.closed {
            return Err(HlsError::NotFound);
        }
        match timeout_at(deadline, watch.changed()).await {
            Ok(Ok(())) => {}
            _ => return Err(HlsError::NotFound),
        }
    }
}

/// How long a request waits for a stream that exists but has not started.
const STARTUP_WAIT: Duration = Duration::from_secs(10);

/// `GET /{stream}/index.m3u8`.
pub(super) async fn multivariant(
    State(state): State<AppState>,
    Path(stream): Path<String>,
    req: HeaderMap,
) -> Response {
    let route = Route::Multivariant(&stream);
    route.answer(&state, "", &req).await.map(Body::from)
}

/// `GET /{stream}/{rendition}/{object}`.
pub(super) async fn rendition_object(
    State(state): State<AppState>,
    Path((stream, rendition, object)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    req: HeaderMap,
) -> Response {
    let Some(object) = parse_object_name(&object) else {
        return HlsError::NotFound.into_response();
    };
    let route = Route::Object(&stream, &rendition, object);
    let query = query.as_deref().unwrap_or("");
    route.answer(&state, query, &req).await.map(Body::from)
}

/// A request path that one of the two routes above answers, and what both
/// they and the HTTP/1.1 fast path (`h1.rs`) answer it with. No other route
/// of `super::router` ends in an HLS object name (`routes_are_the_routers`
/// below).
#[derive(Debug, PartialEq)]
pub(super) enum Route<'a> {
    Multivariant(&'a str),
    Object(&'a str, &'a str, ObjectName),
}

impl<'a> Route<'a> {
    /// `None` for any other path, and for one the router would
    /// percent-decode first.
    pub(super) fn of(path: &'a str) -> Option<Self> {
        let rest = path.strip_prefix('/')?;
        if rest.contains('%') {
            return None;
        }
        let mut segments = rest.split('/');
        let (stream, second) = (segments.next()?, segments.next()?);
        let (third, extra) = (segments.next(), segments.next());
        if stream.is_empty() || extra.is_some() {
            return None;
        }
        match third {
            None => (second == "index.m3u8").then_some(Self::Multivariant(stream)),
            Some(object) if !second.is_empty() => {
                Some(Self::Object(stream, second, parse_object_name(object)?))
            }
            Some(_) => None,
        }
    }

    /// The answer to a GET of this path with `query` (the raw query string)
    /// and the request headers `req`.
    pub(super) async fn answer(self, state: &AppState, query: &str, req: &HeaderMap) -> Answer {
        let res = match self {
            Self::Multivariant(stream) => multivariant_answer(state, stream, req).await,
            Self::Object(stream, rendition, object) => {
                object_answer(state, stream, rendition, object, query, req).await
            }
        };
        res.unwrap_or_else(|e| e.answer())
    }
}

async fn multivariant_answer(
    state: &AppState,
    stream: &str,
    req: &HeaderMap,
) -> Result<Answer, HlsError> {
    let mut watch = stream_watch(state, stream)?;
    let deadline = Instant::now() + STARTUP_WAIT;
    let (mut snap, r) = rendition(&mut watch, VIDEO_RENDITION, deadline).await?;
    // The source has audio but its rendition has not published yet (the
    // video's timeline starts first): a player given a variant without the
    // audio group would never play the audio, so wait for it a little.
    while snap.audio.is_none()
        && snap
            .variant
            .as_ref()
            .is_some_and(|v| v.audio_channels.is_some())
    {
        match rendition(&mut watch, AUDIO_RENDITION, deadline).await {
            Ok((s, _)) => snap = s,
            Err(_) => break,
        }
    }
    // Likewise the ladder's rungs trail the source by the transcoder's
    // delay: a player reads the multivariant playlist once, so wait for them.
    while snap.ladder.len() < snap.ladder_expected && !snap.closed {
        match timeout_at(deadline, watch.changed()).await {
            Ok(Ok(())) => snap = Arc::clone(&watch.borrow_and_update()),
            _ => break,
        }
    }
    let Some(info) = &snap.variant else {
        return Err(HlsError::NotFound);
    };
    // The audio rendition is listed once it has published.
    let audio: Vec<AudioRendition> = info
        .audio_channels
        .filter(|_| snap.audio.is_some())
        .map(|channels| AudioRendition {
            group_id: AUDIO_RENDITION.to_owned(),
            name: AUDIO_RENDITION.to_owned(),
            uri: format!("{AUDIO_RENDITION}/{PLAYLIST_NAME}"),
            channels,
            default: true,
        })
        .into_iter()
        .collect();
    // One variant per video rendition: the source's, then each ladder rung
    // that has published, all with the same audio group.
    let rungs = snap
        .ladder
        .iter()
        .filter_map(|r| Some((&*r.name, r.variant.as_ref()?)));
    let variants: Vec<Variant> = std::iter::once((VIDEO_RENDITION, info))
        .chain(rungs)
        .map(|(name, info)| Variant {
            uri: format!("{name}/{PLAYLIST_NAME}"),
            bandwidth: info.bandwidth,
            average_bandwidth: Some(info.average_bandwidth),
            codecs: info.codecs.clone(),
            resolution: info.resolution,
            frame_rate: info.frame_rate,
            audio_group: audio.first().map(|a| a.group_id.clone()),
        })
        .collect();
    let body = render_multivariant(&variants, &audio).map_err(|e| {
        tracing::error!(stream = %stream, "multivariant playlist: {e}");
        HlsError::Internal
    })?;
    let td = r.params.target_duration_secs;
    let validators = Validators::playlist(body.as_bytes());
    // Read once per player: compressed per request.
    let text = Bytes::from(body);
    let body = accepts_gzip(req).then(|| gzip(&text));
    Ok(validators.apply(req, playlist_response(text, body, cache_secs(td, false))))
}

async fn object_answer(
    state: &AppState,
    stream: &str,
    name: &str,
    object: ObjectName,
    query: &str,
    req: &HeaderMap,
) -> Result<Answer, HlsError> {
    let mut watch = stream_watch(state, stream)?;
    // A ladder rung is known once it has published: players learn its name
    // from the multivariant playlist, which lists it from then on.
    let rung = || watch.borrow().ladder.iter().any(|r| *r.name == *name);
    if !SOURCE_RENDITIONS.contains(&name) && !rung() {
        return Err(HlsError::NotFound);
    }
    match object {
        ObjectName::Playlist => {
            let d = directives::parse(query).map_err(|e| HlsError::BadRequest(e.to_string()))?;
            let (body, cache) = media_playlist(&state.playlists, &mut watch, name, &d).await?;
            let gzip = accepts_gzip(req).then_some(body.gzip);
            Ok(body
                .validators
                .apply(req, playlist_response(body.text, gzip, cache)))
        }
        ObjectName::Init(id) => {
            let (snap, r) = rendition(&mut watch, name, Instant::now() + STARTUP_WAIT).await?;
            // Versioned by name: new codec parameters get a new URI.
            let init = r.init(id).ok_or(HlsError::NotFound)?;
            let validators = Validators::immutable(snap.incarnation, name, object);
            Ok(validators.apply(req, media_response(init.clone(), IMMUTABLE)))
        }
        ObjectName::Segment(msn) => {
            let (snap, r) = rendition(&mut watch, name, Instant::now()).await?;
            let seg = r.segment(msn).ok_or(HlsError::NotFound)?;
            // Complete once its last frame is in.
            let end = seg.program_date_time.offset(seg.duration);
            let validators = Validators::immutable(snap.incarnation, name, object)
                .last_modified(wall_clock(end));
            Ok(validators.apply(req, media_response(seg.data.clone(), IMMUTABLE)))
        }
        ObjectName::Part(seq) => {
            let (incarnation, data) = part(&mut watch, name, seq).await?;
            let validators = Validators::immutable(incarnation, name, object);
            Ok(validators.apply(req, media_response(data, IMMUTABLE)))
        }
    }
}

fn wall_clock(t: WallTime) -> SystemTime {
    let micros = u64::try_from(t.0).unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_micros(micros)
}

/// Parts and segments never change once published (rfc8216bis §6.2.1).
/// Their URIs restart only with a new stream after EXT-X-ENDLIST, so the
/// lifetime stays bounded rather than `immutable`.
const IMMUTABLE: &str = "public, max-age=300";

/// The rendered playlist and its Cache-Control.
async fn media_playlist(
    playlists: &PlaylistCache,
    watch: &mut StreamWatch,
    name: &str,
    d: &Directives,
) -> Result<(Rendered, String), HlsError> {
    let start = Instant::now();
    let (mut snap, mut r) = rendition(watch, name, start + STARTUP_WAIT).await?;
    let td = r.params.target_duration_secs;
    let blocking = d.msn.is_some();
    // rfc8216bis §6.2.5.2: "If the server cannot satisfy the request within
    // three times the Target Duration, it SHOULD respond with 503."
    let deadline = start + Duration::from_secs(u64::from(td) * 3);
    loop {
        match blocking::decide(&r, d) {
            Decision::Ready => break,
            Decision::Reject(reason) => return Err(HlsError::BadRequest(reason.to_string())),
            Decision::Wait => {}
        }
        match next_rendition(watch, name, deadline, td).await? {
            Some(next) => (snap, r) = next,
            // The stream task is gone: answer with what we have.
            None => break,
        }
    }
    // Rendered once per stream snapshot, rendition and `_HLS_skip` value for
    // all the requests it answers.
    let body = playlists.media_playlist(&snap, name, d.skip, || render(&snap, name, &r, d));
    Ok((body, cache_secs(td, blocking)))
}

fn render(snap: &StreamSnapshot, name: &str, r: &RenditionSnapshot, d: &Directives) -> String {
    // PART-HOLD-BACK should be at least 3 × PART-TARGET (rfc8216bis §4.4.3.8)
    // and the audio's PART-TARGET is a little longer than the video's: every
    // rendition writes the same EXT-X-SERVER-CONTROL, from the longest one, so
    // a player switching renditions keeps its distance from the live edge.
    let params = snap
        .renditions()
        .map(|(_, x)| x.params)
        .max_by_key(|p| p.part_target)
        .unwrap_or(r.params);
    let opts = MediaRenderOptions::for_params(&params);
    // Appendix B.1: a report on every other rendition, from the same
    // published instant as this one.
    let reports: Vec<RenditionReport> = snap
        .renditions()
        .filter(|(other, _)| *other != name)
        .filter_map(|(other, x)| RenditionReport::of(other, x))
        .collect();
    // `_HLS_skip` shapes the answer only once blocking is over: the delta is
    // of the playlist that satisfied `_HLS_msn`/`_HLS_part`. The packager
    // answers with the full playlist where the spec says to ignore the
    // directive (rfc8216bis §6.2.5.1: "A Server MUST ignore the _HLS_skip
    // directive if the Playlist does not contain the CAN-SKIP-UNTIL attribute,
    // or if it contains an EXT-X-ENDLIST tag."). The URI differs from the full
    // playlist's, so caches keep the two apart; lifetimes are unchanged.
    render_media_playlist_with_metadata(r, &opts, d.skip, &reports, &snap.dateranges)
}

/// Part `seq` and the incarnation of its stream; the hinted next part is
/// answered as soon as it exists.
async fn part(
    watch: &mut StreamWatch,
    name: &str,
    seq: packager::units::PartSeq,
) -> Result<(WallTime, Bytes), HlsError> {
    let start = Instant::now();
    let (mut snap, mut r) = rendition(watch, name, start + STARTUP_WAIT).await?;
    let deadline = start + Duration::from_secs(u64::from(r.params.target_duration_secs) * 3);
    loop {
        if let Some(p) = r.part(seq) {
            // rfc8216bis §4.4.4.9 (GAP): the part "is not available".
            if p.gap {
                return Err(HlsError::NotFound);
            }
            return Ok((snap.incarnation, p.data.clone()));
        }
        // Only the hinted part (or, racing a reload, the one after it) is
        // worth waiting for; anything else is unknown.
        let awaited = r
            .next_part
            .is_some_and(|next| seq >= next && seq.0 <= next.0 + 1);
        if !awaited {
            return Err(HlsError::NotFound);
        }
        let td = r.params.target_duration_secs;
        (snap, r) = match next_rendition(watch, name, deadline, td).await {
            Err(HlsError::Timeout { .. }) => return Err(HlsError::PartTimeout),
            waited => waited?.ok_or(HlsError::NotFound)?,
        };
    }
}

/// Waits for the next published state of the stream and its rendition `name`
/// until `deadline` (then 503); `None` when the stream task has exited.
async fn next_rendition(
    watch: &mut StreamWatch,
    name: &str,
    deadline: Instant,
    target_duration: u32,
) -> Result<Option<(Arc<StreamSnapshot>, Arc<RenditionSnapshot>)>, HlsError> {
    match timeout_at(deadline, watch.changed()).await {
        Ok(Ok(())) => {
            let snap = Arc::clone(&watch.borrow_and_update());
            let r = snap.rendition(name).cloned().ok_or(HlsError::NotFound)?;
            Ok(Some((snap, r)))
        }
        Ok(Err(_)) => Ok(None),
        Err(_) => Err(HlsError::Timeout { target_duration }),
    }
}

/// Appendix B.1 cache lifetimes: a blocking playlist response is unique to its
/// URL and can live 6 × TD; a non-blocking one goes stale within half a TD
/// (whole seconds, rounded down, at least 1).
fn cache_secs(target_duration: u32, blocking: bool) -> String {
    if blocking {
        format!("public, max-age={}", target_duration * 6)
    } else {
        format!("public, max-age={}", (target_duration / 2).max(1))
    }
}

/// Whether `Accept-Encoding` lets a gzip body through (RFC 9110 §12.5.3):
/// `gzip` (or `x-gzip`) with a non-zero quality, or else `*` with one. The
/// cached playlists are kept gzip-compressed beside their text, so this
/// answer costs no compression (the compression layer leaves a
/// `Content-Encoding` alone).
fn accepts_gzip(req: &HeaderMap) -> bool {
    let mut explicit = None;
    let mut any = None;
    let items = req
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for item in items {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .or_else(|| p.strip_prefix("Q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            explicit = Some(!refused);
        } else if coding == "*" {
            any = Some(!refused);
        }
    }
    explicit.or(any).unwrap_or(false)
}

/// A playlist, sent as `gzip` when given (the client accepts it) and as
/// `text` otherwise.
fn playlist_response(text: Bytes, gzip: Option<Bytes>, cache: String) -> Answer {
    let compressed = gzip.is_some();
    let mut res = Answer::new(gzip.unwrap_or(text));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PLAYLIST_TYPE),
    );
    if compressed {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if let Ok(v) = HeaderValue::from_str(&cache) {
        h.insert(header::CACHE_CONTROL, v);
    }
    // Set here, not only by the compression layer (which adds it to the
    // responses it compresses), so 304s and small bodies carry it too.
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    res
}

fn media_response(body: Bytes, cache: &'static str) -> Answer {
    let mut res = Answer::new(body);
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(MP4_TYPE));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(values: &[&'static str]) -> bool {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
        }
        accepts_gzip(&h)
    }

    #[test]
    fn routes_are_the_routers() {
        use packager::units::{Msn, PartSeq};
        assert_eq!(
            Route::of("/show/index.m3u8"),
            Some(Route::Multivariant("show"))
        );
        assert_eq!(
            Route::of("/show/main/playlist.m3u8"),
            Some(Route::Object("show", "main", ObjectName::Playlist))
        );
        assert_eq!(
            Route::of("/show/audio/part12.m4s"),
            Some(Route::Object(
                "show",
                "audio",
                ObjectName::Part(PartSeq(12))
            ))
        );
        assert_eq!(
            Route::of("/show/360p/seg3.m4s"),
            Some(Route::Object("show", "360p", ObjectName::Segment(Msn(3))))
        );
        for other in [
            // The router's other routes (super::router, overlay::api, srtla::api)
            // and the demo page's files.
            "/",
            "/healthz",
            "/index.html",
            "/api/v1/streams",
            "/api/v1/srtla",
            "/api/v1/streams/show/cues",
            "/api/v1/streams/show/cues/c-1",
            "/api/v1/webhooks/shopify",
            "/api/v1/offers/verify",
            "/sdk/dropline-overlay.mjs",
            "/vendor/hls.js",
            "/node_modules/shaka-player/dist/shaka-player.compiled.js",
            // Not HLS objects, or not as the router reads them.
            "/show/main/other.m3u8",
            "/show//playlist.m3u8",
            "//main/playlist.m3u8",
            "/show/main/x/playlist.m3u8",
            "/%73how/index.m3u8",
            "/show/index.m3u8/",
            "show/index.m3u8",
        ] {
            assert_eq!(Route::of(other), None, "{other}");
        }
    }

    #[test]
    fn gzip_is_sent_only_when_accepted() {
        assert!(accepts(&["gzip, deflate, br, zstd"])); // Chromium
        assert!(accepts(&["br;q=1.0, GZIP;q=0.5"]));
        assert!(accepts(&["identity", "x-gzip"]));
        assert!(accepts(&["*;q=0.1"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["br, gzip;q=0"]));
        assert!(!accepts(&["gzip; q=0.000, *;q=0"]));
        assert!(!accepts(&["gzipped"]));
        assert!(!accepts(&["*, gzip;q=0"]));
        assert!(accepts(&["*;q=0, gzip"]));
    }
}
