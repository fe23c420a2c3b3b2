//! The SRT listener: admits publishers by stream id and passphrase, then
//! forwards their MPEG-TS datagrams to the stream's task.
//!
//! srt-tokio 0.4 panics on some handshakes (see `shared/notes/environment.md`):
//! - a caller with a passphrase accepted without one hits `unimplemented!()`;
//! - a caller whose key length differs from the one we accept with, likewise.
//!
//! Both are rejected here before srt-tokio sees them. Should the listener task
//! die anyway, the supervisor rebinds the same address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use srt_protocol::options::KeySize;
use srt_protocol::settings::{KeySettings, Passphrase};
use srt_tokio::access::{RejectReason, ServerRejectReason};
use srt_tokio::{ConnectionRequest, SrtListener};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::streamid::parse_publish;
use crate::config::Config;
use crate::stream::hub::{Hub, PublishError};

/// A bound SRT listener, ready to serve.
pub struct SrtIngest {
    addr: SocketAddr,
    socket: Option<UdpSocket>,
    config: Arc<Config>,
    hub: Hub,
    connections: Arc<AtomicUsize>,
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
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
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
            // (e.g. after a panic on a hostile handshake): serve again.
            error!("SRT listener task ended unexpectedly; restarting it");
        }
    }

    fn admit(&self, req: ConnectionRequest) {
        let peer = req.remote();
        let sid = req.stream_id().map(|s| s.to_string());
        let span = info_span!("srt", %peer, streamid = sid.as_deref().unwrap_or(""));
        let config = Arc::clone(&self.config);
        let hub = self.hub.clone();
        let connections = Arc::clone(&self.connections);
        tokio::spawn(
            async move {
                let name = match parse_publish(sid.as_deref()) {
                    Ok(n) => n,
                    Err(e) => {
                        warn!("rejected: {e}");
                        reject(req, ServerRejectReason::BadRequest).await;
                        return;
                    }
                };
                let verdict = decide(&config, &name, req.key_size());
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
                    warn!("rejected: {} publishers already connected", config.srt.max_connections);
                    reject(req, ServerRejectReason::Overload).await;
                    return;
                };
                let publisher = match hub.publish(&name) {
                    Ok(p) => p,
                    Err(e @ PublishError::Busy(_)) => {
                        warn!("rejected: {e}");
                        reject(req, ServerRejectReason::Conflict).await;
                        return;
                    }
                    Err(e) => {
                        warn!("rejected: {e}");
                        reject(req, ServerRejectReason::Down).await;
                        return;
                    }
                };
                let mut socket = match req.accept(key_settings).await {
                    Ok(s) => s,
                    Err(e) => {
                        // Wrong passphrase ends here (srt-tokio rejects it).
                        warn!("handshake failed: {e}");
                        return;
                    }
                };
                info!(stream = %name, "publisher connected");
                while let Some(item) = socket.next().await {
                    match item {
                        Ok((_, datagram)) => {
                            if publisher.send(datagram).await.is_err() {
                                info!("stream dropped the publisher");
                                break;
                            }
                        }
                        Err(e) => {
                            debug!("receive error: {e}");
                            break;
                        }
                    }
                }
                info!(stream = %name, "publisher disconnected");
            }
            .instrument(span),
        );
    }
}

/// Decides how to accept a caller, or why to reject it.
///
/// `caller_key` is the key length the caller announced (`Unspecified` without
/// a passphrase). Accepting must use exactly that length, and must not accept
/// an encrypting caller without keys: srt-tokio panics in both cases.
fn decide(
    config: &Config,
    name: &str,
    caller_key: KeySize,
) -> Result<Option<KeySettings>, (ServerRejectReason, String)> {
    let listed = config.streams.contains_key(name);
    if !listed && !config.srt.allow_unlisted_streams {
        return Err((ServerRejectReason::Notfound, "unknown stream name".to_owned()));
    }
    match (config.passphrase(name), caller_key) {
        (None, KeySize::Unspecified) => Ok(None),
        (None, _) => Err((
            ServerRejectReason::Unauthorized,
            "caller encrypts but the stream has no passphrase".to_owned(),
        )),
        (Some(_), KeySize::Unspecified) => Err((
            ServerRejectReason::Unauthorized,
            "stream requires a passphrase".to_owned(),
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
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Self(Arc::clone(count)))
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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
            },
        );
        c
    }

    #[test]
    fn decisions_avoid_srt_tokio_panics() {
        let open = config(None, true);
        assert!(matches!(decide(&open, "show", KeySize::Unspecified), Ok(None)));
        // Caller encrypts, we have no key: srt-tokio would hit unimplemented!().
        assert!(decide(&open, "show", KeySize::AES128).is_err());
        let locked = config(Some("0123456789abc"), true);
        assert!(decide(&locked, "show", KeySize::Unspecified).is_err());
        // We accept with the caller's key length, never a different one.
        for ks in [KeySize::AES128, KeySize::AES192, KeySize::AES256] {
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
}
