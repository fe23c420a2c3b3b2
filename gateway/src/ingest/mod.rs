//! Contribution ingest: SRT publishers, directly or bonded over SRTLA.

pub mod srt;
pub mod srtla;
pub mod streamid;
