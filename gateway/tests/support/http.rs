//! A tiny HTTP/1.1 client over `TcpStream`.
//!
//! Deliberately raw: request targets are sent byte for byte, so tests can
//! send `..` segments, invalid percent-escapes or non-UTF-8 bytes that a URL
//! library would normalise or refuse.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET target` with `Connection: close`; `target` is sent as is.
pub fn get(addr: SocketAddr, target: &[u8], timeout: Duration) -> io::Result<Response> {
    let mut req = Vec::with_capacity(target.len() + 80);
    req.extend_from_slice(b"GET ");
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    raw(addr, &req, timeout)
}

/// Sends `request` bytes and reads one response until the server closes or
/// the body (by `Content-Length` or chunked encoding) is complete.
pub fn raw(addr: SocketAddr, request: &[u8], timeout: Duration) -> io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(request)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(resp) = parse(&buf)? {
            return Ok(resp);
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return parse_at_eof(&buf);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

type Headers = Vec<(String, String)>;

/// The head, if complete: (status, headers, body offset).
fn head(buf: &[u8]) -> io::Result<Option<(u16, Headers, usize)>> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(&format!("bad status line {status_line:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Some((status, headers, end + 4)))
}

fn parse(buf: &[u8]) -> io::Result<Option<Response>> {
    let Some((status, headers, off)) = head(buf)? else {
        return Ok(None);
    };
    let resp = |body: Vec<u8>| Response {
        status,
        headers: headers.clone(),
        body,
    };
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        return Ok((buf.len() >= off + len).then(|| resp(buf[off..off + len].to_vec())));
    }
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return Ok(dechunk(&buf[off..]).map(resp));
    }
    Ok(None) // body runs to EOF
}

fn parse_at_eof(buf: &[u8]) -> io::Result<Response> {
    let Some((status, headers, off)) = head(buf)? else {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "connection closed after {} bytes without a response head",
                buf.len()
            ),
        ));
    };
    Ok(Response {
        status,
        headers,
        body: buf[off..].to_vec(),
    })
}

/// The body if every chunk up to the terminating zero chunk has arrived.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(b, b"\r\n")?;
        let size_text = String::from_utf8_lossy(&b[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if b.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}
