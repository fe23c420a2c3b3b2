//! Decimal renderings for playlist attribute values.

use std::fmt;

use crate::units::{MediaTime, TS_TIMESCALE};

/// Fractional digits written for durations: 10 µs resolution. A 90 kHz tick is
/// 11.1 µs, so five decimals keep the rounding error of one value below half a
/// tick's worth and of a sum of N values below N × 5 µs; rfc8216bis §4.4.4.1
/// (EXTINF): "Durations SHOULD be decimal-floating-point, with enough accuracy to
/// avoid perceptible error when segment durations are accumulated."
const DECIMALS: u32 = 5;

/// A duration as a decimal-floating-point number of seconds (rfc8216bis §4.2):
/// rounded to five decimals, trailing zeros trimmed but at least one decimal
/// kept, so `0.2`, `0.20022`, `2.0`. The same rendering is used for every
/// duration-valued tag and attribute (EXTINF, DURATION, PART-TARGET,
/// PART-HOLD-BACK, HOLD-BACK, CAN-SKIP-UNTIL), so one value always prints the
/// same way.
///
/// Negative times print as `0.0`: a decimal-floating-point is non-negative
/// (rfc8216bis §4.2: "expresses a non-negative floating-point number").
#[derive(Clone, Copy, Debug)]
pub struct Secs(pub MediaTime);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scale = 10_i128.pow(DECIMALS);
        let ticks = i128::from(self.0.0.max(0));
        let den = i128::from(TS_TIMESCALE);
        // Round half up to units of 10^-DECIMALS s.
        let units = (ticks * scale + den / 2) / den;
        let whole = units / scale;
        let mut frac = units % scale;
        let mut digits = usize::try_from(DECIMALS).unwrap_or(5);
        while digits > 1 && frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        write!(f, "{whole}.{frac:0digits$}")
    }
}

/// A frame rate rounded to three decimals, as `FRAME-RATE` requires
/// (rfc8216bis §4.4.6.2: "the maximum frame rate for all the video in the Variant
/// Stream, rounded to three decimal places").
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameRate(pub(crate) f64);

impl fmt::Display for FrameRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(ticks: i64) -> String {
        Secs(MediaTime(ticks)).to_string()
    }

    #[test]
    fn durations_trim_trailing_zeros_but_keep_one_decimal() {
        let table = [
            (0, "0.0"),
            (18_000, "0.2"),
            (180_000, "2.0"),
            (18_018, "0.2002"),
            (18_020, "0.20022"),
            (4_500, "0.05"),
            (1, "0.00001"),
            // 30030 ticks = 0.333666..s, rounds up in the fifth decimal.
            (30_030, "0.33367"),
            (360_007, "4.00008"),
            (-5, "0.0"),
            (i64::MAX, "102481911520608.62008"),
        ];
        for (ticks, want) in table {
            assert_eq!(secs(ticks), want, "{ticks} ticks");
        }
    }

    #[test]
    fn frame_rates_have_three_decimals() {
        assert_eq!(FrameRate(30_000.0 / 1001.0).to_string(), "29.970");
        assert_eq!(FrameRate(25.0).to_string(), "25.000");
        assert_eq!(FrameRate(59.9401).to_string(), "59.940");
    }
}
