//! The order-system webhook adapters on arbitrary bodies, and every event
//! they accept through dedup, a drop and the commerce figures.
//!
//! Input: byte 0 picks the adapter (Shopify orders/create, refunds/create,
//! inventory_levels/update, Stripe, plain), the rest is the raw body; both
//! signature checks also run on it (as body and as header).
//!
//! Invariants (beyond "no panic"): the same delivery twice is `Duplicate` the
//! second time, and a drop never shows a stage before one it already showed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::drop::{Drop, DropConfig, DropProduct, Stage, StageView, StockSource};
use overlay::figures::Figures;
use overlay::webhook::{
    Outcome, OrderSync, WebhookSecret, plain, shopify, stripe, verify_hmac_base64, verify_stripe,
};
use packager::units::WallTime;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let secret = WebhookSecret::new(*b"fuzz");
    if let Ok(header) = std::str::from_utf8(body) {
        let _ = verify_hmac_base64(&secret, body, header);
        let _ = verify_stripe(&secret, body, header, WallTime(0), 300);
    }
    let parsed = match which % 5 {
        0 => shopify::parse(shopify::ORDERS_CREATE, "w", body),
        1 => shopify::parse(shopify::REFUNDS_CREATE, "w", body),
        2 => shopify::parse(shopify::INVENTORY_LEVELS_UPDATE, "w", body),
        3 => stripe::parse(body),
        _ => plain::parse(body),
    };
    let Ok(event) = parsed else {
        return;
    };
    let mut sync = OrderSync::new();
    assert_eq!(sync.accept(&event), Outcome::Apply);
    assert_eq!(sync.accept(&event), Outcome::Duplicate);

    let product = |id: &str| DropProduct {
        product_id: id.to_owned(),
        inventory_item_id: None,
        stock: 3,
    };
    for source in [StockSource::Orders, StockSource::InventoryLevels] {
        let mut drop = Drop::new(DropConfig {
            id: "d".to_owned(),
            products: vec![product("tee-black-m"), product("8904410743105")],
            stages: vec![
                Stage { label: "plenty".to_owned(), at_most: None },
                Stage { label: "last".to_owned(), at_most: Some(4) },
            ],
            source,
        })
        .expect("valid drop");
        let rank = |v: StageView| match v {
            StageView::Stage { index, .. } => index,
            StageView::SoldOut => usize::MAX,
        };
        let before = rank(drop.view());
        let _ = drop.apply(&event);
        assert!(rank(drop.view()) >= before, "stage went back");
    }
    let mut figures = Figures::new();
    figures.offer_opened("drop-7", WallTime(0));
    figures.record(&event);
    let _ = figures.revenue_per_minute();
    let _ = figures.checkout_times();
});
