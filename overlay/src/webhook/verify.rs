//! Webhook signatures, verified as the platforms sign them.
//!
//! Both forms are HMAC-SHA256 with a shared secret over the raw request body;
//! every digest comparison is constant time (`subtle`), so a forger learns
//! nothing from response timing.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use packager::units::WallTime;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Stripe's default tolerance: "a default tolerance of five minutes between
/// the timestamp and the current time" (Stripe docs, "Check the webhook
/// signatures").
pub const STRIPE_TOLERANCE_SECS: i64 = 300;

/// A webhook signing secret (from config or `DROPLINE_*` env, never code).
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    #[must_use]
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self(secret.into())
    }

    fn digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        // HMAC takes keys of any length.
        let mut mac = HmacSha256::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Why a webhook was refused; the HTTP edge answers 401 (signature) or 400
/// (stale), and nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signature header is malformed")]
    Malformed,
    #[error("signature does not match the body")]
    BadSignature,
    #[error("signature timestamp is outside the tolerance")]
    Stale,
}

/// Shopify style: `X-Shopify-Hmac-Sha256: base64(HMAC-SHA256(secret, raw body))`.
///
/// # Errors
/// [`VerifyError::Malformed`] if the header is not base64 of 32 bytes,
/// [`VerifyError::BadSignature`] if it does not match.
pub fn verify_hmac_base64(
    secret: &WebhookSecret,
    body: &[u8],
    header: &str,
) -> Result<(), VerifyError> {
    let given = STANDARD
        .decode(header.trim())
        .map_err(|_| VerifyError::Malformed)?;
    if given.len() != 32 {
        return Err(VerifyError::Malformed);
    }
    let want = secret.digest(&[body]);
    if bool::from(want.ct_eq(given.as_slice())) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// Stripe style: `Stripe-Signature: t=<unix secs>,v1=<hex>[,v1=<hex>…]` over
/// `"<t>.<raw body>"`. Any `v1` may match (secret rotation sends two); other
/// schemes (`v0`) are ignored. `t` must be within `tolerance_secs` of `now`,
/// either way, so a captured delivery cannot be replayed later. Returns `t`.
///
/// # Errors
/// [`VerifyError`].
pub fn verify_stripe(
    secret: &WebhookSecret,
    body: &[u8],
    header: &str,
    now: WallTime,
    tolerance_secs: i64,
) -> Result<WallTime, VerifyError> {
    let mut t = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let (k, v) = item.trim().split_once('=').ok_or(VerifyError::Malformed)?;
        match k {
            "t" if t.is_none() => {
                let secs: i64 = v.parse().map_err(|_| VerifyError::Malformed)?;
                t = Some((v, secs));
            }
            "t" => return Err(VerifyError::Malformed),
            "v1" => signatures.push(decode_hex32(v).ok_or(VerifyError::Malformed)?),
            _ => {}
        }
    }
    let (t_text, t_secs) = t.ok_or(VerifyError::Malformed)?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed);
    }
    let want = secret.digest(&[t_text.as_bytes(), b".", body]);
    // Fold without short-circuit: the time does not depend on which matched.
    let matched = signatures
        .iter()
        .fold(subtle::Choice::from(0), |acc, s| acc | want.ct_eq(s));
    if !bool::from(matched) {
        return Err(VerifyError::BadSignature);
    }
    let now_secs = now.0.div_euclid(1_000_000);
    if now_secs.abs_diff(t_secs) > tolerance_secs.unsigned_abs() {
        return Err(VerifyError::Stale);
    }
    Ok(WallTime(t_secs.saturating_mul(1_000_000)))
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nibble = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = [0_u8; 32];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let &[hi, lo] = pair else {
            return None;
        };
        *o = (nibble(hi)? << 4) | nibble(lo)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secret() -> WebhookSecret {
        WebhookSecret::new(*b"whsec_test_secret")
    }

    const BODY: &[u8] = br#"{"id":"evt_1"}"#;

    #[test]
    fn hmac_base64_golden() {
        // python3: base64.b64encode(hmac.new(b"whsec_test_secret", body, sha256).digest())
        let header = "OAd3s1qwoH9sXsZdJA3xoOBNYTQFaL3fo6gDcuniS68=";
        assert_eq!(verify_hmac_base64(&secret(), BODY, header), Ok(()));
        assert_eq!(
            verify_hmac_base64(&secret(), b"{\"id\":\"evt_2\"}", header),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify_hmac_base64(&WebhookSecret::new(*b"other"), BODY, header),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify_hmac_base64(&secret(), BODY, "not base64!"),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            verify_hmac_base64(&secret(), BODY, "AAAA"),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn stripe_golden_and_tolerance() {
        // python3: hmac.new(b"whsec_test_secret", b"1795687200." + body, sha256).hexdigest()
        let sig = "8a17dbf5516dddab169f3d7e522a55761a3d453cd5c1ceb4c048ce61660ec658";
        let t = 1_795_687_200;
        let at = |secs: i64| WallTime(secs * 1_000_000);
        let header = format!("t={t},v1={sig}");
        let ok = Ok(at(t));
        assert_eq!(verify_stripe(&secret(), BODY, &header, at(t), 300), ok);
        assert_eq!(
            verify_stripe(&secret(), BODY, &header, at(t + 300), 300),
            ok
        );
        assert_eq!(
            verify_stripe(&secret(), BODY, &header, at(t - 300), 300),
            ok
        );
        assert_eq!(
            verify_stripe(&secret(), BODY, &header, at(t + 301), 300),
            Err(VerifyError::Stale)
        );
        // Rotation: a second v1 and an unknown scheme are fine.
        let rotated = format!("t={t},v0=abc,v1={},v1={sig}", "0".repeat(64));
        assert_eq!(verify_stripe(&secret(), BODY, &rotated, at(t), 300), ok);
        // A replay with a fresh timestamp does not match the old signature.
        let moved = format!("t={},v1={sig}", t + 1000);
        assert_eq!(
            verify_stripe(&secret(), BODY, &moved, at(t + 1000), 300),
            Err(VerifyError::BadSignature)
        );
        for bad in [
            String::new(),
            format!("v1={sig}"),
            format!("t={t}"),
            format!("t=x,v1={sig}"),
            format!("t={t},t={t},v1={sig}"),
            format!("t={t},v1=zz"),
            format!("t={t},v1"),
        ] {
            assert_eq!(
                verify_stripe(&secret(), BODY, &bad, at(t), 300),
                Err(VerifyError::Malformed),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics(header in "\\PC{0,200}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = verify_stripe(&secret(), &body, &header, WallTime(0), 300);
            let _ = verify_hmac_base64(&secret(), &body, &header);
        }
    }
}
