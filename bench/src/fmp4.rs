//! Reads what the benchmark needs from CMAF: the video track of an init
//! segment, the video run (decode time, sample count) of a part, and the
//! event messages (`emsg`) it carries.

use anyhow::{Context, bail};
use mp4_atom::{Any, DecodeMaybe, FourCC, Moof, Moov};

/// The video track as the init segment declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoTrack {
    pub track_id: u32,
    pub timescale: u32,
    /// `trex` default sample duration, for runs without per-sample durations.
    pub default_duration: u32,
}

/// The video samples of one part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoRun {
    /// `tfdt`, in the track's timescale.
    pub base_decode_time: u64,
    /// Each sample's decode duration, in the track's timescale.
    pub durations: Vec<u32>,
}

fn top_level(data: &[u8]) -> anyhow::Result<Vec<Any>> {
    let mut buf = data;
    let mut out = Vec::new();
    while !buf.is_empty() {
        match Any::decode_maybe(&mut buf).context("undecodable box")? {
            Some(atom) => out.push(atom),
            None => bail!("truncated box"),
        }
    }
    Ok(out)
}

/// The first `vide` track of an init segment.
pub fn video_track(init: &[u8]) -> anyhow::Result<VideoTrack> {
    let moov: Moov = top_level(init)?
        .into_iter()
        .find_map(|a| match a {
            Any::Moov(m) => Some(m),
            _ => None,
        })
        .context("init segment without moov")?;
    let trak = moov
        .trak
        .iter()
        .find(|t| t.mdia.hdlr.handler == FourCC::new(b"vide"))
        .context("init segment without a video track")?;
    let track_id = trak.tkhd.track_id;
    let default_duration = moov
        .mvex
        .iter()
        .flat_map(|m| &m.trex)
        .find(|t| t.track_id == track_id)
        .map_or(0, |t| t.default_sample_duration);
    Ok(VideoTrack {
        track_id,
        timescale: trak.mdia.mdhd.timescale,
        default_duration,
    })
}

/// The run of `track` in a part (`moof` + `mdat`).
pub fn video_run(part: &[u8], track: &VideoTrack) -> anyhow::Result<VideoRun> {
    let moof: Moof = top_level(part)?
        .into_iter()
        .find_map(|a| match a {
            Any::Moof(m) => Some(m),
            _ => None,
        })
        .context("part without moof")?;
    let traf = moof
        .traf
        .iter()
        .find(|t| t.tfhd.track_id == track.track_id)
        .context("part without a video traf")?;
    let tfdt = traf.tfdt.as_ref().context("video traf without tfdt")?;
    let fallback = traf
        .tfhd
        .default_sample_duration
        .unwrap_or(track.default_duration);
    let durations = traf
        .trun
        .iter()
        .flat_map(|r| r.samples.iter())
        .map(|e| e.duration.unwrap_or(fallback))
        .collect();
    Ok(VideoRun {
        base_decode_time: tfdt.base_media_decode_time,
        durations,
    })
}

/// An event message before a part's `moof` (ISO/IEC 23009-1 §5.10.3.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventMessage {
    pub scheme_id_uri: String,
    /// On the track timeline, in `timescale` (version 1: absolute).
    pub presentation_time: u64,
    pub timescale: u32,
    pub message_data: Vec<u8>,
}

/// The `emsg` boxes of a part, in order.
pub fn event_messages(part: &[u8]) -> anyhow::Result<Vec<EventMessage>> {
    Ok(top_level(part)?
        .into_iter()
        .filter_map(|a| match a {
            Any::Emsg(e) => Some(EventMessage {
                scheme_id_uri: e.scheme_id_uri,
                presentation_time: match e.presentation_time {
                    mp4_atom::EmsgTimestamp::Absolute(t) => t,
                    mp4_atom::EmsgTimestamp::Relative(t) => u64::from(t),
                },
                timescale: e.timescale,
                message_data: e.message_data,
            }),
            _ => None,
        })
        .collect())
}
