//! The one HTTP client that talks to the IdP: our own `reqwest` client (redirects never followed, so
//! a hostile discovery document cannot point us at internal hosts; timeouts from config; TLS trusts
//! the system's CA store plus `ca_file`), wrapped so
//! that every response body is read with a size cap. It is the `AsyncHttpClient` the openidconnect
//! crate sends its token requests through, and it fetches discovery documents and key sets.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};
use url::Url;

/// The largest response we read from the IdP; real ones are a few KiB.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Why an HTTP exchange with the IdP gave no usable answer. Never carries a URL's query, a body or
/// a credential: only the transport's reason or the status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Transport(String),
    /// A 5xx: the IdP is there but cannot answer; an outage, not a refusal.
    #[error("HTTP {0}")]
    ServerError(u16),
    /// A status other than 2xx where a document was expected.
    #[error("HTTP {0}")]
    UnexpectedStatus(u16),
    #[error("response larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
}

/// A fetched document and its `Cache-Control` (the JWKS cache honours `max-age`).
pub struct JsonDocument {
    pub body: Vec<u8>,
    pub cache_control: Option<String>,
}

/// Cheap to clone (an `Arc` inside `reqwest::Client`).
#[derive(Clone)]
pub struct IdpHttpClient {
    inner: reqwest::Client,
}

impl IdpHttpClient {
    /// `extra_ca_pem`: certificates trusted besides the system's CA store (a private CA).
    pub fn new(timeout: Duration, extra_ca_pem: Option<&str>) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder();
        if let Some(pem) = extra_ca_pem {
            for certificate in reqwest::Certificate::from_pem_bundle(pem.as_bytes())? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let inner = builder
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("oidc-authz/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(IdpHttpClient { inner })
    }

    /// GETs a JSON document (discovery, JWKS); anything but 2xx is an error.
    pub async fn get_json(&self, url: &Url) -> Result<JsonDocument, HttpError> {
        self.get_json_as(url, None).await
    }

    /// GETs a JSON document with `Authorization: Bearer <token>` (userinfo).
    pub async fn get_json_as(
        &self,
        url: &Url,
        bearer_token: Option<&str>,
    ) -> Result<JsonDocument, HttpError> {
        let mut request = self
            .inner
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = bearer_token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(HttpError::UnexpectedStatus(status.as_u16()));
        }
        let cache_control = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Ok(JsonDocument {
            body: read_capped(response).await?,
            cache_control,
        })
    }

    /// POSTs a form (token introspection) and returns the 2xx body; a 5xx is `ServerError`, any
    /// other status `UnexpectedStatus`. `basic_auth` is an `Authorization: Basic` value's
    /// credentials, already form-encoded as RFC 6749 section 2.3.1 wants.
    pub async fn post_form(
        &self,
        url: &Url,
        form: String,
        basic_auth: Option<(String, String)>,
    ) -> Result<Vec<u8>, HttpError> {
        let mut request = self
            .inner
            .post(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form);
        if let Some((user, password)) = basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        if status.is_server_error() {
            return Err(HttpError::ServerError(status.as_u16()));
        }
        if !status.is_success() {
            return Err(HttpError::UnexpectedStatus(status.as_u16()));
        }
        read_capped(response).await
    }

    /// Sends a request built by the openidconnect crate. A 5xx becomes `ServerError` here, so the
    /// token endpoint's outages are never mistaken for a refusal of the grant.
    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let request = reqwest::Request::try_from(request).map_err(transport_error)?;
        let response = self.inner.execute(request).await.map_err(transport_error)?;
        let status = response.status();
        if status.is_server_error() {
            return Err(HttpError::ServerError(status.as_u16()));
        }
        let headers = response.headers().clone();
        let body = read_capped(response).await?;
        let mut answer = HttpResponse::new(body);
        *answer.status_mut() = status;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}

impl<'c> AsyncHttpClient<'c> for IdpHttpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

/// The transport's reason without the URL (which may carry a query we must not log).
fn transport_error(error: reqwest::Error) -> HttpError {
    HttpError::Transport(error.without_url().to_string())
}

/// Reads a response body, refusing anything over `MAX_RESPONSE_BYTES`.
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(HttpError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
