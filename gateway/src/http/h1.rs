//! HTTP/1.1 for the LL-HLS objects, without hyper.
//!
//! Nearly every request an origin sees is a player's blocking playlist reload
//! or part fetch. Through hyper each waiting HTTP/1.1 player held ≈ 38 KB (two
//! 8 KB connection buffers, the connection task, the request and the layer
//! stack's futures) and each answer cost ≈ 55 µs of CPU (`bench/`,
//! `hls-load`). This path reads a request head into a small buffer, answers
//! the HLS routes (`hls::Route`) from the stream snapshots with the router's
//! bytes and headers, and hands the connection with every byte read so far
//! to hyper at the first request it does not take on: other paths and
//! methods, a body, HTTP/1.0, the HTTP/2 preface, a malformed or oversized
//! head. Requests are answered one at a time, in order (pipelining included).

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::AppState;
use super::hls::{Answer, Route};

/// What `super::router`'s layers add to every answer (CORS for players on
/// another origin, the server name); a test compares the two paths' answers.
const ROUTER_HEADERS: &[u8] = b"vary: origin, access-control-request-method, \
access-control-request-headers\r\naccess-control-allow-origin: *\r\n\
access-control-expose-headers: age,content-length,etag\r\nserver: dropline\r\n";

/// Browsers send 0.5–1 KB of request head; a longer one goes to hyper, which
/// reads up to its own limit.
const MAX_HEAD: usize = 8 * 1024;
/// httparse needs a fixed header array; a request with more goes to hyper.
const MAX_HEADERS: usize = 32;
/// The first read's buffer: a whole browser request head, usually.
const READ_CHUNK: usize = 1024;
/// How long a connection may take to send a whole request head, idle time
/// since the previous answer included (players ask at least once per part).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How a connection left this path.
pub(super) enum Outcome<IO> {
    /// Closed by the client, by `Connection: close`, a timeout or shutdown.
    Closed,
    /// A request for hyper, with the bytes already read in front.
    Handoff(Rewind<IO>),
}

/// Serves HLS requests on `io` until the connection closes or a request
/// needs the full router.
pub(super) async fn serve<IO>(
    mut io: IO,
    state: &AppState,
    shutdown: &CancellationToken,
) -> io::Result<Outcome<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::new();
    loop {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let head = loop {
            match parse(&buf) {
                Parsed::Request(head) => break head,
                Parsed::NotOurs => return Ok(Outcome::Handoff(Rewind::new(buf.freeze(), io))),
                Parsed::Partial => {}
            }
            if !read_more(&mut io, &mut buf, deadline, shutdown).await? {
                return Ok(Outcome::Closed);
            }
        };
        let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
        let Some(route) = Route::of(path) else {
            return Ok(Outcome::Handoff(Rewind::new(buf.freeze(), io)));
        };
        buf.advance(head.len);
        if buf.is_empty() {
            // Nothing pipelined: free the buffer while the answer waits.
            buf = BytesMut::new();
        }
        let method = if head.head_only { "HEAD" } else { "GET" };
        debug!(uri = %head.target, method, "started processing request");
        let answer = route.answer(state, query, &head.headers);
        tokio::pin!(answer);
        // A blocking reload waits up to 3 target durations: meanwhile the
        // connection is read, so that a player that leaves frees its wait at
        // once (as hyper does) and pipelined bytes are kept for later.
        let answer = loop {
            tokio::select! {
                answer = &mut answer => break answer,
                read = io.read_buf(&mut buf), if buf.len() < MAX_HEAD => match read {
                    Ok(0) | Err(_) => return Ok(Outcome::Closed),
                    Ok(_) => {}
                },
            }
        };
        write_answer(&mut io, &answer, head.head_only, head.close).await?;
        if head.close {
            io.shutdown().await?;
            return Ok(Outcome::Closed);
        }
    }
}

/// Reads more of a request head; `false` when the connection is done: closed
/// by the peer, past `deadline` (a whole head is due by then, so a client
/// trickling bytes cannot hold the connection), or idle at shutdown.
async fn read_more<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buf: &mut BytesMut,
    deadline: Instant,
    shutdown: &CancellationToken,
) -> io::Result<bool> {
    buf.reserve(READ_CHUNK);
    let idle = buf.is_empty();
    let read = tokio::time::timeout_at(deadline, io.read_buf(buf));
    tokio::select! {
        biased;
        () = shutdown.cancelled(), if idle => Ok(false),
        read = read => match read {
            Ok(Ok(n)) => Ok(n > 0),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(false),
        },
    }
}

/// A request head this path answers.
#[derive(Debug)]
struct Head {
    /// Bytes of the head in the buffer.
    len: usize,
    /// The request target, path and query.
    target: String,
    headers: HeaderMap,
    head_only: bool,
    close: bool,
}

#[derive(Debug)]
enum Parsed {
    Partial,
    Request(Head),
    NotOurs,
}

fn parse(buf: &[u8]) -> Parsed {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Parsed::Partial,
        _ => return Parsed::NotOurs,
    };
    let head_only = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Parsed::NotOurs,
    };
    // HTTP/1.0 has other keep-alive rules; hyper knows them.
    let (Some(1), Some(target)) = (req.version, req.path) else {
        return Parsed::NotOurs;
    };
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    let mut close = false;
    for field in &*req.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(field.name.as_bytes()),
            HeaderValue::from_bytes(field.value),
        ) else {
            return Parsed::NotOurs;
        };
        match name.as_str() {
            // A body, an expectation or a protocol switch: not a plain GET.
            "content-length" if value != "0" => return Parsed::NotOurs,
            "transfer-encoding" | "expect" | "upgrade" => return Parsed::NotOurs,
            "connection" => {
                let tokens = value.to_str().unwrap_or("").split(',').map(str::trim);
                for token in tokens {
                    if token.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case("upgrade") {
                        return Parsed::NotOurs;
                    }
                }
            }
            _ => {}
        }
        headers.append(name, value);
    }
    Parsed::Request(Head {
        len,
        target: target.to_owned(),
        headers,
        head_only,
        close,
    })
}

/// Writes `answer` as HTTP/1.1, head and body in one vectored write when the
/// socket takes it.
async fn write_answer<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    answer: &Answer,
    head_only: bool,
    close: bool,
) -> io::Result<()> {
    let head = response_head(answer, close);
    // RFC 9110 §8.6: a 304 carries no Content-Length here and no body.
    let body: &[u8] = if head_only || answer.status() == StatusCode::NOT_MODIFIED {
        &[]
    } else {
        answer.body()
    };
    let mut slices = [IoSlice::new(&head), IoSlice::new(body)];
    let mut pending = &mut slices[..];
    while !pending.is_empty() {
        let n = io.write_vectored(pending).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut pending, n);
    }
    io.flush().await
}

fn response_head(answer: &Answer, close: bool) -> Vec<u8> {
    let status = answer.status();
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in answer.headers() {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(ROUTER_HEADERS);
    if status != StatusCode::NOT_MODIFIED {
        head.extend_from_slice(format!("content-length: {}\r\n", answer.body().len()).as_bytes());
    }
    if close {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head.extend_from_slice(b"date: ");
    http_date(&mut head);
    head.extend_from_slice(b"\r\n\r\n");
    head
}

/// RFC 9110 §6.6.1: an origin server with a clock MUST send `Date`. Formatted
/// once per second per thread, as hyper does.
fn http_date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *at = secs;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(text.as_bytes());
    });
}

/// `io` with bytes already read from it in front, for hyper to read again.
pub(super) struct Rewind<IO> {
    prefix: Bytes,
    io: IO,
}

impl<IO> Rewind<IO> {
    pub(super) fn new(prefix: Bytes, io: IO) -> Self {
        Self { prefix, io }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, out);
        }
        let n = self.prefix.len().min(out.remaining());
        out.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    fn parsed(raw: &str) -> Parsed {
        parse(raw.as_bytes())
    }

    #[test]
    fn plain_gets_and_heads_are_taken() {
        let raw = "GET /show/main/playlist.m3u8?_HLS_msn=3 HTTP/1.1\r\nHost: x\r\n\
                   Accept-Encoding: gzip\r\nConnection: keep-alive, Close\r\n\r\nGET /next";
        let Parsed::Request(head) = parsed(raw) else {
            panic!("{:?}", parsed(raw));
        };
        assert_eq!(head.len, raw.len() - "GET /next".len());
        assert_eq!(head.target, "/show/main/playlist.m3u8?_HLS_msn=3");
        assert_eq!(head.headers["accept-encoding"], "gzip");
        assert!(head.close && !head.head_only);
        let Parsed::Request(head) = parsed("HEAD /a/b/part3.m4s HTTP/1.1\r\n\r\n") else {
            panic!("HEAD");
        };
        assert!(head.head_only && !head.close);
        assert!(matches!(parsed("GET /show/main/pla"), Parsed::Partial));
        assert!(matches!(parsed(""), Parsed::Partial));
    }

    #[test]
    fn anything_else_goes_to_hyper() {
        for raw in [
            "POST /a/b/part1.m4s HTTP/1.1\r\n\r\n",
            "OPTIONS /a/b/part1.m4s HTTP/1.1\r\n\r\n",
            "GET /a/b/part1.m4s HTTP/1.0\r\n\r\n",
            "GET /a/b/part1.m4s HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            "GET /a/b/part1.m4s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /a/b/part1.m4s HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET /a/b/part1.m4s HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET /a/b/part1.m4s HTTP/1.1\r\nBad Header\r\n\r\n",
            "\x16\x03\x01\x02\x00\x01",
        ] {
            assert!(matches!(parsed(raw), Parsed::NotOurs), "{raw:?}");
        }
        let many = format!(
            "GET /a HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        assert!(matches!(parsed(&many), Parsed::NotOurs));
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(parsed(&long), Parsed::NotOurs));
    }

    /// A request head this path takes: GET or HEAD, HTTP/1.1, no body.
    fn request() -> impl Strategy<Value = String> {
        let header = ("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,40}")
            .prop_filter("no body, no protocol switch", |(name, _)| {
                let name = name.to_ascii_lowercase();
                ![
                    "content-length",
                    "transfer-encoding",
                    "expect",
                    "upgrade",
                    "connection",
                ]
                .contains(&name.as_str())
            })
            .prop_map(|(name, value)| format!("{name}: {}\r\n", value.trim()));
        (
            prop::bool::ANY,
            "(/[a-z0-9_.-]{1,12}){1,4}(\\?[a-z_=&0-9]{0,20})?",
            vec(header, 0..12),
        )
            .prop_map(|(head, target, headers)| {
                let method = if head { "HEAD" } else { "GET" };
                format!("{method} {target} HTTP/1.1\r\n{}\r\n", headers.concat())
            })
    }

    proptest! {
        #[test]
        fn any_bytes_are_partial_ours_or_hypers_without_panic(
            bytes in vec(any::<u8>(), 0..600)
        ) {
            if let Parsed::Request(head) = parse(&bytes) {
                prop_assert!(bytes[..head.len].ends_with(b"\r\n\r\n"));
            }
        }

        #[test]
        fn a_request_is_taken_whole_and_only_whole(
            req in request(),
            pipelined in vec(any::<u8>(), 0..64),
        ) {
            for cut in 0..req.len() {
                prop_assert!(matches!(parse(&req.as_bytes()[..cut]), Parsed::Partial), "{cut}");
            }
            let mut bytes = req.clone().into_bytes();
            bytes.extend_from_slice(&pipelined);
            let Parsed::Request(head) = parse(&bytes) else {
                return Err(TestCaseError::fail(format!("not taken: {req:?}")));
            };
            prop_assert_eq!(head.len, req.len());
            let method = if head.head_only { "HEAD" } else { "GET" };
            let line = format!("{method} {} HTTP/1.1\r\n", head.target);
            prop_assert!(req.starts_with(&line), "{req:?}");
        }
    }

    #[tokio::test]
    async fn a_rewind_reads_its_prefix_first() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" world").await.unwrap();
        drop(client);
        let mut rewind = Rewind::new(Bytes::from_static(b"hello"), server);
        let mut all = String::new();
        rewind.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
    }
}
