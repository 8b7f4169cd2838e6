//! The ceiling of any ext_authz service: a tonic `envoy.service.auth.v3.Authorization/Check`
//! server that answers OK at once, with `grpc.health.v1` SERVING. `scripts/bench` puts it behind the
//! same Envoy filter config as oidc-authz; nothing oidc-authz does can be faster through Envoy.
//!
//! Run: `cargo run --release --example always_ok -- 127.0.0.1:9293`

use std::net::SocketAddr;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, OkHttpResponse};
use envoy_types::pb::google::rpc;
use tonic::{Request, Response, Status};

struct AlwaysOk;

#[tonic::async_trait]
impl Authorization for AlwaysOk {
    async fn check(
        &self,
        _request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        Ok(Response::new(CheckResponse {
            status: Some(rpc::Status::default()),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
            ..Default::default()
        }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address: SocketAddr = std::env::args()
        .nth(1)
        .ok_or("usage: always_ok ADDRESS:PORT")?
        .parse()?;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AuthorizationServer<AlwaysOk>>()
        .await;
    let listener = tokio::net::TcpListener::bind(address).await?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(AuthorizationServer::new(AlwaysOk))
        .serve_with_incoming_shutdown(incoming, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
