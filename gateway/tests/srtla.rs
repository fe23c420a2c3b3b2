//! SRTLA ingest with real peers: ffmpeg → `srtla-send` (bench/) over several
//! links → the real `dropline` binary → LL-HLS, all on 127.0.0.1; and the
//! hostile-peer suite for the SRTLA port (random datagrams, truncated and
//! oversized SRTLA/SRT packets, registration floods beyond the limits,
//! spoofed links), which must leave a bonded good stream undisturbed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::gateway::{BASE_CONFIG, Gateway};
use support::peers::{Peer, encoder_to_udp, free_udp_port, publish_av, udp_relay};
use support::playlist::MediaPlaylist;
use support::rng::Rng;
use support::srtla_send::SrtlaSend;

/// Upper bound for anything that should happen "soon" (CI machines are slow).
const SOON: Duration = Duration::from_secs(15);

// The SRTLA type values (shared/notes/srtla.md §3), written out here so the
// tests do not trust the codec they test.
const KEEPALIVE: [u8; 2] = [0x90, 0x00];
const ACK: [u8; 2] = [0x91, 0x00];
const REG1: [u8; 2] = [0x92, 0x00];
const REG2: [u8; 2] = [0x92, 0x01];
const REG3: [u8; 2] = [0x92, 0x02];
const REG_ERR: [u8; 2] = [0x92, 0x10];
const REG_NGP: [u8; 2] = [0x92, 0x11];

/// A gateway with SRTLA on and one bonded publisher (`bond`) live through
/// `srtla-send` over `links` links.
struct Bonded {
    gw: Gateway,
    send: SrtlaSend,
    ffmpeg: Peer,
}

impl Bonded {
    fn start(srtla_section: &str, links: usize) -> Self {
        let gw = Gateway::start(&format!(
            "{BASE_CONFIG}\n[srtla]\nlisten = \"127.0.0.1:0\"\n{srtla_section}"
        ));
        let receiver = gw
            .srtla
            .unwrap_or_else(|| gw.fail("no srtla= in the ready line"));
        let send = SrtlaSend::start(receiver, links);
        send.wait_line("registered", SOON);
        for i in 0..links {
            send.wait_line(&format!("link up {i}"), SOON);
        }
        let ffmpeg = publish_av(send.srt, "publish:bond", "");
        let live = support::poll(Duration::from_secs(20), Duration::from_millis(100), || {
            gw.playlist("bond").filter(MediaPlaylist::has_parts)
        });
        if live.is_none() {
            gw.fail(&format!(
                "bond not live within 20 s\n--- ffmpeg ---\n{}\n--- srtla-send ---\n{}{}",
                ffmpeg.log.text(),
                send.out.text(),
                send.err.text()
            ));
        }
        Self { gw, send, ffmpeg }
    }

    fn receiver(&self) -> SocketAddr {
        self.gw.srtla.unwrap()
    }

    fn srtla_stats(&self) -> serde_json::Value {
        let r = self.gw.get("/api/v1/srtla");
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_str(&r.text()).unwrap()
    }

    /// `/api/v1/srtla` once `check` accepts it (it is refreshed every second).
    #[track_caller]
    fn wait_stats(
        &self,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + SOON;
        loop {
            let stats = self.srtla_stats();
            if check(&stats) {
                return stats;
            }
            if Instant::now() > deadline {
                self.gw.fail(&format!(
                    "/api/v1/srtla: {what} not seen within {SOON:?}: {stats}"
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `bond` advances, its one SRT connection (through the group's socket)
    /// never dropped, the sender never lost its group or a link, and the
    /// gateway is healthy.
    #[track_caller]
    fn assert_undisturbed(&mut self) {
        self.gw.assert_advancing("bond", 3, SOON);
        self.ffmpeg.assert_running();
        self.send.assert_running();
        let connects = self.gw.log.count("publisher connected stream=bond");
        let disconnects = self.gw.log.count("publisher disconnected stream=bond");
        if connects != 1 || disconnects != 0 {
            self.gw.fail(&format!(
                "bond connected {connects} times and disconnected {disconnects} times"
            ));
        }
        for bad in ["group lost", "link down"] {
            assert!(
                !self.send.out.contains(bad),
                "srtla-send said {bad:?}:\n{}",
                self.send.out.text()
            );
        }
        self.gw.assert_healthy();
    }
}

/// Link addresses in `/api/v1/srtla` with their SRT data packet counts.
fn link_data_packets(stats: &serde_json::Value) -> Vec<(String, u64)> {
    stats["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["links"].as_array().cloned().unwrap_or_default())
        .map(|l| {
            (
                l["addr"].as_str().unwrap_or_default().to_owned(),
                l["data_packets"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// The `local=` address `srtla-send` printed for link `id`.
fn link_local(send: &SrtlaSend, id: usize) -> String {
    let prefix = format!("link added {id} local=");
    send.out
        .text()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no {prefix:?} in\n{}", send.out.text()))
}

/// Fetches the init segment and every complete segment of `pl` and decodes
/// them with ffmpeg (which shares no code with us); returns the video frame
/// count ffprobe reads.
fn decode_segments(gw: &Gateway, pl: &MediaPlaylist) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let mut media = Vec::new();
    let init = pl
        .text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no EXT-X-MAP in\n{}", pl.text));
    let uris: Vec<&str> = std::iter::once(init)
        .chain(
            pl.text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty()),
        )
        .collect();
    assert!(uris.len() >= 3, "too few segments:\n{}", pl.text);
    for uri in &uris {
        let r = gw.get(&format!("/bond/main/{uri}"));
        assert_eq!(r.status, 200, "GET {uri}");
        media.extend_from_slice(&r.body);
    }
    let path = dir.path().join("bond.mp4");
    std::fs::write(&path, &media).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("running ffmpeg");
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && errors.trim().is_empty(),
        "segments do not decode cleanly: {errors}"
    );
    support::peers::video_packets(&path)
}

#[test]
fn bonded_stream_over_three_links_survives_a_link_swap() {
    let mut b = Bonded::start("", 3);
    b.gw.assert_advancing("bond", 5, SOON);

    // Every link carries data, and the receiver shows each one.
    let stats = b.srtla_stats();
    let links = link_data_packets(&stats);
    assert_eq!(links.len(), 3, "{stats}");
    assert!(links.iter().all(|(_, n)| *n > 0), "{stats}");
    // The sender's keepalive RTT, as it reports it (extended keepalive).
    assert!(stats["groups"][0]["links"][0]["rtt_ms"].is_u64(), "{stats}");

    // A modem dies and another one comes up, mid-stream.
    let before = b.gw.playlist("bond").unwrap().progress();
    b.send.command("remove 0");
    b.send.wait_line("link removed 0", SOON);
    b.send.command("add");
    b.send.wait_line("link up 3", SOON);
    let new_link = link_local(&b.send, 3);

    // Keep going for several segments (1 s each) past the swap.
    let pl = b.gw.wait_playlist(
        "bond",
        Duration::from_secs(30),
        "3 segments after the swap",
        |p| p.segments.last().is_some_and(|s| s.msn >= before.0 + 3),
    );
    b.assert_undisturbed();
    assert!(
        pl.segments.iter().all(|s| !s.discontinuity) && pl.discontinuity_sequence == 0,
        "a discontinuity after the link swap:\n{}",
        pl.text
    );
    let links = link_data_packets(&b.srtla_stats());
    assert!(
        links.iter().any(|(a, n)| *a == new_link && *n > 0),
        "the new link {new_link} carries no data: {links:?}"
    );
    let frames = decode_segments(&b.gw, &pl);
    assert!(frames >= 60, "only {frames} frames in the segments");
}

/// A second bonded uplink as the backup: one encoder's MPEG-TS (tee muxer)
/// goes through two relays into two `srtla-send`s, each its own SRTLA group,
/// as `publish:bond` and `publish:bond?role=backup`. The primary's bonding
/// sender dies (all its modems at once): the backup group's stream takes over
/// seamlessly, the API says so, and the timeline goes on without a
/// discontinuity.
#[test]
fn a_second_srtla_group_is_a_backup_uplink() {
    let mut gw = Gateway::start(&format!(
        "{BASE_CONFIG}\n[srtla]\nlisten = \"127.0.0.1:0\"\n"
    ));
    let receiver = gw.srtla.unwrap();
    let ports = [free_udp_port(), free_udp_port()];
    let mut encoder = encoder_to_udp(&ports);
    let mut senders = [SrtlaSend::start(receiver, 2), SrtlaSend::start(receiver, 2)];
    for s in &senders {
        s.wait_line("registered", SOON);
    }
    let _primary = udp_relay(senders[0].srt, "publish:bond", ports[0]);
    let mut backup = udp_relay(senders[1].srt, "publish:bond?role=backup", ports[1]);
    gw.wait_for_log_line(&["publisher connected", "role=backup"], SOON);
    gw.wait_live("bond", Duration::from_secs(20));
    gw.wait_for_log_line(&["uplink switched", "to=primary"], SOON);
    gw.assert_advancing("bond", 2, SOON);
    let groups = gw.get("/api/v1/srtla").text();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&groups).unwrap()["groups"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{groups}"
    );

    let failover = ["uplink switched", "from=primary", "to=backup", "Seamless"];
    let failovers = gw.log.lines_with(&failover).len();
    senders[0].kill();
    let switched = support::poll(SOON, Duration::from_millis(50), || {
        (gw.log.lines_with(&failover).len() > failovers).then_some(())
    });
    if switched.is_none() {
        gw.fail("no seamless switch to the backup group after the primary's sender died");
    }
    let pl = gw.wait_playlist("bond", SOON, "2 segments on the backup", {
        let from = gw.playlist("bond").unwrap().progress().0;
        move |p| p.segments.last().is_some_and(|s| s.msn >= from + 2)
    });
    assert_eq!(pl.discontinuity_sequence, 0, "{}", pl.text);
    assert!(pl.segments.iter().all(|s| !s.discontinuity), "{}", pl.text);
    let streams: serde_json::Value =
        serde_json::from_str(&gw.get("/api/v1/streams").text()).unwrap();
    assert_eq!(
        streams["streams"][0]["active_uplink"], "backup",
        "{streams}"
    );
    encoder.assert_running();
    backup.assert_running();
    senders[1].assert_running();
    gw.assert_healthy();
}

fn udp() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s
}

/// Sends `d` and returns the first answer within 300 ms.
fn exchange(s: &UdpSocket, to: SocketAddr, d: &[u8]) -> Option<Vec<u8>> {
    s.send_to(d, to).unwrap();
    let mut buf = [0u8; 2048];
    s.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
}

fn reg(kind: [u8; 2], id: &[u8]) -> Vec<u8> {
    let mut p = kind.to_vec();
    p.extend_from_slice(id);
    p
}

/// Registers a group of `links` sockets over raw UDP; returns them and the id.
fn register(to: SocketAddr, rng: &mut Rng, links: usize) -> (Vec<UdpSocket>, Vec<u8>) {
    let first = udp();
    let answer = exchange(&first, to, &reg(REG1, &rng.bytes(256))).expect("no answer to REG1");
    assert_eq!((answer.len(), &answer[..2]), (258, &REG2[..]));
    let id = answer[2..].to_vec();
    let mut socks = vec![first];
    socks.extend((1..links).map(|_| udp()));
    for s in &socks {
        let a = exchange(s, to, &reg(REG2, &id)).expect("no answer to REG2");
        assert_eq!(&a[..2], &REG3[..]);
    }
    (socks, id)
}

/// An SRT control packet of `len` bytes (≥ 16), type `kind`.
fn srt_control(kind: u16, len: usize, rng: &mut Rng) -> Vec<u8> {
    let mut p = rng.bytes(len);
    p[..2].copy_from_slice(&(0x8000 | kind).to_be_bytes());
    p
}

#[test]
fn hostile_peers_do_not_disturb_a_bonded_stream() {
    let mut b = Bonded::start("max_groups = 4\nmax_links_per_group = 4\n", 2);
    let to = b.receiver();
    let mut rng = Rng::from_env_or(0x5A1A);

    // 1. Random datagrams from many sources, types biased towards SRTLA/SRT.
    let socks: Vec<UdpSocket> = (0..8).map(|_| udp()).collect();
    for i in 0..3000 {
        let len = match i % 4 {
            0 => rng.below(20) as usize,
            1 => 258,
            _ => rng.below(1700) as usize,
        };
        let mut d = rng.bytes(len);
        if let Some(first) = d.first_mut() {
            *first = [0x90, 0x91, 0x92, 0x80, 0x00, *first][rng.below(6) as usize];
        }
        socks[i % socks.len()].send_to(&d, to).unwrap();
    }
    b.assert_undisturbed();

    // 2. Truncated and oversized SRTLA packets; none may get an answer,
    // except REG1/REG2 of exactly 258 bytes.
    let s = udp();
    for kind in [KEEPALIVE, ACK, REG1, REG2, REG3, REG_ERR, REG_NGP] {
        for len in [0usize, 1, 2, 3, 15, 16, 44, 257, 259, 1500, 1501, 4000] {
            let mut d = rng.bytes(len);
            d.iter_mut().zip(kind).for_each(|(b, k)| *b = k);
            if let Some(a) = exchange(&s, to, &d) {
                panic!("{len}-byte {kind:02x?} from an unknown address got {a:02x?}");
            }
        }
    }
    b.assert_undisturbed();

    // 3. A registered hostile group sends truncated, oversized and bogus
    // SRT control packets and garbage data: they reach the gateway's SRT
    // listener through the group's own socket, and must not hurt `bond`.
    let (hostile, _) = register(to, &mut rng, 2);
    for round in 0..200 {
        let s = &hostile[round % 2];
        let n = rng.below(3000) as usize;
        let d = match round % 8 {
            0 => srt_control(0, 16 + n % 48, &mut rng), // truncated handshake
            1 => {
                let mut hs = srt_control(0, 64, &mut rng);
                hs[36..40].copy_from_slice(&1u32.to_be_bytes()); // induction, garbage rest
                hs
            }
            2 => srt_control(2, 16 + n % 8, &mut rng), // short ACK
            3 => srt_control(3, 17 + n % 40, &mut rng), // odd NAK
            4 => srt_control(
                rng.below(0x7FFF) as u16,
                16 + rng.below(100) as usize,
                &mut rng,
            ),
            5 => rng.bytes(1501 + n), // oversized
            6 => {
                let mut d = rng.bytes(16 + n % 1400);
                d[0] &= 0x7F; // SRT data, random SN
                d
            }
            _ => rng.bytes(2 + n % 14), // too short for SRT
        };
        s.send_to(&d, to).unwrap();
    }
    b.assert_undisturbed();

    // 4. Registration floods beyond the limits. Links: 4 per group, the
    // 5th and later are refused.
    let extra: Vec<UdpSocket> = (0..4).map(|_| udp()).collect();
    let (_, hostile_id) = register(to, &mut rng, 4);
    for s in &extra {
        let a = exchange(s, to, &reg(REG2, &hostile_id)).expect("no answer");
        assert_eq!(&a[..2], &REG_ERR[..], "a 5th link was accepted");
    }
    // Groups: 4 at once. REG1s keep coming from fresh sockets; link-less
    // groups are evicted for them, groups with links (bond's) never are.
    let flood: Vec<UdpSocket> = (0..60).map(|_| udp()).collect();
    let mut refused = 0;
    for s in &flood {
        match exchange(s, to, &reg(REG1, &rng.bytes(256))) {
            Some(a) if a.len() == 258 && a[..2] == REG2 => {}
            Some(a) if a[..2] == REG_ERR => refused += 1,
            other => panic!("REG1 answered {other:02x?}"),
        }
    }
    let stats = b.wait_stats("the flood", |s| {
        s["counters"]["groups_created"].as_u64().unwrap() + refused >= 62
    });
    assert!(
        stats["counters"]["groups_evicted"].as_u64().unwrap() >= 56,
        "{stats}"
    );
    assert!(stats["groups"].as_array().unwrap().len() <= 4, "{stats}");
    b.assert_undisturbed();

    // 5. Spoofed links: guessed group ids, and SRT traffic and keepalives
    // from addresses that are no link (other loopback addresses too) get
    // nothing back and are not forwarded.
    let before = b.srtla_stats()["counters"]["unknown_source"]
        .as_u64()
        .unwrap();
    let mut sent = 0;
    for ip in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        let Ok(s) = UdpSocket::bind(format!("{ip}:0")) else {
            continue;
        };
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let a = exchange(&s, to, &reg(REG2, &rng.bytes(256))).expect("no answer");
        assert_eq!(&a[..2], &REG_NGP[..], "a guessed group id was accepted");
        for sn in 0..50u32 {
            let mut d = rng.bytes(16 + 1316);
            d[..4].copy_from_slice(&sn.to_be_bytes());
            s.send_to(&d, to).unwrap();
            s.send_to(&KEEPALIVE, to).unwrap();
            s.send_to(&srt_control(3, 24, &mut rng), to).unwrap();
            sent += 3;
        }
        let mut buf = [0u8; 2048];
        assert!(
            s.recv_from(&mut buf).is_err(),
            "a datagram from an unregistered {ip} got an answer"
        );
    }
    let deadline = Instant::now() + SOON;
    while b.srtla_stats()["counters"]["unknown_source"]
        .as_u64()
        .unwrap()
        < before + sent
    {
        assert!(
            Instant::now() < deadline,
            "spoofed datagrams not all counted as unknown"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    b.assert_undisturbed();
    // A REG1 from a live link's address is refused, not a new group.
    let stats = b.srtla_stats();
    assert!(
        stats["counters"]["reg_err_sent"].as_u64().unwrap() >= 4,
        "{stats}"
    );
}
