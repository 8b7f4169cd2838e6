//! The Envoy adapter, and the only module that knows Envoy's protos: it implements
//! `envoy.service.auth.v3.Authorization/Check` by translating `CheckRequest → RequestView`,
//! asking the flow, and translating `Decision`/`Error → CheckResponse` (or a gRPC error when we
//! could not decide, so Envoy's `status_on_error` applies).

mod request;
mod response;

/// Public for the fuzz crate (`fuzz/`): the translation parses whatever Envoy forwards.
pub use request::request_view;
/// Public for `examples/always_ok.rs`, which answers as the session path does (`scripts/bench`).
pub use response::check_response;

use std::sync::Arc;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::error::{Answer, Error, FailureCause};
use crate::flow::{Decision, RequestView};
use crate::gateway::{Gateway, Route};
use crate::log_limit::RateLimitedLog;
use crate::metrics::CheckOutcome;
use crate::telemetry::CheckTelemetry;

pub use envoy_types::pb::envoy::service::auth::v3::authorization_server::AuthorizationServer;

pub struct AuthzService {
    gateway: Arc<Gateway>,
    trust_forwarded_headers: bool,
    /// "Could not decide" lines, at most one a second per cause (`FailureCause::ALL` order): an
    /// outage fails every Check.
    failure_logs: [RateLimitedLog; 3],
}

impl AuthzService {
    pub fn new(gateway: Arc<Gateway>, trust_forwarded_headers: bool) -> Self {
        AuthzService {
            gateway,
            trust_forwarded_headers,
            failure_logs: Default::default(),
        }
    }
}

/// Counts a Check whose future was dropped before it was decided: the caller (Envoy's ext_authz
/// timeout, a client gone) gave up. A refresh it started goes on in its own task.
struct CancelledIfDropped<'a> {
    metrics: &'a crate::metrics::Metrics,
    decided: bool,
}

impl Drop for CancelledIfDropped<'_> {
    fn drop(&mut self) {
        if !self.decided {
            self.metrics.record_check_cancelled();
        }
    }
}

impl AuthzService {
    fn failure_log(&self, cause: FailureCause) -> &RateLimitedLog {
        match cause {
            FailureCause::Store => &self.failure_logs[0],
            FailureCause::Idp => &self.failure_logs[1],
            FailureCause::Other => &self.failure_logs[2],
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
        let (metadata, _, check) = request.into_parts();
        let view = request::request_view(check, self.trust_forwarded_headers);
        let routes = self.gateway.routes();
        let route = routes.route(&view);
        let labels = route.as_ref().map(Route::labels).unwrap_or_default();
        // One span per Check, continuing the caller's trace; its fields are on every log line.
        let telemetry = crate::telemetry::check_telemetry(&view, &metadata, labels);
        let decide = self.decide(view, route, started);
        match telemetry {
            CheckTelemetry::Span(span) => decide.instrument(span).await,
            CheckTelemetry::Deferred(check) => check.run(decide).await,
        }
    }
}

impl AuthzService {
    async fn decide(
        &self,
        view: RequestView,
        route: Result<Route<'_>, Error>,
        started: std::time::Instant,
    ) -> Result<Response<CheckResponse>, Status> {
        let metrics = self.gateway.metrics();
        let mut in_flight = CancelledIfDropped {
            metrics,
            decided: false,
        };
        let decided = match route {
            Ok(route) => route.check(&view).await,
            Err(error) => Err(error),
        };
        let decision = match decided {
            Ok(decision) => decision,
            Err(error) => match error.answer() {
                Answer::Deny { status, message } => {
                    // The reason is ours (the error's text); the path and method are the
                    // client's and stay out (the span has the checked method).
                    tracing::warn!(%error, status, "request refused");
                    Decision::Deny {
                        status,
                        message: message.to_owned(),
                        headers: Vec::new(),
                        set_cookies: Vec::new(),
                    }
                }
                Answer::CouldNotDecide => {
                    in_flight.decided = true;
                    let cause = error.cause();
                    metrics.record_check_failure(cause);
                    if let Some(suppressed) = self.failure_log(cause).admit() {
                        tracing::error!(cause = cause.label(), %error, suppressed, "could not decide; failing closed");
                    }
                    metrics.record_check(CheckOutcome::Error, started.elapsed());
                    crate::telemetry::record_decision("error");
                    // No detail for the client: Envoy answers with its status_on_error.
                    return Err(Status::unavailable("oidc-authz could not decide"));
                }
            },
        };
        in_flight.decided = true;
        let (outcome, label) = match &decision {
            Decision::Allow { .. } => (CheckOutcome::Allow, "allow"),
            Decision::Redirect { .. } => (CheckOutcome::Redirect, "redirect"),
            Decision::Deny { .. } | Decision::ConfirmLogout { .. } | Decision::Forbidden(_) => {
                (CheckOutcome::Deny, "deny")
            }
        };
        crate::telemetry::record_decision(label);
        metrics.record_check(outcome, started.elapsed());
        Ok(Response::new(response::check_response(decision)))
    }
}
