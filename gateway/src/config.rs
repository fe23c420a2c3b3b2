//! Configuration: defaults < TOML file < `DROPLINE_*` environment < command line.
//!
//! Unknown keys are an error, so a typo never silently falls back to a default.
//! Secrets (stream passphrases) come from the file or the environment only.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::overlay::settings::{DropSettings, OfferConfig, StorageConfig, WebhookConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("config key {key}: {message}")]
    Invalid { key: String, message: String },
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub srt: SrtConfig,
    pub http: HttpConfig,
    pub hls: HlsConfig,
    pub srtla: SrtlaConfig,
    /// Per-stream settings, by stream name.
    pub streams: BTreeMap<String, StreamConfig>,
    /// The commerce overlay's durable store.
    pub storage: StorageConfig,
    pub webhooks: WebhookConfig,
    pub offers: OfferConfig,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SrtConfig {
    pub listen: SocketAddr,
    /// Receiver latency (ms): the window SRT has to retransmit lost packets.
    /// Use ≥ 4 × the path RTT; cellular uplinks want 1000–2000.
    pub latency_ms: u64,
    /// Accept publishers for stream names that have no `[streams.NAME]` entry.
    pub allow_unlisted_streams: bool,
    /// Publishers connected at once, all streams together.
    pub max_connections: usize,
    /// How long a stream waits for its publisher to come back before it ends.
    pub reconnect_grace_ms: u64,
    /// Without H.264 video after this long, a publisher is dropped.
    pub video_timeout_ms: u64,
    /// A backup publisher (`role=backup`) takes over after the active one
    /// sent no video frame for this long; 0 means one `hls.part_target_ms`.
    pub failover_ms: u64,
    /// The primary takes over again after delivering steadily this long.
    pub handback_ms: u64,
    /// A publisher sending more than this (kbit/s, averaged over
    /// [`BITRATE_WINDOW`]) is disconnected; 0 means no limit.
    pub max_bitrate_kbps: u64,
}

/// The window over which `srt.max_bitrate_kbps` is measured: long enough for
/// a keyframe burst, short enough to stop a flood quickly.
pub const BITRATE_WINDOW: Duration = Duration::from_secs(5);

impl Default for SrtConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9000)),
            latency_ms: 200,
            allow_unlisted_streams: true,
            max_connections: 64,
            reconnect_grace_ms: 10_000,
            video_timeout_ms: 5_000,
            failover_ms: 0,
            handback_ms: 2_000,
            max_bitrate_kbps: 0,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Folder of the demo player page (and `node_modules/hls.js`).
    pub web_root: PathBuf,
    /// HTTPS (HTTP/2 and HTTP/1.1 over TLS) listen address; needs
    /// `tls_cert` and `tls_key`.
    pub https_listen: Option<SocketAddr>,
    /// PEM certificate chain, leaf first.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            web_root: PathBuf::from("web"),
            https_listen: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HlsConfig {
    /// The segment grid; set the encoder's keyframe interval to this or a divisor.
    pub segment_duration_ms: u64,
    /// Wanted PART-TARGET; the declared one is the nearest whole number of frames.
    pub part_target_ms: u64,
    /// Complete segments kept in the playlist (and in memory, per stream).
    ///
    /// The default, 16, is sized for delta updates: playlists offer
    /// CAN-SKIP-UNTIL = 6 × TARGETDURATION, and a delta update skips only the
    /// segments that lie wholly beyond it. The segmenter declares
    /// TARGETDURATION 4 for 2 s segments (room for a late keyframe), so the
    /// boundary is 24 s: 12 segments of 2 s would skip none, 16 skip 3.
    pub window_segments: usize,
    /// How long an ended stream stays fetchable.
    pub linger_ms: u64,
    /// Lower video renditions transcoded from the source (an ABR ladder),
    /// e.g. `ladder = [{ name = "360p", height = 360, bitrate_kbps = 800 }]`.
    /// Empty by default: only the source's renditions.
    pub ladder: Vec<LadderRung>,
}

/// One rung of the ABR ladder: an x264 rendition at `height` lines (the
/// width follows the source's aspect ratio), cut on the source's grid.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LadderRung {
    /// The rendition's path segment, `/{stream}/{name}/playlist.m3u8`.
    pub name: String,
    pub height: u16,
    pub bitrate_kbps: u32,
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self {
            segment_duration_ms: 2000,
            part_target_ms: 200,
            window_segments: 16,
            linger_ms: 60_000,
            ladder: Vec::new(),
        }
    }
}

/// SRTLA (bonded SRT) ingest; see `ingest::srtla`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SrtlaConfig {
    /// UDP address bonded senders register with; off unless set.
    pub listen: Option<SocketAddr>,
    /// Groups (bonded sessions, registered or registering) at once.
    pub max_groups: usize,
    pub max_links_per_group: usize,
    /// A group with no link this long after its REG1 is removed.
    pub registration_timeout_ms: u64,
    /// A link silent this long is removed; a group goes with its last link.
    pub link_timeout_ms: u64,
    /// How long SRT data ahead of a gap waits for packets still crossing
    /// slower links (0: forwarded at once; the SRT listener NAKs every gap).
    pub reorder_hold_ms: u64,
}

impl Default for SrtlaConfig {
    fn default() -> Self {
        Self {
            listen: None,
            max_groups: 200,
            max_links_per_group: 16,
            registration_timeout_ms: 10_000,
            link_timeout_ms: 10_000,
            reorder_hold_ms: 200,
        }
    }
}

#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// SRT passphrase (10–79 characters) the publisher must use.
    pub passphrase: Option<String>,
    /// File holding the bearer token of this stream's cue API; or
    /// `DROPLINE_STREAM_<NAME>_API_TOKEN`. Without one the API answers 404.
    pub api_token_file: Option<PathBuf>,
    /// From `DROPLINE_STREAM_<NAME>_API_TOKEN` (env only, never printed).
    #[serde(skip)]
    pub api_token: Option<String>,
    /// Drops with staged stock reveals (`[[streams.NAME.drops]]`).
    pub drops: Vec<DropSettings>,
}

impl fmt::Debug for StreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamConfig")
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("api_token_file", &self.api_token_file)
            .field("drops", &self.drops)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Loads the file (if any), then applies `DROPLINE_*` variables from `env`.
    pub fn load(
        path: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut cfg = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: p.to_owned(),
                    message: e.to_string(),
                })?
            }
            None => Self::default(),
        };
        for (name, value) in env {
            cfg.apply_env(&name, &value)?;
        }
        Ok(cfg)
    }

    /// `DROPLINE_SECTION_FIELD=value`, and `DROPLINE_STREAM_<NAME>_PASSPHRASE`
    /// for stream secrets. Other variables (outside the `DROPLINE_` prefix, or
    /// used by tools such as `DROPLINE_BIN`) are ignored.
    fn apply_env(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let Some(key) = name.strip_prefix("DROPLINE_") else {
            return Ok(());
        };
        let bad = |message: String| ConfigError::Env {
            name: name.to_owned(),
            message,
        };
        fn num<T: std::str::FromStr>(v: &str) -> Result<T, String>
        where
            T::Err: fmt::Display,
        {
            v.parse::<T>().map_err(|e| e.to_string())
        }
        match key {
            "SRT_LISTEN" => self.srt.listen = num(value).map_err(bad)?,
            "SRT_LATENCY_MS" => self.srt.latency_ms = num(value).map_err(bad)?,
            "SRT_ALLOW_UNLISTED_STREAMS" => {
                self.srt.allow_unlisted_streams = num(value).map_err(bad)?;
            }
            "SRT_MAX_CONNECTIONS" => self.srt.max_connections = num(value).map_err(bad)?,
            "SRT_RECONNECT_GRACE_MS" => self.srt.reconnect_grace_ms = num(value).map_err(bad)?,
            "SRT_VIDEO_TIMEOUT_MS" => self.srt.video_timeout_ms = num(value).map_err(bad)?,
            "SRT_FAILOVER_MS" => self.srt.failover_ms = num(value).map_err(bad)?,
            "SRT_HANDBACK_MS" => self.srt.handback_ms = num(value).map_err(bad)?,
            "SRT_MAX_BITRATE_KBPS" => self.srt.max_bitrate_kbps = num(value).map_err(bad)?,
            "HTTP_LISTEN" => self.http.listen = num(value).map_err(bad)?,
            "HTTP_WEB_ROOT" => self.http.web_root = PathBuf::from(value),
            "HTTP_HTTPS_LISTEN" => self.http.https_listen = Some(num(value).map_err(bad)?),
            "HTTP_TLS_CERT" => self.http.tls_cert = Some(PathBuf::from(value)),
            "HTTP_TLS_KEY" => self.http.tls_key = Some(PathBuf::from(value)),
            "HLS_SEGMENT_DURATION_MS" => self.hls.segment_duration_ms = num(value).map_err(bad)?,
            "HLS_PART_TARGET_MS" => self.hls.part_target_ms = num(value).map_err(bad)?,
            "HLS_WINDOW_SEGMENTS" => self.hls.window_segments = num(value).map_err(bad)?,
            "HLS_LINGER_MS" => self.hls.linger_ms = num(value).map_err(bad)?,
            "SRTLA_LISTEN" => self.srtla.listen = Some(num(value).map_err(bad)?),
            "SRTLA_MAX_GROUPS" => self.srtla.max_groups = num(value).map_err(bad)?,
            "SRTLA_MAX_LINKS_PER_GROUP" => {
                self.srtla.max_links_per_group = num(value).map_err(bad)?;
            }
            "SRTLA_REGISTRATION_TIMEOUT_MS" => {
                self.srtla.registration_timeout_ms = num(value).map_err(bad)?;
            }
            "SRTLA_LINK_TIMEOUT_MS" => self.srtla.link_timeout_ms = num(value).map_err(bad)?,
            "SRTLA_REORDER_HOLD_MS" => self.srtla.reorder_hold_ms = num(value).map_err(bad)?,
            "STORAGE_DATA_DIR" => self.storage.data_dir = PathBuf::from(value),
            "WEBHOOK_SHOPIFY_SECRET" => self.webhooks.shopify_secret = Some(value.to_owned()),
            "WEBHOOK_STRIPE_SECRET" => self.webhooks.stripe_secret = Some(value.to_owned()),
            "WEBHOOK_PLAIN_SECRET" => self.webhooks.plain_secret = Some(value.to_owned()),
            "OFFER_KEY" => self.offers.key = Some(value.to_owned()),
            _ => {
                if let Some(stream) = key
                    .strip_prefix("STREAM_")
                    .and_then(|k| k.strip_suffix("_PASSPHRASE"))
                {
                    self.streams
                        .entry(stream.to_ascii_lowercase())
                        .or_default()
                        .passphrase = Some(value.to_owned());
                } else if let Some(stream) = key
                    .strip_prefix("STREAM_")
                    .and_then(|k| k.strip_suffix("_API_TOKEN"))
                {
                    self.streams
                        .entry(stream.to_ascii_lowercase())
                        .or_default()
                        .api_token = Some(value.to_owned());
                }
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.to_owned(),
            message: message.to_owned(),
        };
        if !(1000..=10_000).contains(&self.hls.segment_duration_ms) {
            return Err(invalid("hls.segment_duration_ms", "must be 1000..=10000"));
        }
        if !(50..=2000).contains(&self.hls.part_target_ms)
            || self.hls.part_target_ms * 2 > self.hls.segment_duration_ms
        {
            return Err(invalid(
                "hls.part_target_ms",
                "must be 50..=2000 and at most half the segment duration",
            ));
        }
        if self.hls.window_segments < 3 {
            return Err(invalid("hls.window_segments", "must be at least 3"));
        }
        for (i, rung) in self.hls.ladder.iter().enumerate() {
            let taken = crate::stream::SOURCE_RENDITIONS.contains(&rung.name.as_str())
                || self.hls.ladder[..i].iter().any(|r| r.name == rung.name);
            if !crate::stream::valid_name(&rung.name) || taken {
                return Err(invalid(
                    "hls.ladder.name",
                    "must be a unique name of letters, digits, '-' and '_', not main or audio",
                ));
            }
            // H.264 4:2:0 wants even dimensions.
            if !(90..=2160).contains(&rung.height) || rung.height % 2 != 0 {
                return Err(invalid("hls.ladder.height", "must be even and 90..=2160"));
            }
            if !(50..=50_000).contains(&rung.bitrate_kbps) {
                return Err(invalid("hls.ladder.bitrate_kbps", "must be 50..=50000"));
            }
        }
        // Certificate files without a listener (or the reverse) are a
        // mistake, not a reason to serve plain HTTP only.
        match (
            &self.http.https_listen,
            &self.http.tls_cert,
            &self.http.tls_key,
        ) {
            (Some(_), Some(_), Some(_)) | (None, None, None) => {}
            (None, _, _) => {
                return Err(invalid(
                    "http.https_listen",
                    "tls_cert/tls_key are set but no https_listen address",
                ));
            }
            (Some(_), _, _) => {
                return Err(invalid(
                    "http.https_listen",
                    "needs both http.tls_cert and http.tls_key",
                ));
            }
        }
        if self.srt.max_connections == 0 {
            return Err(invalid("srt.max_connections", "must be at least 1"));
        }
        if self.srtla.max_groups == 0 || self.srtla.max_links_per_group == 0 {
            return Err(invalid(
                "srtla.max_groups",
                "srtla.max_groups and srtla.max_links_per_group must be at least 1",
            ));
        }
        if self.srtla.registration_timeout_ms < 100 || self.srtla.link_timeout_ms < 100 {
            return Err(invalid(
                "srtla.link_timeout_ms",
                "srtla timeouts must be at least 100 ms",
            ));
        }
        for (name, s) in &self.streams {
            if !crate::stream::valid_name(name) {
                return Err(invalid(
                    &format!("streams.{name}"),
                    "stream names are 1–64 of [A-Za-z0-9_-]",
                ));
            }
            if let Some(p) = &s.passphrase {
                // SRT: "The passphrase ... must be 10..79 characters".
                if !(10..=79).contains(&p.len()) {
                    return Err(invalid(
                        &format!("streams.{name}.passphrase"),
                        "must be 10..=79 characters (SRT)",
                    ));
                }
            }
        }
        Ok(())
    }

    #[must_use]
    pub fn passphrase(&self, stream: &str) -> Option<&str> {
        self.streams.get(stream)?.passphrase.as_deref()
    }

    /// The effective configuration as TOML, secrets redacted.
    #[must_use]
    pub fn redacted_toml(&self) -> String {
        let mut c = self.clone();
        for s in c.streams.values_mut() {
            if s.passphrase.is_some() {
                s.passphrase = Some("<redacted>".to_owned());
            }
        }
        toml::to_string_pretty(&c).unwrap_or_default()
    }
}

impl Config {
    /// How long the active uplink may stall before the other takes over.
    #[must_use]
    pub fn failover(&self) -> Duration {
        Duration::from_millis(match self.srt.failover_ms {
            0 => self.hls.part_target_ms,
            ms => ms,
        })
    }
}

impl SrtConfig {
    #[must_use]
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }
}

impl SrtlaConfig {
    #[must_use]
    pub fn receiver(&self) -> crate::ingest::srtla::receiver::ReceiverConfig {
        crate::ingest::srtla::receiver::ReceiverConfig {
            max_groups: self.max_groups,
            max_links_per_group: self.max_links_per_group,
            registration_timeout: Duration::from_millis(self.registration_timeout_ms),
            link_timeout: Duration::from_millis(self.link_timeout_ms),
            reorder_hold: Duration::from_millis(self.reorder_hold_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn file_then_env_override() {
        let f =
            write("[hls]\npart_target_ms = 250\n[streams.show]\npassphrase = \"0123456789ab\"\n");
        let cfg = Config::load(
            Some(f.path()),
            [
                ("DROPLINE_HLS_PART_TARGET_MS".into(), "300".into()),
                (
                    "DROPLINE_STREAM_SHOW_PASSPHRASE".into(),
                    "fromtheenv!".into(),
                ),
                ("DROPLINE_BIN".into(), "ignored".into()),
                ("HOME".into(), "/root".into()),
            ],
        )
        .unwrap();
        assert_eq!(cfg.hls.part_target_ms, 300);
        assert_eq!(cfg.srtla.listen, None);
        assert_eq!(cfg.passphrase("show"), Some("fromtheenv!"));
        cfg.validate().unwrap();
        assert!(!cfg.redacted_toml().contains("fromtheenv"));
    }

    #[test]
    fn ladder_rungs_from_the_file() {
        let f = write("[hls]\nladder = [{ name = \"360p\", height = 360, bitrate_kbps = 800 }]\n");
        let cfg = Config::load(Some(f.path()), []).unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            cfg.hls.ladder,
            [LadderRung {
                name: "360p".into(),
                height: 360,
                bitrate_kbps: 800
            }]
        );
        for bad in [
            "{ name = \"main\", height = 360, bitrate_kbps = 800 }",
            "{ name = \"a b\", height = 360, bitrate_kbps = 800 }",
            "{ name = \"low\", height = 361, bitrate_kbps = 800 }",
            "{ name = \"low\", height = 360, bitrate_kbps = 0 }",
        ] {
            let f = write(&format!("[hls]\nladder = [{bad}]\n"));
            let cfg = Config::load(Some(f.path()), []).unwrap();
            assert!(cfg.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn https_keys_from_file_and_env() {
        let f = write("[http]\ntls_cert = \"/etc/dropline/cert.pem\"\ntls_key = \"k.pem\"\n");
        let cfg = Config::load(
            Some(f.path()),
            [
                ("DROPLINE_HTTP_HTTPS_LISTEN".into(), "127.0.0.1:8443".into()),
                (
                    "DROPLINE_HTTP_TLS_KEY".into(),
                    "/run/secrets/key.pem".into(),
                ),
            ],
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            cfg.http.https_listen,
            Some("127.0.0.1:8443".parse().unwrap())
        );
        assert_eq!(cfg.http.tls_cert, Some("/etc/dropline/cert.pem".into()));
        assert_eq!(cfg.http.tls_key, Some("/run/secrets/key.pem".into()));
        assert!(
            cfg.redacted_toml()
                .contains("https_listen = \"127.0.0.1:8443\"")
        );
        // Unset keys are left out of the printed configuration.
        assert!(!Config::default().redacted_toml().contains("tls_cert"));
    }

    #[test]
    fn srtla_section_and_env() {
        let f = write("[srtla]\nlisten = \"127.0.0.1:5000\"\nmax_links_per_group = 4\n");
        let cfg = Config::load(
            Some(f.path()),
            [("DROPLINE_SRTLA_LINK_TIMEOUT_MS".into(), "15000".into())],
        )
        .unwrap();
        cfg.validate().unwrap();
        let r = cfg.srtla.receiver();
        assert_eq!(
            cfg.srtla.listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 5000)))
        );
        assert_eq!(r.max_links_per_group, 4);
        assert_eq!(r.link_timeout, Duration::from_secs(15));
        assert_eq!(r.max_groups, 200);
        let mut bad = cfg;
        bad.srtla.max_groups = 0;
        assert!(bad.validate().unwrap_err().to_string().contains("srtla"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let f = write("[hls]\npart_traget_ms = 250\n");
        let err = Config::load(Some(f.path()), []).unwrap_err().to_string();
        assert!(err.contains("part_traget_ms"), "{err}");
        let f = write("[nope]\n");
        assert!(Config::load(Some(f.path()), []).is_err());
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = Config::load(None, [("DROPLINE_SRT_LISTEN".into(), "nowhere".into())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("DROPLINE_SRT_LISTEN"), "{err}");
        let mut cfg = Config::default();
        cfg.hls.part_target_ms = 5;
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("hls.part_target_ms")
        );
        cfg = Config::default();
        cfg.http.https_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        assert!(cfg.validate().unwrap_err().to_string().contains("tls_key"));
        cfg.http.tls_cert = Some("cert.pem".into());
        cfg.http.tls_key = Some("key.pem".into());
        cfg.validate().unwrap();
        cfg.http.https_listen = None;
        assert!(cfg.validate().is_err());
        cfg = Config::default();
        cfg.streams.insert(
            "x".into(),
            StreamConfig {
                passphrase: Some("short".into()),
                ..StreamConfig::default()
            },
        );
        assert!(cfg.validate().is_err());
    }
}
