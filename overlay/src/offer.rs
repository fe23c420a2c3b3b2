//! Drop offers: the terms an `offer-open` cue carries and the signed offer
//! token the overlay adds to it once the cue is placed.
//!
//! Token = `base64url(claims JSON) "." base64url(HMAC-SHA256(key, first part))`,
//! no padding. Its not-before is the moment a viewer at nominal latency sees
//! the offer (cue PDT + hold-back), so a bot reading the live edge holds a token
//! that checkout refuses until honest viewers have seen the offer too; it
//! expires when the offer closes (cue PDT + duration). Checkout verifies it
//! offline with the shared key ([`verify`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use packager::units::WallTime;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::cue::{CueError, Payload};

type HmacSha256 = Hmac<Sha256>;

/// Shortest accepted signing key: HMAC-SHA256's block-size guidance (RFC 2104
/// §3: "less than L bytes is strongly discouraged", L = 32).
pub const MIN_KEY_BYTES: usize = 32;
/// Products one offer may name (keeps tokens short enough for a header).
pub const MAX_OFFER_PRODUCTS: usize = 32;
const MAX_REF_LEN: usize = 64;
/// Room an `offer-open` payload keeps for the `"token"` the book adds, so the
/// carried payload still fits `MAX_PAYLOAD_BYTES`: the longest claims (32 ids of
/// 64 bytes) are ~2.3 KB of JSON, ~3.1 KB as a token.
pub const TOKEN_ROOM: usize = 4096;

/// The offer-signing key, shared with the order system's checkout.
#[derive(Clone)]
pub struct OfferKey(Vec<u8>);

impl OfferKey {
    /// # Errors
    /// [`TokenError::WeakKey`] if shorter than [`MIN_KEY_BYTES`].
    pub fn new(key: impl Into<Vec<u8>>) -> Result<Self, TokenError> {
        let key = key.into();
        if key.len() < MIN_KEY_BYTES {
            return Err(TokenError::WeakKey);
        }
        Ok(Self(key))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("HMAC takes any key"))
    }
}

impl std::fmt::Debug for OfferKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OfferKey(<redacted>)")
    }
}

/// What an `offer-open` payload must name: `offer_id` (string) and
/// `product_ids` (array of strings); the cue must have a `duration_ms`, which
/// closes the offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferTerms {
    pub offer_id: String,
    pub product_ids: Vec<String>,
    pub duration_ms: u32,
}

impl OfferTerms {
    /// # Errors
    /// [`CueError::Offer`] naming the missing or malformed field.
    pub fn from_payload(payload: &Payload, duration_ms: Option<u32>) -> Result<Self, CueError> {
        let short = |s: &str| !s.is_empty() && s.len() <= MAX_REF_LEN;
        if payload.serialized_len() + TOKEN_ROOM > crate::cue::MAX_PAYLOAD_BYTES {
            return Err(CueError::Offer(
                "payload must leave 4096 bytes for the offer token",
            ));
        }
        let v = payload.value();
        if v.get("token").is_some() {
            return Err(CueError::Offer("payload.token is written by the overlay"));
        }
        let offer_id = v
            .get("offer_id")
            .and_then(|o| o.as_str())
            .filter(|s| short(s))
            .ok_or(CueError::Offer(
                "payload.offer_id must be a string of 1..=64 bytes",
            ))?;
        let products = v
            .get("product_ids")
            .and_then(|p| p.as_array())
            .filter(|p| !p.is_empty() && p.len() <= MAX_OFFER_PRODUCTS)
            .ok_or(CueError::Offer(
                "payload.product_ids must list 1..=32 products",
            ))?;
        let product_ids = products
            .iter()
            .map(|p| p.as_str().filter(|s| short(s)).map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(CueError::Offer(
                "payload.product_ids must be strings of 1..=64 bytes",
            ))?;
        let duration_ms = duration_ms.ok_or(CueError::Offer(
            "duration_ms is required (it closes the offer)",
        ))?;
        Ok(Self {
            offer_id: offer_id.to_owned(),
            product_ids,
            duration_ms,
        })
    }
}

/// What a valid token proves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferClaims {
    #[serde(rename = "o")]
    pub offer_id: String,
    #[serde(rename = "p")]
    pub product_ids: Vec<String>,
    /// Not before, milliseconds since the Unix epoch.
    #[serde(rename = "nbf")]
    pub not_before_ms: i64,
    /// Expiry, milliseconds since the Unix epoch (exclusive).
    #[serde(rename = "exp")]
    pub expires_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("signing key shorter than {MIN_KEY_BYTES} bytes")]
    WeakKey,
    #[error("malformed offer token")]
    Malformed,
    #[error("offer token signature does not match")]
    BadSignature,
    #[error("offer token not valid yet")]
    NotYetValid,
    #[error("offer token expired")]
    Expired,
}

/// Signs `claims` into a compact token.
#[must_use]
pub fn mint(key: &OfferKey, claims: &OfferClaims) -> String {
    // Serializing a struct of strings and integers cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let body = URL_SAFE_NO_PAD.encode(json);
    let mut mac = key.mac();
    mac.update(body.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{body}.{sig}")
}

/// Verifies a token offline: signature first (constant time), then the claims,
/// then `now` against `[not_before, expires)`.
///
/// # Errors
/// [`TokenError`] saying which check failed.
pub fn verify(key: &OfferKey, token: &str, now: WallTime) -> Result<OfferClaims, TokenError> {
    let (body, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Malformed)?;
    let mut mac = key.mac();
    mac.update(body.as_bytes());
    // `verify_slice` compares in constant time (it uses `subtle`).
    mac.verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| TokenError::Malformed)?;
    let claims: OfferClaims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    let now_ms = now.as_millis();
    if now_ms < claims.not_before_ms {
        return Err(TokenError::NotYetValid);
    }
    if now_ms >= claims.expires_ms {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn key() -> OfferKey {
        OfferKey::new(*b"0123456789abcdef0123456789abcdef").unwrap()
    }

    fn claims() -> OfferClaims {
        OfferClaims {
            offer_id: "drop-1".into(),
            product_ids: vec!["sku-a".into(), "sku-b".into()],
            not_before_ms: 1_000,
            expires_ms: 31_000,
        }
    }

    #[test]
    fn round_trip_and_window() {
        let t = mint(&key(), &claims());
        assert_eq!(
            verify(&key(), &t, WallTime::from_millis(1_000)),
            Ok(claims())
        );
        assert_eq!(
            verify(&key(), &t, WallTime::from_millis(30_999)),
            Ok(claims())
        );
        assert_eq!(
            verify(&key(), &t, WallTime::from_millis(999)),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(
            verify(&key(), &t, WallTime::from_millis(31_000)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn golden_token() {
        // Pinned so that a checkout in another language can test against it
        // (cross-checked with Python: hmac.new(key, body, sha256), urlsafe base64).
        assert_eq!(
            mint(&key(), &claims()),
            "eyJvIjoiZHJvcC0xIiwicCI6WyJza3UtYSIsInNrdS1iIl0sIm5iZiI6MTAwMCwiZXhwIjozMTAwMH0.\
             CQx-XIjRhhPSvau_QdV10UjOkTEfaDLDwUEDQqpxGck"
        );
    }

    #[test]
    fn tampering_is_detected() {
        let t = mint(&key(), &claims());
        let other = OfferKey::new(vec![7; 32]).unwrap();
        let now = WallTime::from_millis(2_000);
        assert_eq!(verify(&other, &t, now), Err(TokenError::BadSignature));
        let mut forged = claims();
        forged.expires_ms = i64::MAX;
        let (_, sig) = t.split_once('.').unwrap();
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            verify(&key(), &format!("{body}.{sig}"), now),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(&key(), "nodot", now), Err(TokenError::Malformed));
        assert_eq!(verify(&key(), "a.!!", now), Err(TokenError::Malformed));
        assert!(OfferKey::new(vec![0; 31]).is_err());
        assert_eq!(format!("{:?}", key()), "OfferKey(<redacted>)");
    }

    #[test]
    fn terms_from_payload() {
        let p = Payload::new(json!({"offer_id":"o1","product_ids":["a","b"],"title":"x"})).unwrap();
        assert_eq!(
            OfferTerms::from_payload(&p, Some(30_000)),
            Ok(OfferTerms {
                offer_id: "o1".into(),
                product_ids: vec!["a".into(), "b".into()],
                duration_ms: 30_000
            })
        );
        assert!(OfferTerms::from_payload(&p, None).is_err());
        for bad in [
            json!({}),
            json!({"offer_id":"o1"}),
            json!({"offer_id":"","product_ids":["a"]}),
            json!({"offer_id":"o1","product_ids":[]}),
            json!({"offer_id":"o1","product_ids":[1]}),
        ] {
            let p = Payload::new(bad).unwrap();
            assert!(OfferTerms::from_payload(&p, Some(1)).is_err());
        }
    }

    proptest! {
        #[test]
        fn verify_never_panics(token in "\\PC{0,200}") {
            let _ = verify(&key(), &token, WallTime(0));
        }
    }
}
