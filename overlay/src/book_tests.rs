use mp4_atom::{Decode, Emsg, EmsgTimestamp};
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::offer::{TokenError, verify};

/// 2026-11-26T10:00:00.000Z
const T0_MS: i64 = 1_795_687_200_000;
const SEC: i64 = 90_000;

fn wall(ms_after_t0: i64) -> WallTime {
    WallTime::from_millis(T0_MS + ms_after_t0)
}

/// Edge at media time `ticks`, whose PDT is T0 + ticks (media time 0 = T0).
fn view(ticks: i64) -> TimelineView {
    TimelineView {
        edge: MediaTime(ticks),
        edge_pdt: WallTime(T0_MS * 1000).offset(MediaTime(ticks)),
    }
}

fn req(body: serde_json::Value) -> CueRequest {
    CueRequest::parse(body.to_string().as_bytes()).unwrap()
}

fn part(msn: u64, part: u32) -> PartRef {
    PartRef {
        msn: Msn(msn),
        part: PartIndex(part),
    }
}

fn live_book() -> CueBook {
    let mut b = CueBook::new(None);
    b.handle_timeline(view(10 * SEC), wall(10_000));
    b
}

fn id(s: &str) -> CueId {
    CueId::new(s).unwrap()
}

fn events(b: &mut CueBook) -> Vec<BookEvent> {
    std::iter::from_fn(|| b.poll_event()).collect()
}

#[test]
fn now_anchor_waits_for_the_timeline() {
    let mut b = CueBook::new(None);
    let s = b
        .schedule(None, req(json!({"kind":"custom"})), wall(0))
        .unwrap();
    assert_eq!(s.id, id("cue-1"));
    assert_eq!(b.get(&s.id).unwrap().state, CueState::Pending);
    b.handle_timeline(view(SEC), wall(1_000));
    assert_eq!(
        b.get(&s.id).unwrap().placement(),
        Some(Placement {
            media_time: MediaTime(SEC),
            start: wall(1_000)
        })
    );
    assert_eq!(
        events(&mut b),
        [
            BookEvent::Scheduled(id("cue-1")),
            BookEvent::Placed(id("cue-1"))
        ]
    );
}

#[test]
fn program_date_time_anchor_maps_through_the_edge() {
    let mut b = CueBook::new(None);
    let pdt = |ms: i64| json!({"kind":"custom","anchor":{"type":"program-date-time","at":wall(ms).to_rfc3339_millis()}});
    assert_eq!(
        b.schedule(None, req(pdt(12_345)), wall(0)),
        Err(ScheduleError::NotLive)
    );
    b.handle_timeline(view(10 * SEC), wall(10_000));
    let s = b.schedule(None, req(pdt(12_345)), wall(10_000)).unwrap();
    let p = b.get(&s.id).unwrap().placement().unwrap();
    assert_eq!(p.media_time, MediaTime(12_345 * 90));
    assert_eq!(p.start, wall(12_345));
    assert_eq!(
        b.schedule(None, req(pdt(9_999)), wall(10_000)),
        Err(ScheduleError::AnchorInPast)
    );
    assert_eq!(
        b.schedule(None, req(pdt(32 * 86_400_000)), wall(10_000)),
        Err(ScheduleError::AnchorTooFar)
    );
}

#[test]
fn wall_clock_anchor_airs_at_the_edge_when_due() {
    let mut b = live_book();
    let body = json!({"id":"w","kind":"custom","anchor":{"type":"wall-clock","at":wall(15_000).to_rfc3339_millis()}});
    b.schedule(None, req(body.clone()), wall(10_000)).unwrap();
    assert_eq!(b.poll_timeout(), Some(wall(15_000)));
    b.handle_timeout(wall(14_999));
    assert_eq!(b.get(&id("w")).unwrap().state, CueState::Pending);
    b.handle_timeline(view(15 * SEC + 300), wall(15_000));
    assert_eq!(
        b.get(&id("w")).unwrap().placement().unwrap().media_time,
        MediaTime(15 * SEC + 300)
    );
    assert_eq!(b.poll_timeout(), None);
    let mut body = body;
    body["id"] = json!("w2");
    assert_eq!(
        b.schedule(None, req(body), wall(15_001)),
        Err(ScheduleError::AnchorInPast)
    );
}

#[test]
fn next_keyframe_anchor() {
    let mut b = live_book();
    b.schedule(
        None,
        req(json!({"id":"k","kind":"custom","anchor":{"type":"next-keyframe"}})),
        wall(10_000),
    )
    .unwrap();
    b.handle_timeline(view(11 * SEC), wall(11_000));
    assert_eq!(b.get(&id("k")).unwrap().state, CueState::Pending);
    b.handle_keyframe(MediaTime(12 * SEC));
    assert_eq!(
        b.get(&id("k")).unwrap().placement().unwrap().start,
        wall(12_000)
    );
}

#[test]
fn cancelled_cues_never_air_and_aired_cues_cannot_be_cancelled() {
    let mut b = live_book();
    b.schedule(None, req(json!({"id":"a","kind":"custom"})), wall(10_000))
        .unwrap();
    b.schedule(None, req(json!({"id":"b","kind":"custom"})), wall(10_000))
        .unwrap();
    assert_eq!(b.cancel(&id("a")).unwrap().state, CueState::Cancelled);
    assert_eq!(b.cancel(&id("a")).unwrap().state, CueState::Cancelled);
    let carried: Vec<&str> = b
        .carry(MediaTime(10 * SEC)..MediaTime(11 * SEC), part(5, 0))
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(carried, ["b"]);
    assert_eq!(b.cancel(&id("b")), Err(CancelError::AlreadyAired));
    assert_eq!(b.cancel(&id("zz")).unwrap_err(), CancelError::Unknown);
    assert!(matches!(
        b.get(&id("b")).unwrap().state,
        CueState::Aired { landed, .. } if landed == part(5, 0)
    ));
}

#[test]
fn every_rendition_carries_the_cue_and_late_cues_move_forward() {
    let mut b = live_book();
    b.schedule(None, req(json!({"id":"a","kind":"custom"})), wall(10_000))
        .unwrap();
    let video = b.carry(
        MediaTime(10 * SEC)..MediaTime(10 * SEC + 18_000),
        part(5, 0),
    );
    assert_eq!(video.len(), 1);
    // The audio part of the same time, slightly shifted: the cue again, same landing.
    let audio = b.carry(
        MediaTime(10 * SEC - 100)..MediaTime(10 * SEC + 17_900),
        part(5, 0),
    );
    assert_eq!(audio.len(), 1);
    let aired = events(&mut b)
        .into_iter()
        .filter(|e| matches!(e, BookEvent::Aired(_)))
        .count();
    assert_eq!(aired, 1);
    // The timeline view lags what was carried: a "now" cue lands at the carried end.
    b.schedule(
        None,
        req(json!({"id":"late","kind":"custom"})),
        wall(10_000),
    )
    .unwrap();
    assert_eq!(
        b.get(&id("late")).unwrap().placement().unwrap().media_time,
        MediaTime(10 * SEC + 18_000)
    );
    assert!(b.carry(MediaTime(5)..MediaTime(1), part(0, 0)).is_empty());
}

#[test]
fn idempotency_key_replays_or_conflicts() {
    let mut b = live_book();
    let first = b
        .schedule(
            Some("k-1"),
            req(json!({"kind":"custom","payload":{"a":1,"b":2}})),
            wall(10_000),
        )
        .unwrap();
    assert!(!first.replay);
    events(&mut b);
    // Same body, keys in another order: the same cue, nothing new.
    let again = b
        .schedule(
            Some("k-1"),
            req(json!({"payload":{"b":2,"a":1},"kind":"custom"})),
            wall(99_000),
        )
        .unwrap();
    assert_eq!(
        again,
        Scheduled {
            id: first.id.clone(),
            replay: true
        }
    );
    assert_eq!(events(&mut b), []);
    assert_eq!(b.cues().count(), 1);
    assert_eq!(
        b.schedule(
            Some("k-1"),
            req(json!({"kind":"custom","payload":{"a":2}})),
            wall(10_000)
        ),
        Err(ScheduleError::IdempotencyConflict)
    );
    for bad in ["", "a b", &"k".repeat(256)] {
        assert_eq!(
            b.schedule(Some(bad), req(json!({"kind":"custom"})), wall(10_000)),
            Err(ScheduleError::InvalidIdempotencyKey)
        );
    }
}

#[test]
fn ids_are_never_reused() {
    let mut b = live_book();
    b.schedule(
        None,
        req(json!({"id":"cue-1","kind":"custom"})),
        wall(10_000),
    )
    .unwrap();
    assert_eq!(
        b.schedule(
            None,
            req(json!({"id":"cue-1","kind":"custom"})),
            wall(10_000)
        ),
        Err(ScheduleError::DuplicateId(id("cue-1")))
    );
    // A generated id skips the one the client took.
    let s = b
        .schedule(None, req(json!({"kind":"custom"})), wall(10_000))
        .unwrap();
    assert_eq!(s.id, id("cue-2"));
    b.carry(MediaTime(0)..MediaTime(20 * SEC), part(5, 0));
    b.prune(wall(20_000));
    assert_eq!(b.cues().count(), 0);
    assert_eq!(
        b.schedule(
            None,
            req(json!({"id":"cue-1","kind":"custom"})),
            wall(10_000)
        ),
        Err(ScheduleError::DuplicateId(id("cue-1")))
    );
    assert_eq!(
        b.schedule(None, req(json!({"kind":"custom"})), wall(10_000))
            .unwrap()
            .id,
        id("cue-3")
    );
}

#[test]
fn carriage_json_emsg_and_daterange() {
    let mut b = live_book();
    b.schedule(
        None,
        req(json!({"id":"c1","kind":"product-card","payload":{"sku":"A1","name":"Tee"},"duration_ms":30000})),
        wall(10_000),
    )
    .unwrap();
    let cue = b.get(&id("c1")).unwrap().clone();
    let json = cue.json().unwrap();
    assert_eq!(
        json,
        r#"{"id":"c1","kind":"product-card","start":"2026-11-26T10:00:10.000Z","duration_ms":30000,"payload":{"name":"Tee","sku":"A1"}}"#
    );
    assert_eq!(
        cue.daterange().unwrap(),
        format!(
            "#EXT-X-DATERANGE:ID=\"c1\",CLASS=\"com.dropline.product-card\",\
             START-DATE=\"2026-11-26T10:00:10.000Z\",DURATION=30.0,X-PAYLOAD=\"{}\"",
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &json)
        )
    );
    let emsg = cue.emsg(900_000).unwrap();
    let back = Emsg::decode(&mut emsg.as_slice()).unwrap();
    assert_eq!(back.timescale, 90_000);
    assert_eq!(back.presentation_time, EmsgTimestamp::Absolute(900_000));
    assert_eq!(back.event_duration, 30_000 * 90);
    assert_eq!(back.id, cue.emsg_id);
    assert_eq!(back.scheme_id_uri, "https://aomedia.org/emsg/ID3");
    assert_eq!(back.value, "");
    assert_eq!(
        read_txxx(&back.message_data),
        ("com.dropline.cue".to_owned(), json)
    );

    let unknown = b
        .schedule(None, req(json!({"kind":"custom"})), wall(10_000))
        .unwrap();
    let emsg = b.get(&unknown.id).unwrap().emsg(0).unwrap();
    let back = Emsg::decode(&mut emsg.as_slice()).unwrap();
    assert_eq!(back.event_duration, u32::MAX);
    assert!(
        !b.get(&unknown.id)
            .unwrap()
            .json()
            .unwrap()
            .contains("duration_ms")
    );
}

/// An ID3v2.4 reader that shares no code with the writer: (description, value)
/// of the single TXXX frame.
fn read_txxx(tag: &[u8]) -> (String, String) {
    let unsync = |b: &[u8]| {
        b.iter().fold(0_usize, |acc, &x| {
            assert_eq!(x & 0x80, 0, "not syncsafe");
            (acc << 7) | usize::from(x)
        })
    };
    assert_eq!(&tag[..6], b"ID3\x04\x00\x00");
    assert_eq!(unsync(&tag[6..10]), tag.len() - 10);
    let frame = &tag[10..];
    assert_eq!(&frame[..4], b"TXXX");
    assert_eq!(unsync(&frame[4..8]), frame.len() - 10);
    assert_eq!(&frame[8..10], [0, 0]);
    let data = &frame[10..];
    assert_eq!(data[0], 3, "UTF-8");
    let nul = data.iter().position(|&b| b == 0).unwrap();
    (
        String::from_utf8(data[1..nul].to_vec()).unwrap(),
        String::from_utf8(data[nul + 1..].to_vec()).unwrap(),
    )
}

#[test]
fn dateranges_follow_the_window() {
    let mut b = live_book();
    for (i, at) in [11_000, 12_000, 13_000].into_iter().enumerate() {
        b.schedule(
            None,
            req(json!({"id":format!("d{i}"),"kind":"custom","anchor":{"type":"program-date-time","at":wall(at).to_rfc3339_millis()}})),
            wall(10_000),
        )
        .unwrap();
    }
    assert!(b.dateranges(wall(0)).is_empty(), "not aired yet");
    b.carry(MediaTime(10 * SEC)..MediaTime(12 * SEC + 1), part(5, 0));
    let lines = b.dateranges(wall(11_500));
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("#EXT-X-DATERANGE:ID=\"d1\""));
    assert_eq!(b.dateranges(wall(0)).len(), 2);
}

#[test]
fn a_running_daterange_stays_after_its_start_leaves_the_window() {
    let mut b = live_book();
    b.schedule(
        None,
        req(json!({"id":"offer","kind":"custom","duration_ms":5000,"anchor":{"type":"program-date-time","at":wall(11_000).to_rfc3339_millis()}})),
        wall(10_000),
    )
    .unwrap();
    b.carry(MediaTime(10 * SEC)..MediaTime(12 * SEC), part(5, 0));
    // Listed until its end (16 s) falls before the window.
    assert_eq!(b.dateranges(wall(16_000)).len(), 1);
    assert!(b.dateranges(wall(16_001)).is_empty());
}

#[test]
fn offer_open_gets_a_token_valid_from_pdt_plus_hold_back_until_close() {
    let key = OfferKey::new(vec![9; 32]).unwrap();
    let mut b = CueBook::new(Some(OfferSigning {
        key: key.clone(),
        hold_back: MediaTime(3 * SEC),
    }));
    b.handle_timeline(view(10 * SEC), wall(10_000));
    b.schedule(
        None,
        req(json!({"id":"o","kind":"offer-open","duration_ms":60000,"payload":{"offer_id":"drop-7","product_ids":["p1"]}})),
        wall(10_000),
    )
    .unwrap();
    let cue = b.get(&id("o")).unwrap();
    let token = cue.payload.value()["token"].as_str().unwrap();
    assert_eq!(
        verify(&key, token, wall(12_999)),
        Err(TokenError::NotYetValid)
    );
    let claims = verify(&key, token, wall(13_000)).unwrap();
    assert_eq!(claims.offer_id, "drop-7");
    assert_eq!(claims.product_ids, ["p1"]);
    assert_eq!(verify(&key, token, wall(70_000)), Err(TokenError::Expired));
    assert!(cue.json().unwrap().contains(token));
}

#[derive(Debug, Clone)]
enum Op {
    Schedule {
        anchor: u8,
        ahead_ms: u16,
    },
    Cancel(u8),
    /// Carry one 200 ms part and move the edge past it.
    Advance,
    Keyframe,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0_u8..4, 0_u16..3000).prop_map(|(anchor, ahead_ms)| Op::Schedule { anchor, ahead_ms }),
        any::<u8>().prop_map(Op::Cancel),
        Just(Op::Advance),
        Just(Op::Keyframe),
    ]
}

proptest! {
    /// Whatever the order of operations: a cue airs at most once, never after
    /// being cancelled, and every cue not cancelled airs once time has passed it.
    #[test]
    fn lifecycle_invariants(ops in proptest::collection::vec(op(), 0..80)) {
        let part_len = 18_000;
        let mut b = CueBook::new(None);
        let mut edge = 0_i64;
        let mut ids = Vec::new();
        let mut log = Vec::new();
        b.handle_timeline(view(edge), wall(0));
        for op in ops {
            let now = WallTime(T0_MS * 1000).offset(MediaTime(edge));
            match op {
                Op::Schedule { anchor, ahead_ms } => {
                    let at = (now.as_millis() - T0_MS) + i64::from(ahead_ms);
                    let anchor = match anchor {
                        0 => json!({"type":"now"}),
                        1 => json!({"type":"next-keyframe"}),
                        2 => json!({"type":"program-date-time","at":wall(at).to_rfc3339_millis()}),
                        _ => json!({"type":"wall-clock","at":wall(at).to_rfc3339_millis()}),
                    };
                    let s = b.schedule(None, req(json!({"kind":"custom","anchor":anchor})), now).unwrap();
                    ids.push(s.id);
                }
                Op::Cancel(i) => {
                    if let Some(id) = ids.get(usize::from(i) % ids.len().max(1)) {
                        let _ = b.cancel(id);
                    }
                }
                Op::Advance => {
                    b.carry(MediaTime(edge)..MediaTime(edge + part_len), part(0, 0));
                    edge += part_len;
                    let now = WallTime(T0_MS * 1000).offset(MediaTime(edge));
                    b.handle_timeline(view(edge), now);
                    b.handle_timeout(now);
                }
                Op::Keyframe => b.handle_keyframe(MediaTime(edge)),
            }
            log.extend(std::iter::from_fn(|| b.poll_event()));
        }
        // Let time run well past every anchor (3 s ahead at most), with keyframes.
        for _ in 0..40 {
            b.handle_keyframe(MediaTime(edge));
            b.carry(MediaTime(edge)..MediaTime(edge + part_len), part(0, 0));
            edge += part_len;
            let now = WallTime(T0_MS * 1000).offset(MediaTime(edge));
            b.handle_timeline(view(edge), now);
            b.handle_timeout(now);
        }
        log.extend(std::iter::from_fn(|| b.poll_event()));
        for id in &ids {
            let aired = log.iter().filter(|e| **e == BookEvent::Aired(id.clone())).count();
            let cancelled = log.iter().position(|e| *e == BookEvent::Cancelled(id.clone()));
            let aired_at = log.iter().position(|e| *e == BookEvent::Aired(id.clone()));
            prop_assert!(aired <= 1);
            match (cancelled, aired_at) {
                (Some(_), Some(_)) => prop_assert!(false, "{id} cancelled and aired"),
                (None, None) => prop_assert!(false, "{id} never aired"),
                _ => {}
            }
        }
    }
}

#[test]
fn a_discontinuity_moves_waiting_cues_onto_the_new_timeline() {
    let mut b = live_book();
    // Carried up to 12 s on the old timeline.
    assert!(
        b.carry(MediaTime(11 * SEC)..MediaTime(12 * SEC), part(5, 0))
            .is_empty()
    );
    let soon = b
        .schedule(
            None,
            req(json!({"kind":"custom","anchor":{"type":"now"}})),
            wall(12_000),
        )
        .unwrap()
        .id;
    let ahead = b
        .schedule(
            None,
            req(json!({"kind":"custom","anchor":{"type":"program-date-time","at":"2026-11-26T10:00:15.000Z"}})),
            wall(12_000),
        )
        .unwrap()
        .id;
    b.handle_timeline(view(12 * SEC), wall(12_000));
    // The new encoder starts at media time 1 s, at PDT T0 + 13 s.
    let new = TimelineView {
        edge: MediaTime(SEC),
        edge_pdt: wall(13_000),
    };
    b.handle_discontinuity(new);
    assert_eq!(
        b.get(&soon).unwrap().placement(),
        Some(Placement {
            media_time: MediaTime(SEC),
            start: wall(13_000),
        })
    );
    let p = b.get(&ahead).unwrap().placement().unwrap();
    assert_eq!((p.media_time, p.start), (MediaTime(3 * SEC), wall(15_000)));
    // The first part of the new timeline carries the cue that was due.
    let aired = b.carry(MediaTime(SEC)..MediaTime(SEC + SEC / 5), part(6, 0));
    assert_eq!(
        aired.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        vec![soon]
    );
}

#[test]
fn a_cue_aired_on_the_old_timeline_is_not_carried_again_on_the_new_one() {
    let mut b = live_book();
    let id = b
        .schedule(
            None,
            req(json!({"kind":"custom","duration_ms":60000,"anchor":{"type":"now"}})),
            wall(10_000),
        )
        .unwrap()
        .id;
    assert_eq!(
        b.carry(MediaTime(10 * SEC)..MediaTime(11 * SEC), part(5, 0))
            .len(),
        1
    );
    // A new encoder (or a restarted gateway's first publisher) starts over at 1 s.
    b.handle_discontinuity(TimelineView {
        edge: MediaTime(SEC),
        edge_pdt: wall(20_000),
    });
    // Its timestamps pass 10 s again: the cue is not carried a second time,
    // yet its DATERANGE, still running, stays listed.
    assert!(
        b.carry(MediaTime(9 * SEC)..MediaTime(11 * SEC), part(9, 0))
            .is_empty()
    );
    assert!(matches!(
        b.get(&id).unwrap().state,
        CueState::Aired { landed, .. } if landed == part(5, 0)
    ));
    assert_eq!(b.dateranges(wall(25_000)).len(), 1);
}
