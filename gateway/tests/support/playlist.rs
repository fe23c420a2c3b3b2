//! Just enough of an LL-HLS media playlist reader for robustness tests: MSNs,
//! parts, discontinuities and ENDLIST. URIs are not interpreted, so the
//! checks survive changes to the object naming scheme.

#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub msn: u64,
    pub discontinuity: bool,
    /// `EXT-X-PART` lines listed for this segment (old segments may list none).
    pub parts: usize,
    /// `EXTINF` duration; 0 for the open segment.
    pub duration: f64,
}

#[derive(Clone, Debug)]
pub struct MediaPlaylist {
    pub text: String,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    /// Complete segments, oldest first.
    pub segments: Vec<Segment>,
    /// The segment being cut: its parts so far (after the last `EXTINF`).
    pub open: Option<Segment>,
    pub ended: bool,
    pub last_part_uri: Option<String>,
}

impl MediaPlaylist {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next() != Some("#EXTM3U") {
            return Err("no #EXTM3U header".into());
        }
        let mut pl = MediaPlaylist {
            text: text.to_owned(),
            media_sequence: 0,
            discontinuity_sequence: 0,
            segments: Vec::new(),
            open: None,
            ended: false,
            last_part_uri: None,
        };
        let mut disc = false;
        let mut parts = 0;
        let mut extinf: Option<f64> = None;
        for line in lines {
            if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                pl.media_sequence = v.parse().map_err(|e| format!("{line}: {e}"))?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
                pl.discontinuity_sequence = v.parse().map_err(|e| format!("{line}: {e}"))?;
            } else if line == "#EXT-X-DISCONTINUITY" {
                disc = true;
            } else if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
                parts += 1;
                pl.last_part_uri = attr(attrs, "URI");
            } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                let d = v.split(',').next().unwrap_or_default();
                extinf = Some(d.parse().map_err(|e| format!("{line}: {e}"))?);
            } else if line == "#EXT-X-ENDLIST" {
                pl.ended = true;
            } else if !line.starts_with('#') {
                let duration = extinf
                    .take()
                    .ok_or_else(|| format!("segment URI {line:?} without #EXTINF"))?;
                let msn = pl.media_sequence + pl.segments.len() as u64;
                pl.segments.push(Segment {
                    msn,
                    discontinuity: disc,
                    parts,
                    duration,
                });
                disc = false;
                parts = 0;
            }
        }
        if parts > 0 || disc {
            pl.open = Some(Segment {
                msn: pl.media_sequence + pl.segments.len() as u64,
                discontinuity: disc,
                parts,
                duration: 0.0,
            });
        }
        Ok(pl)
    }

    /// Where the newest part sits: (MSN of the segment being cut, parts in
    /// it). Grows with every new part and never goes back while a stream is
    /// live, whatever the window does.
    pub fn progress(&self) -> (u64, usize) {
        let next = self.media_sequence + self.segments.len() as u64;
        (next, self.open.as_ref().map_or(0, |o| o.parts))
    }

    pub fn has_parts(&self) -> bool {
        self.open.is_some() || self.segments.iter().any(|s| s.parts > 0)
    }

    /// Every segment, the open one last.
    pub fn all_segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter().chain(self.open.as_ref())
    }

    /// Total media duration of the complete segments, in seconds.
    pub fn duration(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).sum()
    }
}

fn attr(attrs: &str, key: &str) -> Option<String> {
    attrs.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.trim_matches('"').to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_parts_segments_and_the_open_segment() {
        let pl = MediaPlaylist::parse(
            "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:7\n\
             #EXT-X-PART:DURATION=0.2,URI=\"a.m4s\",INDEPENDENT=YES\n#EXTINF:1.0,\ns7.m4s\n\
             #EXT-X-DISCONTINUITY\n#EXT-X-PART:DURATION=0.2,URI=\"b.m4s\"\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"c.m4s\"\n",
        )
        .unwrap();
        assert_eq!(pl.segments.len(), 1);
        assert_eq!(pl.segments[0].msn, 7);
        let open = pl.open.clone().unwrap();
        assert!(open.discontinuity && open.msn == 8 && open.parts == 1);
        assert_eq!(pl.progress(), (8, 1));
        assert_eq!(pl.last_part_uri.as_deref(), Some("b.m4s"));
    }
}
