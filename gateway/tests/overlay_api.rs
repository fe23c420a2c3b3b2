//! The overlay's HTTP API without sockets: cue API, webhooks and offer
//! verification through `tower::ServiceExt::oneshot`, against a registry
//! whose stream snapshot the test publishes by hand, a fixed clock, and a
//! store in a temp dir that is reopened to check durability.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use bytes::Bytes;
use gateway::config::{Config, StreamConfig};
use gateway::http::{AppState, router_with};
use gateway::overlay::settings::{DropProductSettings, DropSettings, StageSettings};
use gateway::overlay::{Overlay, api};
use gateway::stream::StreamSnapshot;
use gateway::stream::registry::Registry;
use hmac::{Hmac, Mac};
use packager::rendition::{OpenSegment, Part, PlaylistParams, Rendition, Retention};
use packager::units::{InitId, MediaTime, Msn, PartIndex, PartSeq, WallTime};
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::ServiceExt;

const TOKEN: &str = "show-api-token-0123456789";
const SECRET: &str = "whsec_fixture_secret";
/// Stream PDT of the first part; the clock sits at the live edge after it.
const PDT0_MS: i64 = 1_795_687_400_000;

fn hmac(parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn config(dir: &Path) -> Config {
    let mut cfg = Config::default();
    cfg.storage.data_dir = dir.to_owned();
    cfg.webhooks.shopify_secret = Some(SECRET.into());
    cfg.webhooks.stripe_secret = Some(SECRET.into());
    cfg.webhooks.plain_secret = Some(SECRET.into());
    cfg.offers.key = Some("offer-key-0123456789abcdef0123456789".into());
    let product = |id: &str, stock| DropProductSettings {
        product_id: id.into(),
        inventory_item_id: None,
        stock,
    };
    cfg.streams.insert(
        "show".into(),
        StreamConfig {
            api_token: Some(TOKEN.into()),
            drops: vec![DropSettings {
                id: "drop-7".into(),
                source: Default::default(),
                products: vec![product("tee-black-m", 3), product("8904410743105", 2)],
                stages: vec![
                    StageSettings {
                        label: "plenty".into(),
                        at_most: None,
                    },
                    StageSettings {
                        label: "last 3".into(),
                        at_most: Some(3),
                    },
                ],
            }],
            ..StreamConfig::default()
        },
    );
    cfg
}

struct Fixture {
    app: axum::Router,
    overlay: Overlay,
    tx: watch::Sender<Arc<StreamSnapshot>>,
    clock: Arc<AtomicI64>,
}

fn snapshot(main: Option<&Rendition>) -> Arc<StreamSnapshot> {
    Arc::new(StreamSnapshot {
        main: main.map(|r| Arc::new(r.snapshot().clone())),
        ..StreamSnapshot::empty("show", WallTime(7))
    })
}

/// A rendition with one 500 ms part cut in segment 10 (media time 20 s).
fn live_rendition() -> Rendition {
    let mut r = Rendition::new(
        PlaylistParams {
            target_duration_secs: 2,
            part_target: MediaTime::from_millis(500),
        },
        Bytes::from_static(b"INIT"),
        Retention::default(),
    );
    r.push_part(
        Some(OpenSegment {
            msn: Msn(10),
            start: MediaTime::from_millis(20_000),
            program_date_time: WallTime::from_millis(PDT0_MS),
            discontinuity: false,
            init: InitId(0),
            parts: Vec::new(),
        }),
        Part {
            seq: PartSeq(40),
            index: PartIndex(0),
            duration: MediaTime::from_millis(500),
            independent: true,
            gap: false,
            data: Bytes::from_static(b"part"),
        },
    );
    r
}

impl Fixture {
    fn open(dir: &Path, live: bool) -> Self {
        Self::try_open(dir, live).unwrap()
    }

    fn try_open(dir: &Path, live: bool) -> anyhow::Result<Self> {
        Self::with_config(config(dir), live)
    }

    fn with_config(cfg: Config, live: bool) -> anyhow::Result<Self> {
        let registry = Registry::default();
        let rendition = live.then(live_rendition);
        let (tx, rx) = watch::channel(snapshot(rendition.as_ref()));
        registry.insert("show", rx);
        let clock = Arc::new(AtomicI64::new((PDT0_MS + 500) * 1000));
        let c = Arc::clone(&clock);
        let overlay = Overlay::open(
            &cfg,
            registry.clone(),
            Arc::new(move || WallTime(c.load(Ordering::SeqCst))),
        )?;
        let app = router_with(
            AppState::new(registry, std::env::temp_dir()),
            api::router(overlay.clone()),
        );
        Ok(Self {
            app,
            overlay,
            tx,
            clock,
        })
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body.into())).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = to_bytes(res.into_body(), 1 << 20).await.unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, value)
    }

    async fn post_cue(
        &self,
        key: Option<&str>,
        body: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let auth = format!("Bearer {TOKEN}");
        let mut headers = vec![
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        if let Some(k) = key {
            headers.push(("idempotency-key", k));
        }
        self.call(
            "POST",
            "/api/v1/streams/show/cues",
            &headers,
            body.to_owned(),
        )
        .await
    }

    async fn authed(&self, method: &str, uri: &str) -> (StatusCode, Value) {
        let auth = format!("Bearer {TOKEN}");
        let (s, _, v) = self
            .call(
                method,
                uri,
                &[("authorization", auth.as_str())],
                Bytes::new(),
            )
            .await;
        (s, v)
    }

    async fn cue_ids(&self) -> Vec<String> {
        let (s, v) = self.authed("GET", "/api/v1/streams/show/cues").await;
        assert_eq!(s, StatusCode::OK);
        v["cues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn hook(
        &self,
        source: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (StatusCode, Value) {
        let (s, _, v) = self
            .call(
                "POST",
                &format!("/api/v1/webhooks/{source}"),
                headers,
                body.to_vec(),
            )
            .await;
        (s, v)
    }
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/webhooks")
            .join(path),
    )
    .unwrap()
}

#[tokio::test]
async fn auth_is_required_and_constant_per_stream() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::open(dir.path(), true);
    let body = r#"{"kind":"custom"}"#;
    for auth in [None, Some("Bearer wrong"), Some(TOKEN), Some("Basic x")] {
        let mut h = vec![];
        if let Some(a) = auth {
            h.push(("authorization", a));
        }
        let (s, headers, v) = f.call("POST", "/api/v1/streams/show/cues", &h, body).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"dropline\""
        );
        assert_eq!(v["error"], "unauthorized");
    }
    let (s, _, v) = f
        .call("GET", "/api/v1/streams/other/cues", &[], Bytes::new())
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown-stream"))
    );
    // Nothing was scheduled by the refused calls (only the drop's opening cue).
    assert_eq!(f.cue_ids().await, ["drop-7.stage-0"]);
}

#[tokio::test]
async fn a_cue_lands_at_the_live_edge_and_idempotency_keys_hold() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::open(dir.path(), true);
    let body = r#"{"kind":"product-card","payload":{"sku":"A1"},"duration_ms":5000}"#;
    let (s, h, v) = f.post_cue(Some("k-1"), body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(h.get("idempotent-replayed").is_none());
    assert_eq!(v["state"], "placed");
    // The edge is after part 0 of segment 10: media 20.5 s, PDT0 + 500 ms.
    assert_eq!(v["part"], json!({"msn": 10, "part": 1}));
    assert_eq!(v["start"], "2026-11-26T10:03:20.500Z");
    assert_eq!(v["media_time"], 20_500 * 90);
    assert_eq!(v["live_edge"]["pdt"], "2026-11-26T10:03:20.500Z");
    let id = v["id"].as_str().unwrap().to_owned();

    // Same key, same body: the same cue, never a second one.
    let (s, h, v) = f.post_cue(Some("k-1"), body).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["idempotent-replayed"], "true");
    assert_eq!(v["id"], id.as_str());
    // Same key, other body: refused.
    let (s, _, v) = f.post_cue(Some("k-1"), r#"{"kind":"custom"}"#).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("idempotency-conflict")
        )
    );
    assert_eq!(f.cue_ids().await, ["drop-7.stage-0", id.as_str()]);

    let (s, v) = f
        .authed("GET", &format!("/api/v1/streams/show/cues/{id}"))
        .await;
    assert_eq!((s, v["id"].as_str()), (StatusCode::OK, Some(id.as_str())));
    let (s, _) = f.authed("GET", "/api/v1/streams/show/cues/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_bodies_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::open(dir.path(), true);
    let cases: Vec<(String, StatusCode, &str)> = vec![
        ("not json".into(), StatusCode::BAD_REQUEST, "invalid-body"),
        (r#"{"kind":"nope"}"#.into(), StatusCode::BAD_REQUEST, "invalid-body"),
        (r#"{"kind":"custom","id":"a b"}"#.into(), StatusCode::BAD_REQUEST, "invalid-body"),
        (
            format!(r#"{{"kind":"custom","payload":{{"s":"{}"}}}}"#, "x".repeat(16 * 1024)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
        ),
        (" ".repeat(40 * 1024), StatusCode::PAYLOAD_TOO_LARGE, "too-large"),
        (
            r#"{"kind":"custom","anchor":{"type":"program-date-time","at":"2026-11-26T10:03:19Z"}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "anchor-in-past",
        ),
        (
            r#"{"kind":"custom","anchor":{"type":"wall-clock","at":"2020-01-01T00:00:00Z"}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "anchor-in-past",
        ),
        (r#"{"kind":"offer-open","payload":{}}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "offer-terms"),
    ];
    for (body, status, code) in cases {
        let (s, _, v) = f.post_cue(None, &body).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (status, Some(code)),
            "{}",
            &body[..body.len().min(80)]
        );
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A body far over the limit is cut off by the body limit, still 413.
    let (s, _, _) = f.post_cue(None, &" ".repeat(1 << 20)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, _, v) = f
        .post_cue(Some("k"), r#"{"kind":"custom","id":"c1"}"#)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _, v) = f.post_cue(None, r#"{"kind":"custom","id":"c1"}"#).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("duplicate-id"))
    );
    assert_eq!(f.cue_ids().await, ["drop-7.stage-0", "c1"]);
    // An Idempotency-Key that is not visible ASCII: 400, once the token is right.
    for (token, status) in [
        (TOKEN, StatusCode::BAD_REQUEST),
        ("wrong", StatusCode::UNAUTHORIZED),
    ] {
        let req = Request::builder()
            .method("POST")
            .uri("/api/v1/streams/show/cues")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header(
                "idempotency-key",
                axum::http::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
            )
            .body(Body::from(r#"{"kind":"custom"}"#))
            .unwrap();
        let res = f.app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), status);
    }
    assert_eq!(f.cue_ids().await, ["drop-7.stage-0", "c1"]);
}

#[tokio::test]
async fn program_date_time_needs_a_live_stream() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::open(dir.path(), false);
    let (s, _, v) = f
        .post_cue(None, r#"{"kind":"custom","anchor":{"type":"program-date-time","at":"2026-11-26T10:04:00Z"}}"#)
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("not-live"))
    );
    // "now" waits for the stream.
    let (s, _, v) = f.post_cue(None, r#"{"kind":"custom"}"#).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::CREATED, Some("pending"))
    );
    assert_eq!(v["live_edge"], Value::Null);
    f.tx.send_replace(snapshot(Some(&live_rendition())));
    f.overlay.handle_timeline("show", None).unwrap();
    let (s, v) = f.authed("GET", "/api/v1/streams/show/cues").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["live_edge"]["msn"], 10);
    assert!(
        v["cues"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"] == "placed")
    );
}

#[test]
fn drops_and_tokens_come_from_toml_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropline.toml");
    std::fs::write(
        &path,
        r#"
[storage]
data_dir = "/var/lib/dropline"
[[streams.show.drops]]
id = "drop-7"
source = "inventory-levels"
products = [{ product_id = "cap", inventory_item_id = "inv-1", stock = 20 }]
stages = [{ label = "plenty" }, { label = "last 10", at_most = 10 }]
"#,
    )
    .unwrap();
    let cfg = Config::load(
        Some(&path),
        [
            (
                "DROPLINE_STREAM_SHOW_API_TOKEN".into(),
                "from-the-env-123".into(),
            ),
            ("DROPLINE_WEBHOOK_STRIPE_SECRET".into(), "whsec_env".into()),
        ],
    )
    .unwrap();
    cfg.validate().unwrap();
    let show = &cfg.streams["show"];
    assert_eq!(show.api_token.as_deref(), Some("from-the-env-123"));
    assert_eq!(
        show.drops[0].products[0].inventory_item_id.as_deref(),
        Some("inv-1")
    );
    assert!(gateway::overlay::settings::enabled(&cfg));
    assert!(!gateway::overlay::settings::enabled(&Config::default()));
    let printed = cfg.redacted_toml();
    assert!(
        !printed.contains("from-the-env") && !printed.contains("whsec_env"),
        "{printed}"
    );
    // A drop the overlay refuses is a startup error naming it.
    let mut bad = config(dir.path());
    bad.streams.get_mut("show").unwrap().drops[0].stages[1].at_most = None;
    let err = Overlay::open(&bad, Registry::default(), Arc::new(|| WallTime(0)))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("streams.show.drops"), "{err}");
}

#[tokio::test]
async fn cancel_before_air_only() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::open(dir.path(), true);
    let (_, _, a) = f.post_cue(None, r#"{"kind":"custom","id":"a"}"#).await;
    let (_, _, b) = f.post_cue(None, r#"{"kind":"custom","id":"b","anchor":{"type":"wall-clock","at":"2026-11-26T12:00:00Z"}}"#).await;
    assert_eq!(
        (a["state"].as_str(), b["state"].as_str()),
        (Some("placed"), Some("pending"))
    );
    let (s, v) = f.authed("DELETE", "/api/v1/streams/show/cues/b").await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let (s, _) = f.authed("DELETE", "/api/v1/streams/show/cues/b").await;
    assert_eq!(s, StatusCode::OK, "cancelling twice is not an error");
    let (s, _) = f.authed("DELETE", "/api/v1/streams/show/cues/zz").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The stream task carries the part at the edge: "a" airs there.
    let edge = MediaTime::from_millis(20_500);
    let aired = f
        .overlay
        .carry(
            "show",
            edge..edge + MediaTime::from_millis(500),
            overlay::PartRef {
                msn: Msn(10),
                part: PartIndex(1),
            },
        )
        .unwrap();
    assert!(aired.iter().any(|c| c.id.as_str() == "a"));
    let (s, v) = f.authed("DELETE", "/api/v1/streams/show/cues/a").await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("already-aired"))
    );
    assert_aired_in_window(&f).await;
    // After a restart the aired cue is still aired, in the same part, and in
    // the playlist window.
    drop(f);
    assert_aired_in_window(&Fixture::open(dir.path(), true)).await;
}

/// Cue "a" aired in part 10.1 and is in the playlist window with the drop's
/// opening stage.
async fn assert_aired_in_window(f: &Fixture) {
    let (_, v) = f.authed("GET", "/api/v1/streams/show/cues/a").await;
    assert_eq!(
        (v["state"].as_str(), v["part"].clone()),
        (Some("aired"), json!({"msn": 10, "part": 1}))
    );
    assert_eq!(
        f.overlay
            .dateranges("show", WallTime::from_millis(PDT0_MS))
            .len(),
        2,
        "a and the opening stage"
    );
}

#[tokio::test]
async fn restart_keeps_cues_ids_states_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let before;
    {
        let f = Fixture::open(dir.path(), true);
        f.post_cue(Some("k-1"), r#"{"kind":"custom","payload":{"n":1}}"#)
            .await;
        f.post_cue(None, r#"{"kind":"custom","id":"later","anchor":{"type":"wall-clock","at":"2026-11-26T12:00:00Z"}}"#).await;
        f.post_cue(None, r#"{"kind":"custom","id":"gone"}"#).await;
        f.authed("DELETE", "/api/v1/streams/show/cues/gone").await;
        before = f.authed("GET", "/api/v1/streams/show/cues").await.1;
    }
    let f = Fixture::open(dir.path(), true);
    let after = f.authed("GET", "/api/v1/streams/show/cues").await.1;
    assert_eq!(before["cues"], after["cues"]);
    assert_eq!(after["cues"].as_array().unwrap().len(), 4);
    // The key still answers the same cue; ids are still taken; new ids are new.
    let (s, _, v) = f
        .post_cue(Some("k-1"), r#"{"kind":"custom","payload":{"n":1}}"#)
        .await;
    assert_eq!((s, &v["id"]), (StatusCode::OK, &before["cues"][1]["id"]));
    let (s, _, _) = f.post_cue(None, r#"{"kind":"custom","id":"gone"}"#).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, _, v) = f.post_cue(None, r#"{"kind":"custom"}"#).await;
    assert_ne!(v["id"], before["cues"][1]["id"]);
    // The scheduled wall-clock cue is placed once its time comes.
    f.clock
        .store(rfc3339_us("2026-11-26T12:00:00Z"), Ordering::SeqCst);
    let (_, v) = f.authed("GET", "/api/v1/streams/show/cues/later").await;
    assert_eq!(v["state"], "pending");
    f.post_cue(None, r#"{"kind":"custom"}"#).await; // any change advances the book
    let (_, v) = f.authed("GET", "/api/v1/streams/show/cues/later").await;
    assert_eq!(v["state"], "placed");
}

fn rfc3339_us(s: &str) -> i64 {
    overlay::rfc3339::parse(s).unwrap().0
}

#[tokio::test]
async fn a_corrupt_store_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("overlay.redb"), vec![0x5a; 8192]).unwrap();
    let err = Fixture::try_open(dir.path(), true)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("overlay.redb"), "{err}");
    // The file is left for an operator to look at.
    assert_eq!(
        std::fs::read(dir.path().join("overlay.redb")).unwrap(),
        vec![0x5a; 8192]
    );
}

fn stage_cues(ids: &[String]) -> Vec<&str> {
    ids.iter()
        .map(String::as_str)
        .filter(|i| i.starts_with("drop-7."))
        .collect()
}

#[tokio::test]
async fn webhooks_verify_dedup_and_drive_the_drop() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::open(dir.path(), true);
    let b64 = |parts: &[&[u8]]| base64::engine::general_purpose::STANDARD.encode(hmac(parts));

    // Plain: 2 tee-black-m of 5 → 3 left → stage "last 3".
    let plain = fixture("plain/order.json");
    let sig = b64(&[&plain]);
    let forged = b64(&[b"other body"]);
    let (s, v) = f
        .hook("plain", &[("x-dropline-hmac-sha256", &forged)], &plain)
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("bad-signature"))
    );
    assert_eq!(
        stage_cues(&f.cue_ids().await),
        ["drop-7.stage-0"],
        "a forged delivery changes nothing"
    );
    let (s, v) = f
        .hook("plain", &[("x-dropline-hmac-sha256", &sig)], &plain)
        .await;
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{v}"
    );
    assert_eq!(
        stage_cues(&f.cue_ids().await),
        ["drop-7.stage-0", "drop-7.stage-1"]
    );
    let (s, v) = f
        .hook("plain", &[("x-dropline-hmac-sha256", &sig)], &plain)
        .await;
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );

    // Shopify: 2 of product 8904410743105 → 1 left, same stage: no cue.
    let shop = fixture("shopify/orders_create.json");
    let sig = b64(&[&shop]);
    let headers = [
        ("x-shopify-hmac-sha256", sig.as_str()),
        ("x-shopify-topic", "orders/create"),
        ("x-shopify-webhook-id", "b54557e4-order"),
    ];
    assert_eq!(
        f.hook("shopify", &headers, &shop).await.1["outcome"],
        "applied"
    );
    assert_eq!(
        f.hook("shopify", &headers, &shop).await.1["outcome"],
        "duplicate"
    );
    let (s, _) = f
        .hook(
            "shopify",
            &[("x-shopify-hmac-sha256", "AAAA"), headers[1], headers[2]],
            &shop,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Stripe, signed now: 2 more tee → sold out. A stale signature is 400.
    let stripe = fixture("stripe/checkout_session_completed.json");
    let now_secs = f.overlay.now().0 / 1_000_000;
    let stale_t = (now_secs - 301).to_string();
    let stale = format!(
        "t={stale_t},v1={}",
        hex(&hmac(&[stale_t.as_bytes(), b".", &stripe]))
    );
    let (s, v) = f
        .hook("stripe", &[("stripe-signature", &stale)], &stripe)
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("stale"))
    );
    let t = now_secs.to_string();
    let good = format!("t={t},v1={}", hex(&hmac(&[t.as_bytes(), b".", &stripe])));
    assert_eq!(
        f.hook("stripe", &[("stripe-signature", &good)], &stripe)
            .await
            .1["outcome"],
        "applied"
    );
    let ids = f.cue_ids().await;
    assert_eq!(
        stage_cues(&ids),
        ["drop-7.stage-0", "drop-7.stage-1", "drop-7.sold-out"]
    );
    let (_, v) = f
        .authed("GET", "/api/v1/streams/show/cues/drop-7.stage-1")
        .await;
    assert_eq!(
        v["payload"],
        json!({"drop": "drop-7", "stage": "last 3", "index": 1})
    );

    // The same order state under a new delivery id: stale, nothing counted twice.
    let again = String::from_utf8(plain.clone())
        .unwrap()
        .replace("wh-0001", "wh-0002");
    let (s, v) = f
        .hook(
            "plain",
            &[("x-dropline-hmac-sha256", &b64(&[again.as_bytes()]))],
            again.as_bytes(),
        )
        .await;
    assert_eq!((s, v["outcome"].as_str()), (StatusCode::OK, Some("stale")));

    let (s, _) = f.hook("nope", &[], b"{}").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // After a restart, replays are still duplicates and nothing is re-emitted.
    drop(f);
    let f = Fixture::open(dir.path(), true);
    let (s, v) = f
        .hook(
            "plain",
            &[("x-dropline-hmac-sha256", &b64(&[&plain]))],
            &plain,
        )
        .await;
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    assert_eq!(
        stage_cues(&f.cue_ids().await),
        ["drop-7.stage-0", "drop-7.stage-1", "drop-7.sold-out"]
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn offer_tokens_are_minted_on_placement_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::open(dir.path(), true);
    let (s, _, v) = f
        .post_cue(None, r#"{"kind":"offer-open","payload":{"offer_id":"drop-7","product_ids":["tee-black-m"]},"duration_ms":30000}"#)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let token = v["payload"]["token"].as_str().unwrap().to_owned();
    let verify = |token: String| {
        let f = &f;
        async move {
            let (s, _, v) = f
                .call(
                    "POST",
                    "/api/v1/offers/verify",
                    &[],
                    json!({"token": token}).to_string(),
                )
                .await;
            (s, v)
        }
    };
    // Not valid before the hold-back has passed at nominal latency.
    let (s, v) = verify(token.clone()).await;
    assert_eq!(
        (s, v["valid"].as_bool()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some(false))
    );
    f.clock.fetch_add(2_000_000, Ordering::SeqCst);
    let (s, v) = verify(token.clone()).await;
    assert_eq!(
        (s, v["offer_id"].as_str()),
        (StatusCode::OK, Some("drop-7")),
        "{v}"
    );
    let (s, _) = verify(format!("{token}x")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _, _) = f.call("POST", "/api/v1/offers/verify", &[], "nope").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// Not a timed assertion: prints the sustained rate of durable cue commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_cue_rate() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::open(dir.path(), true);
    let n = 200;
    let start = Instant::now();
    for i in 0..n {
        let (s, _, _) = f
            .post_cue(
                Some(&format!("rate-{i}")),
                r#"{"kind":"custom","payload":{"x":1}}"#,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "overlay cue API, 1 client: {n} cues, each committed durably, in {secs:.2} s = {:.0} cues/s (goal >= 50)",
        f64::from(n) / secs
    );
    let f = Arc::new(f);
    let start = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let f = Arc::clone(&f);
            tokio::spawn(async move {
                for i in 0..n / 4 {
                    let key = format!("par-{c}-{i}");
                    let (s, _, _) = f.post_cue(Some(&key), r#"{"kind":"custom"}"#).await;
                    assert_eq!(s, StatusCode::CREATED);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "overlay cue API, 4 clients: {n} cues in {secs:.2} s = {:.0} cues/s",
        f64::from(n) / secs
    );
    assert_eq!(f.cue_ids().await.len(), 2 * n as usize + 1);
}

#[tokio::test]
async fn shopify_inventory_levels_drive_an_inventory_drop() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    let drop = &mut cfg.streams.get_mut("show").unwrap().drops[0];
    drop.source = gateway::overlay::settings::DropSource::InventoryLevels;
    drop.products = vec![DropProductSettings {
        product_id: "cap".into(),
        inventory_item_id: Some("49306538000449".into()),
        stock: 100,
    }];
    drop.stages[1] = StageSettings {
        label: "under 50".into(),
        at_most: Some(49),
    };
    let f = Fixture::with_config(cfg, true).unwrap();
    let body = fixture("shopify/inventory_levels_update.json");
    let sig = base64::engine::general_purpose::STANDARD.encode(hmac(&[&body]));
    let headers = [
        ("x-shopify-hmac-sha256", sig.as_str()),
        ("x-shopify-topic", "inventory_levels/update"),
        ("x-shopify-webhook-id", "inv-delivery-1"),
    ];
    let (s, v) = f.hook("shopify", &headers, &body).await;
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{v}"
    );
    let (_, v) = f
        .authed("GET", "/api/v1/streams/show/cues/drop-7.stage-1")
        .await;
    // 37 available: "under 50" is revealed, the count is not.
    assert_eq!(
        v["payload"],
        json!({"drop": "drop-7", "stage": "under 50", "index": 1})
    );
}

#[tokio::test]
async fn an_unreadable_record_is_a_startup_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    drop(Fixture::open(dir.path(), true));
    {
        let db = redb::Database::create(dir.path().join("overlay.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let table: redb::TableDefinition<(&str, u32), &str> =
                redb::TableDefinition::new("cues");
            let mut t = tx.open_table(table).unwrap();
            t.insert(("show", 999), "not json").unwrap();
        }
        tx.commit().unwrap();
    }
    let err = Fixture::try_open(dir.path(), true).err().unwrap();
    let text = format!("{err:#}");
    assert!(text.contains("cues/show/999"), "{text}");
}
