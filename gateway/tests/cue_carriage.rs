//! Cue carriage end to end: ffmpeg publishes H.264 + AAC over SRT to the real
//! `dropline` binary with the commerce overlay configured (API token from the
//! environment, store in a temp folder). A cue posted with anchor "now" must
//! land as an `emsg` (ID3, `https://aomedia.org/emsg/ID3`) before the `moof`
//! of the video part and of the audio part of the same number, at a
//! presentation time inside that part, and as the same `EXT-X-DATERANGE` in
//! both media playlists; the segment holding the part carries it too. A cue
//! cancelled before its time never appears; one anchored on the next
//! keyframe lands at the start of a segment; after an encoder restart (a
//! discontinuity, timestamps starting over) a cue lands on the new timeline.
//! An ABR ladder rung (`low`, transcoded from the source) carries every cue
//! in its part of the same number as well.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod support;

use std::time::Duration;

use support::cues::{
    AV_LOW, LOW_RUNG, SOON, api, check_carried, cue_emsgs_anywhere, daterange, playlist, start,
    wait_live, wall_in,
};
use support::peers::publish_av;
use support::poll;

#[test]
fn a_posted_cue_is_carried_in_both_renditions_and_a_cancelled_one_never() {
    let data = tempfile::tempdir().unwrap();
    let gw = start(data.path(), LOW_RUNG);
    let mut publisher = publish_av(gw.srt, "publish:av", "");
    wait_live(&gw, &AV_LOW);

    // A cue far enough ahead to cancel safely, then cancelled.
    let later = wall_in(Duration::from_secs(4));
    let body = format!(
        r#"{{"id":"later-1","kind":"custom","payload":{{}},"anchor":{{"type":"wall-clock","at":"{}"}}}}"#,
        later.to_rfc3339_millis()
    );
    let (status, answer) = api(&gw, "POST", "/api/v1/streams/av/cues", Some(&body));
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = api(&gw, "DELETE", "/api/v1/streams/av/cues/later-1", None);
    assert_eq!(status, 200, "{answer}");

    let body = r#"{"id":"card-1","kind":"product-card","payload":{"sku":"tee-black-m"},"anchor":{"type":"now"},"duration_ms":5000}"#;
    let (status, answer) = api(&gw, "POST", "/api/v1/streams/av/cues", Some(body));
    assert_eq!(status, 201, "{answer}");

    let card = check_carried(&gw, "card-1", &["later-1"], &AV_LOW);
    let msn = card.msn;

    // Anchored on the next keyframe: the first part of a segment, at its start.
    let body =
        r#"{"id":"kf-1","kind":"custom","payload":{"n":1},"anchor":{"type":"next-keyframe"}}"#;
    let (status, answer) = api(&gw, "POST", "/api/v1/streams/av/cues", Some(body));
    assert_eq!(status, 201, "{answer}");
    let kf = check_carried(&gw, "kf-1", &["later-1"], &AV_LOW);
    assert_eq!(kf.index, 0, "a keyframe cue opens a segment");
    assert!(
        (kf.media_time as f64 / 90_000.0 - kf.video_part_start).abs() < 1e-6,
        "the keyframe cue sits at its part's start"
    );

    // The complete segment, its parts concatenated, carries the emsg too.
    for rendition in AV_LOW {
        let seg = poll(SOON, Duration::from_millis(200), || {
            let r = gw.get(&format!("/av/{rendition}/seg{msn}.m4s"));
            (r.status == 200).then_some(r.body)
        })
        .unwrap_or_else(|| gw.fail(&format!("{rendition}: seg{msn} never completed")));
        assert_eq!(
            cue_emsgs_anywhere(&seg, "card-1"),
            1,
            "{rendition} seg{msn}"
        );
    }

    // Past the cancelled cue's time: it never airs.
    std::thread::sleep(Duration::from_secs(5));
    let (status, cue) = api(&gw, "GET", "/api/v1/streams/av/cues/later-1", None);
    assert_eq!((status, cue["state"].as_str()), (200, Some("cancelled")));
    for rendition in AV_LOW {
        assert!(daterange(&playlist(&gw, rendition), "later-1").is_none());
    }
    publisher.assert_running();
    // With DROPLINE_TEST_LOG=info,gateway=debug: the time the stream task
    // spent asking the overlay for a part's cues (the store commit).
    for line in gw.log.lines_with(&["cues carried"]) {
        eprintln!("{line}");
    }
}

#[test]
fn cues_follow_the_new_timeline_after_a_reconnect() {
    let data = tempfile::tempdir().unwrap();
    let gw = start(data.path(), LOW_RUNG);
    let mut first = publish_av(gw.srt, "publish:av", "");
    // Long enough that the restarted encoder's timestamps lie well behind.
    poll(SOON, Duration::from_millis(200), || {
        let r = gw.get("/av/main/playlist.m3u8");
        (r.status == 200 && r.text().matches("#EXTINF").count() >= 6).then_some(())
    })
    .unwrap_or_else(|| gw.fail("no six segments"));
    let body = r#"{"id":"before-1","kind":"custom","payload":{},"anchor":{"type":"now"}}"#;
    assert_eq!(
        api(&gw, "POST", "/api/v1/streams/av/cues", Some(body)).0,
        201
    );
    let before = check_carried(&gw, "before-1", &[], &AV_LOW);

    // The encoder restarts within the reconnect grace: its timestamps start
    // over, behind a discontinuity.
    first.stop();
    let mut second = publish_av(gw.srt, "publish:av", "");
    poll(SOON, Duration::from_millis(200), || {
        let t = playlist(&gw, "main");
        let (_, after) = t.split_once("#EXT-X-DISCONTINUITY\n")?;
        (after.matches("#EXT-X-PART:").count() >= 2).then_some(())
    })
    .unwrap_or_else(|| gw.fail("no discontinuity after the reconnect"));
    let body = r#"{"id":"after-1","kind":"custom","payload":{},"anchor":{"type":"now"}}"#;
    assert_eq!(
        api(&gw, "POST", "/api/v1/streams/av/cues", Some(body)).0,
        201
    );
    let after = check_carried(&gw, "after-1", &[], &AV_LOW);
    eprintln!(
        "before the reconnect at {} ticks (part {}.{}), after at {} ticks (part {}.{})",
        before.media_time, before.msn, before.index, after.media_time, after.msn, after.index
    );
    assert!(after.msn > before.msn);
    assert!(
        after.media_time < before.media_time,
        "the cue waited for the new timeline to pass the old one"
    );
    second.assert_running();
}
