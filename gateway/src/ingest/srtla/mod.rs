//! SRTLA (SRT link aggregation) ingest: bonded senders spread one SRT
//! session over several links (cellular modems); the receiver merges them
//! into one SRT connection to the gateway's own SRT listener, so stream ids,
//! passphrases and limits apply unchanged.
//!
//! `packet` is the wire format, `receiver` the sans-IO group/link state
//! machine, `reorder` its per-group reorder buffer, `stats` its counters, `io` the UDP shell, `api` the JSON view.
//! Protocol source: `shared/notes/srtla.md`.

pub mod api;
pub mod io;
pub mod packet;
pub mod receiver;
pub mod reorder;
pub mod stats;
