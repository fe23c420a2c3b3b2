//! srt-protocol's listener (patched, third_party/README.md) under a handshake
//! flood, driven sans-IO on virtual time as srt-tokio drives it: every datagram
//! from a new address used to open a pending session that lived forever, so
//! inductions from many source ports grew the gateway's memory without bound.
//! Now a handshake not completed within `PENDING_TIMEOUT` is forgotten, and at
//! `MAX_SESSIONS` new addresses are ignored until some are; an open
//! connection is never swept.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use srt_protocol::listener::{
    AccessControlResponse, Action, Input, ListenerStatistics, MAX_SESSIONS, MultiplexListener,
    PENDING_TIMEOUT, ResultOf, SessionId,
};
use srt_protocol::options::{PacketCount, PacketSize, SrtVersion};
use srt_protocol::packet::{
    ControlPacket, ControlTypes, HandshakeControlInfo, HandshakeVsInfo, HsV5Info, Packet,
    SeqNumber, ShakeType, SocketId, SrtControlPacket, SrtHandshake, SrtShakeFlags, TimeStamp,
};
use srt_protocol::settings::ConnInitSettings;

/// Source address number `i` (10.0.0.0/8, any port): one flood packet each.
fn addr(i: usize) -> SocketAddr {
    let i = u32::try_from(i).unwrap();
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i >> 8))),
        1024 + (i & 0xff) as u16,
    )
}

fn handshake(shake_type: ShakeType, syn_cookie: i32) -> Packet {
    let ext_hs = (shake_type == ShakeType::Conclusion).then_some(
        SrtControlPacket::HandshakeRequest(SrtHandshake {
            version: SrtVersion::CURRENT,
            flags: SrtShakeFlags::SUPPORTED,
            send_latency: Duration::from_millis(120),
            recv_latency: Duration::from_millis(120),
        }),
    );
    Packet::Control(ControlPacket {
        timestamp: TimeStamp::from_micros(0),
        dest_sockid: SocketId(0),
        control_type: ControlTypes::Handshake(HandshakeControlInfo {
            init_seq_num: SeqNumber::new_truncate(1),
            max_packet_size: PacketSize(1316),
            max_flow_size: PacketCount(8192),
            shake_type,
            socket_id: SocketId(0x4242),
            syn_cookie,
            peer_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            info: HandshakeVsInfo::V5(HsV5Info {
                ext_hs,
                ..HsV5Info::default()
            }),
        }),
    })
}

fn induction(l: &mut MultiplexListener, now: Instant, from: SocketAddr) -> Action<'_> {
    l.handle_input(
        now,
        Input::Packet(Ok((handshake(ShakeType::Induction, 0), from))),
    )
}

fn answered(l: &mut MultiplexListener, now: Instant, from: SocketAddr) -> bool {
    match induction(l, now, from) {
        Action::SendPacket(_) => true,
        Action::WaitForInput => false,
        other => panic!("induction from {from}: {other:?}"),
    }
}

/// The listener's statistics, as its once-a-second timer reports them.
fn statistics(l: &mut MultiplexListener, now: Instant) -> ListenerStatistics {
    match l.handle_input(now, Input::Timer) {
        Action::UpdateStatistics(s) => s.clone(),
        other => panic!("timer: {other:?}"),
    }
}

/// Opens a connection from `from` the way a caller does.
fn connect(l: &mut MultiplexListener, now: Instant, from: SocketAddr) {
    let cookie = match induction(l, now, from) {
        Action::SendPacket((
            Packet::Control(ControlPacket {
                control_type: ControlTypes::Handshake(h),
                ..
            }),
            _,
        )) => h.syn_cookie,
        other => panic!("induction: {other:?}"),
    };
    let conclusion = handshake(ShakeType::Conclusion, cookie);
    let action = l.handle_input(now, Input::Packet(Ok((conclusion, from))));
    assert!(matches!(action, Action::RequestAccess(..)), "{action:?}");
    let id = SessionId(from);
    let response = Some((id, AccessControlResponse::Accepted(None)));
    let action = l.handle_input(now, Input::AccessResponse(response));
    assert!(matches!(action, Action::OpenConnection(..)), "{action:?}");
    let action = l.handle_input(now, Input::Success(ResultOf::OpenConnection(id)));
    assert!(matches!(action, Action::WaitForInput), "{action:?}");
}

#[test]
fn unfinished_handshakes_expire_and_sessions_are_bounded() {
    let t0 = Instant::now();
    let local = "127.0.0.1:9000".parse().unwrap();
    let mut l = MultiplexListener::new(t0, local, ConnInitSettings::default());
    let publisher = addr(usize::MAX >> 40);
    connect(&mut l, t0, publisher);

    // The flood fills the table: every induction is answered up to the limit.
    for i in 1..MAX_SESSIONS {
        assert!(answered(&mut l, t0, addr(i)), "induction {i} of the flood");
    }
    let late = addr(MAX_SESSIONS);
    assert!(
        !answered(&mut l, t0, late),
        "a full table answers no new address"
    );

    // Just before the timeout nothing has expired; at it every pending one has.
    let before = t0 + PENDING_TIMEOUT - Duration::from_millis(1);
    let _ = l.handle_input(before, Input::Timer);
    assert!(!answered(&mut l, before, late));
    let at = t0 + PENDING_TIMEOUT;
    let stats = statistics(&mut l, at);
    assert_eq!(stats.cx_expired, (MAX_SESSIONS - 1) as u64, "{stats:?}");
    assert_eq!(stats.cx_refused_full, 2, "{stats:?}");
    assert!(answered(&mut l, at, late), "room again after the sweep");

    // The open connection was not swept: its packets still go to it.
    let later = at + PENDING_TIMEOUT;
    let _ = l.handle_input(later, Input::Timer);
    let action = l.handle_input(
        later,
        Input::Packet(Ok((handshake(ShakeType::Conclusion, 0), publisher))),
    );
    assert!(matches!(action, Action::DelegatePacket(..)), "{action:?}");
}
