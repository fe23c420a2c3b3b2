//! The cue model: ids, kinds, payloads, anchors, and the cue API body parser.
//!
//! The wire spellings follow `CARRIAGE.md` (the contract shared with the player
//! SDK); the API body is documented in `README.md`.

use std::fmt;

use packager::units::WallTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rfc3339;

/// Largest serialized payload (`CARRIAGE.md`: "serialized <= 16 KiB").
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// Largest cue API body: the payload plus room for the other fields. Checked
/// before parsing, so an oversized body costs no parsing work.
pub const MAX_BODY_BYTES: usize = 2 * MAX_PAYLOAD_BYTES;
/// Longest duration: `event_duration` is a 32-bit count of 90 kHz ticks and
/// 0xFFFFFFFF means "unknown" (ISO/IEC 23009-1 §5.10.3.3.4), so ~13 h.
pub const MAX_DURATION_MS: u32 = (u32::MAX - 1) / 90;
/// Longest cue id (`CARRIAGE.md`: "1..=64 chars [A-Za-z0-9_.-]").
pub const MAX_ID_LEN: usize = 64;

/// Why a cue body (or one of its parts) was refused. Every variant is the
/// client's mistake (a 4xx at the HTTP edge).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CueError {
    #[error("body is {len} bytes, more than {max}")]
    BodyTooLarge { len: usize, max: usize },
    #[error("payload is {len} bytes serialized, more than {max}")]
    PayloadTooLarge { len: usize, max: usize },
    /// Not JSON, a wrong type, an unknown field or kind (serde's message).
    #[error("invalid cue body: {0}")]
    InvalidBody(String),
    #[error("cue id must be 1..=64 characters of [A-Za-z0-9_.-]")]
    InvalidId,
    #[error("`{field}` is not an RFC 3339 date-time")]
    InvalidTime { field: &'static str },
    #[error("duration_ms must be at most {MAX_DURATION_MS}")]
    DurationTooLong,
    #[error("offer-open cue: {0}")]
    Offer(&'static str),
}

/// A cue id: stable, 1..=64 characters of `[A-Za-z0-9_.-]`, never reused
/// within a stream (the [`CueBook`](crate::CueBook) enforces the last part).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CueId(String);

impl CueId {
    /// # Errors
    /// [`CueError::InvalidId`] if empty, too long or with another character.
    pub fn new(id: impl Into<String>) -> Result<Self, CueError> {
        let id = id.into();
        let valid = (1..=MAX_ID_LEN).contains(&id.len())
            && id
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if valid {
            Ok(Self(id))
        } else {
            Err(CueError::InvalidId)
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CueId {
    type Error = CueError;
    fn try_from(s: String) -> Result<Self, CueError> {
        Self::new(s)
    }
}

impl From<CueId> for String {
    fn from(id: CueId) -> Self {
        id.0
    }
}

impl fmt::Display for CueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a cue means to the player (`CARRIAGE.md` kind table).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CueKind {
    OfferOpen,
    OfferClose,
    StockStage,
    ProductCard,
    SoldOut,
    Custom,
}

impl CueKind {
    /// The wire spelling, as in the cue JSON's `kind`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OfferOpen => "offer-open",
            Self::OfferClose => "offer-close",
            Self::StockStage => "stock-stage",
            Self::ProductCard => "product-card",
            Self::SoldOut => "sold-out",
            Self::Custom => "custom",
        }
    }

    /// The `EXT-X-DATERANGE` CLASS (`CARRIAGE.md` §2: `com.dropline.<kind>`).
    #[must_use]
    pub fn class(self) -> String {
        format!("com.dropline.{}", self.as_str())
    }
}

/// A JSON payload whose compact serialization is at most [`MAX_PAYLOAD_BYTES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    value: Value,
    len: usize,
}

impl Payload {
    /// # Errors
    /// [`CueError::PayloadTooLarge`].
    pub fn new(value: Value) -> Result<Self, CueError> {
        let len = value.to_string().len();
        if len > MAX_PAYLOAD_BYTES {
            return Err(CueError::PayloadTooLarge {
                len,
                max: MAX_PAYLOAD_BYTES,
            });
        }
        Ok(Self { value, len })
    }

    #[must_use]
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Length of the compact JSON serialization.
    #[must_use]
    pub fn serialized_len(&self) -> usize {
        self.len
    }
}

impl Default for Payload {
    fn default() -> Self {
        Self {
            value: Value::Object(serde_json::Map::new()),
            len: 2,
        }
    }
}

/// Where on the stream a cue goes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// The next frame the timeline receives.
    Now,
    /// The media time whose `PROGRAM-DATE-TIME` is this instant.
    ProgramDateTime(WallTime),
    /// The next keyframe (a segment start) the timeline receives.
    NextKeyframe,
    /// The next frame received once the gateway's wall clock reaches this instant.
    WallClock(WallTime),
}

/// A parsed cue API body: what the client asked for, before placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CueRequest {
    /// `None`: the book assigns one.
    pub id: Option<CueId>,
    pub kind: CueKind,
    pub payload: Payload,
    pub anchor: Anchor,
    pub duration_ms: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    id: Option<String>,
    kind: CueKind,
    payload: Option<Value>,
    anchor: Option<WireAnchor>,
    duration_ms: Option<u32>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
enum WireAnchor {
    // Struct variants, not unit ones: serde ignores extra fields of a unit
    // variant even under deny_unknown_fields.
    Now {},
    ProgramDateTime { at: String },
    NextKeyframe {},
    WallClock { at: String },
}

impl CueRequest {
    /// Parses a cue API body (see `README.md`): size first, then JSON, then the
    /// rules serde cannot express.
    ///
    /// # Errors
    /// A [`CueError`] naming the first problem found.
    pub fn parse(body: &[u8]) -> Result<Self, CueError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(CueError::BodyTooLarge {
                len: body.len(),
                max: MAX_BODY_BYTES,
            });
        }
        let body: Body =
            serde_json::from_slice(body).map_err(|e| CueError::InvalidBody(e.to_string()))?;
        let time =
            |at: &str| rfc3339::parse(at).ok_or(CueError::InvalidTime { field: "anchor.at" });
        let anchor = match body.anchor.unwrap_or(WireAnchor::Now {}) {
            WireAnchor::Now {} => Anchor::Now,
            WireAnchor::NextKeyframe {} => Anchor::NextKeyframe,
            WireAnchor::ProgramDateTime { at } => Anchor::ProgramDateTime(time(&at)?),
            WireAnchor::WallClock { at } => Anchor::WallClock(time(&at)?),
        };
        if body.duration_ms.is_some_and(|d| d > MAX_DURATION_MS) {
            return Err(CueError::DurationTooLong);
        }
        let payload = body
            .payload
            .map_or_else(|| Ok(Payload::default()), Payload::new)?;
        let request = Self {
            id: body.id.map(CueId::new).transpose()?,
            kind: body.kind,
            payload,
            anchor,
            duration_ms: body.duration_ms,
        };
        if request.kind == CueKind::OfferOpen {
            crate::offer::OfferTerms::from_payload(&request.payload, request.duration_ms)?;
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids() {
        for ok in ["a", "offer-1.A_b", &"x".repeat(64)] {
            assert!(CueId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "é", "a/b", "a\"", &"x".repeat(65)] {
            assert_eq!(CueId::new(bad), Err(CueError::InvalidId), "{bad}");
        }
    }

    #[test]
    fn kinds_use_the_contract_spelling() {
        for k in [
            CueKind::OfferOpen,
            CueKind::OfferClose,
            CueKind::StockStage,
            CueKind::ProductCard,
            CueKind::SoldOut,
            CueKind::Custom,
        ] {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        assert_eq!(CueKind::SoldOut.class(), "com.dropline.sold-out");
    }

    #[test]
    fn parses_every_anchor() {
        let parse = |s: &str| CueRequest::parse(s.as_bytes());
        let r = parse(r#"{"kind":"product-card","payload":{"sku":"A1"}}"#).unwrap();
        assert_eq!(r.anchor, Anchor::Now);
        assert_eq!(r.id, None);
        let r = parse(
            r#"{"id":"c1","kind":"custom","anchor":{"type":"program-date-time","at":"2026-11-26T10:03:17.123Z"},"duration_ms":500}"#,
        )
        .unwrap();
        assert_eq!(
            r.anchor,
            Anchor::ProgramDateTime(rfc3339::parse("2026-11-26T10:03:17.123Z").unwrap())
        );
        assert_eq!(r.payload, Payload::default());
        assert_eq!(r.duration_ms, Some(500));
        let r = parse(r#"{"kind":"custom","anchor":{"type":"next-keyframe"}}"#).unwrap();
        assert_eq!(r.anchor, Anchor::NextKeyframe);
        let r = parse(
            r#"{"kind":"custom","anchor":{"type":"wall-clock","at":"2026-11-26T10:03:17Z"}}"#,
        )
        .unwrap();
        assert!(matches!(r.anchor, Anchor::WallClock(_)));
    }

    #[test]
    fn refuses_bad_bodies() {
        let err = |s: &str| CueRequest::parse(s.as_bytes()).unwrap_err();
        assert!(matches!(err(""), CueError::InvalidBody(_)));
        assert!(matches!(err("{}"), CueError::InvalidBody(_)));
        assert!(matches!(
            err(r#"{"kind":"nope"}"#),
            CueError::InvalidBody(_)
        ));
        assert!(matches!(
            err(r#"{"kind":"custom","extra":1}"#),
            CueError::InvalidBody(_)
        ));
        assert!(matches!(
            err(r#"{"kind":"custom","anchor":{"type":"now","at":"x"}}"#),
            CueError::InvalidBody(_)
        ));
        assert_eq!(err(r#"{"kind":"custom","id":"a b"}"#), CueError::InvalidId);
        assert_eq!(
            err(r#"{"kind":"custom","anchor":{"type":"wall-clock","at":"tomorrow"}}"#),
            CueError::InvalidTime { field: "anchor.at" }
        );
        assert_eq!(
            err(r#"{"kind":"custom","duration_ms":4294967295}"#),
            CueError::DurationTooLong
        );
        assert!(matches!(
            err(r#"{"kind":"custom","duration_ms":-1}"#),
            CueError::InvalidBody(_)
        ));
    }

    #[test]
    fn payload_limit_is_on_the_serialized_form() {
        // {"s":"…"} is 8 bytes of framing.
        let at_limit = format!(
            r#"{{"kind":"custom","payload":{{"s":"{}"}}}}"#,
            "x".repeat(MAX_PAYLOAD_BYTES - 8)
        );
        assert!(CueRequest::parse(at_limit.as_bytes()).is_ok());
        let over = format!(
            r#"{{"kind":"custom","payload":{{"s":"{}"}}}}"#,
            "x".repeat(MAX_PAYLOAD_BYTES - 7)
        );
        assert_eq!(
            CueRequest::parse(over.as_bytes()),
            Err(CueError::PayloadTooLarge {
                len: MAX_PAYLOAD_BYTES + 1,
                max: MAX_PAYLOAD_BYTES
            })
        );
        let huge = vec![b' '; MAX_BODY_BYTES + 1];
        assert!(matches!(
            CueRequest::parse(&huge),
            Err(CueError::BodyTooLarge { .. })
        ));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!(
            r#"{{"kind":"custom","payload":{}1{}}}"#,
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert!(matches!(
            CueRequest::parse(deep.as_bytes()),
            Err(CueError::InvalidBody(_))
        ));
    }

    proptest! {
        #[test]
        fn parse_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = CueRequest::parse(&body);
        }
    }
}
