//! `key=value` settings of a link, shared by the `impair` command line (`--key value`) and its
//! stdin `set key=value …` command.

use std::time::Duration;

use super::link::{Jitter, LinkParams, Loss, Probability, Rate, RateCap};

/// The settings as typed; [`Options::params`] turns them into [`LinkParams`].
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub delay_ms: u64,
    /// Uniform jitter in `[0, jitter_ms]` on top of the delay.
    pub jitter_ms: u64,
    /// Exponential jitter with this mean instead (when non-zero).
    pub jitter_exp_ms: u64,
    pub reorder: bool,
    /// Long-run share of datagrams lost.
    pub loss: f64,
    /// Mean loss burst length in datagrams; 1 = independent losses.
    pub loss_burst: f64,
    /// 0 = no rate cap.
    pub rate_kbps: u64,
    pub burst_bytes: u32,
    pub queue_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            delay_ms: 0,
            jitter_ms: 0,
            jitter_exp_ms: 0,
            reorder: false,
            loss: 0.0,
            loss_burst: 1.0,
            rate_kbps: 0,
            // About 12 full-size SRT datagrams.
            burst_bytes: 16_000,
            queue_ms: 500,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionError {
    #[error(
        "unknown setting {0:?} (delay-ms, jitter-ms, jitter-exp-ms, reorder, loss, loss-burst, rate-kbps, burst-bytes, queue-ms)"
    )]
    Unknown(String),
    #[error("bad value {value:?} for {key}")]
    Value { key: String, value: String },
}

impl Options {
    /// Sets one value by name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), OptionError> {
        let bad = || OptionError::Value {
            key: key.to_owned(),
            value: value.to_owned(),
        };
        fn num<T: std::str::FromStr>(
            v: &str,
            bad: impl Fn() -> OptionError,
        ) -> Result<T, OptionError> {
            v.parse().map_err(|_| bad())
        }
        match key {
            "delay-ms" => self.delay_ms = num(value, bad)?,
            "jitter-ms" => self.jitter_ms = num(value, bad)?,
            "jitter-exp-ms" => self.jitter_exp_ms = num(value, bad)?,
            "reorder" => self.reorder = num(value, bad)?,
            "loss" => {
                let p: f64 = num(value, bad)?;
                Probability::new(p).ok_or_else(bad)?;
                self.loss = p;
            }
            "loss-burst" => {
                let b: f64 = num(value, bad)?;
                if !(b >= 1.0 && b.is_finite()) {
                    return Err(bad());
                }
                self.loss_burst = b;
            }
            "rate-kbps" => self.rate_kbps = num(value, bad)?,
            "burst-bytes" => self.burst_bytes = num(value, bad)?,
            "queue-ms" => self.queue_ms = num(value, bad)?,
            _ => return Err(OptionError::Unknown(key.to_owned())),
        }
        Ok(())
    }

    /// Applies `key=value key=value …`.
    pub fn set_all(&mut self, assignments: &str) -> Result<(), OptionError> {
        for a in assignments.split_whitespace() {
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| OptionError::Unknown(a.to_owned()))?;
            self.set(k, v)?;
        }
        Ok(())
    }

    #[must_use]
    pub fn params(&self) -> LinkParams {
        let loss = Probability::new(self.loss).unwrap_or(Probability::ZERO);
        LinkParams {
            delay: Duration::from_millis(self.delay_ms),
            jitter: if self.jitter_exp_ms > 0 {
                Jitter::Exponential {
                    mean: Duration::from_millis(self.jitter_exp_ms),
                }
            } else if self.jitter_ms > 0 {
                Jitter::Uniform {
                    max: Duration::from_millis(self.jitter_ms),
                }
            } else {
                Jitter::None
            },
            reorder: self.reorder,
            loss: if self.loss_burst > 1.0 {
                Loss::bursty(loss, self.loss_burst)
            } else {
                Loss::Bernoulli(loss)
            },
            rate: (self.rate_kbps > 0).then(|| RateCap {
                rate: Rate::from_kbps(self.rate_kbps),
                burst_bytes: self.burst_bytes,
                max_queue: Duration::from_millis(self.queue_ms),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_build_link_params() {
        let mut o = Options::default();
        o.set_all("delay-ms=40 jitter-ms=110 loss=0.03 rate-kbps=3000")
            .unwrap();
        let p = o.params();
        assert_eq!(p.delay, Duration::from_millis(40));
        assert_eq!(
            p.jitter,
            Jitter::Uniform {
                max: Duration::from_millis(110)
            }
        );
        assert_eq!(p.loss, Loss::Bernoulli(Probability::new(0.03).unwrap()));
        assert_eq!(p.rate.unwrap().rate.bits_per_sec(), 3_000_000);
        o.set("loss-burst", "4").unwrap();
        assert!(matches!(o.params().loss, Loss::GilbertElliott { .. }));
        o.set("rate-kbps", "0").unwrap();
        assert_eq!(o.params().rate, None);
    }

    #[test]
    fn bad_settings_are_refused_and_change_nothing() {
        let mut o = Options::default();
        assert!(matches!(
            o.set("loss", "1.5"),
            Err(OptionError::Value { .. })
        ));
        assert!(matches!(
            o.set("loss-burst", "0.5"),
            Err(OptionError::Value { .. })
        ));
        assert!(matches!(
            o.set("delay-ms", "-3"),
            Err(OptionError::Value { .. })
        ));
        assert!(matches!(o.set("speed", "3"), Err(OptionError::Unknown(_))));
        assert!(matches!(o.set_all("loss"), Err(OptionError::Unknown(_))));
        assert_eq!(o, Options::default());
    }
}
