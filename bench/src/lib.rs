//! Benchmarks for dropline; see `bench/README.md`.
//!
//! The library holds the pieces the benchmark binaries share: the gateway
//! process, a generated source, a TS reader and a real-time SRT publisher
//! that play publisher, an LL-HLS playlist reader and a CMAF reader that play
//! player, HTTP clients, `/proc` readings and latency summaries.
#![forbid(unsafe_code)]

pub mod fmp4;
pub mod gateway;
pub mod http1;
pub mod impair;
pub mod load_client;
pub mod playlist;
pub mod probe;
pub mod publish;
pub mod source;
pub mod srtla_link_health;
pub mod srtla_sender;
pub mod stats;
pub mod sys;
pub mod ts;
