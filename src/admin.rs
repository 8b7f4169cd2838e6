//! The admin HTTP endpoint: `GET /healthz` (the process answers), `GET /readyz` (every provider's
//! IdP has been discovered and the session store answers), for Kubernetes probes and the test
//! harness, and `GET /metrics` (Prometheus text format).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::gateway::Gateway;

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(gateway): State<Arc<Gateway>>) -> (StatusCode, String) {
    if let Some(waiting) = gateway
        .flows()
        .iter()
        .find(|named| named.flow.provider().metadata().is_none())
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "OpenID Provider not discovered yet (provider `{}`)\n",
                waiting.name
            ),
        );
    }
    // Every provider's sessions live in the same store.
    if gateway
        .default_flow()
        .sessions()
        .store()
        .ping()
        .await
        .is_err()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "session store unavailable\n".into(),
        );
    }
    (StatusCode::OK, "ready\n".into())
}

async fn metrics(
    State(gateway): State<Arc<Gateway>>,
) -> ([(&'static str, &'static str); 1], String) {
    let idp_ready: Vec<(&str, bool)> = gateway
        .flows()
        .iter()
        .map(|named| {
            (
                named.name.as_str(),
                named.flow.provider().metadata().is_some(),
            )
        })
        .collect();
    (
        [("content-type", "text/plain; version=0.0.4")],
        gateway.metrics().render(&idp_ready),
    )
}

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(gateway)
}
