//! Paces reconnections to a session store that is down. Without it every Check made its own
//! connection attempt (thousands a second under load, each one logged); with it, after a failed
//! attempt the next waits a short delay, doubling from `FIRST_DELAY` up to `MAX_DELAY`, jittered
//! (so replicas do not reconnect in step), and commands in between fail at once with the last
//! error. The cap is small on purpose: once the store is back, the next attempt comes within
//! `MAX_DELAY`, so recovery is not delayed noticeably (the target is a first success within
//! 0.2 s of the store's return).
//!
//! Knows nothing about Redis: it sees attempts, failures and successes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

const FIRST_DELAY: Duration = Duration::from_millis(10);
const MAX_DELAY: Duration = Duration::from_millis(100);

/// What a command is answered while the delay after a failed attempt runs: the last attempt's
/// error (a fixed reason, no secrets).
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("{last_error} (reconnecting)")]
pub struct Reconnecting {
    last_error: String,
}

#[derive(Debug, Default)]
pub struct ReconnectPacer {
    /// std `Mutex`, not tokio's: never held across `.await`.
    state: Mutex<PacerState>,
}

#[derive(Debug, Default)]
struct PacerState {
    /// Failed attempts since the last success.
    failures: u32,
    /// No attempt before this.
    next_attempt: Option<Instant>,
    /// The last attempt's error, answered to commands while waiting (a fixed reason, no secrets).
    last_error: Reconnecting,
}

impl ReconnectPacer {
    /// `Err(last error)` while the delay after a failed attempt runs; `Ok` when an attempt may be
    /// made.
    pub fn may_attempt(&self) -> Result<(), Reconnecting> {
        self.may_attempt_at(Instant::now())
    }

    /// Records a failed attempt and schedules the next; `true` for the first failure after a
    /// success (the store just went down).
    pub fn failed(&self, error: &str) -> bool {
        self.failed_at(Instant::now(), error, jitter())
    }

    /// Records a successful attempt; the number of failed attempts before it, if any (the store
    /// just came back).
    pub fn succeeded(&self) -> Option<u32> {
        let mut state = self.state();
        state.next_attempt = None;
        let failures = std::mem::take(&mut state.failures);
        (failures > 0).then_some(failures)
    }

    fn may_attempt_at(&self, now: Instant) -> Result<(), Reconnecting> {
        let state = self.state();
        match state.next_attempt {
            Some(next) if now < next => Err(state.last_error.clone()),
            _ => Ok(()),
        }
    }

    /// `jitter` in [0, 1): the delay is between half and all of the backoff.
    fn failed_at(&self, now: Instant, error: &str, jitter: f64) -> bool {
        let mut state = self.state();
        state.failures = state.failures.saturating_add(1);
        let doublings = (state.failures - 1).min(16);
        let backoff = FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY);
        state.next_attempt = Some(now + backoff.mul_f64(0.5 + jitter / 2.0));
        state.last_error = Reconnecting {
            last_error: error.to_owned(),
        };
        state.failures == 1
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PacerState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A number in [0, 1) from the OS; 0.5 if it has none (jitter is not a security matter).
fn jitter() -> f64 {
    let mut byte = [0u8; 2];
    match getrandom::fill(&mut byte) {
        Ok(()) => f64::from(u16::from_le_bytes(byte)) / 65536.0,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_a_success_resets_them() {
        let pacer = ReconnectPacer::default();
        let start = Instant::now();
        assert!(pacer.may_attempt_at(start).is_ok());
        assert!(pacer.failed_at(start, "refused", 0.999), "went down");
        assert_eq!(
            pacer
                .may_attempt_at(start + Duration::from_millis(5))
                .map_err(|reconnecting| reconnecting.to_string()),
            Err("refused (reconnecting)".to_owned())
        );
        assert!(pacer.may_attempt_at(start + FIRST_DELAY).is_ok());
        let mut now = start;
        for _ in 0..10 {
            assert!(!pacer.failed_at(now, "refused", 0.999));
            now += MAX_DELAY;
        }
        assert!(pacer.may_attempt_at(now).is_ok());
        assert!(!pacer.failed_at(now, "refused", 0.0));
        assert!(
            pacer.may_attempt_at(now + MAX_DELAY / 2).is_ok(),
            "jitter: half"
        );
        assert_eq!(pacer.succeeded(), Some(12));
        assert_eq!(pacer.succeeded(), None);
        assert!(pacer.may_attempt_at(now).is_ok());
    }
}
