//! Order-system sync: webhook verification, adapters from the formats users
//! already have into one [`OrderEvent`], and dedup / out-of-order handling.
//!
//! Privacy by default: adapters deserialize only the fields listed on the
//! types below (ids, quantities, amounts, times). Names, emails, addresses
//! and phone numbers in a webhook are never read into memory that outlives the
//! parse, so nothing kept or stored can leak them.

pub mod plain;
pub mod shopify;
pub mod stripe;
mod sync;
mod verify;

#[cfg(test)]
mod fixture_tests;

use packager::units::WallTime;
use serde::Deserialize;

pub use sync::{OrderSync, Outcome};
pub use verify::{
    STRIPE_TOLERANCE_SECS, VerifyError, WebhookSecret, verify_hmac_base64, verify_stripe,
};

/// Which adapter produced an event (webhook ids are unique per source).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Shopify,
    Stripe,
    Plain,
}

/// Orders updates of one entity: a delivery older than the newest seen is
/// stale. Compared as (`at_ms`, `seq`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// The platform's `updated_at` / event creation time, ms since the epoch.
    pub at_ms: i64,
    /// A tie-breaker the platform provides (a version number, or a cumulative
    /// amount that only grows); 0 if none.
    pub seq: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Money {
    /// In the currency's minor unit (cents), as Stripe counts.
    pub minor: i64,
    /// ISO 4217, upper case.
    pub currency: String,
}

impl Money {
    /// A non-negative amount in a three-letter currency code (any case).
    fn new(minor: i64, currency: &str) -> Option<Self> {
        let currency = currency.to_ascii_uppercase();
        (minor >= 0 && currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()))
            .then_some(Self { minor, currency })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub product_id: String,
    pub quantity: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub order_id: String,
    pub lines: Vec<Line>,
    pub total: Option<Money>,
    /// The drop offer the checkout came from, if the storefront passed it on.
    pub offer_id: Option<String>,
}

/// A refund. `amount` is the refund's amount; a platform that reports the
/// cumulative refunded amount of a charge (Stripe) uses the charge as
/// `refund_id`, so the newest version of it holds the total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    pub order_id: String,
    pub refund_id: String,
    pub amount: Option<Money>,
    /// Units put back into stock.
    pub restock: Vec<Line>,
}

/// An absolute inventory level of one item at one location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryLevel {
    pub item_id: String,
    pub location_id: Option<String>,
    pub available: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Order(Order),
    Refund(Refund),
    Inventory(InventoryLevel),
}

/// One order-system event, whatever format it came in. Holds no PII.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderEvent {
    pub source: Source,
    /// The delivery's id (Shopify `X-Shopify-Webhook-Id`, Stripe `evt_…`, plain `id`).
    pub webhook_id: String,
    pub occurred_at: WallTime,
    pub version: Version,
    pub kind: EventKind,
}

impl OrderEvent {
    /// The entity whose updates `version` orders.
    #[must_use]
    pub fn entity(&self) -> String {
        match &self.kind {
            EventKind::Order(o) => format!("order:{}", o.order_id),
            EventKind::Refund(r) => format!("refund:{}", r.refund_id),
            EventKind::Inventory(i) => format!(
                "inventory:{}@{}",
                i.item_id,
                i.location_id.as_deref().unwrap_or("")
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    /// Not JSON, or a field of the wrong type (serde's message).
    #[error("invalid webhook body: {0}")]
    Invalid(String),
    #[error("`{0}` is missing or malformed")]
    Field(&'static str),
    /// A topic or event type this adapter does not handle: acknowledge, ignore.
    #[error("unhandled event type {0:?}")]
    Ignored(String),
}

fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, AdapterError> {
    serde_json::from_slice(body).map_err(|e| AdapterError::Invalid(e.to_string()))
}

fn time(s: &str, field: &'static str) -> Result<WallTime, AdapterError> {
    crate::rfc3339::parse(s).ok_or(AdapterError::Field(field))
}

/// Longest id kept from a platform (webhook, order, product, …).
const MAX_REF_LEN: usize = 128;

fn reference(s: String, field: &'static str) -> Result<String, AdapterError> {
    if s.is_empty() || s.len() > MAX_REF_LEN || s.chars().any(char::is_control) {
        return Err(AdapterError::Field(field));
    }
    Ok(s)
}

/// An id the platform sends as a JSON number or a string.
#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
enum Id {
    Num(u64),
    Str(String),
}

impl Id {
    fn into_string(self) -> String {
        match self {
            Self::Num(n) => n.to_string(),
            Self::Str(s) => s,
        }
    }
}

/// ISO 4217 minor-unit exponent: the zero- and three-decimal currencies among
/// those commerce platforms settle in; two decimals otherwise.
fn currency_exponent(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// `"199.90"` in `currency` → minor units. Extra decimals must be zeros.
fn parse_decimal(amount: &str, currency: &str) -> Option<Money> {
    let unit = Money::new(0, currency)?;
    let exp = currency_exponent(&unit.currency);
    let (whole, frac) = amount.split_once('.').unwrap_or((amount, ""));
    if whole.is_empty() || whole.len() > 15 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (amount.contains('.') && frac.is_empty()) {
        return None;
    }
    let exp_len = usize::try_from(exp).unwrap_or(2);
    let (kept, extra) = frac.split_at(frac.len().min(exp_len));
    if extra.bytes().any(|b| b != b'0') {
        return None;
    }
    let mut minor: i64 = whole.parse().ok()?;
    let mut kept_digits = kept.bytes();
    for _ in 0..exp {
        let d = kept_digits.next().map_or(0, |b| i64::from(b - b'0'));
        minor = minor.checked_mul(10)?.checked_add(d)?;
    }
    Money::new(minor, &unit.currency)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        let m = |a: &str, c: &str| parse_decimal(a, c).map(|m| (m.minor, m.currency));
        assert_eq!(m("199.90", "usd"), Some((19_990, "USD".into())));
        assert_eq!(m("5", "EUR"), Some((500, "EUR".into())));
        assert_eq!(m("5.5", "EUR"), Some((550, "EUR".into())));
        assert_eq!(m("1200", "JPY"), Some((1200, "JPY".into())));
        assert_eq!(m("1200.00", "JPY"), Some((1200, "JPY".into())));
        assert_eq!(m("1.234", "KWD"), Some((1234, "KWD".into())));
        for (a, c) in [
            ("1.234", "USD"),
            ("-1.00", "USD"),
            ("1.", "USD"),
            (".5", "USD"),
            ("1e3", "USD"),
            ("1.00", "US"),
            ("1.00", "U$D"),
            ("9999999999999999", "USD"),
        ] {
            assert_eq!(m(a, c), None, "{a} {c}");
        }
    }
}
