//! A minimal blocking HTTP/1.1 keep-alive client for one origin (GET, and
//! POST for the cue API).
//!
//! Blocking I/O on the player's own thread: the moment a response is complete
//! is read right after the last `read` returns, with no executor in between.
//! Handles `Content-Length` and `chunked` bodies; reconnects once if the server
//! closed an idle connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail, ensure};

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

pub struct Client {
    addr: SocketAddr,
    timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    #[must_use]
    pub fn new(addr: SocketAddr, timeout: Duration) -> Self {
        Self {
            addr,
            timeout,
            conn: None,
        }
    }

    fn connect(&self) -> anyhow::Result<BufReader<TcpStream>> {
        let s = TcpStream::connect_timeout(&self.addr, self.timeout)
            .with_context(|| format!("connect {}", self.addr))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        Ok(BufReader::with_capacity(64 * 1024, s))
    }

    /// `GET path`; the response is complete (body fully read) when this returns.
    pub fn get(&mut self, path: &str) -> anyhow::Result<Response> {
        self.request("GET", path, &[], b"")
    }

    /// `POST path` with `headers` (name, value) and `body`.
    pub fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<Response> {
        self.request("POST", path, headers, body)
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<Response> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: dropline-bench\r\n",
            self.addr
        );
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        if method != "GET" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut req = req.into_bytes();
        req.extend_from_slice(body);
        let fresh = self.conn.is_none();
        match self.try_request(&req) {
            Ok(r) => Ok(r),
            // A reused connection may have been closed by the server meanwhile
            // (a POST is retried too: the cue API's Idempotency-Key makes that safe).
            Err(e) if !fresh => {
                self.conn = None;
                self.try_request(&req)
                    .with_context(|| format!("retry after: {e:#}"))
            }
            Err(e) => Err(e),
        }
    }

    fn try_request(&mut self, req: &[u8]) -> anyhow::Result<Response> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(self.connect()?),
        };
        let result = exchange(conn, req);
        if !matches!(&result, Ok((_, keep_alive)) if *keep_alive) {
            self.conn = None;
        }
        result.map(|(r, _)| r)
    }
}

/// Sends `req` and reads one response; returns it and whether the connection
/// may be reused.
fn exchange(conn: &mut BufReader<TcpStream>, req: &[u8]) -> anyhow::Result<(Response, bool)> {
    conn.get_mut().write_all(req).context("send request")?;
    let mut line = String::new();
    read_line(conn, &mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    let mut keep_alive = true;
    loop {
        read_line(conn, &mut line)?;
        let h = line.trim_end();
        if h.is_empty() {
            break;
        }
        let Some((name, value)) = h.split_once(':') else {
            bail!("bad header line {h:?}");
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = Some(value.parse::<usize>().context("content-length")?),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => keep_alive = !value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            read_line(conn, &mut line)?;
            let size_hex = line.trim_end().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_hex, 16)
                .with_context(|| format!("bad chunk size {line:?}"))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    read_line(conn, &mut line)?;
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let at = body.len();
            body.resize(at + size, 0);
            conn.read_exact(&mut body[at..]).context("chunk body")?;
            read_line(conn, &mut line)?;
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        conn.read_exact(&mut body).context("body")?;
    } else {
        keep_alive = false;
        conn.read_to_end(&mut body).context("body to end")?;
    }
    Ok((Response { status, body }, keep_alive))
}

fn read_line(conn: &mut BufReader<TcpStream>, line: &mut String) -> anyhow::Result<()> {
    line.clear();
    let n = conn.read_line(line).context("read response")?;
    ensure!(n > 0, "connection closed");
    Ok(())
}
