//! The commerce overlay's IO shell: per-stream cue books behind the cue API,
//! order-system webhooks feeding the drops, and the durable store.
//!
//! Ownership: each stream's cue state (its [`CueBook`], drops and the origin
//! of each cue) sits behind one `Mutex`, its single owner; operations run on
//! the blocking pool and hold the lock across the store commit, so what is
//! committed is exactly what was decided, in order. The lock is never held
//! across an `.await`. The stream task takes the same lock per part and per
//! publication to ask its questions ("cues in [start, end)", "DATERANGE lines
//! in the window") of the same book (`crate::stream::carriage`).
//!
//! Durability: every change is committed before the caller answers 2xx. If a
//! commit fails, the overlay stops accepting changes (503) rather than answer
//! with state that is not on disk; a restart reloads the store.

pub mod api;
pub mod settings;
pub mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use overlay::drop::{Drop, DropCue, DropError};
use overlay::offer::{self, OfferClaims, OfferKey, TokenError};
use overlay::webhook::{OrderEvent, OrderSync, Outcome, WebhookSecret};
use overlay::{
    CancelError, Cue, CueBook, CueError, CueId, CueRequest, OfferSigning, PartRef, Payload,
    ScheduleError, TimelineView,
};
use packager::units::{MediaTime, WallTime};
use tracing::warn;

use crate::config::Config;
use crate::stream::StreamSnapshot;
use crate::stream::registry::Registry;
use settings::resolve_secret;
use store::{Store, StoreError, StoredCue};

/// The wall clock, injectable for tests.
pub type Clock = Arc<dyn Fn() -> WallTime + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("config key {key}: {message}")]
    Config { key: String, message: String },
    #[error("stored cue {stream}/{id}: {message}")]
    StoredCue {
        stream: String,
        id: String,
        message: String,
    },
}

/// Why an operation was refused (mapped to HTTP statuses in `api.rs`).
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("unknown stream")]
    UnknownStream,
    #[error(transparent)]
    Cue(#[from] CueError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Cancel(#[from] CancelError),
    #[error("the overlay store failed; changes are refused until a restart")]
    Unavailable,
}

/// Where the stream's timeline is now (from its published snapshot).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    pub view: TimelineView,
    /// The part the next frame goes into.
    pub next_part: PartRef,
    pub part_target: MediaTime,
}

/// The live edge of a stream, from the stable bits of its snapshot: the open
/// segment (or the last complete one) and its parts. `None` if not live.
#[must_use]
pub fn timeline_of(snap: &StreamSnapshot) -> Option<Timeline> {
    let r = snap.main.as_ref().filter(|r| !r.ended && !snap.closed)?;
    let part_target = r.params.part_target;
    if let Some(open) = &r.open {
        let cut = open
            .parts
            .iter()
            .fold(MediaTime(0), |acc, p| acc + p.duration);
        let next = u32::try_from(open.parts.len()).unwrap_or(u32::MAX);
        return Some(Timeline {
            view: TimelineView {
                edge: open.start + cut,
                edge_pdt: open.program_date_time.offset(cut),
            },
            next_part: PartRef {
                msn: open.msn,
                part: packager::units::PartIndex(next),
            },
            part_target,
        });
    }
    let last = r.segments.last()?;
    Some(Timeline {
        view: TimelineView {
            edge: last.start + last.duration,
            edge_pdt: last.program_date_time.offset(last.duration),
        },
        next_part: PartRef {
            msn: packager::units::Msn(last.msn.0 + 1),
            part: packager::units::PartIndex(0),
        },
        part_target,
    })
}

/// How a cue was asked for: kept beside the book so the store can replay it.
#[derive(Clone, Debug)]
struct Origin {
    request: String,
    key: Option<String>,
}

/// One stream's cue state; its mutex is the single owner.
pub struct StreamCues {
    token: Option<String>,
    state: Mutex<StreamState>,
}

struct StreamState {
    book: CueBook,
    drops: Vec<Drop>,
    origin: HashMap<CueId, Origin>,
}

impl StreamState {
    /// The changed cues since the last drain, ready to store.
    fn drain(&mut self) -> Vec<StoredCue> {
        let mut ids = BTreeSet::new();
        while let Some(e) = self.book.poll_event() {
            ids.insert(match e {
                overlay::BookEvent::Scheduled(id)
                | overlay::BookEvent::Placed(id)
                | overlay::BookEvent::Aired(id)
                | overlay::BookEvent::Cancelled(id) => id,
            });
        }
        ids.iter()
            .filter_map(|id| {
                let cue = self.book.get(id)?;
                let origin = self.origin.get(id)?;
                Some(StoredCue {
                    id: cue.id.to_string(),
                    emsg_id: cue.emsg_id,
                    request: origin.request.clone(),
                    idempotency_key: origin.key.clone(),
                    payload: cue.payload.value().clone(),
                    state: cue.state.into(),
                })
            })
            .collect()
    }

    fn schedule(
        &mut self,
        key: Option<&str>,
        request: CueRequest,
        body: String,
        now: WallTime,
    ) -> Result<overlay::Scheduled, ScheduleError> {
        let done = self.book.schedule(key, request, now)?;
        if !done.replay {
            self.origin.insert(
                done.id.clone(),
                Origin {
                    request: body,
                    key: key.map(str::to_owned),
                },
            );
        }
        Ok(done)
    }

    fn schedule_drop_cue(&mut self, cue: DropCue, now: WallTime) {
        let body = drop_cue_body(&cue.request);
        if let Err(e) = self.schedule(Some(&cue.idempotency_key), cue.request, body, now) {
            warn!(key = cue.idempotency_key, "drop cue not scheduled: {e}");
        }
    }
}

/// A cue API body equivalent to a drop cue's request (anchor "now", no
/// duration), so a replay after restart has the same fingerprint.
fn drop_cue_body(r: &CueRequest) -> String {
    serde_json::json!({
        "id": r.id.as_ref().map(CueId::as_str),
        "kind": r.kind,
        "payload": r.payload.value(),
    })
    .to_string()
}

/// Webhook signing secrets by source.
#[derive(Default)]
pub struct WebhookSecrets {
    pub shopify: Option<WebhookSecret>,
    pub stripe: Option<WebhookSecret>,
    pub plain: Option<WebhookSecret>,
}

struct Inner {
    store: Store,
    registry: Registry,
    streams: BTreeMap<String, StreamCues>,
    /// Dedup of deliveries. Lock order: `sync`, then streams by name.
    sync: Mutex<OrderSync>,
    secrets: WebhookSecrets,
    offer_key: Option<OfferKey>,
    clock: Clock,
    failed: AtomicBool,
}

/// The overlay shared by the HTTP handlers (cheap to clone).
#[derive(Clone)]
pub struct Overlay {
    inner: Arc<Inner>,
}

/// The result of a schedule: the cue, whether it was a replay, and the live edge.
pub struct ScheduleAnswer {
    pub cue: Cue,
    pub replay: bool,
    pub timeline: Option<Timeline>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves state that was never committed
    // half-applied in memory only; the store is still the truth.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Overlay {
    /// Opens the store under `[storage] data_dir`, loads the configured
    /// streams' tokens and drops, and restores every stored cue with its id,
    /// state and idempotency key, then replays stored deliveries into dedup
    /// and the drops.
    ///
    /// # Errors
    /// A bad secret file, drop or store: a clear startup error.
    pub fn open(cfg: &Config, registry: Registry, clock: Clock) -> Result<Self, OverlayError> {
        let config_err = |key: String| move |message: String| OverlayError::Config { key, message };
        let signing = {
            let key = resolve_secret(cfg.offers.key.as_deref(), cfg.offers.key_file.as_deref())
                .map_err(config_err("offers.key_file".into()))?;
            key.map(|k| OfferKey::new(k.into_bytes()))
                .transpose()
                .map_err(|e| config_err("offers.key_file".into())(e.to_string()))?
        };
        let secret = |name: &str, inline: Option<&String>, file: Option<&std::path::PathBuf>| {
            resolve_secret(inline.map(String::as_str), file.map(|f| f.as_path()))
                .map(|s| s.map(WebhookSecret::new))
                .map_err(config_err(format!("webhooks.{name}_secret_file")))
        };
        let w = &cfg.webhooks;
        let secrets = WebhookSecrets {
            shopify: secret(
                "shopify",
                w.shopify_secret.as_ref(),
                w.shopify_secret_file.as_ref(),
            )?,
            stripe: secret(
                "stripe",
                w.stripe_secret.as_ref(),
                w.stripe_secret_file.as_ref(),
            )?,
            plain: secret(
                "plain",
                w.plain_secret.as_ref(),
                w.plain_secret_file.as_ref(),
            )?,
        };
        let offer_signing = signing.as_ref().map(|key| OfferSigning {
            key: key.clone(),
            hold_back: MediaTime::from_millis(
                i64::try_from(cfg.offers.hold_back_ms).unwrap_or(i64::MAX),
            ),
        });
        let mut streams = BTreeMap::new();
        for (name, s) in &cfg.streams {
            let token = resolve_secret(s.api_token.as_deref(), s.api_token_file.as_deref())
                .map_err(config_err(format!("streams.{name}.api_token_file")))?;
            let drops = s
                .drops
                .iter()
                .map(|d| Drop::new(d.to_config()))
                .collect::<Result<Vec<_>, DropError>>()
                .map_err(|e| config_err(format!("streams.{name}.drops"))(e.to_string()))?;
            streams.insert(
                name.clone(),
                StreamCues {
                    token,
                    state: Mutex::new(StreamState {
                        book: CueBook::new(offer_signing.clone()),
                        drops,
                        origin: HashMap::new(),
                    }),
                },
            );
        }
        let store = Store::open(&cfg.storage.data_dir)?;
        let loaded = store.load()?;
        for (stream, saved) in loaded.cues {
            let Some(s) = streams.get(&stream) else {
                warn!(
                    stream,
                    cue = saved.id,
                    "stored cue of a stream no longer configured"
                );
                continue;
            };
            let bad = |message: String| OverlayError::StoredCue {
                stream: stream.clone(),
                id: saved.id.clone(),
                message,
            };
            let request =
                CueRequest::parse(saved.request.as_bytes()).map_err(|e| bad(e.to_string()))?;
            let cue = Cue {
                id: CueId::new(saved.id.as_str()).map_err(|e| bad(e.to_string()))?,
                emsg_id: saved.emsg_id,
                kind: request.kind,
                payload: Payload::new(saved.payload.clone()).map_err(|e| bad(e.to_string()))?,
                anchor: request.anchor,
                duration_ms: request.duration_ms,
                state: saved.state.into(),
            };
            let mut st = lock(&s.state);
            st.origin.insert(
                cue.id.clone(),
                Origin {
                    request: saved.request.clone(),
                    key: saved.idempotency_key.clone(),
                },
            );
            st.book
                .restore(cue, &request, saved.idempotency_key.as_deref());
        }
        let mut sync = OrderSync::new();
        for event in &loaded.events {
            if sync.accept(event) == Outcome::Apply {
                for s in streams.values() {
                    for d in &mut lock(&s.state).drops {
                        // Their cues were committed with the delivery.
                        let _ = d.apply(event);
                    }
                }
            }
        }
        let overlay = Self {
            inner: Arc::new(Inner {
                store,
                registry,
                streams,
                sync: Mutex::new(sync),
                secrets,
                offer_key: signing,
                clock,
                failed: AtomicBool::new(false),
            }),
        };
        overlay.open_drops()?;
        Ok(overlay)
    }

    /// Schedules each drop's opening stage cue (a replay once stored).
    fn open_drops(&self) -> Result<(), StoreError> {
        let now = (self.inner.clock)();
        for (name, s) in &self.inner.streams {
            let mut st = lock(&s.state);
            let opening: Vec<DropCue> = st.drops.iter().map(Drop::opening_cue).collect();
            for cue in opening {
                st.schedule_drop_cue(cue, now);
            }
            let changes = st.drain();
            let rows: Vec<(&str, StoredCue)> =
                changes.into_iter().map(|c| (name.as_str(), c)).collect();
            self.inner.store.commit(&rows, None)?;
        }
        Ok(())
    }

    #[must_use]
    pub fn secrets(&self) -> &WebhookSecrets {
        &self.inner.secrets
    }

    #[must_use]
    pub fn now(&self) -> WallTime {
        (self.inner.clock)()
    }

    fn stream(&self, name: &str) -> Result<&StreamCues, OpError> {
        self.inner
            .streams
            .get(name)
            .filter(|s| s.token.is_some())
            .ok_or(OpError::UnknownStream)
    }

    /// Whether stream `name` has cue state (a configured stream): only then
    /// does its task carry cues.
    #[must_use]
    pub fn knows(&self, name: &str) -> bool {
        self.inner.streams.contains_key(name)
    }

    /// The stream's API token, if the stream has a cue API.
    #[must_use]
    pub fn token(&self, name: &str) -> Option<&str> {
        self.inner.streams.get(name)?.token.as_deref()
    }

    fn timeline(&self, name: &str) -> Option<Timeline> {
        let watch = self.inner.registry.get(name)?;
        let snap = Arc::clone(&watch.borrow());
        timeline_of(&snap)
    }

    /// Commits, or stops accepting changes if the store fails.
    fn commit(
        &self,
        rows: &[(&str, StoredCue)],
        event: Option<&OrderEvent>,
    ) -> Result<(), OpError> {
        if self.inner.failed.load(Ordering::SeqCst) {
            return Err(OpError::Unavailable);
        }
        // The stream task asks per part; most parts change nothing.
        if rows.is_empty() && event.is_none() {
            return Ok(());
        }
        self.inner.store.commit(rows, event).map_err(|e| {
            tracing::error!("overlay store commit failed: {e}");
            self.inner.failed.store(true, Ordering::SeqCst);
            OpError::Unavailable
        })
    }

    fn check_available(&self) -> Result<(), OpError> {
        if self.inner.failed.load(Ordering::SeqCst) {
            return Err(OpError::Unavailable);
        }
        Ok(())
    }

    /// Brings the book up to the stream's live edge (placing due cues).
    fn advance(&self, st: &mut StreamState, timeline: Option<Timeline>, now: WallTime) {
        if let Some(t) = timeline {
            st.book.handle_timeline(t.view, now);
        }
    }

    /// `POST .../cues`: parses, schedules and commits; blocking (store IO).
    ///
    /// # Errors
    /// [`OpError`].
    pub fn schedule(
        &self,
        name: &str,
        key: Option<&str>,
        body: &[u8],
    ) -> Result<ScheduleAnswer, OpError> {
        let s = self.stream(name)?;
        self.check_available()?;
        let request = CueRequest::parse(body)?;
        // Parsed as JSON, so UTF-8.
        let text = String::from_utf8_lossy(body).into_owned();
        let timeline = self.timeline(name);
        let now = self.now();
        let mut st = lock(&s.state);
        self.advance(&mut st, timeline, now);
        let done = st.schedule(key, request, text, now);
        let changes = st.drain();
        let rows: Vec<(&str, StoredCue)> = changes.into_iter().map(|c| (name, c)).collect();
        self.commit(&rows, None)?;
        let done = done?;
        let cue = st
            .book
            .get(&done.id)
            .cloned()
            .ok_or(OpError::UnknownStream)?;
        Ok(ScheduleAnswer {
            cue,
            replay: done.replay,
            timeline,
        })
    }

    /// `DELETE .../cues/{id}`.
    ///
    /// # Errors
    /// [`OpError`].
    pub fn cancel(&self, name: &str, id: &str) -> Result<Cue, OpError> {
        let s = self.stream(name)?;
        self.check_available()?;
        let id = CueId::new(id).map_err(|_| CancelError::Unknown)?;
        let timeline = self.timeline(name);
        let now = self.now();
        let mut st = lock(&s.state);
        self.advance(&mut st, timeline, now);
        let cue = st.book.cancel(&id).cloned();
        let changes = st.drain();
        let rows: Vec<(&str, StoredCue)> = changes.into_iter().map(|c| (name, c)).collect();
        self.commit(&rows, None)?;
        Ok(cue?)
    }

    /// `GET .../cues` (`id = None`) or `.../cues/{id}`, with the live edge.
    ///
    /// # Errors
    /// [`OpError::UnknownStream`], or [`CancelError::Unknown`] for an unknown id.
    pub fn cues(
        &self,
        name: &str,
        id: Option<&str>,
    ) -> Result<(Vec<Cue>, Option<Timeline>), OpError> {
        let s = self.stream(name)?;
        let timeline = self.timeline(name);
        let st = lock(&s.state);
        let cues = match id {
            Some(id) => {
                let id = CueId::new(id).map_err(|_| CancelError::Unknown)?;
                vec![st.book.get(&id).cloned().ok_or(CancelError::Unknown)?]
            }
            None => st.book.cues().cloned().collect(),
        };
        Ok((cues, timeline))
    }

    /// The stream task's call when its edge moves (or a keyframe arrives at
    /// `keyframe`): due cues are placed and committed. The cue API does the
    /// same on each write.
    ///
    /// # Errors
    /// [`OpError`].
    pub fn handle_timeline(&self, name: &str, keyframe: Option<MediaTime>) -> Result<(), OpError> {
        let s = self.inner.streams.get(name).ok_or(OpError::UnknownStream)?;
        let timeline = self.timeline(name);
        let now = self.now();
        let mut st = lock(&s.state);
        self.advance(&mut st, timeline, now);
        if let Some(at) = keyframe {
            st.book.handle_keyframe(at);
        }
        let changes = st.drain();
        let rows: Vec<(&str, StoredCue)> = changes.into_iter().map(|c| (name, c)).collect();
        self.commit(&rows, None)
    }

    /// The stream task's call when its media timeline restarts at `view`
    /// (a discontinuity, or the first part of a stream), which starts with a
    /// keyframe: cues placed on the old timeline that have not aired move
    /// onto the new one, cues waiting for a keyframe are placed at its start;
    /// committed. The published snapshot still shows the old timeline, so
    /// it is not read here.
    ///
    /// # Errors
    /// [`OpError`].
    pub fn handle_discontinuity(&self, name: &str, view: TimelineView) -> Result<(), OpError> {
        let s = self.inner.streams.get(name).ok_or(OpError::UnknownStream)?;
        let mut st = lock(&s.state);
        st.book.handle_discontinuity(view);
        st.book.handle_keyframe(view.edge);
        let changes = st.drain();
        let rows: Vec<(&str, StoredCue)> = changes.into_iter().map(|c| (name, c)).collect();
        self.commit(&rows, None)
    }

    /// The stream task's per-part call: the cues to carry in the part
    /// spanning `range`, marked aired in `part` and committed before they are
    /// returned.
    ///
    /// # Errors
    /// [`OpError`].
    pub fn carry(
        &self,
        name: &str,
        range: Range<MediaTime>,
        part: PartRef,
    ) -> Result<Vec<Cue>, OpError> {
        let s = self.inner.streams.get(name).ok_or(OpError::UnknownStream)?;
        let mut st = lock(&s.state);
        let cues: Vec<Cue> = st.book.carry(range, part).into_iter().cloned().collect();
        let changes = st.drain();
        let rows: Vec<(&str, StoredCue)> = changes.into_iter().map(|c| (name, c)).collect();
        self.commit(&rows, None)?;
        Ok(cues)
    }

    /// Placed or aired cues with a media time in `range`, without airing them.
    #[must_use]
    pub fn cues_in(&self, name: &str, range: Range<MediaTime>) -> Vec<Cue> {
        self.inner.streams.get(name).map_or_else(Vec::new, |s| {
            lock(&s.state).book.cues_in(range).cloned().collect()
        })
    }

    /// `EXT-X-DATERANGE` lines of aired cues from `window_start` on.
    #[must_use]
    pub fn dateranges(&self, name: &str, window_start: WallTime) -> Vec<String> {
        self.inner
            .streams
            .get(name)
            .map_or_else(Vec::new, |s| lock(&s.state).book.dateranges(window_start))
    }

    /// A verified delivery: dedup, then every drop of every stream; their
    /// stage / sold-out cues go into the books. The delivery and the cues are
    /// committed together. Blocking (store IO).
    ///
    /// # Errors
    /// [`OpError::Unavailable`].
    pub fn apply_event(&self, event: &OrderEvent) -> Result<Outcome, OpError> {
        self.check_available()?;
        let now = self.now();
        let mut sync = lock(&self.inner.sync);
        let outcome = sync.accept(event);
        if outcome == Outcome::Duplicate {
            return Ok(outcome);
        }
        let mut rows: Vec<(&str, StoredCue)> = Vec::new();
        if outcome == Outcome::Apply {
            for (name, s) in &self.inner.streams {
                let timeline = self.timeline(name);
                let mut st = lock(&s.state);
                self.advance(&mut st, timeline, now);
                let mut cues = Vec::new();
                for d in &mut st.drops {
                    cues.extend(d.apply(event));
                }
                for cue in cues {
                    st.schedule_drop_cue(cue, now);
                }
                rows.extend(st.drain().into_iter().map(|c| (name.as_str(), c)));
            }
        }
        // Stale deliveries are stored too, so their ids stay deduplicated.
        self.commit(&rows, Some(event))?;
        Ok(outcome)
    }

    /// `POST /api/v1/offers/verify`. `None` if no offer key is configured.
    #[must_use]
    pub fn verify_offer(&self, token: &str) -> Option<Result<OfferClaims, TokenError>> {
        let key = self.inner.offer_key.as_ref()?;
        Some(offer::verify(key, token, self.now()))
    }
}
