//! One CMAF fragment (or LL-HLS partial segment): `moof` + a single `mdat`.

use bytes::Bytes;
use mp4_atom::{Encode, Mfhd, Moof, Tfdt, Tfhd, Traf, Trun, TrunEntry};

use super::CmafError;
use super::init::check_track_ids;

/// One sample (access unit) of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragmentSample {
    /// Decode duration, in the track's timescale.
    pub duration: u32,
    /// PTS − DTS, in the track's timescale (signed: trun version 1).
    pub composition_offset: i32,
    /// A sync sample: an IDR picture, or any AAC frame (callers pass `true` for
    /// every audio sample).
    pub keyframe: bool,
    pub data: Bytes,
}

/// The samples of one track in one fragment, in decode order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackRun {
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale (`tfdt`).
    pub base_decode_time: u64,
    pub samples: Vec<FragmentSample>,
}

/// Size of the `mdat` header we write: 32-bit size + type, no 64-bit largesize
/// (every offset into the fragment must fit trun's 32-bit data_offset anyway).
const MDAT_HEADER_LEN: usize = 8;

/// ISO/IEC 14496-12 §8.8.3.1 sample flags: `sample_depends_on` is bits 24–25
/// (2 = "does not depend on others (I picture)"), `sample_is_non_sync_sample` bit 16.
const SYNC_SAMPLE_FLAGS: u32 = 2 << 24;
/// `sample_depends_on` = 1 ("does depend on others (not an I picture)"), non-sync.
const NON_SYNC_SAMPLE_FLAGS: u32 = (1 << 24) | (1 << 16);

/// Writes one fragment: `moof` (mfhd + one `traf` per run that has samples, in the
/// given order) and one `mdat` with the runs' sample data back to back, in the same
/// order.
///
/// # Errors
/// No samples in any run, a zero or repeated track ID, or sizes that do not fit
/// the boxes' 32-bit fields.
pub fn fragment(sequence_number: u32, runs: &[TrackRun]) -> Result<Bytes, CmafError> {
    let runs: Vec<&TrackRun> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    if runs.is_empty() {
        return Err(CmafError::EmptyFragment);
    }
    // §8.8.6 allows several traf per track, but CMAF has one per track per fragment.
    check_track_ids(runs.iter().map(|r| r.track_id))?;

    let mut data_lens = Vec::with_capacity(runs.len());
    let mut moof = Moof {
        mfhd: Mfhd { sequence_number },
        traf: Vec::with_capacity(runs.len()),
    };
    for run in &runs {
        let (traf, len) = traf(run)?;
        moof.traf.push(traf);
        data_lens.push(len);
    }

    // The data offsets depend on the moof's size, which does not depend on their
    // values (data_offset is a fixed 32-bit field): encode once with zeros to
    // measure, then fill them in and encode for real.
    let mut probe = Vec::new();
    moof.encode(&mut probe)?;
    let moof_len = probe.len();

    // §8.8.8.3: "data_offset is added to the implicit or explicit data_offset
    // established in the track fragment header"; with default-base-is-moof that base
    // is the first byte of this moof, so each run's offset is measured from there.
    let mut offset = moof_len
        .checked_add(MDAT_HEADER_LEN)
        .ok_or(CmafError::FragmentTooLarge)?;
    for (traf, len) in moof.traf.iter_mut().zip(&data_lens) {
        let data_offset = i32::try_from(offset).map_err(|_| CmafError::FragmentTooLarge)?;
        for trun in &mut traf.trun {
            trun.data_offset = Some(data_offset);
        }
        offset = offset
            .checked_add(*len)
            .ok_or(CmafError::FragmentTooLarge)?;
    }
    let total = offset;
    let mdat_size = u32::try_from(total - moof_len).map_err(|_| CmafError::FragmentTooLarge)?;

    let mut out = Vec::with_capacity(total);
    moof.encode(&mut out)?;
    if out.len() != moof_len {
        // Would mean the offsets written above point at the wrong bytes.
        return Err(CmafError::MoofSizeChanged);
    }
    out.extend_from_slice(&mdat_size.to_be_bytes());
    out.extend_from_slice(b"mdat");
    for run in &runs {
        for sample in &run.samples {
            out.extend_from_slice(&sample.data);
        }
    }
    debug_assert_eq!(out.len(), total);
    Ok(Bytes::from(out))
}

/// The traf for one non-empty run (its trun data_offset still 0) and the number
/// of bytes the run puts in the mdat.
fn traf(run: &TrackRun) -> Result<(Traf, usize), CmafError> {
    let mut len = 0usize;
    let mut entries = Vec::with_capacity(run.samples.len());
    for s in &run.samples {
        let size =
            u32::try_from(s.data.len()).map_err(|_| CmafError::SampleTooLarge(s.data.len()))?;
        len = len
            .checked_add(s.data.len())
            .ok_or(CmafError::FragmentTooLarge)?;
        entries.push(TrunEntry {
            duration: Some(s.duration),
            size: Some(size),
            flags: Some(if s.keyframe {
                SYNC_SAMPLE_FLAGS
            } else {
                NON_SYNC_SAMPLE_FLAGS
            }),
            // Every value fits i32, so mp4-atom writes trun version 1 (signed offsets).
            cts: Some(i64::from(s.composition_offset)),
        });
    }
    // sample_count is a u32 in trun.
    u32::try_from(entries.len()).map_err(|_| CmafError::FragmentTooLarge)?;

    let traf = Traf {
        // CMAF: no base-data-offset, default-base-is-moof set, so the fragment is
        // self-contained and can be served on its own (as an LL-HLS part).
        tfhd: Tfhd {
            track_id: run.track_id,
            default_base_is_moof: true,
            ..Default::default()
        },
        // mp4-atom always writes tfdt version 1 (64-bit), which never wraps.
        tfdt: Some(Tfdt {
            base_media_decode_time: run.base_decode_time,
        }),
        trun: vec![Trun {
            data_offset: Some(0),
            samples: entries.into(),
        }],
        ..Default::default()
    };
    Ok((traf, len))
}

#[cfg(test)]
// Convention 7 wants `allow-unwrap-in-tests` in clippy.toml; none exists yet.
#[allow(clippy::unwrap_used)]
mod tests {
    use mp4_atom::{Buf, Decode, FourCC, Header, TrunSamples};

    use super::*;

    fn sample(duration: u32, cts: i32, keyframe: bool, data: &[u8]) -> FragmentSample {
        FragmentSample {
            duration,
            composition_offset: cts,
            keyframe,
            data: Bytes::copy_from_slice(data),
        }
    }

    fn video_run() -> TrackRun {
        TrackRun {
            track_id: 1,
            base_decode_time: (1 << 33) + 17, // beyond 32 bits: needs tfdt v1
            samples: vec![
                sample(3600, 7200, true, b"IDR-frame"),
                sample(3600, -3600, false, b"B"),
                sample(3600, 0, false, b"P-frame!"),
            ],
        }
    }

    fn audio_run() -> TrackRun {
        TrackRun {
            track_id: 2,
            base_decode_time: 96_000,
            samples: vec![
                sample(1024, 0, true, b"aac-0"),
                sample(1024, 0, true, b"aac-1-longer"),
            ],
        }
    }

    /// Splits a fragment into its moof (decoded), the moof's byte length and the
    /// mdat payload's position.
    fn split(frag: &[u8]) -> (Moof, usize, usize) {
        let mut buf = frag;
        let moof = Moof::decode(&mut buf).unwrap();
        let moof_len = frag.len() - buf.len();
        let header = Header::decode(&mut buf).unwrap();
        assert_eq!(header.kind, FourCC::new(b"mdat"));
        assert_eq!(header.size, Some(buf.remaining()), "mdat size");
        (moof, moof_len, moof_len + MDAT_HEADER_LEN)
    }

    fn entries(trun: &Trun) -> Vec<TrunEntry> {
        trun.samples.iter().collect()
    }

    /// The bytes of each sample, located through the trun of each traf.
    fn samples_by_offset(frag: &[u8], moof: &Moof) -> Vec<Vec<Vec<u8>>> {
        moof.traf
            .iter()
            .map(|traf| {
                assert!(traf.tfhd.default_base_is_moof);
                assert_eq!(traf.tfhd.base_data_offset, None);
                assert_eq!(traf.trun.len(), 1);
                let mut at = usize::try_from(traf.trun[0].data_offset.unwrap()).unwrap();
                entries(&traf.trun[0])
                    .into_iter()
                    .map(|e| {
                        let size = e.size.unwrap() as usize;
                        at += size;
                        frag[at - size..at].to_vec()
                    })
                    .collect()
            })
            .collect()
    }

    /// Version byte of the first box of type `kind` (found by scanning; fine for
    /// the small fragments here).
    fn version_of(frag: &[u8], kind: &[u8; 4]) -> u8 {
        let at = frag.windows(4).position(|w| w == kind).unwrap();
        frag[at + 4]
    }

    #[test]
    fn two_tracks_read_back() {
        let runs = [video_run(), audio_run()];
        let frag = fragment(42, &runs).unwrap();
        let (moof, moof_len, mdat_payload) = split(&frag);

        assert_eq!(moof.mfhd.sequence_number, 42);
        assert_eq!(moof.traf.len(), 2);
        for (traf, run) in moof.traf.iter().zip(&runs) {
            assert_eq!(traf.tfhd.track_id, run.track_id);
            assert_eq!(
                traf.tfdt.as_ref().unwrap().base_media_decode_time,
                run.base_decode_time
            );
            let got = entries(&traf.trun[0]);
            assert_eq!(got.len(), run.samples.len());
            for (e, s) in got.iter().zip(&run.samples) {
                assert_eq!(e.duration, Some(s.duration));
                assert_eq!(e.size, Some(u32::try_from(s.data.len()).unwrap()));
                assert_eq!(e.cts, Some(i64::from(s.composition_offset)));
                let flags = e.flags.unwrap();
                let depends_on = (flags >> 24) & 0b11;
                let non_sync = (flags >> 16) & 1;
                if s.keyframe {
                    assert_eq!((depends_on, non_sync), (2, 0));
                } else {
                    assert_eq!((depends_on, non_sync), (1, 1));
                }
            }
        }

        // data_offset: from the moof's first byte to each run's first byte in mdat.
        let video_len: usize = runs[0].samples.iter().map(|s| s.data.len()).sum();
        assert_eq!(
            moof.traf[0].trun[0].data_offset,
            Some(i32::try_from(mdat_payload).unwrap())
        );
        assert_eq!(
            moof.traf[1].trun[0].data_offset,
            Some(i32::try_from(mdat_payload + video_len).unwrap())
        );
        assert_eq!(mdat_payload, moof_len + 8);

        let expected: Vec<Vec<Vec<u8>>> = runs
            .iter()
            .map(|r| r.samples.iter().map(|s| s.data.to_vec()).collect())
            .collect();
        assert_eq!(samples_by_offset(&frag, &moof), expected);

        assert_eq!(version_of(&frag, b"trun"), 1, "trun version");
        assert_eq!(version_of(&frag, b"tfdt"), 1, "tfdt version");
    }

    #[test]
    fn empty_runs_are_omitted() {
        let empty = TrackRun {
            track_id: 1,
            base_decode_time: 0,
            samples: Vec::new(),
        };
        let frag = fragment(1, &[empty, audio_run()]).unwrap();
        let (moof, _, _) = split(&frag);
        assert_eq!(moof.traf.len(), 1);
        assert_eq!(moof.traf[0].tfhd.track_id, 2);
        assert_eq!(
            samples_by_offset(&frag, &moof),
            [vec![b"aac-0".to_vec(), b"aac-1-longer".to_vec()]]
        );
    }

    #[test]
    fn single_sample_run() {
        // mp4-atom stores a lone sample's flags as first_sample_flags; same meaning.
        let run = TrackRun {
            track_id: 3,
            base_decode_time: 0,
            samples: vec![sample(3600, 0, false, b"x")],
        };
        let frag = fragment(1, &[run]).unwrap();
        let (moof, _, _) = split(&frag);
        let e = entries(&moof.traf[0].trun[0]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].flags, Some(NON_SYNC_SAMPLE_FLAGS));
        assert!(matches!(
            moof.traf[0].trun[0].samples,
            TrunSamples::Explicit(_)
        ));
        assert_eq!(samples_by_offset(&frag, &moof), [vec![b"x".to_vec()]]);
    }

    #[test]
    fn empty_samples_still_count() {
        // A zero-length sample is legal and still occupies a trun entry.
        let run = TrackRun {
            track_id: 1,
            base_decode_time: 0,
            samples: vec![sample(1024, 0, true, b""), sample(1024, 0, true, b"ab")],
        };
        let frag = fragment(1, &[run]).unwrap();
        let (moof, _, _) = split(&frag);
        assert_eq!(
            samples_by_offset(&frag, &moof),
            [vec![Vec::new(), b"ab".to_vec()]]
        );
    }

    #[test]
    fn rejects_bad_fragments() {
        assert!(matches!(fragment(1, &[]), Err(CmafError::EmptyFragment)));
        let empty = TrackRun {
            track_id: 1,
            base_decode_time: 0,
            samples: Vec::new(),
        };
        assert!(matches!(
            fragment(1, &[empty]),
            Err(CmafError::EmptyFragment)
        ));
        let mut zero = audio_run();
        zero.track_id = 0;
        assert!(matches!(fragment(1, &[zero]), Err(CmafError::ZeroTrackId)));
        assert!(matches!(
            fragment(1, &[audio_run(), audio_run()]),
            Err(CmafError::DuplicateTrackId(2))
        ));
    }
}
