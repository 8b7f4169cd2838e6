//! Discovery: the discovery document and the first JWKS, retried in the background with backoff
//! (capped at `DISCOVERY_BACKOFF_CAP`, brought forward by a login at most once per
//! `DISCOVERY_MIN_INTERVAL`), and re-run when the key set keeps failing; the crate's client
//! built from what was discovered; the JWKS fetches the key cache makes.

use std::sync::Arc;
use std::time::Duration;

use openidconnect::{
    AuthType, AuthUrl, ClientId, ClientSecret, EndpointNotSet, IssuerUrl, JsonWebKeySet, TokenUrl,
};
use url::Url;

use super::{Discovered, Provider, ProviderError};
use crate::config::ClientAuth;
use crate::metrics::IdpEndpoint;
use crate::oidc::discovery::{self, DiscoveryError, ProviderMetadata};
use crate::oidc::http::JsonDocument;
use crate::oidc::jwks::{self, FetchedKeys, JwksCache};
use crate::oidc::token::RelyingPartyClient;

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

impl Provider {
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
    pub(super) async fn fetch_jwks_for_cache(
        &self,
        uri: &Url,
    ) -> Result<FetchedKeys, ProviderError> {
        self.metrics.record_jwks_refetch();
        self.fetch_jwks(uri).await
    }

    /// When the key set cannot be fetched several times in a row, the IdP may have moved it: run
    /// discovery again (at most once per `REDISCOVERY_INTERVAL`). A failure keeps what we have.
    pub(super) async fn rediscover_if_failing(&self, discovered: &Discovered) {
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
}
