//! CMAF (ISO/IEC 23000-19) init segments and fragments, written with `mp4-atom`.
//!
//! Pure functions from our own description structs to bytes: [`init_segment`] for the
//! `ftyp` + `moov` header, [`fragment`] for one `moof` + `mdat`. Nothing here reads a
//! clock or keeps state; sizes and offsets are checked, never cast blindly.
//!
//! Strict CMAF puts each track in its own track file; HLS also allows one fMP4
//! rendition to carry video and audio together, so both writers take several tracks.

mod fragment;
mod init;
#[cfg(test)]
// Convention 7 wants `allow-unwrap-in-tests` in clippy.toml; none exists yet.
#[allow(clippy::unwrap_used)]
mod tests;

pub use fragment::{FragmentSample, TrackRun, fragment};
pub use init::{TrackSpec, init_segment};

/// Why a CMAF header or fragment could not be written. Every variant is a problem
/// with the description we were given, except [`CmafError::MoofSizeChanged`] and
/// [`CmafError::Encode`].
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CmafError {
    #[error("an init segment needs at least one track")]
    NoTracks,
    /// ISO/IEC 14496-12 §8.3.2.3: "Track IDs are never re-used and cannot be zero."
    #[error("track ID 0 is reserved")]
    ZeroTrackId,
    #[error("track ID {0} appears more than once")]
    DuplicateTrackId(u32),
    #[error("invalid AVCDecoderConfigurationRecord")]
    InvalidAvcc(#[source] Mp4AtomError),
    #[error("AVCDecoderConfigurationRecord has {0} unexpected trailing bytes")]
    AvccTrailingBytes(usize),
    #[error("AVCDecoderConfigurationRecord carries no SPS or no PPS")]
    MissingParameterSets,
    #[error("AudioSpecificConfig must be at least 2 bytes, got {0}")]
    ShortAudioSpecificConfig(usize),
    #[error("AAC sample rate {0} Hz is not supported (must be 1..=65535)")]
    UnsupportedSampleRate(u32),
    #[error("AAC channel count must not be 0")]
    NoChannels,
    #[error("a fragment needs at least one sample")]
    EmptyFragment,
    #[error("sample of {0} bytes does not fit a 32-bit trun size")]
    SampleTooLarge(usize),
    #[error("fragment too large for 32-bit box sizes and data offsets")]
    FragmentTooLarge,
    /// Internal: the second encoding pass of a moof came out a different size.
    #[error("moof size changed between encoding passes")]
    MoofSizeChanged,
    #[error("failed to encode ISO BMFF boxes")]
    Encode(#[source] Mp4AtomError),
}

impl From<mp4_atom::Error> for CmafError {
    fn from(e: mp4_atom::Error) -> Self {
        Self::Encode(Mp4AtomError(e))
    }
}

/// An `mp4-atom` error. It compares by message (the crate's error holds an
/// `io::Error`, which has no equality) so that `CmafError` and the errors that
/// wrap it can be `Eq`.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Mp4AtomError(pub mp4_atom::Error);

impl PartialEq for Mp4AtomError {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Mp4AtomError {}
