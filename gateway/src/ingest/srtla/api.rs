//! `GET /api/v1/srtla`: the SRTLA receiver's groups and per-link statistics.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use tokio::sync::watch;

use super::stats::ReceiverStats;

/// The route; `stats` is [`super::io::SrtlaIngest::stats`] (an empty
/// snapshot when SRTLA is off).
pub fn router(stats: watch::Receiver<Arc<ReceiverStats>>) -> Router {
    Router::new()
        .route("/api/v1/srtla", get(snapshot))
        .with_state(stats)
}

async fn snapshot(State(stats): State<watch::Receiver<Arc<ReceiverStats>>>) -> Json<ReceiverStats> {
    Json(ReceiverStats::clone(&stats.borrow()))
}
