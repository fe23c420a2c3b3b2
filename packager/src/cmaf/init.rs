//! The CMAF header (ISO/IEC 23000-19): `ftyp` + `moov`, with empty sample
//! tables and an `mvex` so that every sample arrives later in movie fragments.

use std::collections::HashSet;

use bytes::Bytes;
use mp4_atom::{
    Atom, Audio, Avc1, Avcc, BufMut, Dinf, Dref, Encode, Esds, FixedPoint, FourCC, Ftyp, Hdlr,
    Mdhd, Mdia, Minf, Moov, Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsd, Tkhd, Trak, Trex, Url,
    Visual, Vmhd, esds,
};

use super::{CmafError, Mp4AtomError};
use crate::sample::Codec;

/// One track of the init segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackSpec {
    /// The `track_ID`; fragments name the track with the same value.
    pub track_id: u32,
    pub codec: Codec,
}

/// The movie timescale only scales `mvhd`/`tkhd` durations, which are 0 here
/// (the duration lives in the fragments), so any value works; 1000 is customary.
const MOVIE_TIMESCALE: u32 = 1000;

/// ISO/IEC 14496-1 §7.2.6.6.2, Table 5: objectTypeIndication 0x40 is "Audio ISO/IEC 14496-3".
const OTI_MPEG4_AUDIO: u8 = 0x40;
/// ISO/IEC 14496-1 §7.2.6.6.2, Table 6: streamType 0x05 is AudioStream.
const STREAM_TYPE_AUDIO: u8 = 0x05;

/// Writes the CMAF header for `tracks`: `ftyp` then `moov` (mvhd, one `trak` per
/// track in the given order, `mvex` with one `trex` per track).
///
/// # Errors
/// No tracks, a zero or repeated track ID, an unusable avcC record or AAC config.
pub fn init_segment(tracks: &[TrackSpec]) -> Result<Bytes, CmafError> {
    let max_id = check_track_ids(tracks.iter().map(|t| t.track_id))?.ok_or(CmafError::NoTracks)?;

    let traks = tracks.iter().map(trak).collect::<Result<Vec<_>, _>>()?;
    let mvhd = Mvhd {
        timescale: MOVIE_TIMESCALE,
        rate: 1.into(),
        volume: 1.into(),
        // §8.2.2.3: "if this value is equal to all 1s (32-bit maxint), and a new media
        // track is to be added, then a search must be made in the file for an unused
        // track identifier."
        next_track_id: max_id.saturating_add(1),
        ..Default::default()
    };
    let mvex = Mvex {
        mehd: None,
        trex: tracks
            .iter()
            .map(|t| Trex {
                track_id: t.track_id,
                // Every trun carries its own durations, sizes and flags; only the
                // sample entry index needs a default (there is a single entry).
                default_sample_description_index: 1,
                ..Default::default()
            })
            .collect(),
    };

    let mut buf = Vec::new();
    ftyp().encode(&mut buf)?;
    // mp4-atom's Moov writes mvex before the traks; write the customary order instead
    // (mvhd, trak…, mvex, as ffmpeg and GStreamer do) in case a player is picky.
    buf.encode_atom(Moov::KIND, |buf| {
        mvhd.encode(buf)?;
        for t in &traks {
            t.encode(buf)?;
        }
        mvex.encode(buf)
    })?;
    Ok(Bytes::from(buf))
}

/// Checks that every track ID is non-zero and unique; returns the largest, or
/// `None` when there are no IDs at all.
pub(super) fn check_track_ids(ids: impl Iterator<Item = u32>) -> Result<Option<u32>, CmafError> {
    let mut seen = HashSet::new();
    let mut max = None;
    for id in ids {
        if id == 0 {
            return Err(CmafError::ZeroTrackId);
        }
        if !seen.insert(id) {
            return Err(CmafError::DuplicateTrackId(id));
        }
        max = max.max(Some(id));
    }
    Ok(max)
}

fn ftyp() -> Ftyp {
    // 'cmfc' is the CMAF track brand (ISO/IEC 23000-19); 'iso6' covers the
    // ISO BMFF features we use (tfdt, signed composition offsets in trun v1).
    Ftyp {
        major_brand: FourCC::new(b"iso6"),
        minor_version: 0,
        compatible_brands: vec![
            FourCC::new(b"iso6"),
            FourCC::new(b"cmfc"),
            FourCC::new(b"mp41"),
        ],
    }
}

fn trak(spec: &TrackSpec) -> Result<Trak, CmafError> {
    let mut tkhd = Tkhd {
        track_id: spec.track_id,
        enabled: true,
        in_movie: true,
        ..Default::default()
    };
    let (handler, name, vmhd, smhd, entry) = match &spec.codec {
        Codec::H264 {
            avcc,
            width,
            height,
        } => {
            tkhd.width = FixedPoint::from(*width);
            tkhd.height = FixedPoint::from(*height);
            let entry = Avc1 {
                visual: Visual {
                    // §8.7.2: the single `url ` entry of dref, media in this file.
                    data_reference_index: 1,
                    width: *width,
                    height: *height,
                    ..Default::default()
                },
                avcc: parse_avcc(avcc)?,
                ..Default::default()
            };
            (
                b"vide",
                "VideoHandler",
                Some(Vmhd::default()),
                None,
                entry.into(),
            )
        }
        Codec::Aac {
            audio_specific_config,
            sample_rate,
            channels,
        } => {
            // §8.3.2.3: volume is 1.0 ("full volume") for an audio track, 0 otherwise.
            tkhd.volume = 1.into();
            let entry = mp4a(audio_specific_config, *sample_rate, *channels)?;
            (
                b"soun",
                "SoundHandler",
                None,
                Some(Smhd::default()),
                entry.into(),
            )
        }
    };

    Ok(Trak {
        tkhd,
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: spec.codec.timescale(),
                language: "und".to_owned(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: FourCC::new(handler),
                name: name.to_owned(),
            },
            minf: Minf {
                vmhd,
                smhd,
                dinf: Dinf {
                    dref: Dref {
                        // An empty location sets the self-contained flag.
                        entries: vec![Url::default().into()],
                    },
                },
                // Fragmented: every sample table is empty (entry_count 0); the
                // samples are described by the trun boxes of each moof.
                stbl: Stbl {
                    stsd: Stsd {
                        codecs: vec![entry],
                    },
                    stco: Some(Stco::default()),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        ..Default::default()
    })
}

/// Reads an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1) into the
/// crate's struct, which writes it back field for field.
fn parse_avcc(record: &[u8]) -> Result<Avcc, CmafError> {
    let mut rest = record;
    let avcc = Avcc::decode_body(&mut rest).map_err(|e| CmafError::InvalidAvcc(Mp4AtomError(e)))?;
    if !rest.is_empty() {
        return Err(CmafError::AvccTrailingBytes(rest.len()));
    }
    // The 'avc1' sample entry (unlike 'avc3') keeps the parameter sets out of band,
    // so a decoder has nothing to start from without them.
    if avcc.sequence_parameter_sets.is_empty() || avcc.picture_parameter_sets.is_empty() {
        return Err(CmafError::MissingParameterSets);
    }
    Ok(avcc)
}

fn mp4a(asc: &[u8], sample_rate: u32, channels: u16) -> Result<Mp4a, CmafError> {
    // The AudioSampleEntry samplerate is 16.16 fixed point, so it holds at most 65535 Hz.
    let rate = u16::try_from(sample_rate)
        .ok()
        .filter(|r| *r > 0)
        .ok_or(CmafError::UnsupportedSampleRate(sample_rate))?;
    if channels == 0 {
        return Err(CmafError::NoChannels);
    }
    // audioObjectType (5 bits) + samplingFrequencyIndex (4) + channelConfiguration (4)
    // is the shortest config there is (ISO/IEC 14496-3 §1.6.2.1).
    let [b0, b1, ..] = *asc else {
        return Err(CmafError::ShortAudioSpecificConfig(asc.len()));
    };

    Ok(Mp4a {
        audio: Audio {
            data_reference_index: 1,
            channel_count: channels,
            // §12.2.3: samplesize "is in bits, and takes the default value of 16".
            sample_size: 16,
            sample_rate: FixedPoint::from(rate),
        },
        esds: Esds {
            es_desc: esds::EsDescriptor {
                // ISO/IEC 14496-14: ES_ID is "set to 0 as stored; when built into a
                // stream, the lower 16 bits of the TrackID are used."
                es_id: 0,
                depends_on_es_id: None,
                url: None,
                ocr_es_id: None,
                stream_priority: 0,
                dec_config: esds::DecoderConfig {
                    object_type_indication: OTI_MPEG4_AUDIO,
                    stream_type: STREAM_TYPE_AUDIO,
                    up_stream: 0,
                    // Unknown up front; 0 is what encoders write when they do not know.
                    buffer_size_db: Default::default(),
                    max_bitrate: 0,
                    avg_bitrate: 0,
                    dec_specific: Some(esds::DecoderSpecific {
                        // Informational view of the first bytes; `raw` is what is written.
                        profile: b0 >> 3,
                        freq_index: ((b0 & 0x07) << 1) | (b1 >> 7),
                        chan_conf: (b1 >> 3) & 0x0f,
                        raw: asc.to_vec(),
                    }),
                },
                sl_config: esds::SLConfig::default(),
            },
        },
        btrt: None,
        taic: None,
    })
}

#[cfg(test)]
// Convention 7 wants `allow-unwrap-in-tests` in clippy.toml; none exists yet.
#[allow(clippy::unwrap_used)]
mod tests {
    use mp4_atom::{Any, Codec as Mp4Codec, Decode};

    use super::*;

    const AVCC: &[u8] = include_bytes!("../../../fixtures/media/h264.avcc");
    const ASC: &[u8] = include_bytes!("../../../fixtures/media/aac.asc");

    fn video(track_id: u32) -> TrackSpec {
        TrackSpec {
            track_id,
            codec: Codec::H264 {
                avcc: Bytes::from_static(AVCC),
                width: 320,
                height: 240,
            },
        }
    }

    fn audio(track_id: u32) -> TrackSpec {
        TrackSpec {
            track_id,
            codec: Codec::Aac {
                audio_specific_config: Bytes::from_static(ASC),
                sample_rate: 48_000,
                channels: 2,
            },
        }
    }

    fn decode(init: &[u8]) -> (Ftyp, Moov) {
        let mut buf = init;
        let ftyp = Ftyp::decode(&mut buf).unwrap();
        let moov = Moov::decode(&mut buf).unwrap();
        assert!(buf.is_empty(), "trailing bytes after moov");
        (ftyp, moov)
    }

    /// Top-level child box types of the moov at `init`, in order.
    fn moov_children(init: &[u8]) -> Vec<FourCC> {
        let mut buf = init;
        let _ = Ftyp::decode(&mut buf).unwrap();
        let mut body = &buf[8..];
        let mut kinds = Vec::new();
        while !body.is_empty() {
            kinds.push(Any::decode(&mut body).unwrap().kind());
        }
        kinds
    }

    #[test]
    fn video_and_audio_read_back() {
        let init = init_segment(&[video(1), audio(2)]).unwrap();
        let (ftyp, moov) = decode(&init);

        assert_eq!(ftyp.major_brand, FourCC::new(b"iso6"));
        assert_eq!(
            ftyp.compatible_brands,
            [b"iso6", b"cmfc", b"mp41"].map(FourCC::new).to_vec()
        );
        assert_eq!(moov.mvhd.next_track_id, 3);
        assert_eq!(moov.trak.len(), 2);

        let v = &moov.trak[0];
        assert_eq!(v.tkhd.track_id, 1);
        assert_eq!(v.tkhd.width.integer(), 320);
        assert_eq!(v.tkhd.height.integer(), 240);
        assert_eq!(v.mdia.mdhd.timescale, 90_000);
        assert_eq!(v.mdia.hdlr.handler, FourCC::new(b"vide"));
        assert!(v.mdia.minf.vmhd.is_some() && v.mdia.minf.smhd.is_none());
        let Mp4Codec::Avc1(avc1) = &v.mdia.minf.stbl.stsd.codecs[0] else {
            panic!("video sample entry is not avc1");
        };
        assert_eq!((avc1.visual.width, avc1.visual.height), (320, 240));
        // The fixture's SPS and PPS, as the record lists them.
        assert_eq!(
            avc1.avcc.sequence_parameter_sets,
            [AVCC[8..8 + 25].to_vec()]
        );
        assert_eq!(
            avc1.avcc.picture_parameter_sets,
            [AVCC[36..36 + 5].to_vec()]
        );
        assert_eq!(avc1.avcc.avc_profile_indication, 100);
        assert_eq!(avc1.avcc.length_size, 4);

        let a = &moov.trak[1];
        assert_eq!(a.tkhd.track_id, 2);
        assert_eq!(a.tkhd.volume.integer(), 1);
        assert_eq!(a.mdia.mdhd.timescale, 48_000);
        assert_eq!(a.mdia.hdlr.handler, FourCC::new(b"soun"));
        assert!(a.mdia.minf.smhd.is_some() && a.mdia.minf.vmhd.is_none());
        let Mp4Codec::Mp4a(mp4a) = &a.mdia.minf.stbl.stsd.codecs[0] else {
            panic!("audio sample entry is not mp4a");
        };
        assert_eq!(mp4a.audio.channel_count, 2);
        assert_eq!(mp4a.audio.sample_rate.integer(), 48_000);
        let dec = &mp4a.esds.es_desc.dec_config;
        assert_eq!(dec.object_type_indication, 0x40);
        assert_eq!(dec.stream_type, 5);
        let dsi = dec.dec_specific.as_ref().unwrap();
        assert_eq!(dsi.raw, ASC);
        assert_eq!((dsi.profile, dsi.freq_index, dsi.chan_conf), (2, 3, 2));

        for t in &moov.trak {
            let stbl = &t.mdia.minf.stbl;
            assert!(stbl.stts.entries.is_empty());
            assert!(stbl.stsc.entries.is_empty());
            assert_eq!(stbl.stsz, mp4_atom::Stsz::default());
            assert!(stbl.stco.as_ref().unwrap().entries.is_empty());
            assert_eq!(stbl.stsd.codecs.len(), 1);
        }

        let trex = &moov.mvex.as_ref().unwrap().trex;
        assert_eq!(trex.iter().map(|t| t.track_id).collect::<Vec<_>>(), [1, 2]);
        assert!(trex.iter().all(|t| t.default_sample_description_index == 1));
    }

    #[test]
    fn avcc_record_is_written_back_unchanged() {
        let init = init_segment(&[video(1)]).unwrap();
        let at = init
            .windows(4)
            .position(|w| w == b"avcC")
            .expect("no avcC box");
        let size = u32::from_be_bytes(init[at - 4..at].try_into().unwrap()) as usize;
        assert_eq!(&init[at + 4..at - 4 + size], AVCC);
    }

    #[test]
    fn avcc_without_high_profile_extension() {
        // Baseline: no chroma/bit-depth trailer after the PPS list.
        let sps = [0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5];
        let pps = [0x68, 0xce, 0x3c, 0x80];
        let mut record = vec![1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, sps.len() as u8];
        record.extend_from_slice(&sps);
        record.extend_from_slice(&[1, 0, pps.len() as u8]);
        record.extend_from_slice(&pps);

        let init = init_segment(&[TrackSpec {
            track_id: 7,
            codec: Codec::H264 {
                avcc: Bytes::from(record.clone()),
                width: 640,
                height: 360,
            },
        }])
        .unwrap();
        let (_, moov) = decode(&init);
        let Mp4Codec::Avc1(avc1) = &moov.trak[0].mdia.minf.stbl.stsd.codecs[0] else {
            panic!("not avc1");
        };
        assert_eq!(avc1.avcc.sequence_parameter_sets, [sps.to_vec()]);
        assert_eq!(avc1.avcc.picture_parameter_sets, [pps.to_vec()]);
        assert!(avc1.avcc.ext.is_none());
        assert_eq!(moov.mvhd.next_track_id, 8);
    }

    #[test]
    fn moov_children_in_customary_order() {
        let init = init_segment(&[video(1), audio(2)]).unwrap();
        assert_eq!(
            moov_children(&init),
            [b"mvhd", b"trak", b"trak", b"mvex"]
                .map(FourCC::new)
                .to_vec()
        );
    }

    #[test]
    fn next_track_id_saturates() {
        let init = init_segment(&[audio(u32::MAX)]).unwrap();
        assert_eq!(decode(&init).1.mvhd.next_track_id, u32::MAX);
    }

    #[test]
    fn rejects_bad_track_lists() {
        assert!(matches!(init_segment(&[]), Err(CmafError::NoTracks)));
        assert!(matches!(
            init_segment(&[video(0)]),
            Err(CmafError::ZeroTrackId)
        ));
        assert!(matches!(
            init_segment(&[video(1), audio(1)]),
            Err(CmafError::DuplicateTrackId(1))
        ));
    }

    fn h264_with(avcc: &[u8]) -> Result<Bytes, CmafError> {
        init_segment(&[TrackSpec {
            track_id: 1,
            codec: Codec::H264 {
                avcc: Bytes::copy_from_slice(avcc),
                width: 320,
                height: 240,
            },
        }])
    }

    #[test]
    fn rejects_bad_avcc() {
        // Every truncation of a valid record fails cleanly, none panics; except
        // that cutting exactly the High-profile trailer leaves a valid record.
        const WITHOUT_EXT: usize = 41;
        for len in 0..AVCC.len() {
            let res = h264_with(&AVCC[..len]);
            assert_eq!(res.is_ok(), len == WITHOUT_EXT, "prefix of {len} bytes");
        }
        let mut trailing = AVCC.to_vec();
        trailing.push(0);
        assert!(h264_with(&trailing).is_err());

        let mut bad_version = AVCC.to_vec();
        bad_version[0] = 2;
        assert!(matches!(
            h264_with(&bad_version),
            Err(CmafError::InvalidAvcc(_))
        ));

        // A record without a PPS.
        let no_pps = [
            1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0xc0, 0x1e, 0,
        ];
        assert!(matches!(
            h264_with(&no_pps),
            Err(CmafError::MissingParameterSets)
        ));
    }

    fn aac_with(asc: &[u8], sample_rate: u32, channels: u16) -> Result<Bytes, CmafError> {
        init_segment(&[TrackSpec {
            track_id: 1,
            codec: Codec::Aac {
                audio_specific_config: Bytes::copy_from_slice(asc),
                sample_rate,
                channels,
            },
        }])
    }

    #[test]
    fn rejects_bad_aac() {
        assert!(matches!(
            aac_with(&[0x11], 48_000, 2),
            Err(CmafError::ShortAudioSpecificConfig(1))
        ));
        assert!(matches!(
            aac_with(ASC, 96_000, 2),
            Err(CmafError::UnsupportedSampleRate(96_000))
        ));
        assert!(matches!(
            aac_with(ASC, 0, 2),
            Err(CmafError::UnsupportedSampleRate(0))
        ));
        assert!(matches!(
            aac_with(ASC, 48_000, 0),
            Err(CmafError::NoChannels)
        ));
        // The 2-byte minimum is enough.
        assert!(aac_with(&[0x11, 0x90], 48_000, 2).is_ok());
    }
}
