//! The session store a config names (memory, or Redis in one of its topologies), built once at
//! start: a reload keeps it.

use std::sync::Arc;

use crate::config::{Config, RedisMode, RedisTlsFiles, SessionStorage};
use crate::secret::Secret;
use crate::session::SessionStore;
use crate::session::memory::MemoryStore;
use crate::session::redis::{RedisConfigError, RedisStore, RedisTls, RedisTopology};

/// The session store `config` names. Built once: a reload keeps it (`reload.rs`).
pub(super) fn build_store(config: &Config) -> Result<Arc<dyn SessionStore>, RedisConfigError> {
    let store: Arc<dyn SessionStore> = match &config.session_storage {
        SessionStorage::Memory => Arc::new(MemoryStore::with_max_bytes(config.memory_max_bytes)),
        SessionStorage::Redis(redis) => Arc::new(RedisStore::with_tls(
            &redis_topology(&redis.mode),
            &redis_tls(&redis.tls),
            &redis.key_prefix,
            redis.pool_size,
            redis.command_timeout,
        )?),
    };
    Ok(store)
}

/// The store's view of `redis.url` / `cluster_urls` / `sentinel`, secrets exposed for the client.
fn redis_topology(mode: &RedisMode) -> RedisTopology {
    let exposed = |urls: &[Secret]| urls.iter().map(|u| u.expose().to_owned()).collect();
    match mode {
        RedisMode::Single { url } => RedisTopology::Single {
            url: url.expose().to_owned(),
        },
        RedisMode::Cluster { urls } => RedisTopology::Cluster {
            urls: exposed(urls),
        },
        RedisMode::Sentinel {
            urls,
            master_name,
            db,
            username,
            password,
        } => RedisTopology::Sentinel {
            urls: exposed(urls),
            master_name: master_name.clone(),
            db: *db,
            username: username.clone(),
            password: password.as_ref().map(|p| p.expose().to_owned()),
        },
    }
}

/// The store's view of `redis.ca_file` / `cert_file` / `key_file`.
fn redis_tls(files: &RedisTlsFiles) -> RedisTls {
    RedisTls {
        ca_pem: files.ca_pem.clone().map(String::into_bytes),
        client_pem: files
            .client_cert_pem
            .clone()
            .zip(files.client_key_pem.as_ref())
            .map(|(cert, key)| (cert.into_bytes(), key.expose().as_bytes().to_vec())),
    }
}
