//! Media playlists rendered once per stream snapshot, rendition and directive set.
//!
//! When a part is published, every player blocked on it is answered from the
//! same snapshot, and the answer depends only on that snapshot, the rendition
//! and `_HLS_skip` (`_HLS_msn`/`_HLS_part` only decide *when* to answer; the
//! rendition reports come from the same snapshot). Rendering once per snapshot
//! instead of once per waiting request keeps the cost of a publication flat in
//! the number of players (`bench/`, `hls-load`). The same holds for its gzip
//! form: browsers accept gzip, and compressing each answer separately cost
//! about as much as everything else an answer takes.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use packager::directives::Skip;

use super::conditional::Validators;
use crate::stream::StreamSnapshot;

/// Shared by all handlers; cheap to clone.
#[derive(Clone, Default)]
pub struct PlaylistCache {
    /// By snapshot address. An entry's `Weak` keeps that allocation alive, so
    /// no other snapshot can have the address while the entry exists.
    entries: Arc<Mutex<HashMap<usize, Entry>>>,
}

/// A rendered playlist with its validators, computed once alongside it.
#[derive(Clone)]
pub(super) struct Rendered {
    pub(super) text: Bytes,
    /// `text` gzip-compressed (`Content-Encoding: gzip`).
    pub(super) gzip: Bytes,
    pub(super) validators: Validators,
}

/// Rendition name (ladder rungs have configured ones) and `_HLS_skip`.
type Key = (Box<str>, Option<Skip>);

struct Entry {
    snapshot: Weak<StreamSnapshot>,
    bodies: Vec<(Key, Rendered)>,
}

impl PlaylistCache {
    /// The media playlist of `rendition` in `snap` as answered to a request
    /// with `skip`; `render` makes it when no request has yet.
    pub(super) fn media_playlist(
        &self,
        snap: &Arc<StreamSnapshot>,
        rendition: &str,
        skip: Option<Skip>,
        render: impl FnOnce() -> String,
    ) -> Rendered {
        let addr = Arc::as_ptr(snap) as usize;
        let is_key = |k: &Key| *k.0 == *rendition && k.1 == skip;
        if let Ok(entries) = self.entries.lock()
            && let Some(e) = entries.get(&addr)
            && let Some((_, body)) = e.bodies.iter().find(|(k, _)| is_key(k))
        {
            return body.clone();
        }
        // Outside the lock; two requests racing here render the same bytes.
        let text = Bytes::from(render());
        let body = Rendered {
            validators: Validators::playlist(&text),
            gzip: gzip(&text),
            text,
        };
        if let Ok(mut entries) = self.entries.lock() {
            if !entries.contains_key(&addr) {
                // A new snapshot: forget the ones nobody holds any more.
                entries.retain(|_, e| e.snapshot.strong_count() > 0);
            }
            let e = entries.entry(addr).or_insert_with(|| Entry {
                snapshot: Arc::downgrade(snap),
                bodies: Vec::new(),
            });
            if !e.bodies.iter().any(|(k, _)| is_key(k)) {
                e.bodies.push(((rendition.into(), skip), body.clone()));
            }
        }
        body
    }
}

/// Compressed at the level tower-http's compression layer uses by default.
pub(super) fn gzip(text: &[u8]) -> Bytes {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(text);
    e.finish().map(Bytes::from).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use packager::units::WallTime;

    use super::*;

    fn snapshot() -> Arc<StreamSnapshot> {
        Arc::new(StreamSnapshot::empty("show", WallTime(1)))
    }

    #[test]
    fn one_rendering_per_snapshot_rendition_and_skip_value() {
        let cache = PlaylistCache::default();
        let renders = std::cell::Cell::new(0);
        let render = |text: &'static str| {
            let renders = &renders;
            move || {
                renders.set(renders.get() + 1);
                text.to_owned()
            }
        };
        let first = snapshot();
        let full = cache.media_playlist(&first, "main", None, render("full"));
        assert_eq!(&full.text[..], b"full");
        let mut unzipped = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&full.gzip[..]),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(unzipped, "full");
        // The same bytes, not a second rendering.
        let again = cache.media_playlist(&first, "main", None, render("other"));
        assert_eq!(again.text.as_ptr(), full.text.as_ptr());
        assert_eq!(renders.get(), 1);
        let delta = cache.media_playlist(&first, "main", Some(Skip::Yes), render("delta"));
        assert_eq!(&delta.text[..], b"delta");
        let audio = cache.media_playlist(&first, "audio", None, render("audio"));
        assert_eq!(&audio.text[..], b"audio");
        assert_eq!(renders.get(), 3);

        let second = snapshot();
        let next = cache.media_playlist(&second, "main", None, render("next"));
        assert_eq!(&next.text[..], b"next");
        // Snapshots nobody holds are forgotten when a new one is cached.
        drop(first);
        let third = snapshot();
        cache.media_playlist(&third, "main", None, render("third"));
        assert_eq!(cache.entries.lock().unwrap().len(), 2);
    }
}
