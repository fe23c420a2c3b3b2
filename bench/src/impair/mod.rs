//! Link impairment: what one cellular link does to the datagrams crossing it.
//!
//! The kernel here has no `netem` (`environment.md`), so delay, jitter, loss, rate caps and link
//! death are applied in userspace. [`Impairment`] is the sans-IO core for one direction of one
//! link: datagrams go in with the instant they arrived ([`Impairment::handle_datagram`]), come out
//! when they are due ([`Impairment::poll_transmit`]), and [`Impairment::poll_timeout`] says when to
//! look next. It reads no clock and draws randomness from a seeded generator, so a test replays
//! exactly. [`relay`] is the tokio shell (a UDP relay), used by the `impair` binary and by tests.

mod link;
mod options;
pub mod relay;
mod schedule;

pub use link::{
    DropReason, Impairment, Jitter, LinkParams, Loss, Probability, Rate, RateCap, Stats,
};
pub use options::{OptionError, Options};
pub use relay::{Relay, RelayConfig, RelayStats};
pub use schedule::{LinkState, Schedule, ScheduleError};
