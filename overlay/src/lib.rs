//! dropline's commerce overlay: cues, their carriage in media and playlists,
//! staged stock reveals, signed drop offers and order-system webhooks.
//!
//! Pure: no IO, no clock, no async runtime. Inputs are bytes, JSON and times;
//! outputs are values, bytes and lines (`../shared/notes/style.md`, convention
//! 1). The gateway owns one [`CueBook`] per stream. See `README.md` for the
//! API in brief and `CARRIAGE.md` for the wire contract with the player SDK.
#![forbid(unsafe_code)]

pub mod book;
pub mod carriage;
pub mod cue;
pub mod drop;
pub mod figures;
pub mod offer;
pub mod rfc3339;
pub mod webhook;

pub use book::{
    BookEvent, CancelError, Cue, CueBook, CueState, OfferSigning, PartRef, Placement,
    ScheduleError, Scheduled, TimelineView,
};
pub use cue::{Anchor, CueError, CueId, CueKind, CueRequest, Payload};
