//! One direction of one impaired link, sans-IO.
//!
//! A datagram meets, in order: the link state (a dead link drops everything), loss, the rate cap
//! (a FIFO bottleneck fed by a token bucket, with a bound on how long a datagram may queue), then
//! propagation delay plus jitter.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::schedule::{LinkState, Schedule};

/// A probability in `0.0..=1.0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct Probability(f64);

impl Probability {
    pub const ZERO: Self = Self(0.0);
    pub const ONE: Self = Self(1.0);

    /// `None` unless `0 ≤ p ≤ 1`.
    #[must_use]
    pub fn new(p: f64) -> Option<Self> {
        (0.0..=1.0).contains(&p).then_some(Self(p))
    }

    #[must_use]
    pub fn get(self) -> f64 {
        self.0
    }
}

/// A link rate in bits per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rate(u64);

impl Rate {
    #[must_use]
    pub const fn from_kbps(kbps: u64) -> Self {
        Self(kbps * 1000)
    }

    #[must_use]
    pub const fn bits_per_sec(self) -> u64 {
        self.0
    }

    fn bytes_per_sec(self) -> f64 {
        self.0 as f64 / 8.0
    }
}

/// Extra one-way delay drawn per datagram, added to the base delay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Jitter {
    None,
    /// Uniform in `[0, max]`.
    Uniform {
        max: Duration,
    },
    /// Exponential with this mean, cut at 10 × mean: mostly small, with a long tail, like a
    /// cellular scheduler.
    Exponential {
        mean: Duration,
    },
}

/// Which datagrams are lost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    /// Each datagram independently.
    Bernoulli(Probability),
    /// Gilbert-Elliott: a two-state Markov chain stepped once per datagram (good → bad with
    /// `p_good_to_bad`, bad → good with `p_bad_to_good`), losing with `loss_good` / `loss_bad`
    /// in each state. Losses come in bursts.
    GilbertElliott {
        p_good_to_bad: Probability,
        p_bad_to_good: Probability,
        loss_good: Probability,
        loss_bad: Probability,
    },
}

impl Loss {
    pub const NONE: Self = Self::Bernoulli(Probability::ZERO);

    /// Bursts that lose every datagram, averaging `mean_burst` datagrams (≥ 1), with `average`
    /// of all datagrams lost in the long run (stationary share of the bad state).
    #[must_use]
    pub fn bursty(average: Probability, mean_burst: f64) -> Self {
        let r = 1.0 / mean_burst.max(1.0);
        let l = average.get().min(0.99);
        // Stationary P(bad) = p / (p + r) = l  ⇒  p = l·r / (1 − l).
        let p = (l * r / (1.0 - l)).min(1.0);
        Self::GilbertElliott {
            p_good_to_bad: Probability(p),
            p_bad_to_good: Probability(r),
            loss_good: Probability::ZERO,
            loss_bad: Probability::ONE,
        }
    }
}

/// A token-bucket rate cap in front of a FIFO queue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateCap {
    pub rate: Rate,
    /// Bytes that may leave back to back after an idle period.
    pub burst_bytes: u32,
    /// A datagram that would wait longer than this at the bottleneck is dropped (tail drop).
    pub max_queue: Duration,
}

/// What one direction of a link does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkParams {
    pub delay: Duration,
    pub jitter: Jitter,
    /// `false`: jitter never reorders (a datagram leaves no earlier than the one before it),
    /// as on one cellular bearer. `true`: each datagram is delayed independently.
    pub reorder: bool,
    pub loss: Loss,
    pub rate: Option<RateCap>,
}

impl Default for LinkParams {
    /// A clean link: no delay, no loss, no cap.
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Jitter::None,
            reorder: false,
            loss: Loss::NONE,
            rate: None,
        }
    }
}

/// Why a datagram did not get through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    Down,
    Loss,
    QueueFull,
}

/// Counters since the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub received: u64,
    pub delivered: u64,
    pub delivered_bytes: u64,
    pub lost: u64,
    pub dropped_down: u64,
    pub dropped_queue: u64,
    /// In flight when the link died.
    pub flushed: u64,
}

struct InFlight<T> {
    due: Instant,
    seq: u64,
    len: usize,
    item: T,
}

impl<T> PartialEq for InFlight<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<T> Eq for InFlight<T> {}
impl<T> PartialOrd for InFlight<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for InFlight<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// One direction of one link. `T` is whatever the caller needs back with each datagram.
pub struct Impairment<T> {
    params: LinkParams,
    start: Instant,
    schedule: Schedule,
    /// Index of the next schedule event not yet applied.
    next_event: usize,
    state: LinkState,
    rng: StdRng,
    /// Gilbert-Elliott chain state.
    bad: bool,
    /// Token bucket: tokens (bytes) at `bucket_at`, the last scheduled departure.
    tokens: f64,
    bucket_at: Instant,
    /// Latest due time handed out (FIFO delivery when `reorder` is off).
    last_due: Instant,
    seq: u64,
    in_flight: BinaryHeap<Reverse<InFlight<T>>>,
    stats: Stats,
}

impl<T> Impairment<T> {
    /// A link that is up at `start`, follows `schedule` (offsets from `start`) and draws its
    /// randomness from `seed`.
    #[must_use]
    pub fn new(params: LinkParams, schedule: Schedule, seed: u64, start: Instant) -> Self {
        Self {
            tokens: params.rate.map_or(0.0, |r| f64::from(r.burst_bytes)),
            params,
            start,
            schedule,
            next_event: 0,
            state: LinkState::Up,
            rng: StdRng::seed_from_u64(seed),
            bad: false,
            bucket_at: start,
            last_due: start,
            seq: 0,
            in_flight: BinaryHeap::new(),
            stats: Stats::default(),
        }
    }

    /// A datagram of `len` bytes arrives at `now`; `Err` says why it will never come out.
    pub fn handle_datagram(&mut self, now: Instant, len: usize, item: T) -> Result<(), DropReason> {
        self.advance(now);
        self.stats.received += 1;
        if self.state == LinkState::Down {
            self.stats.dropped_down += 1;
            return Err(DropReason::Down);
        }
        if self.lose() {
            self.stats.lost += 1;
            return Err(DropReason::Loss);
        }
        let Some(departs) = self.bottleneck(now, len) else {
            self.stats.dropped_queue += 1;
            return Err(DropReason::QueueFull);
        };
        let mut due = departs + self.params.delay + self.jitter();
        if !self.params.reorder {
            due = due.max(self.last_due);
        }
        self.last_due = self.last_due.max(due);
        self.seq += 1;
        self.in_flight.push(Reverse(InFlight {
            due,
            seq: self.seq,
            len,
            item,
        }));
        Ok(())
    }

    /// The next datagram due at or before `now`, if any. Call until `None`.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<T> {
        self.advance(now);
        if self.in_flight.peek()?.0.due > now {
            return None;
        }
        let Reverse(d) = self.in_flight.pop()?;
        self.stats.delivered += 1;
        self.stats.delivered_bytes += d.len as u64;
        Some(d.item)
    }

    /// When a datagram is next due or the schedule next changes the link.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let due = self.in_flight.peek().map(|d| d.0.due);
        let event = self
            .schedule
            .events()
            .get(self.next_event)
            .map(|(at, _)| self.start + *at);
        due.into_iter().chain(event).min()
    }

    /// Takes the link down or up at `now` (as the schedule would).
    pub fn set_state(&mut self, now: Instant, state: LinkState) {
        self.advance(now);
        self.apply(now, state);
    }

    /// New parameters for datagrams arriving from `now` on; those in flight keep their times.
    pub fn set_params(&mut self, now: Instant, params: LinkParams) {
        self.advance(now);
        if params.rate != self.params.rate {
            self.tokens = params.rate.map_or(0.0, |r| f64::from(r.burst_bytes));
            self.bucket_at = now;
        }
        self.params = params;
    }

    #[must_use]
    pub fn params(&self) -> &LinkParams {
        &self.params
    }

    #[must_use]
    pub fn state(&self) -> LinkState {
        self.state
    }

    #[must_use]
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Applies the schedule events due by `now`, each at its own instant.
    fn advance(&mut self, now: Instant) {
        while let Some((at, state)) = self.schedule.events().get(self.next_event).copied() {
            let at = self.start + at;
            if at > now {
                break;
            }
            self.next_event += 1;
            self.apply(at, state);
        }
    }

    fn apply(&mut self, at: Instant, state: LinkState) {
        if state == LinkState::Down && self.state == LinkState::Up {
            // A dead link loses what it was carrying, queue included.
            let before = self.in_flight.len();
            self.in_flight.retain(|d| d.0.due <= at);
            self.stats.flushed += (before - self.in_flight.len()) as u64;
            self.last_due = self.last_due.min(at);
            self.bucket_at = self.bucket_at.min(at);
        }
        self.state = state;
    }

    fn chance(&mut self, p: Probability) -> bool {
        p.get() > 0.0 && self.rng.gen_bool(p.get())
    }

    fn lose(&mut self) -> bool {
        match self.params.loss {
            Loss::Bernoulli(p) => self.chance(p),
            Loss::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_good,
                loss_bad,
            } => {
                let flip = if self.bad {
                    p_bad_to_good
                } else {
                    p_good_to_bad
                };
                if self.chance(flip) {
                    self.bad = !self.bad;
                }
                self.chance(if self.bad { loss_bad } else { loss_good })
            }
        }
    }

    /// When a datagram of `len` bytes arriving at `now` leaves the rate cap, or `None` if it
    /// would queue longer than allowed (the bucket is then left as it was).
    fn bottleneck(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let Some(cap) = self.params.rate else {
            return Some(now);
        };
        let rate = cap.rate.bytes_per_sec();
        // FIFO: it starts after the previous datagram has left.
        let start = now.max(self.bucket_at);
        let refill = start.duration_since(self.bucket_at).as_secs_f64() * rate;
        let tokens = (self.tokens + refill).min(f64::from(cap.burst_bytes));
        let need = len as f64;
        let departs = if tokens >= need {
            start
        } else {
            start + Duration::from_secs_f64((need - tokens) / rate)
        };
        if departs.duration_since(now) > cap.max_queue {
            return None;
        }
        self.tokens = (tokens - need).max(0.0);
        self.bucket_at = departs;
        Some(departs)
    }

    fn jitter(&mut self) -> Duration {
        match self.params.jitter {
            Jitter::None => Duration::ZERO,
            Jitter::Uniform { max } => max.mul_f64(self.rng.r#gen::<f64>()),
            Jitter::Exponential { mean } => {
                // Inverse CDF; 1 − u is in (0, 1], so the logarithm is finite.
                let u: f64 = self.rng.r#gen();
                mean.mul_f64((-(1.0 - u).ln()).min(10.0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn p(x: f64) -> Probability {
        Probability::new(x).unwrap()
    }

    /// Sends datagram `i` (of `len` bytes) at `t0 + i × gap` and returns, per datagram, when it
    /// came out (`None` if it never did), stepping a virtual clock through every deadline.
    fn run(
        link: &mut Impairment<usize>,
        t0: Instant,
        n: usize,
        gap: Duration,
        len: usize,
    ) -> Vec<Option<Duration>> {
        let mut out = vec![None; n];
        let mut next = 0;
        let mut now = t0;
        loop {
            while let Some(i) = link.poll_transmit(now) {
                out[i] = Some(now - t0);
            }
            let send_at = (next < n).then(|| t0 + gap * next as u32);
            match send_at.into_iter().chain(link.poll_timeout()).min() {
                None => return out,
                Some(t) => now = t,
            }
            if send_at == Some(now) {
                let _ = link.handle_datagram(now, len, next);
                next += 1;
            }
        }
    }

    #[test]
    fn clean_link_passes_everything_at_once() {
        let t0 = Instant::now();
        let mut link = Impairment::new(LinkParams::default(), Schedule::default(), 1, t0);
        let out = run(&mut link, t0, 100, MS, 1316);
        for (i, o) in out.iter().enumerate() {
            assert_eq!(*o, Some(MS * i as u32));
        }
        assert_eq!(link.stats().delivered, 100);
        assert_eq!(link.stats().delivered_bytes, 131_600);
    }

    #[test]
    fn delay_plus_uniform_jitter_in_order_unless_reordering_is_allowed() {
        let t0 = Instant::now();
        let params = LinkParams {
            delay: 40 * MS,
            jitter: Jitter::Uniform { max: 110 * MS },
            ..LinkParams::default()
        };
        let mut fifo = Impairment::new(params, Schedule::default(), 7, t0);
        let out: Vec<Duration> = run(&mut fifo, t0, 2000, MS, 100)
            .into_iter()
            .map(Option::unwrap)
            .collect();
        assert!(out.windows(2).all(|w| w[0] <= w[1]), "FIFO order kept");
        for (i, t) in out.iter().enumerate() {
            let sent = MS * i as u32;
            // In order, a datagram may wait behind an earlier one's jitter, never beyond it.
            assert!(*t >= sent + 40 * MS && *t <= sent + 150 * MS, "{i}: {t:?}");
        }

        let mut free = Impairment::new(
            LinkParams {
                reorder: true,
                ..params
            },
            Schedule::default(),
            7,
            t0,
        );
        let out: Vec<Duration> = run(&mut free, t0, 2000, MS, 100)
            .into_iter()
            .map(Option::unwrap)
            .collect();
        let delays: Vec<f64> = out
            .iter()
            .enumerate()
            .map(|(i, t)| (*t - MS * i as u32).as_secs_f64() * 1000.0)
            .collect();
        assert!(delays.iter().all(|d| (40.0..=150.0).contains(d)));
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        assert!((mean - 95.0).abs() < 3.0, "uniform mean {mean}");
        assert!(out.windows(2).any(|w| w[0] > w[1]), "reordered");
    }

    #[test]
    fn exponential_jitter_has_its_mean_and_a_cut_tail() {
        let t0 = Instant::now();
        let params = LinkParams {
            jitter: Jitter::Exponential { mean: 20 * MS },
            reorder: true,
            ..LinkParams::default()
        };
        let mut link = Impairment::new(params, Schedule::default(), 3, t0);
        let out = run(&mut link, t0, 20_000, MS, 100);
        let delays: Vec<f64> = out
            .iter()
            .enumerate()
            .map(|(i, t)| (t.unwrap() - MS * i as u32).as_secs_f64() * 1000.0)
            .collect();
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        assert!((mean - 20.0).abs() < 1.0, "mean {mean}");
        assert!(delays.iter().all(|d| *d <= 200.0));
    }

    #[test]
    fn bernoulli_loss_is_seeded_and_near_its_rate() {
        let t0 = Instant::now();
        let params = LinkParams {
            loss: Loss::Bernoulli(p(0.03)),
            ..LinkParams::default()
        };
        let lost = |seed| {
            let mut link = Impairment::new(params, Schedule::default(), seed, t0);
            let out = run(&mut link, t0, 50_000, MS, 100);
            assert_eq!(
                link.stats().lost as usize,
                out.iter().filter(|o| o.is_none()).count()
            );
            out.iter().map(Option::is_none).collect::<Vec<_>>()
        };
        let a = lost(11);
        assert_eq!(a, lost(11), "same seed, same losses");
        assert_ne!(a, lost(12));
        let rate = a.iter().filter(|l| **l).count() as f64 / a.len() as f64;
        assert!((rate - 0.03).abs() < 0.003, "{rate}");
    }

    #[test]
    fn gilbert_elliott_loses_in_bursts_at_the_average_rate() {
        let t0 = Instant::now();
        let params = LinkParams {
            loss: Loss::bursty(p(0.05), 4.0),
            ..LinkParams::default()
        };
        let mut link = Impairment::new(params, Schedule::default(), 5, t0);
        let lost: Vec<bool> = run(&mut link, t0, 200_000, MS, 100)
            .iter()
            .map(Option::is_none)
            .collect();
        let rate = lost.iter().filter(|l| **l).count() as f64 / lost.len() as f64;
        assert!((rate - 0.05).abs() < 0.005, "average {rate}");
        let bursts = lost.windows(2).filter(|w| !w[0] && w[1]).count();
        let mean_burst = lost.iter().filter(|l| **l).count() as f64 / bursts as f64;
        assert!((mean_burst - 4.0).abs() < 0.3, "mean burst {mean_burst}");
    }

    #[test]
    fn rate_cap_spaces_datagrams_and_tail_drops_past_the_queue_limit() {
        let t0 = Instant::now();
        let cap = RateCap {
            rate: Rate::from_kbps(8000), // 1 byte per µs
            burst_bytes: 10_000,
            max_queue: 100 * MS,
        };
        let params = LinkParams {
            rate: Some(cap),
            ..LinkParams::default()
        };
        // 500 × 1000 bytes offered at once: the burst (10) leaves at t0, then one per ms
        // until the next one would wait more than 100 ms.
        let mut link = Impairment::new(params, Schedule::default(), 1, t0);
        let out = run(&mut link, t0, 500, Duration::ZERO, 1000);
        let delivered: Vec<Duration> = out.iter().flatten().copied().collect();
        assert_eq!(delivered.len(), 110, "burst + 100 ms of queue");
        assert!(delivered[..10].iter().all(|t| *t == Duration::ZERO));
        for (k, t) in delivered[10..].iter().enumerate() {
            let want = MS * (k as u32 + 1);
            assert!(t.abs_diff(want) < Duration::from_micros(2), "{k}: {t:?}");
        }
        assert_eq!(link.stats().dropped_queue, 390);

        // Offered below the cap, everything passes; at 4/3 of it, throughput is the cap.
        let mut under = Impairment::new(params, Schedule::default(), 1, t0);
        let out = run(&mut under, t0, 1000, Duration::from_micros(1500), 1000);
        assert!(out.iter().all(Option::is_some));
        let mut over = Impairment::new(params, Schedule::default(), 1, t0);
        let out = run(&mut over, t0, 4000, Duration::from_micros(750), 1000);
        let last = out.iter().flatten().max().unwrap();
        let bytes = over.stats().delivered_bytes as f64;
        let rate = bytes / last.as_secs_f64() * 8.0 / 1000.0;
        assert!((rate - 8000.0).abs() < 100.0, "{rate} kb/s");
    }

    #[test]
    fn schedule_kills_the_link_with_what_it_carries_and_revives_it() {
        let t0 = Instant::now();
        let params = LinkParams {
            delay: 100 * MS,
            ..LinkParams::default()
        };
        let schedule = Schedule::parse("down@1s,up@2s").unwrap();
        let mut link = Impairment::new(params, schedule, 1, t0);
        assert_eq!(link.poll_timeout(), Some(t0 + 1000 * MS));
        let out = run(&mut link, t0, 300, 10 * MS, 100);
        for (i, o) in out.iter().enumerate() {
            let sent = 10 * MS * i as u32;
            // Sent by 900 ms: out by the death at 1 s. 910–990 ms: in flight then. 1–2 s: dead.
            let alive = sent <= 900 * MS || sent >= 2000 * MS;
            assert_eq!(o.is_some(), alive, "datagram {i} sent at {sent:?}");
            if let Some(t) = o {
                assert_eq!(*t, sent + 100 * MS);
            }
        }
        let s = link.stats();
        assert_eq!((s.flushed, s.dropped_down, s.delivered), (9, 100, 191));
        assert_eq!(link.state(), LinkState::Up);
    }

    #[test]
    fn manual_state_and_params_apply_from_now() {
        let t0 = Instant::now();
        let mut link: Impairment<u32> =
            Impairment::new(LinkParams::default(), Schedule::default(), 1, t0);
        link.set_state(t0, LinkState::Down);
        assert_eq!(link.handle_datagram(t0, 10, 1), Err(DropReason::Down));
        link.set_state(t0 + MS, LinkState::Up);
        link.set_params(
            t0 + MS,
            LinkParams {
                loss: Loss::Bernoulli(Probability::ONE),
                ..LinkParams::default()
            },
        );
        assert_eq!(link.handle_datagram(t0 + MS, 10, 2), Err(DropReason::Loss));
        link.set_params(
            t0 + MS,
            LinkParams {
                delay: 5 * MS,
                ..LinkParams::default()
            },
        );
        assert_eq!(link.handle_datagram(t0 + MS, 10, 3), Ok(()));
        assert_eq!(link.poll_timeout(), Some(t0 + 6 * MS));
        assert_eq!(link.poll_transmit(t0 + 5 * MS), None);
        assert_eq!(link.poll_transmit(t0 + 6 * MS), Some(3));
        assert_eq!(Probability::new(1.5), None);
    }
}
