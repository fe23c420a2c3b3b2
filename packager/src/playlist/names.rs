//! The names of a rendition's objects, relative to its media playlist.
//!
//! One place decides them: the playlist writer uses [`segment_uri`] and
//! [`part_uri`], and the HTTP layer maps a request path back with
//! [`parse_object_name`], so the two can never disagree. Names are canonical:
//! each object has exactly one name (no leading zeros, no sign), which keeps
//! caches keyed on the URI from splitting one object into several entries.

#![deny(clippy::indexing_slicing)]

use std::fmt;

use crate::units::{InitId, Msn, PartSeq};

/// The media initialization section (`EXT-X-MAP:URI`).
/// Init segments are versioned (`init{n}.mp4`): a new publisher may bring new
/// codec parameters, and a cached old init must never meet new segments.
const INIT_PREFIX: &str = "init";
const INIT_SUFFIX: &str = ".mp4";

/// The media playlist of a rendition.
pub const PLAYLIST_NAME: &str = "playlist.m3u8";

const SEGMENT_PREFIX: &str = "seg";
const PART_PREFIX: &str = "part";
const MEDIA_SUFFIX: &str = ".m4s";

/// The URI of a complete segment: `seg{msn}.m4s`.
#[must_use]
pub fn segment_uri(msn: Msn) -> String {
    ObjectName::Segment(msn).to_string()
}

/// The URI of a partial segment: `part{seq}.m4s`.
///
/// Parts are named by their stream-wide [`PartSeq`], not by (MSN, index), so the
/// URI in `EXT-X-PRELOAD-HINT` is right whether or not the hinted part turns out
/// to open a new segment (rfc8216bis §4.4.5.3: the hinted URI "MUST match the URI
/// that will be subsequently added to the Playlist as a non-hinted resource").
#[must_use]
pub fn part_uri(seq: PartSeq) -> String {
    ObjectName::Part(seq).to_string()
}

/// Every object a rendition serves, by name.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ObjectName {
    /// `init{n}.mp4`, the n-th init segment of the rendition.
    Init(InitId),
    /// `seg{msn}.m4s`.
    Segment(Msn),
    /// `part{seq}.m4s`.
    Part(PartSeq),
    /// [`PLAYLIST_NAME`].
    Playlist,
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Init(id) => write!(f, "{INIT_PREFIX}{id}{INIT_SUFFIX}"),
            Self::Playlist => f.write_str(PLAYLIST_NAME),
            Self::Segment(msn) => write!(f, "{SEGMENT_PREFIX}{msn}{MEDIA_SUFFIX}"),
            Self::Part(seq) => write!(f, "{PART_PREFIX}{seq}{MEDIA_SUFFIX}"),
        }
    }
}

/// Maps the last path segment of a request (already percent-decoded, without
/// query) to the object it names.
///
/// Only canonical names are accepted: `seg7.m4s` but not `seg07.m4s`,
/// `seg+7.m4s`, `seg7.m4s.bak`, `SEG7.m4s` or a number beyond `u64`. For every
/// `Some(o)` returned, `o.to_string()` is the input again.
#[must_use]
pub fn parse_object_name(name: &str) -> Option<ObjectName> {
    if name == PLAYLIST_NAME {
        return Some(ObjectName::Playlist);
    }
    if let Some(digits) = name
        .strip_prefix(INIT_PREFIX)
        .and_then(|n| n.strip_suffix(INIT_SUFFIX))
    {
        let n = canonical_u64(digits)?;
        return u32::try_from(n).ok().map(|n| ObjectName::Init(InitId(n)));
    }
    let numbered = name.strip_suffix(MEDIA_SUFFIX)?;
    if let Some(digits) = numbered.strip_prefix(SEGMENT_PREFIX) {
        return canonical_u64(digits).map(|n| ObjectName::Segment(Msn(n)));
    }
    if let Some(digits) = numbered.strip_prefix(PART_PREFIX) {
        return canonical_u64(digits).map(|n| ObjectName::Part(PartSeq(n)));
    }
    None
}

/// A decimal `u64` in its one canonical spelling: ASCII digits only, no sign,
/// no leading zero unless the number is zero.
fn canonical_u64(digits: &str) -> Option<u64> {
    let bytes = digits.as_bytes();
    match bytes {
        [] => None,
        [b'0'] => Some(0),
        [b'0', ..] => None,
        _ => bytes.iter().try_fold(0_u64, |n, &b| {
            let d = if b.is_ascii_digit() {
                b - b'0'
            } else {
                return None;
            };
            n.checked_mul(10)?.checked_add(u64::from(d))
        }),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_the_names_we_write() {
        let table = [
            ("init0.mp4", Some(ObjectName::Init(InitId(0)))),
            ("init12.mp4", Some(ObjectName::Init(InitId(12)))),
            ("init.mp4", None),
            ("init01.mp4", None),
            ("init4294967296.mp4", None),
            ("playlist.m3u8", Some(ObjectName::Playlist)),
            ("seg0.m4s", Some(ObjectName::Segment(Msn(0)))),
            ("seg42.m4s", Some(ObjectName::Segment(Msn(42)))),
            (
                "seg18446744073709551615.m4s",
                Some(ObjectName::Segment(Msn(u64::MAX))),
            ),
            ("part0.m4s", Some(ObjectName::Part(PartSeq(0)))),
            ("part1234.m4s", Some(ObjectName::Part(PartSeq(1234)))),
        ];
        for (name, want) in table {
            assert_eq!(parse_object_name(name), want, "{name}");
        }
    }

    #[test]
    fn rejects_non_canonical_and_foreign_names() {
        let table = [
            "",
            "seg.m4s",
            "seg00.m4s",
            "seg01.m4s",
            "seg+1.m4s",
            "seg-1.m4s",
            "seg 1.m4s",
            "seg1 .m4s",
            "seg1.m4s ",
            "seg1.m4s.bak",
            "seg1.M4S",
            "SEG1.m4s",
            "seg1.mp4",
            "seg18446744073709551616.m4s",
            "seg99999999999999999999.m4s",
            "part.m4s",
            "part007.m4s",
            "part1e3.m4s",
            "part\u{0661}.m4s",
            "parts1.m4s",
            "init.mp4x",
            "Init.mp4",
            "init.m4s",
            "playlist.m3u",
            "playlist.m3u8?_HLS_msn=1",
            "../seg1.m4s",
            "seg1.m4s/",
            "m4s",
        ];
        for name in table {
            assert_eq!(parse_object_name(name), None, "{name:?}");
        }
    }

    #[test]
    fn uri_helpers_match_display() {
        assert_eq!(segment_uri(Msn(7)), "seg7.m4s");
        assert_eq!(part_uri(PartSeq(31)), "part31.m4s");
        assert_eq!(ObjectName::Init(InitId(3)).to_string(), "init3.mp4");
        assert_eq!(ObjectName::Playlist.to_string(), PLAYLIST_NAME);
    }

    fn any_object() -> impl Strategy<Value = ObjectName> {
        prop_oneof![
            any::<u32>().prop_map(|n| ObjectName::Init(InitId(n))),
            Just(ObjectName::Playlist),
            any::<u64>().prop_map(|n| ObjectName::Segment(Msn(n))),
            any::<u64>().prop_map(|n| ObjectName::Part(PartSeq(n))),
        ]
    }

    proptest! {
        #[test]
        fn every_name_round_trips(o in any_object()) {
            prop_assert_eq!(parse_object_name(&o.to_string()), Some(o));
        }

        #[test]
        fn whatever_parses_is_canonical(s in "(seg|part|init|playlist)?[-+0-9a-z.]{0,24}") {
            if let Some(o) = parse_object_name(&s) {
                prop_assert_eq!(o.to_string(), s);
            }
        }
    }
}
