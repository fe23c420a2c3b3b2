//! Media playlists rendered once per rendition snapshot and directive set.
//!
//! When a part is published, every player blocked on it is answered from the
//! same snapshot, and the answer depends only on that snapshot and on
//! `_HLS_skip` (`_HLS_msn`/`_HLS_part` only decide *when* to answer). Rendering
//! once per snapshot instead of once per waiting request keeps the cost of a
//! publication flat in the number of players (`bench/`, `hls-load`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use packager::directives::Skip;
use packager::playlist::{MediaRenderOptions, render_media_playlist, render_media_playlist_delta};
use packager::rendition::RenditionSnapshot;

/// Shared by all handlers; cheap to clone.
#[derive(Clone, Default)]
pub struct PlaylistCache {
    /// By snapshot address. An entry's `Weak` keeps that allocation alive, so
    /// no other snapshot can have the address while the entry exists.
    entries: Arc<Mutex<HashMap<usize, Entry>>>,
}

struct Entry {
    snapshot: Weak<RenditionSnapshot>,
    bodies: Vec<(Option<Skip>, Bytes)>,
}

impl PlaylistCache {
    /// The media playlist of `r` as answered to a request with `skip`.
    pub fn media_playlist(&self, r: &Arc<RenditionSnapshot>, skip: Option<Skip>) -> Bytes {
        let key = Arc::as_ptr(r) as usize;
        if let Ok(entries) = self.entries.lock()
            && let Some(e) = entries.get(&key)
            && let Some((_, body)) = e.bodies.iter().find(|(s, _)| *s == skip)
        {
            return body.clone();
        }
        // Outside the lock; two requests racing here render the same bytes.
        let body = Bytes::from(render(r, skip));
        if let Ok(mut entries) = self.entries.lock() {
            if !entries.contains_key(&key) {
                // A new snapshot: forget the ones nobody holds any more.
                entries.retain(|_, e| e.snapshot.strong_count() > 0);
            }
            let e = entries.entry(key).or_insert_with(|| Entry {
                snapshot: Arc::downgrade(r),
                bodies: Vec::new(),
            });
            if e.bodies.iter().all(|(s, _)| *s != skip) {
                e.bodies.push((skip, body.clone()));
            }
        }
        body
    }
}

fn render(r: &RenditionSnapshot, skip: Option<Skip>) -> String {
    let opts = MediaRenderOptions::for_params(&r.params);
    match skip {
        Some(skip) => render_media_playlist_delta(r, &opts, skip),
        None => render_media_playlist(r, &opts),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use packager::rendition::{OpenSegment, Part, PlaylistParams, Rendition, Retention};
    use packager::units::{InitId, MediaTime, Msn, PartIndex, PartSeq, WallTime};

    use super::*;

    fn part(seq: u64, index: u32) -> Part {
        Part {
            seq: PartSeq(seq),
            index: PartIndex(index),
            duration: MediaTime::from_millis(500),
            independent: index == 0,
            data: Bytes::from(vec![1; 4]),
        }
    }

    #[test]
    fn one_rendering_per_snapshot_and_skip_value() {
        let params = PlaylistParams {
            target_duration_secs: 1,
            part_target: MediaTime::from_millis(500),
        };
        let mut r = Rendition::new(params, Bytes::from_static(b"init"), Retention::default());
        let open = OpenSegment {
            msn: Msn(0),
            start: MediaTime::ZERO,
            program_date_time: WallTime::from_millis(0),
            discontinuity: false,
            init: InitId(0),
            parts: Vec::new(),
        };
        r.push_part(Some(open), part(0, 0));
        let cache = PlaylistCache::default();
        let first = Arc::new(r.snapshot().clone());
        let full = cache.media_playlist(&first, None);
        assert_eq!(full, render(&first, None));
        // The same bytes, not a second rendering.
        assert_eq!(cache.media_playlist(&first, None).as_ptr(), full.as_ptr());
        let delta = cache.media_playlist(&first, Some(Skip::Yes));
        assert_eq!(delta, render(&first, Some(Skip::Yes)));

        r.push_part(None, part(1, 1));
        let second = Arc::new(r.snapshot().clone());
        let next = cache.media_playlist(&second, None);
        assert_eq!(next, render(&second, None));
        assert_ne!(next, full);
        // Snapshots nobody holds are forgotten when a new one is cached.
        drop(first);
        r.push_part(None, part(2, 2));
        let third = Arc::new(r.snapshot().clone());
        cache.media_playlist(&third, None);
        assert_eq!(cache.entries.lock().unwrap().len(), 2);
    }
}
