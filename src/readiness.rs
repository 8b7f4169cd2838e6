//! Whether this process should be sent Checks, told the same way to Envoy (`grpc.health.v1`, for
//! the authz cluster's health checks) and to Kubernetes (`/readyz`): NOT_SERVING until the IdP has
//! been discovered, SERVING after, and NOT_SERVING again from the moment shutdown begins (the
//! process still answers Checks while it drains; see `server::run`). Knows nothing of Checks.

use std::sync::atomic::{AtomicBool, Ordering};

use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::authz::{AuthorizationServer, AuthzService};

/// The overall server's name in `grpc.health.v1` (empty, per the gRPC health checking protocol).
const OVERALL: &str = "";

/// The health statuses and the draining flag; one per process, shared by gRPC and admin.
pub struct Readiness {
    health: HealthReporter,
    /// Set once, never cleared: a draining process never becomes ready again.
    draining: AtomicBool,
    /// Held while statuses are written, so a `mark_discovered` racing `start_draining` cannot
    /// write SERVING after draining wrote NOT_SERVING. tokio's: held across the reporter's await.
    publishing: tokio::sync::Mutex<()>,
}

impl Readiness {
    /// Starts NOT_SERVING (overall and for the Authorization service).
    pub async fn new(health: HealthReporter) -> Readiness {
        let readiness = Readiness {
            health,
            draining: AtomicBool::new(false),
            publishing: tokio::sync::Mutex::new(()),
        };
        readiness.publish(ServingStatus::NotServing).await;
        readiness
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The IdP was discovered: SERVING, unless shutdown has begun.
    pub async fn mark_discovered(&self) {
        self.publish(ServingStatus::Serving).await;
    }

    /// Shutdown began: NOT_SERVING from now on, whatever else happens.
    pub async fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.publish(ServingStatus::NotServing).await;
    }

    async fn publish(&self, status: ServingStatus) {
        let _publishing = self.publishing.lock().await;
        let status = if self.is_draining() {
            ServingStatus::NotServing
        } else {
            status
        };
        for service in [
            OVERALL,
            <AuthorizationServer<AuthzService> as NamedService>::NAME,
        ] {
            self.health.set_service_status(service, status).await;
        }
    }
}
