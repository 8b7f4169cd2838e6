//! The admin HTTP endpoint: `GET /healthz` (the process answers), `GET /readyz` (not draining, the
//! IdP has been discovered and the session store answers; otherwise 503 with the reason), for
//! Kubernetes probes and the test harness, and `GET /metrics` (Prometheus text format).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::flow::Flow;
use crate::readiness::Readiness;

/// What the admin handlers read.
#[derive(Clone)]
struct AdminState {
    flow: Arc<Flow>,
    readiness: Arc<Readiness>,
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> (StatusCode, &'static str) {
    let flow = &state.flow;
    if state.readiness.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "draining: shutting down, still answering Checks\n",
        );
    }
    if flow.provider().metadata().is_none() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "OpenID Provider not discovered yet\n",
        );
    }
    if flow.sessions().store().ping().await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "session store unavailable\n",
        );
    }
    (StatusCode::OK, "ready\n")
}

async fn metrics(State(state): State<AdminState>) -> ([(&'static str, &'static str); 1], String) {
    let flow = &state.flow;
    let idp_ready = flow.provider().metadata().is_some();
    (
        [("content-type", "text/plain; version=0.0.4")],
        flow.metrics().render(idp_ready),
    )
}

pub fn router(flow: Arc<Flow>, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(AdminState { flow, readiness })
}
