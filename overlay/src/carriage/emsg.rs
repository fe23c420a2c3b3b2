//! The `emsg` box, version 1 (ISO/IEC 23009-1 §5.10.3.3), written with
//! mp4-atom's `Emsg` (an `Absolute` presentation time selects version 1).

use mp4_atom::{Emsg, EmsgTimestamp, Encode};

use super::CarriageError;

/// AOM "Carriage of ID3 Timed Metadata in CMAF" §3: "scheme_id_uri
/// https://aomedia.org/emsg/ID3", message_data a complete ID3v2.x tag.
pub const EMSG_SCHEME_ID3: &str = "https://aomedia.org/emsg/ID3";
/// ISO/IEC 23009-1 §5.10.3.3.4: event_duration "0xFFFF indicates an unknown
/// duration" (all ones of its 32 bits).
pub const UNKNOWN_DURATION: u32 = u32::MAX;

/// One emsg v1 box: timescale 90 kHz (`CARRIAGE.md` §1), value "" and the
/// given ID3 tag as message data.
///
/// # Errors
/// [`CarriageError::Emsg`] if mp4-atom refuses the box (it never does for the
/// sizes a cue has).
pub fn emsg_v1(
    presentation_time: u64,
    event_duration: u32,
    id: u32,
    id3_tag: Vec<u8>,
) -> Result<Vec<u8>, CarriageError> {
    let emsg = Emsg {
        timescale: packager::units::TS_TIMESCALE,
        presentation_time: EmsgTimestamp::Absolute(presentation_time),
        event_duration,
        id,
        scheme_id_uri: EMSG_SCHEME_ID3.to_owned(),
        value: String::new(),
        message_data: id3_tag,
    };
    let mut out = Vec::new();
    emsg.encode(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::Decode;

    #[test]
    fn golden_bytes_and_decode() {
        let b = emsg_v1(0x1_0000_0002, 90_000, 7, b"ID3".to_vec()).unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(&(8 + 4 + 4 + 8 + 4 + 4 + 29 + 1 + 3_u32).to_be_bytes());
        want.extend_from_slice(b"emsg\x01\x00\x00\x00");
        want.extend_from_slice(&90_000_u32.to_be_bytes());
        want.extend_from_slice(&0x1_0000_0002_u64.to_be_bytes());
        want.extend_from_slice(&90_000_u32.to_be_bytes());
        want.extend_from_slice(&7_u32.to_be_bytes());
        want.extend_from_slice(b"https://aomedia.org/emsg/ID3\x00\x00ID3");
        assert_eq!(b, want);
        let back = Emsg::decode(&mut b.as_slice()).unwrap();
        assert_eq!(
            back.presentation_time,
            EmsgTimestamp::Absolute(0x1_0000_0002)
        );
        assert_eq!(back.message_data, b"ID3");
        assert_eq!(back.value, "");
    }
}
