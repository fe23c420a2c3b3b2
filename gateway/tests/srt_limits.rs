//! SRT publisher statistics and limits with real peers: what
//! `/api/v1/streams` reports per connection, `srt.max_connections` and
//! `srt.max_bitrate_kbps`, each leaving the streams within the limits alone.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::gateway::{BASE_CONFIG, Gateway};
use support::peers::{expect_refused, make_ts, publish_av, srt_live_transmit};
use support::poll;

const SOON: Duration = Duration::from_secs(15);

/// `BASE_CONFIG` with `lines` added to its `[srt]` section.
fn srt_config(lines: &str) -> String {
    BASE_CONFIG.replace("[srt]\n", &format!("[srt]\n{lines}\n"))
}

/// The `publishers` array of `stream` in `/api/v1/streams`.
fn publishers(gw: &Gateway, stream: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(&gw.get("/api/v1/streams").text()).unwrap();
    v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == stream)
        .map(|s| s["publishers"].as_array().unwrap().clone())
        .unwrap_or_default()
}

#[test]
fn publisher_statistics_are_listed_per_connection() {
    let mut gw = Gateway::start(BASE_CONFIG);
    let _primary = publish_av(gw.srt, "publish:st", "");
    let mut backup = publish_av(gw.srt, "publish:st?role=backup", "");
    gw.wait_live("st", Duration::from_secs(20));
    // Two connections, each with its own counters once a few seconds passed.
    let list = poll(SOON, Duration::from_millis(200), || {
        let l = publishers(&gw, "st");
        (l.len() == 2 && l.iter().all(|p| p["connected_ms"].as_u64() > Some(3000))).then_some(l)
    })
    .unwrap_or_else(|| gw.fail("two publishers with statistics not listed"));
    eprintln!("{}", serde_json::to_string_pretty(&list).unwrap());
    let mut roles: Vec<&str> = list.iter().map(|p| p["role"].as_str().unwrap()).collect();
    roles.sort_unstable();
    assert_eq!(roles, ["backup", "primary"]);
    for p in &list {
        assert!(p["bytes"].as_u64().unwrap() > 10_000, "{p}");
        assert!(p["packets"].as_u64().unwrap() > 10, "{p}");
        // The test pattern is a few hundred kbit/s.
        let kbps = p["bitrate_kbps"].as_u64().unwrap();
        assert!((20..20_000).contains(&kbps), "{p}");
        // ffmpeg asks for 120 ms (`latency=120000` µs).
        assert_eq!(p["latency_ms"], 120, "{p}");
        // Loopback: at most a few packets a sender dropped while starting.
        assert!(p["loss_percent"].as_f64().unwrap() < 2.0, "{p}");
        assert!(p["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{p}");
        assert!(p["buffer_ms"].as_u64().unwrap() <= 1000, "{p}");
        for key in ["retransmitted_packets", "lost_packets", "queued"] {
            assert!(p[key].is_number(), "{key} in {p}");
        }
    }
    // A publisher that leaves is no longer listed.
    backup.stop();
    poll(SOON, Duration::from_millis(200), || {
        (publishers(&gw, "st").len() == 1).then_some(())
    })
    .unwrap_or_else(|| gw.fail("the backup is still listed after it left"));
    gw.assert_healthy();
}

#[test]
fn the_connection_limit_refuses_one_more_publisher() {
    let mut gw = Gateway::start(&srt_config("max_connections = 2"));
    let mut a = publish_av(gw.srt, "publish:a", "");
    let mut b = publish_av(gw.srt, "publish:a?role=backup", "");
    gw.wait_live("a", Duration::from_secs(20));
    gw.wait_for_count("publisher connected stream=a", 2, SOON);
    let mut c = publish_av(gw.srt, "publish:c", "");
    expect_refused(&mut c, SOON);
    gw.wait_for_log("rejected: 2 publishers already connected", SOON);
    gw.assert_advancing("a", 3, SOON);
    a.assert_running();
    b.assert_running();
    // A slot frees when a publisher leaves.
    b.stop();
    gw.wait_for_log("publisher disconnected stream=a", SOON);
    let mut c = publish_av(gw.srt, "publish:c", "");
    gw.wait_live("c", Duration::from_secs(20));
    c.assert_running();
    gw.assert_healthy();
}

#[test]
fn a_publisher_over_the_bitrate_limit_is_disconnected() {
    let mut gw = Gateway::start(&srt_config("max_bitrate_kbps = 3000"));
    let mut good = publish_av(gw.srt, "publish:good", "");
    gw.wait_live("good", Duration::from_secs(20));
    // About 8 Mbit/s of real MPEG-TS (a 10 s file sent over and over).
    let dir = tempfile::tempdir().unwrap();
    let ts = dir.path().join("pattern.ts");
    make_ts(&ts, 10);
    let once = std::fs::read(&ts).unwrap();
    let data: Vec<u8> = std::iter::repeat_n(once, 12).flatten().collect();
    let mut flood = srt_live_transmit(gw.srt, "publish:flood", "", data, 1_000_000);
    let line = gw.wait_for_log_line(
        &[
            "streamid=\"publish:flood\"",
            "disconnecting the publisher: it sent",
        ],
        Duration::from_secs(20),
    );
    eprintln!("{line}");
    assert!(line.contains("srt.max_bitrate_kbps = 3000"), "{line}");
    gw.wait_for_log("publisher disconnected stream=flood", SOON);
    // The stream within the limit is untouched.
    gw.assert_advancing("good", 3, SOON);
    good.assert_running();
    assert_eq!(gw.log.count("publisher disconnected stream=good"), 0);
    let kbps = publishers(&gw, "good")[0]["bitrate_kbps"].as_u64().unwrap();
    assert!(kbps < 3000, "the good publisher sends {kbps} kbit/s");
    flood.stop();
    gw.assert_healthy();
}

/// A UDP relay on 127.0.0.1 that delays every datagram by `delay` in each
/// direction (the kernel has no netem); serves one caller. Its threads end
/// with the test process.
fn delay_relay(target: SocketAddr, delay: Duration) -> SocketAddr {
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").unwrap();
    back.connect(target).unwrap();
    let addr = front.local_addr().unwrap();
    let caller = std::sync::Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
    // One direction: receive, then send each datagram `delay` after arrival.
    let pipe = |recv: UdpSocket, send: UdpSocket, to_caller: bool| {
        let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
        let caller_r = std::sync::Arc::clone(&caller);
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            loop {
                let Ok((n, from)) = recv.recv_from(&mut buf) else {
                    return;
                };
                if !to_caller {
                    *caller_r.lock().unwrap() = Some(from);
                }
                if tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
                {
                    return;
                }
            }
        });
        let caller_s = std::sync::Arc::clone(&caller);
        thread::spawn(move || {
            for (at, data) in rx {
                thread::sleep(at.saturating_duration_since(Instant::now()));
                if to_caller {
                    if let Some(c) = *caller_s.lock().unwrap() {
                        let _ = send.send_to(&data, c);
                    }
                } else {
                    let _ = send.send(&data);
                }
            }
        });
    };
    pipe(front.try_clone().unwrap(), back.try_clone().unwrap(), false);
    pipe(back, front, true);
    addr
}

#[test]
fn rtt_is_measured_over_a_slow_path() {
    let mut gw = Gateway::start(BASE_CONFIG);
    // 40 ms each way.
    let relay = delay_relay(gw.srt, Duration::from_millis(40));
    let mut p = publish_av(relay, "publish:far", "");
    gw.wait_live("far", Duration::from_secs(20));
    let rtt = poll(SOON, Duration::from_millis(300), || {
        let l = publishers(&gw, "far");
        let rtt = l.first()?["rtt_ms"].as_f64()?;
        (70.0..150.0).contains(&rtt).then_some(rtt)
    })
    .unwrap_or_else(|| {
        gw.fail(&format!(
            "no RTT near 80 ms reported: {:?}",
            publishers(&gw, "far")
        ))
    });
    eprintln!("RTT over a 2 × 40 ms relay: {rtt:.1} ms");
    let list = publishers(&gw, "far");
    eprintln!("{}", serde_json::to_string_pretty(&list).unwrap());
    assert_eq!(list[0]["latency_ms"], 120, "{list:?}");
    p.assert_running();
    gw.assert_healthy();
}
