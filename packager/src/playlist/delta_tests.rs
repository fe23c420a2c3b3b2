//! Playlist Delta Updates checked the way a client uses them: merged into the
//! full playlist it already holds (rfc8216bis §6.3.7: "A Client MUST merge the
//! contents of a Playlist Delta Update with its previous version of the
//! Playlist to form an up-to-date version of the Playlist"). Merging the delta
//! of a snapshot into the full playlist of the same snapshot must give that
//! full playlist back, byte for byte.

use proptest::prelude::*;

use crate::directives::Skip;
use crate::playlist::golden_tests::{Builder, HALF};
use crate::playlist::{MediaRenderOptions, render_media_playlist, render_media_playlist_delta};
use crate::rendition::RenditionSnapshot;
use crate::units::MediaTime;

const SKIP: &str = "#EXT-X-SKIP:SKIPPED-SEGMENTS=";
const MAP: &str = "#EXT-X-MAP:";

/// Line-level merge, as a client would do it: the EXT-X-SKIP line becomes the
/// skipped segments of `previous` (from its first EXT-X-MAP through the n-th
/// segment URI); the first listed segment's restated EXT-X-MAP is dropped when
/// the skipped segments already ended with that map in effect.
fn merge(previous: &str, delta: &str) -> String {
    let prev: Vec<&str> = previous.lines().collect();
    let d: Vec<&str> = delta.lines().collect();
    let k = d
        .iter()
        .position(|l| l.starts_with(SKIP))
        .expect("delta has EXT-X-SKIP");
    let n: usize = d[k][SKIP.len()..].parse().expect("SKIPPED-SEGMENTS");
    let start = prev
        .iter()
        .position(|l| l.starts_with(MAP))
        .expect("full playlist has EXT-X-MAP");
    let mut end = start;
    let mut uris = 0;
    while uris < n {
        if !prev[end].starts_with('#') {
            uris += 1;
        }
        end += 1;
    }
    let skipped = &prev[start..end];
    let in_effect = skipped.iter().rev().find(|l| l.starts_with(MAP));

    let mut out: Vec<&str> = d[..k].to_vec();
    out.extend_from_slice(skipped);
    let mut tail = d[k + 1..].to_vec();
    if n > 0 {
        // The first listed segment: [EXT-X-DISCONTINUITY], EXT-X-MAP, …
        let at = usize::from(tail.first() == Some(&"#EXT-X-DISCONTINUITY"));
        assert!(tail[at].starts_with(MAP), "no EXT-X-MAP after EXT-X-SKIP");
        if in_effect == Some(&tail[at]) {
            tail.remove(at);
        }
    }
    out.extend(tail);
    let mut text = out.join("\n");
    text.push('\n');
    text
}

fn full_and_delta(s: &RenditionSnapshot) -> (String, String) {
    let opts = MediaRenderOptions::for_params(&s.params);
    (
        render_media_playlist(s, &opts),
        render_media_playlist_delta(s, &opts, Skip::Yes),
    )
}

/// One complete segment: part durations (≤ PART-TARGET), a discontinuity
/// flag, and whether it brings a new init segment (only with a discontinuity).
fn segment() -> impl Strategy<Value = (Vec<i64>, bool, bool)> {
    (
        proptest::collection::vec(30_000_i64..=HALF, 1..=4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(parts, disc, init)| (parts, disc, disc && init))
}

fn snapshot(
    layout: &[(Vec<i64>, bool, bool)],
    open: usize,
    dseq: u64,
    ended: bool,
) -> RenditionSnapshot {
    let mut b = Builder::new(2, MediaTime(HALF), 1000, 4000);
    for (parts, disc, new_init) in layout {
        if *new_init {
            b.new_init();
        }
        b.segment(parts, *disc);
    }
    if open > 0 {
        b.open(&vec![HALF; open], false);
    }
    if ended { b.ended() } else { b.live(dseq) }
}

#[test]
fn merge_restores_the_golden_cases() {
    for (segments, open) in [(10, 2), (3, 1), (7, 0), (0, 1)] {
        let layout = vec![(vec![HALF; 4], false, false); segments];
        let s = snapshot(&layout, open, 0, false);
        let (full, delta) = full_and_delta(&s);
        assert_eq!(merge(&full, &delta), full, "{delta}");
    }
}

#[test]
fn ended_playlists_ignore_skip() {
    let layout = vec![(vec![HALF; 4], false, false); 10];
    let s = snapshot(&layout, 0, 0, true);
    let (full, delta) = full_and_delta(&s);
    assert_eq!(delta, full);
}

#[test]
fn playlists_without_can_skip_until_ignore_skip() {
    let layout = vec![(vec![HALF; 4], false, false); 10];
    let s = snapshot(&layout, 1, 0, false);
    let ms = MediaTime::from_millis;
    let opts = MediaRenderOptions::new(&s.params, ms(1500), None, None).expect("valid");
    assert_eq!(
        render_media_playlist_delta(&s, &opts, Skip::V2),
        render_media_playlist(&s, &opts)
    );
}

proptest! {
    /// Delta merged into full == full; the skipped segments are exactly those
    /// lying wholly beyond the Skip Boundary; the header is the full one.
    #[test]
    fn delta_merges_back_into_the_full_playlist(
        layout in proptest::collection::vec(segment(), 0..16),
        open in 0_usize..4,
        dseq in 0_u64..3,
        ended in any::<bool>(),
        v2 in any::<bool>(),
    ) {
        let s = snapshot(&layout, open, dseq, ended);
        let opts = MediaRenderOptions::for_params(&s.params);
        let full = render_media_playlist(&s, &opts);
        let skip = if v2 { Skip::V2 } else { Skip::Yes };
        let delta = render_media_playlist_delta(&s, &opts, skip);
        if ended {
            prop_assert_eq!(&delta, &full);
            return Ok(());
        }
        prop_assert_eq!(merge(&full, &delta), full.clone());
        prop_assert!(delta.len() <= full.len() + SKIP.len() + 24);
        prop_assert_eq!(delta.matches("#EXT-X-SKIP").count(), 1);

        // The segments skipped: every one whose end lies more than 12 s
        // (6 × TD) before the end of the last complete segment.
        let boundary = MediaTime::from_millis(12_000).0;
        let mut after = 0_i64;
        let mut expected = 0;
        for seg in s.segments.iter().rev() {
            if after > boundary {
                expected += 1;
            }
            after += seg.duration.0;
        }
        let n: usize = delta
            .lines()
            .find_map(|l| l.strip_prefix(SKIP))
            .and_then(|v| v.parse().ok())
            .expect("SKIPPED-SEGMENTS");
        prop_assert_eq!(n, expected);
    }
}
