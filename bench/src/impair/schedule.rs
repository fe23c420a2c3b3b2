//! When a link dies and comes back: `down@10s,up@20s`.

use std::time::Duration;

/// Whether a link carries traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Up,
    Down,
}

/// State changes at offsets from the link's start, in time order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    events: Vec<(Duration, LinkState)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("schedule entry {0:?}: expected up@TIME or down@TIME (TIME like 10s, 1.5s, 800ms)")]
    Syntax(String),
    #[error("schedule entry {0:?} is earlier than the one before it")]
    OutOfOrder(String),
}

impl Schedule {
    /// Parses `STATE@TIME[,STATE@TIME…]`; times are offsets from the start and must not decrease.
    pub fn parse(s: &str) -> Result<Self, ScheduleError> {
        let mut events: Vec<(Duration, LinkState)> = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let syntax = || ScheduleError::Syntax(entry.to_owned());
            let (state, time) = entry.split_once('@').ok_or_else(syntax)?;
            let state = match state {
                "up" => LinkState::Up,
                "down" => LinkState::Down,
                _ => return Err(syntax()),
            };
            let at = parse_duration(time).ok_or_else(syntax)?;
            if events.last().is_some_and(|(last, _)| at < *last) {
                return Err(ScheduleError::OutOfOrder(entry.to_owned()));
            }
            events.push((at, state));
        }
        Ok(Self { events })
    }

    /// The state changes, in time order.
    #[must_use]
    pub fn events(&self) -> &[(Duration, LinkState)] {
        &self.events
    }
}

/// `10s`, `1.5s`, `800ms`.
fn parse_duration(s: &str) -> Option<Duration> {
    let (number, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 1e-3)
    } else {
        (s.strip_suffix('s')?, 1.0)
    };
    let v: f64 = number.parse().ok()?;
    Duration::try_from_secs_f64(v * scale).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_states_and_units() {
        let s = Schedule::parse("down@10s, up@20.5s,down@20600ms").unwrap();
        assert_eq!(
            s.events(),
            [
                (Duration::from_secs(10), LinkState::Down),
                (Duration::from_millis(20_500), LinkState::Up),
                (Duration::from_millis(20_600), LinkState::Down),
            ]
        );
        assert_eq!(Schedule::parse("").unwrap(), Schedule::default());
    }

    #[test]
    fn rejects_bad_entries() {
        for bad in ["dead@1s", "down@", "down@5", "down@-1s", "down10s", "up@xs"] {
            assert!(
                matches!(Schedule::parse(bad), Err(ScheduleError::Syntax(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            Schedule::parse("down@10s,up@5s"),
            Err(ScheduleError::OutOfOrder(_))
        ));
    }
}
