//! The ceiling of any ext_authz service: a tonic `envoy.service.auth.v3.Authorization/Check`
//! server that answers OK at once, with `grpc.health.v1` SERVING. `scripts/bench` puts it behind the
//! same Envoy filter config as oidc-authz; nothing oidc-authz does can be faster through Envoy.
//!
//! Given a token length, it answers OK the way oidc-authz's session path does, built by the same
//! code (`authz::check_response`): `Authorization: Bearer` and a token of that many bytes for the
//! upstream, and the request's `Cookie` removed. That is the ceiling of any service that injects a
//! bearer token: the bench tells Envoy's cost of applying such an answer from our own. Its
//! connections are oidc-authz's (`grpc_socket::UnvectoredWrites`), so such answers are batched
//! alike.
//!
//! Run: `cargo run --release --example always_ok -- 127.0.0.1:9293 [TOKEN_BYTES]`

use std::net::SocketAddr;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, OkHttpResponse};
use envoy_types::pb::google::rpc;
use oidc_authz::authz::check_response;
use oidc_authz::flow::{Decision, UpstreamHeader};
use oidc_authz::grpc_socket::UnvectoredWrites;
use oidc_authz::secret::Secret;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

/// Answers OK; with `bearer`, as the session path does.
struct AlwaysOk {
    bearer: Option<String>,
}

impl AlwaysOk {
    fn answer(&self) -> CheckResponse {
        let Some(bearer) = &self.bearer else {
            return CheckResponse {
                status: Some(rpc::Status::default()),
                http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
                ..Default::default()
            };
        };
        check_response(Decision::Allow {
            set_upstream_headers: vec![UpstreamHeader {
                name: "authorization".into(),
                value: Secret::new(format!("Bearer {bearer}")),
            }],
            remove_upstream_headers: vec!["cookie".into()],
            set_cookies: Vec::new(),
        })
    }
}

#[tonic::async_trait]
impl Authorization for AlwaysOk {
    async fn check(
        &self,
        _request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        Ok(Response::new(self.answer()))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: always_ok ADDRESS:PORT [TOKEN_BYTES]";
    let mut args = std::env::args().skip(1);
    let address: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let bearer = match args.next() {
        Some(bytes) => Some("t".repeat(bytes.parse::<usize>().map_err(|_| usage)?)),
        None => None,
    };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AuthorizationServer<AlwaysOk>>()
        .await;
    let listener = tokio::net::TcpListener::bind(address).await?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map(|accepted| accepted.map(UnvectoredWrites));
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(AuthorizationServer::new(AlwaysOk { bearer }))
        .serve_with_incoming_shutdown(incoming, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
