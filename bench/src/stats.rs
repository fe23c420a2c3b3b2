//! Latency summaries (hdrhistogram, microseconds).

use anyhow::Context;
use hdrhistogram::Histogram;

/// Percentiles of one latency series, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// Summarises `values` (µs, ≥ 0) to within 0.1 %.
    pub fn of(values: impl IntoIterator<Item = u64>) -> anyhow::Result<Self> {
        let mut h = Histogram::<u64>::new(3).context("histogram")?;
        for v in values {
            h.record(v).context("record")?;
        }
        Ok(Self {
            count: h.len(),
            min: h.min() as f64,
            p50: h.value_at_quantile(0.50) as f64,
            p90: h.value_at_quantile(0.90) as f64,
            p95: h.value_at_quantile(0.95) as f64,
            p99: h.value_at_quantile(0.99) as f64,
            max: h.max() as f64,
            mean: h.mean(),
        })
    }

    /// The same series shifted by `-us` (quantiles commute with a constant shift).
    #[must_use]
    pub fn minus(self, us: f64) -> Self {
        Self {
            min: self.min - us,
            p50: self.p50 - us,
            p90: self.p90 - us,
            p95: self.p95 - us,
            p99: self.p99 - us,
            max: self.max - us,
            mean: self.mean - us,
            ..self
        }
    }

    /// `{"count":…,"p50_ms":…,…}`.
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        let ms = |us: f64| (us / 10.0).round() / 100.0;
        serde_json::json!({
            "count": self.count,
            "min_ms": ms(self.min),
            "p50_ms": ms(self.p50),
            "p90_ms": ms(self.p90),
            "p99_ms": ms(self.p99),
            "max_ms": ms(self.max),
            "mean_ms": ms(self.mean),
        })
    }

    /// One table row: label, then milliseconds.
    #[must_use]
    pub fn row(&self, label: &str) -> String {
        let ms = |us: f64| us / 1000.0;
        format!(
            "{label:<44} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            self.count,
            ms(self.min),
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max),
            ms(self.mean)
        )
    }

    #[must_use]
    pub fn header() -> String {
        format!(
            "{:<44} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "latency (ms)", "n", "min", "p50", "p90", "p99", "max", "mean"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_shift() {
        let s = Summary::of(1..=1000).unwrap();
        assert_eq!(s.count, 1000);
        assert!((s.p50 - 500.0).abs() <= 1.0, "{s:?}");
        assert!((s.p99 - 990.0).abs() <= 1.0, "{s:?}");
        let t = s.minus(100.0);
        assert!((t.p50 - 400.0).abs() <= 1.0);
        assert_eq!(t.count, 1000);
    }
}
