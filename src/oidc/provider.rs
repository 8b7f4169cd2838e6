//! `Provider`: the real `IdentityProvider`, on the openidconnect crate's client. Discovery and the
//! first JWKS fetch run in the background with backoff (capped at 5 s, and cut short, at most once
//! a second, when a login needs the IdP) until they succeed; until then `metadata()` is `None`,
//! `not_ready_reason()` says why, and the flow answers "could not decide". All IdP traffic goes through
//! `IdpHttpClient` (no redirects followed, so no SSRF via the IdP; bodies size-capped).

use std::borrow::Cow;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::Algorithm;
use openidconnect::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, IssuerUrl,
    JsonWebKeySet, PkceCodeVerifier, RedirectUrl, RefreshToken, TokenUrl,
};
use url::Url;

use super::access_token::{self, AccessTokenError};
use super::discovery::{self, DiscoveryError, ProviderMetadata};
use super::http::{HttpError, IdpHttpClient, JsonDocument};
use super::id_token::{self, Expectations, IdTokenClaims, IdTokenError};
use super::introspection::{self, Introspected, IntrospectionCache};
use super::jwks::{self, FetchedKeys, JwksCache, JwksError};

/// JWKS fetches failed in a row before discovery is run again.
const REDISCOVER_AFTER_FAILURES: u32 = 3;
const REDISCOVERY_INTERVAL: Duration = Duration::from_secs(30);
/// The first wait after a failed discovery; it doubles up to `DISCOVERY_BACKOFF_CAP`.
const DISCOVERY_FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between discovery attempts: an IdP back from an outage is found within this
/// (plus one request), without a login having to ask.
pub const DISCOVERY_BACKOFF_CAP: Duration = Duration::from_secs(5);
/// Attempts asked for by logins (`discovery_wanted`) start at most this often.
pub const DISCOVERY_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The wait after `current` when discovery failed again.
pub fn next_discovery_backoff(current: Duration) -> Duration {
    (current * 2).min(DISCOVERY_BACKOFF_CAP)
}
use super::logout_token::{self, LogoutClaims, LogoutTokenError, RawLogoutClaims};
use super::token::{self, RelyingPartyClient, TokenError, TokenSet};
use super::userinfo::{self, UserinfoError};
use super::{IdentityProvider, at_hash};
use crate::clock::Clock;
use crate::config::ClientAuth;
use crate::metrics::{IdpEndpoint, IdpMetrics};
use crate::secret::Secret;

/// What discovery produced; swapped in whole once it succeeds.
struct Discovered {
    metadata: Arc<ProviderMetadata>,
    jwks: JwksCache,
    client: RelyingPartyClient,
}

/// Client credentials, as configured.
#[derive(PartialEq)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: Secret,
    pub auth: ClientAuth,
}

/// Why discovery (or the provider's setup) failed; logged, then retried.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    #[error("GET {url}: {error}")]
    Fetch { url: String, error: HttpError },
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error(transparent)]
    Jwks(#[from] JwksError),
}

pub struct Provider {
    issuer: Url,
    client: ClientCredentials,
    allowed_algorithms: Vec<Algorithm>,
    leeway_seconds: i64,
    http: IdpHttpClient,
    clock: Arc<dyn Clock>,
    discovered: RwLock<Option<Arc<Discovered>>>,
    /// Answers of the introspection endpoint, by token hash.
    introspection_cache: IntrospectionCache,
    /// When discovery was last re-run because the key set could not be fetched.
    last_rediscovery: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// Woken by a login that found the IdP undiscovered: the discovery loop retries at once
    /// (at most once per `DISCOVERY_MIN_INTERVAL`). A permit is kept if nobody waits yet.
    discovery_wanted: tokio::sync::Notify,
    /// Why the last discovery attempt failed, for `/readyz`; `None` before the first one ends.
    last_discovery_error: std::sync::Mutex<Option<String>>,
    /// Latency and outcome of every request to the IdP, JWKS refetches.
    metrics: IdpMetrics,
}

/// Equal settings make an equal client: a reload keeps the `Provider` (and its discovery) then.
#[derive(PartialEq)]
pub struct ProviderSettings {
    pub issuer: Url,
    pub client: ClientCredentials,
    pub allowed_algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    pub http_timeout: Duration,
    pub ca_pem: Option<String>,
    /// How long an introspection answer is reused at most (0: never).
    pub introspection_cache_ttl: Duration,
}

impl ProviderSettings {
    pub fn from_config(config: &crate::config::Config) -> Self {
        ProviderSettings {
            issuer: config.issuer.clone(),
            client: ClientCredentials {
                client_id: config.client_id.clone(),
                client_secret: config.client_secret.clone(),
                auth: config.client_auth,
            },
            allowed_algorithms: config.id_token_signing_algs.clone(),
            leeway: config.leeway,
            http_timeout: config.http_timeout,
            ca_pem: config.idp_ca_pem.clone(),
            introspection_cache_ttl: config.introspection_cache_ttl,
        }
    }
}

impl Provider {
    pub fn new(
        settings: ProviderSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, ProviderError> {
        let http = IdpHttpClient::new(settings.http_timeout, settings.ca_pem.as_deref())
            .map_err(|error| ProviderError::HttpClient(error.to_string()))?;
        Ok(Arc::new(Provider {
            issuer: settings.issuer,
            client: settings.client,
            allowed_algorithms: settings.allowed_algorithms,
            leeway_seconds: settings.leeway.as_secs() as i64,
            http,
            clock,
            discovered: RwLock::new(None),
            introspection_cache: IntrospectionCache::new(
                settings.introspection_cache_ttl.as_secs() as i64,
                introspection::MAX_CACHED_ANSWERS,
            ),
            last_rediscovery: std::sync::Mutex::new(None),
            discovery_wanted: tokio::sync::Notify::new(),
            last_discovery_error: std::sync::Mutex::new(None),
            metrics: IdpMetrics::default(),
        }))
    }

    /// Runs discovery until it succeeds, backing off from 1 s to `DISCOVERY_BACKOFF_CAP` between
    /// attempts; a login asking for the IdP (`discovery_wanted`) cuts the wait short, but no two
    /// attempts start less than `DISCOVERY_MIN_INTERVAL` apart.
    pub fn spawn_discovery(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let provider = Arc::clone(self);
        tokio::spawn(async move {
            let mut backoff = DISCOVERY_FIRST_BACKOFF;
            loop {
                let started = tokio::time::Instant::now();
                match provider.discover().await {
                    Ok(()) => {
                        tracing::info!(issuer = %provider.issuer, "OpenID Provider discovered");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(issuer = %provider.issuer, %error, retry_in = ?backoff, "OpenID Provider discovery failed");
                        *provider
                            .last_discovery_error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = provider.discovery_wanted.notified() => {
                        tokio::time::sleep_until(started + DISCOVERY_MIN_INTERVAL).await;
                    }
                }
                backoff = next_discovery_backoff(backoff);
            }
        })
    }

    /// One discovery attempt: the discovery document, then the JWKS.
    #[tracing::instrument(skip_all, name = "idp.discovery", fields(otel.kind = "client"))]
    pub async fn discover(&self) -> Result<(), ProviderError> {
        let url = discovery::discovery_url(&self.issuer)?;
        let body = self
            .metrics
            .time(IdpEndpoint::Discovery, self.get(&url))
            .await?
            .body;
        let metadata = discovery::parse(&self.issuer, &body)?;
        let keys = self.fetch_jwks(metadata.jwks_uri()).await?;
        let discovered = Discovered {
            client: self.relying_party(&metadata)?,
            metadata: Arc::new(metadata),
            jwks: JwksCache::new(keys),
        };
        *self.discovered.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(discovered));
        Ok(())
    }

    /// The crate's client for this IdP: our credentials and client authentication method, the
    /// discovered endpoints.
    fn relying_party(
        &self,
        metadata: &ProviderMetadata,
    ) -> Result<RelyingPartyClient, ProviderError> {
        let issuer = IssuerUrl::new(metadata.issuer().to_owned())
            .map_err(|error| DiscoveryError::Invalid(error.to_string()))?;
        let auth_type = match self.client.auth {
            ClientAuth::ClientSecretBasic => AuthType::BasicAuth,
            ClientAuth::ClientSecretPost => AuthType::RequestBody,
        };
        Ok(RelyingPartyClient::<EndpointNotSet, EndpointNotSet>::new(
            ClientId::new(self.client.client_id.clone()),
            issuer,
            JsonWebKeySet::default(),
        )
        .set_client_secret(ClientSecret::new(
            self.client.client_secret.expose().to_owned(),
        ))
        .set_auth_type(auth_type)
        .set_auth_uri(AuthUrl::from_url(metadata.authorization_endpoint().clone()))
        .set_token_uri(TokenUrl::from_url(metadata.token_endpoint().clone())))
    }

    async fn get(&self, url: &Url) -> Result<JsonDocument, ProviderError> {
        self.http
            .get_json(url)
            .await
            .map_err(|error| ProviderError::Fetch {
                url: url.to_string(),
                error,
            })
    }

    #[tracing::instrument(skip_all, name = "idp.jwks", fields(otel.kind = "client"))]
    async fn fetch_jwks(&self, uri: &Url) -> Result<FetchedKeys, ProviderError> {
        let document = self.metrics.time(IdpEndpoint::Jwks, self.get(uri)).await?;
        Ok(FetchedKeys {
            keys: jwks::parse_key_set(&document.body)?,
            max_age: document.cache_control.as_deref().and_then(jwks::max_age),
        })
    }

    /// The same fetch, counted as a refetch, for the JWKS cache.
    async fn fetch_jwks_for_cache(&self, uri: &Url) -> Result<FetchedKeys, ProviderError> {
        self.metrics.record_jwks_refetch();
        self.fetch_jwks(uri).await
    }

    /// When the key set cannot be fetched several times in a row, the IdP may have moved it: run
    /// discovery again (at most once per `REDISCOVERY_INTERVAL`). A failure keeps what we have.
    async fn rediscover_if_failing(&self, discovered: &Discovered) {
        if discovered.jwks.consecutive_failures().await < REDISCOVER_AFTER_FAILURES {
            return;
        }
        {
            let mut last = self
                .last_rediscovery
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| at.elapsed() < REDISCOVERY_INTERVAL) {
                return;
            }
            *last = Some(tokio::time::Instant::now());
        }
        match self.discover().await {
            Ok(()) => tracing::info!(issuer = %self.issuer, "OpenID Provider discovered again"),
            Err(error) => {
                tracing::warn!(issuer = %self.issuer, %error, "re-running discovery failed")
            }
        }
    }

    /// One introspection request (RFC 7662 section 2.1), the client authenticated as at the
    /// token endpoint (RFC 6749 section 2.3.1: Basic credentials are form-encoded first).
    #[tracing::instrument(skip_all, name = "idp.introspection", fields(otel.kind = "client"))]
    async fn ask_introspection_endpoint(
        &self,
        discovered: &Discovered,
        access_token: &Secret,
    ) -> Result<Introspected, AccessTokenError> {
        let unavailable = AccessTokenError::IntrospectionUnavailable;
        let endpoint = discovered
            .metadata
            .introspection_endpoint()
            .ok_or_else(|| {
                unavailable("the discovery document has no introspection_endpoint".into())
            })?;
        // Built before any `.await`: the serializer is not `Send`.
        let (form, basic_auth) = introspection_request(
            access_token.expose(),
            &self.client.client_id,
            self.client.client_secret.expose(),
            self.client.auth,
        );
        let request = self.http.post_form(endpoint, form, basic_auth);
        let body = (self.metrics.time(IdpEndpoint::Introspection, request).await)
            .map_err(|error| unavailable(format!("POST introspection_endpoint: {error}")))?;
        introspection::parse(&body, self.clock.now_unix(), self.leeway_seconds)
            .map_err(|error| unavailable(error.to_string()))
    }

    fn discovered(&self) -> Option<Arc<Discovered>> {
        self.discovered
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn not_ready() -> TokenError {
        TokenError::Unreachable("the OpenID Provider has not been discovered yet".into())
    }
}

#[async_trait]
impl IdentityProvider for Provider {
    fn metadata(&self) -> Option<Arc<ProviderMetadata>> {
        self.discovered().map(|d| Arc::clone(&d.metadata))
    }

    fn discovery_wanted(&self) {
        if self.discovered().is_none() {
            self.discovery_wanted.notify_one();
        }
    }

    fn idp_metrics(&self) -> Option<&IdpMetrics> {
        Some(&self.metrics)
    }

    fn not_ready_reason(&self) -> Option<String> {
        if self.discovered().is_some() {
            return None;
        }
        let last_error = self
            .last_discovery_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Some(match last_error {
            Some(error) => format!("OpenID Provider not discovered yet: last attempt: {error}"),
            None => "OpenID Provider not discovered yet: first attempt in progress".into(),
        })
    }

    #[tracing::instrument(skip_all, name = "idp.token", fields(otel.kind = "client"))]
    async fn exchange_code(
        &self,
        code: &Secret,
        redirect_uri: &str,
        pkce_verifier: Option<&str>,
    ) -> Result<TokenSet, TokenError> {
        let discovered = self.discovered().ok_or_else(Self::not_ready)?;
        let redirect_uri = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|_| TokenError::InvalidResponse("the redirect URI is not a URL".into()))?;
        let mut request = discovered
            .client
            .exchange_code(AuthorizationCode::new(code.expose().to_owned()))
            .set_redirect_uri(Cow::Owned(redirect_uri));
        if let Some(verifier) = pkce_verifier {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()));
        }
        (self
            .metrics
            .time(IdpEndpoint::Token, request.request_async(&self.http))
            .await)
            .map_err(token::from_request_error)?
            .into_token_set()
    }

    #[tracing::instrument(skip_all, name = "idp.token_refresh", fields(otel.kind = "client"))]
    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenSet, TokenError> {
        let discovered = self.discovered().ok_or_else(Self::not_ready)?;
        let refresh_token = RefreshToken::new(refresh_token.expose().to_owned());
        let request = discovered.client.exchange_refresh_token(&refresh_token);
        (self
            .metrics
            .time(IdpEndpoint::Token, request.request_async(&self.http))
            .await)
            .map_err(token::from_request_error)?
            .into_token_set()
    }

    async fn verify_id_token(
        &self,
        id_token: &Secret,
        expected_nonce: Option<&str>,
        access_token: Option<&Secret>,
    ) -> Result<IdTokenClaims, IdTokenError> {
        let Some(discovered) = self.discovered() else {
            return Err(IdTokenError::UnknownKey);
        };
        let expect = Expectations {
            issuer: discovered.metadata.issuer(),
            client_id: &self.client.client_id,
            client_secret: self.client.client_secret.expose(),
            allowed_algorithms: &self.allowed_algorithms,
            leeway_seconds: self.leeway_seconds,
            now_unix: self.clock.now_unix(),
            nonce: expected_nonce,
        };
        let claims = self
            .with_keys(&discovered, id_token.expose(), |keys| {
                id_token::verify(id_token.expose(), keys, &expect)
            })
            .await?;
        if let Some(access_token) = access_token {
            at_hash::check(id_token.expose(), access_token.expose())?;
        }
        Ok(claims)
    }

    async fn verify_access_token(
        &self,
        access_token: &Secret,
    ) -> Result<serde_json::Map<String, serde_json::Value>, AccessTokenError> {
        let discovered = self
            .discovered()
            .ok_or(AccessTokenError::ProviderNotReady)?;
        let expect = access_token::Expectations {
            issuer: discovered.metadata.issuer(),
            allowed_algorithms: &self.allowed_algorithms,
            leeway_seconds: self.leeway_seconds,
            now_unix: self.clock.now_unix(),
        };
        let token = access_token.expose();
        // `with_keys` speaks `IdTokenError` (its header check, and `UnknownKey` to refetch the
        // key set once); the access token's own verdict travels inside its `Ok`.
        let verified = self
            .with_keys(&discovered, token, |keys| {
                match access_token::verify(token, keys, &expect) {
                    Err(AccessTokenError::UnknownKey) => Err(IdTokenError::UnknownKey),
                    other => Ok(other),
                }
            })
            .await;
        verified.unwrap_or_else(|error| Err(error.into()))
    }

    async fn introspect(
        &self,
        access_token: &Secret,
    ) -> Result<serde_json::Map<String, serde_json::Value>, AccessTokenError> {
        let discovered = self
            .discovered()
            .ok_or(AccessTokenError::ProviderNotReady)?;
        let key = introspection::token_hash(access_token.expose());
        let now = self.clock.now_unix();
        let answer = match self.introspection_cache.get(&key, now) {
            Some(answer) => answer,
            None => {
                let answer = self
                    .ask_introspection_endpoint(&discovered, access_token)
                    .await?;
                self.introspection_cache.put(key, answer.clone(), now);
                answer
            }
        };
        match answer {
            Introspected::Active(members) => Ok((*members).clone()),
            Introspected::Inactive => Err(AccessTokenError::Inactive),
        }
    }

    #[tracing::instrument(skip_all, name = "idp.userinfo", fields(otel.kind = "client"))]
    async fn userinfo(
        &self,
        access_token: &Secret,
        subject: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, UserinfoError> {
        let discovered = self.discovered().ok_or(UserinfoError::ProviderNotReady)?;
        let endpoint = discovered
            .metadata
            .userinfo_endpoint()
            .ok_or(UserinfoError::NoEndpoint)?;
        let request = self.http.get_json_as(endpoint, Some(access_token.expose()));
        let document = (self.metrics.time(IdpEndpoint::Userinfo, request).await)
            .map_err(|error| UserinfoError::Unavailable(error.to_string()))?;
        userinfo::parse(&document.body, subject)
    }

    async fn verify_logout_token(
        &self,
        logout_token: &Secret,
    ) -> Result<LogoutClaims, LogoutTokenError> {
        let discovered = self
            .discovered()
            .ok_or(LogoutTokenError::ProviderNotReady)?;
        let token = logout_token.expose();
        let claims = self
            .with_keys(&discovered, token, |keys| {
                id_token::verify_signature::<RawLogoutClaims>(
                    token,
                    keys,
                    &self.allowed_algorithms,
                    self.client.client_secret.expose(),
                )
            })
            .await?;
        logout_token::check(
            claims,
            discovered.metadata.issuer(),
            &self.client.client_id,
            self.leeway_seconds,
            self.clock.now_unix(),
        )
    }
}

impl Provider {
    /// Runs `verify` with the keys matching the token's `kid` (refetched first when stale); on
    /// `UnknownKey`, refetches the JWKS (see `JwksCache` for the limits) and runs it once more: the
    /// IdP may have rotated its keys.
    async fn with_keys<T>(
        &self,
        discovered: &Discovered,
        token: &str,
        verify: impl Fn(&[jsonwebtoken::jwk::Jwk]) -> Result<T, IdTokenError>,
    ) -> Result<T, IdTokenError> {
        let (_, kid) = id_token::header(token, &self.allowed_algorithms)?;
        let jwks_uri = discovered.metadata.jwks_uri();
        let keys = discovered
            .jwks
            .refresh_if_stale(|| self.fetch_jwks_for_cache(jwks_uri))
            .await;
        let outcome = match verify(&JwksCache::candidates(&keys, kid.as_deref())) {
            Err(IdTokenError::UnknownKey) => {
                let keys = discovered
                    .jwks
                    .refetch_for_unknown_kid(kid.as_deref(), || self.fetch_jwks_for_cache(jwks_uri))
                    .await;
                verify(&JwksCache::candidates(&keys, kid.as_deref()))
            }
            other => other,
        };
        self.rediscover_if_failing(discovered).await;
        outcome
    }
}

/// The form and Basic credentials of an introspection request (RFC 6749 section 2.3.1: Basic
/// credentials are form-encoded first; `client_secret_post` puts them in the form).
fn introspection_request(
    token: &str,
    client_id: &str,
    client_secret: &str,
    auth: ClientAuth,
) -> (String, Option<(String, String)>) {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("token", token)
        .append_pair("token_type_hint", "access_token");
    let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect();
    let basic_auth = match auth {
        ClientAuth::ClientSecretBasic => Some((encode(client_id), encode(client_secret))),
        ClientAuth::ClientSecretPost => {
            form.append_pair("client_id", client_id)
                .append_pair("client_secret", client_secret);
            None
        }
    };
    (form.finish(), basic_auth)
}

#[cfg(test)]
mod introspection_request_tests {
    use super::*;

    #[test]
    fn the_client_authenticates_as_at_the_token_endpoint() {
        let (form, basic) = introspection_request(
            "tok+en",
            "my client",
            "s:e&cret",
            ClientAuth::ClientSecretBasic,
        );
        assert_eq!(form, "token=tok%2Ben&token_type_hint=access_token");
        assert_eq!(basic, Some(("my+client".into(), "s%3Ae%26cret".into())));
        let (form, basic) =
            introspection_request("t", "my client", "s&", ClientAuth::ClientSecretPost);
        assert_eq!(
            form,
            "token=t&token_type_hint=access_token&client_id=my+client&client_secret=s%26"
        );
        assert_eq!(basic, None);
    }
}
