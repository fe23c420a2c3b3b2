//! `EXT-X-SERVER-CONTROL` (rfc8216bis §4.4.3.8) and the lower bounds on its
//! hold-back and skip values.

use std::fmt;

use crate::playlist::decimal::Secs;
use crate::units::MediaTime;

/// rfc8216bis §4.4.3.8 (PART-HOLD-BACK): "Its value MUST be at least twice the
/// Part Target Duration."
#[must_use]
pub(crate) fn min_part_hold_back(part_target: MediaTime) -> MediaTime {
    MediaTime(part_target.0.saturating_mul(2))
}

/// rfc8216bis §4.4.3.8 (PART-HOLD-BACK): "Its value SHOULD be at least three
/// times the Part Target Duration." Our default.
#[must_use]
pub(crate) fn recommended_part_hold_back(part_target: MediaTime) -> MediaTime {
    MediaTime(part_target.0.saturating_mul(3))
}

/// rfc8216bis §4.4.3.8 (HOLD-BACK): "Its value MUST be at least three times the
/// Target Duration." Its absence implies exactly that value.
#[must_use]
pub(crate) fn min_hold_back(target_duration: MediaTime) -> MediaTime {
    MediaTime(target_duration.0.saturating_mul(3))
}

/// rfc8216bis §4.4.3.8 (CAN-SKIP-UNTIL): "The Skip Boundary MUST be at least six
/// times the Target Duration."
#[must_use]
pub(crate) fn min_can_skip_until(target_duration: MediaTime) -> MediaTime {
    MediaTime(target_duration.0.saturating_mul(6))
}

/// `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=…[,HOLD-BACK=…][,CAN-SKIP-UNTIL=…]`.
///
/// `CAN-BLOCK-RELOAD=YES` is always written: the blocking decision lives in
/// `crate::blocking` and every shell serves it. PART-HOLD-BACK is always
/// written because every playlist has `EXT-X-PART-INF`; rfc8216bis §4.4.3.8:
/// "PART-HOLD-BACK is REQUIRED if the Playlist contains the EXT-X-PART-INF tag."
///
/// The values are written as given; bounds are checked where they are chosen
/// (`MediaRenderOptions`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ServerControl {
    pub(crate) part_hold_back: MediaTime,
    pub(crate) hold_back: Option<MediaTime>,
    pub(crate) can_skip_until: Option<MediaTime>,
}

impl fmt::Display for ServerControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={}",
            Secs(self.part_hold_back)
        )?;
        if let Some(hold_back) = self.hold_back {
            write!(f, ",HOLD-BACK={}", Secs(hold_back))?;
        }
        if let Some(skip) = self.can_skip_until {
            write!(f, ",CAN-SKIP-UNTIL={}", Secs(skip))?;
        }
        Ok(())
    }
}
