//! Unit newtypes: media sequence numbers, part indices, media time, wall time.
//!
//! No bare `u64` MSN or tick count crosses a public function of this crate.

use std::fmt;

/// The clock of MPEG-TS timestamps, used for every timeline decision.
pub const TS_TIMESCALE: u32 = 90_000;

/// Media Sequence Number of a segment (rfc8216bis §4.4.3.2).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Msn(pub u64);

impl Msn {
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for Msn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Index of a partial segment inside its parent segment (`_HLS_part`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartIndex(pub u32);

impl fmt::Display for PartIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Stream-wide sequence number of a partial segment; it names the part's URI.
///
/// It grows by one per part across segment boundaries, so the URI announced in
/// `EXT-X-PRELOAD-HINT` is always the URI of the next `EXT-X-PART`, whether or
/// not that part turns out to open a new segment.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartSeq(pub u64);

impl PartSeq {
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for PartSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Version of a rendition's init segment; it changes with the codec parameters.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InitId(pub u32);

impl fmt::Display for InitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A point or span on the unwrapped media timeline, in 90 kHz ticks.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MediaTime(pub i64);

impl MediaTime {
    pub const ZERO: Self = Self(0);

    #[must_use]
    pub fn from_millis(ms: i64) -> Self {
        Self(ms * i64::from(TS_TIMESCALE) / 1000)
    }

    #[must_use]
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / f64::from(TS_TIMESCALE)
    }

    #[must_use]
    pub fn as_micros(self) -> i64 {
        self.0 * 1_000_000 / i64::from(TS_TIMESCALE)
    }

    /// Converts to a track timescale, rounding to the nearest tick.
    #[must_use]
    pub fn to_timescale(self, timescale: u32) -> i64 {
        let num = i128::from(self.0) * i128::from(timescale);
        let den = i128::from(TS_TIMESCALE);
        // Round half away from zero so that negative times are symmetric.
        let q = if num >= 0 {
            (num + den / 2) / den
        } else {
            (num - den / 2) / den
        };
        i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX })
    }
}

impl std::ops::Add for MediaTime {
    type Output = Self;
    fn add(self, rhs: Self) -> Self {
        Self(self.0 + rhs.0)
    }
}

impl std::ops::Sub for MediaTime {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        Self(self.0 - rhs.0)
    }
}

/// Wall-clock time in microseconds since the Unix epoch (UTC).
///
/// Sampled by the IO shell when media arrives; the packager never reads a clock.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WallTime(pub i64);

impl WallTime {
    #[must_use]
    pub fn from_millis(ms: i64) -> Self {
        Self(ms * 1000)
    }

    #[must_use]
    pub fn as_millis(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// The next whole millisecond at or after this time.
    #[must_use]
    pub fn ceil_to_millis(self) -> Self {
        Self((self.0 + 999).div_euclid(1000) * 1000)
    }

    /// The whole millisecond at or before this time.
    #[must_use]
    pub fn floor_to_millis(self) -> Self {
        Self(self.0.div_euclid(1000) * 1000)
    }

    #[must_use]
    pub fn offset(self, by: MediaTime) -> Self {
        Self(self.0 + by.as_micros())
    }

    /// ISO 8601 / RFC 3339 with millisecond precision, as
    /// `EXT-X-PROGRAM-DATE-TIME` wants (rfc8216bis §4.4.4.6).
    #[must_use]
    pub fn to_rfc3339_millis(self) -> String {
        let ms = self.as_millis();
        let days = ms.div_euclid(86_400_000);
        let rem = ms.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3_600_000,
            rem / 60_000 % 60,
            rem / 1000 % 60,
            rem % 1000
        )
    }
}

/// Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // d is in 1..=31 and m in 1..=12 by construction.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(WallTime(0).to_rfc3339_millis(), "1970-01-01T00:00:00.000Z");
        // 2026-11-26T07:24:57.123Z
        assert_eq!(
            WallTime::from_millis(1_795_677_897_123).to_rfc3339_millis(),
            "2026-11-26T07:24:57.123Z"
        );
        assert_eq!(
            WallTime::from_millis(951_782_400_000).to_rfc3339_millis(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn whole_milliseconds_round_both_ways() {
        for (us, floor, ceil) in [
            (0, 0, 0),
            (1, 0, 1000),
            (999, 0, 1000),
            (1000, 1000, 1000),
            (-1, -1000, 0),
        ] {
            assert_eq!(WallTime(us).floor_to_millis(), WallTime(floor));
            assert_eq!(WallTime(us).ceil_to_millis(), WallTime(ceil));
        }
    }

    #[test]
    fn timescale_conversion_rounds() {
        assert_eq!(MediaTime(90_000).to_timescale(48_000), 48_000);
        assert_eq!(MediaTime(2).to_timescale(48_000), 1);
        assert_eq!(MediaTime(-2).to_timescale(48_000), -1);
    }
}
