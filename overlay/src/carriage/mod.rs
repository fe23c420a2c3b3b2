//! Carriage: the bytes and lines that put a placed cue into the media
//! (`CARRIAGE.md` §1, emsg + ID3) and into the media playlist (§2,
//! EXT-X-DATERANGE).

mod daterange;
mod emsg;
mod id3;

pub use daterange::{DateRange, daterange_line};
pub use emsg::{EMSG_SCHEME_ID3, UNKNOWN_DURATION, emsg_v1};
pub use id3::{MAX_SYNCSAFE, txxx_tag};

#[derive(Debug, thiserror::Error)]
pub enum CarriageError {
    #[error("cue is not placed yet")]
    NotPlaced,
    #[error("ID3 tag larger than a 28-bit syncsafe size")]
    Id3TooLarge,
    #[error("emsg box could not be encoded")]
    Emsg(#[from] mp4_atom::Error),
    /// rfc8216bis §4.2: a quoted-string "MUST NOT contain … double quote (0x22),
    /// carriage return (0xD) or line feed (0xA)".
    #[error("`{attribute}` cannot be a quoted-string")]
    Unquotable { attribute: &'static str },
}
