//! One module per playlist tag that carries attributes or rules. Each type
//! renders one tag line, without its line terminator; `media.rs` and
//! `multivariant.rs` decide which tags appear and in which order.
//!
//! Tags without attributes or rules of their own (`#EXTM3U`,
//! `#EXT-X-TARGETDURATION`, `#EXT-X-MEDIA-SEQUENCE`, `#EXT-X-ENDLIST`) are
//! written where they are placed.

pub(crate) mod discontinuity;
pub(crate) mod extinf;
pub(crate) mod map;
pub(crate) mod media_rendition;
pub(crate) mod part;
pub(crate) mod part_inf;
pub(crate) mod preload_hint;
pub(crate) mod program_date_time;
pub(crate) mod rendition_report;
pub(crate) mod server_control;
pub(crate) mod skip;
pub(crate) mod stream_inf;
pub(crate) mod version;
