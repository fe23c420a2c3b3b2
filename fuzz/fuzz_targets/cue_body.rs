//! `overlay::CueRequest::parse` (the cue API body) on arbitrary bytes, and
//! every accepted body through a live `CueBook` and both carriages.
//!
//! Invariants (beyond "no panic"): an accepted body schedules (or is refused
//! with a `ScheduleError`), the same body under the same Idempotency-Key is a
//! replay of the same cue, and a placed cue's emsg encodes and its
//! EXT-X-DATERANGE line is one line whose quoted strings hold no `"`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::{CueBook, CueRequest, PartRef, TimelineView};
use packager::units::{MediaTime, Msn, PartIndex, WallTime};

fuzz_target!(|body: &[u8]| {
    let Ok(request) = CueRequest::parse(body) else {
        return;
    };
    // 2026-11-26T10:00:00Z at media time 0.
    let now = WallTime::from_millis(1_795_687_200_000);
    let mut book = CueBook::new(None);
    book.handle_timeline(
        TimelineView {
            edge: MediaTime(0),
            edge_pdt: now,
        },
        now,
    );
    let Ok(first) = book.schedule(Some("k"), request.clone(), now) else {
        return;
    };
    let again = book.schedule(Some("k"), request, now).expect("replay");
    assert_eq!(again.id, first.id);
    assert!(again.replay);
    book.handle_keyframe(MediaTime(0));
    let part = PartRef {
        msn: Msn(0),
        part: PartIndex(0),
    };
    for cue in book.carry(MediaTime(0)..MediaTime(90_000), part) {
        cue.emsg(0).expect("emsg of a placed cue");
        let line = cue.daterange().expect("daterange of a placed cue");
        assert!(!line.contains(['\r', '\n']), "{line:?}");
        assert_eq!(line.matches('"').count() % 2, 0, "{line:?}");
    }
});
