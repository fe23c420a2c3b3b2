//! Name → stream lookup shared by ingest (writers) and HTTP (readers).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use super::StreamSnapshot;
use crate::ingest::stats::PublisherStats;

/// A reader's handle on a stream.
pub type StreamWatch = watch::Receiver<Arc<StreamSnapshot>>;

/// The streams that exist now. The lock is never held across an `.await`.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<RwLock<HashMap<String, StreamWatch>>>,
    /// Connected publishers' statistics by stream name; a publisher's entry
    /// lapses when its connection drops the sender.
    publishers: Arc<RwLock<HashMap<String, Vec<watch::Receiver<PublisherStats>>>>>,
}

impl Registry {
    #[must_use]
    pub fn get(&self, name: &str) -> Option<StreamWatch> {
        self.inner.read().ok()?.get(name).cloned()
    }

    /// Names of the streams that exist now, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .inner
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Adds a stream; returns `false` if the name is taken.
    pub fn insert(&self, name: &str, watch: StreamWatch) -> bool {
        let Ok(mut m) = self.inner.write() else {
            return false;
        };
        if m.contains_key(name) {
            return false;
        }
        m.insert(name.to_owned(), watch);
        true
    }

    /// Lists a connected publisher of stream `name` until `stats`' sender drops.
    pub fn add_publisher(&self, name: &str, stats: watch::Receiver<PublisherStats>) {
        if let Ok(mut m) = self.publishers.write() {
            let list = m.entry(name.to_owned()).or_default();
            list.retain(|w| w.has_changed().is_ok());
            list.push(stats);
        }
    }

    /// The statistics of stream `name`'s connected publishers.
    #[must_use]
    pub fn publishers(&self, name: &str) -> Vec<PublisherStats> {
        let Ok(m) = self.publishers.read() else {
            return Vec::new();
        };
        m.get(name)
            .into_iter()
            .flatten()
            // `has_changed` fails once the sender is gone.
            .filter(|w| w.has_changed().is_ok())
            .map(|w| w.borrow().clone())
            .collect()
    }

    pub fn remove(&self, name: &str) {
        if let Ok(mut m) = self.inner.write() {
            m.remove(name);
        }
    }
}
