//! The stream task's inputs: up to one publisher per uplink role, each with
//! its own demuxer, so that the standby is demuxed all the time and
//! [`super::uplink::Uplink`] can splice at any frame.

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::warn;

use super::uplink::Role;
use crate::media::{Demuxer, MediaError, MediaEvent};
use packager::sample::TrackKind;

/// What a publisher's inputs report, in order.
pub(super) enum Event {
    Media(MediaEvent),
    /// The publisher hung up (or was dropped); its demuxer drains.
    Hangup,
    /// The demuxer has delivered its last event.
    Drained,
}

#[derive(Default)]
struct Slot {
    data: Option<mpsc::Receiver<Bytes>>,
    demuxer: Option<Demuxer>,
    media: Option<mpsc::Receiver<MediaEvent>>,
    has_video: bool,
}

#[derive(Default)]
pub(super) struct Publishers {
    slots: [Slot; 2],
}

impl Publishers {
    /// Starts demuxing `data` as the `role` publisher (replacing one that
    /// may still be draining there).
    pub(super) fn attach(
        &mut self,
        stream: &str,
        role: Role,
        data: mpsc::Receiver<Bytes>,
    ) -> Result<(), MediaError> {
        self.detach(role);
        let (demuxer, media) = Demuxer::new(&format!("{stream}-{role}"))?;
        self.slots[role.index()] = Slot {
            data: Some(data),
            demuxer: Some(demuxer),
            media: Some(media),
            has_video: false,
        };
        Ok(())
    }

    /// Stops taking `role`'s data; what it sent is still demuxed and reported.
    pub(super) fn detach(&mut self, role: Role) {
        let slot = &mut self.slots[role.index()];
        slot.data = None;
        if let Some(d) = slot.demuxer.take() {
            d.finish();
        }
    }

    /// Some publisher is connected.
    pub(super) fn connected(&self) -> bool {
        self.slots.iter().any(|s| s.data.is_some())
    }

    /// Connected publishers that have not sent H.264 video yet.
    pub(super) fn without_video(&self) -> Vec<Role> {
        Role::ALL
            .into_iter()
            .filter(|r| {
                let s = &self.slots[r.index()];
                s.data.is_some() && !s.has_video
            })
            .collect()
    }

    /// The next event of any publisher. Datagrams are fed to their demuxer
    /// here; a demuxer that refuses input drops its publisher.
    pub(super) async fn next(&mut self) -> (Role, Event) {
        loop {
            let [p, b] = &mut self.slots;
            let (role, input) = tokio::select! {
                d = recv_opt(&mut p.data) => (Role::Primary, Input::Data(d)),
                d = recv_opt(&mut b.data) => (Role::Backup, Input::Data(d)),
                ev = recv_opt(&mut p.media) => (Role::Primary, Input::Media(ev)),
                ev = recv_opt(&mut b.media) => (Role::Backup, Input::Media(ev)),
            };
            let slot = &mut self.slots[role.index()];
            match input {
                Input::Data(Some(datagram)) => {
                    if let Some(d) = &slot.demuxer
                        && let Err(e) = d.push(datagram)
                    {
                        warn!(%role, "demuxer refused input: {e}");
                        self.detach(role);
                        return (role, Event::Hangup);
                    }
                }
                Input::Data(None) => {
                    self.detach(role);
                    return (role, Event::Hangup);
                }
                Input::Media(Some(ev)) => {
                    if let MediaEvent::Track(c) = &ev
                        && c.kind() == TrackKind::Video
                    {
                        slot.has_video = true;
                    }
                    return (role, Event::Media(ev));
                }
                Input::Media(None) => {
                    slot.media = None;
                    return (role, Event::Drained);
                }
            }
        }
    }
}

enum Input {
    Data(Option<Bytes>),
    Media(Option<MediaEvent>),
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}
