//! The parts of an LL-HLS media playlist, numbered the way a player numbers
//! them: by Media Sequence Number and Part Index (rfc8216bis §6.2.5.2).

use anyhow::Context;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartEntry {
    pub msn: u64,
    pub index: u64,
    pub uri: String,
    /// `DURATION`, µs.
    pub duration_us: i64,
    /// The PROGRAM-DATE-TIME of the part's start (its segment's, plus the
    /// parts before it), µs since the epoch, if the playlist has one.
    pub pdt_us: Option<i64>,
}

/// An `EXT-X-DATERANGE`: its ID and START-DATE (µs since the epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DateRange {
    pub id: String,
    pub start_us: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaPlaylist {
    pub map_uri: Option<String>,
    pub parts: Vec<PartEntry>,
    pub dateranges: Vec<DateRange>,
    /// `PART-HOLD-BACK` of `EXT-X-SERVER-CONTROL`, µs.
    pub part_hold_back_us: Option<i64>,
    pub ended: bool,
}

fn secs_to_us(s: &str) -> anyhow::Result<i64> {
    let secs: f64 = s.parse().with_context(|| format!("bad seconds {s:?}"))?;
    Ok((secs * 1e6).round() as i64)
}

fn date_us(s: &str) -> anyhow::Result<i64> {
    overlay::rfc3339::parse(s)
        .map(|t| t.0)
        .with_context(|| format!("bad date {s:?}"))
}

fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    // Attribute values here never contain commas inside quotes except URIs,
    // which do not in the playlists this benchmark reads.
    attrs.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// Media Sequence Numbers and Part Indexes counted line by line, as a player
/// counts them: parts of complete segments keep that segment's MSN, parts
/// after the last EXTINF belong to the segment in progress; a delta update's
/// `EXT-X-SKIP` stands for its skipped segments.
#[derive(Default)]
struct Numbering {
    msn: u64,
    /// Parts of the current segment read so far.
    index: u64,
    in_segment: bool,
}

/// What a line was to [`Numbering`].
enum Numbered<'l> {
    /// An `EXT-X-PART`: (MSN, part index) and its attribute list.
    Part(u64, u64, &'l str),
    /// The URI line that ends a segment.
    SegmentEnd,
    Other,
}

impl Numbering {
    fn read<'l>(&mut self, line: &'l str) -> anyhow::Result<Numbered<'l>> {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            self.msn = v.parse().context("EXT-X-MEDIA-SEQUENCE")?;
        } else if let Some(a) = line.strip_prefix("#EXT-X-SKIP:") {
            let skipped = attr(a, "SKIPPED-SEGMENTS").context("EXT-X-SKIP")?;
            self.msn += skipped.parse::<u64>().context("SKIPPED-SEGMENTS")?;
        } else if let Some(a) = line.strip_prefix("#EXT-X-PART:") {
            self.index += 1;
            return Ok(Numbered::Part(self.msn, self.index - 1, a));
        } else if line.starts_with("#EXTINF:") {
            self.in_segment = true;
        } else if self.in_segment && !line.is_empty() && !line.starts_with('#') {
            self.in_segment = false;
            self.msn += 1;
            self.index = 0;
            return Ok(Numbered::SegmentEnd);
        }
        Ok(Numbered::Other)
    }
}

/// Parses a media playlist, its parts numbered by [`Numbering`].
pub fn parse(text: &str) -> anyhow::Result<MediaPlaylist> {
    let mut pl = MediaPlaylist::default();
    let mut numbering = Numbering::default();
    // The PDT of the next part, and of the next segment once this one ends.
    let mut pdt: Option<i64> = None;
    let mut segment_end: Option<i64> = None;
    for line in text.lines().map(str::trim) {
        match numbering.read(line)? {
            Numbered::Part(msn, index, a) => {
                let uri = attr(a, "URI").context("EXT-X-PART without URI")?;
                let duration_us =
                    secs_to_us(attr(a, "DURATION").context("EXT-X-PART without DURATION")?)?;
                pl.parts.push(PartEntry {
                    msn,
                    index,
                    uri: uri.to_owned(),
                    duration_us,
                    pdt_us: pdt,
                });
                pdt = pdt.map(|p| p + duration_us);
                continue;
            }
            Numbered::SegmentEnd => {
                pdt = segment_end;
                continue;
            }
            Numbered::Other => {}
        }
        if let Some(a) = line.strip_prefix("#EXT-X-MAP:") {
            pl.map_uri = attr(a, "URI").map(str::to_owned);
        } else if let Some(a) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
            pl.part_hold_back_us = attr(a, "PART-HOLD-BACK").map(secs_to_us).transpose()?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = Some(date_us(v)?);
        } else if let Some(a) = line.strip_prefix("#EXT-X-DATERANGE:") {
            pl.dateranges.push(DateRange {
                id: attr(a, "ID")
                    .context("EXT-X-DATERANGE without ID")?
                    .to_owned(),
                start_us: date_us(attr(a, "START-DATE").context("DATERANGE without START-DATE")?)?,
            });
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let extinf = secs_to_us(v.split(',').next().unwrap_or_default())?;
            // Parts listed before EXTINF already advanced `pdt`; a segment
            // without parts ends EXTINF after its PDT.
            let parts = numbering.index;
            segment_end = pdt.map(|p| if parts == 0 { p + extinf } else { p });
        } else if line == "#EXT-X-ENDLIST" {
            pl.ended = true;
        }
    }
    Ok(pl)
}

/// The (MSN, part index) of the last part of a media playlist, full or delta,
/// numbered as [`parse`] numbers its parts: what a player asks for next, read
/// without building the playlist (the load generator does this once per
/// answer, for thousands of clients on one core).
#[must_use]
pub fn last_part(text: &str) -> Option<(u64, u64)> {
    let mut numbering = Numbering::default();
    let mut last = None;
    for line in text.lines().map(str::trim) {
        if let Numbered::Part(msn, index, _) = numbering.read(line).ok()? {
            last = Some((msn, index));
        }
    }
    last
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
        let pdt = |p: &PartEntry| p.pdt_us.map(|us| us / 1000 % 100_000);
        // No PDT before the first tag; from it on, each part's start.
        assert_eq!(pdt(&pl.parts[1]), None);
        assert_eq!(pdt(&pl.parts[2]), Some(2_000));
        assert_eq!(pl.parts[2].duration_us, 200_000);
        assert_eq!(last_part(text), Some((11, 0)));
        // Right after a segment closes, its last part is the last one.
        let closed = text.replace(
            "#EXT-X-PART:DURATION=0.2,URI=\"part42.m4s\",INDEPENDENT=YES\n",
            "",
        );
        assert_eq!(last_part(&closed), Some((10, 1)));
        // A delta update: two segments skipped.
        let delta = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n\
            #EXT-X-PART:DURATION=0.2,URI=\"part48.m4s\"\n#EXTINF:0.2,\nseg12.m4s\n\
            #EXT-X-PART:DURATION=0.2,URI=\"part49.m4s\"\n\
            #EXT-X-PART:DURATION=0.2,URI=\"part50.m4s\"\n";
        assert_eq!(last_part(delta), Some((13, 1)));
        let parts = parse(delta).unwrap().parts;
        assert_eq!(parts.last().map(|p| (p.msn, p.index)), Some((13, 1)));
    }

    #[test]
    fn reads_dateranges_and_part_hold_back() {
        let text = "#EXTM3U\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.62697\n\
            #EXT-X-MEDIA-SEQUENCE:1\n\
            #EXT-X-DATERANGE:ID=\"c-1\",CLASS=\"com.dropline.custom\",START-DATE=\"2026-11-26T07:00:01.250Z\"\n\
            #EXT-X-PROGRAM-DATE-TIME:2026-11-26T07:00:01.000Z\n#EXTINF:1.0,\nseg1.m4s\n\
            #EXT-X-PART:DURATION=0.2,URI=\"part5.m4s\",INDEPENDENT=YES\n";
        let pl = parse(text).unwrap();
        assert_eq!(pl.part_hold_back_us, Some(626_970));
        assert_eq!(pl.dateranges[0].id, "c-1");
        assert_eq!(pl.dateranges[0].start_us % 10_000_000, 1_250_000);
        // The part after a segment without parts starts at its end.
        assert_eq!(pl.parts[0].pdt_us.unwrap() % 10_000_000, 2_000_000);
        assert_eq!(pl.parts[0].msn, 2);
    }
}
