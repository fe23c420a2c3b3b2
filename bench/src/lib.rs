//! Benchmarks for dropline; see `bench/README.md`.
//!
//! The library holds the pieces the benchmark binaries share: a TS reader that
//! plays publisher, an LL-HLS playlist reader and a CMAF reader that play
//! player, a minimal HTTP/1.1 client and latency summaries.
#![forbid(unsafe_code)]

pub mod fmp4;
pub mod http1;
pub mod impair;
pub mod playlist;
pub mod probe;
pub mod srtla_sender;
pub mod stats;
pub mod ts;
