//! Live streams: one task owns each stream's packager state and publishes
//! immutable snapshots through a `watch` channel; HTTP handlers only read them.

pub mod hub;
mod publishers;
pub mod registry;
pub mod task;
pub mod uplink;

use std::sync::Arc;

use packager::rendition::RenditionSnapshot;
use packager::units::WallTime;

/// What the multivariant playlist says about a rendition (rfc8216bis §4.4.6.2).
#[derive(Clone, Debug, PartialEq)]
pub struct VariantInfo {
    /// RFC 6381 codec strings, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: String,
    /// Peak segment bit rate, bits per second.
    pub bandwidth: u64,
    /// Average segment bit rate, bits per second.
    pub average_bandwidth: u64,
    pub resolution: Option<(u16, u16)>,
    pub frame_rate: Option<f64>,
}

/// One published state of a stream.
#[derive(Clone, Debug)]
pub struct StreamSnapshot {
    pub name: String,
    /// When this stream started: tells it apart from earlier and later
    /// streams of the same name, which may reuse object names.
    pub incarnation: WallTime,
    /// The muxed audio+video rendition, once its first part is cut.
    pub main: Option<Arc<RenditionSnapshot>>,
    pub variant: Option<VariantInfo>,
    /// The stream is gone: blocked requests must answer now.
    pub closed: bool,
}

/// Stream names are path segments and metric labels: keep them plain.
#[must_use]
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
