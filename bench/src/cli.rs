//! Value parsers the benchmarks' command lines share (clap).

use std::time::Duration;

/// A whole number of milliseconds: `--srt-latency-ms 120`.
pub fn millis(s: &str) -> Result<Duration, String> {
    s.parse()
        .map(Duration::from_millis)
        .map_err(|e| format!("{s:?}: {e}"))
}

/// Seconds, fractions allowed: `--warmup-s 2.5`.
pub fn seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|x| Duration::try_from_secs_f64(x).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_or_say_why() {
        assert_eq!(millis("120"), Ok(Duration::from_millis(120)));
        assert_eq!(seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert!(millis("1.5").is_err());
        assert!(seconds("-1").is_err());
        assert!(seconds("soon").is_err());
    }
}
