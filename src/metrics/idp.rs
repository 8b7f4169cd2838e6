//! One provider's IdP client metrics: request latency by endpoint and outcome, and JWKS refetches.
//! Each `oidc::Provider` owns its `IdpMetrics`; `Metrics::render` adds the configured provider's
//! name as the `provider` label.

use std::future::Future;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use super::LatencyHistogram;

/// Which IdP endpoint a request went to.
#[derive(Debug, Clone, Copy)]
pub enum IdpEndpoint {
    Discovery,
    Jwks,
    Token,
    Introspection,
    Userinfo,
}

impl IdpEndpoint {
    const ALL: [IdpEndpoint; 5] = [
        IdpEndpoint::Discovery,
        IdpEndpoint::Jwks,
        IdpEndpoint::Token,
        IdpEndpoint::Introspection,
        IdpEndpoint::Userinfo,
    ];

    fn label(self) -> &'static str {
        match self {
            IdpEndpoint::Discovery => "discovery",
            IdpEndpoint::Jwks => "jwks",
            IdpEndpoint::Token => "token",
            IdpEndpoint::Introspection => "introspection",
            IdpEndpoint::Userinfo => "userinfo",
        }
    }
}

/// The `outcome` label: index 0 `ok`, 1 `error`.
const OUTCOMES: [&str; 2] = ["ok", "error"];

/// Cheap to clone: clones count into the same metrics.
#[derive(Debug, Clone, Default)]
pub struct IdpMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By `IdpEndpoint` (declaration order), then by `OUTCOMES`.
    requests: [[LatencyHistogram; 2]; 5],
    jwks_refetches: Counter,
}

impl IdpMetrics {
    /// Runs one IdP request, recording how long it took and whether it failed (any `Err`: the
    /// IdP unreachable, an error answer, or an answer that does not parse).
    pub async fn time<T, E>(
        &self,
        endpoint: IdpEndpoint,
        request: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started = Instant::now();
        let result = request.await;
        let outcome = usize::from(result.is_err());
        self.inner.requests[endpoint as usize][outcome].observe(started.elapsed());
        result
    }

    /// The key set was fetched again after discovery (stale, or an unknown `kid`).
    pub fn record_jwks_refetch(&self) {
        self.inner.jwks_refetches.inc();
    }
}

/// Registers every provider's IdP client metrics, `idp` naming each by its provider.
pub(super) fn register(registry: &mut Registry, idp: &[(String, IdpMetrics)]) {
    registry.register(
        "oidc_authz_idp_request_duration_seconds",
        "IdP request latency, by provider, endpoint and outcome",
        Requests(idp.to_vec()),
    );
    registry.register(
        "oidc_authz_jwks_refetches",
        "Key set fetches after discovery (stale keys, or an unknown kid), by provider",
        JwksRefetches(idp.to_vec()),
    );
}

#[derive(Debug)]
struct Requests(Vec<(String, IdpMetrics)>);

impl EncodeMetric for Requests {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (provider, metrics) in &self.0 {
            for endpoint in IdpEndpoint::ALL {
                for (outcome, histogram) in OUTCOMES
                    .iter()
                    .zip(&metrics.inner.requests[endpoint as usize])
                {
                    let labels = [
                        ("provider", provider.as_str()),
                        ("endpoint", endpoint.label()),
                        ("outcome", outcome),
                    ];
                    histogram.encode(encoder.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        LatencyHistogram::TYPE
    }
}

#[derive(Debug)]
struct JwksRefetches(Vec<(String, IdpMetrics)>);

impl EncodeMetric for JwksRefetches {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (provider, metrics) in &self.0 {
            metrics
                .inner
                .jwks_refetches
                .encode(encoder.encode_family(&[("provider", provider.as_str())])?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}
