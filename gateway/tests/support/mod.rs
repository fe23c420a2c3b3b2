//! Helpers for integration tests that drive the real `dropline` binary with
//! real peers (ffmpeg, srt-live-transmit, raw UDP) on 127.0.0.1.
//!
//! Everything here is blocking std code: each test owns one gateway process,
//! its publishers and a few reader threads; every wait has a deadline and
//! every spawned process is killed when its handle is dropped.
// Each test crate uses a subset of these helpers; `pub` reads better than
// `pub(crate)` in a module that is private to its test crate anyway.
#![allow(dead_code, unreachable_pub)]

pub mod cues;
pub mod gateway;
pub mod http;
pub mod peers;
pub mod playlist;
pub mod rng;
pub mod srt_raw;
pub mod srtla_send;

use std::time::{Duration, Instant};

/// Polls `f` every `every` until it returns `Some`, or gives up at `timeout`.
pub fn poll<T>(timeout: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Removes ANSI colour escapes (tracing's default formatter adds them).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // CSI: parameters and intermediates, then one final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The last `n` lines of `text`, for failure messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
