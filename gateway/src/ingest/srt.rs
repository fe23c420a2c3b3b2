//! The SRT listener: admits publishers by stream id and passphrase, then
//! forwards their MPEG-TS datagrams to the stream's task.
//!
//! srt-tokio 0.4 panics on some handshakes (see `shared/notes/environment.md`):
//! - a caller with a passphrase accepted without one hits `unimplemented!()`;
//! - a caller whose key length differs from the one we accept with, likewise.
//!
//! Both are rejected here before srt-tokio sees them, as far as its API lets
//! us see them: a libsrt caller with a passphrase but no `pbkeylen` announces
//! key length 0 like an unencrypted one, and srt-protocol's packet parser
//! panics on some malformed handshake extensions before we are asked at all
//! (see `gateway/tests/ingest_robustness.rs`). Should the listener task die,
//! the supervisor rebinds the same address.
//!
//! A stream is only told about a publisher once its handshake has succeeded:
//! a refused caller (wrong passphrase, …) never touches the stream's state.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use srt_protocol::options::KeySize;
use srt_protocol::settings::{KeySettings, Passphrase};
use srt_tokio::access::{RejectReason, ServerRejectReason};
use srt_tokio::{ConnectionRequest, SrtListener, SrtSocket};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::stats::{PublisherStats, StatsTracker};
use super::streamid::parse_publish;
use crate::config::{BITRATE_WINDOW, Config};
use crate::stream::hub::{Hub, PublishError, Publisher};
use crate::stream::uplink::Role;

/// A bound SRT listener, ready to serve.
pub struct SrtIngest {
    addr: SocketAddr,
    socket: Option<UdpSocket>,
    config: Arc<Config>,
    hub: Hub,
    connections: Arc<AtomicUsize>,
    claims: Claims,
}

impl SrtIngest {
    /// Binds the UDP socket now so that the ready line can print its address.
    pub async fn bind(config: Arc<Config>, hub: Hub) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(config.srt.listen).await?;
        Ok(Self {
            addr: socket.local_addr()?,
            socket: Some(socket),
            config,
            hub,
            connections: Arc::default(),
            claims: Claims::default(),
        })
    }

    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown`; restarts the listener if srt-tokio's task dies.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let socket = match self.socket.take() {
                Some(s) => s,
                None => match UdpSocket::bind(self.addr).await {
                    Ok(s) => s,
                    Err(e) => {
                        error!("cannot rebind SRT listener on {}: {e}", self.addr);
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            () = shutdown.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                },
            };
            let bound = SrtListener::builder()
                .latency(self.config.srt.latency())
                .socket(socket)
                .bind(self.addr)
                .await;
            let (_listener, mut incoming) = match bound {
                Ok(l) => l,
                Err(e) => {
                    error!("SRT listener on {} failed to start: {e}", self.addr);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(50);
            loop {
                tokio::select! {
                    req = incoming.incoming().next() => match req {
                        Some(req) => self.admit(req),
                        None => break,
                    },
                    () = shutdown.cancelled() => return,
                }
            }
            // srt-tokio ends the incoming stream only when its task is gone
            // (e.g. after a panic on a hostile handshake), and every SRT
            // connection went with it: serve again.
            error!(
                "SRT listener task ended unexpectedly (all SRT connections are lost); restarting it"
            );
        }
    }

    fn admit(&self, req: ConnectionRequest) {
        let peer = req.remote();
        let sid = req.stream_id().map(|s| s.to_string());
        let span = info_span!("srt", %peer, streamid = sid.as_deref().unwrap_or(""));
        let config = Arc::clone(&self.config);
        let hub = self.hub.clone();
        let connections = Arc::clone(&self.connections);
        let claims = self.claims.clone();
        tokio::spawn(
            async move {
                let (name, role) = match parse_publish(sid.as_deref()) {
                    Ok(r) => (r.name, r.role),
                    Err(e) => {
                        warn!("rejected: {e}");
                        reject(req, ServerRejectReason::BadRequest).await;
                        return;
                    }
                };
                let caller_key = req.key_size();
                let verdict = decide(&config, &name, caller_key);
                let key_settings = match verdict {
                    Ok(k) => k,
                    Err((reason, why)) => {
                        warn!("rejected publisher for {name:?}: {why}");
                        reject(req, reason).await;
                        return;
                    }
                };
                let Some(_slot) = ConnectionSlot::take(&connections, config.srt.max_connections)
                else {
                    warn!(
                        "rejected: {} publishers already connected",
                        config.srt.max_connections
                    );
                    reject(req, ServerRejectReason::Overload).await;
                    return;
                };
                // Declared before `publisher` so that it is released after it.
                let Some(_claim) = claims.take(&name, role) else {
                    warn!("rejected: {}", PublishError::Busy(name.clone(), role));
                    reject(req, ServerRejectReason::Conflict).await;
                    return;
                };
                let encrypted = key_settings.is_some();
                let mut socket = match req.accept(key_settings).await {
                    Ok(s) => s,
                    Err(e) if encrypted => {
                        // srt-tokio refuses the keys (and tells the caller);
                        // all we get is a dropped channel.
                        let why = if caller_key == KeySize::Unspecified {
                            "no passphrase or a wrong passphrase"
                        } else {
                            "wrong passphrase"
                        };
                        warn!("rejected publisher for {name:?}: {why} (handshake failed: {e})");
                        return;
                    }
                    Err(e) => {
                        // Also where a caller that encrypts without announcing
                        // a key length ends, once srt-protocol refuses it
                        // instead of panicking (see the module docs).
                        warn!(
                            "rejected publisher for {name:?}: handshake failed \
                             (does the caller use a passphrase? this stream has none): {e}"
                        );
                        return;
                    }
                };
                // Only now does the stream hear of this publisher. The claim
                // makes `Busy` unlikely here; should it happen, the caller is
                // connected already and can only be disconnected.
                let publisher = match hub.publish(&name, role) {
                    Ok(p) => p,
                    Err(e) => {
                        warn!("disconnecting the publisher: {e}");
                        return;
                    }
                };
                info!(stream = %name, %role, "publisher connected");
                let tracker = StatsTracker::new(
                    Instant::now(),
                    role,
                    peer.to_string(),
                    socket.settings().recv_tsbpd_latency,
                    BITRATE_WINDOW,
                );
                let (stats, stats_rx) = watch::channel(PublisherStats::default());
                hub.registry().add_publisher(&name, stats_rx);
                relay(
                    &mut socket,
                    &publisher,
                    tracker,
                    &stats,
                    config.srt.max_bitrate_kbps,
                )
                .await;
                info!(stream = %name, %role, "publisher disconnected");
            }
            .instrument(span),
        );
    }
}

/// Forwards a publisher's datagrams to its stream until either side ends,
/// keeping its statistics and enforcing `srt.max_bitrate_kbps` (0: none).
async fn relay(
    socket: &mut SrtSocket,
    publisher: &Publisher,
    mut tracker: StatsTracker,
    stats: &watch::Sender<PublisherStats>,
    max_kbps: u64,
) {
    let mut srt_stats = socket.statistics().clone();
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    loop {
        let item = tokio::select! {
            item = socket.next() => item,
            Some(s) = srt_stats.next() => {
                tracker.on_srt(&s);
                continue;
            }
            _ = every_second.tick() => {
                stats.send_replace(tracker.snapshot(Instant::now(), publisher.queued()));
                continue;
            }
            () = publisher.closed() => {
                info!("stream dropped the publisher");
                return;
            }
        };
        let datagram = match item {
            Some(Ok((_, datagram))) => datagram,
            Some(Err(e)) => {
                debug!("receive error: {e}");
                return;
            }
            None => return,
        };
        if let Some(bps) = tracker.on_datagram(Instant::now(), datagram.len())
            && max_kbps > 0
            && bps > max_kbps.saturating_mul(1000)
        {
            warn!(
                "disconnecting the publisher: it sent {} kbit/s over the last {:?}, \
                 more than srt.max_bitrate_kbps = {max_kbps}",
                bps / 1000,
                BITRATE_WINDOW
            );
            return;
        }
        if publisher.send(datagram).await.is_err() {
            info!("stream dropped the publisher");
            return;
        }
    }
}

/// Decides how to accept a caller, or why to reject it.
///
/// `caller_key` is the key length the caller announced. Accepting must use
/// exactly that length, and must not accept an encrypting caller without
/// keys: srt-tokio panics in both cases.
///
/// `Unspecified` means either "no encryption" or "encryption with the
/// default key length": libsrt callers with a passphrase but no `pbkeylen`
/// (ffmpeg's and OBS's default) announce 0 and send 16-byte key material.
/// For a stream with a passphrase we therefore accept with an unspecified
/// length too: srt-tokio then unwraps 16-byte keys, refuses a wrong
/// passphrase (`BadSecret`) and refuses a caller without key material
/// (`Unsecure`), all without panicking.
fn decide(
    config: &Config,
    name: &str,
    caller_key: KeySize,
) -> Result<Option<KeySettings>, (ServerRejectReason, String)> {
    let listed = config.streams.contains_key(name);
    if !listed && !config.srt.allow_unlisted_streams {
        return Err((
            ServerRejectReason::Notfound,
            "unknown stream name".to_owned(),
        ));
    }
    match (config.passphrase(name), caller_key) {
        (None, KeySize::Unspecified) => Ok(None),
        (None, _) => Err((
            ServerRejectReason::Unauthorized,
            "caller encrypts but the stream has no passphrase".to_owned(),
        )),
        (Some(p), key_size) => {
            let passphrase = Passphrase::try_from(p.to_owned()).map_err(|e| {
                (
                    ServerRejectReason::InternalServerError,
                    format!("configured passphrase is invalid: {e}"),
                )
            })?;
            Ok(Some(KeySettings {
                key_size,
                passphrase,
            }))
        }
    }
}

async fn reject(req: ConnectionRequest, reason: ServerRejectReason) {
    if let Err(e) = req.reject(RejectReason::Server(reason)).await {
        debug!("reject not delivered: {e}");
    }
}

/// Counts a connection for `srt.max_connections` while alive.
struct ConnectionSlot(Arc<AtomicUsize>);

impl ConnectionSlot {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(Arc::clone(count)))
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Stream names and roles with an SRT publisher being admitted or
/// connected: lets a second publisher in the same role be refused
/// (`Conflict`) before its handshake completes, without telling the stream
/// about a publisher that may never connect.
#[derive(Clone, Default)]
struct Claims(Arc<Mutex<HashSet<(String, Role)>>>);

/// Holds a name and role in [`Claims`] while alive.
struct Claim {
    claims: Claims,
    key: (String, Role),
}

impl Claims {
    fn take(&self, name: &str, role: Role) -> Option<Claim> {
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (name.to_owned(), role);
        set.insert(key.clone()).then(|| Claim {
            claims: self.clone(),
            key,
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut set = self.claims.0.lock().unwrap_or_else(PoisonError::into_inner);
        set.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StreamConfig;

    fn config(pass: Option<&str>, unlisted: bool) -> Config {
        let mut c = Config::default();
        c.srt.allow_unlisted_streams = unlisted;
        c.streams.insert(
            "show".into(),
            StreamConfig {
                passphrase: pass.map(str::to_owned),
                ..StreamConfig::default()
            },
        );
        c
    }

    #[test]
    fn decisions_avoid_srt_tokio_panics() {
        let open = config(None, true);
        assert!(matches!(
            decide(&open, "show", KeySize::Unspecified),
            Ok(None)
        ));
        // Caller encrypts, we have no key: srt-tokio would hit unimplemented!().
        assert!(decide(&open, "show", KeySize::AES128).is_err());
        let locked = config(Some("0123456789abc"), true);
        // We accept with the caller's key length, never a different one
        // (an unspecified length is libsrt's default, 16 bytes).
        for ks in [
            KeySize::Unspecified,
            KeySize::AES128,
            KeySize::AES192,
            KeySize::AES256,
        ] {
            let k = decide(&locked, "show", ks).unwrap().unwrap();
            assert_eq!(k.key_size, ks);
        }
        let closed = config(None, false);
        assert!(decide(&closed, "other", KeySize::Unspecified).is_err());
        assert!(decide(&closed, "show", KeySize::Unspecified).is_ok());
    }

    #[test]
    fn connection_slots_are_bounded() {
        let n = Arc::new(AtomicUsize::new(0));
        let a = ConnectionSlot::take(&n, 2).unwrap();
        let _b = ConnectionSlot::take(&n, 2).unwrap();
        assert!(ConnectionSlot::take(&n, 2).is_none());
        drop(a);
        assert!(ConnectionSlot::take(&n, 2).is_some());
    }

    #[test]
    fn a_name_is_claimed_once_per_role_at_a_time() {
        let claims = Claims::default();
        let a = claims.take("show", Role::Primary).unwrap();
        assert!(claims.take("show", Role::Primary).is_none());
        assert!(claims.take("other", Role::Primary).is_some());
        let b = claims.take("show", Role::Backup).unwrap();
        assert!(claims.take("show", Role::Backup).is_none());
        drop(a);
        assert!(claims.take("show", Role::Primary).is_some());
        drop(b);
        assert!(claims.take("show", Role::Backup).is_some());
    }
}
