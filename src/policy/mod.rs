//! Policies: who may pass on a route. A policy names the ways a request may authenticate
//! (`auth_methods`), whether identity is optional (`anonymous`), the rules an authenticated
//! identity must meet (`rules`), and the headers the upstream gets. Envoy names the policy per
//! route (`context_extensions: { policy: NAME }`, read by `authz`); no name means `default`, an
//! unknown one is an error (fail closed). Configuration is read in `config/policies.rs`; this
//! module holds the validated model and its pure evaluation, and knows nothing of Envoy or IO.

pub mod claim_path;
pub mod rules;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use claim_path::ClaimPath;
pub use rules::{RuleFailure, Rules};

use crate::config::UpstreamHeader;

/// The policy used when a route names none.
pub const DEFAULT_POLICY: &str = "default";
/// The provider a policy without `provider:` uses: the top-level IdP keys.
pub use crate::config::DEFAULT_PROVIDER;

/// How a request may prove who it is (Kong's `auth_methods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthMethods {
    /// A browser without a session is sent to the IdP to log in.
    pub authorization_code: bool,
    /// A session cookie authenticates.
    pub session: bool,
    /// A JWT access token in `Authorization: Bearer`, validated locally (JWKS).
    pub bearer: bool,
    /// An opaque token in `Authorization: Bearer`, asked about at the IdP (RFC 7662).
    pub introspection: bool,
}

impl AuthMethods {
    /// Whether an `Authorization: Bearer` token is looked at.
    pub fn takes_tokens(&self) -> bool {
        self.bearer || self.introspection
    }
}

/// What the upstream gets on an allowed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamHeaders {
    /// `upstream_access_token_header`: the session's access token (or the bearer token itself).
    pub access_token: Option<UpstreamHeader>,
    /// `upstream_id_token_header`: the session's ID token.
    pub id_token: Option<UpstreamHeader>,
    /// `upstream_headers_claims`/`_names`: (top-level claim name, lower-case header name).
    pub claims: Vec<(String, String)>,
}

/// One named policy, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub auth_methods: AuthMethods,
    /// No credentials is fine: the request passes without identity headers (which are removed).
    pub anonymous: bool,
    pub rules: Rules,
    pub upstream: UpstreamHeaders,
    /// The IdP client this policy authenticates with (`provider:`).
    pub provider: String,
}

/// Every configured policy by name; `default` is always there.
#[derive(Debug, Clone)]
pub struct Policies {
    by_name: BTreeMap<String, Arc<Policy>>,
}

/// Envoy named a policy we do not have: a configuration mismatch between Envoy and us.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the route names policy {0:?}, which is not configured (policies: ...)")]
pub struct UnknownPolicy(pub String);

/// Longest policy name quoted in an error (route configuration, but bounded all the same).
const MAX_QUOTED_NAME: usize = 64;

impl Policies {
    /// `policies` must hold `default`.
    pub fn new(policies: Vec<Policy>) -> Policies {
        let by_name: BTreeMap<String, Arc<Policy>> = policies
            .into_iter()
            .map(|policy| (policy.name.clone(), Arc::new(policy)))
            .collect();
        assert!(
            by_name.contains_key(DEFAULT_POLICY),
            "config validation always makes a default policy"
        );
        Policies { by_name }
    }

    pub fn default_policy(&self) -> &Arc<Policy> {
        &self.by_name[DEFAULT_POLICY]
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Policy>> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Policy>> {
        self.by_name.values()
    }

    /// The policy a route names (`None`: the route names none, so `default`).
    pub fn select(&self, name: Option<&str>) -> Result<&Arc<Policy>, UnknownPolicy> {
        let Some(name) = name else {
            return Ok(self.default_policy());
        };
        self.by_name
            .get(name)
            .ok_or_else(|| UnknownPolicy(name.chars().take(MAX_QUOTED_NAME).collect()))
    }
}
