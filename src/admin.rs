//! The admin HTTP endpoint: `GET /healthz` (the process answers), `GET /readyz` (not draining, the
//! default provider's IdP has been discovered and the session store answers; otherwise 503 with
//! the reason), for Kubernetes probes and the test harness, and `GET /metrics` (Prometheus text format 0.0.4, see `metrics`).
//! Other providers not discovered yet are named in a ready answer but do not make it 503: their
//! own routes fail, the rest of this process serves.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::gateway::Gateway;
use crate::metrics::ProviderView;
use crate::readiness::Readiness;

/// What the admin handlers read.
#[derive(Clone)]
struct AdminState {
    gateway: Arc<Gateway>,
    readiness: Arc<Readiness>,
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 `ready`, or 503 with the first reason not to send traffic here (one line).
async fn readyz(State(state): State<AdminState>) -> (StatusCode, String) {
    let one_line = |reason: &str| reason.replace('\n', " ");
    let unavailable = |reason: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", one_line(reason)),
        )
    };
    if state.readiness.is_draining() {
        return unavailable("draining: shutting down, still answering Checks");
    }
    let default = state.gateway.default_flow();
    if let Some(reason) = default.provider().not_ready_reason() {
        return unavailable(&reason);
    }
    // Every provider's sessions live in the same store.
    if default.sessions().store().ping().await.is_err() {
        return unavailable("session store unavailable");
    }
    let others: Vec<String> = state
        .gateway
        .flows()
        .iter()
        .filter_map(|named| {
            let reason = named.flow.provider().not_ready_reason()?;
            Some(format!("provider `{}`: {}", named.name, one_line(&reason)))
        })
        .collect();
    if !others.is_empty() {
        return (StatusCode::OK, format!("ready; {}\n", others.join("; ")));
    }
    (StatusCode::OK, "ready\n".into())
}

async fn metrics(State(state): State<AdminState>) -> ([(&'static str, &'static str); 1], String) {
    let gateway = &state.gateway;
    let flows = gateway.flows();
    let providers: Vec<ProviderView<'_>> = flows
        .iter()
        .map(|named| ProviderView {
            name: named.name.as_str(),
            ready: named.flow.provider().metadata().is_some(),
            idp: named.flow.provider().idp_metrics(),
        })
        .collect();
    (
        [("content-type", crate::metrics::CONTENT_TYPE)],
        gateway.metrics().render(&providers),
    )
}

pub fn router(gateway: Arc<Gateway>, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(AdminState { gateway, readiness })
}
