//! dropline's plain webhook format, for order systems without an adapter
//! (documented in `overlay/README.md`; samples in `fixtures/webhooks/plain/`).
//! Unknown fields are refused, so personal data cannot ride along unnoticed.
//! Signed like Shopify's ([`verify_hmac_base64`](super::verify_hmac_base64)).

use serde::Deserialize;

use super::{
    AdapterError, EventKind, InventoryLevel, Line, Money, Order, OrderEvent, Refund, Source,
    Version, json, reference, time,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    id: String,
    occurred_at: String,
    #[serde(default)]
    version: i64,
    order: Option<PlainOrder>,
    refund: Option<PlainRefund>,
    inventory: Option<PlainInventory>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainLine {
    product_id: String,
    quantity: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainMoney {
    amount_minor: i64,
    currency: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainOrder {
    id: String,
    lines: Vec<PlainLine>,
    total: Option<PlainMoney>,
    offer_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainRefund {
    id: String,
    order_id: String,
    amount: Option<PlainMoney>,
    #[serde(default)]
    restock: Vec<PlainLine>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainInventory {
    item_id: String,
    location_id: Option<String>,
    available: i64,
}

/// Parses one plain-format delivery: exactly one of `order`, `refund`,
/// `inventory`.
///
/// # Errors
/// [`AdapterError`] for a malformed body.
pub fn parse(body: &[u8]) -> Result<OrderEvent, AdapterError> {
    let b: Body = json(body)?;
    let occurred_at = time(&b.occurred_at, "occurred_at")?;
    let kind = match (b.order, b.refund, b.inventory) {
        (Some(o), None, None) => EventKind::Order(Order {
            order_id: reference(o.id, "order.id")?,
            lines: lines(o.lines)?,
            total: o.total.map(money).transpose()?,
            offer_id: o
                .offer_id
                .map(|id| reference(id, "order.offer_id"))
                .transpose()?,
        }),
        (None, Some(r), None) => EventKind::Refund(Refund {
            order_id: reference(r.order_id, "refund.order_id")?,
            refund_id: reference(r.id, "refund.id")?,
            amount: r.amount.map(money).transpose()?,
            restock: lines(r.restock)?,
        }),
        (None, None, Some(i)) => EventKind::Inventory(InventoryLevel {
            item_id: reference(i.item_id, "inventory.item_id")?,
            location_id: i
                .location_id
                .map(|l| reference(l, "inventory.location_id"))
                .transpose()?,
            available: i.available,
        }),
        _ => {
            return Err(AdapterError::Field(
                "exactly one of order, refund, inventory",
            ));
        }
    };
    Ok(OrderEvent {
        source: Source::Plain,
        webhook_id: reference(b.id, "id")?,
        occurred_at,
        version: Version {
            at_ms: occurred_at.as_millis(),
            seq: b.version,
        },
        kind,
    })
}

fn lines(lines: Vec<PlainLine>) -> Result<Vec<Line>, AdapterError> {
    lines
        .into_iter()
        .map(|l| {
            Ok(Line {
                product_id: reference(l.product_id, "product_id")?,
                quantity: l.quantity,
            })
        })
        .collect()
}

fn money(m: PlainMoney) -> Result<Money, AdapterError> {
    Money::new(m.amount_minor, &m.currency).ok_or(AdapterError::Field("currency"))
}
