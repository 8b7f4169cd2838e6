//! The invalidation feed of one Redis server: a dedicated RESP3 connection with
//! `CLIENT TRACKING ON BCAST PREFIX <key prefix><watched prefix>`, on which Redis pushes the name
//! of every key under that prefix that any client writes, deletes, or that expires or is evicted
//! (Redis 6+). Each push is handed, as it is read, to the listener (`SessionCache`).
//!
//! Fail safe: the listener is told the feed is live only once tracking is on, and told it is gone
//! (so it forgets everything and serves nothing) when the connection reports a disconnection, when
//! a `PING` every `PING_INTERVAL` fails or takes longer than `PING_TIMEOUT` (a hung or partitioned
//! Redis sends no disconnection), or when the feed is replaced. A change can then go unheard for
//! at most `PING_INTERVAL + PING_TIMEOUT` (0.5 s), and only on a connection that answers nothing.
//!
//! One task per store, started by the first `watch`; it holds the feed alive and ends once the
//! store is dropped.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use deadpool_redis::redis::{self, PushInfo, PushKind, Value};

use super::store::InvalidationListener;
use crate::log_limit::RateLimitedLog;

const PING_INTERVAL: Duration = Duration::from_millis(250);
const PING_TIMEOUT: Duration = Duration::from_millis(250);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// The feed of one Redis server's changes. Deliberately no `Debug`: the connection info may hold
/// a password.
pub struct ChangeFeed {
    /// Where Redis is, set to speak RESP3.
    connection_info: redis::ConnectionInfo,
    /// The store's own prefix, put before every key it writes and taken off every key reported.
    key_prefix: String,
    state: Mutex<FeedState>,
    down_log: RateLimitedLog,
}

#[derive(Default)]
struct FeedState {
    listener: Option<Arc<dyn InvalidationListener>>,
    /// The keys followed, without the store's prefix; set by the first `watch`.
    watched_prefix: Option<String>,
    live: bool,
}

impl ChangeFeed {
    pub fn new(connection_info: redis::ConnectionInfo, key_prefix: &str) -> Arc<Self> {
        let settings = connection_info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        Arc::new(ChangeFeed {
            connection_info: connection_info.set_redis_settings(settings),
            key_prefix: key_prefix.to_owned(),
            state: Mutex::new(FeedState::default()),
            down_log: RateLimitedLog::per_second(),
        })
    }

    fn state(&self) -> MutexGuard<'_, FeedState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reports changes to keys under `prefix` to `listener` from now on; the previous listener is
    /// told the feed is gone. Starts the feed's task on the first call (needs a Tokio runtime;
    /// `false` without one, or for a prefix other than the first call's).
    pub fn watch(self: &Arc<Self>, prefix: &str, listener: Arc<dyn InvalidationListener>) -> bool {
        let mut state = self.state();
        match &state.watched_prefix {
            Some(watched) if watched != prefix => return false,
            Some(_) => {}
            None => {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    return false;
                };
                state.watched_prefix = Some(prefix.to_owned());
                runtime.spawn(Arc::clone(self).follow());
            }
        }
        if let Some(previous) = state.listener.replace(Arc::clone(&listener)) {
            previous.reset(false);
        }
        listener.reset(state.live);
        true
    }

    fn set_live(&self, live: bool) {
        let mut state = self.state();
        state.live = live;
        if let Some(listener) = &state.listener {
            listener.reset(live);
        }
    }

    /// Keeps the feed connected while the store exists (someone else holds this `Arc`).
    async fn follow(self: Arc<Self>) {
        let mut retry = FIRST_RETRY;
        while Arc::strong_count(&self) > 1 {
            let error = self.follow_one_connection().await;
            self.set_live(false);
            if Arc::strong_count(&self) == 1 {
                return;
            }
            if let Some(suppressed) = self.down_log.admit() {
                tracing::warn!(%error, suppressed, "session cache off: lost Redis's invalidation feed; reconnecting");
            }
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(MAX_RETRY);
        }
    }

    /// Connects, turns tracking on, then pings until something fails; returns what failed.
    async fn follow_one_connection(self: &Arc<Self>) -> redis::RedisError {
        let weak = Arc::downgrade(self);
        let on_push = move |push: PushInfo| -> Result<(), std::convert::Infallible> {
            if let Some(feed) = weak.upgrade() {
                feed.on_push(push);
            }
            Ok(())
        };
        let config = redis::AsyncConnectionConfig::new()
            .set_push_sender(on_push)
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(PING_TIMEOUT));
        let connected = async {
            let client = redis::Client::open(self.connection_info.clone())?;
            let mut connection = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            let prefix = format!("{}{}", self.key_prefix, self.watched_prefix());
            redis::cmd("CLIENT")
                .arg("TRACKING")
                .arg("ON")
                .arg("BCAST")
                .arg("PREFIX")
                .arg(prefix)
                .query_async::<()>(&mut connection)
                .await?;
            Ok::<_, redis::RedisError>(connection)
        };
        let mut connection = match connected.await {
            Ok(connection) => connection,
            Err(error) => return error,
        };
        self.set_live(true);
        loop {
            tokio::time::sleep(PING_INTERVAL).await;
            if Arc::strong_count(self) == 1 {
                return redis::RedisError::from((redis::ErrorKind::Client, "store dropped"));
            }
            if let Err(error) = redis::cmd("PING").query_async::<()>(&mut connection).await {
                return error;
            }
        }
    }

    fn watched_prefix(&self) -> String {
        self.state().watched_prefix.clone().unwrap_or_default()
    }

    /// A push from Redis, as the connection reads it.
    fn on_push(&self, push: PushInfo) {
        match push.kind {
            PushKind::Invalidate => {
                let state = self.state();
                let Some(listener) = &state.listener else {
                    return;
                };
                match self.keys_of(&push.data) {
                    Some(keys) => {
                        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                        listener.invalidated(&keys);
                    }
                    // `FLUSHALL`/`FLUSHDB`, or names we cannot read: anything may have changed.
                    None => listener.reset(state.live),
                }
            }
            PushKind::Disconnection => self.set_live(false),
            _ => {}
        }
    }

    /// The keys of an `invalidate` push without the store's prefix; `None` for a flush (a nil
    /// list) or anything unexpected.
    fn keys_of(&self, data: &[Value]) -> Option<Vec<String>> {
        let Some(Value::Array(keys)) = data.first() else {
            return None;
        };
        keys.iter()
            .map(|key| match key {
                Value::BulkString(bytes) => std::str::from_utf8(bytes)
                    .ok()?
                    .strip_prefix(self.key_prefix.as_str())
                    .map(str::to_owned),
                _ => None,
            })
            .collect()
    }
}
