//! Contribution ingest: SRT publishers.

pub mod srt;
pub mod streamid;
