//! Dedup by webhook id and out-of-order tolerance by version.

use std::collections::{HashMap, HashSet};

use super::{OrderEvent, Source, Version};

/// What to do with a verified, parsed event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// New and newer than anything seen for its entity: apply it.
    Apply,
    /// This delivery was seen before (a retry): answer 2xx, change nothing.
    Duplicate,
    /// An older state of an entity than one already applied (out-of-order
    /// delivery): answer 2xx, change nothing.
    Stale,
}

/// Remembers deliveries and the newest version per entity. The gateway
/// persists what it applies and rebuilds this on restart by replaying
/// [`OrderSync::accept`] over the stored events.
#[derive(Debug, Default, Clone)]
pub struct OrderSync {
    seen: HashSet<(Source, String)>,
    newest: HashMap<String, Version>,
}

impl OrderSync {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides, and records the decision: the same event twice is `Apply`
    /// then `Duplicate`.
    pub fn accept(&mut self, event: &OrderEvent) -> Outcome {
        if !self.seen.insert((event.source, event.webhook_id.clone())) {
            return Outcome::Duplicate;
        }
        let entity = event.entity();
        match self.newest.get(&entity) {
            // Equal versions are stale too: a platform re-sending the same
            // state under a new delivery id must not count twice.
            Some(v) if *v >= event.version => Outcome::Stale,
            _ => {
                self.newest.insert(entity, event.version);
                Outcome::Apply
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::{EventKind, InventoryLevel};
    use packager::units::WallTime;

    fn level(webhook_id: &str, at_ms: i64, available: i64) -> OrderEvent {
        OrderEvent {
            source: Source::Shopify,
            webhook_id: webhook_id.into(),
            occurred_at: WallTime::from_millis(at_ms),
            version: Version { at_ms, seq: 0 },
            kind: EventKind::Inventory(InventoryLevel {
                item_id: "i".into(),
                location_id: None,
                available,
            }),
        }
    }

    #[test]
    fn retries_and_reordering() {
        let mut s = OrderSync::new();
        assert_eq!(s.accept(&level("w1", 1000, 5)), Outcome::Apply);
        assert_eq!(s.accept(&level("w1", 1000, 5)), Outcome::Duplicate);
        assert_eq!(s.accept(&level("w3", 3000, 3)), Outcome::Apply);
        // w2 was sent before w3 but arrives after it.
        assert_eq!(s.accept(&level("w2", 2000, 4)), Outcome::Stale);
        assert_eq!(s.accept(&level("w4", 3000, 3)), Outcome::Stale);
        let mut other_source = level("w1", 5000, 1);
        other_source.source = Source::Plain;
        assert_eq!(s.accept(&other_source), Outcome::Apply);
    }
}
