//! Commerce figures as pure aggregations over accepted events: revenue per
//! minute and checkout time (offer open → order) percentiles. The gateway
//! feeds it what [`OrderSync`](crate::webhook::OrderSync) lets through and
//! exposes the results.

use std::collections::{BTreeMap, HashMap};

use packager::units::WallTime;

use crate::webhook::{EventKind, OrderEvent};

/// Gross revenue of the orders placed in one minute, in one currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevenueMinute {
    pub minute: WallTime,
    pub currency: String,
    pub minor: i64,
    pub orders: u64,
}

/// Nearest-rank percentiles of checkout times, in milliseconds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CheckoutTimes {
    pub count: usize,
    pub p50_ms: i64,
    pub p95_ms: i64,
}

#[derive(Debug, Default, Clone)]
pub struct Figures {
    /// (minute start in ms, currency) → (minor units, orders).
    revenue: BTreeMap<(i64, String), (i64, u64)>,
    offers: HashMap<String, WallTime>,
    checkout_ms: Vec<i64>,
}

impl Figures {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An offer opened (its cue's START-DATE): the start of checkout times.
    pub fn offer_opened(&mut self, offer_id: &str, at: WallTime) {
        self.offers.entry(offer_id.to_owned()).or_insert(at);
    }

    /// Records an applied event; only orders count.
    pub fn record(&mut self, event: &OrderEvent) {
        let EventKind::Order(order) = &event.kind else {
            return;
        };
        if let Some(total) = &order.total {
            let minute = event.occurred_at.as_millis().div_euclid(60_000) * 60_000;
            let slot = self
                .revenue
                .entry((minute, total.currency.clone()))
                .or_insert((0, 0));
            slot.0 = slot.0.saturating_add(total.minor);
            slot.1 += 1;
        }
        if let Some(opened) = order.offer_id.as_ref().and_then(|o| self.offers.get(o)) {
            let ms = event.occurred_at.as_millis() - opened.as_millis();
            // An order stamped before the offer opened is another checkout.
            if ms >= 0 {
                self.checkout_ms.push(ms);
            }
        }
    }

    /// Minutes with orders, oldest first.
    #[must_use]
    pub fn revenue_per_minute(&self) -> Vec<RevenueMinute> {
        self.revenue
            .iter()
            .map(|((minute, currency), (minor, orders))| RevenueMinute {
                minute: WallTime::from_millis(*minute),
                currency: currency.clone(),
                minor: *minor,
                orders: *orders,
            })
            .collect()
    }

    #[must_use]
    pub fn checkout_times(&self) -> Option<CheckoutTimes> {
        let mut sorted = self.checkout_ms.clone();
        sorted.sort_unstable();
        Some(CheckoutTimes {
            count: sorted.len(),
            p50_ms: nearest_rank(&sorted, 50)?,
            p95_ms: nearest_rank(&sorted, 95)?,
        })
    }
}

/// The smallest value with at least `p` % of the values at or below it.
fn nearest_rank(sorted: &[i64], p: usize) -> Option<i64> {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::{Money, Order, Source, Version};

    fn order(at_ms: i64, minor: i64, currency: &str, offer: Option<&str>) -> OrderEvent {
        OrderEvent {
            source: Source::Plain,
            webhook_id: format!("w{at_ms}"),
            occurred_at: WallTime::from_millis(at_ms),
            version: Version { at_ms, seq: 0 },
            kind: EventKind::Order(Order {
                order_id: format!("o{at_ms}"),
                lines: vec![],
                total: Some(Money {
                    minor,
                    currency: currency.into(),
                }),
                offer_id: offer.map(str::to_owned),
            }),
        }
    }

    #[test]
    fn revenue_buckets_by_minute_and_currency() {
        let mut f = Figures::new();
        for e in [
            order(60_000, 100, "EUR", None),
            order(119_999, 50, "EUR", None),
            order(120_000, 7, "EUR", None),
            order(61_000, 3, "USD", None),
        ] {
            f.record(&e);
        }
        let r = f.revenue_per_minute();
        let flat: Vec<(i64, &str, i64, u64)> = r
            .iter()
            .map(|m| (m.minute.as_millis(), m.currency.as_str(), m.minor, m.orders))
            .collect();
        assert_eq!(
            flat,
            [
                (60_000, "EUR", 150, 2),
                (60_000, "USD", 3, 1),
                (120_000, "EUR", 7, 1)
            ]
        );
    }

    #[test]
    fn checkout_percentiles() {
        let mut f = Figures::new();
        assert_eq!(f.checkout_times(), None);
        f.offer_opened("drop-7", WallTime::from_millis(1_000));
        f.offer_opened("drop-7", WallTime::from_millis(5_000)); // the first open counts
        for i in 1..=100 {
            f.record(&order(1_000 + i * 100, 1, "EUR", Some("drop-7")));
        }
        f.record(&order(500, 1, "EUR", Some("drop-7")));
        f.record(&order(9_999, 1, "EUR", Some("other")));
        assert_eq!(
            f.checkout_times(),
            Some(CheckoutTimes {
                count: 100,
                p50_ms: 5_000,
                p95_ms: 9_500
            })
        );
    }
}
