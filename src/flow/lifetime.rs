//! Session lifetime rules, pure: absolute and idle timeouts, when to write activity back, when the
//! access token needs a refresh, and the store TTL that mirrors all of it.

use std::time::Duration;

use crate::config::Config;
use crate::session::SessionRecord;

/// The session is used at most this long between activity writes, so the hot path does not write
/// on every request.
pub const ACTIVITY_WRITE_INTERVAL: i64 = 60;

pub fn is_expired(record: &SessionRecord, now: i64, config: &Config) -> bool {
    let absolute = config.session_absolute_timeout.as_secs() as i64;
    let idle = config.session_idling_timeout.as_secs() as i64;
    now >= record.created_at + absolute || (idle > 0 && now >= record.last_active_at + idle)
}

/// Whether the last activity write is old enough to write again.
pub fn activity_due(record: &SessionRecord, now: i64, config: &Config) -> bool {
    let idle = config.session_idling_timeout.as_secs() as i64;
    idle > 0 && now - record.last_active_at >= ACTIVITY_WRITE_INTERVAL.min(idle / 2).max(1)
}

/// Whether the access token has expired or will within the refresh margin.
pub fn needs_refresh(record: &SessionRecord, now: i64, config: &Config) -> bool {
    record.access_token_expires_at != 0
        && now + config.refresh_margin.as_secs() as i64 >= record.access_token_expires_at
}

pub fn access_token_expired(record: &SessionRecord, now: i64) -> bool {
    record.access_token_expires_at != 0 && now >= record.access_token_expires_at
}

/// How long the store keeps the record: until the earlier of the two timeouts (at least 1 s).
pub fn store_ttl(record: &SessionRecord, now: i64, config: &Config) -> Duration {
    let absolute_end = record.created_at + config.session_absolute_timeout.as_secs() as i64;
    let idle = config.session_idling_timeout.as_secs() as i64;
    let end = if idle > 0 {
        absolute_end.min(record.last_active_at + idle)
    } else {
        absolute_end
    };
    Duration::from_secs((end - now).max(1) as u64)
}
