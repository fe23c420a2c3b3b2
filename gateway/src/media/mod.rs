//! Media handling: the MPEG-TS demuxer (our TS layer, GStreamer parsers) that turns an ingest byte
//! stream into the packager's samples, and an SRT test publisher.
//!
//! No GStreamer type crosses out of this module: callers see
//! [`packager::sample::Codec`] and [`packager::sample::Sample`] only.

mod demux;
mod test_source;
mod transcoder;
mod ts_demux;

use std::sync::OnceLock;

pub use demux::{Demuxer, MediaEvent};
pub use test_source::TestSource;
pub use transcoder::{RungSpec, Transcoder};

use gstreamer as gst;

/// What can go wrong in a media pipeline.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// `gst::init()` failed (kept as text: the first failure is remembered
    /// and returned to every later caller).
    #[error("GStreamer initialisation failed: {0}")]
    Init(String),
    /// A GStreamer element is not installed (missing plugin package).
    #[error("GStreamer element `{0}` is not available")]
    MissingElement(&'static str),
    /// Assembling or linking the pipeline failed.
    #[error("cannot build the pipeline: {0}")]
    Build(String),
    /// The pipeline refused a state change.
    #[error("pipeline state change failed")]
    StateChange(#[source] gst::StateChangeError),
    /// The pipeline no longer accepts data (stopped, errored, or after `finish`).
    #[error("the pipeline does not accept data")]
    Push(#[source] gst::FlowError),
    /// The input ended without a program with an elementary stream (not
    /// MPEG-TS, or no PAT/PMT).
    #[error("the input contained no MPEG-TS program")]
    NoProgram,
    /// An element posted an error: the pipeline has stopped producing data.
    #[error("{element}: {message}")]
    Pipeline {
        element: String,
        message: String,
        /// GStreamer's debug detail, for logs.
        debug: Option<String>,
    },
    /// An element posted a warning: data may be damaged, the pipeline keeps running.
    #[error("warning from {element}: {message}")]
    Warning {
        element: String,
        message: String,
        debug: Option<String>,
    },
}

impl MediaError {
    /// Whether the pipeline that reported this has stopped for good.
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::Warning { .. })
    }
}

/// Initialises GStreamer once per process; later calls return the first result.
pub fn init() -> Result<(), MediaError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| gst::init().map_err(|e| e.to_string()))
        .clone()
        .map_err(MediaError::Init)
}

/// Creates an element, naming the factory when its plugin is missing.
fn make_element(factory: &'static str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| MediaError::MissingElement(factory))
}

/// ffprobe (an independent demuxer) on a TS held in memory: `-show_entries
/// ENTRIES` as CSV lines.
#[cfg(test)]
fn ffprobe_csv(entries: &str, ts: &[u8]) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", entries])
        .args(["-of", "csv=p=0", "-i", "pipe:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ffprobe must be installed for media tests");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let data = ts.to_vec();
    // Write from a thread: ffprobe may fill its stdout before reading all input.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("ffprobe runs");
    writer.join().expect("writer thread");
    String::from_utf8(out.stdout).expect("ffprobe prints UTF-8")
}
