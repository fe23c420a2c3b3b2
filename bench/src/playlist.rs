//! The parts of an LL-HLS media playlist, numbered the way a player numbers
//! them: by Media Sequence Number and Part Index (rfc8216bis §6.2.5.2).

use anyhow::Context;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartEntry {
    pub msn: u64,
    pub index: u64,
    pub uri: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaPlaylist {
    pub map_uri: Option<String>,
    pub parts: Vec<PartEntry>,
    pub ended: bool,
}

fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    // Attribute values here never contain commas inside quotes except URIs,
    // which do not in the playlists this benchmark reads.
    attrs.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// Parses a media playlist; parts of complete segments keep that segment's MSN,
/// parts after the last EXTINF belong to the segment in progress.
pub fn parse(text: &str) -> anyhow::Result<MediaPlaylist> {
    let mut pl = MediaPlaylist::default();
    let mut msn: Option<u64> = None;
    let mut index = 0;
    let mut in_segment = false;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            msn = Some(v.parse().context("EXT-X-MEDIA-SEQUENCE")?);
        } else if let Some(a) = line.strip_prefix("#EXT-X-MAP:") {
            pl.map_uri = attr(a, "URI").map(str::to_owned);
        } else if let Some(a) = line.strip_prefix("#EXT-X-PART:") {
            let uri = attr(a, "URI").context("EXT-X-PART without URI")?;
            pl.parts.push(PartEntry {
                msn: msn.unwrap_or(0),
                index,
                uri: uri.to_owned(),
            });
            index += 1;
        } else if line.starts_with("#EXTINF:") {
            in_segment = true;
        } else if line == "#EXT-X-ENDLIST" {
            pl.ended = true;
        } else if in_segment && !line.is_empty() && !line.starts_with('#') {
            // The segment's URI line ends it.
            in_segment = false;
            msn = Some(msn.unwrap_or(0) + 1);
            index = 0;
        }
    }
    Ok(pl)
}

/// The part sequence number in a `part<seq>.m4s` URI.
#[must_use]
pub fn part_seq(uri: &str) -> Option<u64> {
    let name = uri.rsplit('/').next()?;
    name.strip_prefix("part")?
        .strip_suffix(".m4s")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parts_by_segment() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n\
            #EXT-X-MAP:URI=\"init0.mp4\"\n\
            #EXT-X-PART:DURATION=0.2,URI=\"part40.m4s\",INDEPENDENT=YES\n\
            #EXT-X-PART:DURATION=0.2,URI=\"part41.m4s\"\n#EXTINF:0.4,\nseg10.m4s\n\
            #EXT-X-PROGRAM-DATE-TIME:2026-11-26T07:00:02.000Z\n\
            #EXT-X-PART:DURATION=0.2,URI=\"part42.m4s\",INDEPENDENT=YES\n\
            #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part43.m4s\"\n";
        let pl = parse(text).unwrap();
        assert_eq!(pl.map_uri.as_deref(), Some("init0.mp4"));
        let got: Vec<(u64, u64, Option<u64>)> = pl
            .parts
            .iter()
            .map(|p| (p.msn, p.index, part_seq(&p.uri)))
            .collect();
        assert_eq!(
            got,
            [(10, 0, Some(40)), (10, 1, Some(41)), (11, 0, Some(42))]
        );
        assert!(!pl.ended);
    }
}
