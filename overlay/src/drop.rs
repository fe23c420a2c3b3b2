//! Drops and staged stock reveals.
//!
//! A drop has products, a total stock that stays private, and reveal stages
//! ("plenty" → "under 50" → "last 10"), each shown while the remaining stock is
//! at most its threshold; "sold out" follows automatically at zero. Stock
//! changes (from accepted [`OrderEvent`]s) yield the cue requests to schedule:
//! one `stock-stage` cue when the stage changes and one `sold-out` cue. Cues
//! carry the stage label and index, never a count. Stages only move forward:
//! a refund that restocks a few units does not bring a "last 10" drop back to
//! "plenty", nor a sold-out drop back on sale.

use std::collections::HashMap;
use std::collections::HashSet;

use serde_json::json;

use crate::cue::{Anchor, CueId, CueKind, CueRequest, Payload};
use crate::webhook::{EventKind, OrderEvent};

/// Longest drop id: cue ids `<drop>.stage-<n>` stay within 64 characters.
pub const MAX_DROP_ID_LEN: usize = 48;
/// Most stages a drop may have.
pub const MAX_STAGES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropError {
    #[error("drop id must be 1..=48 characters of [A-Za-z0-9_.-]")]
    InvalidId,
    #[error("a drop needs at least one product and 1..=16 stages")]
    Shape,
    #[error("stage labels must be 1..=64 bytes")]
    Label,
    #[error(
        "stage thresholds must decrease strictly, stay above 0, and only the first may be open-ended"
    )]
    Thresholds,
}

/// One reveal stage: shown while the remaining stock is at most `at_most`
/// (`None`: any amount, for the opening stage).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    pub label: String,
    pub at_most: Option<u64>,
}

/// Where a drop's stock level comes from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StockSource {
    /// Inventory-level events (absolute, per item and location) are the truth;
    /// order lines do not change the count.
    InventoryLevels,
    /// Orders take units, refunds that restock give them back.
    Orders,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropProduct {
    /// As the order system names it in order lines.
    pub product_id: String,
    /// As inventory-level events name it (Shopify: the inventory item id);
    /// `None`: the product id.
    pub inventory_item_id: Option<String>,
    pub stock: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropConfig {
    pub id: String,
    pub products: Vec<DropProduct>,
    pub stages: Vec<Stage>,
    pub source: StockSource,
}

/// The public face of a drop: nothing that reveals the count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StageView {
    Stage { index: usize, label: String },
    SoldOut,
}

/// A cue to schedule, with the idempotency key that makes a replay harmless.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropCue {
    pub idempotency_key: String,
    pub request: CueRequest,
}

/// A drop's live state.
#[derive(Debug, Clone)]
pub struct Drop {
    config: DropConfig,
    /// Orders source: units taken (orders) and given back (restocks).
    sold: u64,
    restocked: u64,
    counted: HashSet<String>,
    /// InventoryLevels source: available per (product index, location).
    levels: HashMap<(usize, String), u64>,
    /// Index of the stage shown; `stages.len()` is sold out.
    shown: usize,
}

impl Drop {
    /// # Errors
    /// [`DropError`] naming what is wrong with the configuration.
    pub fn new(config: DropConfig) -> Result<Self, DropError> {
        if config.id.len() > MAX_DROP_ID_LEN || CueId::new(config.id.as_str()).is_err() {
            return Err(DropError::InvalidId);
        }
        if config.products.is_empty()
            || config.stages.is_empty()
            || config.stages.len() > MAX_STAGES
        {
            return Err(DropError::Shape);
        }
        if config
            .stages
            .iter()
            .any(|s| s.label.is_empty() || s.label.len() > 64)
        {
            return Err(DropError::Label);
        }
        let thresholds_ok = config
            .stages
            .iter()
            .enumerate()
            .all(|(i, s)| match s.at_most {
                None => i == 0,
                Some(n) => n > 0,
            })
            && config
                .stages
                .windows(2)
                .all(|w| match (w[0].at_most, w[1].at_most) {
                    (None, Some(_)) => true,
                    (Some(a), Some(b)) => a > b,
                    _ => false,
                });
        if !thresholds_ok {
            return Err(DropError::Thresholds);
        }
        let mut levels = HashMap::new();
        for (i, p) in config.products.iter().enumerate() {
            levels.insert((i, String::new()), p.stock);
        }
        let mut drop = Self {
            config,
            sold: 0,
            restocked: 0,
            counted: HashSet::new(),
            levels,
            shown: 0,
        };
        drop.shown = drop.stage_for(drop.remaining());
        Ok(drop)
    }

    #[must_use]
    pub fn view(&self) -> StageView {
        self.config
            .stages
            .get(self.shown)
            .map_or(StageView::SoldOut, |s| StageView::Stage {
                index: self.shown,
                label: s.label.clone(),
            })
    }

    /// The cue that announces the current stage (at the drop's start).
    #[must_use]
    pub fn opening_cue(&self) -> DropCue {
        self.stage_cue(self.shown)
    }

    /// Applies an accepted order-system event (after [`OrderSync`](crate::webhook::OrderSync)
    /// dedup); returns the cues it triggers, in order.
    pub fn apply(&mut self, event: &OrderEvent) -> Vec<DropCue> {
        match (&event.kind, self.config.source) {
            (EventKind::Order(o), StockSource::Orders) => {
                // Each order counts once, whatever reaches us twice.
                let first = self.counted.insert(format!("order:{}", o.order_id));
                self.sold += if first { self.quantity_of(&o.lines) } else { 0 };
            }
            (EventKind::Refund(r), StockSource::Orders) => {
                let first = self.counted.insert(format!("refund:{}", r.refund_id));
                self.restocked += if first {
                    self.quantity_of(&r.restock)
                } else {
                    0
                };
            }
            (EventKind::Inventory(level), StockSource::InventoryLevels) => {
                if let Some(i) = self.config.products.iter().position(|p| {
                    p.inventory_item_id.as_deref().unwrap_or(&p.product_id) == level.item_id
                }) {
                    // The configured stock stands for every location until a
                    // location reports; then locations are summed.
                    self.levels.remove(&(i, String::new()));
                    let location = level.location_id.clone().unwrap_or_default();
                    self.levels
                        .insert((i, location), u64::try_from(level.available).unwrap_or(0));
                }
            }
            _ => {}
        }
        let stage = self.stage_for(self.remaining());
        if stage <= self.shown {
            return Vec::new();
        }
        self.shown = stage;
        let mut cues = vec![self.stage_cue(stage)];
        if stage == self.config.stages.len() {
            // The stage cue of "sold out" is the sold-out cue itself.
            cues.clear();
            cues.push(self.sold_out_cue());
        }
        cues
    }

    fn quantity_of(&self, lines: &[crate::webhook::Line]) -> u64 {
        lines
            .iter()
            .filter(|l| {
                self.config
                    .products
                    .iter()
                    .any(|p| p.product_id == l.product_id)
            })
            .map(|l| u64::from(l.quantity))
            .sum()
    }

    fn remaining(&self) -> u64 {
        match self.config.source {
            StockSource::Orders => {
                let total: u64 = self.config.products.iter().map(|p| p.stock).sum();
                (total + self.restocked).saturating_sub(self.sold)
            }
            StockSource::InventoryLevels => self.levels.values().sum(),
        }
    }

    /// The last stage whose threshold admits `remaining`; sold out at zero.
    fn stage_for(&self, remaining: u64) -> usize {
        if remaining == 0 {
            return self.config.stages.len();
        }
        self.config
            .stages
            .iter()
            .rposition(|s| s.at_most.is_none_or(|n| remaining <= n))
            .unwrap_or(0)
    }

    fn stage_cue(&self, index: usize) -> DropCue {
        let Some(stage) = self.config.stages.get(index) else {
            return self.sold_out_cue();
        };
        self.cue(
            &format!("stage-{index}"),
            CueKind::StockStage,
            json!({"drop": self.config.id, "stage": stage.label, "index": index}),
        )
    }

    fn sold_out_cue(&self) -> DropCue {
        self.cue(
            "sold-out",
            CueKind::SoldOut,
            json!({"drop": self.config.id}),
        )
    }

    fn cue(&self, suffix: &str, kind: CueKind, payload: serde_json::Value) -> DropCue {
        let id = format!("{}.{suffix}", self.config.id);
        DropCue {
            idempotency_key: format!("drop:{id}"),
            request: CueRequest {
                // Drop ids are checked in `new` to leave room for the suffix.
                id: CueId::new(id).ok(),
                kind,
                payload: Payload::new(payload).unwrap_or_default(),
                anchor: Anchor::Now,
                duration_ms: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::{InventoryLevel, Line, Order, Refund, Source, Version};
    use packager::units::WallTime;

    fn stages() -> Vec<Stage> {
        vec![
            Stage {
                label: "plenty".into(),
                at_most: None,
            },
            Stage {
                label: "under 50".into(),
                at_most: Some(49),
            },
            Stage {
                label: "last 10".into(),
                at_most: Some(10),
            },
        ]
    }

    fn config(source: StockSource) -> DropConfig {
        DropConfig {
            id: "drop-7".into(),
            products: vec![
                DropProduct {
                    product_id: "p1".into(),
                    inventory_item_id: Some("inv-1".into()),
                    stock: 40,
                },
                DropProduct {
                    product_id: "p2".into(),
                    inventory_item_id: None,
                    stock: 20,
                },
            ],
            stages: stages(),
            source,
        }
    }

    fn event(kind: EventKind) -> OrderEvent {
        OrderEvent {
            source: Source::Plain,
            webhook_id: "w".into(),
            occurred_at: WallTime(0),
            version: Version { at_ms: 0, seq: 0 },
            kind,
        }
    }

    fn order(id: &str, product: &str, quantity: u32) -> OrderEvent {
        event(EventKind::Order(Order {
            order_id: id.into(),
            lines: vec![Line {
                product_id: product.into(),
                quantity,
            }],
            total: None,
            offer_id: None,
        }))
    }

    fn labels(cues: &[DropCue]) -> Vec<String> {
        cues.iter()
            .map(|c| {
                c.request
                    .payload
                    .value()
                    .get("stage")
                    .map_or("SOLD OUT".into(), |s| s.to_string())
            })
            .collect()
    }

    #[test]
    fn orders_walk_the_stages_then_sell_out_once() {
        let mut d = Drop::new(config(StockSource::Orders)).unwrap();
        assert_eq!(
            d.view(),
            StageView::Stage {
                index: 0,
                label: "plenty".into()
            }
        );
        assert_eq!(
            d.opening_cue().request.id.unwrap().as_str(),
            "drop-7.stage-0"
        );
        assert!(d.apply(&order("o1", "p1", 10)).is_empty()); // 50 left
        assert_eq!(labels(&d.apply(&order("o2", "p2", 1))), ["\"under 50\""]);
        assert!(
            d.apply(&order("o2", "p2", 1)).is_empty(),
            "same order counted once"
        );
        assert!(
            d.apply(&order("o3", "other", 100)).is_empty(),
            "not a drop product"
        );
        let cues = d.apply(&order("o4", "p1", 45)); // 4 left: skips straight to the last stage
        assert_eq!(labels(&cues), ["\"last 10\""]);
        assert_eq!(cues[0].idempotency_key, "drop:drop-7.stage-2");
        let cues = d.apply(&order("o5", "p1", 9));
        assert_eq!(cues.len(), 1);
        assert_eq!(cues[0].request.kind, CueKind::SoldOut);
        assert_eq!(
            cues[0].request.id.as_ref().unwrap().as_str(),
            "drop-7.sold-out"
        );
        assert_eq!(d.view(), StageView::SoldOut);
        // A restock does not reopen a sold-out drop.
        let refund = event(EventKind::Refund(Refund {
            order_id: "o5".into(),
            refund_id: "r1".into(),
            amount: None,
            restock: vec![Line {
                product_id: "p1".into(),
                quantity: 5,
            }],
        }));
        assert!(d.apply(&refund).is_empty());
        assert_eq!(d.view(), StageView::SoldOut);
    }

    #[test]
    fn inventory_levels_sum_locations() {
        let mut d = Drop::new(config(StockSource::InventoryLevels)).unwrap();
        let level = |item: &str, loc: &str, available: i64| {
            event(EventKind::Inventory(InventoryLevel {
                item_id: item.into(),
                location_id: Some(loc.into()),
                available,
            }))
        };
        assert!(
            d.apply(&order("o1", "p1", 59)).is_empty(),
            "orders ignored in this mode"
        );
        // The configured 40 + 20 stand until a location reports.
        assert!(d.apply(&level("inv-1", "a", 35)).is_empty()); // 35 + 20
        assert!(
            d.apply(&level("inv-1", "b", -3)).is_empty(),
            "negative counts as 0"
        );
        assert_eq!(labels(&d.apply(&level("inv-1", "a", 29))), ["\"under 50\""]); // 29 + 0 + 20
        assert!(d.apply(&level("p2", "a", 0)).is_empty()); // 29
        assert!(
            d.apply(&level("inv-1", "a", 40)).is_empty(),
            "stages never go back"
        );
        assert_eq!(labels(&d.apply(&level("inv-1", "a", 10))), ["\"last 10\""]);
        assert_eq!(
            d.apply(&level("inv-1", "a", 0))[0].request.kind,
            CueKind::SoldOut
        );
    }

    #[test]
    fn cues_never_reveal_the_count() {
        let mut d = Drop::new(config(StockSource::Orders)).unwrap();
        let mut all = vec![d.opening_cue()];
        for i in 0..60 {
            all.extend(d.apply(&order(&format!("o{i}"), "p1", 1)));
        }
        assert_eq!(all.len(), 4);
        for c in &all {
            let keys: Vec<&String> = c
                .request
                .payload
                .value()
                .as_object()
                .unwrap()
                .keys()
                .collect();
            assert!(
                keys == ["drop", "index", "stage"] || keys == ["drop"],
                "{keys:?}"
            );
        }
    }

    #[test]
    fn bad_configs() {
        let with = |f: fn(&mut DropConfig)| {
            let mut c = config(StockSource::Orders);
            f(&mut c);
            Drop::new(c).unwrap_err()
        };
        assert_eq!(with(|c| c.id = "a b".into()), DropError::InvalidId);
        assert_eq!(with(|c| c.id = "x".repeat(49)), DropError::InvalidId);
        assert_eq!(with(|c| c.products.clear()), DropError::Shape);
        assert_eq!(with(|c| c.stages[1].label.clear()), DropError::Label);
        assert_eq!(
            with(|c| c.stages[2].at_most = Some(49)),
            DropError::Thresholds
        );
        assert_eq!(with(|c| c.stages[1].at_most = None), DropError::Thresholds);
        assert_eq!(
            with(|c| c.stages[2].at_most = Some(0)),
            DropError::Thresholds
        );
    }
}
