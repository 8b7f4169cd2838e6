//! The Envoy adapter, and the only module that knows Envoy's protos: it implements
//! `envoy.service.auth.v3.Authorization/Check` by translating `CheckRequest → RequestView`,
//! asking the flow, and translating `Decision`/`Error → CheckResponse` (or a gRPC error when we
//! could not decide, so Envoy's `status_on_error` applies).

mod request;
mod response;

/// Public for the fuzz crate (`fuzz/`): the translation parses whatever Envoy forwards.
pub use request::request_view;

use std::sync::Arc;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use tonic::{Request, Response, Status};

use crate::error::Answer;
use crate::flow::{Decision, Flow};
use crate::metrics::CheckOutcome;

pub use envoy_types::pb::envoy::service::auth::v3::authorization_server::AuthorizationServer;

pub struct AuthzService {
    flow: Arc<Flow>,
    trust_forwarded_headers: bool,
}

impl AuthzService {
    pub fn new(flow: Arc<Flow>, trust_forwarded_headers: bool) -> Self {
        AuthzService {
            flow,
            trust_forwarded_headers,
        }
    }
}

#[tonic::async_trait]
impl Authorization for AuthzService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let started = std::time::Instant::now();
        let view = request::request_view(request.into_inner(), self.trust_forwarded_headers);
        let metrics = self.flow.metrics();
        let decision = match self.flow.check(&view).await {
            Ok(decision) => decision,
            Err(error) => match error.answer() {
                Answer::Deny { status, message } => {
                    tracing::warn!(method = %view.method, path = %view.path, %error, status, "request refused");
                    Decision::Deny {
                        status,
                        message: message.to_owned(),
                        headers: Vec::new(),
                        set_cookies: Vec::new(),
                    }
                }
                Answer::CouldNotDecide => {
                    tracing::error!(method = %view.method, path = %view.path, %error, "could not decide; failing closed");
                    metrics.record_check(CheckOutcome::Error, started.elapsed());
                    // No detail for the client: Envoy answers with its status_on_error.
                    return Err(Status::unavailable("oidc-authz could not decide"));
                }
            },
        };
        let outcome = match &decision {
            Decision::Allow { .. } => CheckOutcome::Allow,
            Decision::Redirect { .. } => CheckOutcome::Redirect,
            Decision::Deny { .. } | Decision::ConfirmLogout { .. } | Decision::Forbidden(_) => {
                CheckOutcome::Deny
            }
        };
        metrics.record_check(outcome, started.elapsed());
        Ok(Response::new(response::check_response(decision)))
    }
}
