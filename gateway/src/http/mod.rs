//! The HTTP origin: playlists, init segments, parts and segments, the stream
//! list, and the demo player page.
//!
//! Handlers only read stream snapshots; every blocking decision is made by
//! `packager::blocking`, and every wait has a deadline (3 × target duration).

mod conditional;
mod h1;
mod hls;
mod playlist_cache;
pub mod server;
pub mod tls;
mod web;

use std::path::PathBuf;

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::routing::get;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{
    DefaultPredicate, NotForContentType, Predicate, SizeAbove,
};
use tower_http::cors::{Any, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;

pub use self::playlist_cache::PlaylistCache;
use crate::stream::registry::Registry;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub registry: Registry,
    pub web_root: PathBuf,
    /// Media playlists rendered once per snapshot for all blocked readers.
    pub playlists: PlaylistCache,
}

impl AppState {
    #[must_use]
    pub fn new(registry: Registry, web_root: PathBuf) -> Self {
        Self {
            registry,
            web_root,
            playlists: PlaylistCache::default(),
        }
    }
}

/// The whole HTTP surface; tests drive it with `tower::ServiceExt::oneshot`.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The HTTP surface plus `api` (the overlay's routes, `crate::overlay::api`),
/// under the same layers.
pub fn router_with(state: AppState, api: Router) -> Router {
    // Players are often served from another origin than the media.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .expose_headers([header::AGE, header::CONTENT_LENGTH, header::ETAG]);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/streams", get(web::streams))
        .route("/{stream}/index.m3u8", get(hls::multivariant))
        .route("/{stream}/{rendition}/{object}", get(hls::rendition_object))
        .route("/sdk/dropline-overlay.mjs", get(web::player_sdk))
        .route_service(
            "/vendor/hls.js",
            ServeFile::new(state.web_root.join("node_modules/hls.js/dist/hls.min.js")),
        )
        // The demo page and its scripts; `/` is `index.html`.
        .fallback_service(ServeDir::new(&state.web_root))
        .with_state(state)
        .merge(api)
        // Appendix B: playlists compress well; the HLS routes send them
        // gzip-compressed themselves when accepted (once per snapshot, and
        // alike on the HTTP/1.1 fast path) and media as is. This layer is for
        // the pages and the API; short answers (errors) are not worth it.
        .layer(
            CompressionLayer::new().compress_when(
                DefaultPredicate::new()
                    .and(SizeAbove::new(256))
                    .and(NotForContentType::const_new("video/")),
            ),
        )
        .layer(cors)
        .layer(axum::middleware::map_response(server_header))
        // One line per request and per response at debug level
        // (`RUST_LOG=tower_http=debug`; the HTTP/1.1 fast path logs the same
        // request line under `gateway::http`): what reached the origin, e.g.
        // behind a cache.
        .layer(TraceLayer::new_for_http())
}

async fn server_header(mut res: axum::response::Response) -> axum::response::Response {
    res.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("dropline"));
    res
}
