//! RFC 3339 date-time parsing into [`WallTime`] (formatting is
//! [`WallTime::to_rfc3339_millis`] in `packager`).
//!
//! Commerce platforms send offsets (`2026-11-26T05:03:17-05:00`) and any number
//! of fractional digits; both are accepted. Digits beyond the microsecond are
//! truncated, as `WallTime` counts microseconds.

use packager::units::WallTime;

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` (RFC 3339 §5.6; `t`/`z` and a
/// space separator are accepted as §5.6's NOTE allows). `None` if malformed.
#[must_use]
pub fn parse(s: &str) -> Option<WallTime> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0_i64, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let sep = |at: usize, want: &[u8]| b.get(at).is_some_and(|c| want.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        // A leap second (60) is folded into the next second's start.
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut micros = 0_i64;
    if sep(at, b".") {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 6 {
                micros = micros * 10 + i64::from(b.get(at).copied().unwrap_or(b'0') - b'0');
            }
            at += 1;
        }
        let n = at - start;
        if n == 0 {
            return None;
        }
        for _ in n..6 {
            micros *= 10;
        }
    }
    let offset_secs = match b.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(WallTime(secs * 1_000_000 + micros))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a Gregorian date (H. Hinnant's algorithm, the
/// inverse of the one `packager` formats with).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table() {
        let ok = [
            ("1970-01-01T00:00:00Z", 0),
            ("2026-11-26T07:24:57.123Z", 1_795_677_897_123_000),
            ("2026-11-26T02:24:57.123-05:00", 1_795_677_897_123_000),
            ("2026-11-26T08:24:57.1234567+01:00", 1_795_677_897_123_456),
            ("2000-02-29 00:00:00z", 951_782_400_000_000),
        ];
        for (s, want) in ok {
            assert_eq!(parse(s), Some(WallTime(want)), "{s}");
        }
        let bad = [
            "",
            "2026-11-26",
            "2026-11-26T07:24:57",
            "2026-13-26T07:24:57Z",
            "2026-02-29T00:00:00Z",
            "2026-11-26T24:00:00Z",
            "2026-11-26T07:24:57.Z",
            "2026-11-26T07:24:57+0500",
            "2026-11-26T07:24:57Z ",
            "+026-11-26T07:24:57Z",
            "2026-11-26T07:24:57.12é",
        ];
        for s in bad {
            assert_eq!(parse(s), None, "{s}");
        }
    }

    proptest! {
        #[test]
        fn formatting_round_trips(ms in 0_i64..253_402_300_799_999) {
            let t = WallTime::from_millis(ms);
            prop_assert_eq!(parse(&t.to_rfc3339_millis()), Some(t));
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }
    }
}
