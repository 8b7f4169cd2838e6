//! The token endpoint: authorization-code exchange and refresh (RFC 6749 §4.1.3, §6), with
//! `client_secret_basic` or `client_secret_post`. Responses are read with a size cap, and errors
//! keep the IdP's `error` code so the flow can tell `invalid_grant` from an outage.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use url::Url;

use crate::config::ClientAuth;
use crate::secret::Secret;

/// The largest token response we read; real ones are a few KiB.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Tokens from the token endpoint. No `Debug` of the values: they are `Secret`s.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: Secret,
    pub id_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    /// Seconds from now.
    pub expires_in: Option<u64>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The IdP answered with an OAuth error (`invalid_grant`, `invalid_client`...).
    #[error("token endpoint refused the request: {error}")]
    Rejected { error: String },
    /// No usable answer: connection failure, timeout, 5xx.
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
    #[error("token endpoint sent an invalid response: {0}")]
    InvalidResponse(String),
}

impl TokenError {
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, TokenError::Rejected { error } if error == "invalid_grant")
    }
}

#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawErrorResponse {
    error: String,
}

/// Client credentials, as configured.
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: Secret,
    pub auth: ClientAuth,
}

fn form_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The form body; the client's credentials go in it for `client_secret_post`. (A separate function:
/// the serializer is not `Send`, so it must not live across an `.await`.)
fn encode_form(params: &[(&str, &str)], client: &ClientCredentials) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        form.append_pair(name, value);
    }
    if client.auth == ClientAuth::ClientSecretPost {
        form.append_pair("client_id", &client.client_id);
        form.append_pair("client_secret", client.client_secret.expose());
    }
    form.finish()
}

/// POSTs `params` to the token endpoint with the client's authentication and parses the answer.
pub async fn request(
    http: &reqwest::Client,
    token_endpoint: &Url,
    client: &ClientCredentials,
    params: &[(&str, &str)],
) -> Result<TokenSet, TokenError> {
    let body = encode_form(params, client);
    let mut request = http
        .post(token_endpoint.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        );
    if client.auth == ClientAuth::ClientSecretBasic {
        // RFC 6749 §2.3.1: id and secret are form-encoded before base64.
        let credentials = format!(
            "{}:{}",
            form_encode(&client.client_id),
            form_encode(client.client_secret.expose())
        );
        request = request.header(
            reqwest::header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode(credentials)),
        );
    }
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|error| TokenError::Unreachable(error.without_url().to_string()))?;
    let status = response.status();
    let body = read_capped(response)
        .await
        .map_err(TokenError::Unreachable)?;
    if status.is_success() {
        return parse_success(&body);
    }
    if status.is_client_error()
        && let Ok(error) = serde_json::from_slice::<RawErrorResponse>(&body)
    {
        return Err(TokenError::Rejected { error: error.error });
    }
    if status.is_server_error() {
        return Err(TokenError::Unreachable(format!("HTTP {status}")));
    }
    Err(TokenError::InvalidResponse(format!("HTTP {status}")))
}

/// Reads a response body, refusing anything over `MAX_RESPONSE_BYTES`.
pub async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| error.without_url().to_string())?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!("response larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn parse_success(body: &[u8]) -> Result<TokenSet, TokenError> {
    let raw: RawTokenResponse = serde_json::from_slice(body)
        .map_err(|error| TokenError::InvalidResponse(format!("not a token response: {error}")))?;
    if let Some(token_type) = &raw.token_type
        && !token_type.eq_ignore_ascii_case("bearer")
    {
        return Err(TokenError::InvalidResponse(format!(
            "token_type `{token_type}` is not Bearer"
        )));
    }
    if raw.access_token.is_empty() {
        return Err(TokenError::InvalidResponse("empty access_token".into()));
    }
    // Some IdPs send expires_in as a string.
    let expires_in = match raw.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok(TokenSet {
        access_token: Secret::new(raw.access_token),
        id_token: raw.id_token.filter(|t| !t.is_empty()).map(Secret::new),
        refresh_token: raw.refresh_token.filter(|t| !t.is_empty()).map(Secret::new),
        expires_in,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses_are_parsed_and_checked() {
        let set = parse_success(br#"{"access_token":"at","token_type":"bearer","expires_in":"60","id_token":"it","refresh_token":""}"#).unwrap();
        assert_eq!(set.access_token.expose(), "at");
        assert_eq!(set.expires_in, Some(60));
        assert!(set.refresh_token.is_none());
        assert!(!format!("{set:?}").contains("at\""));
        assert!(matches!(
            parse_success(br#"{"access_token":"at","token_type":"mac"}"#),
            Err(TokenError::InvalidResponse(_))
        ));
        assert!(parse_success(b"not json").is_err());
        assert!(
            TokenError::Rejected {
                error: "invalid_grant".into()
            }
            .is_invalid_grant()
        );
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        assert_eq!(form_encode("a b:c"), "a+b%3Ac");
    }
}
