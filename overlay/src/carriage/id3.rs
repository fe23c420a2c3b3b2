//! An ID3v2.4 tag with one TXXX frame (ID3v2.4 structure §3.1, frames §4.2.6).

use super::CarriageError;

/// Largest value a 4-byte syncsafe integer holds (28 bits).
pub const MAX_SYNCSAFE: usize = (1 << 28) - 1;

const HEADER_LEN: usize = 10;
/// id3v2.4.0-frames §4: "$03 UTF-8 [UTF-8] encoded Unicode".
const ENCODING_UTF8: u8 = 0x03;

/// id3v2.4.0-structure §6.2: "the most significant bit (bit 7) is zeroed in
/// every byte, making a total of 28 bits".
fn syncsafe(n: usize) -> Result<[u8; 4], CarriageError> {
    if n > MAX_SYNCSAFE {
        return Err(CarriageError::Id3TooLarge);
    }
    let b = |shift: u32| ((n >> shift) & 0x7F) as u8;
    Ok([b(21), b(14), b(7), b(0)])
}

/// `ID3 04 00 00 <size>` + `TXXX <size> 00 00` + `03 description 00 value`.
///
/// id3v2.4.0-frames §4.2.6: "Text encoding $xx / Description <text string
/// according to encoding> $00 (00) / Value <text string according to encoding>".
/// With UTF-8 the terminator is one `$00`; the value is not terminated.
///
/// # Errors
/// [`CarriageError::Id3TooLarge`] past 256 MiB (a cue is at most ~16 KiB).
pub fn txxx_tag(description: &str, value: &[u8]) -> Result<Vec<u8>, CarriageError> {
    let frame_len = 1 + description.len() + 1 + value.len();
    let tag_len = HEADER_LEN + frame_len;
    let mut out = Vec::with_capacity(HEADER_LEN + tag_len);
    // Structure §3.1: "ID3" v4 rev 0, flags 0 (no unsynchronisation, no extended
    // header, no footer), size of the tag after this header.
    out.extend_from_slice(b"ID3\x04\x00\x00");
    out.extend_from_slice(&syncsafe(tag_len)?);
    // Structure §4.1: frame ID, syncsafe size of the frame after its header, flags 0.
    out.extend_from_slice(b"TXXX");
    out.extend_from_slice(&syncsafe(frame_len)?);
    out.extend_from_slice(&[0, 0]);
    out.push(ENCODING_UTF8);
    out.extend_from_slice(description.as_bytes());
    out.push(0);
    out.extend_from_slice(value);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes() {
        let tag = txxx_tag("com.dropline.cue", b"{}").unwrap();
        let mut want = b"ID3\x04\x00\x00\x00\x00\x00\x1e".to_vec();
        want.extend_from_slice(b"TXXX\x00\x00\x00\x14\x00\x00\x03com.dropline.cue\x00{}");
        assert_eq!(tag, want);
    }

    #[test]
    fn sizes_are_syncsafe() {
        // 200 bytes = 0b1_1001000: 0x01 0x48 when syncsafe.
        assert_eq!(syncsafe(200).unwrap(), [0, 0, 1, 0x48]);
        assert_eq!(syncsafe(MAX_SYNCSAFE).unwrap(), [0x7F; 4]);
        assert!(matches!(
            syncsafe(MAX_SYNCSAFE + 1),
            Err(CarriageError::Id3TooLarge)
        ));
        let tag = txxx_tag("d", &[b'x'; 300]).unwrap();
        assert_eq!(&tag[6..10], &syncsafe(tag.len() - 10).unwrap());
        assert!(tag[6..10].iter().chain(&tag[14..18]).all(|b| b & 0x80 == 0));
    }
}
