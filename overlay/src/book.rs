//! The per-stream cue book: a sans-IO state machine that schedules, places,
//! airs and cancels cues.
//!
//! Life of a cue: `schedule` → *pending* (anchor not resolved yet) → *placed*
//! (media time and PDT fixed, payload final) → *aired* (carried in a part) —
//! or *cancelled* from pending/placed. A cancelled cue never airs; an aired one
//! cannot be cancelled. Placement is never earlier than the end of the last
//! part already carried, so every placed cue airs.
//!
//! The owner (one gateway task per stream) feeds it:
//! - `handle_timeline(view, now)` whenever the timeline's edge moves;
//! - `handle_keyframe(t)` when a keyframe (segment start) arrives;
//! - `handle_timeout(now)` at `poll_timeout()`;
//!
//! and asks it, per part, `carry(range, part)` (cues whose media time is in
//! `[start, end)`), per playlist render, `dateranges(window_start)`.
//! `poll_event()` drains what changed, for the durable store.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Range;

use packager::units::{MediaTime, Msn, PartIndex, TS_TIMESCALE, WallTime};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::carriage::{self, CarriageError, DateRange};
use crate::cue::{Anchor, CueId, CueKind, CueRequest, Payload};
use crate::offer::{self, OfferClaims, OfferKey, OfferTerms};

/// The ID3 TXXX description of a cue (`CARRIAGE.md` §1).
pub const TXXX_DESCRIPTION: &str = "com.dropline.cue";
/// Furthest ahead an anchor may be (keeps every time sum far from overflow).
pub const MAX_LEAD_MICROS: i64 = 31 * 86_400 * 1_000_000;
/// Longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// How offers are signed when an `offer-open` cue is placed.
#[derive(Clone, Debug)]
pub struct OfferSigning {
    pub key: OfferKey,
    /// Nominal viewer latency behind the cue's PDT (the playlist's
    /// PART-HOLD-BACK): the token's not-before is cue PDT + this.
    pub hold_back: MediaTime,
}

/// What the timeline knows: the media time of the next frame it will receive
/// and that frame's `PROGRAM-DATE-TIME`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TimelineView {
    pub edge: MediaTime,
    pub edge_pdt: WallTime,
}

impl TimelineView {
    fn pdt_of(&self, t: MediaTime) -> WallTime {
        self.edge_pdt.offset(t - self.edge)
    }

    fn media_of(&self, pdt: WallTime) -> MediaTime {
        // Callers bound |pdt − edge_pdt| by MAX_LEAD_MICROS: no overflow.
        let micros = i128::from(pdt.0 - self.edge_pdt.0);
        let ticks = micros * i128::from(TS_TIMESCALE) / 1_000_000;
        self.edge + MediaTime(i64::try_from(ticks).unwrap_or(i64::MAX))
    }
}

/// Where a cue sits: its media time (90 kHz) and the PDT of that time,
/// truncated to the millisecond (the START-DATE every carriage uses).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub media_time: MediaTime,
    pub start: WallTime,
}

/// A part of the timeline: the cue API's "where it landed".
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PartRef {
    pub msn: Msn,
    pub part: PartIndex,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CueState {
    Pending,
    Placed(Placement),
    /// Carried; `landed` is the first part it was carried in.
    Aired {
        placement: Placement,
        landed: PartRef,
    },
    Cancelled,
}

/// A scheduled cue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cue {
    pub id: CueId,
    /// The emsg `id`: unique per cue within the stream (`CARRIAGE.md` §1).
    pub emsg_id: u32,
    pub kind: CueKind,
    /// Final once placed (an `offer-open` gains its `token` then).
    pub payload: Payload,
    pub anchor: Anchor,
    pub duration_ms: Option<u32>,
    pub state: CueState,
}

#[derive(Serialize)]
struct CueJson<'a> {
    id: &'a str,
    kind: CueKind,
    start: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u32>,
    payload: &'a serde_json::Value,
}

impl Cue {
    #[must_use]
    pub fn placement(&self) -> Option<Placement> {
        match self.state {
            CueState::Placed(p) | CueState::Aired { placement: p, .. } => Some(p),
            CueState::Pending | CueState::Cancelled => None,
        }
    }

    /// The cue JSON both carriages hold (`CARRIAGE.md` §1), once placed.
    #[must_use]
    pub fn json(&self) -> Option<String> {
        let p = self.placement()?;
        let json = CueJson {
            id: self.id.as_str(),
            kind: self.kind,
            start: p.start.to_rfc3339_millis(),
            duration_ms: self.duration_ms,
            payload: self.payload.value(),
        };
        // A struct of strings, integers and a JSON value always serializes.
        serde_json::to_string(&json).ok()
    }

    /// The emsg v1 box for a part, once placed. `presentation_time` is the
    /// cue's media time on the track timeline (the tfdt clock), 90 kHz.
    ///
    /// # Errors
    /// [`CarriageError::NotPlaced`], or an encoder's error.
    pub fn emsg(&self, presentation_time: u64) -> Result<Vec<u8>, CarriageError> {
        let json = self.json().ok_or(CarriageError::NotPlaced)?;
        let tag = carriage::txxx_tag(TXXX_DESCRIPTION, json.as_bytes())?;
        // duration_ms ≤ MAX_DURATION_MS, so × 90 stays below u32::MAX.
        let duration = self
            .duration_ms
            .map_or(carriage::UNKNOWN_DURATION, |ms| ms.saturating_mul(90));
        carriage::emsg_v1(presentation_time, duration, self.emsg_id, tag)
    }

    /// The `EXT-X-DATERANGE` line, once placed.
    ///
    /// # Errors
    /// [`CarriageError::NotPlaced`].
    pub fn daterange(&self) -> Result<String, CarriageError> {
        let p = self.placement().ok_or(CarriageError::NotPlaced)?;
        let json = self.json().ok_or(CarriageError::NotPlaced)?;
        carriage::daterange_line(&DateRange {
            id: self.id.as_str(),
            class: &self.kind.class(),
            start: p.start,
            duration_ms: self.duration_ms,
            x_payload: json.as_bytes(),
        })
    }
}

/// What changed, for the owner to persist (drained with `poll_event`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BookEvent {
    Scheduled(CueId),
    Placed(CueId),
    Aired(CueId),
    Cancelled(CueId),
}

/// The answer to `schedule`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheduled {
    pub id: CueId,
    /// True if this was an `Idempotency-Key` replay: nothing new was scheduled.
    pub replay: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("Idempotency-Key must be 1..=255 visible ASCII characters")]
    InvalidIdempotencyKey,
    #[error("Idempotency-Key was already used with a different body")]
    IdempotencyConflict,
    #[error("cue id {0} is already used (ids are never reused)")]
    DuplicateId(CueId),
    #[error("anchor is in the past")]
    AnchorInPast,
    #[error("anchor is more than 31 days ahead")]
    AnchorTooFar,
    #[error("the stream is not live: a program date-time cannot be placed yet")]
    NotLive,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    #[error("no such cue")]
    Unknown,
    #[error("cue has already aired")]
    AlreadyAired,
}

/// The cue book of one stream.
#[derive(Debug, Default)]
pub struct CueBook {
    signing: Option<OfferSigning>,
    /// Live cues by emsg id, i.e. in scheduling order.
    cues: BTreeMap<u32, Cue>,
    by_id: HashMap<CueId, u32>,
    /// Ids of cues dropped by `prune`: still never reused.
    retired: HashSet<CueId>,
    /// `Idempotency-Key` → (fingerprint of the request, the cue it made).
    keys: HashMap<String, ([u8; 32], CueId)>,
    /// Placed or aired cues by (media time, emsg id).
    placed: BTreeMap<(MediaTime, u32), ()>,
    pending: Vec<u32>,
    view: Option<TimelineView>,
    now: Option<WallTime>,
    /// End of the last part carried: nothing is placed before it.
    carried_until: Option<MediaTime>,
    next_emsg_id: u32,
    next_generated: u64,
    events: VecDeque<BookEvent>,
}

impl CueBook {
    #[must_use]
    pub fn new(signing: Option<OfferSigning>) -> Self {
        Self {
            signing,
            ..Self::default()
        }
    }

    /// Schedules a cue. With an `Idempotency-Key`, a replay of the same
    /// request answers the cue it made the first time (even if its anchor is
    /// now past); the same key with another request is a conflict.
    ///
    /// # Errors
    /// See [`ScheduleError`]; on error nothing changes.
    pub fn schedule(
        &mut self,
        idempotency_key: Option<&str>,
        request: CueRequest,
        now: WallTime,
    ) -> Result<Scheduled, ScheduleError> {
        self.now = Some(now);
        let fingerprint = fingerprint(&request);
        if let Some(key) = idempotency_key {
            if key.is_empty()
                || key.len() > MAX_IDEMPOTENCY_KEY_LEN
                || !key.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(ScheduleError::InvalidIdempotencyKey);
            }
            if let Some((seen, id)) = self.keys.get(key) {
                return if *seen == fingerprint {
                    Ok(Scheduled {
                        id: id.clone(),
                        replay: true,
                    })
                } else {
                    Err(ScheduleError::IdempotencyConflict)
                };
            }
        }
        if let Some(id) = &request.id
            && (self.by_id.contains_key(id) || self.retired.contains(id))
        {
            return Err(ScheduleError::DuplicateId(id.clone()));
        }
        let placement_now = match request.anchor {
            Anchor::ProgramDateTime(pdt) => {
                let view = self.view.ok_or(ScheduleError::NotLive)?;
                check_lead(pdt, view.edge_pdt)?;
                Some(view.media_of(pdt))
            }
            Anchor::WallClock(at) => {
                check_lead(at, now)?;
                None
            }
            Anchor::Now | Anchor::NextKeyframe => None,
        };

        let id = request.id.clone().unwrap_or_else(|| self.generate_id());
        let emsg_id = self.next_emsg_id;
        self.next_emsg_id = self.next_emsg_id.wrapping_add(1);
        let cue = Cue {
            id: id.clone(),
            emsg_id,
            kind: request.kind,
            payload: request.payload,
            anchor: request.anchor,
            duration_ms: request.duration_ms,
            state: CueState::Pending,
        };
        self.cues.insert(emsg_id, cue);
        self.by_id.insert(id.clone(), emsg_id);
        if let Some(key) = idempotency_key {
            self.keys.insert(key.to_owned(), (fingerprint, id.clone()));
        }
        self.events.push_back(BookEvent::Scheduled(id.clone()));
        match placement_now {
            Some(t) => self.place(emsg_id, t),
            None => {
                self.pending.push(emsg_id);
                self.place_due();
            }
        }
        Ok(Scheduled { id, replay: false })
    }

    /// Cancels a cue that has not aired. Cancelling twice is not an error.
    ///
    /// # Errors
    /// [`CancelError`]; on error nothing changes.
    pub fn cancel(&mut self, id: &CueId) -> Result<&Cue, CancelError> {
        let &emsg_id = self.by_id.get(id).ok_or(CancelError::Unknown)?;
        let cue = self.cues.get_mut(&emsg_id).ok_or(CancelError::Unknown)?;
        match cue.state {
            CueState::Aired { .. } => return Err(CancelError::AlreadyAired),
            CueState::Cancelled => {}
            CueState::Pending | CueState::Placed(_) => {
                if let Some(p) = cue.placement() {
                    self.placed.remove(&(p.media_time, emsg_id));
                }
                self.pending.retain(|&e| e != emsg_id);
                cue.state = CueState::Cancelled;
                self.events.push_back(BookEvent::Cancelled(id.clone()));
            }
        }
        Ok(cue)
    }

    #[must_use]
    pub fn get(&self, id: &CueId) -> Option<&Cue> {
        self.cues.get(self.by_id.get(id)?)
    }

    /// Every cue still held, in scheduling order.
    pub fn cues(&self) -> impl Iterator<Item = &Cue> {
        self.cues.values()
    }

    /// The timeline moved: "now" cues and due wall-clock cues are placed at
    /// the new edge.
    pub fn handle_timeline(&mut self, view: TimelineView, now: WallTime) {
        self.view = Some(view);
        self.now = Some(now);
        self.place_due();
    }

    /// A keyframe arrived at `at`: every cue waiting for the next keyframe is
    /// placed there.
    pub fn handle_keyframe(&mut self, at: MediaTime) {
        if self.view.is_none() {
            return;
        }
        let waiting: Vec<u32> = self
            .pending
            .iter()
            .copied()
            .filter(|e| {
                self.cues
                    .get(e)
                    .is_some_and(|c| c.anchor == Anchor::NextKeyframe)
            })
            .collect();
        for e in waiting {
            self.pending.retain(|&p| p != e);
            self.place(e, at);
        }
    }

    /// The media timeline restarts at `view.edge` (a discontinuity: a new
    /// publisher or encoder whose timestamps do not continue the old ones, or
    /// a new stream under the same name). What was carried on the old
    /// timeline no longer bounds placement, and every placed cue that has
    /// not aired moves onto the new one by its START-DATE: still at it if
    /// that lies ahead of the edge, else at the edge (its START-DATE then
    /// follows), so it airs in the next part rather than never.
    pub fn handle_discontinuity(&mut self, view: TimelineView) {
        self.view = Some(view);
        self.carried_until = None;
        // Aired cues keep their media time on the old timeline, which the new
        // one's timestamps may pass again (a restarted encoder, or a restarted
        // gateway's first publisher, starts over): left in `placed`, `carry`
        // would put their emsg in a second part. Their DATERANGE lines come
        // from `cues`, so they stay listed while they run.
        let cues = &self.cues;
        self.placed.retain(|(_, e), ()| {
            !cues
                .get(e)
                .is_some_and(|c| matches!(c.state, CueState::Aired { .. }))
        });
        let waiting: Vec<(MediaTime, u32)> = self
            .placed
            .keys()
            .copied()
            .filter(|(_, e)| {
                self.cues
                    .get(e)
                    .is_some_and(|c| matches!(c.state, CueState::Placed(_)))
            })
            .collect();
        for (old, e) in waiting {
            self.placed.remove(&(old, e));
            let Some(cue) = self.cues.get_mut(&e) else {
                continue;
            };
            let CueState::Placed(p) = cue.state else {
                continue;
            };
            let (media_time, start) = if p.start >= view.edge_pdt {
                (view.media_of(p.start), p.start)
            } else {
                let pdt = WallTime::from_millis(view.edge_pdt.as_millis());
                (view.edge, pdt)
            };
            cue.state = CueState::Placed(Placement { media_time, start });
            self.placed.insert((media_time, e), ());
            self.events.push_back(BookEvent::Placed(cue.id.clone()));
        }
    }

    /// Wall-clock cues whose time has come are placed at the edge. An early
    /// call is a no-op.
    pub fn handle_timeout(&mut self, now: WallTime) {
        self.now = Some(now);
        self.place_due();
    }

    /// The earliest wall-clock anchor still pending.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<WallTime> {
        self.pending
            .iter()
            .filter_map(|e| match self.cues.get(e)?.anchor {
                Anchor::WallClock(at) => Some(at),
                _ => None,
            })
            .min()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<BookEvent> {
        self.events.pop_front()
    }

    /// The cues to carry in one part spanning `range` of media time: placed or
    /// aired cues with a media time in `[start, end)`, by media time. The first
    /// call for a cue marks it aired in `part`; later calls (other renditions)
    /// return it again. Nothing is placed before `range.end` afterwards.
    pub fn carry(&mut self, range: Range<MediaTime>, part: PartRef) -> Vec<&Cue> {
        self.carried_until = Some(self.carried_until.map_or(range.end, |c| c.max(range.end)));
        let hits: Vec<u32> = self.placed_in(range).collect();
        for &e in &hits {
            if let Some(cue) = self.cues.get_mut(&e)
                && let CueState::Placed(placement) = cue.state
            {
                cue.state = CueState::Aired {
                    placement,
                    landed: part,
                };
                self.events.push_back(BookEvent::Aired(cue.id.clone()));
            }
        }
        hits.iter().filter_map(|e| self.cues.get(e)).collect()
    }

    /// Placed or aired cues in `[start, end)` of media time, without airing them.
    pub fn cues_in(&self, range: Range<MediaTime>) -> impl Iterator<Item = &Cue> {
        self.placed_in(range).filter_map(|e| self.cues.get(&e))
    }

    fn placed_in(&self, range: Range<MediaTime>) -> impl Iterator<Item = u32> {
        // BTreeMap::range panics on a reversed range; an empty one is asked instead.
        let end = range.end.max(range.start);
        self.placed
            .range((range.start, 0)..(end, 0))
            .map(|(&(_, e), ())| e)
    }

    /// `EXT-X-DATERANGE` lines of the aired cues whose range (START-DATE plus
    /// DURATION, if any) reaches `window_start` (the first PROGRAM-DATE-TIME
    /// of the playlist, or earlier while the window fills) or later, by
    /// START-DATE.
    ///
    /// A range still running stays listed after its START-DATE has left the
    /// window: a viewer who joins mid-offer learns of the offer, and after a
    /// gateway restart, whose window starts over with the republished stream,
    /// an offer that aired before it is back in the playlist (otherwise it
    /// would be lost to every player that loads the playlist afterwards).
    #[must_use]
    pub fn dateranges(&self, window_start: WallTime) -> Vec<String> {
        let mut aired: Vec<(WallTime, &Cue)> = self
            .cues
            .values()
            .filter_map(|c| match c.state {
                CueState::Aired { placement, .. }
                    if placement.start.offset(MediaTime::from_millis(i64::from(
                        c.duration_ms.unwrap_or(0),
                    ))) >= window_start =>
                {
                    Some((placement.start, c))
                }
                _ => None,
            })
            .collect();
        aired.sort_by_key(|(start, c)| (*start, c.emsg_id));
        aired
            .iter()
            .filter_map(|(_, c)| c.daterange().ok())
            .collect()
    }

    /// Forgets aired and cancelled cues that start before `before` (they have
    /// left the playlist window). Their ids stay reserved; their idempotency
    /// keys are forgotten with them.
    pub fn prune(&mut self, before: WallTime) {
        let gone: Vec<u32> = self
            .cues
            .iter()
            .filter(|(_, c)| match c.state {
                CueState::Aired { placement, .. } => placement.start < before,
                CueState::Cancelled => true,
                CueState::Pending | CueState::Placed(_) => false,
            })
            .map(|(&e, _)| e)
            .collect();
        let mut forgotten = HashSet::new();
        for e in gone {
            if let Some(cue) = self.cues.remove(&e) {
                if let Some(p) = cue.placement() {
                    self.placed.remove(&(p.media_time, e));
                }
                self.by_id.remove(&cue.id);
                forgotten.insert(cue.id);
            }
        }
        // One pass over the keys, however many cues went.
        self.keys.retain(|_, (_, id)| !forgotten.contains(id));
        self.retired.extend(forgotten);
    }

    fn generate_id(&mut self) -> CueId {
        loop {
            self.next_generated += 1;
            let candidate = format!("cue-{}", self.next_generated);
            // `cue-<digits>` always validates; the fallback is never taken.
            if let Ok(id) = CueId::new(candidate)
                && !self.by_id.contains_key(&id)
                && !self.retired.contains(&id)
            {
                return id;
            }
        }
    }

    /// Places pending "now" cues, and wall-clock cues whose time has come, at
    /// the edge.
    fn place_due(&mut self) {
        let (Some(view), Some(now)) = (self.view, self.now) else {
            return;
        };
        let due: Vec<u32> = self
            .pending
            .iter()
            .copied()
            .filter(|e| {
                self.cues.get(e).is_some_and(|c| match c.anchor {
                    Anchor::Now => true,
                    Anchor::WallClock(at) => at <= now,
                    Anchor::NextKeyframe | Anchor::ProgramDateTime(_) => false,
                })
            })
            .collect();
        self.pending.retain(|e| !due.contains(e));
        for e in due {
            self.place(e, view.edge);
        }
    }

    fn place(&mut self, emsg_id: u32, at: MediaTime) {
        let Some(view) = self.view else {
            return;
        };
        // Never before what was already carried, or the cue would never air.
        let at = self.carried_until.map_or(at, |c| at.max(c));
        let start = WallTime::from_millis(view.pdt_of(at).as_millis());
        let Some(cue) = self.cues.get_mut(&emsg_id) else {
            return;
        };
        if cue.kind == CueKind::OfferOpen
            && let Some(signing) = &self.signing
            && let Ok(terms) = OfferTerms::from_payload(&cue.payload, cue.duration_ms)
        {
            sign_offer(cue, &terms, signing, start);
        }
        cue.state = CueState::Placed(Placement {
            media_time: at,
            start,
        });
        self.placed.insert((at, emsg_id), ());
        self.events.push_back(BookEvent::Placed(cue.id.clone()));
    }
}

/// Adds `"token"` to an offer-open payload: not-before = start + hold-back,
/// expiry = start + duration (the offer closes with the cue).
fn sign_offer(cue: &mut Cue, terms: &OfferTerms, signing: &OfferSigning, start: WallTime) {
    let claims = OfferClaims {
        offer_id: terms.offer_id.clone(),
        product_ids: terms.product_ids.clone(),
        not_before_ms: start.offset(signing.hold_back).as_millis(),
        expires_ms: start.as_millis() + i64::from(terms.duration_ms),
    };
    let token = offer::mint(&signing.key, &claims);
    let mut value = cue.payload.value().clone();
    if let Some(map) = value.as_object_mut() {
        map.insert("token".to_owned(), serde_json::Value::String(token));
    }
    // OfferTerms reserved TOKEN_ROOM, so the payload still fits.
    if let Ok(p) = Payload::new(value) {
        cue.payload = p;
    }
}

fn check_lead(at: WallTime, reference: WallTime) -> Result<(), ScheduleError> {
    if at < reference {
        return Err(ScheduleError::AnchorInPast);
    }
    if at.0.saturating_sub(reference.0) > MAX_LEAD_MICROS {
        return Err(ScheduleError::AnchorTooFar);
    }
    Ok(())
}

/// What makes two requests "the same body" for `Idempotency-Key`: every
/// field, the payload in its canonical form (serde_json sorts object keys).
fn fingerprint(r: &CueRequest) -> [u8; 32] {
    let anchor = match r.anchor {
        Anchor::Now => "now".to_owned(),
        Anchor::NextKeyframe => "next-keyframe".to_owned(),
        Anchor::ProgramDateTime(t) => format!("pdt {}", t.0),
        Anchor::WallClock(t) => format!("wall {}", t.0),
    };
    let mut h = Sha256::new();
    for field in [
        r.id.as_ref().map_or("", CueId::as_str),
        r.kind.as_str(),
        &anchor,
        &format!("{:?}", r.duration_ms),
        &r.payload.value().to_string(),
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().into()
}

#[cfg(test)]
#[path = "book_tests.rs"]
mod tests;

#[path = "book_restore.rs"]
mod restore;
