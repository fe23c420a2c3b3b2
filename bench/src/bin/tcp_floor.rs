//! `tcp-floor`: what the kernel alone charges a server for answering N waiting
//! players over loopback TCP — one `write` of an answer-sized buffer to each
//! of N connections, on one core, nothing else (no HTTP, no runtime, no
//! epoll, no reading). Any server that writes each answer to its own
//! connection pays at least this per answer; `hls-load`'s goal (10k players
//! answered within 20 ms of a part) needs ≤ 2 µs (bench/README.md).
//!
//! On loopback the write also runs the receiving side's TCP input, as it does
//! for the gateway in `hls-load`; a thread on another core drains the
//! receiving sockets (unread, their queues would push the kernel's TCP memory
//! into pressure and make writes dearer than a real server's).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use bench::stats::Summary;
use bench::sys;
use clap::Parser;

/// One write per connection per round, on one core (bench/README.md).
#[derive(Parser)]
#[command(name = "tcp-floor")]
struct Args {
    /// Connections (each uses two file descriptors in this process).
    #[arg(long, default_value_t = 9000)]
    connections: usize,
    /// Bytes per write: a full playlist answer (4.6 KB) and its gzip form (≈ 0.5 KB) by default.
    #[arg(long, value_delimiter = ',', default_value = "4600,500")]
    bytes: Vec<usize>,
    /// Rounds per size (a round = one write to every connection).
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// The core the writes run on.
    #[arg(long, default_value_t = 0)]
    core: usize,
    /// The core that drains the receiving sockets.
    #[arg(long, default_value_t = 1)]
    drain_core: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let limit = sys::raise_nofile()?;
    let wanted = u64::try_from(args.connections * 2 + 64)?;
    anyhow::ensure!(
        limit >= wanted,
        "{} connections need {wanted} open files; the limit is {limit}",
        args.connections
    );
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut servers = Vec::with_capacity(args.connections);
    let mut clients = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let client = TcpStream::connect(addr).context("connect")?;
        client.set_nonblocking(true)?;
        let (server, _) = listener.accept().context("accept")?;
        server.set_nodelay(true)?;
        servers.push(server);
        clients.push(client);
    }
    let done = Arc::new(AtomicBool::new(false));
    let drain = {
        let (done, core) = (Arc::clone(&done), args.drain_core);
        std::thread::spawn(move || -> anyhow::Result<()> {
            sys::pin_thread(core)?;
            let mut buf = vec![0; 1 << 16];
            while !done.load(Ordering::Relaxed) {
                for c in &mut clients {
                    loop {
                        match c.read(&mut buf) {
                            Ok(n) if n > 0 => {}
                            Err(e) if e.kind() != ErrorKind::WouldBlock => return Err(e.into()),
                            _ => break,
                        }
                    }
                }
            }
            Ok(())
        })
    };
    sys::pin_thread(args.core)?;
    println!(
        "tcp-floor: {} loopback connections, core {}, {} rounds per size, 1-min load {:.2}",
        args.connections,
        args.core,
        args.rounds,
        sys::load_average().unwrap_or(f64::NAN)
    );
    println!("bytes/write  µs/write p50  p90     max   writes/s (p50)");
    for &size in &args.bytes {
        let answer = vec![b'x'; size];
        let mut per_write = Vec::with_capacity(args.rounds);
        for _ in 0..args.rounds {
            let t = Instant::now();
            for server in &mut servers {
                server.write_all(&answer)?;
            }
            // ns per write: `Summary` keeps integers.
            per_write.push(u64::try_from(t.elapsed().as_nanos())? / args.connections as u64);
        }
        let s = Summary::of(per_write)?;
        let us = |ns: f64| ns / 1000.0;
        println!(
            "{size:>11}  {:>12.2}  {:>5.2}  {:>6.2}  {:>9.0}",
            us(s.p50),
            us(s.p90),
            us(s.max),
            1e9 / s.p50
        );
    }
    done.store(true, Ordering::Relaxed);
    drain
        .join()
        .map_err(|_| anyhow::anyhow!("drain thread panicked"))?
}
