//! Lean async HTTP clients for load: one HTTP/1.1 keep-alive connection, or
//! one HTTP/2 connection (prior knowledge, h2c) shared by many streams.
//!
//! Thousands of these run on one core beside the measurement, so they do no
//! more than a player must: send the request, read the whole response, and
//! hand back its status and body. `accept_gzip` makes a client ask for gzip
//! as browsers do; the body then comes back as sent (compressed).

use std::net::SocketAddr;

use anyhow::{Context, bail, ensure};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Response headers beyond this many are refused (ours send about eight).
const MAX_HEADERS: usize = 32;

/// One HTTP/1.1 keep-alive connection; reconnects when the server closed it.
pub struct H1Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: BytesMut,
    accept_gzip: bool,
}

impl H1Conn {
    pub async fn connect(addr: SocketAddr, accept_gzip: bool) -> anyhow::Result<Self> {
        let mut c = Self {
            addr,
            stream: None,
            buf: BytesMut::with_capacity(16 * 1024),
            accept_gzip,
        };
        c.stream = Some(c.open().await?);
        Ok(c)
    }

    async fn open(&self) -> anyhow::Result<TcpStream> {
        let s = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connect {}", self.addr))?;
        s.set_nodelay(true)?;
        Ok(s)
    }

    /// `GET path`; returns when the body has been read completely.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<(u16, Bytes)> {
        let stream = match &mut self.stream {
            Some(s) => s,
            None => {
                let s = self.open().await?;
                self.stream.insert(s)
            }
        };
        let encoding = if self.accept_gzip {
            "Accept-Encoding: gzip\r\n"
        } else {
            ""
        };
        let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{encoding}\r\n");
        stream.write_all(req.as_bytes()).await.context("send")?;
        self.buf.clear();
        let (status, head_len, length, keep_alive) = loop {
            if stream.read_buf(&mut self.buf).await.context("read")? == 0 {
                self.stream = None;
                bail!("connection closed");
            }
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
        };
        let body = loop {
            let rest = &self.buf[head_len..];
            let complete = match length {
                Length::Fixed(n) => (rest.len() >= n).then(|| Bytes::copy_from_slice(&rest[..n])),
                Length::Chunked => dechunk(rest)?.map(Bytes::from),
            };
            if let Some(body) = complete {
                break body;
            }
            if stream.read_buf(&mut self.buf).await.context("read body")? == 0 {
                self.stream = None;
                bail!("connection closed in the body");
            }
        };
        if !keep_alive {
            self.stream = None;
        }
        Ok((status, body))
    }
}

/// How a response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Length {
    Fixed(usize),
    /// `Transfer-Encoding: chunked` (a server compressing on the fly sends this).
    Chunked,
}

/// Status, head length, body length and keep-alive of a complete response
/// head in `buf`, or `None` if more bytes are needed.
fn parse_head(buf: &[u8]) -> anyhow::Result<Option<(u16, usize, Length, bool)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = res.parse(buf).context("response head")? else {
        return Ok(None);
    };
    let status = res.code.context("no status")?;
    let mut length = None;
    let mut keep_alive = true;
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(Length::Fixed(
                std::str::from_utf8(h.value)?.trim().parse::<usize>()?,
            ));
        } else if h.name.eq_ignore_ascii_case("connection") {
            keep_alive = !h.value.eq_ignore_ascii_case(b"close");
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            ensure!(
                h.value.eq_ignore_ascii_case(b"chunked"),
                "transfer coding {:?} is not supported by this client",
                String::from_utf8_lossy(h.value)
            );
            length = Some(Length::Chunked);
        }
    }
    let length = length.context("response without Content-Length")?;
    Ok(Some((status, head_len, length, keep_alive)))
}

/// The body of a complete chunked message at the start of `buf` (no
/// trailers), or `None` if more bytes are needed.
fn dechunk(buf: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let status = httparse::parse_chunk_size(&buf[at..])
            .map_err(|_| anyhow::anyhow!("bad chunk size line"))?;
        let httparse::Status::Complete((used, size)) = status else {
            return Ok(None);
        };
        at += used;
        let size = usize::try_from(size)?;
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
        if size == 0 {
            return Ok(Some(body));
        }
    }
}

/// One HTTP/2 connection (h2c, prior knowledge); clone it for more streams.
#[derive(Clone)]
pub struct H2Conn {
    send: h2::client::SendRequest<Bytes>,
    authority: String,
    accept_gzip: bool,
}

impl H2Conn {
    /// Connects and starts the connection's driver task.
    pub async fn connect(addr: SocketAddr, accept_gzip: bool) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        tcp.set_nodelay(true)?;
        // Large windows: flow control is not what is measured.
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .initial_connection_window_size(1 << 24)
            .handshake(tcp)
            .await
            .context("HTTP/2 handshake")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            send,
            authority: addr.to_string(),
            accept_gzip,
        })
    }

    /// `GET path` on a new stream; returns when the body has been read.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Bytes)> {
        let mut send = self.send.clone().ready().await.context("HTTP/2 ready")?;
        let mut req = http::Request::get(format!("http://{}{path}", self.authority));
        if self.accept_gzip {
            req = req.header(http::header::ACCEPT_ENCODING, "gzip");
        }
        let req = req.body(()).context("request")?;
        let (resp, _) = send.send_request(req, true).context("send request")?;
        let resp = resp.await.context("response")?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut out = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.context("body")?;
            let _ = body.flow_control().release_capacity(chunk.len());
            out.extend_from_slice(&chunk);
        }
        ensure!(status != 0, "no status");
        Ok((status, out.freeze()))
    }
}

/// Either protocol, for code that does not care which.
pub enum Conn {
    H1(H1Conn),
    H2(H2Conn),
}

impl Conn {
    pub async fn get(&mut self, path: &str) -> anyhow::Result<(u16, Bytes)> {
        match self {
            Self::H1(c) => c.get(path).await,
            Self::H2(c) => c.get(path).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_head_in_pieces() {
        let full = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nServer: x\r\n\r\nhello";
        assert_eq!(parse_head(&full[..20]).unwrap(), None);
        let (status, head, len, keep) = parse_head(full).unwrap().unwrap();
        assert_eq!((status, len, keep), (200, Length::Fixed(5), true));
        assert_eq!(&full[head..], b"hello");
        let close = b"HTTP/1.1 503 x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            parse_head(close).unwrap().map(|h| (h.0, h.3)),
            Some((503, false))
        );
        let chunked = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(chunked.unwrap().unwrap().2, Length::Chunked);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").is_err());
    }

    #[test]
    fn dechunks_a_body_in_pieces() {
        let msg = b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\n\r\n";
        for cut in 0..msg.len() {
            assert_eq!(dechunk(&msg[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(dechunk(msg).unwrap().as_deref(), Some(&b"hello!"[..]));
        assert!(dechunk(b"zz\r\n").is_err());
    }
}
