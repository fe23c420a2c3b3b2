//! HTTP surface of the overlay (documented in `docs/openapi.yaml`): the cue
//! API, webhooks and offer verification. Errors are JSON
//! `{"error": "<code>", "message": "<text>"}`.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use overlay::cue::MAX_BODY_BYTES;
use overlay::webhook::{
    AdapterError, Outcome, STRIPE_TOLERANCE_SECS, VerifyError, plain, shopify, stripe,
    verify_hmac_base64, verify_stripe,
};
use overlay::{Anchor, CancelError, Cue, CueError, CueState, ScheduleError};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Digest;
use subtle::ConstantTimeEq;

use super::{OpError, Overlay, Timeline};

/// Largest webhook body accepted (Shopify orders with many lines stay far below).
pub const MAX_WEBHOOK_BYTES: usize = 512 * 1024;

/// The overlay's routes, to merge into the HTTP router.
pub fn router(overlay: Overlay) -> Router {
    let cues = Router::new()
        .route("/api/v1/streams/{name}/cues", post(create).get(list))
        .route("/api/v1/streams/{name}/cues/{id}", get(one).delete(cancel))
        // Room for the body limit plus a little, so `CueRequest::parse`
        // answers oversize bodies with its own error.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES * 2));
    let hooks = Router::new()
        .route("/api/v1/webhooks/{source}", post(webhook))
        .route("/api/v1/offers/verify", post(verify_offer))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES));
    cues.merge(hooks).with_state(overlay)
}

fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({"error": code, "message": message.to_string()})),
    )
        .into_response()
}

impl IntoResponse for OpError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::UnknownStream => (StatusCode::NOT_FOUND, "unknown-stream"),
            Self::Cue(CueError::BodyTooLarge { .. } | CueError::PayloadTooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "too-large")
            }
            Self::Cue(CueError::Offer(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "offer-terms"),
            Self::Cue(_) => (StatusCode::BAD_REQUEST, "invalid-body"),
            Self::Schedule(e) => match e {
                ScheduleError::InvalidIdempotencyKey => {
                    (StatusCode::BAD_REQUEST, "invalid-idempotency-key")
                }
                // draft-ietf-httpapi-idempotency-key-header §2.7: a key reused
                // with a different payload is 422.
                ScheduleError::IdempotencyConflict => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "idempotency-conflict")
                }
                ScheduleError::DuplicateId(_) => (StatusCode::CONFLICT, "duplicate-id"),
                ScheduleError::AnchorInPast => (StatusCode::UNPROCESSABLE_ENTITY, "anchor-in-past"),
                ScheduleError::AnchorTooFar => (StatusCode::UNPROCESSABLE_ENTITY, "anchor-too-far"),
                ScheduleError::NotLive => (StatusCode::CONFLICT, "not-live"),
            },
            Self::Cancel(CancelError::Unknown) => (StatusCode::NOT_FOUND, "unknown-cue"),
            Self::Cancel(CancelError::AlreadyAired) => (StatusCode::CONFLICT, "already-aired"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "store-unavailable"),
        };
        error(status, code, self)
    }
}

/// Bearer auth against the stream's token, compared in constant time
/// (`subtle`, over SHA-256 digests). An unknown stream is 404 before auth: names are not secret.
#[allow(clippy::result_large_err)]
fn authorize(overlay: &Overlay, name: &str, headers: &HeaderMap) -> Result<(), Response> {
    let Some(want) = overlay.token(name) else {
        return Err(OpError::UnknownStream.into_response());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Digests first, so the comparison's time does not even reveal the length.
    let digest = |s: &str| sha2::Sha256::digest(s.as_bytes());
    if bool::from(digest(given).ct_eq(&digest(want))) {
        return Ok(());
    }
    let mut res = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid bearer token for this stream is required",
    );
    // RFC 6750 §3.
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"dropline\""),
    );
    Err(res)
}

#[derive(Serialize)]
struct PartJson {
    msn: u64,
    part: u32,
}

/// A cue as the API shows it.
#[derive(Serialize)]
pub struct CueView {
    id: String,
    kind: overlay::CueKind,
    state: &'static str,
    anchor: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u32>,
    payload: Value,
    /// PROGRAM-DATE-TIME of its media time (placed or aired).
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<String>,
    /// Media time, 90 kHz ticks on the stream timeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    media_time: Option<i64>,
    /// Aired: the first part that carried it. Placed at the live edge: the
    /// part being cut now, where it will land.
    #[serde(skip_serializing_if = "Option::is_none")]
    part: Option<PartJson>,
    /// True once carried.
    aired: bool,
}

fn anchor_json(a: Anchor) -> Value {
    match a {
        Anchor::Now => json!({"type": "now"}),
        Anchor::NextKeyframe => json!({"type": "next-keyframe"}),
        Anchor::ProgramDateTime(t) => {
            json!({"type": "program-date-time", "at": t.to_rfc3339_millis()})
        }
        Anchor::WallClock(t) => json!({"type": "wall-clock", "at": t.to_rfc3339_millis()}),
    }
}

fn view(cue: &Cue, timeline: Option<&Timeline>) -> CueView {
    let placement = cue.placement();
    let part = match cue.state {
        CueState::Aired { landed, .. } => Some(landed),
        CueState::Placed(p) => timeline
            .filter(|t| p.media_time >= t.view.edge && p.media_time < t.view.edge + t.part_target)
            .map(|t| t.next_part),
        CueState::Pending | CueState::Cancelled => None,
    };
    CueView {
        id: cue.id.to_string(),
        kind: cue.kind,
        state: match cue.state {
            CueState::Pending => "pending",
            CueState::Placed(_) => "placed",
            CueState::Aired { .. } => "aired",
            CueState::Cancelled => "cancelled",
        },
        anchor: anchor_json(cue.anchor),
        duration_ms: cue.duration_ms,
        payload: cue.payload.value().clone(),
        start: placement.map(|p| p.start.to_rfc3339_millis()),
        media_time: placement.map(|p| p.media_time.0),
        part: part.map(|p| PartJson {
            msn: p.msn.0,
            part: p.part.0,
        }),
        aired: matches!(cue.state, CueState::Aired { .. }),
    }
}

fn edge_json(t: Option<&Timeline>) -> Value {
    t.map_or(Value::Null, |t| {
        json!({
            "msn": t.next_part.msn.0,
            "part": t.next_part.part.0,
            "pdt": t.view.edge_pdt.to_rfc3339_millis(),
        })
    })
}

/// Runs a store-touching operation on the blocking pool: the store's lock may
/// be held across a commit.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OpError> + Send + 'static,
) -> Result<T, OpError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(OpError::Unavailable))
}

/// Runs `op` for stream `name` on the blocking pool once the request is
/// authorized for that stream.
async fn store_op<T: Send + 'static>(
    overlay: &Overlay,
    name: String,
    headers: &HeaderMap,
    op: impl FnOnce(&Overlay, &str) -> Result<T, OpError> + Send + 'static,
) -> Result<T, Response> {
    authorize(overlay, &name, headers)?;
    let o = overlay.clone();
    blocking(move || op(&o, &name))
        .await
        .map_err(IntoResponse::into_response)
}

async fn create(
    State(overlay): State<Overlay>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = headers
        .get("idempotency-key")
        .map(|k| k.to_str().map(str::to_owned));
    let schedule = move |o: &Overlay, name: &str| {
        let key = key
            .transpose()
            .map_err(|_| OpError::Schedule(ScheduleError::InvalidIdempotencyKey))?;
        o.schedule(name, key.as_deref(), &body)
    };
    match store_op(&overlay, name, &headers, schedule).await {
        Ok(answer) => {
            let status = if answer.replay {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let mut body = serde_json::to_value(view(&answer.cue, answer.timeline.as_ref()))
                .unwrap_or(Value::Null);
            if let Some(map) = body.as_object_mut() {
                map.insert("live_edge".into(), edge_json(answer.timeline.as_ref()));
            }
            let mut res = (status, Json(body)).into_response();
            if answer.replay {
                res.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            res
        }
        Err(res) => res,
    }
}

async fn list(
    State(overlay): State<Overlay>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    match store_op(&overlay, name, &headers, |o, name| o.cues(name, None)).await {
        Ok((cues, t)) => Json(json!({
            "cues": cues.iter().map(|c| view(c, t.as_ref())).collect::<Vec<_>>(),
            "live_edge": edge_json(t.as_ref()),
        }))
        .into_response(),
        Err(res) => res,
    }
}

async fn one(
    State(overlay): State<Overlay>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match store_op(&overlay, name, &headers, move |o, name| {
        o.cues(name, Some(&id))
    })
    .await
    {
        Ok((cues, t)) => match cues.first() {
            Some(c) => Json(view(c, t.as_ref())).into_response(),
            None => OpError::Cancel(CancelError::Unknown).into_response(),
        },
        Err(res) => res,
    }
}

async fn cancel(
    State(overlay): State<Overlay>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match store_op(&overlay, name, &headers, move |o, name| o.cancel(name, &id)).await {
        Ok(cue) => Json(view(&cue, None)).into_response(),
        Err(res) => res,
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn verify_error(e: VerifyError) -> Response {
    match e {
        VerifyError::Stale => error(StatusCode::BAD_REQUEST, "stale", e),
        VerifyError::Malformed | VerifyError::BadSignature => {
            error(StatusCode::UNAUTHORIZED, "bad-signature", e)
        }
    }
}

/// `POST /api/v1/webhooks/{source}`: verify the signature over the raw body,
/// parse with the source's adapter, dedup, apply, commit, then answer.
async fn webhook(
    State(overlay): State<Overlay>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let secrets = overlay.secrets();
    let secret = match source.as_str() {
        "shopify" => secrets.shopify.as_ref(),
        "stripe" => secrets.stripe.as_ref(),
        "plain" => secrets.plain.as_ref(),
        _ => None,
    };
    let Some(secret) = secret else {
        return error(
            StatusCode::NOT_FOUND,
            "unknown-source",
            "no webhook secret is configured for this source",
        );
    };
    let parsed = match source.as_str() {
        "stripe" => verify_stripe(
            secret,
            &body,
            header_str(&headers, "stripe-signature"),
            overlay.now(),
            STRIPE_TOLERANCE_SECS,
        )
        .map_err(verify_error)
        .map(|_| stripe::parse(&body)),
        "shopify" => {
            verify_hmac_base64(secret, &body, header_str(&headers, "x-shopify-hmac-sha256"))
                .map_err(verify_error)
                .map(|()| {
                    shopify::parse(
                        header_str(&headers, "x-shopify-topic"),
                        header_str(&headers, "x-shopify-webhook-id"),
                        &body,
                    )
                })
        }
        _ => verify_hmac_base64(
            secret,
            &body,
            header_str(&headers, "x-dropline-hmac-sha256"),
        )
        .map_err(verify_error)
        .map(|()| plain::parse(&body)),
    };
    let event = match parsed {
        Err(res) => return res,
        Ok(Err(AdapterError::Ignored(kind))) => {
            return Json(json!({"outcome": "ignored", "type": kind})).into_response();
        }
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, "invalid-body", e),
        Ok(Ok(event)) => event,
    };
    let o = overlay.clone();
    let webhook_id = event.webhook_id.clone();
    match blocking(move || o.apply_event(&event)).await {
        Ok(outcome) => Json(json!({
            "outcome": match outcome {
                Outcome::Apply => "applied",
                Outcome::Duplicate => "duplicate",
                Outcome::Stale => "stale",
            },
            "webhook_id": webhook_id,
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    token: String,
}

/// `POST /api/v1/offers/verify`: 200 with the claims, or 422 saying why not.
async fn verify_offer(State(overlay): State<Overlay>, body: Bytes) -> Response {
    let Ok(VerifyBody { token }) = serde_json::from_slice(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid-body",
            "expected {\"token\": \"...\"}",
        );
    };
    match overlay.verify_offer(&token) {
        None => error(
            StatusCode::NOT_FOUND,
            "no-offer-key",
            "no offer key is configured",
        ),
        Some(Ok(c)) => Json(json!({
            "valid": true,
            "offer_id": c.offer_id,
            "product_ids": c.product_ids,
            "not_before_ms": c.not_before_ms,
            "expires_ms": c.expires_ms,
        }))
        .into_response(),
        Some(Err(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"valid": false, "error": "invalid-token", "message": e.to_string()})),
        )
            .into_response(),
    }
}
