//! The admin HTTP endpoint: `GET /healthz` (the process answers), `GET /readyz` (the IdP has been
//! discovered and the session store answers), for Kubernetes probes and the test harness, and
//! `GET /metrics` (Prometheus text format).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::flow::Flow;

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(flow): State<Arc<Flow>>) -> (StatusCode, &'static str) {
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

async fn metrics(State(flow): State<Arc<Flow>>) -> ([(&'static str, &'static str); 1], String) {
    let idp_ready = flow.provider().metadata().is_some();
    (
        [("content-type", "text/plain; version=0.0.4")],
        flow.metrics().render(idp_ready),
    )
}

pub fn router(flow: Arc<Flow>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(flow)
}
