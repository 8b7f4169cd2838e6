//! `Provider`: the real `IdentityProvider`, on the openidconnect crate's client. Discovery and the
//! first JWKS fetch run in the background with backoff (capped at 5 s, and cut short, at most once
//! a second, when a login needs the IdP) until they succeed; until then `metadata()` is `None`,
//! `not_ready_reason()` says why, and the flow answers "could not decide". All IdP traffic goes through
//! `IdpHttpClient` (no redirects followed, so no SSRF via the IdP; bodies size-capped).
//!
//! Here: the `Provider` and its settings, the `IdentityProvider` methods and the key lookup
//! they share (`with_keys`). Apart: `discovery.rs` (discovery, its backoff, re-discovery, JWKS
//! fetches), `token_endpoint.rs` (code exchange, refresh), `introspect.rs` (introspection and
//! its cache, userinfo).

mod discovery;
mod introspect;
mod token_endpoint;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::Algorithm;
use url::Url;

use super::access_token::{self, AccessTokenError};
use super::discovery::{DiscoveryError, ProviderMetadata};
use super::http::{HttpError, IdpHttpClient};
use super::id_token::{self, Expectations, IdTokenClaims, IdTokenError};
use super::introspection::{self, IntrospectionCache};
use super::jwks::{JwksCache, JwksError};
use super::logout_token::{self, LogoutClaims, LogoutTokenError, RawLogoutClaims};
use super::token::{RelyingPartyClient, TokenError, TokenSet};
use super::userinfo::UserinfoError;
use super::{IdentityProvider, at_hash};
use crate::clock::Clock;
use crate::config::ClientAuth;
use crate::metrics::IdpMetrics;
use crate::secret::Secret;
pub use discovery::{DISCOVERY_BACKOFF_CAP, DISCOVERY_MIN_INTERVAL, next_discovery_backoff};

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

    fn discovered(&self) -> Option<Arc<Discovered>> {
        self.discovered
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
        self.request_tokens_for_code(code, redirect_uri, pkce_verifier)
            .await
    }

    #[tracing::instrument(skip_all, name = "idp.token_refresh", fields(otel.kind = "client"))]
    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenSet, TokenError> {
        self.request_refreshed_tokens(refresh_token).await
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
        self.introspect_through_cache(access_token).await
    }

    #[tracing::instrument(skip_all, name = "idp.userinfo", fields(otel.kind = "client"))]
    async fn userinfo(
        &self,
        access_token: &Secret,
        subject: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, UserinfoError> {
        self.request_userinfo(access_token, subject).await
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
