//! For `scripts/bench` only: copies one real session (made by a real login) into N sessions of the
//! same size in the same Redis, and prints one `Cookie` value per line for them, so the benchmark
//! can measure the session cache (and the process's RSS) with many live sessions without N logins.
//!
//!   clone_sessions CONFIG_FILE SESSION_COOKIE_VALUE COUNT > cookies.txt
//!
//! It writes only through the library's own session layer, with the keys of CONFIG_FILE.

use std::path::Path;
use std::sync::Arc;

use oidc_authz::config::{RedisMode, SessionStorage};
use oidc_authz::crypto::KeyRing;
use oidc_authz::crypto::cookie::{self, CookiePurpose};
use oidc_authz::session::redis::RedisStore;
use oidc_authz::session::{SessionId, SessionStore, Sessions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, config_file, cookie_value, count] = args.as_slice() else {
        return Err("usage: clone_sessions CONFIG_FILE SESSION_COOKIE_VALUE COUNT".into());
    };
    let count: usize = count.parse()?;
    let (config, _) = oidc_authz::config::load(Some(Path::new(config_file)))?;
    let SessionStorage::Redis(redis) = &config.session_storage else {
        return Err("the config's session_storage is not redis".into());
    };
    let RedisMode::Single { url } = &redis.mode else {
        return Err("the config's redis is not one server (redis.url)".into());
    };
    let store: Arc<dyn SessionStore> = Arc::new(RedisStore::new(
        url.expose(),
        &redis.key_prefix,
        4,
        redis.command_timeout,
    )?);
    let keys = Arc::new(KeyRing::from_secrets(&config.session_secrets)?);
    let sessions = Sessions::new(store, Arc::clone(&keys));
    let original = cookie::verify(&keys, CookiePurpose::Session, cookie_value)
        .ok_or("the cookie does not verify with the config's session_secret")?;
    let record = sessions
        .load(&SessionId(original.id))
        .await?
        .ok_or("no such session in Redis")?
        .record;
    if std::env::var_os("CLONE_SESSIONS_SIZES").is_some() {
        eprintln!(
            "access {} id {} refresh {} claims_json {} claims {:?}",
            record.access_token.len(),
            record.id_token.len(),
            record.refresh_token.len(),
            record.claims_json.len(),
            record.claims
        );
    }
    let lifetime = config.session_absolute_timeout;
    let mut cookies = String::new();
    for _ in 0..count {
        let id = SessionId::random()?;
        sessions.create(&id, &record, lifetime, lifetime).await?;
        cookies.push_str(&cookie::sign(&keys, CookiePurpose::Session, &id.0));
        cookies.push('\n');
    }
    print!("{cookies}");
    Ok(())
}
