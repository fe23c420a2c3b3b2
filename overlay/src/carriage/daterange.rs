//! The `EXT-X-DATERANGE` tag line (rfc8216bis §4.4.5.1).

use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use packager::playlist::Secs;
use packager::units::{MediaTime, WallTime};

use super::CarriageError;

/// The attributes `CARRIAGE.md` §2 writes, in that order.
#[derive(Clone, Copy, Debug)]
pub struct DateRange<'a> {
    pub id: &'a str,
    pub class: &'a str,
    pub start: WallTime,
    pub duration_ms: Option<u32>,
    /// Written as `X-PAYLOAD`, base64url without padding.
    pub x_payload: &'a [u8],
}

fn quoted(attribute: &'static str, value: &str) -> Result<String, CarriageError> {
    // rfc8216bis §4.2: quoted-string "MUST NOT contain any double quote (0x22),
    // carriage return (0xD) or line feed (0xA)".
    if value.contains(['"', '\r', '\n']) {
        return Err(CarriageError::Unquotable { attribute });
    }
    Ok(format!("\"{value}\""))
}

/// `#EXT-X-DATERANGE:ID="…",CLASS="…",START-DATE="…"[,DURATION=…],X-PAYLOAD="…"`
/// (no line terminator).
///
/// §4.4.5.1: ID "REQUIRED"; CLASS "a client-defined string"; START-DATE
/// "REQUIRED", an ISO-8601 date (milliseconds here, as PROGRAM-DATE-TIME is);
/// DURATION a decimal-floating-point of seconds; "X-<client-attribute>" whose
/// name's characters are [A-Z], [0-9] and '-'.
///
/// # Errors
/// [`CarriageError::Unquotable`] if the id or class holds `"`, CR or LF.
pub fn daterange_line(d: &DateRange<'_>) -> Result<String, CarriageError> {
    let mut line = format!(
        "#EXT-X-DATERANGE:ID={},CLASS={},START-DATE={}",
        quoted("ID", d.id)?,
        quoted("CLASS", d.class)?,
        quoted("START-DATE", &d.start.to_rfc3339_millis())?,
    );
    if let Some(ms) = d.duration_ms {
        let _ = write!(
            line,
            ",DURATION={}",
            Secs(MediaTime::from_millis(i64::from(ms)))
        );
    }
    // base64url's alphabet ([A-Za-z0-9_-]) has nothing a quoted-string forbids.
    let _ = write!(
        line,
        ",X-PAYLOAD=\"{}\"",
        URL_SAFE_NO_PAD.encode(d.x_payload)
    );
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_line() {
        let d = DateRange {
            id: "c1",
            class: "com.dropline.offer-open",
            start: WallTime::from_millis(1_795_677_897_123),
            duration_ms: Some(30_500),
            x_payload: b"{\"a\":\"\xff?>\"}",
        };
        assert_eq!(
            daterange_line(&d).unwrap(),
            "#EXT-X-DATERANGE:ID=\"c1\",CLASS=\"com.dropline.offer-open\",\
             START-DATE=\"2026-11-26T07:24:57.123Z\",DURATION=30.5,X-PAYLOAD=\"eyJhIjoi_z8-In0\""
        );
        let d = DateRange {
            duration_ms: None,
            ..d
        };
        assert!(!daterange_line(&d).unwrap().contains("DURATION"));
    }

    #[test]
    fn refuses_unquotable_strings() {
        for bad in ["a\"b", "a\rb", "a\nb"] {
            let d = DateRange {
                id: bad,
                class: "c",
                start: WallTime(0),
                duration_ms: None,
                x_payload: b"",
            };
            assert!(matches!(
                daterange_line(&d),
                Err(CarriageError::Unquotable { attribute: "ID" })
            ));
        }
    }
}
