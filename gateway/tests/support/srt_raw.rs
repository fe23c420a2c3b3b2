//! Hand-built SRT handshake packets, for what real callers cannot send:
//! over-long stream ids, malformed extensions, truncated headers.
//!
//! Layout (SRT RFC draft §3.2.1): a 16-byte control header (type 0 =
//! handshake), then version, encryption field (key length / 8), extension
//! field, initial sequence number, MTU, flow window, handshake type, socket
//! id, SYN cookie and a 16-byte peer IP; HSv5 extensions follow the
//! conclusion as (type u16, length in 32-bit words u16, body).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub const INDUCTION: i32 = 1;
pub const CONCLUSION: i32 = -1;
/// Extension flags of the conclusion request.
pub const EXT_HSREQ: u16 = 1;
pub const EXT_KMREQ: u16 = 2;
pub const EXT_CONFIG: u16 = 4;
/// Extension types.
pub const SRT_CMD_HSREQ: u16 = 1;
pub const SRT_CMD_SID: u16 = 5;
pub const SRT_CMD_CONGESTION: u16 = 6;
pub const SRT_CMD_FILTER: u16 = 7;
pub const SRT_CMD_GROUP: u16 = 8;
/// `UDT_DGRAM`, sent in the extension field of an HSv4-style induction.
const UDT_DGRAM: u16 = 2;

pub struct Handshake {
    pub version: u32,
    /// Key length in bytes (0, 16, 24, 32), sent as length / 8.
    pub key_len: u16,
    pub ext_field: u16,
    pub shake_type: i32,
    pub socket_id: u32,
    pub cookie: u32,
    /// Raw extension bytes appended after the fixed part.
    pub extensions: Vec<u8>,
}

impl Handshake {
    pub fn induction(socket_id: u32) -> Self {
        Self {
            version: 4,
            key_len: 0,
            ext_field: UDT_DGRAM,
            shake_type: INDUCTION,
            socket_id,
            cookie: 0,
            extensions: Vec::new(),
        }
    }

    /// A conclusion asking to connect with `streamid` (raw bytes, so tests
    /// can send any length).
    pub fn conclusion(socket_id: u32, cookie: u32, streamid: Option<&[u8]>) -> Self {
        let mut extensions = hsreq();
        let mut ext_field = EXT_HSREQ;
        if let Some(sid) = streamid {
            extensions.extend(sid_ext(sid));
            ext_field |= EXT_CONFIG;
        }
        Self {
            version: 5,
            key_len: 0,
            ext_field,
            shake_type: CONCLUSION,
            socket_id,
            cookie,
            extensions,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64 + self.extensions.len());
        b.extend(0x8000_0000u32.to_be_bytes()); // control, type 0 = handshake
        b.extend(0u32.to_be_bytes()); // type-specific information
        b.extend(0u32.to_be_bytes()); // timestamp
        b.extend(0u32.to_be_bytes()); // destination socket id: the listener
        b.extend(self.version.to_be_bytes());
        b.extend((self.key_len / 8).to_be_bytes());
        b.extend(self.ext_field.to_be_bytes());
        b.extend(0x1234_5678u32.to_be_bytes()); // initial sequence number
        b.extend(1500u32.to_be_bytes()); // MTU
        b.extend(8192u32.to_be_bytes()); // flow window
        b.extend(self.shake_type.to_be_bytes());
        b.extend(self.socket_id.to_be_bytes());
        b.extend(self.cookie.to_be_bytes());
        b.extend([127, 0, 0, 1]); // peer IP, as libsrt writes IPv4
        b.extend([0u8; 12]);
        b.extend(&self.extensions);
        b
    }
}

/// One extension block; `body` is padded to whole 32-bit words.
pub fn ext(kind: u16, body: &[u8]) -> Vec<u8> {
    let words = body.len().div_ceil(4);
    let mut b = Vec::with_capacity(4 + words * 4);
    b.extend(kind.to_be_bytes());
    b.extend(u16::try_from(words).unwrap().to_be_bytes());
    b.extend(body);
    b.resize(4 + words * 4, 0);
    b
}

/// HSREQ: SRT version 1.5.1, TSBPD both ways + NAK reports, 120 ms latencies.
pub fn hsreq() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(0x0001_0501u32.to_be_bytes());
    body.extend(0x0000_00BFu32.to_be_bytes());
    body.extend(120u16.to_be_bytes());
    body.extend(120u16.to_be_bytes());
    ext(SRT_CMD_HSREQ, &body)
}

/// A string extension (stream id, congestion, filter): SRT stores strings as
/// 32-bit little-endian words, i.e. each 4-byte group reversed.
pub fn string_ext(kind: u16, s: &[u8]) -> Vec<u8> {
    let mut body = s.to_vec();
    body.resize(s.len().div_ceil(4) * 4, 0);
    for w in body.chunks_mut(4) {
        w.reverse();
    }
    ext(kind, &body)
}

pub fn sid_ext(sid: &[u8]) -> Vec<u8> {
    string_ext(SRT_CMD_SID, sid)
}

/// The handshake type of a handshake packet (a rejection reason is >= 1000).
pub fn shake_type(packet: &[u8]) -> Option<i32> {
    if packet.len() < 40 || packet[..4] != 0x8000_0000u32.to_be_bytes() {
        return None;
    }
    Some(i32::from_be_bytes(packet[36..40].try_into().ok()?))
}

fn cookie(packet: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(packet.get(44..48)?.try_into().ok()?))
}

fn peer_socket_id(packet: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(packet.get(40..44)?.try_into().ok()?))
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The listener answered with this rejection code (e.g. 2409 Conflict).
    Rejected(i32),
    Accepted,
    /// No (parsable) answer in time.
    Silent,
}

/// Induction then conclusion with `conclusion` (built from the cookie);
/// returns how the listener answered. Closes an accepted connection again.
pub fn connect(
    srt: SocketAddr,
    socket_id: u32,
    conclusion: impl Fn(u32) -> Handshake,
    timeout: Duration,
) -> Outcome {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + timeout;
    let induction = Handshake::induction(socket_id).to_bytes();
    let mut buf = [0u8; 2048];
    // Induction, repeated like a real caller until answered.
    let cookie = loop {
        if Instant::now() > deadline {
            return Outcome::Silent;
        }
        sock.send_to(&induction, srt).unwrap();
        if let Ok((n, _)) = sock.recv_from(&mut buf)
            && shake_type(&buf[..n]) == Some(INDUCTION)
        {
            break cookie(&buf[..n]).unwrap_or_default();
        }
    };
    let request = conclusion(cookie).to_bytes();
    loop {
        if Instant::now() > deadline {
            return Outcome::Silent;
        }
        sock.send_to(&request, srt).unwrap();
        let resend = Instant::now() + Duration::from_millis(250);
        while Instant::now() < resend {
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                continue;
            };
            match shake_type(&buf[..n]) {
                Some(CONCLUSION) => {
                    // Be polite: shut the accepted connection down.
                    if let Some(peer) = peer_socket_id(&buf[..n]) {
                        let mut b = Vec::new();
                        b.extend(0x8005_0000u32.to_be_bytes());
                        b.extend([0u8; 8]);
                        b.extend(peer.to_be_bytes());
                        b.extend([0u8; 4]);
                        let _ = sock.send_to(&b, srt);
                    }
                    return Outcome::Accepted;
                }
                Some(code) if code >= 1000 => return Outcome::Rejected(code),
                _ => {}
            }
        }
    }
}
