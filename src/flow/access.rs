//! Step 4: who may pass, by the route's policy. A bearer token (when the policy takes tokens and
//! the request carries one) or the session cookie (when it takes sessions) authenticates; the
//! identity must meet the policy's rules (else 403, never a new login); without one the request
//! passes anonymously (`anonymous`), is sent to log in (`authorization_code`, browsers only), or
//! gets 401. Browsers never get a bearer challenge; API clients never get a redirect.

use serde_json::{Map, Value};

use super::cookies::CookieJar;
use super::session::SessionCheck;
use super::upstream::{self, Identity};
use super::{Decision, Flow, Forbidden, RequestView};
use crate::error::Error;
use crate::oidc::AccessTokenError;
use crate::policy::{Policy, RuleFailure};
use crate::secret::Secret;

/// `WWW-Authenticate` for an API client that sent no credentials (RFC 6750 section 3: no error
/// code when the request had none).
const CHALLENGE: &str = "Bearer realm=\"oidc-authz\"";
const INVALID_TOKEN_CHALLENGE: &str = "Bearer realm=\"oidc-authz\", error=\"invalid_token\"";

impl Flow {
    pub(super) async fn authorize(
        &self,
        request: &RequestView,
        jar: &CookieJar<'_>,
        policy: &Policy,
    ) -> Result<Decision, Error> {
        if policy.auth_methods.takes_tokens()
            && let Some(token) = request.bearer_token()
        {
            return self.check_bearer(request, jar, policy, token).await;
        }
        let mut set_cookies = Vec::new();
        if policy.auth_methods.session {
            match self.current_session(request, jar).await? {
                SessionCheck::Valid {
                    record,
                    set_cookies,
                } => {
                    let needs_claims =
                        !policy.rules.is_empty() || !policy.upstream.claims.is_empty();
                    let claims = if needs_claims {
                        upstream::session_claims(&record)
                    } else {
                        Map::new()
                    };
                    if let Err(failure) = policy.rules.check(&claims) {
                        return Ok(self.forbidden(request, policy, &claims, failure, set_cookies));
                    }
                    let identity = Identity::Session {
                        record: &record,
                        claims: &claims,
                    };
                    return Ok(upstream::allow(request, jar, policy, identity, set_cookies));
                }
                SessionCheck::Missing { set_cookies: clear } => set_cookies = clear,
            }
        }
        if policy.anonymous {
            return Ok(upstream::allow(
                request,
                jar,
                policy,
                Identity::Anonymous,
                set_cookies,
            ));
        }
        if policy.auth_methods.authorization_code {
            return self.start_login(request, jar, set_cookies).await;
        }
        Ok(authentication_required(request, set_cookies))
    }

    /// An access token: a JWT checked against the IdP's keys (`bearer`), or an opaque one asked
    /// about at the IdP (`introspection`); then the policy's rules on its claims. A
    /// token for another audience is not a valid token here (401); one lacking a scope, group or
    /// role is valid but insufficient (403).
    async fn check_bearer(
        &self,
        request: &RequestView,
        jar: &CookieJar<'_>,
        policy: &Policy,
        token: &str,
    ) -> Result<Decision, Error> {
        let secret = Secret::new(token);
        // A JWT is checked locally when the policy takes them; anything else (or a JWT on an
        // introspection-only route) is asked about at the IdP.
        let looks_like_jwt = token.split('.').count() == 3;
        let verified = if policy.auth_methods.bearer
            && (looks_like_jwt || !policy.auth_methods.introspection)
        {
            self.provider.verify_access_token(&secret).await
        } else {
            self.provider.introspect(&secret).await
        };
        let claims = match verified {
            Ok(claims) => claims,
            Err(AccessTokenError::ProviderNotReady) => return Err(Error::ProviderNotReady),
            Err(AccessTokenError::IntrospectionUnavailable(reason)) => {
                return Err(Error::IntrospectionUnavailable(reason));
            }
            Err(error) => {
                tracing::info!(policy = %policy.name, %error, "bearer token refused");
                return Ok(invalid_token());
            }
        };
        match policy.rules.check(&claims) {
            Ok(()) => {
                let identity = Identity::Bearer {
                    token,
                    claims: &claims,
                };
                Ok(upstream::allow(request, jar, policy, identity, Vec::new()))
            }
            Err(RuleFailure::Audience) => {
                tracing::info!(policy = %policy.name, "bearer token is for another audience");
                Ok(invalid_token())
            }
            Err(failure) => {
                let mut forbidden = self.forbidden(request, policy, &claims, failure, Vec::new());
                if let Decision::Forbidden(details) = &mut forbidden {
                    details.for_browser = false;
                }
                Ok(forbidden)
            }
        }
    }

    /// 403 for an authenticated identity the rules refuse: a page for a person, JSON with an
    /// `insufficient_scope` challenge for a script. Never a login: logging in again would not
    /// change the claims.
    fn forbidden(
        &self,
        request: &RequestView,
        policy: &Policy,
        claims: &Map<String, Value>,
        failure: RuleFailure,
        set_cookies: Vec<String>,
    ) -> Decision {
        let subject = claims.get("sub").and_then(Value::as_str).unwrap_or("");
        tracing::info!(policy = %policy.name, subject, reason = %failure, "not allowed by the policy");
        Decision::Forbidden(Forbidden {
            signed_in_as: signed_in_as(claims),
            // A link is a GET: offered only when the logout path answers one.
            logout_path: self
                .config
                .logout_path
                .clone()
                .filter(|_| self.config.logout_methods.iter().any(|m| m == "GET")),
            for_browser: request.is_browser_navigation(),
            set_cookies,
        })
    }
}

/// How a person is named on the 403 page: `email`, `preferred_username`, `name`, else `sub`.
fn signed_in_as(claims: &Map<String, Value>) -> String {
    const MAX_CHARS: usize = 200;
    ["email", "preferred_username", "name", "sub"]
        .iter()
        .find_map(|claim| claims.get(*claim).and_then(Value::as_str))
        .filter(|name| !name.is_empty())
        .unwrap_or("an unnamed user")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_CHARS)
        .collect()
}

fn invalid_token() -> Decision {
    Decision::Deny {
        status: 401,
        message: "The access token is not valid.".into(),
        headers: vec![("www-authenticate".into(), INVALID_TOKEN_CHALLENGE.into())],
        set_cookies: Vec::new(),
    }
}

/// 401 without credentials on a route that does not send anyone to log in: a challenge for API
/// clients, a plain page for a person's browser (a bearer challenge means nothing to it).
fn authentication_required(request: &RequestView, set_cookies: Vec<String>) -> Decision {
    let headers = if request.is_browser_navigation() {
        Vec::new()
    } else {
        vec![("www-authenticate".into(), CHALLENGE.into())]
    };
    Decision::Deny {
        status: 401,
        message: "Authentication required.".into(),
        headers,
        set_cookies,
    }
}
