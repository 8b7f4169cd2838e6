//! Step 2: the IdP sends the browser back with `code` and `state` (query, or a form_post body).
//! The pending login is taken once, checked against this browser's login cookie, the code is
//! exchanged, the ID token validated, and a new session is created.

use super::cookies::{CookieJar, CookieKind};
use super::login::BINDING_LABEL;
use super::{Decision, Flow, RequestView};
use super::{lifetime, missing_claims};
use crate::crypto::cookie::{self, CookiePurpose};
use crate::crypto::{constant_time_eq, labelled_hash};
use crate::error::Error;
use crate::oidc::{IdTokenClaims, TokenSet};
use crate::secret::Secret;
use crate::session::{PendingLoginRecord, SessionId, SessionRecord};

/// Set by Envoy's ext_authz filter on a Check whose body it sent: `true` when the body was cut at
/// `max_request_bytes`.
const PARTIAL_BODY_HEADER: &str = "x-envoy-auth-partial-body";

/// The callback's parameters, from the query (GET) or the form body (POST).
#[derive(Default)]
struct CallbackParams {
    code: Option<Secret>,
    state: Option<String>,
    error: Option<String>,
}

fn parse_params(input: &[u8]) -> CallbackParams {
    let mut params = CallbackParams::default();
    for (name, value) in form_urlencoded::parse(input) {
        match name.as_ref() {
            "code" => params.code = Some(Secret::new(value.into_owned())),
            "state" => params.state = Some(value.into_owned()),
            "error" => params.error = Some(value.into_owned()),
            _ => {}
        }
    }
    params
}

/// What the IdP vouched for at the token endpoint: its tokens (the ID token taken out of them)
/// and the validated ID token's claims (with userinfo's merged in when configured).
struct RedeemedCode {
    tokens: TokenSet,
    id_token: Secret,
    claims: IdTokenClaims,
}

/// The callback's parameters: from the query of a GET, or the form body of a form_post POST.
fn callback_params(request: &RequestView) -> Result<CallbackParams, Error> {
    match request.method.as_str() {
        "GET" => Ok(parse_params(request.query.as_bytes())),
        "POST" => form_post_params(request),
        _ => Err(Error::MethodNotAllowed),
    }
}

fn form_post_params(request: &RequestView) -> Result<CallbackParams, Error> {
    let form = request
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(Error::CallbackIncomplete);
    }
    // Envoy cut the body at `max_request_bytes` (`allow_partial_message: true`): a
    // cut `code` or `state` is no login response at all.
    if request.header(PARTIAL_BODY_HEADER) == Some("true") {
        tracing::warn!(
            "form_post callback body was cut short by Envoy: raise max_request_bytes on this route"
        );
        return Err(Error::CallbackIncomplete);
    }
    if request.body.is_empty() {
        // The most common form_post misconfiguration, worth a precise line.
        tracing::warn!(
            path = %request.path,
            "form_post callback arrived without a body: enable with_request_body on this route in Envoy's ext_authz per-route settings"
        );
    }
    Ok(parse_params(&request.body))
}

/// An OAuth error code is a short token of [A-Za-z0-9_]; anything else is not logged.
fn sanitized_error_code(error: &str) -> String {
    error
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

impl Flow {
    pub(super) async fn finish_login(
        &self,
        request: &RequestView,
        jar: &CookieJar<'_>,
    ) -> Result<Decision, Error> {
        let params = callback_params(request)?;
        if let Some(error) = params.error {
            self.end_refused_login(params.state.as_deref()).await?;
            return Err(Error::IdpRefusedLogin {
                error: sanitized_error_code(&error),
            });
        }
        let (Some(state), Some(code)) = (params.state, params.code) else {
            return Err(Error::CallbackIncomplete);
        };
        let pending = self
            .sessions
            .take_pending(&state)
            .await?
            .ok_or(Error::UnknownLoginState)?;
        let status = if request.method == "POST" { 303 } else { 302 };

        if !self.started_in_this_browser(request, jar, &pending) {
            // A browser that already has a session (say, a second tab finishing after the first)
            // just goes where it wanted; no code is exchanged, so a planted login cannot land.
            if self.has_session(request, jar).await? {
                return Ok(Decision::Redirect {
                    status,
                    location: pending.original_url,
                    set_cookies: Vec::new(),
                });
            }
            return Err(Error::LoginFromAnotherBrowser);
        }

        let redeemed = self.redeem_code(&code, &pending).await?;
        let id = self.create_session(redeemed).await?;
        let cookie_value = cookie::sign(&self.keys, CookiePurpose::Session, &id.0);
        Ok(Decision::Redirect {
            status,
            location: pending.original_url,
            set_cookies: vec![
                jar.set(
                    CookieKind::Session,
                    &cookie_value,
                    self.config.session_absolute_timeout,
                ),
                jar.clear(CookieKind::Login),
            ],
        })
    }

    /// The IdP answered with an error: the login is over either way, so its state is taken and
    /// cannot be used again.
    async fn end_refused_login(&self, state: Option<&str>) -> Result<(), Error> {
        if let Some(state) = state {
            self.sessions.take_pending(state).await?;
        }
        Ok(())
    }

    /// Exchanges the code (with the login's PKCE verifier), validates the ID token against the
    /// login's nonce, and merges userinfo's claims when configured.
    async fn redeem_code(
        &self,
        code: &Secret,
        pending: &PendingLoginRecord,
    ) -> Result<RedeemedCode, Error> {
        let verifier =
            (!pending.pkce_verifier.is_empty()).then_some(pending.pkce_verifier.as_str());
        let mut tokens = self
            .provider
            .exchange_code(code, &pending.redirect_uri, verifier)
            .await
            .map_err(Error::CodeExchange)?;
        let id_token = tokens.id_token.take().ok_or(Error::MissingIdToken)?;
        let mut claims = self
            .provider
            .verify_id_token(&id_token, Some(&pending.nonce), Some(&tokens.access_token))
            .await
            .map_err(Error::InvalidIdToken)?;
        if self.config.userinfo {
            let userinfo = self
                .provider
                .userinfo(&tokens.access_token, &claims.subject)
                .await
                .map_err(Error::Userinfo)?;
            crate::oidc::userinfo::merge(&mut claims.claims, userinfo);
        }
        Ok(RedeemedCode {
            tokens,
            id_token,
            claims,
        })
    }

    /// Stores a new session for what the IdP vouched for; returns its id for the cookie.
    async fn create_session(&self, redeemed: RedeemedCode) -> Result<SessionId, Error> {
        let now = self.clock.now_unix();
        let record = self.session_record(redeemed, now);
        let configured: Vec<(String, String)> = self
            .config
            .policies
            .iter()
            .flat_map(|policy| policy.upstream.claims.iter().cloned())
            .collect();
        missing_claims::warn_once_per_missing_claim(&configured, &record.claims);
        let id = SessionId::random()?;
        self.sessions
            .create(
                &id,
                &record,
                lifetime::store_ttl(&record, now, &self.config),
                self.config.session_absolute_timeout,
            )
            .await?;
        tracing::info!(subject = %record.subject, "login completed, session created");
        self.metrics.record_login();
        Ok(id)
    }

    fn session_record(&self, redeemed: RedeemedCode, now: i64) -> SessionRecord {
        let RedeemedCode {
            tokens,
            id_token,
            claims,
        } = redeemed;
        SessionRecord {
            subject: claims.subject,
            idp_session_id: claims.idp_session_id.unwrap_or_default(),
            access_token: tokens.access_token.expose().to_owned(),
            id_token: id_token.expose().to_owned(),
            refresh_token: tokens
                .refresh_token
                .map(|t| t.expose().to_owned())
                .unwrap_or_default(),
            access_token_expires_at: tokens.expires_in.map_or(0, |s| now + s as i64),
            created_at: now,
            last_active_at: now,
            claims: super::upstream::header_claims(&self.config, &claims.claims),
            claims_json: super::upstream::claims_json(&claims.claims),
        }
    }

    fn started_in_this_browser(
        &self,
        request: &RequestView,
        jar: &CookieJar<'_>,
        pending: &PendingLoginRecord,
    ) -> bool {
        jar.values(request, CookieKind::Login)
            .into_iter()
            .filter_map(|value| cookie::verify(&self.keys, CookiePurpose::Login, value))
            .any(|verified| {
                constant_time_eq(
                    &labelled_hash(BINDING_LABEL, &verified.id),
                    &pending.browser_binding_hash,
                )
            })
    }
}
