//! A restart of the gateway between scheduling and airing loses nothing
//! (issue 6, durability): the real `dropline` binary with the overlay's
//! store in a temp folder, ffmpeg publishing H.264 + AAC over SRT. Cues are
//! scheduled, the gateway is killed (SIGKILL right after the API's 2xx: the
//! store is durable before it answers; later SIGTERM), a new gateway starts
//! on the same store and the source is published again. Then:
//! - a wall-clock cue scheduled before the restart airs once, with its id,
//!   at its time, as emsg and DATERANGE in both renditions;
//! - cues that aired before keep their state and the part they landed in,
//!   and their emsg is never carried again on the new timeline;
//! - a running cue (its DURATION not over) and an instant cue that aired
//!   just before the restart are back in both playlists, the same lines as
//!   before (the republished stream's window, while it fills, reaches back
//!   as far as a full one would);
//! - the cue list has the same ids, and an `Idempotency-Key` replay answers
//!   the same cue.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod support;

use std::path::Path;
use std::time::Duration;

use packager::units::WallTime;
use serde_json::Value;
use support::cues::{
    AV, api, check_carried, daterange, emsgs_in_window, playlist, post_cue_once, start, wait_live,
    wall_in,
};
use support::gateway::Gateway;
use support::peers::{Peer, publish_av};

fn cues(gw: &Gateway) -> Vec<Value> {
    let (status, list) = api(gw, "GET", "/api/v1/streams/av/cues", None);
    assert_eq!(status, 200, "{list}");
    list["cues"].as_array().unwrap().clone()
}

fn ids(list: &[Value]) -> Vec<&str> {
    list.iter().map(|c| c["id"].as_str().unwrap()).collect()
}

fn wall_clock_cue(id: &str, at: WallTime) -> String {
    format!(
        r#"{{"id":"{id}","kind":"custom","payload":{{"n":1}},"anchor":{{"type":"wall-clock","at":"{}"}}}}"#,
        at.to_rfc3339_millis()
    )
}

/// A new gateway on the same store, the source published again.
fn restart(data: &Path) -> (Gateway, Peer) {
    let gw = start(data, "");
    let publisher = publish_av(gw.srt, "publish:av", "");
    (gw, publisher)
}

/// The replay of a request made before the restart answers the same cue.
fn assert_replayed(gw: &Gateway, key: &str, body: &str, id: &str) {
    let (status, replayed, cue) = post_cue_once(gw, key, body);
    assert_eq!((status, replayed), (200, true), "{key}: {cue}");
    assert_eq!(cue["id"], id, "{key}");
}

/// Cue `id` aired once, at the START-DATE it was placed at for `at`.
fn assert_aired_on_time(gw: &Gateway, id: &str, at: WallTime) {
    let carried = check_carried(gw, id, &[], &AV);
    let (_, cue) = api(gw, "GET", &format!("/api/v1/streams/av/cues/{id}"), None);
    let start = overlay::rfc3339::parse(cue["start"].as_str().unwrap()).unwrap();
    let error_ms = (start.0 - at.0) as f64 / 1000.0;
    eprintln!(
        "{id}: intended {}, aired at {} (part {}.{}), {error_ms:+.0} ms",
        at.to_rfc3339_millis(),
        start.to_rfc3339_millis(),
        carried.msn,
        carried.index
    );
    // Placed at the live edge once its time has come: the edge's PDT then
    // trails it by the ingest delay, or the check runs up to a part late
    // (cue-bench: -318..+148 ms). Placed at the restart instead, it would be
    // seconds early.
    assert!(
        error_ms.abs() < 2000.0,
        "{id} placed {error_ms} ms from its time"
    );
}

#[test]
fn a_restart_between_scheduling_and_airing_loses_nothing() {
    let data = tempfile::tempdir().unwrap();
    let (gw, mut publisher) = restart(data.path());
    wait_live(&gw, &AV);

    // Aired before the restart: an offer-like cue running for a minute and
    // an instant one.
    let running = r#"{"id":"running-1","kind":"custom","payload":{"sku":"tee"},"anchor":{"type":"now"},"duration_ms":60000}"#;
    let (status, _, cue) = post_cue_once(&gw, "k-running", running);
    assert_eq!(status, 201, "{cue}");
    check_carried(&gw, "running-1", &[], &AV);
    let instant = r#"{"id":"instant-1","kind":"custom","payload":{},"anchor":{"type":"now"}}"#;
    assert_eq!(post_cue_once(&gw, "k-instant", instant).0, 201);
    check_carried(&gw, "instant-1", &[], &AV);
    let before_kill = playlist(&gw, "main");
    let running_line = daterange(&before_kill, "running-1").unwrap().to_owned();
    let instant_line = daterange(&before_kill, "instant-1").unwrap().to_owned();

    // Scheduled far enough ahead for a restart, then SIGKILL at once.
    let at_kill = wall_in(Duration::from_secs(8));
    let body_kill = wall_clock_cue("sched-kill", at_kill);
    let (status, _, cue) = post_cue_once(&gw, "k-kill", &body_kill);
    assert_eq!((status, cue["state"].as_str()), (201, Some("pending")));
    let before = cues(&gw);
    drop(gw);
    publisher.kill();

    let (gw, mut publisher) = restart(data.path());
    let after = cues(&gw);
    assert_eq!(ids(&after), ids(&before));
    for (b, a) in before.iter().zip(&after) {
        // Aired cues keep their state, START-DATE and landing part.
        assert_eq!(
            (&b["state"], &b["start"], &b["part"], &b["payload"]),
            (&a["state"], &a["start"], &a["part"], &a["payload"]),
            "{}",
            b["id"]
        );
    }
    assert_replayed(&gw, "k-kill", &body_kill, "sched-kill");
    assert_replayed(&gw, "k-running", running, "running-1");
    wait_live(&gw, &AV);
    assert_aired_on_time(&gw, "sched-kill", at_kill);
    for rendition in AV {
        let text = playlist(&gw, rendition);
        assert_eq!(
            daterange(&text, "running-1"),
            Some(running_line.as_str()),
            "{rendition}: the running cue is back, unchanged\n{text}"
        );
        assert_eq!(
            daterange(&text, "instant-1"),
            Some(instant_line.as_str()),
            "{rendition}: an instant cue aired just before the restart is back\n{text}"
        );
        for id in ["running-1", "instant-1"] {
            assert_eq!(
                emsgs_in_window(&gw, rendition, id),
                0,
                "{rendition}: {id} carried again after the restart"
            );
        }
    }

    // The same across a graceful stop (SIGTERM).
    let at_term = wall_in(Duration::from_secs(6));
    let body_term = wall_clock_cue("sched-term", at_term);
    assert_eq!(post_cue_once(&gw, "k-term", &body_term).0, 201);
    let before = cues(&gw);
    let mut gw = gw;
    assert!(gw.stop().success(), "graceful exit");
    publisher.kill();

    let (gw, mut publisher) = restart(data.path());
    assert_eq!(ids(&cues(&gw)), ids(&before));
    assert_replayed(&gw, "k-term", &body_term, "sched-term");
    wait_live(&gw, &AV);
    assert_aired_on_time(&gw, "sched-term", at_term);
    let (_, cue) = api(&gw, "GET", "/api/v1/streams/av/cues/sched-kill", None);
    let was = before.iter().find(|c| c["id"] == "sched-kill").unwrap();
    assert_eq!(
        (&cue["state"], &cue["part"]),
        (&was["state"], &was["part"]),
        "sched-kill stays aired where it landed"
    );
    for rendition in AV {
        assert_eq!(emsgs_in_window(&gw, rendition, "sched-kill"), 0);
        assert!(daterange(&playlist(&gw, rendition), "running-1").is_some());
    }
    publisher.assert_running();
}
