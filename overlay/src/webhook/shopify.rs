//! Shopify-style webhooks: the topic and delivery id come in headers
//! (`X-Shopify-Topic`, `X-Shopify-Webhook-Id`), the resource is the body,
//! signed with [`verify_hmac_base64`](super::verify_hmac_base64) over
//! `X-Shopify-Hmac-Sha256`.

use serde::Deserialize;

use super::{
    AdapterError, EventKind, Id, InventoryLevel, Line, Money, Order, OrderEvent, Refund, Source,
    Version, json, parse_decimal, reference, time,
};

pub const ORDERS_CREATE: &str = "orders/create";
pub const REFUNDS_CREATE: &str = "refunds/create";
pub const INVENTORY_LEVELS_UPDATE: &str = "inventory_levels/update";
/// The order note attribute a storefront sets to the drop offer id.
pub const OFFER_ATTRIBUTE: &str = "dropline_offer";

#[derive(Deserialize)]
struct ShopifyOrder {
    id: Id,
    created_at: String,
    updated_at: Option<String>,
    currency: Option<String>,
    total_price: Option<String>,
    #[serde(default)]
    line_items: Vec<LineItem>,
    #[serde(default)]
    note_attributes: Vec<NoteAttribute>,
}

#[derive(Deserialize)]
struct LineItem {
    product_id: Option<Id>,
    quantity: u32,
}

#[derive(Deserialize)]
struct NoteAttribute {
    name: String,
    value: Option<String>,
}

#[derive(Deserialize)]
struct ShopifyRefund {
    id: Id,
    order_id: Id,
    created_at: String,
    #[serde(default)]
    refund_line_items: Vec<RefundLineItem>,
    #[serde(default)]
    transactions: Vec<Transaction>,
}

#[derive(Deserialize)]
struct RefundLineItem {
    quantity: u32,
    restock_type: Option<String>,
    line_item: Option<LineItem>,
}

#[derive(Deserialize)]
struct Transaction {
    kind: String,
    status: Option<String>,
    amount: String,
    currency: String,
}

#[derive(Deserialize)]
struct ShopifyInventoryLevel {
    inventory_item_id: Id,
    location_id: Option<Id>,
    available: Option<i64>,
    updated_at: String,
}

/// Parses one delivery of `topic`.
///
/// # Errors
/// [`AdapterError::Ignored`] for another topic; otherwise a malformed body.
pub fn parse(topic: &str, webhook_id: &str, body: &[u8]) -> Result<OrderEvent, AdapterError> {
    let webhook_id = reference(webhook_id.to_owned(), "X-Shopify-Webhook-Id")?;
    let (occurred_at, kind) = match topic {
        ORDERS_CREATE => {
            let o: ShopifyOrder = json(body)?;
            let created = time(&o.created_at, "created_at")?;
            let updated = o
                .updated_at
                .as_deref()
                .map_or(Ok(created), |u| time(u, "updated_at"))?;
            let total = match (o.total_price, o.currency) {
                (Some(p), Some(c)) => {
                    Some(parse_decimal(&p, &c).ok_or(AdapterError::Field("total_price"))?)
                }
                _ => None,
            };
            let order = Order {
                order_id: reference(o.id.into_string(), "id")?,
                lines: lines(o.line_items.into_iter().map(|l| (l.product_id, l.quantity)))?,
                total,
                offer_id: o
                    .note_attributes
                    .into_iter()
                    .find(|a| a.name == OFFER_ATTRIBUTE)
                    .and_then(|a| a.value)
                    .map(|v| reference(v, "note_attributes"))
                    .transpose()?,
            };
            (created, (EventKind::Order(order), updated))
        }
        REFUNDS_CREATE => {
            let r: ShopifyRefund = json(body)?;
            let created = time(&r.created_at, "created_at")?;
            // "return" (fulfilled items back), "cancel" (unfulfilled items) and the
            // deprecated "legacy_restock" put units back; "no_restock" does not.
            let restocked = r.refund_line_items.into_iter().filter_map(|l| {
                let back = matches!(
                    l.restock_type.as_deref(),
                    Some("return" | "cancel" | "legacy_restock")
                );
                back.then(|| (l.line_item.and_then(|i| i.product_id), l.quantity))
            });
            let refund = Refund {
                order_id: reference(r.order_id.into_string(), "order_id")?,
                refund_id: reference(r.id.into_string(), "id")?,
                amount: refunded(&r.transactions)?,
                restock: lines(restocked)?,
            };
            (created, (EventKind::Refund(refund), created))
        }
        INVENTORY_LEVELS_UPDATE => {
            let l: ShopifyInventoryLevel = json(body)?;
            let updated = time(&l.updated_at, "updated_at")?;
            // `available` is null for an item whose inventory is not tracked.
            let available = l
                .available
                .ok_or_else(|| AdapterError::Ignored("untracked inventory".to_owned()))?;
            let level = InventoryLevel {
                item_id: reference(l.inventory_item_id.into_string(), "inventory_item_id")?,
                location_id: l
                    .location_id
                    .map(|i| reference(i.into_string(), "location_id"))
                    .transpose()?,
                available,
            };
            (updated, (EventKind::Inventory(level), updated))
        }
        other => return Err(AdapterError::Ignored(other.chars().take(64).collect())),
    };
    let (kind, version_at) = kind;
    Ok(OrderEvent {
        source: Source::Shopify,
        webhook_id,
        occurred_at,
        version: Version {
            at_ms: version_at.as_millis(),
            seq: 0,
        },
        kind,
    })
}

/// Lines with a product (custom items have none and cannot be drop stock).
fn lines(items: impl Iterator<Item = (Option<Id>, u32)>) -> Result<Vec<Line>, AdapterError> {
    items
        .filter_map(|(id, quantity)| Some((id?, quantity)))
        .map(|(id, quantity)| {
            Ok(Line {
                product_id: reference(id.into_string(), "product_id")?,
                quantity,
            })
        })
        .collect()
}

/// The sum of the successful refund transactions.
fn refunded(transactions: &[Transaction]) -> Result<Option<Money>, AdapterError> {
    let mut total: Option<Money> = None;
    for t in transactions
        .iter()
        .filter(|t| t.kind == "refund" && t.status.as_deref() == Some("success"))
    {
        let m = parse_decimal(&t.amount, &t.currency).ok_or(AdapterError::Field("transactions"))?;
        total = Some(match total {
            None => m,
            Some(sum) if sum.currency == m.currency => Money {
                minor: sum
                    .minor
                    .checked_add(m.minor)
                    .ok_or(AdapterError::Field("transactions"))?,
                currency: sum.currency,
            },
            Some(_) => return Err(AdapterError::Field("transactions")),
        });
    }
    Ok(total)
}
