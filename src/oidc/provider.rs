//! `Provider`: the real `IdentityProvider`. Discovery and the first JWKS fetch run in the
//! background with backoff until they succeed; until then `metadata()` is `None` and the flow
//! answers "could not decide". The HTTP client never follows redirects (no SSRF via the IdP).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::Algorithm;
use url::Url;

use super::IdentityProvider;
use super::discovery::{self, ProviderMetadata};
use super::id_token::{self, Expectations, IdTokenClaims, IdTokenError};
use super::jwks::{self, JwksCache};
use super::logout_token::{self, LogoutClaims, RawLogoutClaims};
use super::token::{self, ClientCredentials, TokenError, TokenSet};
use crate::clock::Clock;
use crate::secret::Secret;

/// What discovery produced; swapped in whole once it succeeds.
struct Discovered {
    metadata: Arc<ProviderMetadata>,
    jwks: JwksCache,
}

pub struct Provider {
    issuer: Url,
    client: ClientCredentials,
    allowed_algorithms: Vec<Algorithm>,
    leeway_seconds: i64,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    discovered: RwLock<Option<Arc<Discovered>>>,
}

pub struct ProviderSettings {
    pub issuer: Url,
    pub client: ClientCredentials,
    pub allowed_algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    pub http_timeout: Duration,
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
        }
    }
}

impl Provider {
    pub fn new(settings: ProviderSettings, clock: Arc<dyn Clock>) -> Result<Arc<Self>, String> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.http_timeout)
            .connect_timeout(settings.http_timeout)
            .user_agent(concat!("oidc-authz/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        Ok(Arc::new(Provider {
            issuer: settings.issuer,
            client: settings.client,
            allowed_algorithms: settings.allowed_algorithms,
            leeway_seconds: settings.leeway.as_secs() as i64,
            http,
            clock,
            discovered: RwLock::new(None),
        }))
    }

    /// Runs discovery until it succeeds, backing off from 1 s to 30 s between attempts.
    pub fn spawn_discovery(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let provider = Arc::clone(self);
        tokio::spawn(async move {
            let mut backoff = Duration::from_secs(1);
            loop {
                match provider.discover().await {
                    Ok(()) => {
                        tracing::info!(issuer = %provider.issuer, "OpenID Provider discovered");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(issuer = %provider.issuer, %error, retry_in = ?backoff, "OpenID Provider discovery failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        })
    }

    /// One discovery attempt: the discovery document, then the JWKS.
    pub async fn discover(&self) -> Result<(), String> {
        let body = self.get(&discovery::discovery_url(&self.issuer)).await?;
        let metadata = discovery::parse(&self.issuer, &body)?;
        let keys = self.fetch_jwks(&metadata.jwks_uri).await?;
        let discovered = Discovered {
            metadata: Arc::new(metadata),
            jwks: JwksCache::new(keys),
        };
        *self.discovered.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(discovered));
        Ok(())
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| format!("GET {url}: {}", error.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", response.status()));
        }
        token::read_capped(response)
            .await
            .map_err(|error| format!("GET {url}: {error}"))
    }

    async fn fetch_jwks(&self, uri: &Url) -> Result<Vec<jsonwebtoken::jwk::Jwk>, String> {
        jwks::parse_key_set(&self.get(uri.as_str()).await?)
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

    async fn exchange_code(
        &self,
        code: &Secret,
        redirect_uri: &str,
        pkce_verifier: Option<&str>,
    ) -> Result<TokenSet, TokenError> {
        let discovered = self.discovered().ok_or_else(Self::not_ready)?;
        let mut params = vec![
            ("grant_type", "authorization_code"),
            ("code", code.expose()),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(verifier) = pkce_verifier {
            params.push(("code_verifier", verifier));
        }
        token::request(
            &self.http,
            &discovered.metadata.token_endpoint,
            &self.client,
            &params,
        )
        .await
    }

    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenSet, TokenError> {
        let discovered = self.discovered().ok_or_else(Self::not_ready)?;
        let params = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
        ];
        token::request(
            &self.http,
            &discovered.metadata.token_endpoint,
            &self.client,
            &params,
        )
        .await
    }

    async fn verify_id_token(
        &self,
        id_token: &Secret,
        expected_nonce: Option<&str>,
    ) -> Result<IdTokenClaims, IdTokenError> {
        let Some(discovered) = self.discovered() else {
            return Err(IdTokenError::UnknownKey);
        };
        let expect = Expectations {
            issuer: &discovered.metadata.issuer,
            client_id: &self.client.client_id,
            client_secret: self.client.client_secret.expose(),
            allowed_algorithms: &self.allowed_algorithms,
            leeway_seconds: self.leeway_seconds,
            now_unix: self.clock.now_unix(),
            nonce: expected_nonce,
        };
        self.with_keys(&discovered, id_token.expose(), |keys| {
            id_token::verify(id_token.expose(), keys, &expect)
        })
        .await
    }

    async fn verify_logout_token(&self, logout_token: &Secret) -> Result<LogoutClaims, String> {
        let discovered = self
            .discovered()
            .ok_or("the OpenID Provider has not been discovered yet")?;
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
            .await
            .map_err(|error| error.to_string())?;
        logout_token::check(
            claims,
            &discovered.metadata.issuer,
            &self.client.client_id,
            self.leeway_seconds,
            self.clock.now_unix(),
        )
    }
}

impl Provider {
    /// Runs `verify` with the keys matching the token's `kid`; on `UnknownKey`, refetches the JWKS
    /// (rate-limited) and runs it once more: the IdP may have rotated its keys.
    async fn with_keys<T>(
        &self,
        discovered: &Discovered,
        token: &str,
        verify: impl Fn(&[jsonwebtoken::jwk::Jwk]) -> Result<T, IdTokenError>,
    ) -> Result<T, IdTokenError> {
        let (_, kid) = id_token::header(token, &self.allowed_algorithms)?;
        let keys = discovered.jwks.keys();
        match verify(&JwksCache::candidates(&keys, kid.as_deref())) {
            Err(IdTokenError::UnknownKey) => {
                let jwks_uri = discovered.metadata.jwks_uri.clone();
                let keys = discovered
                    .jwks
                    .refetch(|| async move { self.fetch_jwks(&jwks_uri).await })
                    .await;
                verify(&JwksCache::candidates(&keys, kid.as_deref()))
            }
            other => other,
        }
    }
}
