//! The storage section: `session_storage`, `memory:` (its size bound), `redis:` (topology, TLS,
//! prefix, pool, timeout) and `session_cache_size`.

use std::time::Duration;

use crate::config::limits::*;
use crate::config::reader::Reader;
use crate::config::redis_topology::{redis_mode, redis_tls};
use crate::config::*;

/// `session_storage`, `memory:`, `redis:` and `session_cache_size`.
pub(super) struct Storage {
    pub(super) session_storage: SessionStorage,
    pub(super) memory_max_bytes: usize,
    pub(super) session_cache_size: usize,
}

pub(super) fn storage(reader: &mut Reader) -> Storage {
    let redis_chosen = reader.choice_or(
        "session_storage",
        &[("memory", false), ("redis", true)],
        false,
    );
    let memory_map = reader.mapping("memory");
    let memory_max_bytes = {
        let mut memory_reader = Reader::new(memory_map, "memory", reader.errors);
        let max_bytes = memory_max_bytes(&mut memory_reader);
        memory_reader.finish();
        max_bytes
    };
    let redis_map = reader.mapping("redis");
    let redis = redis(Reader::new(redis_map, "redis", reader.errors), redis_chosen);
    let session_storage = redis.map_or(SessionStorage::Memory, SessionStorage::Redis);
    Storage {
        session_cache_size: session_cache_size(reader, &session_storage),
        session_storage,
        memory_max_bytes,
    }
}

/// The `redis:` mapping, every key checked; a `RedisConfig` only when `required` (the store is
/// Redis) and its topology is sound.
fn redis(mut redis_reader: Reader, required: bool) -> Option<RedisConfig> {
    let mode = redis_mode(&mut redis_reader, required);
    let tls = redis_tls(&mut redis_reader, mode.as_ref());
    let key_prefix = redis_reader.string_or("key_prefix", "oidc-authz:");
    let pool_size = redis_reader.u64_or("pool_size", 16).max(1) as usize;
    let command_timeout = Duration::from_millis(redis_reader.u64_or("command_timeout_ms", 1000));
    redis_reader.finish();
    let mode = mode.filter(|_| required)?;
    Some(RedisConfig {
        mode,
        tls: Box::new(tls),
        key_prefix,
        pool_size,
        command_timeout,
    })
}
