//! dropline's LL-HLS packager: CMAF boxes, the part/segment timeline, the media
//! playlist writer and the blocking-request decision.
//!
//! Pure: no IO, no clock, no async runtime. Inputs are samples and times; outputs
//! are bytes and decisions (see `../shared/notes/style.md`, convention 1).
#![forbid(unsafe_code)]

mod audio_cutter;
pub mod blocking;
pub mod cmaf;
pub mod directives;
pub mod pacer;
pub mod playlist;
pub mod program_date_time;
pub mod rendition;
pub mod sample;
pub mod segmenter;
pub mod units;
