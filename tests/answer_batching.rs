//! Answers to Checks in flight together on one HTTP/2 connection leave in shared writes
//! (`src/grpc_socket.rs`): h2 copies a frame into its write buffer only below a size that depends
//! on whether the socket takes vectored writes (256 bytes with, 1 KiB without). Our answers (a
//! redirect with its cookie, an allow with a bearer token) are longer than 256 bytes, so with
//! vectored writes on every answer went out in a write of its own. Measured on the real binary: its
//! `write`-family system calls (`/proc/PID/io`) per Check while a client keeps 64 in flight.

mod support;

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use prost::Message;
use support::binary::{RunningBinary, navigation_without_session};
use support::{FakeIdp, KEY_A, idp};
use tonic::transport::{Channel, Endpoint};

/// How long the binary may take to answer its first Check (start, bind, discover the IdP).
const READY_BOUND: Duration = Duration::from_secs(20);
/// Checks in flight at once, and how many such bursts are counted.
const IN_FLIGHT: usize = 64;
const BURSTS: usize = 10;

/// A client on one HTTP/2 connection to `port`, once the binary answers with a decision.
async fn connected_client(port: u16) -> AuthorizationClient<Channel> {
    let deadline = Instant::now() + READY_BOUND;
    let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5));
    loop {
        if let Ok(channel) = endpoint.connect().await {
            let mut client = AuthorizationClient::new(channel);
            if let Ok(answer) = client.check(navigation_without_session()).await
                && answer.get_ref().http_response.is_some()
            {
                return client;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no Check decision within {READY_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `IN_FLIGHT` Checks at once on `client`'s connection; each must be a redirect.
async fn burst(client: &AuthorizationClient<Channel>) {
    let mut checks = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let mut client = client.clone();
        checks.spawn(async move { client.check(navigation_without_session()).await });
    }
    while let Some(answer) = checks.join_next().await {
        let answer = answer.unwrap().expect("a Check answer").into_inner();
        assert!(
            matches!(answer.http_response, Some(HttpResponse::DeniedResponse(_))),
            "a redirect to the IdP"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_in_flight_together_share_their_writes() {
    let idp = FakeIdp::start().await;
    let dir = std::env::temp_dir().join(format!("oidc-authz-batching-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = support::redis::free_port();
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "issuer: {}\nclient_id: {}\nclient_secret: {}\nsession_secret: [{KEY_A}]\n\
             listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:0\nlog_level: error\n",
            idp.issuer,
            idp::CLIENT_ID,
            idp::CLIENT_SECRET,
        ),
    )
    .unwrap();
    let running = RunningBinary::start(&config);
    let mut client = connected_client(port).await;
    let answer = client
        .check(navigation_without_session())
        .await
        .unwrap()
        .into_inner();
    assert!(
        answer.encoded_len() > 256,
        "the answer ({} bytes) is past h2's limit for copying with vectored writes",
        answer.encoded_len()
    );
    burst(&client).await;

    let before = running.write_calls();
    for _ in 0..BURSTS {
        burst(&client).await;
    }
    let writes = running.write_calls() - before;
    let per_check = writes as f64 / (BURSTS * IN_FLIGHT) as f64;
    assert!(
        per_check < 0.75,
        "{writes} writes for {} Checks ({per_check:.2} a Check): answers are not batched",
        BURSTS * IN_FLIGHT
    );
    eprintln!("{writes} writes for {} Checks", BURSTS * IN_FLIGHT);
    let _ = std::fs::remove_dir_all(&dir);
}
