//! Benchmarks for dropline; see `bench/README.md`.
//!
//! The library holds the pieces the benchmark binaries share: the gateway
//! process, a generated source, a TS reader and a real-time SRT publisher
//! that play publisher, an LL-HLS playlist reader and a CMAF reader that play
//! player, HTTP clients, `/proc` readings and latency summaries.
#![forbid(unsafe_code)]

pub mod cli;
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

/// Runs a benchmark's `main` future on a two-worker tokio runtime.
///
/// # Errors
/// The runtime cannot start, or the future's own error.
pub fn run_on_two_workers<F>(main: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(main)
}
