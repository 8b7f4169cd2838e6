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

/// 200 `ready`, or 503 with the first reason not to send traffic here (one line).
async fn readyz(State(state): State<AdminState>) -> (StatusCode, String) {
    let flow = &state.flow;
    let unavailable = |reason: &str| {
        let one_line = reason.replace('\n', " ");
        (StatusCode::SERVICE_UNAVAILABLE, format!("{one_line}\n"))
    };
    if state.readiness.is_draining() {
        return unavailable("draining: shutting down, still answering Checks");
    }
    if let Some(reason) = flow.provider().not_ready_reason() {
        return unavailable(&reason);
    }
    if flow.sessions().store().ping().await.is_err() {
        return unavailable("session store unavailable");
    }
    (StatusCode::OK, "ready\n".into())
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
