//! Rate-limited logging for errors that repeat on every request during an outage (the session
//! store down, the IdP unreachable): one `RateLimitedLog` per kind of error lets one line through
//! per interval and counts the repeats it held back, so the next line can say how many there were.
//! A 3-second Redis outage under load is then three lines, not thirteen thousand.
//!
//! Knows nothing about what is logged: callers keep their fixed messages and fields.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The interval used for every error kind in this crate.
pub const ONE_PER_SECOND: Duration = Duration::from_secs(1);

/// Admits one occurrence per `interval`; cheap enough to call on every failed request.
#[derive(Debug)]
pub struct RateLimitedLog {
    interval: Duration,
    /// std `Mutex`, not tokio's: held for a few instructions, never across `.await`.
    state: Mutex<LimitState>,
}

#[derive(Debug, Default)]
struct LimitState {
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    pub const fn new(interval: Duration) -> Self {
        RateLimitedLog {
            interval,
            state: Mutex::new(LimitState {
                last_logged: None,
                suppressed: 0,
            }),
        }
    }

    pub const fn per_second() -> Self {
        Self::new(ONE_PER_SECOND)
    }

    /// `Some(suppressed)` when this occurrence should be logged, `suppressed` being the number of
    /// occurrences held back since the last one logged; `None` when it should be dropped.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = state
            .last_logged
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if due {
            state.last_logged = Some(now);
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed += 1;
            None
        }
    }
}

impl Default for RateLimitedLog {
    fn default() -> Self {
        Self::per_second()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_of_repeats_held_back() {
        let limit = RateLimitedLog::per_second();
        let start = Instant::now();
        let at = |millis: u64| start + Duration::from_millis(millis);
        assert_eq!(limit.admit_at(at(0)), Some(0));
        assert_eq!(limit.admit_at(at(10)), None);
        assert_eq!(limit.admit_at(at(999)), None);
        assert_eq!(limit.admit_at(at(1000)), Some(2));
        assert_eq!(limit.admit_at(at(1500)), None);
        assert_eq!(limit.admit_at(at(5000)), Some(1));
        assert_eq!(limit.admit_at(at(5001)), None);
    }

    #[test]
    fn ten_thousand_errors_in_three_seconds_are_three_lines() {
        let limit = RateLimitedLog::per_second();
        let start = Instant::now();
        let logged = (0..10_000u64)
            .filter(|i| {
                limit
                    .admit_at(start + Duration::from_micros(i * 300))
                    .is_some()
            })
            .count();
        assert_eq!(logged, 3);
    }
}
