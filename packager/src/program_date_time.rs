//! How media time becomes EXT-X-PROGRAM-DATE-TIME, in whole milliseconds
//! (rfc8216bis §4.4.4.6: "date-time-msec"), so that players which line the
//! audio rendition up with the video by PDT land where the media is.
//!
//! - A timeline's wall-clock anchor is its first keyframe's arrival, rounded
//!   down to the millisecond: segments of a GOP length that is a whole number
//!   of milliseconds (2 s at 24 to 60 fps, NTSC rates included) then have
//!   exact video PDTs, and audio starting with them gets the same PDT.
//! - Video PDTs round up and audio PDTs round down, so an audio segment's PDT
//!   never lies later, relative to any video segment's, than its media does.
//!   hls.js places the audio rendition on the video's timeline by that PDT
//!   difference; placed even 0.3 ms late, the audio part it just buffered
//!   still covers the buffer's end, and it stops loading audio until the next
//!   playlist slide (a stall at the live edge).
//! - An audio PDT is never exactly 1 ms from its video segment's. Shaka Player
//!   shifts a rendition by the difference of the first segments' PDTs when it
//!   is at least 1 ms, compared in floating point on epoch seconds: at exactly
//!   1 ms, some segment references are shifted and some not, its segment index
//!   then sends it back a segment, and playback jumps a gap (seen as a stall
//!   right after start-up). Such an audio PDT goes 1 ms earlier, which hls.js
//!   accepts (above).

use crate::units::{MediaTime, WallTime};

/// The wall time a timeline's first keyframe stands for, given its arrival.
#[must_use]
pub fn anchor(arrival: WallTime) -> WallTime {
    arrival.floor_to_millis()
}

/// The PDT written for a video segment starting at wall time `start`.
#[must_use]
pub fn video(start: WallTime) -> WallTime {
    start.ceil_to_millis()
}

/// The PDT written for an audio segment whose first frame lies `offset` after
/// the start of the video segment it is cut with (wall time `video_start`).
#[must_use]
pub fn audio(video_start: WallTime, offset: MediaTime) -> WallTime {
    let pdt = video_start.offset(offset).floor_to_millis();
    let written_video = video(video_start);
    if (pdt.0 - written_video.0).abs() == 1000 {
        WallTime(pdt.0 - 1000)
    } else {
        pdt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: i64 = 1_795_000_000_000_000;

    #[test]
    fn audio_with_an_exact_video_pdt_gets_the_same() {
        let v = anchor(WallTime(EPOCH + 417));
        assert_eq!(video(v), v);
        for us in [0, 300, 999] {
            assert_eq!(audio(v, MediaTime(us * 90 / 1000)), v, "{us} µs after");
        }
    }

    #[test]
    fn audio_is_never_one_millisecond_from_its_video() {
        for v_us in [0, 1, 417, 999] {
            let v = WallTime(EPOCH + v_us);
            for ticks in -2000..2000 {
                let a = audio(v, MediaTime(ticks));
                let diff = a.0 - video(v).0;
                assert_ne!(
                    diff.abs(),
                    1000,
                    "video +{v_us} µs, audio {ticks} ticks later"
                );
                // Never later than the media, at most 3 ms earlier.
                let media = MediaTime(ticks).as_micros() + v_us - video(v).0 + EPOCH;
                assert!(diff <= media && media - diff < 3000, "{diff} vs {media}");
            }
        }
    }
}
