//! `EXT-X-PROGRAM-DATE-TIME` (rfc8216bis §4.4.4.6).
//!
//! Written on every segment, including the one in progress: it is cheap, lets
//! players measure latency, and covers rfc8216bis §6.2.1: "If a server provides
//! this mapping, it SHOULD apply an EXT-X-PROGRAM-DATE-TIME tag to every
//! segment that has an EXT-X-DISCONTINUITY tag applied to it." The time comes
//! from the snapshot (sampled by the IO shell), never from a clock here.

use std::fmt;

use crate::units::WallTime;

/// `#EXT-X-PROGRAM-DATE-TIME:YYYY-MM-DDThh:mm:ss.SSSZ`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProgramDateTime(pub(crate) WallTime);

impl fmt::Display for ProgramDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // rfc8216bis §4.4.4.6: "It SHOULD indicate a time zone and fractional
        // parts of seconds, to at least millisecond accuracy."
        write!(f, "#EXT-X-PROGRAM-DATE-TIME:{}", self.0.to_rfc3339_millis())
    }
}
