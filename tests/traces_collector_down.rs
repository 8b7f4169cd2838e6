//! Traces with a collector that accepts connections and never answers (issue 12): Checks are
//! answered as fast and as right as without traces, and flushing and shutting the exporter down
//! end within their bounds. Its own binary: the subscriber is global.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use oidc_authz::config::{LogFormat, OtelSettings};
use oidc_authz::telemetry;
use support::{Authz, FakeIdp, Outcome, Req, SwitchableStore};

/// Far below the exporter's 5 s timeout: a Check that waited for an export would exceed it.
const CHECK_BOUND: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_collector_never_slows_or_fails_a_check() {
    // Accepts, then holds every connection without a byte of HTTP/2.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            connections.push(connection);
        }
    });
    let otel = OtelSettings {
        endpoint: Some(format!("http://{collector}").parse().unwrap()),
        service_name: None,
    };
    let telemetry = Arc::new(telemetry::init(LogFormat::Text, "warn", &otel));
    assert!(telemetry.traces_enabled());

    let idp = FakeIdp::start().await;
    let authz = Authz::start(&idp, "", SwitchableStore::memory()).await;
    let mut browser = authz.browser();
    for round in 0..20 {
        let started = Instant::now();
        let outcome = browser
            .send(Req::navigate("/").with_header(
                "traceparent",
                &format!("00-4bf92f3577b34da6a3ce929d0e0e{round:04x}-00f067aa0ba902b7-01"),
            ))
            .await;
        assert!(
            matches!(outcome, Outcome::Denied { status: 302, .. }),
            "round {round}: {outcome:?}"
        );
        assert!(
            started.elapsed() < CHECK_BOUND,
            "round {round}: {:?}",
            started.elapsed()
        );
        if round == 0 {
            // Let the first batch go out and stall on the silent collector.
            let flushing = Arc::clone(&telemetry);
            tokio::spawn(tokio::task::spawn_blocking(move || flushing.flush()));
        }
    }

    let flushing = Arc::clone(&telemetry);
    let flushed = tokio::time::timeout(
        Duration::from_secs(15),
        tokio::task::spawn_blocking(move || flushing.flush()),
    )
    .await;
    assert!(flushed.is_ok(), "a flush to a silent collector ends");
    authz.stop().await;
    let shutdown = tokio::time::timeout(
        Duration::from_secs(15),
        tokio::task::spawn_blocking(move || drop(telemetry)),
    )
    .await;
    assert!(shutdown.is_ok(), "shutdown with a silent collector ends");
    held.abort();
}
