//! Per-group and per-link counters of the SRTLA receiver, and the JSON
//! snapshot `/api/v1/srtla` serves.

use std::net::SocketAddr;

use serde::Serialize;

use super::packet::LinkReport;
use super::reorder::ReorderCounters;

/// Counters of one link, updated by the receiver core.
#[derive(Clone, Debug, Default)]
pub(super) struct LinkCounters {
    /// Datagrams of any kind from the link.
    pub packets: u64,
    pub bytes: u64,
    /// SRT data packets (the ones SRTLA ACKs count).
    pub data_packets: u64,
    pub data_bytes: u64,
    /// SRT data packets flagged as retransmissions.
    pub retransmits: u64,
    /// SRT data packets dropped as copies of one already forwarded.
    pub duplicates: u64,
    pub keepalives: u64,
    pub acks_sent: u64,
    /// The last extended keepalive's report (srtla.md §3.1).
    pub report: Option<LinkReport>,
}

/// Counters of the whole receiver.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReceiverCounters {
    /// Datagrams from addresses that are no link: dropped without a reply.
    pub unknown_source: u64,
    /// Datagrams that are neither SRTLA nor SRT.
    pub invalid: u64,
    pub groups_created: u64,
    pub groups_removed: u64,
    /// Link-less groups evicted to make room for a new one.
    pub groups_evicted: u64,
    pub reg_err_sent: u64,
    pub reg_ngp_sent: u64,
    pub links_timed_out: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ReceiverStats {
    pub groups: Vec<GroupStats>,
    pub counters: ReceiverCounters,
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupStats {
    /// A local number (the group id itself is a credential and stays secret).
    pub group: u64,
    pub age_ms: u64,
    /// SRT packets forwarded to the SRT listener, and bytes.
    pub forwarded_packets: u64,
    pub forwarded_bytes: u64,
    /// Datagrams from the SRT listener sent back to the sender.
    pub downstream_packets: u64,
    /// What the reorder buffer absorbed and gave up.
    pub reorder: ReorderCounters,
    pub links: Vec<LinkStats>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LinkStats {
    pub addr: SocketAddr,
    pub age_ms: u64,
    pub idle_ms: u64,
    pub packets: u64,
    pub bytes: u64,
    pub data_packets: u64,
    pub retransmits: u64,
    pub duplicates: u64,
    pub keepalives: u64,
    pub acks_sent: u64,
    /// This link's share of the group's SRT data bytes, 0..=1.
    pub share: f64,
    /// Retransmitted ÷ data packets seen on this link: what the receiver
    /// can tell about loss by itself (a lost packet comes back as a
    /// retransmission, though maybe over another link).
    pub retransmit_ratio: f64,
    /// NAKed ÷ data packets on this link, from the sender's own count of
    /// NAKs for SNs it sent over the link (extended keepalive, srtla.md
    /// §3.1); `None` when the sender does not report.
    pub loss_estimate: Option<f64>,
    /// The sender's RTT for this link from its keepalive echo timing
    /// (srtla.md §3.1: "sender computes RTT = now − echoed value"), as the
    /// sender reports it; `None` when it does not report.
    pub rtt_ms: Option<u32>,
    /// The sender's congestion window for this link (×1000 scale, srtla.md §7.1).
    pub window: Option<i32>,
}

#[allow(clippy::cast_precision_loss)] // counters are far below 2^52
pub(super) fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64).min(1.0)
    }
}
