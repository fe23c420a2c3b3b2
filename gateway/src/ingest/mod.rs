//! Contribution ingest: SRT publishers.

pub mod srt;
pub mod stats;
pub mod streamid;
