//! dropline gateway: the IO shells around the pure `packager` crate.
#![forbid(unsafe_code)]

pub mod config;
pub mod http;
pub mod ingest;
pub mod media;
pub mod overlay;
pub mod stream;
