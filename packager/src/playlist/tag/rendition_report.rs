//! `EXT-X-RENDITION-REPORT` (rfc8216bis §4.4.5.4).

use std::fmt;

use crate::playlist::names::PLAYLIST_NAME;
use crate::rendition::RenditionSnapshot;
use crate::units::{Msn, PartIndex};

/// Where another rendition of the same stream stands, for a client about to
/// switch to it. rfc8216bis Appendix B.1 (server configuration profile for
/// Low-Latency HLS): "Rendition Reports for each rendition in the Multivariant
/// Playlist" in every media playlist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenditionReport {
    /// The rendition's name: its playlist is `../<name>/playlist.m3u8`.
    pub rendition: String,
    /// rfc8216bis §4.4.5.4 (LAST-MSN): "the Media Sequence Number of the last
    /// Media Segment currently in the specified Rendition. If the Rendition
    /// contains Partial Segments then this value is the Media Sequence Number of
    /// the last Partial Segment."
    pub last_msn: Msn,
    /// §4.4.5.4 (LAST-PART): "the Part Index of the last Partial Segment
    /// currently in the specified Rendition whose Media Sequence Number is
    /// equal to the LAST-MSN attribute value. This attribute is REQUIRED if the
    /// Rendition contains a Partial Segment."
    pub last_part: Option<PartIndex>,
}

impl RenditionReport {
    /// The report on `snapshot`, the rendition named `rendition`; `None` while
    /// it has no segment or part yet.
    #[must_use]
    pub fn of(rendition: &str, snapshot: &RenditionSnapshot) -> Option<Self> {
        let (last_msn, last_part) = match snapshot.last_part() {
            Some((msn, index)) => (msn, Some(index)),
            None => (snapshot.segments.last()?.msn, None),
        };
        Some(Self {
            rendition: rendition.to_owned(),
            last_msn,
            last_part,
        })
    }

    /// Usable as a path segment and inside a quoted-string.
    pub(crate) fn is_valid(&self) -> bool {
        !self.rendition.is_empty()
            && self
                .rendition
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }
}

/// `#EXT-X-RENDITION-REPORT:URI="../<name>/playlist.m3u8",LAST-MSN=<n>[,LAST-PART=<i>]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RenditionReportTag<'a>(pub(crate) &'a RenditionReport);

impl fmt::Display for RenditionReportTag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        // §4.4.5.4 (URI): "It MUST be relative to the URI of the Media Playlist
        // containing the EXT-X-RENDITION-REPORT tag." Renditions are siblings.
        write!(
            f,
            "#EXT-X-RENDITION-REPORT:URI=\"../{}/{PLAYLIST_NAME}\",LAST-MSN={}",
            r.rendition, r.last_msn
        )?;
        if let Some(p) = r.last_part {
            write!(f, ",LAST-PART={p}")?;
        }
        Ok(())
    }
}
