//! The real `oidc-authz` binary serving gRPC Check on a Unix socket (`listen: unix:/path`), the
//! way Envoy reaches it through a `pipe` address: it replaces a stale socket file left by a
//! previous run, answers a Check from a tonic client over the socket, and removes the socket file
//! when it stops on SIGTERM.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use support::binary::{RunningBinary, navigation_without_session};
use support::{FakeIdp, KEY_A, idp};
use tonic::transport::{Channel, Endpoint, Uri};

/// How long the binary may take to answer its first Check (start, bind, discover the IdP).
const READY_BOUND: Duration = Duration::from_secs(20);
/// How long it may take to exit after SIGTERM.
const EXIT_BOUND: Duration = Duration::from_secs(10);

/// A tonic client whose every connection is a new stream on the Unix socket at `socket`.
async fn unix_socket_client(socket: PathBuf) -> Result<AuthorizationClient<Channel>, String> {
    let channel = Endpoint::from_static("http://oidc-authz.invalid")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|error| error.to_string())?;
    Ok(AuthorizationClient::new(channel))
}

/// Asks until the answer is a decision (the IdP discovered), within `READY_BOUND`.
async fn first_decision(socket: &Path) -> HttpResponse {
    let deadline = Instant::now() + READY_BOUND;
    let mut last = String::from("nothing tried");
    while Instant::now() < deadline {
        match unix_socket_client(socket.to_owned()).await {
            Ok(mut client) => match client.check(navigation_without_session()).await {
                Ok(answer) => {
                    if let Some(decision) = answer.into_inner().http_response {
                        return decision;
                    }
                    last = "an answer without a decision".into();
                }
                Err(status) => last = format!("gRPC {:?}", status.code()),
            },
            Err(error) => last = error,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no Check decision over {socket:?} within {READY_BOUND:?}; last: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_is_served_on_a_unix_socket() {
    let idp = FakeIdp::start().await;
    let dir = std::env::temp_dir().join(format!("oidc-authz-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("grpc.sock");
    // A socket file left by a run that did not clean up: replaced, not an error.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("stale socket"));
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "issuer: {}\nclient_id: {}\nclient_secret: {}\nsession_secret: [{KEY_A}]\n\
             listen: unix:{}\nadmin_listen: 127.0.0.1:0\nshutdown_drain_period: 1\n",
            idp.issuer,
            idp::CLIENT_ID,
            idp::CLIENT_SECRET,
            socket.display()
        ),
    )
    .unwrap();

    let mut running = RunningBinary::start(&config);
    match first_decision(&socket).await {
        HttpResponse::DeniedResponse(denied) => {
            assert_eq!(denied.status.map(|s| s.code), Some(302), "a login starts");
            let location = denied
                .headers
                .iter()
                .filter_map(|option| option.header.as_ref())
                .find(|header| header.key.eq_ignore_ascii_case("location"))
                .map(|header| header.value.clone())
                .unwrap_or_default();
            assert!(location.starts_with(&idp.issuer), "to the IdP: {location}");
        }
        other => panic!("expected a redirect to the IdP, got {other:?}"),
    }

    running.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        matches!(
            first_decision(&socket).await,
            HttpResponse::DeniedResponse(_)
        ),
        "still answering Checks during the drain period"
    );
    let deadline = Instant::now() + EXIT_BOUND;
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running {EXIT_BOUND:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    assert!(!socket.exists(), "the socket file is removed on exit");
    let _ = std::fs::remove_dir_all(&dir);
}
