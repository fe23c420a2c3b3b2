//! Playlist writers: the LL-HLS media playlist of one rendition, the
//! multivariant playlist, and the object names both of them (and the HTTP
//! layer) use.
//!
//! Pure functions of a [`RenditionSnapshot`](crate::rendition::RenditionSnapshot)
//! and options: no clock is read. Every wall-clock value written
//! (`EXT-X-PROGRAM-DATE-TIME`) comes from the snapshot, so the output of a given
//! snapshot is byte-for-byte stable (see `fixtures/golden/playlist/`).
//!
//! Layout: `media.rs` and `multivariant.rs` assemble whole playlists; `tag/` has
//! one module per tag whose attributes or rules need more than one line;
//! `names.rs` owns every URI this crate hands out.

mod decimal;
/// The one decimal-seconds rendering, shared with the overlay's `EXT-X-DATERANGE` DURATION.
pub use decimal::Secs;
pub mod media;
pub mod multivariant;
pub mod names;
mod tag;

#[cfg(test)]
mod delta_tests;
#[cfg(test)]
mod golden_tests;

pub use media::{
    MediaOptionsError, MediaRenderOptions, render_media_playlist, render_media_playlist_delta,
    render_media_playlist_with_metadata, render_media_playlist_with_reports,
};
pub use multivariant::{AudioRendition, Variant, VariantError, render_multivariant};
pub use names::{ObjectName, PLAYLIST_NAME, parse_object_name, part_uri, segment_uri};
pub use tag::rendition_report::RenditionReport;
