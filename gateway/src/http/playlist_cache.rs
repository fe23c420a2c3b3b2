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
