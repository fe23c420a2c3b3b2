//! Stripe-style events: `{id, type, created, data: {object}}`, signed with
//! [`verify_stripe`](super::verify_stripe) over `Stripe-Signature`.
//!
//! A Checkout Session event does not list its line items, so the storefront
//! puts them in the session's metadata: `dropline_lines` =
//! `"<product id>:<quantity>,…"`, and the offer in `dropline_offer`. The order
//! id is the PaymentIntent, which `charge.refunded` names too.

use std::collections::HashMap;

use serde::Deserialize;

use super::{
    AdapterError, EventKind, Line, Money, Order, OrderEvent, Refund, Source, Version, json,
    reference,
};
use packager::units::WallTime;

pub const CHECKOUT_SESSION_COMPLETED: &str = "checkout.session.completed";
pub const CHARGE_REFUNDED: &str = "charge.refunded";
pub const LINES_METADATA: &str = "dropline_lines";
pub const OFFER_METADATA: &str = "dropline_offer";
/// Most lines `dropline_lines` may list.
const MAX_LINES: usize = 100;

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
}

#[derive(Deserialize)]
struct Event<T> {
    data: Data<T>,
}

#[derive(Deserialize)]
struct Data<T> {
    object: T,
}

#[derive(Deserialize)]
struct Session {
    id: String,
    payment_intent: Option<String>,
    payment_status: String,
    amount_total: Option<i64>,
    currency: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

#[derive(Deserialize)]
struct Charge {
    id: String,
    payment_intent: Option<String>,
    amount_refunded: i64,
    currency: String,
}

/// Parses one Stripe event.
///
/// # Errors
/// [`AdapterError::Ignored`] for other event types and unpaid sessions;
/// otherwise a malformed body.
pub fn parse(body: &[u8]) -> Result<OrderEvent, AdapterError> {
    let env: Envelope = json(body)?;
    let webhook_id = reference(env.id, "id")?;
    // `created` is in seconds; keep it far from overflow when scaled.
    if !(0..=i64::from(u32::MAX) * 4).contains(&env.created) {
        return Err(AdapterError::Field("created"));
    }
    let created = WallTime(env.created * 1_000_000);
    let (kind, seq) = match env.kind.as_str() {
        CHECKOUT_SESSION_COMPLETED => {
            let s = json::<Event<Session>>(body)?.data.object;
            // "unpaid": an asynchronous payment still pending; the order comes
            // with checkout.session.async_payment_succeeded, not handled here.
            if !matches!(s.payment_status.as_str(), "paid" | "no_payment_required") {
                return Err(AdapterError::Ignored("unpaid checkout session".to_owned()));
            }
            let total = match (s.amount_total, s.currency) {
                (Some(minor), Some(c)) => Some(money(minor, &c)?),
                _ => None,
            };
            let lines = s
                .metadata
                .get(LINES_METADATA)
                .map_or(Ok(Vec::new()), |l| parse_lines(l))?;
            let offer_id = s
                .metadata
                .get(OFFER_METADATA)
                .map(|o| reference(o.clone(), "metadata.dropline_offer"))
                .transpose()?;
            let order_id = reference(s.payment_intent.unwrap_or(s.id), "payment_intent")?;
            let order = Order {
                order_id,
                lines,
                total,
                offer_id,
            };
            (EventKind::Order(order), 0)
        }
        CHARGE_REFUNDED => {
            let c = json::<Event<Charge>>(body)?.data.object;
            if c.amount_refunded < 0 {
                return Err(AdapterError::Field("amount_refunded"));
            }
            let refund_id = reference(c.id, "id")?;
            let refund = Refund {
                order_id: reference(
                    c.payment_intent.unwrap_or_else(|| refund_id.clone()),
                    "payment_intent",
                )?,
                refund_id,
                amount: Some(money(c.amount_refunded, &c.currency)?),
                restock: Vec::new(),
            };
            // amount_refunded is cumulative and only grows: it orders two
            // refunds of one charge made within the same second.
            (EventKind::Refund(refund), c.amount_refunded)
        }
        other => return Err(AdapterError::Ignored(other.chars().take(64).collect())),
    };
    Ok(OrderEvent {
        source: Source::Stripe,
        webhook_id,
        occurred_at: created,
        version: Version {
            at_ms: created.as_millis(),
            seq,
        },
        kind,
    })
}

fn money(minor: i64, currency: &str) -> Result<Money, AdapterError> {
    Money::new(minor, currency).ok_or(AdapterError::Field("currency"))
}

/// `"tee:2,cap:1"` → lines.
fn parse_lines(s: &str) -> Result<Vec<Line>, AdapterError> {
    let bad = AdapterError::Field("metadata.dropline_lines");
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<&str> = s.split(',').collect();
    if items.len() > MAX_LINES {
        return Err(bad);
    }
    items
        .into_iter()
        .map(|item| {
            let (id, qty) = item.trim().rsplit_once(':').ok_or_else(|| bad.clone())?;
            Ok(Line {
                product_id: reference(id.to_owned(), "metadata.dropline_lines")?,
                quantity: qty.parse().map_err(|_| bad.clone())?,
            })
        })
        .collect()
}
