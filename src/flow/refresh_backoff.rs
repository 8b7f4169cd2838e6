//! Per-session backoff after a refresh failed because the IdP was unreachable while the session's
//! access token was still valid: the Check used the current token, and this remembers not to ask
//! the IdP again for that session for `RETRY_AFTER` seconds, so an outage does not cost every
//! request a trip to a dead IdP (up to `http_timeout`). Never consulted once the token has expired:
//! then every Check tries, and fails closed.
//!
//! Per replica and in memory on purpose: it only spaces out retries, so losing it (a restart, a
//! full map) costs one more IdP attempt, never a wrong decision. Keys are session ids, which never
//! leave the process.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::session::SessionId;

/// Seconds between refresh attempts for one session while the IdP is unreachable.
pub const RETRY_AFTER: i64 = 5;

/// Sessions remembered at most; beyond it, expired entries are dropped, and if none has expired
/// the session is not remembered (it retries on its next Check).
const MAX_SESSIONS: usize = 100_000;

#[derive(Debug, Default)]
pub(super) struct RefreshBackoff {
    /// Session id → the Unix second from which a refresh may be tried again. std `Mutex`, not
    /// tokio's: never held across `.await`.
    retry_at: Mutex<HashMap<[u8; 16], i64>>,
}

impl RefreshBackoff {
    /// Whether a refresh of this session failed less than `RETRY_AFTER` seconds ago.
    pub fn is_waiting(&self, id: &SessionId, now: i64) -> bool {
        self.map()
            .get(&id.0)
            .is_some_and(|retry_at| now < *retry_at)
    }

    pub fn start(&self, id: &SessionId, now: i64) {
        let mut map = self.map();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, retry_at| now < *retry_at);
        }
        if map.len() < MAX_SESSIONS {
            map.insert(id.0, now + RETRY_AFTER);
        }
    }

    pub fn clear(&self, id: &SessionId) {
        self.map().remove(&id.0);
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], i64>> {
        self.retry_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_retry_after_seconds_then_lets_the_next_attempt_through() {
        let backoff = RefreshBackoff::default();
        let (one, other) = (SessionId([1; 16]), SessionId([2; 16]));
        assert!(!backoff.is_waiting(&one, 100));
        backoff.start(&one, 100);
        assert!(backoff.is_waiting(&one, 100));
        assert!(backoff.is_waiting(&one, 100 + RETRY_AFTER - 1));
        assert!(!backoff.is_waiting(&one, 100 + RETRY_AFTER));
        assert!(!backoff.is_waiting(&other, 101), "per session");
        backoff.clear(&one);
        assert!(!backoff.is_waiting(&one, 101));
    }

    #[test]
    fn a_full_map_drops_expired_entries_and_never_grows_past_its_bound() {
        let backoff = RefreshBackoff::default();
        for n in 0..MAX_SESSIONS as u32 {
            let mut id = [0; 16];
            id[..4].copy_from_slice(&n.to_be_bytes());
            backoff.start(&SessionId(id), 0);
        }
        let late = SessionId([9; 16]);
        backoff.start(&late, 1);
        assert!(!backoff.is_waiting(&late, 1), "full: not remembered");
        backoff.start(&late, RETRY_AFTER);
        assert!(
            backoff.is_waiting(&late, RETRY_AFTER),
            "expired ones dropped"
        );
        assert_eq!(backoff.map().len(), 1);
    }
}
