//! The adapters against the samples in `fixtures/webhooks/`.

use packager::units::WallTime;

use super::*;
use crate::rfc3339;

macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!("../../../fixtures/webhooks/", $path)).as_slice()
    };
}

/// Personal data present in the samples that must not survive parsing.
const PII: [&str; 7] = [
    "Ada",
    "Viewer",
    "example.com",
    "Example Street",
    "Springfield",
    "5555550142",
    "203.0.113.7",
];

fn assert_no_pii(e: &OrderEvent) {
    let kept = format!("{e:?}");
    for p in PII {
        assert!(!kept.contains(p), "{p} kept in {kept}");
    }
}

fn at(s: &str) -> WallTime {
    rfc3339::parse(s).unwrap()
}

fn line(product_id: &str, quantity: u32) -> Line {
    Line {
        product_id: product_id.into(),
        quantity,
    }
}

fn money(minor: i64, currency: &str) -> Option<Money> {
    Some(Money {
        minor,
        currency: currency.into(),
    })
}

#[test]
fn shopify_orders_create() {
    let e = shopify::parse(
        "orders/create",
        "b54557e4-order",
        fixture!("shopify/orders_create.json"),
    )
    .unwrap();
    assert_no_pii(&e);
    assert_eq!(
        e,
        OrderEvent {
            source: Source::Shopify,
            webhook_id: "b54557e4-order".into(),
            occurred_at: at("2026-11-26T10:03:41Z"),
            version: Version {
                at_ms: at("2026-11-26T10:03:42Z").as_millis(),
                seq: 0
            },
            kind: EventKind::Order(Order {
                order_id: "5830271844417".into(),
                // The custom line without a product is left out.
                lines: vec![line("8904410743105", 2), line("8904410775873", 1)],
                total: money(12_744, "USD"),
                offer_id: Some("drop-7".into()),
            }),
        }
    );
}

#[test]
fn shopify_refunds_create() {
    let e = shopify::parse(
        "refunds/create",
        "w-refund",
        fixture!("shopify/refunds_create.json"),
    )
    .unwrap();
    assert_no_pii(&e);
    assert_eq!(e.occurred_at, at("2026-11-26T11:15:02Z"));
    assert_eq!(
        e.kind,
        EventKind::Refund(Refund {
            order_id: "5830271844417".into(),
            refund_id: "929361463617".into(),
            // Only the successful refund transaction counts.
            amount: money(7452, "USD"),
            // The "no_restock" cap stays sold.
            restock: vec![line("8904410743105", 1)],
        })
    );
}

#[test]
fn shopify_inventory_levels_update() {
    let e = shopify::parse(
        "inventory_levels/update",
        "w-inv",
        fixture!("shopify/inventory_levels_update.json"),
    )
    .unwrap();
    assert_eq!(
        e.kind,
        EventKind::Inventory(InventoryLevel {
            item_id: "49306538000449".into(),
            location_id: Some("69872893249".into()),
            available: 37,
        })
    );
    assert_eq!(e.entity(), "inventory:49306538000449@69872893249");
    assert_eq!(
        shopify::parse("inventory_levels/update", "w", br#"{"inventory_item_id":1,"location_id":2,"available":null,"updated_at":"2026-11-26T05:03:42-05:00"}"#),
        Err(AdapterError::Ignored("untracked inventory".into()))
    );
}

#[test]
fn shopify_refusals() {
    let body = fixture!("shopify/orders_create.json");
    assert_eq!(
        shopify::parse("products/update", "w", body),
        Err(AdapterError::Ignored("products/update".into()))
    );
    assert_eq!(
        shopify::parse("orders/create", "", body),
        Err(AdapterError::Field("X-Shopify-Webhook-Id"))
    );
    assert!(matches!(
        shopify::parse("orders/create", "w", b"{\"id\":1}"),
        Err(AdapterError::Invalid(_))
    ));
    assert_eq!(
        shopify::parse(
            "orders/create",
            "w",
            br#"{"id":1,"created_at":"yesterday"}"#
        ),
        Err(AdapterError::Field("created_at"))
    );
}

#[test]
fn stripe_checkout_session_completed() {
    let e = stripe::parse(fixture!("stripe/checkout_session_completed.json")).unwrap();
    assert_no_pii(&e);
    assert_eq!(
        e,
        OrderEvent {
            source: Source::Stripe,
            webhook_id: "evt_1QdropLineCheckout01".into(),
            occurred_at: WallTime(1_795_687_421_000_000),
            version: Version {
                at_ms: 1_795_687_421_000,
                seq: 0
            },
            kind: EventKind::Order(Order {
                order_id: "pi_3QdropLineIntent".into(),
                lines: vec![line("tee-black-m", 2), line("cap-black", 1)],
                total: money(12_744, "USD"),
                offer_id: Some("drop-7".into()),
            }),
        }
    );
}

#[test]
fn stripe_charge_refunded() {
    let e = stripe::parse(fixture!("stripe/charge_refunded.json")).unwrap();
    assert_no_pii(&e);
    assert_eq!(e.version.seq, 7452);
    assert_eq!(
        e.kind,
        EventKind::Refund(Refund {
            order_id: "pi_3QdropLineIntent".into(),
            refund_id: "ch_3QdropLineCharge".into(),
            amount: money(7452, "USD"),
            restock: vec![],
        })
    );
}

#[test]
fn stripe_refusals() {
    assert_eq!(
        stripe::parse(
            br#"{"id":"evt_1","type":"customer.created","created":1,"data":{"object":{}}}"#
        ),
        Err(AdapterError::Ignored("customer.created".into()))
    );
    let unpaid = br#"{"id":"evt_1","type":"checkout.session.completed","created":1,"data":{"object":{"id":"cs_1","payment_intent":null,"payment_status":"unpaid"}}}"#;
    assert!(matches!(
        stripe::parse(unpaid),
        Err(AdapterError::Ignored(_))
    ));
    let bad_lines = br#"{"id":"evt_1","type":"checkout.session.completed","created":1,"data":{"object":{"id":"cs_1","payment_intent":null,"payment_status":"paid","metadata":{"dropline_lines":"a:x"}}}}"#;
    assert_eq!(
        stripe::parse(bad_lines),
        Err(AdapterError::Field("metadata.dropline_lines"))
    );
    let far = br#"{"id":"evt_1","type":"charge.refunded","created":-5,"data":{"object":{}}}"#;
    assert_eq!(stripe::parse(far), Err(AdapterError::Field("created")));
}

#[test]
fn plain_format() {
    let o = plain::parse(fixture!("plain/order.json")).unwrap();
    assert_eq!(o.occurred_at, at("2026-11-26T10:03:41.250Z"));
    assert_eq!(
        o.kind,
        EventKind::Order(Order {
            order_id: "ord-1042".into(),
            lines: vec![line("tee-black-m", 2), line("cap-black", 1)],
            total: money(12_744, "EUR"),
            offer_id: Some("drop-7".into()),
        })
    );
    let r = plain::parse(fixture!("plain/refund.json")).unwrap();
    assert_eq!(r.version.seq, 1);
    assert!(matches!(r.kind, EventKind::Refund(ref f) if f.restock == [line("tee-black-m", 1)]));
    let i = plain::parse(fixture!("plain/inventory.json")).unwrap();
    assert_eq!(i.version.seq, 17);
    assert!(matches!(i.kind, EventKind::Inventory(ref l) if l.available == 37));
    // Personal data has no field to go in.
    assert!(matches!(
        plain::parse(br#"{"id":"w","occurred_at":"2026-11-26T10:03:41Z","email":"a@example.com","inventory":{"item_id":"i","available":1}}"#),
        Err(AdapterError::Invalid(_))
    ));
    assert_eq!(
        plain::parse(br#"{"id":"w","occurred_at":"2026-11-26T10:03:41Z"}"#),
        Err(AdapterError::Field(
            "exactly one of order, refund, inventory"
        ))
    );
}

/// The whole inbound path as the gateway will run it: verify the raw body,
/// parse, dedupe; a forged or replayed delivery changes nothing.
#[test]
fn verified_deduplicated_pipeline() {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let secret = WebhookSecret::new(*b"shpss_dropline_fixture");
    let body = fixture!("shopify/inventory_levels_update.json");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"shpss_dropline_fixture").unwrap();
    mac.update(body);
    let header = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());

    let mut sync = OrderSync::new();
    let mut deliver = |body: &[u8], id: &str| -> Result<Outcome, VerifyError> {
        verify_hmac_base64(&secret, body, &header)?;
        let e = shopify::parse("inventory_levels/update", id, body).unwrap();
        Ok(sync.accept(&e))
    };
    assert_eq!(deliver(body, "w1"), Ok(Outcome::Apply));
    assert_eq!(deliver(body, "w1"), Ok(Outcome::Duplicate));
    let forged = String::from_utf8(body.to_vec())
        .unwrap()
        .replace("37", "9999");
    assert_eq!(
        deliver(forged.as_bytes(), "w2"),
        Err(VerifyError::BadSignature)
    );
}
