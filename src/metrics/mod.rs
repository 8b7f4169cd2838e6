//! Prometheus metrics on `prometheus-client` (the Prometheus project's Rust crate), rendered in
//! the text exposition format 0.0.4 at the admin endpoint's `GET /metrics`. Every metric is made
//! at start with its fixed label values (`labels::Fixed`): recording is an atomic add on a handle,
//! no registry lookup and no lock, so the Check hot path stays lock-free. No label ever carries a
//! user, a path or a token; the provider label carries configured provider names only.
//!
//! Layout: `mod.rs` (`Metrics` and its `record_*` methods), `outcomes.rs` (the label values),
//! `render.rs` (the registry of one scrape), `labels.rs`, `histogram.rs`, `idp.rs`.

mod histogram;
mod idp;
pub(crate) mod labels;
mod outcomes;
mod render;
#[cfg(test)]
mod tests;

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::error::FailureCause;
pub use histogram::{LATENCY_BUCKETS, LatencyHistogram};
pub use idp::{IdpEndpoint, IdpMetrics};
use labels::Fixed;
pub use outcomes::{CacheLookup, CheckOutcome, RefreshOutcome, SessionEndReason, StoreOperation};
use outcomes::{LogoutKind, ReloadResult};

/// The `Content-Type` of what `render` writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The session cache's handles into `Metrics`: cheap clones of the same metrics.
#[derive(Debug, Clone, Default)]
pub struct SessionCacheMetrics {
    lookups: Fixed<CacheLookup, Counter>,
    feed_up: Gauge,
}

impl SessionCacheMetrics {
    pub fn record_lookup(&self, result: CacheLookup) {
        self.lookups.get(result).inc();
    }

    /// Whether the cache's invalidation feed is live (and so the cache serves).
    pub fn set_feed_up(&self, up: bool) {
        self.feed_up.set(i64::from(up));
    }
}

/// What `render` needs to know of one provider: its configured name, whether its discovery
/// succeeded, and its IdP client's metrics (none for a test double).
pub struct ProviderView<'a> {
    pub name: &'a str,
    pub ready: bool,
    pub idp: Option<&'a IdpMetrics>,
}

impl<'a> ProviderView<'a> {
    /// A discovered provider whose IdP client keeps no metrics (a test double).
    pub fn ready(name: &'a str) -> Self {
        ProviderView {
            name,
            ready: true,
            idp: None,
        }
    }
}

/// Every metric of the process but those of each provider's IdP client (`IdpMetrics`). Cheap
/// handles: counters and histograms are atomics shared with what `render` registers.
#[derive(Default)]
pub struct Metrics {
    checks: Fixed<CheckOutcome, Counter>,
    check_duration: LatencyHistogram,
    check_failures: Fixed<FailureCause, Counter>,
    checks_cancelled: Counter,
    logins: Counter,
    refreshes: Fixed<RefreshOutcome, Counter>,
    stale_token_allows: Counter,
    refresh_locks_abandoned: Counter,
    refresh_lock_contended: Counter,
    logouts: Fixed<LogoutKind, Counter>,
    sessions_created: Counter,
    sessions_ended: Fixed<SessionEndReason, Counter>,
    store_duration: Fixed<StoreOperation, LatencyHistogram>,
    store_errors: Fixed<StoreOperation, Counter>,
    config_reloads: Fixed<ReloadResult, Counter>,
    session_cache: SessionCacheMetrics,
}

impl Metrics {
    /// Handles for the session cache of the config in force (a reload's new cache gets the same).
    pub fn session_cache(&self) -> SessionCacheMetrics {
        self.session_cache.clone()
    }

    pub fn record_check(&self, outcome: CheckOutcome, took: Duration) {
        self.checks.get(outcome).inc();
        self.check_duration.observe(took);
    }

    /// A config reload (SIGHUP): applied, or refused (the old config kept serving).
    pub fn record_config_reload(&self, applied: bool) {
        let result = if applied {
            ReloadResult::Ok
        } else {
            ReloadResult::Refused
        };
        self.config_reloads.get(result).inc();
    }

    /// A Check that could not be decided (also counted as `outcome="error"`), by what it depended
    /// on.
    pub fn record_check_failure(&self, cause: FailureCause) {
        self.check_failures.get(cause).inc();
    }

    /// A Check whose caller gave up before it was decided (Envoy's ext_authz timeout, a client
    /// gone): its future was dropped.
    pub fn record_check_cancelled(&self) {
        self.checks_cancelled.inc();
    }

    /// A login completed: a session was created.
    pub fn record_login(&self) {
        self.logins.inc();
        self.sessions_created.inc();
    }

    pub fn record_refresh(&self, outcome: RefreshOutcome) {
        self.refreshes.get(outcome).inc();
    }

    /// A Check allowed with an access token that was due for refresh but could not be refreshed
    /// (the IdP unreachable, or within the session's retry backoff), and had not yet expired.
    pub fn record_stale_token_allow(&self) {
        self.stale_token_allows.inc();
    }

    /// A refresh lock its holder could not release: it stays until its TTL ends.
    pub fn record_refresh_lock_abandoned(&self) {
        self.refresh_locks_abandoned.inc();
    }

    /// A Check that wanted to refresh and found another holding the session's refresh lock.
    pub fn record_refresh_lock_contended(&self) {
        self.refresh_lock_contended.inc();
    }

    pub fn record_rp_logout(&self) {
        self.logouts.get(LogoutKind::RpInitiated).inc();
    }

    pub fn record_backchannel_logout(&self) {
        self.logouts.get(LogoutKind::Backchannel).inc();
    }

    pub fn record_frontchannel_logout(&self) {
        self.logouts.get(LogoutKind::Frontchannel).inc();
    }

    /// `count` sessions ended for `reason`.
    pub fn record_sessions_ended(&self, reason: SessionEndReason, count: usize) {
        self.sessions_ended.get(reason).inc_by(count as u64);
    }

    /// One session store command: how long it took and whether it failed.
    pub fn record_store_command(&self, operation: StoreOperation, took: Duration, failed: bool) {
        self.store_duration.get(operation).observe(took);
        if failed {
            self.store_errors.get(operation).inc();
        }
    }
}
