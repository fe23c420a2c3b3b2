//! Admission of publishers: finds or starts the task that owns a stream and
//! makes sure a stream has at most one publisher per uplink role at a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::registry::Registry;
use super::task::{self, Command, StreamSettings};
use super::uplink::Role;
use crate::overlay::Overlay;

/// Datagrams queued between the SRT socket and the stream task (~3 s at 4 Mb/s).
const PUBLISH_QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    #[error("stream {0:?} already has a {1} publisher")]
    Busy(String, Role),
    #[error("stream {0:?} is not accepting publishers (shutting down)")]
    Closed(String),
}

/// Whether a publisher is attached, per [`Role::index`].
pub type Publishing = [AtomicBool; 2];

struct Entry {
    control: mpsc::Sender<Command>,
    publishing: Arc<Publishing>,
}

/// Shared by every ingest listener.
#[derive(Clone)]
pub struct Hub {
    registry: Registry,
    settings: StreamSettings,
    /// The commerce overlay whose cues the streams carry, when configured.
    overlay: Option<Overlay>,
    streams: Arc<Mutex<HashMap<String, Entry>>>,
}

/// A connected publisher's side: push TS datagrams; dropping it ends the session.
pub struct Publisher {
    data: mpsc::Sender<Bytes>,
    publishing: Arc<Publishing>,
    role: Role,
}

impl Publisher {
    /// Queues a datagram; waits if the stream task is behind. `Err` means the
    /// stream dropped this publisher (bad media, or shutdown): disconnect it.
    pub async fn send(&self, datagram: Bytes) -> Result<(), ()> {
        self.data.send(datagram).await.map_err(|_| ())
    }

    /// Datagrams queued for the stream task.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.data.max_capacity() - self.data.capacity()
    }

    /// Resolves when the stream has dropped this publisher, so an idle caller
    /// is disconnected without waiting for its next datagram.
    pub async fn closed(&self) {
        self.data.closed().await;
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.publishing[self.role.index()].store(false, Ordering::Release);
    }
}

impl Hub {
    #[must_use]
    pub fn new(registry: Registry, settings: StreamSettings) -> Self {
        Self {
            registry,
            settings,
            overlay: None,
            streams: Arc::default(),
        }
    }

    /// Streams started from now on carry `overlay`'s cues.
    #[must_use]
    pub fn with_overlay(mut self, overlay: Overlay) -> Self {
        self.overlay = Some(overlay);
        self
    }

    pub(super) fn overlay(&self) -> Option<&Overlay> {
        self.overlay.as_ref()
    }

    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Attaches a publisher to stream `name` as its `role` uplink, starting
    /// the stream if needed.
    pub fn publish(&self, name: &str, role: Role) -> Result<Publisher, PublishError> {
        let mut streams = self
            .streams
            .lock()
            .map_err(|_| PublishError::Closed(name.to_owned()))?;
        // A stream whose task has exited is started anew.
        if streams.get(name).is_some_and(|e| e.control.is_closed()) {
            streams.remove(name);
        }
        let entry = streams.entry(name.to_owned()).or_insert_with(|| {
            let (control, publishing) = task::spawn(name, self.settings.clone(), self.clone());
            Entry {
                control,
                publishing,
            }
        });
        if entry.publishing[role.index()]
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(PublishError::Busy(name.to_owned(), role));
        }
        let (data, rx) = mpsc::channel(PUBLISH_QUEUE);
        let publisher = Publisher {
            data,
            publishing: Arc::clone(&entry.publishing),
            role,
        };
        if entry.control.try_send(Command::Publish(role, rx)).is_err() {
            return Err(PublishError::Closed(name.to_owned()));
        }
        Ok(publisher)
    }

    /// Called by a stream task as it exits.
    pub(super) fn forget(&self, name: &str, publishing: &Arc<Publishing>) {
        if let Ok(mut streams) = self.streams.lock()
            && streams
                .get(name)
                .is_some_and(|e| Arc::ptr_eq(&e.publishing, publishing))
        {
            streams.remove(name);
        }
    }
}
