//! Keys that bound what a client can make us store or build: `allowed_hosts` (origins we build
//! redirect URIs for), `max_pending_logins` (per login cookie), `memory.max_bytes` (the
//! in-memory store's size) and `session_cache_size` (opened sessions kept in memory). Each reports
//! its own problems with the key path.

use super::reader::Reader;
use super::{RedisMode, SessionStorage};

/// Opened sessions kept in memory by default, for a Redis store (`session/cache.rs`).
pub(super) const DEFAULT_SESSION_CACHE_SIZE: u64 = 10_000;

/// Pending logins one login cookie may hold at once (tabs logging in at the same time).
pub(super) const DEFAULT_MAX_PENDING_LOGINS: u64 = 10;
/// The in-memory store's default bound: 128 MiB of keys and values.
pub(super) const DEFAULT_MEMORY_MAX_BYTES: u64 = crate::session::memory::DEFAULT_MAX_BYTES as u64;
/// Below this the store could not hold a handful of sessions.
const MIN_MEMORY_MAX_BYTES: u64 = 64 * 1024;

/// `allowed_hosts`: `host` or `host:port` as clients send it in `Host`, compared without regard to
/// case. Empty means any host.
pub(super) fn allowed_hosts(reader: &mut Reader) -> Vec<String> {
    let hosts = reader.string_list("allowed_hosts").unwrap_or_default();
    for (index, host) in hosts.iter().enumerate() {
        let plausible = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
        if !plausible {
            reader.error(
                &format!("allowed_hosts[{index}]"),
                format!("`{host}` is not a host or host:port (no scheme, no path)"),
            );
        }
    }
    hosts
        .into_iter()
        .map(|host| host.to_ascii_lowercase())
        .collect()
}

pub(super) fn max_pending_logins(reader: &mut Reader) -> usize {
    let limit = reader.u64_or("max_pending_logins", DEFAULT_MAX_PENDING_LOGINS);
    if limit == 0 {
        reader.error("max_pending_logins", "must be at least 1");
    }
    usize::try_from(limit.max(1)).unwrap_or(usize::MAX)
}

/// `memory.max_bytes`, read from the `memory` mapping's reader.
pub(super) fn memory_max_bytes(reader: &mut Reader) -> usize {
    let limit = reader.u64_or("max_bytes", DEFAULT_MEMORY_MAX_BYTES);
    if limit < MIN_MEMORY_MAX_BYTES {
        reader.error(
            "max_bytes",
            format!("must be at least {MIN_MEMORY_MAX_BYTES} (64 KiB)"),
        );
    }
    usize::try_from(limit.max(MIN_MEMORY_MAX_BYTES)).unwrap_or(usize::MAX)
}

/// `session_cache_size`: how many opened sessions a replica keeps, for one Redis server
/// (`redis.url`), whose invalidations it follows. The memory store needs none; a Cluster or
/// Sentinel has no invalidation feed here yet, so a size set for one is refused rather than
/// silently ignored.
pub(super) fn session_cache_size(reader: &mut Reader, storage: &SessionStorage) -> usize {
    let explicit = reader.value("session_cache_size").is_some();
    let size = reader.u64_or("session_cache_size", DEFAULT_SESSION_CACHE_SIZE);
    let one_redis = matches!(storage, SessionStorage::Redis(redis) if matches!(redis.mode, RedisMode::Single { .. }));
    if !one_redis {
        if explicit && size > 0 {
            reader.error(
                "session_cache_size",
                "only applies to session_storage: redis with redis.url (one server); set 0 or remove it",
            );
        }
        return 0;
    }
    usize::try_from(size).unwrap_or(usize::MAX)
}
