//! Drain on shutdown and `SO_REUSEPORT`, through the real server: after the shutdown signal the
//! gRPC health service and `/readyz` say NOT_SERVING / draining while Checks are still answered;
//! the server stops within drain + grace even with a Check stuck in flight; two servers share a
//! port, so a restart has no gap.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use oidc_authz::config::ListenAddress;
use oidc_authz::server::GrpcListener;
use support::{Authz, FakeIdp, Req, SwitchableStore};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

const AUTHORIZATION_SERVICE: &str = "envoy.service.auth.v3.Authorization";

async fn health_of(authz: &Authz, service: &str) -> ServingStatus {
    let answer = authz
        .health_client()
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("the health service answers");
    answer.into_inner().status()
}

async fn readyz(authz: &Authz) -> (u16, String) {
    let answer = reqwest::get(format!("http://{}/readyz", authz.admin))
        .await
        .expect("the admin endpoint answers");
    (answer.status().as_u16(), answer.text().await.unwrap())
}

async fn tcp_listener_at(address: &str) -> tokio::net::TcpListener {
    let address = ListenAddress::Tcp(address.parse().unwrap());
    match GrpcListener::bind(&address).await.expect("bind") {
        GrpcListener::Tcp(listener) => listener,
        GrpcListener::Unix { .. } => unreachable!("a TCP address"),
    }
}

#[tokio::test]
async fn after_the_signal_health_says_not_serving_while_checks_are_still_answered() {
    let idp = FakeIdp::start().await;
    let extra = "shutdown_drain_period: 2\nshutdown_grace_period: 1\n";
    let mut authz = Authz::start(&idp, extra, SwitchableStore::memory()).await;
    let mut browser = authz.browser();
    assert_eq!(browser.login(&idp, "/app").await.status(), 302);
    for service in ["", AUTHORIZATION_SERVICE] {
        assert_eq!(health_of(&authz, service).await, ServingStatus::Serving);
    }
    assert_eq!(readyz(&authz).await.0, 200);

    let signalled = tokio::time::Instant::now();
    authz.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for service in ["", AUTHORIZATION_SERVICE] {
        assert_eq!(
            health_of(&authz, service).await,
            ServingStatus::NotServing,
            "service `{service}` while draining"
        );
    }
    let (status, body) = readyz(&authz).await;
    assert_eq!(status, 503);
    assert!(body.starts_with("draining"), "{body}");
    for _ in 0..5 {
        let outcome = browser.send(Req::navigate("/app")).await;
        assert_eq!(outcome.status(), 200, "still answering: {outcome:?}");
    }
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "the Checks above ran inside the drain period"
    );
    let served = authz
        .stopped_within(Duration::from_secs(4))
        .await
        .expect("stops within drain (2 s) + grace (1 s) + slack");
    served.unwrap();
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "drained first"
    );
}

/// A Check stuck in flight (the session store hangs for 30 s) does not hold the process beyond
/// `shutdown_grace_period` (1 s).
#[tokio::test]
async fn the_server_stops_within_the_grace_period_with_a_check_in_flight() {
    let idp = FakeIdp::start().await;
    let store = SwitchableStore::memory();
    let extra = "shutdown_drain_period: 0\nshutdown_grace_period: 1\n";
    let mut authz = Authz::start(&idp, extra, store.clone()).await;
    let mut browser = authz.browser();
    assert_eq!(browser.login(&idp, "/app").await.status(), 302);
    store.stall_reads.store(true, Ordering::SeqCst);
    let mut stuck_tab = browser.clone();
    let stuck = tokio::spawn(async move { stuck_tab.send(Req::navigate("/app")).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!stuck.is_finished(), "the Check waits for the store");

    authz.begin_shutdown();
    let served = authz
        .stopped_within(Duration::from_secs(4))
        .await
        .expect("stops within the grace period (1 s) + slack, not after the stuck Check (30 s)");
    served.unwrap();
    stuck.abort();
}

/// A restart with overlap: the new server binds the port while the old one still serves; once the
/// old one has gone, new connections reach the new one.
#[tokio::test]
async fn two_servers_share_a_port_and_the_second_serves_after_the_first_leaves() {
    let first_listener = tcp_listener_at("127.0.0.1:0").await;
    let port = first_listener.local_addr().unwrap().to_string();
    let second_listener = tcp_listener_at(&port).await;

    let idp = FakeIdp::start().await;
    let store = SwitchableStore::memory();
    let old = Authz::start_on(&idp, "", store.clone(), first_listener).await;
    let new = Authz::start_on(&idp, "", store.clone(), second_listener).await;
    let mut browser = old.browser();
    assert_eq!(browser.login(&idp, "/app").await.status(), 302);
    old.stop().await;

    // `new`'s client has not connected yet: its first connection to the shared port can only
    // reach the server that still listens.
    let outcome = browser.send_via(&new, Req::navigate("/app")).await;
    assert_eq!(outcome.status(), 200, "{outcome:?}");
    new.stop().await;
}
