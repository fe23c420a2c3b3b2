//! The HTTP listeners: plain (HTTP/1.1, and HTTP/2 with prior knowledge) and
//! TLS (HTTP/2 or HTTP/1.1 by ALPN). HTTP/1.1 requests for HLS objects take
//! the fast path (`h1.rs`); everything else, and every HTTP/2 connection, is
//! served by hyper with the full router.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, debug_span, warn};

use super::AppState;
use super::h1::{self, Rewind};

/// A TLS client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections get this long to finish their requests at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `app` (built on `state`) on `listener`, over TLS when `tls` is
/// given, until `shutdown`; then lets open connections finish their requests
/// for a few seconds.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    state: AppState,
    app: Router,
    shutdown: CancellationToken,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    warn!("http accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Answers are written whole; Nagle would only delay their tails.
        let _ = tcp.set_nodelay(true);
        let (state, app, shutdown) = (state.clone(), app.clone(), shutdown.clone());
        let acceptor = acceptor.clone();
        let conn = async move {
            let Some(acceptor) = acceptor else {
                return serve_connection(tcp, true, state, app, shutdown).await;
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    serve_connection(tls, !h2, state, app, shutdown).await;
                }
                Ok(Err(e)) => debug!("TLS handshake failed: {e}"),
                Err(_) => debug!("TLS handshake timed out"),
            }
        };
        connections.spawn(conn.instrument(debug_span!("http connection", %peer)));
    }
    connections.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
        .await
        .is_err()
    {
        warn!("http connections still open after {SHUTDOWN_GRACE:?}");
    }
}

/// Serves one connection: its HTTP/1.1 requests for HLS objects on the fast
/// path while they come (when `fast_path`), then everything with hyper and
/// `app` (which also tells HTTP/2's preface from HTTP/1.1). At `shutdown`,
/// an idle connection closes and one with a request in flight finishes it.
pub async fn serve_connection<IO>(
    io: IO,
    fast_path: bool,
    state: AppState,
    app: Router,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = if fast_path {
        match h1::serve(io, &state, &shutdown).await {
            Ok(h1::Outcome::Handoff(io)) => io,
            Ok(h1::Outcome::Closed) => return,
            Err(e) => return debug!("http connection: {e}"),
        }
    } else {
        Rewind::new(Bytes::new(), io)
    };
    // Boxed: a connection waiting on the fast path does not carry hyper's
    // larger state in its task.
    Box::pin(hyper_connection(io, app, shutdown)).await;
}

async fn hyper_connection<IO>(io: Rewind<IO>, app: Router, shutdown: CancellationToken)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let done = tokio::select! {
        done = conn.as_mut() => done,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = done {
        debug!("http connection: {e}");
    }
}
