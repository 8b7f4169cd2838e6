//! # oidc-authz
//!
//! OpenID Connect login for applications behind Envoy. Envoy's `ext_authz` filter asks us about
//! every request over gRPC (`envoy.service.auth.v3.Authorization/Check`); we answer with a redirect
//! to the IdP, finish the login at the callback, or let the request through with the session's
//! access token injected as `Authorization: Bearer`.
//!
//! # Layout
//! - [`authz`]: the only module that knows Envoy's protos (`CheckRequest → RequestView`,
//!   `Decision → CheckResponse`).
//! - [`gateway`]: one flow per provider (`providers:`), and which flow decides a request.
//! - [`flow`]: the decision tree (login, callback, session check, refresh, logout), IO behind traits.
//! - [`oidc`]: discovery, JWKS, ID-token and logout-token validation, the token endpoint.
//! - [`policy`]: named policies (auth methods, rules on claims), chosen per route by Envoy.
//! - [`session`]: session and pending-login records, sealed, over a narrow byte store (memory, Redis).
//! - [`crypto`]: cookie MACs, record sealing, randomness; the only holder of key bytes.
//! - [`config`], [`error`] (every failure mapped to an answer in one place), [`admin`]
//!   (health, readiness, [`metrics`]), [`readiness`] (gRPC health and `/readyz`: discovered,
//!   draining), [`telemetry`], [`log_limit`] (one line per second per error kind), [`server`]
//!   (wiring, `run`, drain on shutdown), [`reload`] (SIGHUP: a validated config swapped in, or
//!   refused).
#![forbid(unsafe_code)]

pub mod admin;
pub mod authz;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
pub mod flow;
pub mod gateway;
pub mod grpc_socket;
pub mod log_limit;
pub mod metrics;
pub mod oidc;
pub mod policy;
pub mod readiness;
pub mod reload;
pub mod secret;
pub mod server;
pub mod session;
pub mod telemetry;
