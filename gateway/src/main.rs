//! `dropline`: the gateway binary.
//!
//! Contract for scripts: once every listener is bound, one stdout line
//! `dropline ready srt=IP:PORT http=IP:PORT [https=IP:PORT] [srtla=IP:PORT]` lists them.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway::config::Config;
use gateway::http::{AppState, router_with, server};
use gateway::ingest::srt::SrtIngest;
use gateway::ingest::srtla;
use gateway::media::{RungSpec, TestSource};
use gateway::overlay::Overlay;
use gateway::stream::hub::Hub;
use gateway::stream::registry::Registry;
use gateway::stream::task::StreamSettings;
use gateway::stream::uplink::UplinkConfig;
use packager::rendition::Retention;
use packager::segmenter::SegmenterConfig;
use packager::units::MediaTime;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

#[derive(Parser)]
#[command(name = "dropline", version, about = "Low-latency SRT → LL-HLS gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Print the effective configuration (secrets redacted) and exit.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// SRT listen address (UDP), e.g. 0.0.0.0:9000; port 0 picks one.
    #[arg(long)]
    srt_listen: Option<SocketAddr>,
    /// HTTP listen address, e.g. 0.0.0.0:8080; port 0 picks one.
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// HTTPS listen address (needs [http] tls_cert and tls_key); port 0 picks one.
    #[arg(long)]
    https_listen: Option<SocketAddr>,
    /// SRTLA (bonded SRT) listen address (UDP); off unless set here or in the config.
    #[arg(long)]
    srtla_listen: Option<SocketAddr>,
    /// Folder of the demo player page.
    #[arg(long)]
    web_root: Option<PathBuf>,
    /// Publish an embedded test pattern under this stream name.
    #[arg(long)]
    test_source: Option<String>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // srt-protocol warns once per garbage datagram; our own
                // admission log says what matters about refused callers.
                .unwrap_or_else(|_| "info,srt_protocol=error,srt_tokio=error".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => {
            let cfg = Config::load(config.as_deref(), std::env::vars())?;
            cfg.validate()?;
            print!("{}", cfg.redacted_toml());
            Ok(())
        }
        Command::Serve(args) => {
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            rt.block_on(serve(args))
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(a) = args.srt_listen {
        cfg.srt.listen = a;
    }
    if let Some(a) = args.http_listen {
        cfg.http.listen = a;
    }
    if let Some(a) = args.https_listen {
        cfg.http.https_listen = Some(a);
    }
    if let Some(a) = args.srtla_listen {
        cfg.srtla.listen = Some(a);
    }
    if let Some(w) = args.web_root {
        cfg.http.web_root = w;
    }
    cfg.validate()?;
    let cfg = Arc::new(cfg);
    gateway::media::init().context("initialising GStreamer")?;

    let registry = Registry::default();
    // Opened before the ready line: a bad store stops startup with its reason.
    let overlay = if gateway::overlay::settings::enabled(&cfg) {
        Some(
            Overlay::open(
                &cfg,
                registry.clone(),
                Arc::new(gateway::stream::task::wall_now),
            )
            .context("opening the commerce overlay")?,
        )
    } else {
        None
    };
    let mut hub = Hub::new(registry.clone(), stream_settings(&cfg));
    if let Some(o) = &overlay {
        hub = hub.with_overlay(o.clone());
    }
    let shutdown = CancellationToken::new();

    let srt = SrtIngest::bind(Arc::clone(&cfg), hub)
        .await
        .with_context(|| format!("binding SRT on {}", cfg.srt.listen))?;
    let srt_addr = srt.local_addr();
    let http = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .with_context(|| format!("binding HTTP on {}", cfg.http.listen))?;
    let http_addr = http.local_addr()?;
    let https = match (cfg.http.https_listen, &cfg.http.tls_cert, &cfg.http.tls_key) {
        (Some(addr), Some(cert), Some(key)) => {
            let tls = gateway::http::tls::server_config(cert, key)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding HTTPS on {addr}"))?;
            Some((listener, tls))
        }
        _ => None,
    };
    let srtla = match cfg.srtla.listen {
        Some(listen) => Some(
            srtla::io::SrtlaIngest::bind(listen, cfg.srtla.receiver())
                .await
                .with_context(|| format!("binding SRTLA on {listen}"))?,
        ),
        None => None,
    };
    let srtla_stats = match &srtla {
        Some(s) => s.stats(),
        None => tokio::sync::watch::channel(Arc::default()).1,
    };

    let api = overlay.map_or_else(axum::Router::new, gateway::overlay::api::router);
    let state = AppState::new(registry, cfg.http.web_root.clone());
    let app = router_with(state.clone(), api).merge(srtla::api::router(srtla_stats));
    let mut ready = format!("dropline ready srt={srt_addr} http={http_addr}");
    let https_task = match https {
        Some((listener, tls)) => {
            let addr = listener.local_addr()?;
            ready.push_str(&format!(" https={addr}"));
            info!(https_addr = %addr, "listening");
            let serve = server::serve(
                listener,
                Some(tls),
                state.clone(),
                app.clone(),
                shutdown.clone(),
            );
            Some(tokio::spawn(serve))
        }
        None => None,
    };
    let http_task = tokio::spawn(server::serve(http, None, state, app, shutdown.clone()));
    let srt_task = tokio::spawn(srt.run(shutdown.clone()));
    if let Some(s) = srtla {
        ready.push_str(&format!(" srtla={}", s.local_addr()));
        // Each group reaches the SRT listener like any other caller.
        tokio::spawn(s.run(loopback_of(srt_addr), shutdown.clone()));
    }

    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{ready}")?;
        out.flush()?;
    }
    info!(%srt_addr, %http_addr, "listening");

    let _source = match &args.test_source {
        Some(name) => {
            let target = loopback_of(srt_addr);
            let source = TestSource::start(
                target,
                name,
                cfg.passphrase(name),
                Duration::from_millis(cfg.hls.segment_duration_ms / 2),
            )
            .context("starting the test source")?;
            info!(
                "test source publishing as {name:?}: open http://{}/?stream={name}",
                loopback_of(http_addr)
            );
            Some(source)
        }
        None => None,
    };

    shutdown_signal().await;
    info!("shutting down");
    shutdown.cancel();
    let grace = Duration::from_secs(5);
    if tokio::time::timeout(grace, http_task).await.is_err() {
        error!("HTTP server did not stop within {grace:?}");
    }
    if let Some(task) = https_task
        && tokio::time::timeout(grace, task).await.is_err()
    {
        error!("HTTPS server did not stop within {grace:?}");
    }
    srt_task.abort();
    Ok(())
}

fn stream_settings(cfg: &Config) -> StreamSettings {
    StreamSettings {
        segmenter: SegmenterConfig {
            segment_duration: MediaTime::from_millis(ms(cfg.hls.segment_duration_ms)),
            part_target: MediaTime::from_millis(ms(cfg.hls.part_target_ms)),
        },
        retention: Retention {
            segments: cfg.hls.window_segments,
        },
        reconnect_grace: Duration::from_millis(cfg.srt.reconnect_grace_ms),
        video_timeout: Duration::from_millis(cfg.srt.video_timeout_ms),
        linger: Duration::from_millis(cfg.hls.linger_ms),
        uplink: UplinkConfig {
            failover: cfg.failover(),
            handback: Duration::from_millis(cfg.srt.handback_ms),
        },
        ladder: cfg
            .hls
            .ladder
            .iter()
            .map(|r| {
                let spec = RungSpec {
                    height: r.height,
                    bitrate_kbps: r.bitrate_kbps,
                };
                (r.name.clone(), spec)
            })
            .collect(),
    }
}

/// Validated config values are small; saturate rather than wrap.
fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A wildcard listen address is reached through loopback.
fn loopback_of(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
