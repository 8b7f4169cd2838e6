//! Prometheus metrics on `prometheus-client` (the Prometheus project's Rust crate), rendered in
//! the text exposition format 0.0.4 at the admin endpoint's `GET /metrics`. Every metric is made
//! at start with its fixed label values (`labels::Fixed`): recording is an atomic add on a handle,
//! no registry lookup and no lock, so the Check hot path stays lock-free. No label ever carries a
//! user, a path or a token; the provider label carries configured provider names only.

mod histogram;
mod idp;
pub(crate) mod labels;

use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::error::FailureCause;
pub use histogram::{LATENCY_BUCKETS, LatencyHistogram};
pub use idp::{IdpEndpoint, IdpMetrics};
use labels::{Fixed, label_values};

/// The `Content-Type` of what `render` writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// How a Check ended.
#[derive(Debug, Clone, Copy)]
pub enum CheckOutcome {
    Allow,
    Redirect,
    Deny,
    /// Could not decide: Envoy's `status_on_error` applies.
    Error,
}
label_values!(CheckOutcome, "outcome", {
    Allow => "allow", Redirect => "redirect", Deny => "deny", Error => "error",
});

#[derive(Debug, Clone, Copy)]
pub enum RefreshOutcome {
    Refreshed,
    /// The IdP refused (`invalid_grant`...): the session ended.
    Refused,
    /// The IdP was unreachable: the request failed closed.
    Failed,
}
label_values!(RefreshOutcome, "result", {
    Refreshed => "refreshed", Refused => "refused", Failed => "failed",
});

label_values!(FailureCause, "cause", { Store => "store", Idp => "idp", Other => "other" });

/// What the session cache answered (`session/cache.rs`).
#[derive(Debug, Clone, Copy)]
pub enum CacheLookup {
    /// Served from the cache: no store read.
    Hit,
    /// Read from the store (not cached, or the cache's feed is not live).
    Miss,
}
label_values!(CacheLookup, "result", { Hit => "hit", Miss => "miss" });

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

/// How a config reload (SIGHUP) ended.
#[derive(Debug, Clone, Copy)]
enum ReloadResult {
    /// Validated and swapped in.
    Ok,
    /// Refused: the old config kept serving.
    Refused,
}
label_values!(ReloadResult, "result", { Ok => "ok", Refused => "refused" });

#[derive(Debug, Clone, Copy)]
enum LogoutKind {
    RpInitiated,
    Backchannel,
    Frontchannel,
}
label_values!(LogoutKind, "kind", {
    RpInitiated => "rp_initiated", Backchannel => "backchannel", Frontchannel => "frontchannel",
});

/// Why a session ended.
#[derive(Debug, Clone, Copy)]
pub enum SessionEndReason {
    /// The user logged out here (RP-initiated logout).
    Logout,
    /// The IdP's back-channel logout token named it.
    Backchannel,
    /// The IdP's front-channel logout request named it.
    Frontchannel,
    /// Its idle or absolute lifetime ran out.
    Timeout,
    /// The IdP refused to refresh its tokens.
    RefreshRefused,
    /// Its access token expired with no refresh token to renew it.
    TokenExpired,
}
label_values!(SessionEndReason, "reason", {
    Logout => "logout", Backchannel => "backchannel", Frontchannel => "frontchannel",
    Timeout => "timeout", RefreshRefused => "refresh_refused", TokenExpired => "token_expired",
});

/// A class of session store command.
#[derive(Debug, Clone, Copy)]
pub enum StoreOperation {
    /// `get`.
    Read,
    /// `put`, `put_if_absent`, `put_if_present`, `add_to_set`, `push_bounded`.
    Write,
    /// `take`, `take_set`.
    Take,
    /// `delete`, `delete_if_equals`, `remove_from_set`.
    Delete,
    /// `ping` (readiness).
    Ping,
}
label_values!(StoreOperation, "operation", {
    Read => "read", Write => "write", Take => "take", Delete => "delete", Ping => "ping",
});

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

    /// A Check that could not be decided (also counted as `outcome="error"`), by what it depended
    /// on.
    pub fn record_config_reload(&self, applied: bool) {
        let result = if applied {
            ReloadResult::Ok
        } else {
            ReloadResult::Refused
        };
        self.config_reloads.get(result).inc();
    }

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

    /// The text exposition format 0.0.4 (`CONTENT_TYPE`) of every metric, with each provider's
    /// readiness and IdP client metrics as `providers` tells.
    pub fn render(&self, providers: &[ProviderView<'_>]) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        register_providers(&mut registry, providers);
        let mut out = String::new();
        // Writing into a `String` cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }

    /// Registers clones of the handles: the registry lives for one render. A counter's name is
    /// given without `_total`, which prometheus-client appends.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "oidc_authz_checks",
            "Check calls by outcome",
            self.checks.clone(),
        );
        registry.register(
            "oidc_authz_check_duration_seconds",
            "Time to decide a Check",
            self.check_duration.clone(),
        );
        registry.register(
            "oidc_authz_check_failures",
            "Checks that could not be decided (answered with a gRPC error, Envoy's status_on_error), by cause",
            self.check_failures.clone(),
        );
        registry.register(
            "oidc_authz_checks_cancelled",
            "Checks their caller gave up on before they were decided (Envoy's ext_authz timeout)",
            self.checks_cancelled.clone(),
        );
        registry.register(
            "oidc_authz_logins",
            "Logins completed (sessions created)",
            self.logins.clone(),
        );
        registry.register(
            "oidc_authz_refreshes",
            "Access-token refreshes by result",
            self.refreshes.clone(),
        );
        registry.register(
            "oidc_authz_stale_token_allows",
            "Checks allowed with an access token due for refresh that the IdP could not refresh, before it expired",
            self.stale_token_allows.clone(),
        );
        registry.register(
            "oidc_authz_refresh_locks_abandoned",
            "Refresh locks their holder could not release (left to expire)",
            self.refresh_locks_abandoned.clone(),
        );
        registry.register(
            "oidc_authz_refresh_lock_contended",
            "Checks that wanted to refresh a session and found its refresh lock held by another",
            self.refresh_lock_contended.clone(),
        );
        registry.register(
            "oidc_authz_logouts",
            "Logouts by kind",
            self.logouts.clone(),
        );
        registry.register(
            "oidc_authz_sessions_created",
            "Sessions created (logins completed)",
            self.sessions_created.clone(),
        );
        registry.register(
            "oidc_authz_sessions_ended",
            "Sessions ended, by reason",
            self.sessions_ended.clone(),
        );
        registry.register(
            "oidc_authz_store_duration_seconds",
            "Session store command latency, by operation class",
            self.store_duration.clone(),
        );
        registry.register(
            "oidc_authz_store_errors",
            "Session store commands that failed, by operation class",
            self.store_errors.clone(),
        );
        registry.register(
            "oidc_authz_config_reloads",
            "Config reloads (SIGHUP) by result; refused ones left the old config serving",
            self.config_reloads.clone(),
        );
        registry.register(
            "oidc_authz_session_cache_lookups",
            "Session lookups of Checks, by whether the session cache answered (hit) or the store did (miss)",
            self.session_cache.lookups.clone(),
        );
        registry.register(
            "oidc_authz_session_cache_feed_up",
            "Whether the session cache's invalidation feed from Redis is live (0: the cache serves nothing)",
            self.session_cache.feed_up.clone(),
        );
    }
}

/// The per-provider families: readiness and the IdP clients' metrics.
fn register_providers(registry: &mut Registry, providers: &[ProviderView<'_>]) {
    let all_ready = providers.iter().all(|provider| provider.ready);
    registry.register(
        "oidc_authz_idp_ready",
        "Whether every provider's IdP discovery has succeeded",
        PerProvider::<i64>::single(i64::from(all_ready)),
    );
    let ready = providers
        .iter()
        .map(|provider| (provider.name.to_owned(), i64::from(provider.ready)))
        .collect();
    registry.register(
        "oidc_authz_provider_ready",
        "Whether each provider's IdP discovery has succeeded",
        PerProvider(ready),
    );
    let idp: Vec<(String, IdpMetrics)> = providers
        .iter()
        .filter_map(|provider| Some((provider.name.to_owned(), provider.idp?.clone())))
        .collect();
    idp::register(registry, &idp);
}

/// A gauge per provider (`provider` label), or one without labels (empty name), read at render.
#[derive(Debug)]
struct PerProvider<T>(Vec<(String, T)>);

impl PerProvider<i64> {
    fn single(value: i64) -> Self {
        PerProvider(vec![(String::new(), value)])
    }
}

impl EncodeMetric for PerProvider<i64> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (provider, value) in &self.0 {
            if provider.is_empty() {
                encoder.encode_gauge(value)?;
            } else {
                encoder
                    .encode_family(&[("provider", provider.as_str())])?
                    .encode_gauge(value)?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let metrics = Metrics::default();
        metrics.record_check(CheckOutcome::Allow, Duration::from_micros(50));
        metrics.record_check(CheckOutcome::Allow, Duration::from_micros(700));
        metrics.record_check(CheckOutcome::Error, Duration::from_secs(10));
        metrics.record_login();
        metrics.record_refresh(RefreshOutcome::Refused);
        let idp = IdpMetrics::default();
        let text = metrics.render(&[
            ProviderView {
                name: "default",
                ready: true,
                idp: Some(&idp),
            },
            ProviderView {
                name: "corp",
                ready: false,
                idp: None,
            },
        ]);
        assert!(!text.contains("cause=\"store\"} 1"));
        for line in [
            "oidc_authz_checks_total{outcome=\"allow\"} 2",
            "oidc_authz_checks_total{outcome=\"error\"} 1",
            "oidc_authz_check_duration_seconds_bucket{le=\"0.0001\"} 1",
            "oidc_authz_check_duration_seconds_bucket{le=\"0.001\"} 2",
            "oidc_authz_check_duration_seconds_bucket{le=\"5\"} 2",
            "oidc_authz_check_duration_seconds_bucket{le=\"+Inf\"} 3",
            "oidc_authz_check_duration_seconds_count 3",
            "oidc_authz_logins_total 1",
            "oidc_authz_refreshes_total{result=\"refused\"} 1",
            "oidc_authz_idp_ready 0",
            "oidc_authz_check_failures_total{cause=\"store\"} 0",
            "oidc_authz_provider_ready{provider=\"default\"} 1",
            "oidc_authz_provider_ready{provider=\"corp\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
    }

    #[test]
    fn renders_failures_by_cause_cancellations_stale_allows_and_abandoned_locks() {
        let metrics = Metrics::default();
        metrics.record_check_failure(FailureCause::Store);
        metrics.record_check_failure(FailureCause::Store);
        metrics.record_check_failure(FailureCause::Idp);
        metrics.record_check_cancelled();
        metrics.record_config_reload(false);
        metrics.record_stale_token_allow();
        metrics.record_stale_token_allow();
        metrics.record_stale_token_allow();
        metrics.record_refresh_lock_abandoned();
        let text = metrics.render(&[ProviderView {
            name: "default",
            ready: false,
            idp: None,
        }]);
        for line in [
            "# TYPE oidc_authz_check_failures_total counter",
            "oidc_authz_check_failures_total{cause=\"store\"} 2",
            "oidc_authz_check_failures_total{cause=\"idp\"} 1",
            "oidc_authz_check_failures_total{cause=\"other\"} 0",
            "oidc_authz_config_reloads_total{result=\"refused\"} 1",
            "# TYPE oidc_authz_checks_cancelled_total counter",
            "oidc_authz_checks_cancelled_total 1",
            "# TYPE oidc_authz_stale_token_allows_total counter",
            "oidc_authz_stale_token_allows_total 3",
            "# TYPE oidc_authz_refresh_locks_abandoned_total counter",
            "oidc_authz_refresh_locks_abandoned_total 1",
            "oidc_authz_idp_ready 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
        // Every metric has exactly one HELP and one TYPE line.
        let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(helps, types);
        assert_eq!(helps, 21, "{text}");
    }

    #[tokio::test]
    async fn renders_idp_store_session_and_lock_metrics_with_fixed_labels() {
        let metrics = Metrics::default();
        let idp = IdpMetrics::default();
        let ok: Result<(), ()> = idp.time(IdpEndpoint::Token, async { Ok(()) }).await;
        let failed: Result<(), ()> = idp.time(IdpEndpoint::Jwks, async { Err(()) }).await;
        assert!(ok.is_ok() && failed.is_err());
        idp.record_jwks_refetch();
        metrics.record_store_command(StoreOperation::Read, Duration::from_micros(300), false);
        metrics.record_store_command(StoreOperation::Write, Duration::from_secs(9), true);
        metrics.record_login();
        metrics.record_sessions_ended(SessionEndReason::Backchannel, 3);
        metrics.record_refresh_lock_contended();
        let text = metrics.render(&[ProviderView {
            name: "default",
            ready: true,
            idp: Some(&idp),
        }]);
        for line in [
            "# TYPE oidc_authz_idp_request_duration_seconds histogram",
            "oidc_authz_idp_request_duration_seconds_count{provider=\"default\",endpoint=\"token\",outcome=\"ok\"} 1",
            "oidc_authz_idp_request_duration_seconds_count{provider=\"default\",endpoint=\"jwks\",outcome=\"error\"} 1",
            "oidc_authz_idp_request_duration_seconds_count{provider=\"default\",endpoint=\"userinfo\",outcome=\"ok\"} 0",
            "oidc_authz_jwks_refetches_total{provider=\"default\"} 1",
            "oidc_authz_store_duration_seconds_bucket{operation=\"read\",le=\"0.0005\"} 1",
            "oidc_authz_store_duration_seconds_bucket{operation=\"write\",le=\"5\"} 0",
            "oidc_authz_store_duration_seconds_bucket{operation=\"write\",le=\"+Inf\"} 1",
            "oidc_authz_store_duration_seconds_sum{operation=\"write\"} 9.0",
            "oidc_authz_store_errors_total{operation=\"write\"} 1",
            "oidc_authz_store_errors_total{operation=\"read\"} 0",
            "oidc_authz_sessions_created_total 1",
            "oidc_authz_sessions_ended_total{reason=\"backchannel\"} 3",
            "oidc_authz_sessions_ended_total{reason=\"refresh_refused\"} 0",
            "oidc_authz_refresh_lock_contended_total 1",
            "oidc_authz_logins_total 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
    }
}
