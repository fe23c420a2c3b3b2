//! `EXT-X-PART` (rfc8216bis §4.4.4.9).
//!
//! The duration rules of parts (≤ PART-TARGET; ≥ 85 % of it except for
//! independent, gap and final parts) are enforced where parts are cut, not
//! here; this module only writes what was cut.

use std::fmt;

use crate::playlist::decimal::Secs;
use crate::playlist::names::ObjectName;
use crate::rendition::Part;

/// `#EXT-X-PART:DURATION=<s>,URI="part<seq>.m4s"[,INDEPENDENT=YES][,GAP=YES]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PartTag<'a>(pub(crate) &'a Part);

impl fmt::Display for PartTag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = self.0;
        write!(
            f,
            "#EXT-X-PART:DURATION={},URI=\"{}\"",
            Secs(part.duration),
            ObjectName::Part(part.seq)
        )?;
        // rfc8216bis §4.4.4.9 (INDEPENDENT): "every Partial Segment containing an
        // independent frame SHOULD carry it to increase the efficiency with which
        // clients can join and switch Renditions."
        if part.independent {
            f.write_str(",INDEPENDENT=YES")?;
        }
        // rfc8216bis §4.4.4.9 (GAP): "indicates that the Partial Segment is not
        // available"; clients skip it rather than request it.
        if part.gap {
            f.write_str(",GAP=YES")?;
        }
        Ok(())
    }
}
