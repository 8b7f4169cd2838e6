//! `Metrics::render`: every family registered on a registry made for one scrape (from clones of
//! the handles, so per-provider families follow the providers the gateway has), then encoded by
//! `prometheus-client`.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{IdpMetrics, Metrics, ProviderView, idp};

impl Metrics {
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
    /// given without `_total`, which prometheus-client appends. The families come out in this
    /// order.
    fn register(&self, registry: &mut Registry) {
        self.register_checks(registry);
        self.register_logins_and_refreshes(registry);
        self.register_sessions(registry);
        self.register_store(registry);
        self.register_reloads_and_cache(registry);
    }

    /// Checks: by outcome, their latency, failures by cause, cancellations.
    fn register_checks(&self, registry: &mut Registry) {
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
    }

    /// Logins, and refreshes with their locks.
    fn register_logins_and_refreshes(&self, registry: &mut Registry) {
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
    }

    /// Logouts, sessions created and ended.
    fn register_sessions(&self, registry: &mut Registry) {
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
    }

    /// Session store commands: latency and errors.
    fn register_store(&self, registry: &mut Registry) {
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
    }

    /// Config reloads, and the session cache.
    fn register_reloads_and_cache(&self, registry: &mut Registry) {
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
