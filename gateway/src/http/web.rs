//! The small JSON API the demo page uses, and the player SDK it imports.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

use super::AppState;
use crate::ingest::stats::PublisherStats;
use crate::stream::uplink::Role;

#[derive(Serialize)]
pub(super) struct StreamList {
    streams: Vec<StreamEntry>,
}

#[derive(Serialize)]
struct StreamEntry {
    name: String,
    /// The multivariant playlist, relative to the server root.
    url: String,
    /// Media is flowing (a full GOP has been packaged).
    live: bool,
    /// The uplink being packaged now: `primary`, `backup` or null (none yet).
    active_uplink: Option<&'static str>,
    /// Connected publishers (primary and backup uplink) and their statistics.
    publishers: Vec<PublisherStats>,
}

/// `GET /api/v1/streams`: the streams that exist now.
pub(super) async fn streams(State(state): State<AppState>) -> Json<StreamList> {
    let streams = state
        .registry
        .names()
        .into_iter()
        .map(|name| {
            let (live, active_uplink) = state.registry.get(&name).map_or((false, None), |w| {
                let s = w.borrow();
                let live = s.main.as_ref().is_some_and(|m| !m.ended) && !s.closed;
                (live, s.uplink.map(Role::as_str))
            });
            StreamEntry {
                active_uplink,
                url: format!("/{name}/index.m3u8"),
                publishers: state.registry.publishers(&name),
                name,
                live,
            }
        })
        .collect();
    Json(StreamList { streams })
}

/// The player SDK's one source file, built into the binary so that `/sdk/dropline-overlay.mjs`
/// answers whatever `--web-root` points at (the Docker image ships only the page).
const PLAYER_SDK: &str = include_str!("../../../overlay/sdk/dropline-overlay.mjs");

/// `GET /sdk/dropline-overlay.mjs`: an ES module, so it needs a JavaScript MIME type.
pub(super) async fn player_sdk() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PLAYER_SDK,
    )
}
